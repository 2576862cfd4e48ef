"""abTEM cross-check of the 4D-STEM descan defaults, step 3 of 3: bench/stem_descan.py's table on the
abTEM scan (same atoms, positions and truth). The steps and commands: scripts/abtem_descan_ours.py.

    PYTHONPATH=src .venv/bin/python scripts/abtem_descan_evalab.py [icom,ssb,cnn]
"""
import sys
import types

import numpy as np
import torch

from napari_phase.bench import stem_descan as sd

torch.set_num_threads(1)
ab = np.load("/tmp/abcase/ab.npz")
ours = np.load("/tmp/abcase/ours.npz")
# abTEM's 253² patterns at 0.52 mrad/px, binned 2x2; the 0.25 px centre offset this leaves is kept
binned = ab["data"][..., :252, :252].reshape(56, 56, 126, 2, 126, 2).sum((3, 5))
det_mrad = float(ab["mrad"][0]) * 2
M = sd.MARGIN_PX
sim = types.SimpleNamespace(data=np.ascontiguousarray(binned[..., 23 - M:103 + M, 23 - M:103 + M]),
                            phase=ours["phase"], phase_pixel_size_a=float(ours["phase_px"]))
names = tuple(sys.argv[1].split(",")) if len(sys.argv) > 1 else ("icom", "cnn", "ssb")
rows = sd.run(names, log=lambda m: print(m, file=sys.stderr), sim=sim, detector_mrad_per_px=det_mrad)
print(f"abTEM scan, detector {det_mrad:.4f} mrad/px\n")
print(sd.markdown(rows))
