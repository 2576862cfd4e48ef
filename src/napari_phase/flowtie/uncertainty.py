"""σ of the classical TIE's phase by noise propagation (numpy; see :mod:`napari_phase.uncertainty`).

The classical TIE is linear in ∂I/∂z = (I+ − I−)/(2 dz) for a fixed in-focus image I0
(:mod:`.baselines`): noise n± of the standard deviations σ± that the two defocused images show
(Immerkær's estimator, :func:`napari_phase.ltem.regularise.noise_sigma`, on the prepared images,
mean(I0) = 1) gives ∂I/∂z noise of variance (σ+² + σ−²)/(2 dz)², and the phase noise is the same
solver (I0 inside the divergence, cut-off, padding) applied to draws of it; σ is the RMS over K
draws (:func:`napari_phase.uncertainty.propagate`). The noise of I0 itself (a second-order,
multiplicative term) is neglected.

This is the noise part of the error only: the finite-difference ∂I/∂z (exact only while
πλ dz q² ≪ 1), the cut-off and a crystal crop's unknown edge flux are model errors σ does not hold.
"""

from __future__ import annotations

import numpy as np

from ..ltem._poisson import solve_tie
from ..ltem.regularise import noise_sigma
from ..uncertainty import DEFAULT_SAMPLES, propagate

CLASSICAL_MODEL = ("noise propagation: noise of I+ and I− (Immerkær σ, white Gaussian) through the classical TIE "
                   "solver with the in-focus image fixed, RMS over {k} draws")
CLASSICAL_NOTE = ("noise part only: the finite-difference ∂I/∂z, the Tikhonov cut-off and the crop's edge flux are "
                  "not in σ (docs/methods.md, Uncertainty)")


def classical_sigma(tri, qc: float, uniform_i0: bool, pad: bool, *, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> dict:
    """{"phase": σ (rad)} of :func:`.baselines.solve_classical` for a prepared triplet."""
    minus, plus = (tri.images[k].astype(np.float64) for k in (0, 2))
    sd = float(np.hypot(noise_sigma(minus), noise_sigma(plus))) / (2 * tri.dz_a)
    i0 = None if uniform_i0 else tri.images[1].astype(np.float64)

    def apply(noise: np.ndarray) -> dict:
        return {"phase": solve_tie(noise, tri.wavelength_a, tri.pixel_size_a, intensity=i0, qc=qc, pad=bool(pad))}

    return propagate(apply, lambda rng: rng.normal(0.0, sd, tri.shape), samples=samples, seed=seed)
