from . import products  # registers the functions modules call for PyTorch's products
from . import convolutions  # registers the functions modules call for oneDNN's convolutions
from .kernel import Kernel
from .subgraph import TvmSubgraph

__all__ = ["Kernel", "TvmSubgraph"]
