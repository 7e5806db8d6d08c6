import numpy as np
import pytest
import torch
import tvm
from tvm.s_tir import meta_schedule as ms

import torch_wm_backend
from torch_wm_backend.world_model import WorldModelCostModel, create_cost_model, state


def _pairwise_accuracy(scores, costs):
    s, c = np.asarray(scores), np.asarray(costs)
    i, j = np.triu_indices(len(c), 1)
    keep = c[i] != c[j]
    return float(((s[i] > s[j]) == (c[i] < c[j]))[keep].mean())


def _synthetic_costs(cands):
    """A deterministic 'run time' that depends on the schedule: bigger unroll and more
    parallel-friendly tilings are faster."""
    costs = []
    for c in cands:
        text = str(c.sch.trace)
        unroll = text.count('"meta_schedule.unroll_explicit"')
        decisions = sum(len(line) for line in text.splitlines() if "decision=" in line)
        costs.append(1.0 + decisions % 97 + 10 * unroll)
    return np.asarray(costs, dtype=float)


def _Result(secs):
    return ms.runner.RunnerResult(run_secs=[tvm.tirx.FloatImm("float32", secs)], error_msg=None)


def test_save_load_round_trip_gives_identical_scores(cpu_task, tmp_path):
    ctx, cands = cpu_task
    model = WorldModelCostModel(seed=1)
    before = model.predict(ctx, cands)
    model.save(str(tmp_path / "wm.pt"))
    again = WorldModelCostModel(seed=2)
    again.load(str(tmp_path / "wm.pt"))
    assert np.array_equal(before, again.predict(ctx, cands))
    assert before.dtype == np.float64 and before.shape == (len(cands),)


def test_an_ensemble_saves_loads_and_scores_as_its_members_mean(cpu_task, tmp_path):
    from torch_wm_backend.world_model import adapter
    from torch_wm_backend.world_model.network import Ensemble

    ctx, cands = cpu_task
    members = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        m = WorldModelCostModel(seed=seed).net
        with torch.no_grad():
            m.t_out.weight.normal_(0, 0.05)
        members.append(m)
    logits = [np.log(s / (1 - s)) for s in (WorldModelCostModel(m).predict(ctx, cands) for m in members)]
    model = WorldModelCostModel(Ensemble(members))
    scores = model.predict(ctx, cands)
    assert np.allclose(np.log(scores / (1 - scores)), (logits[0] + logits[1]) / 2, atol=1e-4)
    model.save(str(tmp_path / "ens.pt"))
    again = WorldModelCostModel()
    again.load(str(tmp_path / "ens.pt"))
    assert isinstance(again.net, Ensemble) and len(again.net.members) == 2
    assert np.array_equal(scores, again.predict(ctx, cands))
    adapter.save_weights(model.net, tmp_path / "ens_half.pt", half=True)  # shipped: no dynamics head
    assert not any("dyn_head" in k for sd in torch.load(tmp_path / "ens_half.pt")["members"] for k in sd)
    assert adapter.load_weights(tmp_path / "ens_half.pt").members[0].dyn_head is not None


def test_shipped_half_precision_weights_keep_the_ranking(cpu_task, tmp_path):
    from torch_wm_backend.world_model import adapter

    ctx, cands = cpu_task
    model = WorldModelCostModel(seed=1)   # not the shipped weights: those are float16 already
    with torch.no_grad():
        model.net.t_out.weight.normal_(0, 0.05)  # a transition that moves (it starts at zero)
    full = model.predict(ctx, cands)
    adapter.save_weights(model.net, tmp_path / "full.pt")
    adapter.save_weights(model.net, tmp_path / "half.pt", half=True)
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size
    half = WorldModelCostModel(adapter.load_weights(tmp_path / "half.pt")).predict(ctx, cands)
    assert next(adapter.load_weights(tmp_path / "half.pt").parameters()).dtype == torch.float32
    assert not np.array_equal(full, half)                       # it did round
    assert _pairwise_accuracy(half, -full) > 0.97               # and kept the order


