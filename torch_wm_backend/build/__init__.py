from .build import build

__all__ = ["build"]
