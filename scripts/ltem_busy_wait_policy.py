"""Issue 8 §2, Run 8: SIPRAD's fixed work (bundled 256² sample, 20 + 60 steps) idle and with 1 / 2 busy
processes, fixed 1 / 2 threads and the measured choice, median of 3 after a warm-up call; run once per
OpenMP wait setting (read by libgomp when torch loads, so set in the environment):

    for cfg in "" OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=10000 GOMP_SPINCOUNT=1000; do
        env $cfg python scripts/ltem_busy_wait_policy.py; done

One JSON line per setting (seconds). Results: docs/benchmarks_ltem_windows.md, "Run 8".
"""
import json, os, statistics, sys, time
import numpy as np
from napari_phase.bench.ltem import _busy, _stop, PIXEL_NM
from napari_phase.io.sample_data import sample_path
from napari_phase.ltem.siprad import siprad
img = np.load(sample_path("ltem_skyrmions"))["image"]
work = dict(iterations=60, pretrain_iterations=20, pretrain_tolerance=0.0, discrepancy=0.0, patience=10**6, settle_tolerance=0.0)
siprad(img, pixel_size_nm=PIXEL_NM, defocus_nm=-1e6, device="cpu", num_threads=1, iterations=5, pretrain_iterations=2)  # warm-up
out = {"env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}}
for busy in (0, 1, 2):
    procs = _busy(busy, 300.0) if busy else []
    try:
        time.sleep(1.0 if busy else 0.0)
        for threads in ((1, 2, None) if busy == 0 else (1, 2, None)):
            ts = []
            for _ in range(3):
                t0 = time.perf_counter()
                r = siprad(img, pixel_size_nm=PIXEL_NM, defocus_nm=-1e6, device="cpu", num_threads=threads, **work)
                ts.append(time.perf_counter() - t0)
            out[f"busy{busy}_t{threads}"] = round(statistics.median(ts), 2)
    finally:
        _stop(procs)
print(json.dumps(out), flush=True)
