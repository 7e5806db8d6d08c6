"""Put subgraphs back: inline the ATen graph of chosen submodules into the partitioned graph.

Where the guard keeps PyTorch for a subgraph, calling it as a submodule only adds overhead (measured
on MobileNetV2, all in PyTorch: 53 subgraph calls cost 13% of the model, 3% once the calls were
made cheap — benchmarks/results/guard_context.md). Inlining its ops into the parent graph leaves
that cost only where a TVM kernel runs.
"""
from __future__ import annotations

import operator

import torch
from torch.fx import Graph, GraphModule, Node
from torch.fx.node import map_arg


def inline(gm: GraphModule, names: set, body=lambda module: module) -> GraphModule:
    """A new GraphModule like ``gm`` with each ``call_module`` whose target is in ``names``
    replaced by the nodes of ``body(submodule)`` (a GraphModule taking the call's positional
    arguments). Submodules not inlined are shared with ``gm``; ``gm`` itself is not changed."""
    graph = Graph()
    env: dict = {}
    constants: dict = {}
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target in names:
            env[node] = _inline_call(graph, node, body(getattr(gm, node.target)), env, constants)
        elif (node.op == "call_function" and node.target is operator.getitem
              and isinstance(env.get(node.args[0]), (tuple, list))):
            env[node] = env[node.args[0]][node.args[1]]  # an inlined subgraph's tuple result
        else:
            env[node] = graph.node_copy(node, lambda n: env[n])
    root = torch.nn.Module()
    for name, module in gm.named_children():
        if name not in names:
            root.add_module(name, module)
    for name, value in constants.items():
        setattr(root, name, value)
    for node in gm.graph.nodes:  # attributes of gm itself that its graph reads
        if node.op == "get_attr" and not hasattr(root, node.target.split(".")[0]):
            setattr(root, node.target.split(".")[0], getattr(gm, node.target.split(".")[0]))
    return GraphModule(root, graph)


def _inline_call(graph: Graph, call: Node, sub: GraphModule, env: dict, constants: dict):
    if call.kwargs:
        raise ValueError(f"{call.target}: keyword arguments to a subgraph are not supported")
    local: dict = {}
    args = iter(map_arg(call.args, lambda n: env[n]))
    for node in sub.graph.nodes:
        if node.op == "placeholder":
            local[node] = next(args)
        elif node.op == "output":
            return map_arg(node.args[0], lambda n: local[n])
        elif node.op == "get_attr":
            name = f"{call.target}_{node.target.replace('.', '_')}"
            constants[name] = operator.attrgetter(node.target)(sub)
            local[node] = graph.get_attr(name)
        else:
            local[node] = graph.node_copy(node, lambda n: local[n])
    raise ValueError(f"{call.target}: subgraph without an output")

