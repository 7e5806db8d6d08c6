from .importer import to_relax, variants
from .target import target_for, tvm_device

__all__ = ["to_relax", "target_for", "tvm_device", "variants"]
