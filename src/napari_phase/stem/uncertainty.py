"""σ of iCoM's phase by Poisson noise propagation (numpy; see :mod:`napari_phase.uncertainty`).

The data are taken as electron counts n_k per detector pixel (Poisson: Var n_k = n_k). The CoM of
one pattern, m = Σ k n_k / N (N = Σ n_k, k the detector coordinate relative to the axis), then has
(delta method) the variance

    Var m_y = Σ (k_y − m_y)² n_k / N² = (⟨k_y²⟩ − m_y²) / N,    likewise for x,

so more dose (larger N) shrinks it as 1/N. iCoM is linear in the CoM field g = 2π·(detector
1/Å per px)·R(θ)F(m): the phase noise is iCoM's Fourier integration (the same mirror extension and
mean-gradient handling) of independent Gaussian draws with these variances, and σ is its
root-mean-square over K draws, smoothed over 2 px (:func:`napari_phase.uncertainty.propagate`).
One more streaming pass over the data (the second moments), then K integrations.

This is the noise part of the error only: iCoM's phase is the true phase blurred by the probe
intensity (module doc of :mod:`.com`), so against the true phase the blur is a model error that σ
does not hold; data that are not counts (scaled, noise-free simulations) give a meaningless σ.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..jobs import JobCancelled, Progress
from ..uncertainty import DEFAULT_SAMPLES, add_model_error, attach, not_computed, propagate
from ._data import iter_rows, rows_per_block
from ._grid import to_square

#: c of the model-error term c·p (p the local RMS of the phase's detail, uncertainty.highpass_proxy),
#: fitted on the validation structures only (InP, Pt, Mo, ZnO, WS2; 30 cases) to put their pooled
#: fraction within 1σ at 0.683: ``python scripts/fit_model_error_term.py icom,ssb``. Held-out
#: (bilayer, LaAlO3 × 3 doses) cases in both bands: iCoM 2/6 → 5/6, SSB 0/6 → 2/6; val: iCoM
#: 11/30 → 10/30, SSB 6/30 → 6/30 (the proxy was chosen by the val count among three).
ICOM_MODEL_ERROR_C = 0.5906
SSB_MODEL_ERROR_C = 0.6026
ICOM_MODEL = ("noise propagation: Poisson counts → CoM variance (⟨k²⟩ − ⟨k⟩²)/N per pattern → iCoM "
              "integration, RMS over {k} draws; plus a model-error term c·p in quadrature (c = {c:.3g}, p the "
              "local RMS of the phase's detail; the noise part alone: arrays['phase_sigma_noise'])")
ICOM_NOTE = ("noise part (the data must be electron counts) plus a model-error term fitted on validation structures "
             "for the probe blur: held-out cases 5 of 6 in the bands, validation cases 10 of 30 — not calibrated "
             "on every specimen (docs/benchmarks.md, Uncertainty)")


def com_variance_block(block: np.ndarray, cy: float, cx: float) -> tuple[np.ndarray, np.ndarray]:
    """(Var m_y, Var m_x) in detector px² of each pattern of ``block`` (..., ky, kx), counts."""
    ky, kx = block.shape[-2:]
    n = block.sum(axis=(-2, -1), dtype=np.float64)
    py = block.sum(axis=-1, dtype=np.float64)
    px = block.sum(axis=-2, dtype=np.float64)
    y = np.arange(ky) - cy
    x = np.arange(kx) - cx
    safe = np.where(n > 0, n, 1.0)
    var_y = (py @ y**2) / safe - ((py @ y) / safe) ** 2
    var_x = (px @ x**2) / safe - ((px @ x) / safe) ** 2
    # an empty pattern has no CoM: its variance is that of a uniform guess over the detector
    empty_y, empty_x = (ky**2 - 1) / 12.0, (kx**2 - 1) / 12.0
    return (np.where(n > 0, np.maximum(var_y, 0.0) / safe, empty_y), np.where(n > 0, np.maximum(var_x, 0.0) / safe, empty_x))


def icom_sigma_step(result, data: Any, to_phase: Callable[[np.ndarray, np.ndarray], np.ndarray], *, step_y: float,
                    step_x: float, block_rows: int | None = None, samples: int = DEFAULT_SAMPLES, seed: int = 0):
    """Job step (generator): the second-moment pass (Progress per block of rows, cancellable),
    then σ of the phase by propagation through ``to_phase(com_y_px, com_x_px)`` (iCoM's own
    linear map from a detector-frame CoM field to the phase on the scan grid), attached to
    ``result`` (centre and input shape read from its metadata). Cancelled: the result without σ."""
    meta = result.metadata
    cy, cx = meta["center_px"]
    shape = tuple(meta["input_shape"])
    var_y = np.zeros(shape[:2])
    var_x = np.zeros(shape[:2])
    n = block_rows or rows_per_block(shape)
    total = -(-shape[0] // n)
    try:
        for i, (r0, r1, block) in enumerate(iter_rows(data, n)):
            var_y[r0:r1], var_x[r0:r1] = com_variance_block(block, cy, cx)
            yield Progress(i + 1, total, f"iCoM uncertainty: scan row {r1}/{shape[0]}", result)
    except JobCancelled:
        return not_computed(result, "cancelled before σ was computed: the result is kept without σ")
    sd_y, sd_x = np.sqrt(var_y), np.sqrt(var_x)

    def apply(noise: np.ndarray) -> dict[str, np.ndarray]:
        return {"phase": to_phase(noise[0] * sd_y, noise[1] * sd_x)}

    sigma = propagate(apply, lambda rng: rng.standard_normal((2,) + shape[:2]), samples=samples, seed=seed)["phase"]
    sigma = np.maximum(to_square(sigma, step_y, step_x)[0], 0.0)
    total = add_model_error(result, sigma, ICOM_MODEL_ERROR_C)
    return attach(result, {"phase": total}, model=ICOM_MODEL.format(k=samples, c=ICOM_MODEL_ERROR_C), calibrated=False,
                  note=ICOM_NOTE, samples=samples, noise_model="Poisson counts", model_error_c=ICOM_MODEL_ERROR_C,
                  model_error_proxy="highpass")


# ----------------------------------------------------------------------------- SSB

SSB_MODEL = ("analytic Poisson propagation: Var Φ̂(Q) = g(Q)² Σ_k |W(k,Q)|² S_k / (N(Q)·level)², "
             "Var φ = Σ_Q Var Φ̂(Q) / n²; plus a model-error term c·p in quadrature (c = {c:.3g}, p the local RMS of "
             "the phase's detail; the noise part alone: arrays['phase_sigma_noise'])")
SSB_NOTE = ("noise part (the data must be electron counts) plus a model-error term fitted on validation structures: "
            "the Wiener weight's shrinkage at low dose is not in it (held-out cases 2 of 6 in the bands, validation "
            "6 of 30): not calibrated (docs/methods.md, Uncertainty)")


def ssb_phase_sigma(weights, disc_counts: np.ndarray, norm: np.ndarray, used: np.ndarray, gain, level: float,
                    n_scan: int) -> float:
    """σ (rad) of SSB's phase, uniform over the scan, for Poisson counts (module doc of ssb.py).

    SSB's Φ̂(Q) = g(Q) Σ_k W(k, Q) G(k, Q) / (N(Q)·level) with G(k, Q) = Σ_p I(k; r_p) e^{−2πiQ·r_p}.
    Counts are independent per detector pixel and position with Var I = I, so
    Var G(k, Q) = Σ_p I(k; r_p) = S_k (the pixel's total over the scan) and, pixels independent,

        Var Φ̂(Q) = g(Q)² Σ_k |W(k, Q)|² S_k / (N(Q)·level)².

    Distinct Q are uncorrelated (Cov = Σ_p I e^{−2πi(Q−Q')·r} ≈ 0 for a weak object; Φ̂(−Q) = Φ̂(Q)*),
    so φ = Re IFFT Φ̂ has Var φ = Σ_Q Var Φ̂(Q) / n² at every position (n = scan positions).
    ``weights``: the sparse trotter W (disc pixels × Q), ``disc_counts`` S_k, ``norm`` N(Q), ``used``
    the Q with N > 0, ``gain`` g per used Q (None: 1), ``level`` the mean bright-field count."""
    w2 = abs(weights).power(2).T.tocsr()
    v = np.asarray(w2 @ np.asarray(disc_counts, np.float64)).ravel()[used]
    g2 = 1.0 if gain is None else np.asarray(gain, np.float64) ** 2
    var_q = g2 * v / (np.asarray(norm, np.float64)[used] * float(level)) ** 2
    return float(np.sqrt(max(float(np.sum(var_q)), 0.0)) / n_scan)