def test_predict_runs_no_per_candidate_feature_extraction(cpu_task, monkeypatch):
    ctx, cands = cpu_task
    calls = []
    real = ms.feature_extractor.PerStoreFeature.extract_from
    monkeypatch.setattr(ms.feature_extractor.PerStoreFeature, "extract_from",
                        lambda self, c, x: calls.append(len(x)) or real(self, c, x))
    state.clear_cache()
    model = WorldModelCostModel()
    model.predict(ctx, cands)
    model.predict(ctx, cands)
    assert calls == [1], "one extraction of the unscheduled program per task, none per candidate"
    counts = torch_wm_backend.stats()
    assert counts["wm_feature_extractions"] == 1 and counts["wm_task_info_misses"] == 1
    assert counts["wm_task_info_hits"] >= 1


def test_each_distinct_trace_is_tokenized_once(cpu_task, monkeypatch):
    from torch_wm_backend.world_model import tokenizer

    ctx, cands = cpu_task
    counted = []   # traces tokenized, through the C++ reader's path or the printing one
    structures, many = tokenizer.tokenize_structures, tokenizer.tokenize_many
    monkeypatch.setattr(tokenizer, "tokenize_structures", lambda texts, records, blocks=None:
                        counted.append(sum(map(len, records))) or structures(texts, records, blocks))
    monkeypatch.setattr(tokenizer, "tokenize_many", lambda texts, blocks=None:
                        counted.append(len(texts)) or many(texts, blocks))
    model = WorldModelCostModel()
    first = model.predict(ctx, cands)
    again = model.predict(ctx, cands)  # evolutionary search re-scores survivors
    assert counted[0] == len({str(c.sch.trace) for c in cands}) and sum(counted[1:]) == 0
    np.testing.assert_array_equal(first, again)


def test_update_raises_pairwise_accuracy_on_the_running_task(cpu_task):
    ctx, cands = cpu_task
    costs = _synthetic_costs(cands)
    model = WorldModelCostModel(seed=0, online_steps=60, lr=3e-3)
    before = _pairwise_accuracy(model.predict(ctx, cands), costs)
    model.update(ctx, cands, [_Result(c) for c in costs])
    after = _pairwise_accuracy(model.predict(ctx, cands), costs)
    assert after > max(before, 0.6) + 0.1, (before, after)


def test_the_ridge_update_fits_the_running_task_and_leaves_the_rest_alone(cpu_task, other_cpu_task):
    (ctx, cands), (other, other_cands) = cpu_task, other_cpu_task
    costs = _synthetic_costs(cands)
    model = WorldModelCostModel(seed=0, online="ridge")
    prior = [p.clone() for p in model.net.parameters()]
    before, other_before = model.predict(ctx, cands), model.predict(other, other_cands)
    model.update(ctx, cands[:3], [_Result(c) for c in costs[:3]])   # too few to fit: the prior's
    np.testing.assert_array_equal(model.predict(ctx, cands), before)
    model.update(ctx, cands[3:], [_Result(c) for c in costs[3:]])
    after = model.predict(ctx, cands)
    assert np.all(after > 0)   # evolutionary search samples in proportion to the scores
    assert _pairwise_accuracy(after, costs) > _pairwise_accuracy(before, costs) + 0.1
    np.testing.assert_array_equal(model.predict(other, other_cands), other_before)
    assert all(torch.equal(p, q) for p, q in zip(model.net.parameters(), prior))
    with pytest.raises(ValueError, match="online="):
        WorldModelCostModel(online="xgb")


def test_a_tasks_measurements_tune_its_own_copy_not_the_prior_nor_another_task(cpu_task,
                                                                             other_cpu_task):
    """Tasks of one search share the cost model: fine-tuning on one task's measurements must not
    steer another task's search, nor change the trained weights the next task starts from."""
    (ctx, cands), (other, other_cands) = cpu_task, other_cpu_task
    model = WorldModelCostModel(seed=0, online_steps=20, lr=3e-3)
    prior = [p.clone() for p in model.net.parameters()]
    before, other_before = model.predict(ctx, cands), model.predict(other, other_cands)
    model.update(ctx, cands, [_Result(c) for c in _synthetic_costs(cands)])
    assert not np.allclose(model.predict(ctx, cands), before)
    np.testing.assert_array_equal(model.predict(other, other_cands), other_before)
    assert all(torch.equal(p, q) for p, q in zip(model.net.parameters(), prior))


