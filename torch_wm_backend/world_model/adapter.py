"""The world model as a MetaSchedule cost model (``PyCostModel``).

predict() reads only each candidate's trace text and the task's cached state (one PerStoreFeature
extraction of the *unscheduled* program per task): no replay, no per-candidate feature extraction.
update() fine-tunes online on the running task's measured results with a ranking loss: a copy of the
trained weights per task, held near them (an L2 pull towards the prior), so one task's measurements
neither steer another task's search nor erase what the network learned offline. Or, with
``online="ridge"``, refits a per-task linear correction of the trained network's score in closed form
(calibrate.py); or, with ``online="blend"``, fine-tunes and also lets a companion model (XGB) learn
the task, then ranks by both, each weighted by how well it ranked the task's last rounds (blend.py).
The trained weights stay untouched in every case.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.cost_model import PyCostModel

from . import blend, calibrate, hardware, state, tokenizer, trace_reader
from .network import Ensemble, WMConfig, WorldModel, collate, networks_of, pairwise_rank_loss

log = logging.getLogger(__name__)
WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_FILE = WEIGHTS_DIR / "wm.pt"   # CPU (LLVM) weights; GPU ones are wm_cuda.pt
_CHUNK = 4096   # candidates scored at once (an ensemble shortlists within one chunk)
_BUFFER = 1024   # measured candidates kept per task for online fine-tuning
_SCALE_OVER = 256   # the blend's two scales: over the task's latest measured candidates (XGB
                    # re-extracts each one's features every round)
_TOKEN_CACHE = 20000  # distinct traces remembered per task
_TUNED_TASKS = 16     # per-task fine-tuned copies kept; an evicted one is refitted from the prior
# online loss += PRIOR_WEIGHT * sum of squared steps away from the trained weights. Off: each task's
# copy starts from the trained weights and follows its own measurements (protocol, 2026-12-06: a pull
# of 1e-2 found slower kernels, x0.93 over 30 runs of 3 seeds); the trained weights stay untouched.
PRIOR_WEIGHT = 0.0
# the online updates: Adam steps on a task's copy, calibrate.py, or those Adam steps and a companion
# model weighed against them (blend.py)
ONLINE = ("finetune", "ridge", "blend")


@contextlib.contextmanager
def _one_thread():
    """The network's matrices are small ([512, 128]): one thread scores them faster than several,
    and far faster when the cores are busy (measured: 38 vs 122 ms per 1,000 candidates with 2
    threads on a loaded 2-core machine, 4 s when the chunk was split in two)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def seeded(seed: int):
    """Draws within come from ``seed`` (the CPU generator: the network lives on the CPU); the
    caller's RNG state, CPU and CUDA, is unchanged afterwards. Tuning runs inside the user's program:
    reseeding its generator would change the dropout stream of its own training."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)   # torch.manual_seed would seed CUDA too
        yield


def weights_file(kind: str = "llvm") -> Path:
    """The shipped weights for a target kind (``target.kind.name``): wm.pt for CPUs (llvm),
    wm_<kind>.pt for others."""
    return WEIGHTS_FILE if kind == "llvm" else WEIGHTS_DIR / f"wm_{kind}.pt"


def default_config() -> WMConfig:
    return WMConfig(state_dim=state.STATE_DIM, hw_dim=hardware.HW_DIM, num_kinds=tokenizer.NUM_KINDS,
                    num_attrs=tokenizer.NUM_ATTRS, num_feats=tokenizer.NUM_FEATS,
                    dyn_dim=state.POOLED_DIM)


def mean_cost(result) -> float:
    """Median run time of a runner result; 1e10 for a failed build or run (as MetaSchedule's XGB)."""
    secs = [float(s) for s in (result.run_secs or [])]
    if result.error_msg is not None or not secs:
        return 1e10
    return float(np.median(secs))


def save_weights(net: WorldModel | Ensemble, path, half: bool = False) -> None:
    """Save exactly (what ``PyCostModel.save`` needs), or with ``half`` for shipping: float tensors
    as float16 (the scores move in the 3rd-4th digit) and without the dynamics head, which only
    training uses."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")

    def pack(m: WorldModel) -> dict:
        return {k: v.half() if half and v.is_floating_point() else v for k, v in m.state_dict().items()
                if not (half and k.startswith("dyn_head."))}

    torch.save({"config": net.cfg.to_dict(), "tokens": tokenizer.VERSION,
                "members": [pack(m) for m in networks_of(net)]}, tmp)
    os.replace(tmp, path)


def load_weights(path) -> WorldModel | Ensemble:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    made = blob.get("tokens", 1)   # weights from before the version was recorded: version 1
    if made != tokenizer.VERSION:
        raise ValueError(f"{path}: trained on version {made} of the tokens, and this tokenizer makes "
                         f"version {tokenizer.VERSION}: retrain them (`tvm-wm train`)")
    members = []
    for sd in blob.get("members") or [blob["state_dict"]]:
        net = WorldModel(WMConfig(**blob["config"]))
        sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
        missing, unexpected = net.load_state_dict(sd, strict=False)
        if unexpected or any(not k.startswith("dyn_head.") for k in missing):
            raise ValueError(f"{path}: not world-model weights (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")
        members.append(net)
    return members[0] if len(members) == 1 else Ensemble(members)


@derived_object
class WorldModelCostModel(PyCostModel):
    """Scores candidates by rolling their trace's actions through the learned latent dynamics."""

    def __init__(self, net: WorldModel | None = None, *, online_steps: int = 30, lr: float = 1e-3,
                 seed: int = 0, prior_weight: float = PRIOR_WEIGHT, online: str = "finetune",
                 companion=None):
        """``companion``: with ``online="blend"``, a cost model that learns tasks from their own
        measurements (``update`` / ``predict`` as MetaSchedule's)."""
        super().__init__()
        if online not in ONLINE:
            raise ValueError(f"online={online!r}: one of {', '.join(ONLINE)}")
        if (online == "blend") != (companion is not None):
            raise ValueError('a companion model goes with online="blend", and only with it')
        self.online = online
        self.companion = companion
        if net is None:
            with seeded(seed):
                net = WorldModel(default_config())
        self.net = net                # the prior: the trained weights, never changed by tuning
        self.net.eval()
        self.online_steps = online_steps
        self.lr = lr
        self.seed = seed
        self.prior_weight = prior_weight
        self._measured: dict = {}     # task key -> (list of tokens, list of costs)
        self._tuned: OrderedDict = OrderedDict()   # task key -> the prior fine-tuned on that task
        self._fits: dict = {}         # task key -> calibrate.Fit (online="ridge")
        self._evidence: dict = {}     # task key -> blend.Evidence (online="blend")
        self._candidates: dict = {}   # task key -> its measured candidates (online="blend")
        self._info: dict = {}         # task key -> TaskInfo of the tasks measured
        self._hw: dict = {}
        self._token_cache: dict = {}  # task key -> {trace text: tokens}
        self.predicted = 0            # candidates scored, for tests and logs

    # -- inputs -----------------------------------------------------------------------------
    def _hw_vec(self, target) -> torch.Tensor:
        from .. import threads

        n = threads.count()   # the candidates are measured on as many (tune/tuner.py: make_runner)
        key = (str(target), n)
        if key not in self._hw:
            self._hw[key] = torch.from_numpy(hardware.hardware_features(target, n))[None]
        return self._hw[key]

    def _tokens(self, info, traces) -> list:
        """Tokens of each trace. Evolutionary search scores many candidates again in
        later iterations (survivors, undone mutations): tokenize each distinct trace once, and
        those that differ only in their decisions together: trace_reader reads each trace's
        structure and decisions without printing it; one trace per structure is printed."""
        cache = self._token_cache.setdefault(info.key, {})
        if len(cache) > _TOKEN_CACHE:
            cache.clear()
        read = trace_reader.read(traces)
        if read is None:   # no C++ reader: print them all
            keys = [str(t) for t in traces]
            new = list({t: None for t in keys if t not in cache})   # distinct, in order
            cache.update(zip(new, tokenizer.tokenize_many(new, info.blocks)))
            return [cache[k] for k in keys]
        keys = trace_reader.keys_of(read, traces)
        new: dict = {}      # each new key -> its first trace
        for i, key in enumerate(keys):
            if key not in cache and key not in new:
                new[key] = i
        by_structure: dict = {}   # structure -> its new traces
        for key, i in new.items():
            if isinstance(key, str):
                cache[key] = tokenizer.tokenize(key, info.blocks)
            else:
                by_structure.setdefault(key[0], []).append(i)
        groups = list(by_structure.values())
        texts = [str(traces[members[0]]) for members in groups]   # one printed per structure
        records = [np.stack([read.record(i) for i in members]) for members in groups]
        for members, toks in zip(groups, tokenizer.tokenize_structures(texts, records, info.blocks)):
            if toks is None:   # decisions its text holds otherwise: print each trace
                toks = [tokenizer.tokenize(str(traces[i]), info.blocks) for i in members]
            for i, tok in zip(members, toks):
                cache[keys[i]] = tok
        return [cache[k] for k in keys]

    def net_for(self, key: str, hw=None):
        """The network that scores task ``key``: its fine-tuned copy, else the prior. A task with
        measurements whose copy was evicted gets it refitted (with ``hw``) first."""
        if key in self._tuned:
            self._tuned.move_to_end(key)
            return self._tuned[key]
        toks, costs = self._measured.get(key, ((), ()))
        if self.online == "finetune" and hw is not None and len(costs) >= 2 and self.online_steps > 0:
            self.finetune(key, self._info[key], toks, np.asarray(costs), hw)
            return self._tuned[key]
        return self.net

    def score_tokens(self, info, toks, hw, net=None) -> np.ndarray:
        # float64: a float32 sigmoid rounds logits above ~17 to 1.0, ties at the top
        return torch.sigmoid(torch.from_numpy(self.logits(info, toks, hw, net))).numpy()

    def logits(self, info, toks, hw, net=None) -> np.ndarray:
        net = net if net is not None else self.net
        out = []
        st = torch.from_numpy(info.state)[None]
        with torch.inference_mode(), _one_thread():
            for i in range(0, len(toks), _CHUNK):
                kinds, attrs, feats, mask = collate(toks[i:i + _CHUNK])
                out.append(net(st, kinds, attrs, feats, mask, hw).double().numpy())
        return np.concatenate(out) if out else np.zeros(0, "float64")

    # -- PyCostModel ------------------------------------------------------------------------
    def predict(self, context, candidates) -> np.ndarray:
        traces = [c.sch.trace for c in candidates]
        if self.online != "blend":   # the hot path: one task lookup, in predict_traces
            return self.predict_traces(context, traces)
        info = state.task_info(context.mod, context.target)
        evidence = self._evidence.get(info.key)
        if evidence is None or evidence.weight() == 0:
            return self.predict_traces(context, traces)
        self.predicted += len(candidates)
        hw = self._hw_vec(context.target)
        toks = self._tokens(info, traces)
        return evidence.combine(self.logits(info, toks, hw, self.net_for(info.key, hw)),
                                self.companion.predict(context, candidates))

    def predict_traces(self, context, traces: list) -> np.ndarray:
        """Scores of schedule traces of ``context``'s task, higher is faster: a trace need not be
        replayed into a program first (a mutated trace is scored before it is built)."""
        info = state.task_info(context.mod, context.target)
        self.predicted += len(traces)
        hw = self._hw_vec(context.target)
        toks = self._tokens(info, traces)
        fit = self._fits.get(info.key)
        if fit is not None:
            return np.exp(np.clip(fit.predict(*self.score_hidden(info, toks, hw)), -30.0, 5.0))
        return self.score_tokens(info, toks, hw, self.net_for(info.key, hw))

    def score_hidden(self, info, toks, hw) -> tuple[np.ndarray, np.ndarray]:
        """The trained network's logits and its (first member's) score head's hidden layer."""
        first = networks_of(self.net)[0]
        st = torch.from_numpy(info.state)[None]
        logits, hidden = [], []
        with torch.inference_mode(), _one_thread():
            for i in range(0, len(toks), _CHUNK):
                batch = collate(toks[i:i + _CHUNK])
                logits.append(self.net(st, *batch, hw).double().numpy())
                hidden.append(first.hidden(st, *batch, hw).double().numpy())
        return np.concatenate(logits), np.concatenate(hidden)

    def update(self, context, candidates, results) -> None:
        info = state.task_info(context.mod, context.target)
        self._info[info.key] = info
        new = [(c, tok, mean_cost(res)) for c, tok, res in
               zip(candidates, self._tokens(info, [c.sch.trace for c in candidates]), results)]
        new = [n for n in new if n[2] < 1e9]
        if self.online == "blend":
            self._weigh(context, info, new)
        toks, costs = self._measured.setdefault(info.key, ([], []))
        toks += [n[1] for n in new]
        costs += [n[2] for n in new]
        del toks[:-_BUFFER], costs[:-_BUFFER]
        if self.online == "ridge":
            if len(costs) >= calibrate.MIN_MEASURED:   # fewer: calibrate.fit has no fit to give
                hw = self._hw_vec(context.target)
                self._fits[info.key] = calibrate.fit(*self.score_hidden(info, toks, hw), np.asarray(costs))
        elif len(costs) >= 2 and self.online_steps > 0:
            self.finetune(info.key, info, toks, np.asarray(costs), self._hw_vec(context.target))
        if self.online == "blend":
            self._update_companion(context, info, candidates, results, [n[0] for n in new])

    def _weigh(self, context, info, new: list) -> None:
        """How each model of the blend ranked a round it had not yet learned from."""
        evidence = self._evidence.get(info.key)
        if evidence is None or len(new) < 2:   # before the first update the companion knows nothing
            return
        hw = self._hw_vec(context.target)
        evidence.add(self.logits(info, [n[1] for n in new], hw, self.net_for(info.key, hw)),
                     self.companion.predict(context, [n[0] for n in new]),
                     np.asarray([n[2] for n in new]))

    def _update_companion(self, context, info, candidates, results, measured: list) -> None:
        """The companion learns the round; both scores get their scale over the latest measured
        candidates."""
        self.companion.update(context, candidates, results)
        kept = self._candidates.setdefault(info.key, [])
        kept += measured
        del kept[:-_SCALE_OVER]
        if len(kept) < 2:
            return
        hw = self._hw_vec(context.target)
        toks = self._measured[info.key][0][-len(kept):]
        evidence = self._evidence.setdefault(info.key, blend.Evidence())
        log.debug("blend, task %s: companion's weight %.2f after %d pairs (right: %s)", info.key[:12],
                  evidence.weight(), evidence.pairs, evidence.right)
        evidence.scales = (blend.Scale.of(self.logits(info, toks, hw, self.net_for(info.key, hw))),
                           blend.Scale.of(self.companion.predict(context, kept)))

    def finetune(self, key: str, info, toks, costs: np.ndarray, hw, steps: int | None = None) -> float:
        """A few Adam steps of the pairwise ranking loss on task ``key``'s measured candidates, on
        its own copy of the prior (made at its first update), plus ``prior_weight`` times the
        squared distance from the prior: what the task's measurements say, near what training
        learned."""
        net = self._tuned.pop(key, None) or copy.deepcopy(self.net)
        self._tuned[key] = net
        while len(self._tuned) > _TUNED_TASKS:
            self._tuned.popitem(last=False)
        labels = torch.from_numpy((costs.min() / costs).astype(np.float32))
        groups = torch.zeros(len(costs), dtype=torch.long)
        kinds, attrs, feats, mask = collate(toks)
        st = torch.from_numpy(info.state)[None]
        params = [p for p in net.parameters()]
        prior = [p.detach() for p in self.net.parameters()]
        opt = torch.optim.Adam(params, lr=self.lr)
        # tuning runs inside the user's program: under its no_grad, and beside its RNG stream; on
        # one thread, as scoring (measured: 1.7 vs 8 s for 30 steps of 4 members with 2 threads
        # on a loaded 2-core machine)
        with torch.enable_grad(), seeded(self.seed), _one_thread():
            net.train()
            loss = torch.zeros(())
            for _ in range(steps if steps is not None else self.online_steps):
                opt.zero_grad()
                loss = pairwise_rank_loss(net(st, kinds, attrs, feats, mask, hw), labels, groups)
                loss.backward()
                if self.prior_weight > 0:   # the gradient of prior_weight * |p - prior|^2
                    with torch.no_grad():
                        for p, q in zip(params, prior):
                            if p.grad is not None:
                                p.grad.add_(p - q, alpha=2 * self.prior_weight)
                opt.step()
        net.eval()
        return float(loss.detach())

    def save(self, path: str) -> None:
        save_weights(self.net, path)

    def load(self, path: str) -> None:
        self.net = load_weights(path)
        self.net.eval()
        self._tuned.clear()   # copies of the old prior
        self._fits.clear()
        self._evidence.clear()   # how the old prior ranked, and the scale of its scores

    def clone_net(self) -> WorldModel:
        return copy.deepcopy(self.net)


def create_cost_model(target=None, weights: str | os.PathLike | None = None,
                      **kwargs) -> WorldModelCostModel:
    """The world-model cost model with the shipped weights for ``target``'s kind (GPU weights where
    they were collected, else the CPU ones: hardware features tell the targets apart; random init,
    with a warning, if none). The hardware features are read from each task's own target."""
    path = Path(weights) if weights is not None else weights_file(target.kind.name if target else "llvm")
    if weights is None and not path.exists():
        path = WEIGHTS_FILE
    if path.exists():
        return WorldModelCostModel(load_weights(path), **kwargs)
    log.warning("world model: no weights at %s; using a randomly initialised model", path)
    return WorldModelCostModel(**kwargs)
