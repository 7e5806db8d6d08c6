"""How much a task's run times move between collector runs: why the world model ranks a task's
records within the run (batch) that measured them (world_model/dataset.py: batch_ids).

For every task measured in two batches of at least 8 records, the ratio of the median run time of
half of the later batch to that of half of the earlier one ("between runs"), and, as the control
for sampling, to that of the later batch's other half ("within a run"). The candidates are random
samples of the same space: without drift both ratios scatter alike.

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
    between, within = [], []
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
            for a, b in zip(kept, kept[1:]):
                h = min(len(a), len(b)) // 2   # records in measuring order: random halves
                between.append(float(np.median(b[:h]) / np.median(a[:h])))
                within.append(float(np.median(b[:h]) / np.median(b[h:2 * h])))

    def summary(r):
        r = np.array(r)
        return {"geomean": math.exp(float(np.log(r).mean())),
                "quartiles": [float(x) for x in np.percentile(r, [25, 50, 75])],
                "share_beyond_1_3": float(np.mean((r > 1.3) | (r < 1 / 1.3)))}

    res = {"data": args.data, "pairs": len(between), "between_runs": summary(between),
           "within_a_run": summary(within)}
    out = Path(args.out)
    (out / "record_drift.json").write_text(json.dumps(res, indent=1))
    rows = [f"| {name} | ×{m['geomean']:.2f} | ×{m['quartiles'][0]:.2f} / ×{m['quartiles'][1]:.2f} / "
            f"×{m['quartiles'][2]:.2f} | {100 * m['share_beyond_1_3']:.0f}% |"
            for name, m in (("between runs", res["between_runs"]), ("within a run", res["within_a_run"]))]
    md = (f"# Run-time drift between collector runs ({args.data})\n\n"
          f"Tasks measured in two runs (batches of at least 8 records): {res['pairs']}. Ratio of the "
          "median run time of half a batch to another half's:\n\n"
          "| halves from | geomean | quartiles | moved beyond ×1.3 either way |\n|---|---|---|---|\n"
          + "\n".join(rows) + "\n")
    (out / "record_drift.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
