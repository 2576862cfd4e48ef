"""Issue 8, Run 7: SIPRAD (defaults, one thread, network seed 0) on chosen 256² cells with each given SEED_ROOM.

    python scripts/ltem_seed_room.py '[["bubbles", -1, 0.5, "window", 2], ...]' 1.05,1.2,1.4

Cells: [texture, defocus_mm, noise, simulate boundary, simulation seed]. One JSON line per cell and room: rung weight
and residual of the seed, fit steps, phase / plane-free phase / B accuracy. Results: docs/benchmarks_ltem_windows.md.
"""
import json, sys, time, torch
torch.set_num_threads(1)
import importlib; S = importlib.import_module("napari_phase.ltem.siprad")
from napari_phase.bench.ltem import PIXEL_NM, _scores
from napari_phase.ltem.simulate import simulate
rooms = [float(r) for r in sys.argv[2].split(",")]
for tex, df, noise, kind, seed in json.loads(sys.argv[1]):
    s = simulate(tex, (256, 256), pixel_size_nm=PIXEL_NM, defocus_nm=df * 1e6, noise=noise, seed=seed, boundary=kind)
    for room in rooms:
        S.SEED_ROOM = room
        t0 = time.perf_counter()
        r = S.siprad(s.image, pixel_size_nm=PIXEL_NM, defocus_nm=df * 1e6, device="cpu", num_threads=1, seed=0)
        sc, m = _scores(r, s), r.metadata
        print(json.dumps(dict(tex=tex, df=df, noise=noise, seed=seed, room=room, t=round(time.perf_counter()-t0,1), its=m["iterations_run"],
              init=m["init_used"], w=m.get("seed_smoothness"), res=m.get("seed_data_residual"), phase=round(sc["phase_acc"],4),
              pf=round(sc["phase_acc_plane_free"],4), b=round(sc["b_acc"],4))), flush=True)
