"""abTEM cross-check of the 4D-STEM descan defaults (issue 16 §1): three steps, two Pythons.

    .venv/bin/python scripts/abtem_descan_ours.py        # atoms + our truth -> /tmp/abcase (project venv)
    /tmp/abt/bin/python scripts/abtem_descan_ab.py       # abTEM scan of the same atoms and positions
                                                         # (a separate venv: pip install abtem ase; GPL, never in the core)
    PYTHONPATH=src .venv/bin/python scripts/abtem_descan_evalab.py icom,ssb,cnn   # scores (markdown rows)

abTEM's patterns (0.52 mrad/px) are binned 2x2 (1.04 mrad/px) and cut to 96² (80² after the
descan margin); the bright-field centre then sits 0.25 px off the detector centre, as on an instrument.
"""
import sys, numpy as np, torch, ase.io
torch.set_num_threads(1)
from napari_phase.bench import stem_descan as sd
from napari_phase.bench.stem import ENERGY_KEV, SEMIANGLE_MRAD, DET_MRAD
from napari_phase.physics import multislice, specimens
scan = 56
window_a = multislice.wavelength_a(ENERGY_KEV) / (DET_MRAD * 1e-3)
extent = (scan - 1) * sd.STEP_A + window_a + 2.0 + 2 * sd.CELL_A
atoms = specimens.supercell("CeO2", (0, 0, 1), extent_a=(extent, extent), thickness_a=5.4)
ase.io.write("/tmp/abcase/atoms.traj", atoms)
sim = multislice.simulate_4dstem(atoms, scan_step_a=sd.STEP_A, scan_gpts=(scan, scan), energy_kev=ENERGY_KEV,
      semiangle_mrad=SEMIANGLE_MRAD, detector_mrad_per_px=DET_MRAD, detector_gpts=64, device="cpu")
print("cell", atoms.cell.lengths(), "phase px", sim.phase_pixel_size_a, sim.phase.shape, "meta", {k: v for k, v in sim.metadata.items() if "origin" in k or "scan" in k} if hasattr(sim, "metadata") else None)
np.savez("/tmp/abcase/ours.npz", data=sim.data, phase=sim.phase, phase_px=sim.phase_pixel_size_a)
print([a for a in dir(sim) if not a.startswith("_")])
