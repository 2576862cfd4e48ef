"""The electrostatic phase's lowest spatial frequencies from the amplitude (numpy in and out).

The TIE recovers φ at a spatial frequency q from an intensity change ∝ λz q² φ̂(q): the longest
wavelengths carry almost no signal, and the Tikhonov cut-off qc of the electrostatic phase
(φ̂e·G(q), G = q⁴/(q² + qc²)², :mod:`napari_phase.physics.poisson`) shrinks them to zero (measured on the benchmark's
flipped series at 10 % noise: φe magnitude 0.56–0.61 of the truth, and three quarters of φe's
remaining error in the lowest three rings of the field).

For particles of one material (contamination, one oxide) both the amplitude and the
electrostatic phase follow the projected thickness t: A = exp(−t/ξ), φe = σV0·t, so

    φe = k·(−ln A),   k = σV0ξ,   −ln A = −½ ln(I0/median I0)

(the "single material" assumption of Paganin et al., J. Microsc. 206 (2002) 33). With
``phase_e_prior="auto"`` the Tikhonov filter shrinks φe towards this prior instead of towards
zero — the Tikhonov solution with prior mean φp:

    φe ← φe,qc + F⁻¹[(1 − G)·F[k·p]],   p = −ln A

(mirror-padded FFT). k is fitted from the data, not assumed: least squares of φe,qc against the
equally filtered prior F⁻¹[G·F[p]] over the inner pixels. The prior is used only when that
filtered prior explains the recovered φe (correlation ≥ :data:`MIN_PRIOR_CORRELATION`) with
k > 0; otherwise φe is returned unchanged (e.g. no absorbing particles, or a film whose thickness
varies without changing its amplitude — then the long wavelengths stay shrunk, as before).
"""

from __future__ import annotations

import numpy as np

from ..physics.poisson import mirror_pad

PHASE_E_PRIORS = ("auto", "none")
#: the filtered amplitude prior must correlate at least this well with the recovered φe to be used
#: (measured on the benchmark's series with contaminants: 0.79–0.81)
MIN_PRIOR_CORRELATION = 0.5
#: pixels at the edges left out of the fit of k
MARGIN_PX = 8


def _split(a: np.ndarray, px: float, qc: float) -> tuple[np.ndarray, np.ndarray]:
    """(F⁻¹[G·F a], F⁻¹[(1 − G)·F a]) with the Tikhonov gain G = q⁴/(q² + qc²)² on the mirror-padded grid."""
    ny, nx = a.shape
    g = mirror_pad(np.asarray(a, dtype=np.float64))
    qy = np.fft.fftfreq(g.shape[0], d=px)[:, None]
    qx = np.fft.fftfreq(g.shape[1], d=px)[None, :]
    q2 = qy**2 + qx**2
    gain = q2**2 / (q2 + float(qc) ** 2) ** 2
    f = np.fft.fft2(g)
    return np.real(np.fft.ifft2(f * gain))[:ny, :nx], np.real(np.fft.ifft2(f * (1 - gain)))[:ny, :nx]


def amplitude_prior(phase_e: np.ndarray, intensity0: np.ndarray, pixel_size_nm: float, qc_per_nm: float) -> tuple[np.ndarray, dict]:
    """φe (rad) with its Tikhonov-shrunk lowest frequencies taken from k·(−ln A) (module docstring).
    ``intensity0``: the in-focus intensity (counts, same frame; the series job passes the mean of
    the two in-focus images — the mean of a strong-phase series carries its caustics); ``qc_per_nm``: the cut-off
    φe was solved with. Returns (φe float32, info: k_rad, correlation, used)."""
    pe = np.asarray(phase_e, dtype=np.float64)
    i0 = np.asarray(intensity0, dtype=np.float64)
    med = float(np.median(i0))
    if not np.isfinite(med) or med <= 0 or min(pe.shape) <= 2 * MARGIN_PX + 4:
        return pe.astype(np.float32), {"used": False, "reason": "no usable in-focus intensity"}
    prior = -0.5 * np.log(np.clip(i0 / med, 0.05, None))
    high, low = _split(prior, pixel_size_nm, qc_per_nm)
    m = MARGIN_PX
    a = high[m:-m, m:-m].ravel()
    b = pe[m:-m, m:-m].ravel()
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    corr = float((a * b).sum() / den) if den > 0 else 0.0
    k = float((a * b).sum() / (a * a).sum()) if (a * a).sum() > 0 else 0.0
    used = corr >= MIN_PRIOR_CORRELATION and k > 0
    info = {"used": bool(used), "k_rad": k, "correlation": corr,
            "meaning": "φe's lowest frequencies from k·(−ln A), A² = in-focus intensity / median (one material)"}
    if not used:
        return pe.astype(np.float32), info
    return (pe + k * low).astype(np.float32), info
