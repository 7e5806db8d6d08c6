import numpy as np

from torch_wm_backend.world_model import state, tokenizer


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
    assert tok.feats[0, 2:4].tolist() == [2.0, 4.0]       # log2 of the tile factors
    assert tok.feats[0, 17] == np.float32(np.log2(65))    # extent of the split loop
    assert tok.attrs[1] == tokenizer.ATTR_IDS["meta_schedule.unroll_explicit"]
    assert tok.feats[1, 9] == np.float32(np.log2(65))     # the categorical *value*, 64
