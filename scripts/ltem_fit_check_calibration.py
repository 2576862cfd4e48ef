"""Issue 17 §3: the fit check's warning against SITIE's phase accuracy.

    PYTHONPATH=src python scripts/ltem_fit_check_calibration.py [seed]    (about 1 min)

72 simulated 128² windows (3 textures × −0.25/−1/−4 mm × noise 0/10/50/100 % × 0/4 particles)
and the strong-phase class (wires, rods, particles; one image at −0.4 mm, 128², the same seed);
per case SITIE's phase accuracy (Pearson, 8 px crop) and the fit check's unexplained fraction;
then how many cases below 0.85 the warning misses and how many above 0.95 it flags. The
threshold (fit_check.WARN_UNEXPLAINED) was chosen on seed 1; other seeds are held out. The
largest unexplained fraction on the grid and the smallest on the strong-phase class bound
fit_check.WARN_NONLINEAR (SITIE's unexplained fraction is the image's linear_unexplained_fraction).
"""
import sys

import torch

from napari_phase.ltem import sitie
from napari_phase.ltem.fit_check import WARN_NONLINEAR, WARN_UNEXPLAINED
from napari_phase.ltem.simulate import simulate
from napari_phase.ltem.simulate_strong import STRONG_PHASE_CASES, strong_phase_case
from napari_phase.physics.metrics import pearson_accuracy

torch.set_num_threads(1)
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
low, high, missed, false = 0, 0, [], []
grid_u, strong_u = [], []


def score(case, acc, r):
    global low, high
    u = r.metadata["fit_check"]["unexplained_fraction"]
    warned = r.metadata["fit_warning"] is not None
    case = f"{case}: acc {acc:.3f}, unexplained {u:.3f}"
    print(case, "WARNED" if warned else "", flush=True)
    if acc < 0.85:
        low += 1
        if not warned:
            missed.append(case)
    if acc > 0.95:
        high += 1
        if warned:
            false.append(case)
    return u


for tex in ("stripes", "skyrmions", "bubbles"):
    for dz in (-0.25e6, -1e6, -4e6):
        for noise in (0.0, 0.1, 0.5, 1.0):
            for nc in (0, 4):
                s = simulate(tex, (128, 128), pixel_size_nm=5.0, defocus_nm=dz, noise=noise, n_contaminants=nc, seed=seed, boundary="window")
                r = sitie(s.image, pixel_size_nm=5.0, defocus_nm=dz)
                acc = pearson_accuracy(r.phase, s.phase_m + s.phase_e, 8)
                grid_u.append(score(f"{tex} {dz / 1e6:g} mm {noise:.0%} {nc} particles", acc, r))
for kind in STRONG_PHASE_CASES:
    s = strong_phase_case(kind, seed, shape=(128, 128), defocus_nm=(-4e5,))
    r = sitie(s.series[0], pixel_size_nm=s.pixel_size_nm, defocus_nm=-4e5, voltage_kv=300.0)
    strong_u.append(score(f"strong-phase {kind} -0.4 mm", pearson_accuracy(r.phase, s.phase_m + s.phase_e, 8), r))
print(f"largest unexplained on the grid {max(grid_u):.3f}; smallest on the strong-phase class {min(strong_u):.3f} "
      f"(WARN_NONLINEAR {WARN_NONLINEAR})")
print(f"seed {seed}, threshold {WARN_UNEXPLAINED}: missed {len(missed)} of {low} below 0.85; flagged {len(false)} of {high} above 0.95")
for c in missed:
    print("  missed:", c)
for c in false:
    print("  flagged:", c)
