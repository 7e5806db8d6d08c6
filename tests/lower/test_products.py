"""Matrix products computed by PyTorch from inside a TVM module (the ``matmul`` option): the module
calls PyTorch's product where it had a product kernel, keeps its other kernels, and matches
PyTorch."""
import functools
import os
import sys

import torch

import torch_wm_backend
from torch_wm_backend.backend import tvm_wm
from torch_wm_backend.build import build
from torch_wm_backend.lower import variants
from torch_wm_backend.lower.freeze import exported
from torch_wm_backend.lower.target import cpu_target
from torch_wm_backend.runtime.kernel import kernel_for
from torch_wm_backend.runtime.products import (LINEAR, LINEAR_BIAS, LINEAR_PACK, MATMUL, MATMUL_BIAS,
                                              PackedWeight)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "select"))
from compiled_module import runs_one_module_with_pytorchs_products  # noqa: E402
from fake_timer import FakeTimer  # noqa: E402


class Block(torch.nn.Module):
    """A transformer feed-forward block: products with layer norm and GELU around them."""

    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(32, 64), torch.nn.Linear(64, 32)
        self.norm = torch.nn.LayerNorm(32)

    def forward(self, x):
        return self.norm(x + self.down(torch.nn.functional.gelu(self.up(x))))


def product_kernels(mod) -> list:
    return [gv.name_hint for gv in mod.functions if "matmul" in gv.name_hint]


def test_a_frozen_module_calls_pytorch_for_its_products_and_keeps_its_other_kernels():
    torch.manual_seed(0)
    model, x = Block().eval(), torch.randn(1, 8, 32)
    gm, args, weights = exported(model, (x,))
    mods = variants(gm, args, weights, matmuls=("tvm", "pytorch"))
    assert set(mods) == {"tvm", "pytorch"}
    assert product_kernels(mods["tvm"]) and not product_kernels(mods["pytorch"])
    # products by weights: oneDNN's linear, the weights packed with their preparation, not per call
    assert LINEAR_BIAS in str(mods["pytorch"]["main"]) and LINEAR_PACK not in str(mods["pytorch"]["main"])
    assert str(mods["pytorch"]["main_transform_params"]).count(LINEAR_PACK) == 2
    # the weight whose product applies a GELU is oneDNN's, the other MKL's packed GEMM
    assert str(mods["pytorch"]["main_transform_params"]).count('\\"mkl\\"') == (
        1 if torch.backends.mkl.is_available() else 0)
    assert LINEAR not in mods["tvm"].script() and MATMUL not in mods["tvm"].script()
    kernel = kernel_for(build(mods["pytorch"], cpu_target()), torch.device("cpu"), weights)
    torch.testing.assert_close(kernel(args)[0], model(x), atol=1e-5, rtol=1e-5)
    # the module's other kernels are TVM's (layer norm, residual add); the GELU is oneDNN's, applied
    # as the product by the packed weight writes its output
    assert any("layer_norm" in gv.name_hint for gv in mods["pytorch"].functions)
    assert any("gelu" in gv.name_hint for gv in mods["tvm"].functions)
    assert not any("gelu" in gv.name_hint for gv in mods["pytorch"].functions)
    assert '\\"gelu\\",\\"none\\"' in str(mods["pytorch"]["main"])


def test_packed_weights_follow_the_users_weights_and_count_as_prepared_memory():
    torch.manual_seed(0)
    model, x = Block().eval(), torch.randn(1, 8, 32)
    gm, args, weights = exported(model, (x,))
    kernel = kernel_for(build(variants(gm, args, weights, matmuls=("pytorch",))["pytorch"],
                              cpu_target()), torch.device("cpu"), weights)
    torch_wm_backend.reset_stats()
    kernel(args)
    # two packed weights (oneDNN may pad them): at least their 2 x 32 x 64 floats
    assert torch_wm_backend.stats()["prepared_weight_bytes"] >= 2 * 32 * 64 * 4
    # and only they: the biases and the layer norm's weights are the user's tensors, passed through
    packed = [p for p in kernel._prepared if isinstance(p, PackedWeight)]
    assert len(packed) == 2 and len(kernel._prepared) > 2
    assert torch_wm_backend.stats()["prepared_weight_bytes"] == sum(p.nbytes for p in packed)
    with torch.no_grad():
        model.up.weight.mul_(-2.0)  # in place: the tensors the compiled graph was given
        torch.testing.assert_close(kernel(args)[0], model(x), atol=1e-5, rtol=1e-5)
    assert torch_wm_backend.stats()["weights_prepared"] == 2


