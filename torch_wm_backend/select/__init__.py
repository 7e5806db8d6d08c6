"""Select: TVM or PyTorch, per subgraph and per graph, by timing (the one home of that policy).

race.py: the one race primitive (margin, rounds, busy detection, RNG kept) and the wall-clock Timer;
choice.py: the policy; selection.py: one graph's choice, cached; graphs.py: the callables that carry
it out — an ATen graph, and for inference the whole compiled graph against Dynamo's; products.py:
whose matrix products a whole-graph module keeps (the ``matmul`` option).
"""
from .choice import Choice, choose
from .graphs import AtenGraph, InferenceGraph
from .products import products_race
from .race import MARGIN, Timer, Timing, race
from .selection import Selection

__all__ = ["AtenGraph", "Choice", "InferenceGraph", "MARGIN", "Selection", "Timer", "Timing",
           "choose", "products_race", "race"]
