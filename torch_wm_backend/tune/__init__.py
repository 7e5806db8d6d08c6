from .budget import Budget

__all__ = ["Budget", "tune"]


def tune(*args, **kwargs):
    from .tuner import tune as _tune  # MetaSchedule loads only when something is tuned

    return _tune(*args, **kwargs)
