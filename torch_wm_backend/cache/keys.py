"""Cache keys: everything that changes an artifact, and nothing else."""
from __future__ import annotations

import functools
import hashlib
import operator

import torch

from .store import ArtifactStore
from .versions import versions


@functools.lru_cache(maxsize=None)
def store_for(root) -> ArtifactStore:
    return ArtifactStore(root)


def graph_hash(gm: torch.fx.GraphModule) -> str:
    """sha256 of the graph's structure with nodes named by position, so equal subgraphs at
    different depths of a model (``convolution_3`` here, ``convolution_17`` there) share a key.
    Constants the graph reads are hashed by value."""
    index = {}
    h = hashlib.sha256()
    for i, node in enumerate(gm.graph.nodes):
        index[node] = i

        def ref(a):
            return f"%{index[a]}" if isinstance(a, torch.fx.Node) else a

        args = torch.fx.node.map_aggregate(node.args, ref)
        kwargs = torch.fx.node.map_aggregate(dict(node.kwargs), ref)
        target = node.target if isinstance(node.target, str) else getattr(
            node.target, "__qualname__", None) or str(node.target)
        if node.op in ("placeholder", "get_attr"):
            target = ""  # placeholder names are positional; constants are hashed by value below
        h.update(repr((node.op, str(target), args, kwargs)).encode())
        if node.op == "get_attr":
            value = operator.attrgetter(node.target)(gm)
            if isinstance(value, torch.Tensor):
                t = value.detach().cpu().contiguous()
                h.update(repr((t.dtype, tuple(t.shape))).encode())
                h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
            else:
                h.update(repr(value).encode())
    return h.hexdigest()


def cache_key(gm: torch.fx.GraphModule, args: list, target, settings) -> dict:
    """The key parts of what ``gm`` builds for ``args`` on ``target``. Weights are inputs of the
    graph, so not in the key; inputs are made contiguous before any kernel reads them, so their
    strides are not either."""
    shapes = [[list(a.shape), str(a.dtype)] if isinstance(a, torch.Tensor) else repr(a)
              for a in args]
    return {"graph": graph_hash(gm), "shapes": shapes, "target": str(target),
            "versions": versions(), "settings": settings.artifact_key()}

