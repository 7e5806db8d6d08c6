from .inline import inline
from .partitioner import Partitioned, partition
from .support import eager_op_names, eager_reasons, lowerable

__all__ = ["Partitioned", "inline", "partition", "eager_op_names", "eager_reasons", "lowerable"]
