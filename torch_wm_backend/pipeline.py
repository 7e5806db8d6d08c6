"""One subgraph, one input signature: lower -> tune -> build -> guard. The stages, in order."""
from __future__ import annotations

import logging

import torch

from . import counters
from .build import build
from .errors import TvmWmError
from .lower import target_for, to_relax
from .runtime.guard import faster_is_tvm
from .runtime.kernel import Kernel
from .runtime.subgraph import device_of
from .settings import Settings

log = logging.getLogger("torch_wm_backend")


def compile_subgraph(name: str, eager: torch.fx.GraphModule, args: list, settings: Settings):
    """A Kernel for these inputs, or "eager" when TVM cannot build one or is slower."""
    device = device_of(args)
    try:
        kernel = _build_kernel(eager, args, device, settings)
    except TvmWmError:
        raise
    except Exception as err:  # a TVM failure must never break the user's model
        if settings.strict:
            raise TvmWmError(f"{name}: TVM failed to compile this subgraph: {err}") from err
        log.warning("%s: TVM failed (%s: %s); it runs in PyTorch", name, type(err).__name__,
                    str(err).splitlines()[0] if str(err) else "")
        counters.bump("guard_kept_eager")
        return "eager"
    counters.bump("subgraphs_compiled")
    if not settings.eager_guard:
        return kernel
    tensors = [a.to(device).contiguous() for a in args if isinstance(a, torch.Tensor)]
    tvm_wins, t_tvm, t_eager = faster_is_tvm(lambda: kernel(tensors), lambda: eager(*args), device)
    counters.bump("guard_kept_tvm" if tvm_wins else "guard_kept_eager")
    log.info("%s: tvm %.3f ms, eager %.3f ms -> %s", name, t_tvm * 1e3, t_eager * 1e3,
             "tvm" if tvm_wins else "eager")
    return kernel if tvm_wins else "eager"


def _build_kernel(eager, args, device, settings) -> Kernel:
    mod = to_relax(eager, args)
    target = target_for(device)
    database = None
    if settings.trials > 0:
        from .tune import tune

        database = tune(mod, target, settings)
    return Kernel(build(mod, target, database), device)
