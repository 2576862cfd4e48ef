"""σ of the classical TIE's phase by noise propagation (numpy; see :mod:`napari_phase.uncertainty`).

The classical TIE is linear in ∂I/∂z = (I+ − I−)/(2 dz) for a fixed in-focus image I0
(:mod:`.baselines`), but I0 enters the divergence ∇·(I0∇φ) too, and at low dose on a crystal (strong
phase gradients) its noise is not negligible (measured: CeO2 3 nm at 1e3 e/Å², noise coverage
0.21 / 0.41 with ∂I/∂z noise alone). So σ is the RMS over K draws of the change of the same solve
(I0 inside the divergence, cut-off, padding) when noise is added to all three images
(:func:`napari_phase.uncertainty.propagate`): σ² = (1/K) Σ_k [φ(I + n_k) − φ(I)]². The noise is
shot noise shaped: Var n(x) = σ_I² · Ī(x) / mean(I), Ī the image smoothed over 1 px (clipped at 0),
σ_I the noise each image shows (Immerkær's estimator, :func:`napari_phase.ltem.regularise.noise_sigma`).
White noise of the same mean variance puts too much noise in the dark pixels, where 1/I0 amplifies
it (measured: CeO2 20 nm at 1e4 e/Å², noise coverage 1.00 / 1.00 with white noise).

This is the noise part of the error only: the finite-difference ∂I/∂z (exact only while
πλ dz q² ≪ 1), the cut-off and a crystal crop's unknown edge flux are model errors σ does not hold.
"""

from __future__ import annotations

import numpy as np

from ..ltem._poisson import solve_tie
from ..ltem.regularise import noise_sigma
from ..uncertainty import DEFAULT_SAMPLES, propagate

CLASSICAL_MODEL = ("noise propagation: each image's noise (Immerkær σ, shot-noise shaped) added to I−, I0, I+ and the "
                   "classical TIE solve repeated, RMS of the change over {k} draws")
CLASSICAL_NOTE = ("noise part only: the finite-difference ∂I/∂z, the Tikhonov cut-off and the crop's edge flux are "
                  "not in σ (docs/methods.md, Uncertainty)")


def classical_sigma(tri, qc: float, uniform_i0: bool, pad: bool, *, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> dict:
    """{"phase": σ (rad)} of :func:`.baselines.solve_classical` for a prepared triplet."""
    from scipy import ndimage

    imgs = tri.images.astype(np.float64)
    shape = np.clip(ndimage.gaussian_filter(imgs, (0, 1.0, 1.0), mode="reflect"), 0.0, None)
    shape = shape / np.maximum(shape.mean(axis=(-2, -1), keepdims=True), 1e-12)
    sd = np.sqrt(shape) * np.array([noise_sigma(f) for f in imgs])[:, None, None]

    def solve(stack: np.ndarray) -> np.ndarray:
        didz = (stack[2] - stack[0]) / (2 * tri.dz_a)
        i0 = None if uniform_i0 else stack[1]
        return solve_tie(didz, tri.wavelength_a, tri.pixel_size_a, intensity=i0, qc=qc, pad=bool(pad))

    base = solve(imgs)
    return propagate(lambda noise: {"phase": solve(imgs + noise) - base}, lambda rng: rng.standard_normal(imgs.shape) * sd,
                     samples=samples, seed=seed)
