"""Which ATen nodes TVM can lower: those its own Relax importer translates faithfully."""
from __future__ import annotations

import functools
import operator

import torch
from torch.fx import Node

# Dtypes the Relax importer maps; anything else (complex, quantized) stays in PyTorch.
_DTYPES = {
    torch.float32, torch.float16, torch.bfloat16, torch.float64,
    torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool,
}
# Ops TVM translates but that must run in PyTorch: they draw random numbers (TVM's stream differs
# from PyTorch's, so results would not match eager), or they only exist for their side effect.
_DENY = {
    "bernoulli.p", "randn.default", "randn_like.default", "exponential.default", "rand.default",
    "native_dropout.default", "_assert_async.msg", "empty.memory_format", "copy_.default",
}
# Ops that move no data: a partition made only of these is not worth a kernel launch.
VIEW_OPS = {
    "view.default", "_unsafe_view.default", "reshape.default", "permute.default", "t.default",
    "expand.default", "squeeze.dim", "squeeze.dims", "unsqueeze.default", "transpose.int",
    "slice.Tensor", "select.int", "alias.default", "getitem", "clone.default",
}



def _index_put_ok(node: Node) -> bool:
    # TVM's IndexPut needs one index tensor per data dimension
    data, indices = node.args[0], node.args[1]
    val = data.meta.get("val") if isinstance(data, Node) else None
    return val is not None and len(indices) == val.dim() and all(i is not None for i in indices)


def _cat_ok(node: Node) -> bool:
    # ATen concatenates 1-D empty tensors with tensors of any rank (GPT-2's empty key cache);
    # TVM's concat needs equal ranks
    tensors = node.args[0] if node.args else []
    ranks = {t.meta["val"].dim() for t in tensors
             if isinstance(t, Node) and isinstance(t.meta.get("val"), torch.Tensor)}
    return len(ranks) <= 1 and len(ranks) == (1 if tensors else 0)


# Ops TVM translates only for some arguments.
_CONSTRAINTS = {"index_put.default": _index_put_ok, "index_put_.default": _index_put_ok,
                "cat.default": _cat_ok}


@functools.lru_cache(maxsize=1)
def _convert_names() -> frozenset:
    from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter

    return frozenset(ExportedProgramImporter().convert_map)


def op_name(node: Node) -> str:
    target = node.target
    if target is operator.getitem:
        return "getitem"
    return getattr(target, "__name__", str(target))


def _tensor_vals(val):
    if isinstance(val, torch.Tensor):
        return [val]
    if isinstance(val, (list, tuple)):
        return [v for v in val if isinstance(v, torch.Tensor)] if val else []
    return None


def _multi_output(node: Node) -> bool:
    target = node.target
    return isinstance(target, torch._ops.OpOverload) and len(target._schema.returns) > 1


def lowerable(node: Node) -> bool:
    """True when TVM's importer can translate ``node`` and its result is what ATen computes."""
    return node.op == "call_function" and not why_eager(node)


def why_eager(node: Node) -> str:
    """Why a call_function node stays in PyTorch, or "" when TVM lowers it."""
    name = op_name(node)
    if name == "getitem":
        parent = node.args[0]
        if not (isinstance(parent, Node) and parent.op == "call_function" and lowerable(parent)):
            return "reads an op that stays in PyTorch"
        ok = not _multi_output(parent) or node.args[1] == 0
        return "" if ok else "reads a result TVM does not compute"
    if not isinstance(node.target, torch._ops.OpOverload):
        return "not an ATen op (Python arithmetic on sizes)"
    if name in _DENY:
        return "draws random numbers or exists for a side effect"
    if name not in _convert_names():
        return "TVM's importer has no translation"
    vals = _tensor_vals(node.meta.get("val"))
    if not vals:
        return "no tensor result"
    dtypes = {str(v.dtype) for v in vals if v.dtype not in _DTYPES or v.layout != torch.strided}
    dtypes |= {str(a.meta["val"].dtype) for a in node.all_input_nodes
               if isinstance(a.meta.get("val"), torch.Tensor) and a.meta["val"].dtype not in _DTYPES}
    if dtypes:
        return f"dtype or layout TVM does not take ({', '.join(sorted(dtypes))})"
    check = _CONSTRAINTS.get(name)
    if check is not None and not check(node):
        return "arguments TVM's translation does not cover"
    # TVM computes only the first result of ops like max_pool2d_with_indices or native_layer_norm
    # faithfully (the others are placeholders): lower only when nothing reads the others
    if _multi_output(node) and not all(u.target is operator.getitem and u.args[1] == 0
                                       for u in node.users):
        return "its other results are read, and TVM computes only the first"
    return ""


def eager_reasons(gm: torch.fx.GraphModule) -> dict[str, str]:
    """Each op of ``gm`` that TVM cannot lower -> why (the first reason met)."""
    reasons: dict = {}
    for n in gm.graph.nodes:
        if n.op == "call_function":
            why = why_eager(n)
            if why:
                reasons.setdefault(op_name(n), why)
    return dict(sorted(reasons.items()))


def eager_op_names(gm: torch.fx.GraphModule) -> list[str]:
    """The distinct call_function ops of ``gm`` that TVM cannot lower."""
    return list(eager_reasons(gm))
