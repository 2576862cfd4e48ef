"""How strongly a FlowTIE model responds to the defocus step it is told (thin held-out CeO2 [001] 3 nm,
noise-free): PSNR against σV and the phase std ratio at dz, dz/2 and 2dz. A model that ignores dz is wrong.

    python scripts/flowtie_dz_response.py MODEL.pt [MODEL.pt ...]
"""
import math
import sys

import numpy as np

from napari_phase.flowtie import evaluate as ev, flowtie
from napari_phase.physics.metrics import psnr

bank = ev.heldout_bank(thicknesses_nm=(3.0,), names=("CeO2",), zone_axes=((0, 0, 1),))
s = ev.cases(bank, doses=(math.inf,))[0]
kw = dict(pixel_size_a=s["pixel_size_a"], energy_kev=s["energy_kev"], semiangle_mrad=s["alpha_mrad"])
for m in sys.argv[1:]:
    out = []
    for f in (1.0, 0.5, 2.0):
        r = flowtie(s["tri"], device="cpu", model=m, defocus_step_nm=f * s["dz_nm"], **kw)
        ratio = np.std(r.phase[8:-8, 8:-8]) / np.std(s["target"][8:-8, 8:-8])
        out.append(f"dz×{f}: {psnr(r.phase, s['target'], 8):.2f} dB, std ratio {ratio:.3f}")
    print(m, "; ".join(out))
