"""abTEM cross-check of the 4D-STEM descan defaults (issue 16 §1): three steps, two Pythons.

    .venv/bin/python scripts/abtem_descan_ours.py        # atoms + our truth -> /tmp/abcase (project venv)
    /tmp/abt/bin/python scripts/abtem_descan_ab.py       # abTEM scan of the same atoms and positions
                                                         # (a separate venv: pip install abtem ase; GPL, never in the core)
    PYTHONPATH=src .venv/bin/python scripts/abtem_descan_evalab.py icom,ssb,cnn   # scores (markdown rows)

abTEM's patterns (0.52 mrad/px) are binned 2x2 (1.04 mrad/px) and cut to 96² (80² after the
descan margin); the bright-field centre then sits 0.25 px off the detector centre, as on an instrument.
"""
import numpy as np, ase.io, abtem, time
abtem.config.set({"device": "cpu", "fft": "numpy"})
atoms = ase.io.read("/tmp/abcase/atoms.traj")
step = 5.411 / 26
o = 13.289055079622935
pot = abtem.Potential(atoms, sampling=0.1, slice_thickness=2.0, parametrization="kirkland", projection="infinite")
probe = abtem.Probe(energy=300e3, semiangle_cutoff=20)
scan = abtem.GridScan(start=(o, o), end=(o + 55 * step, o + 55 * step), gpts=(56, 56), endpoint=True)
det = abtem.PixelatedDetector(max_angle="cutoff")
t = time.time()
m = probe.scan(pot, scan=scan, detectors=det).compute()
arr = np.asarray(m.array)
print("shape", arr.shape, "angular sampling", m.angular_sampling, "time", time.time() - t)
np.savez("/tmp/abcase/ab.npz", data=arr.transpose(1, 0, 3, 2).astype(np.float32), mrad=np.array(m.angular_sampling))
