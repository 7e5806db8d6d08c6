"""Typed errors a user can catch; each says what to do about it."""


class TvmWmError(RuntimeError):
    """Base class of every error this backend raises on purpose."""


class OptionError(TvmWmError, ValueError):
    """An option passed through ``torch.compile(..., options=...)`` is unknown or has a bad value."""


class UnsupportedOpsError(TvmWmError):
    """``strict=True`` and the graph holds ops that TVM cannot lower."""

    def __init__(self, ops):
        self.ops = sorted(set(ops))
        super().__init__(
            f"{len(self.ops)} op(s) cannot be lowered to TVM: {', '.join(self.ops)}. "
            "Drop options={'strict': True} to run them in PyTorch instead."
        )
