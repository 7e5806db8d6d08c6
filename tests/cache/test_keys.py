"""Cache keys name what changes an artifact: equal subgraphs share one, new package source misses."""
import shutil

import torch

import torch_wm_backend
from torch_wm_backend.cache import graph_hash, source_hash, versions
from torch_wm_backend.cache.versions import PACKAGE_DIR


def blocks(n):
    return torch.nn.Sequential(*[m for _ in range(n) for m in (torch.nn.Linear(8, 8), torch.nn.ReLU())]).eval()


def test_equal_blocks_at_different_depths_share_one_entry(tmp_path):
    # 4 blocks, 4 subgraphs: the middle two are equal (each also transposes the next weight,
    # the first its own too, the last none)
    model, x = blocks(4), torch.randn(2, 8)
    options = {"trials": 0, "cache_dir": str(tmp_path), "eager_guard": False}
    with torch.no_grad():
        got = torch.compile(model, backend="tvm_wm", options=options)(x)
    torch.testing.assert_close(got, model(x))
    stats = torch_wm_backend.stats()
    assert stats["subgraphs_compiled"] == 4
    assert stats["cache_misses"] == 3 and stats["cache_hits"] == 1
    assert len(list((tmp_path / "artifacts").iterdir())) == 3


def test_the_graph_hash_ignores_node_names_but_not_structure():
    def traced(fn):
        return torch.fx.symbolic_trace(fn)

    a = traced(lambda x, w: torch.relu(x @ w))
    b = traced(lambda inp, weight: torch.relu(inp @ weight))
    c = traced(lambda x, w: torch.sigmoid(x @ w))
    assert graph_hash(a) == graph_hash(b)
    assert graph_hash(a) != graph_hash(c)


def test_constants_are_keyed_by_value():
    class AddConst(torch.nn.Module):
        def __init__(self, value):
            super().__init__()
            self.register_buffer("c", torch.full((4,), value))

        def forward(self, x):
            return x + self.c

    one, two = torch.fx.symbolic_trace(AddConst(1.0)), torch.fx.symbolic_trace(AddConst(2.0))
    assert graph_hash(one) != graph_hash(two)


def test_the_package_source_is_in_the_key(tmp_path):
    copy = tmp_path / "pkg"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "weights"))
    assert source_hash(copy) == source_hash(PACKAGE_DIR)
    (copy / "pipeline.py").write_text((copy / "pipeline.py").read_text() + "\n# changed\n")
    assert source_hash(copy) != source_hash(PACKAGE_DIR)
    assert versions()["torch_wm_backend"] == source_hash(PACKAGE_DIR)


def test_an_entry_built_by_other_package_source_is_rebuilt(tmp_path):
    from torch_wm_backend.cache import ArtifactStore

    model, x = blocks(1), torch.randn(2, 8)
    options = {"trials": 0, "cache_dir": str(tmp_path), "eager_guard": False}
    with torch.no_grad():
        torch.compile(model, backend="tvm_wm", options=options)(x)
    store = ArtifactStore(tmp_path)
    (entry,) = store.entries()
    # the same entry as another source of the package would have keyed it
    parts = {**entry.parts, "versions": {**entry.parts["versions"], "torch_wm_backend": "other"}}
    store.put(parts, {name: path.read_bytes() for name, path in entry.files.items()}, entry.extra)
    (store.root / "artifacts" / entry.key).rename(tmp_path / "moved")  # only the other one left
    torch._dynamo.reset()
    torch_wm_backend.reset_stats()
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, backend="tvm_wm", options=options)(x), model(x))
    stats = torch_wm_backend.stats()
    assert stats["cache_hits"] == 0 and stats["cache_misses"] == 1 and stats["subgraphs_compiled"] == 1
