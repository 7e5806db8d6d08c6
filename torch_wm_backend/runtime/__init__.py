from .kernel import Kernel
from .subgraph import TvmSubgraph

__all__ = ["Kernel", "TvmSubgraph"]
