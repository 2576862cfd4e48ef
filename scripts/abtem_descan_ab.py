"""abTEM cross-check of the 4D-STEM descan defaults, step 2 of 3 (abTEM scan of the same atoms and
positions; run in a separate venv with abtem). The steps and commands: scripts/abtem_descan_ours.py."""
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
