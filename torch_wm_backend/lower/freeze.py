"""Inference weights as weights: a graph's parameters and buffers moved behind its inputs, and what
depends on them alone lifted into ``main_transform_params``, computed once per set of weights.

A batch norm in inference is a scale and a shift computed from four weights; lifted, what is left
of it in ``main`` is elementwise work that fuses into the convolution before it (with the ReLU
after): one kernel, where the graph with weights as plain inputs ran the batch norm as a kernel of
its own. After a convolution the scale goes into the convolution's weight first (batch_norm.py),
so that work is one add. Weight transposes (a linear layer's) are lifted too. The compiled module does not hold the
weights, so it is cached like any other and stays right when they change: the runtime calls
``main_transform_params`` again (runtime/kernel.py, FrozenKernel). With the ``weight_layouts``
option, the weight layouts tuned kernels chose are changed there too (``prepack``).
"""
from __future__ import annotations

import torch
import tvm
import tvm_ffi
from tvm import relax

from .legalize import legalize


def weights_last(gm: torch.fx.GraphModule, weights: tuple) -> torch.fx.GraphModule:
    """The same graph with the placeholders at positions ``weights`` moved behind the others."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    order = [i for i in range(len(placeholders)) if i not in weights] + list(weights)
    graph, env = torch.fx.Graph(), {}
    for i in order:
        node = placeholders[i]
        env[node] = graph.placeholder(node.name)
        env[node].meta = dict(node.meta)
    for node in gm.graph.nodes:
        if node.op != "placeholder":
            env[node] = graph.node_copy(node, lambda n: env[n])
    return torch.fx.GraphModule(gm, graph)


WEIGHT_LAYOUTS = "tvm_wm.weight_layouts"  # main's attribute: tuning may choose the weights' layouts


def lift_weights(mod: tvm.IRModule, num_input: int, weight_layouts: bool = False) -> tvm.IRModule:
    """``main(inputs..., weights...)`` -> ``main_transform_params(weights) -> prepared`` and
    ``main(inputs..., prepared...)``: TVM's own passes, in static_shape_tuning_pipeline's order.
    ``weight_layouts``: mark ``main`` so that tuning may choose the prepared weights' layouts
    (tune/tasks.py, ``prepack``)."""
    mod = tvm.IRModule(dict(mod.functions))
    mod["main"] = mod["main"].with_attr("num_input", num_input)
    if weight_layouts:
        mod["main"] = mod["main"].with_attr(WEIGHT_LAYOUTS, True)
    return tvm.transform.Sequential([
        relax.transform.DecomposeOpsForInference(),  # batch norm -> elementwise, on weights
        relax.transform.CanonicalizeBindings(),
        legalize(),
        relax.transform.LiftTransformParams(),
        relax.transform.FoldConstant(),
    ])(mod)


PREPARE = "main_transform_params"


def chooses_weight_layouts(mod: tvm.IRModule) -> bool:
    """Whether ``mod``'s weight layouts are tuning's to choose (``lift_weights(weight_layouts=True)``)."""
    main = next((f for gv, f in mod.functions.items() if gv.name_hint == "main"), None)
    return main is not None and main.attrs is not None and bool(main.attrs.get(WEIGHT_LAYOUTS, False))


def prepack(mod: tvm.IRModule) -> tvm.IRModule:
    """After tuning: the weight layout changes that tuned kernels ask for (MetaSchedule's
    RewriteLayout, on the buffers tune/tasks.py marks layout-free) split out of the kernels
    (SplitLayoutRewritePreproc) and lifted into the weights' preparation, as TVM's
    ``static_shape_tuning_pipeline(cpu_weight_prepack=True)`` does: paid once per set of weights,
    not per call. ``main_transform_params`` becomes the lifted preparation (``lift_weights``)
    followed by the layout changes. Modules that do not choose their weight layouts pass through."""
    if not chooses_weight_layouts(mod):
        return mod
    split = relax.transform.SplitLayoutRewritePreproc()(mod)
    if tvm_ffi.structural_equal(split, mod):
        return mod  # no kernel asked for another layout
    lifted_name, layouts_name = f"{PREPARE}_lifted", f"{PREPARE}_layouts"
    first = split.get_global_var(PREPARE)
    kept = {gv: f for gv, f in split.functions.items() if gv != first}
    # renamed, and without num_input: LiftTransformParams would lift this function's own work too
    kept[tvm.ir.GlobalVar(lifted_name)] = (split[first].with_attr("global_symbol", lifted_name)
                                           .without_attr("num_input"))
    lifted = tvm.transform.Sequential([relax.transform.LiftTransformParams(),  # a new PREPARE
                                       relax.transform.FoldConstant()])(
        tvm.IRModule(kept, attrs=split.attrs))
    rest = {gv: f for gv, f in lifted.functions.items() if gv.name_hint not in (PREPARE, lifted_name)}
    bb = relax.BlockBuilder(tvm.IRModule(rest, attrs=lifted.attrs))
    lift = bb.add_func(lifted[lifted_name], lifted_name)
    layouts = bb.add_func(lifted[PREPARE].with_attr("global_symbol", layouts_name), layouts_name)
    weights = relax.Var("weights", lifted[lifted_name].params[0].ty)
    with bb.function(PREPARE, [weights]):
        prepared = bb.emit(relax.Call(lift, [weights]))
        bb.emit_func_output(bb.emit(relax.Call(layouts, [prepared])))
    return bb.get()


def exported(model: torch.nn.Module, inputs: tuple):
    """``(ATen graph, its inputs, weight positions)`` of ``model`` on ``inputs`` by
    ``torch.export``, with the backend's decompositions: an inference graph as the backend lowers
    it, for tools that lower a whole model outside ``torch.compile`` (the world model's collector)."""
    from torch.export.graph_signature import InputKind

    from ..decompositions import decompositions

    with torch.no_grad():
        program = torch.export.export(model, tuple(inputs)).run_decompositions(decompositions(inference=True))
    state = {**dict(model.named_parameters()), **dict(model.named_buffers()),
             **dict(program.constants)}
    user = iter(inputs)
    args, weights = [], []
    for i, spec in enumerate(program.graph_signature.input_specs):
        if spec.kind == InputKind.USER_INPUT:
            args.append(next(user))
            continue
        args.append(state[spec.target].detach())
        if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
            weights.append(i)
    return program.graph_module, args, tuple(weights)
