"""φe that never loses to the plain algebra: a refined electrostatic phase is kept only when it
explains the recorded images better (numpy in and out; issue 17 §2).

With a flipped series, the plain algebra of the two TIE phases (same cut-off and ∂I/∂z as φm) is

    φe,plain = (φ + φflip)/2.

The refinements of φe — its own cut-off ``qc_e_per_nm``, the per-frequency ∂I/∂z
(:func:`.series_solve.didz_spectral`, a weak-object defocus response) and the lowest frequencies
from k·(−ln A) (:mod:`.phase_e_prior`, one material) — gain on weak-phase specimens and lose where
their assumptions fail: on strong-phase specimens (tens of radians, :mod:`.simulate_strong`) the
weak-object response is wrong and the larger cut-off shrinks φe further.

The test: both candidates, each with the same φm, predict both recorded series — the wave
A·e^{i(φe ± φm)}, A² the side's in-focus image (the mean of the image for a single image), imaged
at each defocus with the microscope's default transfer (:func:`.series_register.model_series`) —
and each defocused image is fitted by a·M_k + b over the inner pixels
(:func:`.series_register.model_residuals`). The misfit is the mean squared residual over both
sides' defocused images divided by the mean intensity².

The images say little about φe's longest wavelengths (the intensity responds to ∇²φ), which the
cut-off and the prior change most: on the weak-phase benchmark the 2/FOV cut-off raises the misfit
by 0.8–2.2 % while it raises φe's accuracy by 0.02–0.07. Where the specimen absorbs as it shifts the
phase — the plain φe agrees with the absorption −ln A = −½ ln(I0/median I0) of the in-focus images
(Pearson ≥ :data:`MIN_AMPLITUDE_AGREEMENT` over the inner pixels) — the amplitude is a witness at
every frequency, and it decides: the refined φe is kept when it agrees with −ln A no worse than the
plain one (within :data:`AGREEMENT_TOLERANCE`). Where it does not witness (a pure phase object, no
absorption, several materials; a single image pair, which has no in-focus image), the misfit
decides: the refined φe is kept only when it fits the images better. Otherwise φe,plain is
returned. The metadata say what was tried, both agreements, both misfits (computed only when
the misfit decides: simulating both series for both candidates costs more than the TIE itself),
which test decided and which φe was kept.
"""

from __future__ import annotations

import numpy as np

from .series_register import MARGIN_PX, model_residuals, model_series

#: ``tie(..., phase_e_check=...)``: "auto" (default) applies :func:`choose_phase_e`; "off" returns the refined φe as built
PHASE_E_CHECKS = ("auto", "off")
#: the plain φe must agree this well with −ln A (Pearson) for the amplitude to act as a witness
MIN_AMPLITUDE_AGREEMENT = 0.5
#: the refined φe may agree with −ln A this much less than the plain one and still be kept
AGREEMENT_TOLERANCE = 0.01


def amplitude_agreement(phase_e: np.ndarray, intensity0: np.ndarray, margin_px: int = MARGIN_PX) -> float:
    """Pearson correlation of φe with the absorption −ln A = −½ ln(I0/median I0) over the inner pixels."""
    i0 = np.asarray(intensity0, dtype=np.float64)
    med = float(np.median(i0))
    if not np.isfinite(med) or med <= 0:
        return 0.0
    m = int(margin_px)
    a = -0.5 * np.log(np.clip(i0 / med, 0.05, None))[m:-m, m:-m].ravel()
    b = np.asarray(phase_e, dtype=np.float64)[m:-m, m:-m].ravel()
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def flipped_misfit(series: np.ndarray, flipped: np.ndarray, phase_m: np.ndarray, phase_e: np.ndarray, defocus_nm,
                   pixel_size_nm: float, voltage_kv: float) -> float:
    """Misfit (dimensionless) of φe, φm (rad) to a series and its flipped twin already in the same
    frame (un-mirrored, registered, both (N, Y, X) counts; module docstring)."""
    z = np.asarray(defocus_nm, dtype=np.float64)
    n = z.size
    residuals = []
    for stack, phase in ((series, phase_e + phase_m), (flipped, phase_e - phase_m)):
        st = np.asarray(stack, dtype=np.float64)
        i0 = st[n // 2] if n > 1 else np.full(st.shape[-2:], float(st.mean()))
        residuals += model_residuals(st, model_series(phase, i0, z, pixel_size_nm, voltage_kv), z)
    scale = 0.5 * (float(np.mean(series)) + float(np.mean(flipped)))
    return float(np.mean(residuals)) / scale**2


def choose_phase_e(plain: np.ndarray, refined: np.ndarray, phase_m: np.ndarray, series: np.ndarray, flipped: np.ndarray,
                   defocus_nm, pixel_size_nm: float, voltage_kv: float, tried: list[str]) -> tuple[np.ndarray, dict]:
    """(φe, info): ``refined`` when the absorption witnesses φe and ``refined`` agrees with it no
    worse, or, without a witness, when ``refined`` fits both recorded series better (module
    docstring); else ``plain``. ``tried``: the refinements that made ``refined`` (for the metadata)."""
    n = np.asarray(defocus_nm).size
    if n > 1:  # the in-focus images show the amplitude; a single defocused image does not
        i0 = 0.5 * (np.asarray(series[n // 2], np.float64) + np.asarray(flipped[n // 2], np.float64))
        a_plain, a_refined = amplitude_agreement(plain, i0), amplitude_agreement(refined, i0)
    else:
        a_plain = a_refined = float("nan")
    witness = bool(a_plain >= MIN_AMPLITUDE_AGREEMENT)
    m_plain = m_refined = None  # simulating both series for both candidates is most of the check's time: only when used
    if witness:
        keep = a_refined >= a_plain - AGREEMENT_TOLERANCE
        why = "agrees with the absorption −ln A " + ("no worse than" if keep else "less than") + " the plain algebra"
    else:
        m_plain = flipped_misfit(series, flipped, phase_m, plain, defocus_nm, pixel_size_nm, voltage_kv)
        m_refined = flipped_misfit(series, flipped, phase_m, refined, defocus_nm, pixel_size_nm, voltage_kv)
        keep = m_refined < m_plain
        why = "fits the images " + ("better than" if keep else "worse than") + " the plain algebra (no absorption witness)"
    info = {"tried": list(tried), "misfit_plain": m_plain, "misfit_refined": m_refined,
            "amplitude_agreement_plain": a_plain, "amplitude_agreement_refined": a_refined,
            "amplitude_witness": bool(witness),
            "decided_by": "amplitude agreement" if witness else "misfit",
            "kept": "refined" if keep else "plain algebra (φ + φflip)/2", "reason": f"the refined φe {why}",
            "meaning": "misfit: mean squared residual of both sides' defocused images against their simulation from "
                       "φe ± φm, over mean intensity²; amplitude agreement: Pearson of φe with −ln A of the in-focus images"}
    return (refined if keep else plain), info
