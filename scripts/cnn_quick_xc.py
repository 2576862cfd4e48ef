"""The CNN's xc and time on the quick bench's arrays, for comparing two trees (issue 16 §2).

    PYTHONPATH=src python scripts/cnn_quick_xc.py auto icom          # this tree, default precision
    PYTHONPATH=/path/to/old/src python scripts/cnn_quick_xc.py main icom   # an older tree (no precision=)

Arguments: precision ("auto", "float32", "bfloat16", or "main" = do not pass it) and the low-frequency
source ("icom" = the default pipeline, "none" = the network alone). Prints one line per cell (xc to
4 digits, wall time) and writes them to cnn_quick_xc_<precision>_<source>.json in the current folder.
"""
import json
import sys
import time

import numpy as np

from napari_phase import stem
from napari_phase.bench import stem as b
from napari_phase.physics.metrics import xc


def main(argv):
    prec, source = argv[1], argv[2]
    kw = dict(energy_kev=b.ENERGY_KEV, scan_step_a=b.STEP_A, detector_mrad_per_px=b.DET_MRAD,
              semiangle_mrad=b.SEMIANGLE_MRAD, oversample=2, device="cpu",
              low_frequency=None if source == "none" else source)
    if prec != "main":
        kw["precision"] = prec
    out = {}
    for name in b.STRUCTURES:
        sim = b.simulate(name, 32, 1)
        for dose in b.DOSES:
            d = b.with_dose(sim.data, dose, seed=1)
            t0 = time.perf_counter()
            r = stem.cnn(d, **kw)
            dt = time.perf_counter() - t0
            truth = b.truth_on_grid(sim.phase, sim.phase_pixel_size_a, r.phase.shape, r.pixel_size_a)
            v = xc(r.phase, truth, int(round(b.CROP * b.STEP_A / r.pixel_size_a)))
            out[f"{name} {dose}"] = v
            print(f"{prec} {source} {name} {dose}: xc {v:.4f} {dt:.1f} s", flush=True)
    with open(f"cnn_quick_xc_{prec}_{source}.json", "w") as fh:
        json.dump(out, fh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
