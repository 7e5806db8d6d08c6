"""Join world-model weight files into one ensemble: members trained in separate processes (e.g.
`tvm-wm train --members 2 --seed 0` and `--seed 2`, two cores at once) become the ensemble
`--members 4 --seed 0` trains one after the other (each member depends on its seed only).

    python benchmarks/join_weights.py OUT.pt A.pt B.pt ...

Writes OUT.pt and OUT.json (the parts' training metadata, their runs in order).
"""
import json
import sys
from pathlib import Path

from torch_wm_backend.world_model.adapter import load_weights, save_weights
from torch_wm_backend.world_model.network import Ensemble


def members(path: str) -> list:
    net = load_weights(path)
    return list(net.members) if isinstance(net, Ensemble) else [net]


def main(out: str, parts: list) -> None:
    metas = [json.loads(Path(p).with_suffix(".json").read_text()) for p in parts]
    for key in ("train_networks", "val_networks", "steps", "batch", "config"):
        if any(m.get(key) != metas[0].get(key) for m in metas[1:]):
            sys.exit(f"{key} differ between {', '.join(parts)}: not members of one ensemble")
    nets = [m for p in parts for m in members(p)]
    save_weights(Ensemble(nets), out, half=True)
    meta = {k: v for k, v in metas[0].items() if k not in ("runs", "train_seconds", "members")}
    meta.update(members=len(nets), parts=parts, runs=[r for m in metas for r in m["runs"]],
                train_seconds=sum(m["train_seconds"] for m in metas),   # one after the other
                train_seconds_parts=[m["train_seconds"] for m in metas])
    Path(out).with_suffix(".json").write_text(json.dumps(meta, indent=1))
    print(f"{out}: {len(nets)} members from {len(parts)} files")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
