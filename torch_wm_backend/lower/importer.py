"""An ATen FX subgraph with concrete inputs -> a Relax IRModule, through TVM's own op translation.

TVM's ``ExportedProgramImporter`` holds the op converters; it only expects its inputs described by an
``ExportedProgram``. We describe them from the tensors instead and reuse everything else.
"""
from __future__ import annotations

import torch
from torch.fx.experimental.proxy_tensor import make_fx
from tvm import IRModule, relax
from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter


class GraphModuleImporter(ExportedProgramImporter):
    def import_graph_module(self, gm: torch.fx.GraphModule, inputs: list) -> IRModule:
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        assert len(placeholders) == len(inputs), (len(placeholders), len(inputs))
        input_vars = {}
        for node, value in zip(placeholders, inputs):
            if isinstance(value, torch.Tensor):
                ty = relax.TensorType(list(value.shape), self._convert_data_type(value.dtype))
                input_vars[node.name] = relax.Var(node.name, ty)
        self.block_builder = relax.BlockBuilder()
        nodes = list(gm.graph.nodes)
        self._check_unsupported_func_type(nodes)
        with self.block_builder.function(name="main", params=list(input_vars.values())):
            with self.block_builder.dataflow():
                outputs = self._translate_fx_graph(gm, nodes, input_vars)
                outputs = self._flatten_output_args(outputs)
                result = self.block_builder.emit_output(relax.Tuple(list(outputs)))
            self.block_builder.emit_func_output(result)
        return self.block_builder.get()


def _traced_for(gm: torch.fx.GraphModule, inputs: list) -> bool:
    """Whether the traced values in ``gm`` are static and those of these inputs (a graph Dynamo
    reuses for new dtypes still carries the old ones, and TVM's converters read them)."""
    if not all(isinstance(x, torch.Tensor) for x in inputs):
        return False
    placeholders = [n.meta.get("val") for n in gm.graph.nodes if n.op == "placeholder"]
    for val, x in zip(placeholders, inputs):
        if not isinstance(val, torch.Tensor) or val.dtype != x.dtype or tuple(val.shape) != tuple(x.shape):
            return False
    for node in gm.graph.nodes:
        val = node.meta.get("val")
        vals = val if isinstance(val, (list, tuple)) else [val]
        for v in vals:
            if isinstance(v, torch.Tensor) and not all(isinstance(d, int) for d in v.shape):
                return False
    return True


def concretize(gm: torch.fx.GraphModule, inputs: list) -> torch.fx.GraphModule:
    """The same subgraph with every shape made concrete for these inputs.

    Under ``dynamic=True`` a subgraph carries symbolic sizes and SymInt inputs, and a reused graph
    may carry other dtypes; we compile one kernel per concrete signature, so retrace it with the
    real values (fake tensors, no compute).
    """
    if _traced_for(gm, inputs):
        return gm
    return make_fx(gm, tracing_mode="fake")(*inputs)


def chosen_layout(layout: str, gm: torch.fx.GraphModule, inputs: list) -> str:
    """The layout ``layout`` asks for in this graph: "auto" is channels-last where the graph has a
    2-D convolution on the CPU (the tuned CNNs' modules won there: benchmarks/results/e2e_t32.md)
    and PyTorch's layout elsewhere."""
    if layout != "auto":
        return layout
    on_cpu = all(x.device.type == "cpu" for x in inputs if isinstance(x, torch.Tensor))
    convs = any(n.target is torch.ops.aten.convolution.default and
                isinstance(n.meta.get("val"), torch.Tensor) and n.meta["val"].dim() == 4
                for n in gm.graph.nodes)
    return "NHWC" if on_cpu and convs else "NCHW"


def to_relax(gm: torch.fx.GraphModule, inputs: list, weights: tuple = (),
             layout: str = "NCHW", weight_layouts: bool = False, matmul: str = "tvm") -> IRModule:
    """``weights``: positions of inputs that are the model's weights (inference only): they become
    ``main``'s trailing parameters and what depends on them alone is lifted (freeze.py). ``layout``
    "NHWC" (or "auto" where it means it: chosen_layout) converts such a module's 2-D convolutions
    to channels-last; ``weight_layouts`` lets tuning choose the weights' layouts (settings.py);
    ``matmul`` "pytorch" hands such a module's products to PyTorch (products.py)."""
    return next(iter(variants(gm, inputs, weights, layout, weight_layouts, (matmul,)).values()))


def variants(gm: torch.fx.GraphModule, inputs: list, weights: tuple = (), layout: str = "NCHW",
             weight_layouts: bool = False, matmuls: tuple = ("tvm",)) -> dict:
    """``to_relax`` per ``matmul`` value in ``matmuls``, the graph imported once: matmul ->
    module. Where "pytorch" would change nothing (no weights, no float32 product) there is one
    module, "tvm": TVM's throughout."""
    gm = concretize(gm, inputs)
    if not weights:
        return {"tvm": GraphModuleImporter().import_graph_module(gm, inputs)}
    from .batch_norm import fold_batch_norms
    from .freeze import lift_weights
    from .products import has_products, to_pytorch

    mod, num_input, nhwc = imported(gm, inputs, weights, layout)
    theirs = None
    if "pytorch" in matmuls:  # PyTorch's products, oneDNN's convolutions in channels-last modules
        from .convolutions import to_onednn

        theirs = to_pytorch(mod, num_input) if has_products(mod) else mod
        theirs = to_onednn(theirs, num_input) if nhwc else theirs
        theirs = None if theirs is mod else theirs  # nothing PyTorch would compute
    out = {}
    if "tvm" in matmuls or theirs is None:
        out["tvm"] = lift_weights(fold_batch_norms(mod, num_input), num_input, weight_layouts)
    if theirs is not None:
        out["pytorch"] = lift_weights(fold_batch_norms(theirs, num_input), num_input, weight_layouts)
    return out


def imported(gm: torch.fx.GraphModule, inputs: list, weights: tuple, layout: str = "NCHW") -> tuple:
    """``(module, number of inputs, channels-last)``: the (concrete) graph imported with the weights
    at ``weights`` as ``main``'s trailing parameters, its convolutions channels-last where ``layout``
    chooses so, nothing lifted yet (``variants`` lowers it further)."""
    from .freeze import weights_last

    ordered = [x for i, x in enumerate(inputs) if i not in weights] + [inputs[i] for i in weights]
    mod = GraphModuleImporter().import_graph_module(weights_last(gm, weights), ordered)
    # before lifting: the weights' transposes are prepared once with them
    nhwc = chosen_layout(layout, gm, inputs) == "NHWC"
    if nhwc:
        from .layout import to_nhwc

        mod = to_nhwc(mod)
    return mod, len(inputs) - len(weights), nhwc