def test_the_prior_pull_keeps_a_tasks_copy_nearer_the_trained_weights(cpu_task):
    ctx, cands = cpu_task
    results = [_Result(c) for c in _synthetic_costs(cands)]
    moved = []
    for weight in (0.0, 1.0):
        model = WorldModelCostModel(seed=0, online_steps=20, lr=3e-3, prior_weight=weight)
        model.update(ctx, cands, results)
        tuned = model.net_for(state.task_info(ctx.mod, ctx.target).key)
        assert tuned is not model.net
        moved.append(sum(float(((p - q) ** 2).sum().detach()) for p, q in zip(tuned.parameters(),
                                                                      model.net.parameters())))
    assert 0 < moved[1] < 0.5 * moved[0], moved


def test_a_task_whose_copy_was_evicted_is_refitted_from_its_measurements(cpu_task, other_cpu_task,
                                                                        monkeypatch):
    from torch_wm_backend.world_model import adapter

    monkeypatch.setattr(adapter, "_TUNED_TASKS", 1)
    (ctx, cands), (other, other_cands) = cpu_task, other_cpu_task
    model = WorldModelCostModel(seed=0, online_steps=10, lr=3e-3)
    prior_scores = model.predict(ctx, cands)
    model.update(ctx, cands, [_Result(c) for c in _synthetic_costs(cands)])
    tuned = model.predict(ctx, cands)
    model.update(other, other_cands, [_Result(c) for c in _synthetic_costs(other_cands)])  # evicts
    again = model.predict(ctx, cands)
    assert not np.allclose(again, prior_scores)
    np.testing.assert_allclose(again, tuned, rtol=1e-6)


def test_create_cost_model_without_weights_warns_and_works(cpu_task, tmp_path, caplog):
    ctx, cands = cpu_task
    model = create_cost_model(weights=tmp_path / "missing.pt")
    assert "no weights" in caplog.text
    assert np.isfinite(model.predict(ctx, cands[:4])).all()


@pytest.mark.parametrize("kind", ["cpu", "cuda"])
def test_predict_scores_cpu_and_cuda_candidates(kind, cpu_task, cuda_task):
    ctx, cands = cpu_task if kind == "cpu" else cuda_task
    scores = WorldModelCostModel().predict(ctx, cands)
    assert np.isfinite(scores).all() and (scores >= 0).all()


