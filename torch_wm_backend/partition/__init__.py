from .partitioner import Partitioned, partition
from .support import eager_op_names, lowerable

__all__ = ["Partitioned", "partition", "eager_op_names", "lowerable"]
