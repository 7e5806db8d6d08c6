"""An ensemble's members trained in parallel processes (``tvm-wm train --jobs N``), and weight
files joined into one ensemble. A member depends on its seed and the records only, so members
trained apart make the ensemble ``--members`` trains one after the other."""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)

# what the parts of one ensemble must agree on
SAME = ("train_networks", "val_networks", "steps", "batch", "config")


def shares(members: int, seed: int, jobs: int) -> list[tuple[int, int]]:
    """(first seed, members) of each job: the members split as evenly as they go, seeds in order."""
    jobs = max(1, min(jobs, members))
    base, extra = divmod(members, jobs)
    out, first = [], seed
    for j in range(jobs):
        n = base + (j < extra)
        out.append((first, n))
        first += n
    return out


def join(out_path, parts: list):
    """Join the weight files ``parts`` (each with its training metadata beside it, .json) into one
    ensemble, saved at ``out_path``; returns it and the parts' metadata merged (their runs in
    order). Refuses parts trained on other networks, steps or sizes."""
    from ..errors import TvmWmError
    from .adapter import load_weights, save_weights
    from .network import Ensemble, networks_of

    metas = [json.loads(Path(p).with_suffix(".json").read_text()) for p in parts]
    for key in SAME:
        if any(m.get(key) != metas[0].get(key) for m in metas[1:]):
            raise TvmWmError(f"{key} differ between {', '.join(map(str, parts))}: not members of "
                             "one ensemble")
    nets = [m for p in parts for m in networks_of(load_weights(p))]
    final = Ensemble(nets) if len(nets) > 1 else nets[0]
    save_weights(final, out_path, half=True)
    meta = {k: v for k, v in metas[0].items() if k in SAME or k in ("train_tasks", "train_records",
                                                                     "transitions")}
    meta.update(members=len(nets), runs=[r for m in metas for r in m["runs"]],
                train_seconds_parts=[m["train_seconds"] for m in metas])
    return final, meta


def _train_part(kwargs: dict, threads: int, level: int) -> dict:
    """One job: ``trainer.train`` in a process of its own, on ``threads`` threads."""
    import torch

    from .trainer import train

    logging.basicConfig(level=level, format="%(message)s")
    torch.set_num_threads(threads)
    return train(**kwargs)


def train_parts(out_path, jobs: int, members: int, seed: int, **kwargs) -> tuple:
    """Train ``members`` networks from seeds seed, seed+1, ... in ``jobs`` processes at once (each
    on its share of the cores) and join them at ``out_path``; returns (ensemble, merged metadata).
    The parts' files are removed once joined; a failed job leaves them for a look."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    split = shares(members, seed, jobs)
    # the parts live outside the weights' folder (whose files key the kernel cache) until joined
    where = Path(tempfile.mkdtemp(prefix=f"tvm-wm-train-{out.stem}-"))
    parts = [where / f"part{j}.pt" for j in range(len(split))]
    threads = max(1, (os.cpu_count() or 1) // len(split))
    level = logging.getLogger().getEffectiveLevel()
    log.info("train: %d members in %d processes of %d thread(s) (seeds %s)", members, len(split),
             threads, ", ".join(f"{s}-{s + n - 1}" if n > 1 else str(s) for s, n in split))
    with ProcessPoolExecutor(len(split), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_train_part, dict(kwargs, out_path=str(p), seed=s, members=n),
                               threads, level) for p, (s, n) in zip(parts, split)]
        try:
            for f in futures:
                f.result()   # a part's error, raised here
        except BaseException:
            log.error("train: a job failed; what the others trained is in %s", where)
            raise
    joined = join(out, parts)
    shutil.rmtree(where)
    return joined
