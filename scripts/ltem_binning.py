"""Issue 8 §4: SIPRAD with the network on binned pixels (``network_binning``) against today's network.

    python scripts/ltem_binning.py '[["bubbles", -1, 0.0, "window", 1], ...]' '{"network_binning": 2}'

Each cell is ``simulate(tex, (256, 256), pixel_size_nm=5, defocus_nm=Δf_mm·1e6, noise=noise, seed=seed,
boundary=kind)`` (kind "window", "periodic" or "mirror"); SIPRAD runs with one torch thread, network
seed 0 and the given options. One JSON line per cell: wall time, load average, steps (+ pre-training),
stop reason, seed used, phase / B accuracy (bench.ltem._scores). Results: docs/benchmarks_ltem_windows.md,
"Run 6".
"""
import json, os, sys, time
import torch
torch.set_num_threads(1)
from napari_phase.bench.ltem import PIXEL_NM, _scores
from napari_phase.ltem.simulate import simulate
from napari_phase.ltem.siprad import siprad

cells = json.loads(sys.argv[1])
options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
for tex, df, noise, kind, seed in cells:
    s = simulate(tex, (256, 256), pixel_size_nm=PIXEL_NM, defocus_nm=df * 1e6, noise=noise, seed=seed, boundary=kind)
    t0 = time.perf_counter()
    res = siprad(s.image, pixel_size_nm=PIXEL_NM, defocus_nm=df * 1e6, device="cpu", num_threads=1, seed=0, **options)
    dt = time.perf_counter() - t0
    sc, m = _scores(res, s), res.metadata
    print(json.dumps(dict(tex=tex, df=df, noise=noise, kind=kind, seed=seed, opts=options, t=round(dt, 1),
                          load=round(os.getloadavg()[0], 1), its=m.get("iterations_run"), pre=m.get("pretrain_iterations_run"),
                          stop=m.get("stop_reason"), used=m.get("init_used"), phase=round(sc["phase_acc"], 4),
                          b=round(sc["b_acc"], 4))), flush=True)
