"""Issue 8 §4 (clean images), session 6: does the pixel-wise TV seed shorten SIPRAD on noise-free windows?

    python scripts/ltem_clean_seed.py '[["bubbles", -1], ["stripes", -0.5]]' sitie,pixelwise,pw

Each cell is ``simulate(tex, (256, 256), pixel_size_nm=5, defocus_nm=Δf, noise=0, seed=1,
boundary="window")``; each method runs with one thread (``sitie``/``pixelwise``: SIPRAD with that
``init``, network seed 0; ``pw``: the pixel-wise solver alone, defaults). One JSON line per run:
wall time, fit and pre-training steps, stop reason, phase / B accuracy (bench.ltem._scores).
Results: docs/benchmarks_ltem_windows.md, "Run 5".
"""
import json, os, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from napari_phase.bench.ltem import PIXEL_NM, _scores
from napari_phase.ltem.simulate import simulate
from napari_phase.ltem.siprad import siprad
from napari_phase.ltem.pixelwise import pixelwise
cells = json.loads(sys.argv[1])
inits = sys.argv[2].split(",")
for tex, df in cells:
    s = simulate(tex, (256, 256), pixel_size_nm=PIXEL_NM, defocus_nm=df * 1e6, noise=0.0, seed=1, boundary="window")
    for init in inits:
        t0 = time.perf_counter()
        if init == "pw":
            res = pixelwise(s.image, pixel_size_nm=PIXEL_NM, defocus_nm=df * 1e6, device="cpu", num_threads=1)
        else:
            res = siprad(s.image, pixel_size_nm=PIXEL_NM, defocus_nm=df * 1e6, device="cpu", num_threads=1, seed=0, init=init)
        dt = time.perf_counter() - t0
        sc, m = _scores(res, s), res.metadata
        print(json.dumps(dict(tex=tex, df=df, init=init, t=round(dt, 1), load=round(os.getloadavg()[0], 1),
              its=m.get("iterations_run"), pre=m.get("pretrain_iterations_run"), stop=m.get("stop_reason"),
              used=m.get("init_used"), phase=round(sc["phase_acc"], 4), b=round(sc["b_acc"], 4))), flush=True)
