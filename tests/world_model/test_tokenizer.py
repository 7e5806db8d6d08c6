import numpy as np

from torch_wm_backend.world_model import state, tokenizer
from torch_wm_backend.world_model.tokenizer import vocab
from torch_wm_backend.world_model.tokenizer.walk import Walk


def _tok(ctx, cand):
    info = state.task_info(ctx.mod, ctx.target)
    return tokenizer.tokenize(str(cand.sch.trace), info.blocks)


def test_tokenizer_is_deterministic(cpu_task):
    ctx, cands = cpu_task
    a, b = _tok(ctx, cands[0]), _tok(ctx, cands[0])
    assert np.array_equal(a.kinds, b.kinds) and np.array_equal(a.attrs, b.attrs)
    assert np.array_equal(a.feats, b.feats)


def test_cpu_and_cuda_traces_have_no_unknown_kinds(cpu_task, cuda_task):
    for ctx, cands in (cpu_task, cuda_task):
        for cand in cands:
            tok = _tok(ctx, cand)
            assert len(tok) > 0
            assert tok.num_unknown == 0
            assert (tok.kinds != tokenizer.UNK).all()
            assert tok.feats[:, 0].max() == 1.0, "post-processing part must be kept and flagged"
            assert np.isfinite(tok.feats).all()


def test_cuda_tokens_carry_thread_bindings(cuda_task):
    ctx, cands = cuda_task
    attrs = set(np.concatenate([_tok(ctx, c).attrs for c in cands]).tolist())
    assert tokenizer.ATTR_IDS["threadIdx.x"] in attrs and tokenizer.ATTR_IDS["blockIdx.x"] in attrs


def test_getters_and_samplers_emit_no_tokens_and_decisions_are_folded():
    text = "\n".join([
        '  b0 = sch.get_sblock(name="dense", func_name="main")',
        "  l1, l2, l3 = sch.get_loops(block=b0)",
        "  v4, v5 = sch.sample_perfect_tile(loop=l1, n=2, max_innermost_factor=64, decision=[4, 16])",
        "  l6, l7 = sch.split(loop=l1, factors=[v4, v5], preserve_unit_iters=True)",
        "  v8 = sch.sample_categorical(candidates=[0, 16, 64], probs=[0.3, 0.3, 0.4], decision=2)",
        '  sch.annotate(block_or_loop=b0, ann_key="meta_schedule.unroll_explicit", ann_val=v8)',
        "  sch.frobnicate(loop=l6)",
    ])
    info = {"dense": {"extents": [64, 128, 96], "reduce": [0.0, 0.0, 1.0], "is_reduction": True}}
    tok = tokenizer.tokenize(text, info)
    assert tok.kinds.tolist() == [tokenizer.KIND_IDS["split"], tokenizer.KIND_IDS["annotate"],
                                  tokenizer.UNK]
    assert tok.num_unknown == 1
    assert tok.feats[0, vocab.FACTORS:vocab.FACTORS + 2].tolist() == [2.0, 4.0]   # log2 factors
    assert tok.feats[0, vocab.LOOP_EXTENT] == np.float32(np.log2(65))   # the split loop's extent
    assert tok.attrs[1] == tokenizer.ATTR_IDS["meta_schedule.unroll_explicit"]
    assert tok.feats[1, vocab.ANN_VALUE] == np.float32(np.log2(65))    # the categorical *value*, 64
    # the slots' positions are the shipped weights' input layout
    assert (vocab.FACTORS, vocab.LOOP_EXTENT, vocab.ANN_VALUE, vocab.EXTENT_KNOWN) == (2, 17, 9, 23)


def test_tokenize_many_equals_one_by_one_and_shares_passes(cpu_task, cuda_task):
    import re

    shared = False
    for ctx, cands in (cpu_task, cuda_task):
        info = state.task_info(ctx.mod, ctx.target)
        texts = [str(c.sch.trace) for c in cands]
        shared |= len({re.sub(r"decision=(\[[^\]]*\]|-?\d+)", "", t) for t in texts}) < len(texts)
        many = tokenizer.tokenize_many(texts, info.blocks)
        for text, got in zip(texts, many):
            want = tokenizer.tokenize(text, info.blocks)
            assert np.array_equal(got.kinds, want.kinds) and np.array_equal(got.attrs, want.attrs)
            assert np.array_equal(got.inst_index, want.inst_index)
            assert np.array_equal(got.feats, want.feats)
    assert shared, "no two traces shared a structure: the batched pass was not exercised"


