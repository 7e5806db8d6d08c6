"""How much a task's run times move between collector runs: why the world model ranks a task's
records within the run (batch) that measured them (world_model/dataset.py: batch_ids).

For every task measured in two batches of at least 8 records, the ratio of the later batch's median
run time to the earlier's. The candidates of both are random samples of the same space, so without
drift the ratios scatter around 1 with a geometric mean near 1.

    python benchmarks/record_drift.py [--data benchmarks/work/wm_data_t2]   # results/record_drift.{json,md}
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np

from torch_wm_backend.world_model import dataset


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="benchmarks/work/wm_data_t2")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    ratios = []
    for net in dataset.networks_in(args.data):
        d = Path(args.data) / net
        rows = [json.loads(line) for line in open(d / dataset.RECORDS) if line.strip()]
        batches = json.loads((d / dataset.BATCHES).read_text()) if (d / dataset.BATCHES).exists() else []
        by_task: dict = {}
        for (wid, rec), batch in zip(rows, dataset.batch_ids([r[0] for r in rows], batches)):
            if rec[1]:
                by_task.setdefault(wid, {}).setdefault(batch, []).append(float(np.median(rec[1])))
        for runs in by_task.values():
            kept = [runs[b] for b in sorted(runs) if len(runs[b]) >= 8]
            ratios += [float(np.median(b) / np.median(a)) for a, b in zip(kept, kept[1:])]
    r = np.array(ratios)
    res = {"data": args.data, "pairs": len(r), "geomean": math.exp(float(np.log(r).mean())),
           "quartiles": [float(x) for x in np.percentile(r, [25, 50, 75])],
           "share_beyond_1_3": float(np.mean((r > 1.3) | (r < 1 / 1.3)))}
    out = Path(args.out)
    (out / "record_drift.json").write_text(json.dumps(res, indent=1))
    md = (f"# Run-time drift between collector runs ({args.data})\n\n"
          f"Tasks measured in two runs (batches of at least 8 records): {res['pairs']}. Later run's median "
          f"run time / earlier run's: geomean ×{res['geomean']:.2f}, quartiles ×{res['quartiles'][0]:.2f} / "
          f"×{res['quartiles'][1]:.2f} / ×{res['quartiles'][2]:.2f}; {100 * res['share_beyond_1_3']:.0f}% of "
          "the tasks moved by more than ×1.3 either way.\n")
    (out / "record_drift.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
