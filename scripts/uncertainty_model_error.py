"""Issue 19: does a model-error term estimated from the data calibrate SITIE's σ against the truth?

The term tried: b = φ_auto − φ (the Wiener-filtered, unregularised SITIE phase minus the default
Tikhonov one: what the cut-off removed, as far as the data show it), its square smoothed over a
Gaussian of w px and added in quadrature to the noise σ: σ_tot² = σ² + G_w * b². Prints, per case
(skyrmions / stripes / bubbles, Δf −0.1 / −1 mm, noise 10 / 30 / 100 %, 128² px, seed 1), the
fraction of pixels within σ_tot and 2σ_tot of the truth (mean removed), and the range.

    python scripts/uncertainty_model_error.py
"""

import numpy as np
from scipy import ndimage

from napari_phase.ltem import sitie
from napari_phase.ltem.simulate import simulate
from napari_phase.uncertainty import coverage


def main() -> int:
    spans = {4: [], 16: [], "noise only": []}
    for tex in ("skyrmions", "stripes", "bubbles"):
        for df in (-1e5, -1e6):
            for noise in (0.1, 0.3, 1.0):
                s = simulate(tex, shape=(128, 128), defocus_nm=df, noise=noise, seed=1)
                kw = dict(pixel_size_nm=s.pixel_size_nm, defocus_nm=df)
                r = sitie(s.image, uncertainty=True, **kw)
                b = sitie(s.image, qc_per_nm="auto", **kw).phase.astype(np.float64) - r.phase
                b -= b.mean()
                sig = r.arrays["phase_sigma"].astype(np.float64)
                line = [f"{tex:9s} Δf {df / 1e6:5.1f} mm noise {noise:4.0%}:"]
                f = coverage(r.phase, s.phase_m, sig)
                spans["noise only"].append(f[0])
                line.append(f"noise σ {f[0]:.2f}/{f[1]:.2f}")
                for w in (4, 16):
                    tot = np.sqrt(sig**2 + ndimage.gaussian_filter(b**2, w, mode="reflect"))
                    f = coverage(r.phase, s.phase_m, tot)
                    spans[w].append(f[0])
                    line.append(f"w {w}: {f[0]:.2f}/{f[1]:.2f}")
                print("  ".join(line))
    for k, v in spans.items():
        print(f"within 1σ, {k if isinstance(k, str) else f'w = {k} px'}: {min(v):.2f}–{max(v):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
