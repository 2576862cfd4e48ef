"""Issue 19: the re-fit σ of the pixel-wise solver and SIPRAD against the spread of the method over
noise draws (its noise error, no truth involved). 64² stripes at −1 mm (ltem.simulate, seed 3),
Gaussian noise of ``level`` × the mean, 4 draws (SIPRAD: seed = draw); σ from draw 0; prints the
median σ over the median per-pixel standard deviation of the 4 results (mean removed).

    python scripts/refit_sigma_vs_spread.py pw|siprad [iterations] [level]
"""

import sys

import numpy as np
import torch

from napari_phase.ltem.pixelwise import pixelwise
from napari_phase.ltem.siprad import siprad
from napari_phase.ltem.simulate import simulate


def main() -> int:
    torch.set_num_threads(1)
    which = sys.argv[1] if len(sys.argv) > 1 else "pw"
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 150
    level = float(sys.argv[3]) if len(sys.argv) > 3 else 0.2
    df = -1e6
    s = simulate("stripes", shape=(64, 64), defocus_nm=df, noise=0.0, seed=3)
    kw = dict(pixel_size_nm=s.pixel_size_nm, defocus_nm=df, num_threads=1)
    outs, sigma = [], None
    for seed in range(4):
        img = (s.image_clean + level * s.image_clean.mean() * np.random.default_rng(seed).standard_normal(s.image_clean.shape))
        img = img.astype(np.float32)
        if which == "pw":
            r = pixelwise(img, uncertainty=seed == 0, **kw)
        else:
            r = siprad(img, uncertainty=seed == 0, seed=seed, iterations=iterations, **kw)
        if seed == 0:
            sigma = r.arrays["phase_sigma"]
        outs.append(r.phase - r.phase.mean())
    spread = np.stack(outs).std(axis=0, ddof=1)
    print(f"{which} noise {level:g}: median σ / median spread over 4 draws = {np.median(sigma) / np.median(spread):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
