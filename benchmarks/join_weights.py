"""Join world-model weight files into one ensemble: members trained in separate processes (e.g.
`tvm-wm train --members 2 --seed 0` and `--seed 2`, two cores at once) become the ensemble
`--members 4 --seed 0` trains one after the other (each member depends on its seed only).
`tvm-wm train --jobs N` does this in one command; this joins files trained apart.

    python benchmarks/join_weights.py OUT.pt A.pt B.pt ...

Writes OUT.pt and OUT.json (the parts' training metadata, their runs in order).
"""
import json
import sys
from pathlib import Path

from torch_wm_backend.errors import TvmWmError
from torch_wm_backend.world_model.jobs import join


def main(out: str, parts: list) -> None:
    try:
        _, meta = join(out, parts)
    except TvmWmError as err:
        sys.exit(str(err))
    meta.update(parts=parts, train_seconds=sum(meta["train_seconds_parts"]))   # one after the other
    Path(out).with_suffix(".json").write_text(json.dumps(meta, indent=1))
    print(f"{out}: {meta['members']} members from {len(parts)} files")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
