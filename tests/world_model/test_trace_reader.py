"""The C++ trace reader: structure keys and decisions read without printing, and the tokens the
world model gets through it equal those of the printed traces (CPU and CUDA design spaces)."""
import contextlib
import re

import numpy as np
import pytest

from torch_wm_backend.world_model import WorldModelCostModel, state, tokenizer, trace_reader

_DECISION = re.compile(r"decision=(\[[^\]]*\]|-?\d+)")
needs_reader = pytest.mark.skipif(not trace_reader.available(), reason="no C++ compiler here")


def _same(a, b):
    return (np.array_equal(a.kinds, b.kinds) and np.array_equal(a.attrs, b.attrs)
            and np.array_equal(a.inst_index, b.inst_index) and np.array_equal(a.feats, b.feats))


@needs_reader
def test_keys_and_decisions_match_the_printed_traces(cpu_task, cuda_task):
    for _, cands in (cpu_task, cuda_task):
        traces = [c.sch.trace for c in cands]
        read = trace_reader.read(traces)
        texts = [str(t) for t in traces]
        assert (read.keys != 0).all()
        by_key: dict = {}
        for key, text in zip(read.keys.tolist(), texts):
            by_key.setdefault(key, set()).add(_DECISION.sub("", text))
        assert all(len(v) == 1 for v in by_key.values()), "one key, two structures"
        assert len(by_key) == len({_DECISION.sub("", t) for t in texts}), "one structure, two keys"
        for i, text in enumerate(texts):
            printed = [tokenizer.decision_records([_DECISION.findall(text)])[0]]
            np.testing.assert_array_equal(read.record(i), printed[0])


@pytest.mark.parametrize("reader", [True, False])
def test_predict_tokens_equal_printed_tokens(cpu_task, cuda_task, reader):
    if reader and not trace_reader.available():
        pytest.skip("no C++ compiler here")
    for ctx, cands in (cpu_task, cuda_task):
        info = state.task_info(ctx.mod, ctx.target)
        model = WorldModelCostModel()
        with contextlib.nullcontext() if reader else trace_reader.disabled():
            got = model._tokens(info, [c.sch.trace for c in cands])
        for c, tok in zip(cands, got):
            assert _same(tok, tokenizer.tokenize(str(c.sch.trace), info.blocks))


@needs_reader
def test_one_trace_is_printed_per_structure(cpu_task, monkeypatch):
    ctx, cands = cpu_task
    seen = []
    real = tokenizer.tokenize_structures
    monkeypatch.setattr(tokenizer, "tokenize_structures",
                        lambda texts, records, blocks=None: seen.append((texts, records))
                        or real(texts, records, blocks))
    WorldModelCostModel().predict(ctx, cands)
    (texts, records), = seen
    structures = {_DECISION.sub("", str(c.sch.trace)) for c in cands}
    assert len(texts) == len(structures) < len(cands)
    assert sum(len(r) for r in records) == len({str(c.sch.trace) for c in cands})


def test_disabled_reader_reads_nothing_and_comes_back(cpu_task):
    traces = [c.sch.trace for c in cpu_task[1][:2]]
    with trace_reader.disabled():
        assert trace_reader.read(traces) is None
    assert (trace_reader.read(traces) is not None) == trace_reader.available()
