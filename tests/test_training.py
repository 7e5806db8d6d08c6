"""Training: loss, every parameter gradient, and the parameters after an optimizer step match eager."""
import copy

import torch

import torch_wm_backend
import zoo
from conftest import untuned

ATOL, RTOL = 1e-4, 1e-3


def _train_step(model, inputs, loss_fn, forward=None):
    """One SGD step of ``model``, its forward run by ``forward`` (the compiled model) if given."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.zero_grad()
    loss = loss_fn(model if forward is None else forward, inputs)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    opt.step()
    return loss.detach(), grads, {n: p.detach().clone() for n, p in model.named_parameters()}


def _compare(model, inputs, loss_fn):
    reference = copy.deepcopy(model)
    compiled = torch.compile(model, backend="tvm_wm", options=untuned())
    loss_c, grads_c, params_c = _train_step(model, inputs, loss_fn, forward=compiled)
    loss_e, grads_e, params_e = _train_step(reference, inputs, loss_fn)
    torch.testing.assert_close(loss_c, loss_e, atol=ATOL, rtol=RTOL)
    assert grads_e and set(grads_e) <= set(grads_c)
    for name in set(grads_c) - set(grads_e):  # unused by the loss: None in eager, zeros through aot
        assert not grads_c[name].any(), name
    for name in grads_e:
        torch.testing.assert_close(grads_c[name], grads_e[name], atol=ATOL, rtol=RTOL, msg=name)
    for name in params_e:
        torch.testing.assert_close(params_c[name], params_e[name], atol=ATOL, rtol=RTOL, msg=name)
    stats = torch_wm_backend.stats()
    assert stats["graphs_compiled"] >= 2  # a forward and a backward graph
    return stats


def test_cnn_with_batchnorm_trains_like_eager():
    model = zoo.cnn_bn().train()
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    reference = copy.deepcopy(model)
    stats = _compare(model, (x, y), lambda m, xy: torch.nn.functional.cross_entropy(m(xy[0]), xy[1]))
    # train-mode BatchNorm updates its running statistics in place: those must match too
    reference(x)  # _compare stepped a copy of the model, not this one: one forward pass here
    buffers = dict(reference.named_buffers())
    assert buffers
    for name, b in model.named_buffers():
        torch.testing.assert_close(b, buffers[name], atol=ATOL, rtol=RTOL, msg=name)
    assert stats["subgraphs_failed"] == 0 and stats["kernel_calls"] > 0  # TVM computed it


def test_cnn_running_stats_match_eager():
    model = zoo.cnn_bn().train()
    reference = copy.deepcopy(model)
    x = torch.randn(4, 3, 16, 16)
    compiled = torch.compile(model, backend="tvm_wm", options=untuned())
    compiled(x)
    reference(x)
    buffers = dict(reference.named_buffers())
    assert any(name.endswith("running_mean") for name in buffers)
    for name, b in model.named_buffers():
        torch.testing.assert_close(b, buffers[name], atol=ATOL, rtol=RTOL, msg=name)
    stats = torch_wm_backend.stats()
    assert stats["subgraphs_failed"] == 0 and stats["kernel_calls"] > 0


def test_bert_trains_like_eager():
    model = zoo.bert().train()
    model.config.hidden_dropout_prob = 0.0
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    ids = zoo.tokens()
    stats = _compare(model, ids, lambda m, x: m(x).last_hidden_state.pow(2).mean())
    assert stats["nodes_lowered"] > stats["nodes_eager"]
    assert stats["subgraphs_failed"] == 0 and stats["kernel_calls"] > 0
