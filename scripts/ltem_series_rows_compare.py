"""Cell-by-cell comparison of the flipped-series bench rows (bench/ltem_series.py: flipped_series_rows,
diagnosis_rows, drift_rows; all seeds and noises) between two source trees (issue 17 §2: no cell may
lose more than 0.01).

    PYTHONPATH=<tree>/src python scripts/ltem_series_rows_compare.py run OUT.json   (~6–10 min each)
    python scripts/ltem_series_rows_compare.py compare BEFORE.json AFTER.json
"""
import json
import sys

import numpy as np


def run(out: str) -> None:
    import torch

    from napari_phase.bench import ltem_series as B

    torch.set_num_threads(1)
    rows = {"flipped": B.flipped_series_rows(), "diagnosis": B.diagnosis_rows(), "drift": B.drift_rows()}
    json.dump(rows, open(out, "w"), default=float)


def compare(before: str, after: str) -> None:
    a, b = json.load(open(before)), json.load(open(after))
    diffs = []
    for sec in a:
        for ra, rb in zip(a[sec], b[sec]):
            assert ra["method"] == rb["method"] and ra["seed"] == rb["seed"]
            for k in ("phim", "phie", "bacc"):
                diffs.append((rb[k] - ra[k], sec, ra["method"], ra.get("noise"), ra.get("drift"), ra["seed"], k, ra[k], rb[k]))
    diffs.sort(key=lambda d: d[0])
    print(f"{len(diffs)} accuracy cells; changed: {sum(abs(d[0]) > 1e-6 for d in diffs)}; "
          f"worst {diffs[0][0]:+.4f}, best {diffs[-1][0]:+.4f}")
    for d in diffs[:5] + diffs[-5:]:
        print("%+.4f %s | %s | noise %s drift %s seed %s %s %.4f -> %.4f" % d)
    print("cells losing more than 0.01:", sum(d[0] < -0.01 for d in diffs), "; mean change", f"{np.mean([d[0] for d in diffs]):+.4f}")


if __name__ == "__main__":
    run(sys.argv[2]) if sys.argv[1] == "run" else compare(sys.argv[2], sys.argv[3])
