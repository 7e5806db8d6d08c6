import subprocess
import sys
from pathlib import Path

NETWORK = Path(__file__).parents[2] / "torch_wm_backend" / "world_model" / "network.py"


def test_network_module_imports_no_tvm():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('wm_network', {str(NETWORK)!r})\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules['wm_network'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "mod.WorldModel(mod.WMConfig())\n"
        "bad = [m for m in sys.modules if m == 'tvm' or m.startswith('tvm.')]\n"
        "assert not bad, bad[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_large_batch_is_scored_as_a_cascade():
    import torch

    from torch_wm_backend.world_model.network import Ensemble, WMConfig, WorldModel

    cfg = WMConfig()
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        m = WorldModel(cfg).eval()
        with torch.no_grad():
            m.t_out.weight.normal_(0, 0.05)
        members.append(m)
    n, length = 40, 6
    g = torch.Generator().manual_seed(0)
    args = (torch.randn(1, cfg.state_dim, generator=g), torch.randint(2, cfg.num_kinds, (n, length), generator=g),
            torch.randint(0, cfg.num_attrs, (n, length), generator=g),
            torch.randn(n, length, cfg.num_feats, generator=g), torch.ones(n, length), torch.randn(1, cfg.hw_dim, generator=g))
    seen = []
    for m in members[1:]:
        m.register_forward_pre_hook(lambda mod, inp: seen.append(inp[1].shape[0]))
    with torch.no_grad():
        each = torch.stack([m(*args) for m in members])
        seen.clear()
        out = Ensemble(members, shortlist=0.1, min_shortlist=8).eval()(*args)
        top = torch.topk(each[0], 8).indices
        rest = torch.ones(n, dtype=torch.bool)
        rest[top] = False
        assert seen == [8, 8], "the other members score only the shortlist"
        torch.testing.assert_close(out[top], each[:, top].mean(0))
        assert out[rest].max() <= out[top].min()          # the shortlist ranks first
        assert torch.equal(torch.argsort(out[rest]), torch.argsort(each[0][rest]))  # the rest: first member's order
        full = Ensemble(members, shortlist=0.1, min_shortlist=n).eval()(*args)  # small batch: all
        torch.testing.assert_close(full, each.mean(0))
