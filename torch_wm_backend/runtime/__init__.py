from . import products  # registers the function modules call for PyTorch's products
from .kernel import Kernel
from .subgraph import TvmSubgraph

__all__ = ["Kernel", "TvmSubgraph"]
