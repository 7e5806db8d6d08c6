"""Frozen inference weights: batch norm folds into the convolution's kernel, the module does not
hold the weights, and a weight changed after compiling gives the new result."""
import functools
import os
import sys

import torch

import torch_wm_backend
from torch_wm_backend.backend import tvm_wm
from torch_wm_backend.build import build
from torch_wm_backend.lower import to_relax
from torch_wm_backend.lower.freeze import exported
from torch_wm_backend.lower.importer import chosen_layout
from torch_wm_backend.lower.target import cpu_target
from torch_wm_backend.runtime.kernel import kernel_for
from torch_wm_backend.tune.tasks import prepare

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "select"))
from fake_timer import FakeTimer  # noqa: E402


def conv_bn_relu():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
                                torch.nn.BatchNorm2d(8), torch.nn.ReLU()).eval()
    with torch.no_grad():  # running statistics that are not 0 and 1
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return model, torch.randn(1, 4, 12, 12)


def test_batch_norm_folds_into_the_convolution_kernel():
    model, x = conv_bn_relu()
    gm, args, weights = exported(model, (x,))
    kernels = [gv.name_hint for gv, f in prepare(to_relax(gm, args, weights)).functions.items()
               if gv.name_hint != "main" and "transform_params" not in gv.name_hint]
    heavy = [k for k in kernels if "conv2d" in k]
    assert len(heavy) == 2 and all("relu" in k for k in heavy), kernels  # conv+BN+ReLU: one each
    assert not any("batch_norm" in k for k in kernels), kernels
    unfrozen = [gv.name_hint for gv in prepare(to_relax(gm, args)).functions]
    assert any("batch_norm" in k for k in unfrozen)  # weights as inputs: a kernel of its own


def prepared_once_and_again(kernel, model, x, args, weights):
    """Right twice with one preparation of the weights, then right after one changes in place."""
    with torch.no_grad():
        for _ in range(2):
            torch.testing.assert_close(kernel(args)[0], model(x), atol=1e-4, rtol=1e-4)
        assert torch_wm_backend.stats()["weights_prepared"] == 1
        args[weights[0]].mul_(-1)  # the model's own conv weight, in place
        torch.testing.assert_close(kernel(args)[0], model(x), atol=1e-4, rtol=1e-4)
    assert torch_wm_backend.stats()["weights_prepared"] == 2


def test_the_module_prepares_weights_once_and_again_after_they_change():
    model, x = conv_bn_relu()
    gm, args, weights = exported(model, (x,))
    kernel = kernel_for(build(to_relax(gm, args, weights), cpu_target()), torch.device("cpu"), weights)
    prepared_once_and_again(kernel, model, x, args, weights)
    assert torch_wm_backend.stats()["prepared_weight_bytes"] > 0


def test_a_compiled_model_whose_weights_change_in_place_gives_the_new_result():
    model, x = conv_bn_relu()
    timer = FakeTimer(default_win=True)  # the whole graph, frozen, wins its race
    compiled = torch.compile(model, backend=functools.partial(tvm_wm, timer=timer),
                             options={"trials": 0, "cache_dir": None})
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-4, rtol=1e-4)
        before = torch_wm_backend.stats()
        assert before["graphs_kept_compiled"] == 1 and before["weights_prepared"] >= 1
        model[0].weight.mul_(2)
        model[1].running_mean.add_(0.5)
        torch.testing.assert_close(compiled(x), model(x), atol=1e-4, rtol=1e-4)
        model.load_state_dict({k: v * 0.5 for k, v in model.state_dict().items()})
        torch.testing.assert_close(compiled(x), model(x), atol=1e-4, rtol=1e-4)
    after = torch_wm_backend.stats()
    assert after["kernel_calls"] - before["kernel_calls"] == 2  # TVM ran, one module per call
    assert after["weights_prepared"] - before["weights_prepared"] == 2


def test_tuning_goes_to_the_one_module_where_there_is_one(tmp_path):
    model, x = conv_bn_relu()
    timer = FakeTimer(default_win=True)
    # PyTorch's layout: channels-last ("auto") would add the module's two edge transposes as tasks
    compiled = torch.compile(model, backend=functools.partial(tvm_wm, timer=timer),
                             options={"trials": 1, "cost_model": "random", "cache_dir": str(tmp_path),
                                      "layout": "NCHW"})
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-4, rtol=1e-4)
    stats = torch_wm_backend.stats()
    # the module only: the partitioned graph, a candidate with default schedules, is built only if
    # the module loses; its two conv+BN+ReLU kernels are what was tuned
    assert stats["subgraphs_compiled"] == 1 and stats["subgraphs_failed"] == 0
    assert stats["tasks_tuned"] == 2 and stats["graphs_kept_compiled"] == 1


