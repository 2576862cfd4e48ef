"""Quick-table cells (bench/stem.py --quick arrays: 32² scans, 1 phonon configuration, the same doses and seeds) with
descan="plane" (the default) against descan="off" (the behaviour before it), same arrays; prints each delta.

    PYTHONPATH=src python scripts/stem_descan_quick_table.py
"""
import numpy as np, torch
torch.set_num_threads(2)
from napari_phase.bench import stem as B
from napari_phase import stem
from napari_phase.physics.metrics import xc
kw = dict(energy_kev=B.ENERGY_KEV, scan_step_a=B.STEP_A, detector_mrad_per_px=B.DET_MRAD)
meths = {
 "iCoM": lambda d, ds: stem.icom(d, descan=ds, **kw),
 "SSB": lambda d, ds: stem.ssb(d, semiangle_mrad=B.SEMIANGLE_MRAD, descan=ds, **kw),
 "CNN default": lambda d, ds: stem.cnn(d, semiangle_mrad=B.SEMIANGLE_MRAD, device="cpu", descan=ds, **kw),
 "CNN network only": lambda d, ds: stem.cnn(d, semiangle_mrad=B.SEMIANGLE_MRAD, device="cpu", low_frequency=None, descan=ds, **kw),
}
worst = 0.0
for name in B.STRUCTURES:
    sim = B.simulate(name, 32, 1)
    for dose in (None, 1e5, 5e3, 500.0):
        data = B.with_dose(sim.data, dose, seed=1)
        for label, fn in meths.items():
            out = []
            for ds in ("plane", "off"):
                r = fn(data, ds)
                t = B.truth_on_grid(sim.phase, sim.phase_pixel_size_a, r.phase.shape, r.pixel_size_a)
                out.append(xc(r.phase, t, int(round(B.CROP * B.STEP_A / r.pixel_size_a))))
            worst = min(worst, out[0] - out[1])
            print(f"{name} dose {dose} {label}: plane {out[0]:.3f} off {out[1]:.3f} delta {out[0]-out[1]:+.3f}", flush=True)
print(f"worst delta {worst:+.3f}")