def test_tokenize_many_falls_back_where_decisions_do_not_read_as_columns():
    base = "\n".join([
        '  b0 = sch.get_sblock(name="dense", func_name="main")',
        "  l1, l2 = sch.get_loops(block=b0)",
        "  v3, v4 = sch.sample_perfect_tile(loop=l1, n=2, max_innermost_factor=64, decision={})",
        "  l5, l6 = sch.split(loop=l1, factors=[v3, v4], preserve_unit_iters=True)",
        "  v7 = sch.sample_categorical(candidates=[0, 16, 64], probs=[0.3, 0.3, 0.4], decision={})",
        '  sch.annotate(block_or_loop=b0, ann_key="meta_schedule.unroll_explicit", ann_val=v7)',
    ])
    info = {"dense": {"extents": [64, 128], "reduce": [0.0, 0.0], "is_reduction": False}}
    texts = [base.format("[4, 16]", 0), base.format("[8, 8]", 2), base.format("[2, 32]", 1)]
    many = tokenizer.tokenize_many(texts, info)
    assert [m.feats[0, 2:4].tolist() for m in many] == [[2.0, 4.0], [3.0, 3.0], [1.0, 5.0]]
    assert [m.feats[1, 10].tolist() for m in many] == [0.0, 1.0, 0.5]
    # a decision printed in a form the pattern does not take as a column: tokenized one by one
    odd = [base.format("[4, 16]", "T.int64(1)"), base.format("[8, 8]", "T.int64(1)")]
    assert [m.feats.tolist() for m in tokenizer.tokenize_many(odd, info)] == \
        [tokenizer.tokenize(t, info).feats.tolist() for t in odd]


def test_structures_are_walked_as_a_prefix_tree(cpu_task, monkeypatch):
    import re

    ctx, cands = cpu_task
    info = state.task_info(ctx.mod, ctx.target)
    texts = [str(c.sch.trace) for c in cands]
    steps = []
    real = Walk.step
    monkeypatch.setattr(Walk, "step", lambda self, inst: steps.append(1) or real(self, inst))
    many = tokenizer.tokenize_many(texts, info.blocks)
    structures = {re.sub(r"decision=(\[[^\]]*\]|-?\d+)", "", t): t for t in texts}
    lines = sum(len(tokenizer.parse_trace_text(t)) for t in structures.values())
    assert len(structures) > 1 and len(steps) < lines / 2, (len(steps), lines)
    for text, got in zip(texts, many):
        assert np.array_equal(got.feats, tokenizer.tokenize(text, info.blocks).feats)


def test_records_that_do_not_match_the_text_are_reported():
    text = "  v3, v4 = sch.sample_perfect_tile(loop=l1, n=2, max_innermost_factor=64, decision=[4, 16])"
    ok = tokenizer.tokenize_structures([text], [np.array([[2, 8, 8]])])
    assert len(ok) == 1 and len(ok[0]) == 1
    # a scalar where the text has a list of two: None, the caller tokenizes those traces' texts
    assert tokenizer.tokenize_structures([text, text], [np.array([[2, 8, 8]]), np.array([[0, 3]])]) \
        [1] is None


def test_feature_slots_name_each_feature_once():
    slots = {name: getattr(vocab, name) for name in (
        "POSTPROC", "POSITION", "NUM_FACTORS", "FACTOR_MISSING", "ANN_VALUE", "ANN_FRACTION",
        "AT_ROOT", "AT_INLINE", "AT_LOOP", "LITERAL", "LOOP_POSITION", "NEST_DEPTH", "LOOP_EXTENT",
        "LOOP_REDUCE", "BLOCK_ORDER", "BLOCK_REDUCTION", "NUM_LOOPS", "LOOPS_EXTENT", "EXTENT_KNOWN")}
    factors = list(range(vocab.FACTORS, vocab.FACTORS + vocab.MAX_FACTORS))
    assert sorted([*slots.values(), *factors]) == list(range(vocab.NUM_FEATS))


def test_a_decision_the_records_cannot_hold_is_read_from_the_text():
    text = "\n".join([
        '  b0 = sch.get_sblock(name="dense", func_name="main")',
        "  l1, l2 = sch.get_loops(block=b0)",
        "  v3, v4 = sch.sample_perfect_tile(loop=l1, n=2, max_innermost_factor=64, decision=[None, 16])",
        "  l5, l6 = sch.split(loop=l1, factors=[v3, v4], preserve_unit_iters=True)",
    ])
    info = {"dense": {"extents": [64, 128], "reduce": [0.0, 0.0], "is_reduction": False}}
    (tok,) = tokenizer.tokenize_many([text], info)
    # the unknown factor is inferred from the loop's extent: 64 / 16
    assert tok.feats[0, vocab.FACTORS:vocab.FACTORS + 2].tolist() == [2.0, 4.0]
    assert tok.feats[0, vocab.FACTOR_MISSING] == 1.0