def test_a_warm_start_of_a_one_module_choice_traces_nothing_and_stays_right(tmp_path):
    model, x = conv_bn_relu()
    options = {"trials": 0, "cache_dir": str(tmp_path)}
    cold = torch.compile(model, backend=functools.partial(tvm_wm, timer=FakeTimer(default_win=True)),
                         options=options)
    with torch.no_grad():
        cold(x)
    assert torch_wm_backend.stats()["graphs_one_module"] == 1
    torch._dynamo.reset()
    torch_wm_backend.reset_stats()
    again = FakeTimer(default_win=False)  # would choose PyTorch if it were asked
    warm = torch.compile(model, backend=functools.partial(tvm_wm, timer=again), options=options)
    with torch.no_grad():
        torch.testing.assert_close(warm(x), model(x), atol=1e-4, rtol=1e-4)
        model[0].weight.mul_(2)  # the weights are still the user's
        torch.testing.assert_close(warm(x), model(x), atol=1e-4, rtol=1e-4)
    stats = torch_wm_backend.stats()
    assert stats["graphs_compiled"] == 0 and again.compared == []  # no ATen graph, no race
    assert stats["graphs_one_module"] == 1 and stats["kernel_calls"] == 2
    assert stats["weights_prepared"] == 2


def test_nhwc_converts_the_modules_convolutions_and_stays_right():
    model, x = conv_bn_relu()
    gm, args, weights = exported(model, (x,))
    channels_last = "(1, 12, 12, 8)"  # the convolutions' outputs, inside the module
    assert channels_last in to_relax(gm, args, weights, "NHWC").script()
    assert channels_last not in to_relax(gm, args, weights).script()
    compiled = torch.compile(model, backend=functools.partial(tvm_wm, timer=FakeTimer(default_win=True)),
                             options={"trials": 0, "cache_dir": None, "layout": "NHWC"})
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-4, rtol=1e-4)
        model[0].weight.mul_(-1)  # the transposed weights are prepared again
        torch.testing.assert_close(compiled(x), model(x), atol=1e-4, rtol=1e-4)
    assert torch_wm_backend.stats()["graphs_one_module"] == 1


def test_a_relu6_between_channels_last_convolutions_needs_no_transposes():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU6(),
                                torch.nn.Conv2d(8, 8, 3, groups=8), torch.nn.ReLU6()).eval()
    x = torch.randn(1, 3, 14, 14)
    gm, args, weights = exported(model, (x,))
    nchw, nhwc = (to_relax(gm, args, weights, layout) for layout in ("NCHW", "NHWC"))
    assert "clip" in nhwc["main"].script()
    # the first clip stays channels-last: the module's only transposes are the input's and the
    # output's (before the last clip), where ConvertLayout alone put two more around the first clip
    assert str(nhwc["main"]).count("transpose") == str(nchw["main"]).count("transpose") + 2
    kernel = kernel_for(build(nhwc, cpu_target()), torch.device("cpu"), weights)
    with torch.no_grad():
        torch.testing.assert_close(kernel(args)[0], model(x), atol=1e-5, rtol=1e-5)


def test_auto_layout_is_channels_last_for_convolutions_on_the_cpu_only():
    model, x = conv_bn_relu()
    gm, args, weights = exported(model, (x,))
    assert "(1, 12, 12, 8)" in to_relax(gm, args, weights, "auto").script()
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()).eval()
    gm, args, weights = exported(mlp, (torch.randn(2, 8),))
    assert chosen_layout("auto", gm, args) == "NCHW"
    assert chosen_layout("NHWC", gm, args) == "NHWC"  # asked for: kept (no convolution to convert)


def test_tuned_weight_layouts_are_prepared_once_with_the_weights():
    # with weight_layouts, MetaSchedule's RewriteLayout gives a tuned kernel's weights the layout its
    # loops read; the build moves that layout change into the weights' preparation (prepack)
    from tvm.s_tir import meta_schedule as ms

    from torch_wm_backend.settings import Settings
    from torch_wm_backend.tune import tune

    model, x = conv_bn_relu()
    gm, args, weights = exported(model, (x,))
    default = [f for gv, f in prepare(to_relax(gm, args, weights)).functions.items()
               if "conv2d" in gv.name_hint]
    assert all("layout_free_buffers" not in f.attrs for f in default)  # off by default
    mod = to_relax(gm, args, weights, weight_layouts=True)
    convs = [f for gv, f in prepare(mod).functions.items() if "conv2d" in gv.name_hint]
    assert len(convs) == 2 and all(len(f.attrs["layout_free_buffers"]) > 0 for f in convs)
    database = ms.database.MemoryDatabase()
    tune([mod], cpu_target(), Settings.from_options({"trials": 2, "cost_model": "random"}),
         database, None, "layouts")
    executable = build(mod, cpu_target(), database)
    assert "main_transform_params_layouts" in executable.as_text()
    prepared_once_and_again(kernel_for(executable, torch.device("cpu"), weights), model, x, args,
                            weights)
