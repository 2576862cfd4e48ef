"""Issue 8 §4 (clean images): how many SIPRAD fit steps a noise-free 256² window needs, and what
stopping rules would give. Ad-hoc measurement behind docs/benchmarks_ltem_windows.md "Run 4".

    python scripts/ltem_clean_steps.py run OUT_PREFIX [CELLS_JSON]   # SIPRAD, 1 thread, seed 0
    python scripts/ltem_clean_steps.py analyse "OUT_PREFIX_*.npz"     # offline stop rules

``run`` simulates each cell (``simulate(tex, (256, 256), pixel_size_nm=5, defocus_nm=Δf,
noise=0, seed=1, boundary="window")``), runs ``siprad(..., num_threads=1, seed=0)`` with the
defaults, and keeps the raw kept phase every 25 fit steps (the settle rule's own snapshots) in
OUT_PREFIX_<texture>_<Δf mm>_<noise>.npz. ``analyse`` reads them back and reports, per cell, the
final phase / B accuracy, the first step after which both stay within 0.005 of the final ("reach":
what an oracle stopping rule would need), and where settle rules with other windows / tolerances
would have stopped, with the accuracy there (the result is the 2-px-smoothed kept phase, as
SIPRAD returns it). The trajectory is deterministic with one thread, so the rules can be
replayed offline.
"""

from __future__ import annotations

import glob
import importlib
import json
import os
import sys
import time

import numpy as np

EVERY = 25
CELLS = [[t, d] for t in ("stripes", "skyrmions", "bubbles") for d in (-0.25, -0.5, -1, -2, -4)]
RULES = [(100, 0.02), (50, 0.02), (50, 0.015)]  # (window steps, tolerance); (100, 0.02) = today's


def run(prefix: str, cells) -> None:
    import torch

    torch.set_num_threads(1)
    S = importlib.import_module("napari_phase.ltem.siprad")
    from napari_phase.bench.ltem import PIXEL_NM, _scores
    from napari_phase.jobs import run_job
    from napari_phase.ltem.simulate import simulate

    snaps = []
    orig = S.preview

    def capture(phases, problem, smoothing_px, method, frame):  # called every EVERY fit steps
        snaps.append(np.asarray(phases[-1], np.float32).copy())
        return orig(phases, problem, smoothing_px, method, frame)

    S.preview = capture
    for tex, df in cells:
        s = simulate(tex, (256, 256), pixel_size_nm=PIXEL_NM, defocus_nm=df * 1e6, noise=0.0, seed=1, boundary="window")
        snaps.clear()
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        res = run_job(S.siprad_job(s.image, pixel_size_nm=PIXEL_NM, defocus_nm=df * 1e6, device="cpu", num_threads=1,
                                   preview_every=EVERY, seed=0))
        dt = time.perf_counter() - t0
        sc, m = _scores(res, s), res.metadata
        row = dict(texture=tex, defocus_mm=df, time_s=round(dt, 1), load_average=round(load, 1), its=m["iterations_run"],
                   pre=m["pretrain_iterations_run"], stop=m["stop_reason"], init=m["init_used"],
                   phase=round(sc["phase_acc"], 4), b=round(sc["b_acc"], 4))
        print(json.dumps(row), flush=True)
        np.savez_compressed(f"{prefix}_{tex}_{df}_0.0.npz", snaps=np.stack(snaps), phase_m=s.phase_m, bx=s.bx, by=s.by,
                            row=json.dumps(row))


def analyse(pattern: str) -> None:
    from napari_phase.physics import pearson_accuracy
    from napari_phase.physics.induction import induction_from_phase
    from napari_phase.physics.metrics import induction_accuracy
    from napari_phase.ltem.siprad import smooth

    def score(ph, d):
        p = smooth(ph - ph.mean(), 2.0)
        bx, by = induction_from_phase(p, 5.0)
        return pearson_accuracy(p, d["phase_m"], 8), induction_accuracy(bx, by, d["bx"], d["by"], 8)

    def stop_at(snaps, window, tol):
        lag = window // EVERY
        for i in range(lag, len(snaps)):
            a, b = snaps[i], snaps[i - lag]
            if np.linalg.norm(a - b) / max(np.linalg.norm(a - a.mean()), 1e-12) < tol:
                return i
        return None

    for f in sorted(glob.glob(pattern)):
        d = np.load(f)
        row, snaps = json.loads(str(d["row"])), d["snaps"]
        accs = [score(s, d) for s in snaps]
        fin = accs[-1]
        ok = [i for i in range(len(accs)) if all(a[0] >= fin[0] - 0.005 and a[1] >= fin[1] - 0.005 for a in accs[i:])]
        peak = max(range(len(accs)), key=lambda i: accs[i][0])
        out = [f"{row['texture']:9s} {row['defocus_mm']:5} fit steps {row['its']:4d} (+{row['pre']} pre) final {fin[0]:.4f}/{fin[1]:.4f}",
               f"reach {EVERY * (ok[0] + 1)}", f"peak {accs[peak][0]:.4f}/{accs[peak][1]:.4f} at {EVERY * (peak + 1)}"]
        for window, tol in RULES:
            i = stop_at(snaps, window, tol)
            out.append(f"W{window}/{tol}: " + ("none" if i is None else f"{EVERY * (i + 1)} {accs[i][0] - fin[0]:+.4f}/{accs[i][1] - fin[1]:+.4f}"))
        print(" | ".join(out))


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("run", "analyse"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "run":
        run(sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else CELLS)
    else:
        analyse(sys.argv[2])
