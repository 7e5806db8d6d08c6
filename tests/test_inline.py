"""Inlining subgraphs back into a partitioned graph keeps its results and drops only those calls."""
import operator

import torch
from torch.fx import Graph, GraphModule

from torch_wm_backend.partition import inline


def _sub_with_tuple_and_constant() -> GraphModule:
    root = torch.nn.Module()
    root.c = torch.tensor([10.0, 20.0])
    g = Graph()
    x = g.placeholder("x")
    c = g.get_attr("c")
    g.output((g.call_function(torch.add, (x, c)), g.call_function(torch.mul, (x, 2.0))))
    return GraphModule(root, g)


def _sub_relu() -> GraphModule:
    g = Graph()
    g.output(g.call_function(torch.relu, (g.placeholder("x"),)))
    return GraphModule(torch.nn.Module(), g)


def _parent() -> GraphModule:
    root = torch.nn.Module()
    root.first, root.second = _sub_with_tuple_and_constant(), _sub_relu()
    g = Graph()
    x = g.placeholder("x")
    pair = g.call_module("first", (x,))
    a, b = g.call_function(operator.getitem, (pair, 0)), g.call_function(operator.getitem, (pair, 1))
    g.output(g.call_module("second", (g.call_function(torch.sub, (a, b)),)))
    return GraphModule(root, g)


def _calls(gm):
    return sorted(n.target for n in gm.graph.nodes if n.op == "call_module")


def test_inlining_keeps_results_and_drops_only_the_named_calls():
    parent = _parent()
    x = torch.tensor([1.0, -30.0])
    want = parent(x)
    for names in ({"first"}, {"second"}, {"first", "second"}, set()):
        flat = inline(parent, names)
        torch.testing.assert_close(flat(x), want)
        assert _calls(flat) == sorted({"first", "second"} - names)
    assert _calls(parent) == ["first", "second"]  # the original is unchanged


def test_inlining_takes_the_body_a_wrapper_stands_for():
    parent = _parent()
    wrapper = torch.nn.Module()
    wrapper.eager = parent.first
    parent.first = wrapper  # like a TvmSubgraph standing in for its ATen subgraph
    flat = inline(parent, {"first"}, body=lambda m: m.eager)
    x = torch.tensor([1.0, -30.0])
    torch.testing.assert_close(flat(x), _parent()(x))