def test_without_weights_or_products_there_is_one_module():
    torch.manual_seed(0)
    gm, args, weights = exported(Block().eval(), (torch.randn(1, 8, 32),))
    assert set(variants(gm, args, (), matmuls=("tvm", "pytorch"))) == {"tvm"}
    relu = torch.nn.Sequential(torch.nn.LayerNorm(8)).eval()
    gm, args, weights = exported(relu, (torch.randn(2, 8),))
    assert set(variants(gm, args, weights, matmuls=("pytorch",))) == {"tvm"}


def test_a_compiled_model_runs_its_module_with_pytorchs_products(tmp_path):
    torch.manual_seed(0)
    runs_one_module_with_pytorchs_products(Block().eval(), torch.randn(1, 8, 32), tmp_path)


def test_a_module_with_pytorchs_products_runs_its_own_kernels_on_the_calling_thread(monkeypatch):
    from torch_wm_backend import threads

    n = threads.sync()
    with threads.calling_thread_only():
        assert threads.tvm_pool_threads() == 1
    assert threads.tvm_pool_threads() == n
    torch.manual_seed(0)
    model, x = Block().eval(), torch.randn(1, 8, 32)
    gm, args, weights = exported(model, (x,))
    mods = variants(gm, args, weights, matmuls=("tvm", "pytorch"))
    seen = []
    real = threads.calling_thread_only

    def spy():
        seen.append(1)
        return real()

    monkeypatch.setattr(threads, "calling_thread_only", spy)
    for matmul in ("tvm", "pytorch"):
        kernel = kernel_for(build(mods[matmul], cpu_target()), torch.device("cpu"), weights)
        kernel.matmul = matmul
        torch.testing.assert_close(kernel(args)[0], model(x), atol=1e-5, rtol=1e-5)
        assert len(seen) == (matmul == "pytorch")


def test_attentions_operands_reach_pytorch_as_views_not_copies():
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from zoo import bert, tokens

    torch.manual_seed(0)
    model, x = bert(layers=1).eval(), tokens(batch=1)
    gm, args, weights = exported(model, (x,))
    mods = variants(gm, args, weights, matmuls=("tvm", "pytorch"))
    script = mods["pytorch"].script()
    assert MATMUL in script and 'permute' in script and '[0,2,1,3]' in script  # heads split by PyTorch
    # the head transposes are no kernels of the module's calls (only the weights' are, prepared
    # once), where TVM's own module has them; the biases are added in PyTorch's products
    assert "transpose" in str(mods["tvm"]["main"]) and "transpose" not in str(mods["pytorch"]["main"])
    assert LINEAR_BIAS in script and MATMUL_BIAS not in script  # query, key, value: packed weights
    kernel = kernel_for(build(mods["pytorch"], cpu_target()), torch.device("cpu"), weights)
    kernel.matmul = "pytorch"
    with torch.no_grad():
        want = model(x).last_hidden_state
    torch.testing.assert_close(kernel(args)[0], want, atol=1e-4, rtol=1e-4)


def test_the_module_with_pytorchs_products_races_as_it_will_run(tmp_path, monkeypatch):
    from torch_wm_backend import select

    seen = {}
    real = select.products_race

    def spy(name, kernels, args, device, timer=None):
        seen.update({side: k.matmul for side, k in kernels.items()})
        return real(name, kernels, args, device, timer)

    monkeypatch.setattr(select, "products_race", spy)
    torch.manual_seed(0)
    model, x = Block().eval(), torch.randn(1, 8, 32)
    compiled = torch.compile(model, backend=functools.partial(tvm_wm, timer=FakeTimer(default_win=True)),
                             options={"trials": 0, "matmul": "auto", "cache_dir": str(tmp_path)})
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
    # its own kernels on the calling thread in the race too, as after it is loaded
    assert seen == {"tvm": "tvm", "pytorch": "pytorch"}
