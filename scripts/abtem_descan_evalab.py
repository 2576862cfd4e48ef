"""abTEM cross-check of the 4D-STEM descan defaults (issue 16 §1): three steps, two Pythons.

    .venv/bin/python scripts/abtem_descan_ours.py        # atoms + our truth -> /tmp/abcase (project venv)
    /tmp/abt/bin/python scripts/abtem_descan_ab.py       # abTEM scan of the same atoms and positions
                                                         # (a separate venv: pip install abtem ase; GPL, never in the core)
    PYTHONPATH=src .venv/bin/python scripts/abtem_descan_evalab.py icom,ssb,cnn   # scores (markdown rows)

abTEM's patterns (0.52 mrad/px) are binned 2x2 (1.04 mrad/px) and cut to 96² (80² after the
descan margin); the bright-field centre then sits 0.25 px off the detector centre, as on an instrument.
"""
import sys, time, numpy as np, torch
torch.set_num_threads(1)
from napari_phase import stem
from napari_phase.bench import stem_descan as sd
from napari_phase.bench.stem import CROP, ENERGY_KEV, SEMIANGLE_MRAD, truth_on_grid, DET_MRAD
from napari_phase.physics.metrics import xc
ab = np.load("/tmp/abcase/ab.npz"); ours = np.load("/tmp/abcase/ours.npz")
a = ab["data"][..., :252, :252].reshape(56, 56, 126, 2, 126, 2).sum((3, 5))
det_ab = float(ab["mrad"][0]) * 2
M = 8
a = np.ascontiguousarray(a[..., 23 - M:103 + M, 23 - M:103 + M])  # 96² with margin; BF centre at 39.75+M
print("abTEM detector mrad/px", det_ab, a.shape, file=sys.stderr)
phase, ppx = ours["phase"], float(ours["phase_px"])
methods = sys.argv[1].split(",") if len(sys.argv) > 1 else ["icom", "cnn", "ssb"]
def run(name, d, det, ds):
    kw = dict(energy_kev=ENERGY_KEV, scan_step_a=sd.STEP_A, detector_mrad_per_px=det, descan=ds)
    if name == "icom": return stem.icom(d, **kw)
    if name == "ssb": return stem.ssb(d, semiangle_mrad=SEMIANGLE_MRAD, **kw)
    return stem.cnn(d, semiangle_mrad=SEMIANGLE_MRAD, device="cpu", **kw)
for name in methods:
    for sim_name, big, det, margin in (("abTEM", a, det_ab, M),):
        for label, win in (("whole cells", sd.WHOLE), ("37x45 window", sd.PART)):
            w = big[win]
            dy, dx = sd.descan_shifts(w.shape[:2])
            cases = {"none": np.ascontiguousarray(w[..., margin:-margin, margin:-margin]), "offset+descan": sd.add_descan(w, dy, dx, margin)}
            for added, d in cases.items():
                for mode in ("plane", "off"):
                    t = time.perf_counter(); r = run(name, d, det, mode)
                    px = r.pixel_size_a; origin = (win[0].start * sd.STEP_A, win[1].start * sd.STEP_A)
                    tr = truth_on_grid(phase, ppx, r.phase.shape, px, origin); c = int(round(CROP * sd.STEP_A / px))
                    fit = (r.metadata.get("descan") or {}).get("summary", r.metadata.get("descan_skipped", ""))
                    print(f"| {name} | {sim_name} | {label} | {added} | {mode} | {xc(r.phase, tr, c):.3f} | {100*sd.plane_fraction(r.phase, c):.1f} | {100*sd.plane_fraction(tr, c):.1f} | {fit} | {time.perf_counter()-t:.0f} s |", flush=True)