def test_gpu_targets_load_gpu_weights_else_the_cpu_ones(tmp_path, monkeypatch):
    from torch_wm_backend.lower.target import parse_target
    from torch_wm_backend.world_model import adapter

    cuda = parse_target("cuda:sm_90")  # no GPU needed
    assert cuda.kind.name == "cuda" and str(cuda.attrs["arch"]) == "sm_90"
    assert adapter.weights_file("cuda").name == "wm_cuda.pt" and adapter.weights_file("llvm").name == "wm.pt"
    cpu_net, gpu_net = WorldModelCostModel().net, WorldModelCostModel(seed=1).net
    monkeypatch.setattr(adapter, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(adapter, "WEIGHTS_FILE", tmp_path / "wm.pt")
    adapter.save_weights(cpu_net, tmp_path / "wm.pt")
    first = next(create_cost_model(cuda).net.parameters())
    assert torch.equal(first, next(cpu_net.parameters()))  # no GPU weights yet: the CPU ones
    adapter.save_weights(gpu_net, tmp_path / "wm_cuda.pt")
    assert torch.equal(next(create_cost_model(cuda).net.parameters()), next(gpu_net.parameters()))
    assert torch.equal(next(create_cost_model(parse_target("cpu:2")).net.parameters()),
                       next(cpu_net.parameters()))
    for bad in ("tpu", "cpu:two", "cuda:90"):
        with pytest.raises(Exception, match="unknown target"):
            parse_target(bad)


@pytest.mark.parametrize("command", ["train", "collect"])
def test_cli_rejects_an_unknown_target_in_one_line(command, tmp_path):
    from torch_wm_backend.cli import main

    with pytest.raises(SystemExit, match=f"tvm-wm {command}: unknown target 'tpu'"):
        main([command, "--target", "tpu", "--data" if command == "train" else "--out", str(tmp_path)])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_target_cuda_without_a_gpu_is_a_one_line_error():
    from torch_wm_backend.errors import TvmWmError
    from torch_wm_backend.lower.target import parse_target

    with pytest.raises(TvmWmError, match="cuda:sm_90"):
        parse_target("cuda")


def test_tuning_leaves_the_users_rng_stream_alone(cpu_task):
    """Building, scoring with and fine-tuning the cost model draws from its own seed: a user's
    training loop gets the same dropout stream whether or not the backend tuned meanwhile."""
    ctx, cands = cpu_task
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    model = WorldModelCostModel(seed=5, online_steps=2)
    scores = model.predict(ctx, cands)
    model.update(ctx, cands[:8], [_Result(float(c)) for c in range(1, 9)])
    assert torch.equal(torch.random.get_rng_state(), before)
    # still deterministic for a seed
    np.testing.assert_array_equal(WorldModelCostModel(seed=5).predict(ctx, cands), scores)
    assert not np.array_equal(WorldModelCostModel(seed=6).predict(ctx, cands), scores)
    tuned = WorldModelCostModel(seed=5, online_steps=2)
    tuned.update(ctx, cands[:8], [_Result(float(c)) for c in range(1, 9)])
    np.testing.assert_array_equal(tuned.predict(ctx, cands), model.predict(ctx, cands))


class _Oracle:
    """A companion cost model that scores candidates by their true speed (or its reverse)."""

    def __init__(self, costs: dict, sign: float = 1.0):
        self.costs, self.sign, self.updates = costs, sign, 0

    def predict(self, context, candidates):
        return np.asarray([-self.sign * self.costs[str(c.sch.trace)] for c in candidates], "float64")

    def update(self, context, candidates, results):
        self.updates += 1


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_blend_follows_whichever_model_ranked_the_last_round_better(cpu_task, sign):
    ctx, cands = cpu_task
    costs = _synthetic_costs(cands)
    oracle = _Oracle({str(c.sch.trace): x for c, x in zip(cands, costs)}, sign)
    model = WorldModelCostModel(seed=0, online="blend", companion=oracle)
    alone = WorldModelCostModel(seed=0)
    rounds = [slice(0, 8), slice(8, 16), slice(16, 32)]
    for r in rounds[:1]:
        for m in (model, alone):
            m.update(ctx, cands[r], [_Result(c) for c in costs[r]])
    # one round learned: the companion has not been checked yet, so the world model's scores alone
    np.testing.assert_array_equal(model.predict(ctx, cands), alone.predict(ctx, cands))
    for r in rounds[1:]:
        for m in (model, alone):
            m.update(ctx, cands[r], [_Result(c) for c in costs[r]])
    evidence = model._evidence[state.task_info(ctx.mod, ctx.target).key]
    scores = model.predict(ctx, cands)
    assert oracle.updates == 3 and np.all(scores > 0)
    if sign > 0:   # the oracle ranked every pair right: it outweighs the world model
        assert evidence.weight() > 0.5
        assert _pairwise_accuracy(scores, costs) > _pairwise_accuracy(alone.predict(ctx, cands), costs)
    else:          # it ranked every pair wrong: next to no weight, the world model's order
        assert evidence.weight() < 0.05
        assert _pairwise_accuracy(scores, costs) > _pairwise_accuracy(alone.predict(ctx, cands), costs) - 0.03


def test_a_companion_goes_with_the_blend_only():
    with pytest.raises(ValueError, match="companion"):
        WorldModelCostModel(online="blend")
    with pytest.raises(ValueError, match="companion"):
        WorldModelCostModel(companion=_Oracle({}))


def test_weights_of_another_token_version_are_refused(tmp_path):
    """Weights learn what the tokens' slots mean: those trained on another version of the tokens
    are refused with what to do, not fed tokens they would misread. Weights saved before the
    version was recorded are version 1's."""
    from torch_wm_backend.world_model import adapter, tokenizer

    adapter.save_weights(WorldModelCostModel(seed=1).net, tmp_path / "w.pt", half=True)
    blob = torch.load(tmp_path / "w.pt")
    assert blob["tokens"] == tokenizer.VERSION
    adapter.load_weights(tmp_path / "w.pt")
    del blob["tokens"]
    torch.save(blob, tmp_path / "unversioned.pt")
    if tokenizer.VERSION == 1:
        adapter.load_weights(tmp_path / "unversioned.pt")
    else:
        with pytest.raises(ValueError, match="version 1 of the tokens"):
            adapter.load_weights(tmp_path / "unversioned.pt")
    blob["tokens"] = tokenizer.VERSION + 1
    torch.save(blob, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match=f"version {tokenizer.VERSION + 1} of the tokens.*retrain"):
        adapter.load_weights(tmp_path / "newer.pt")
