"""Regularisation chosen from the data: the noise level of an image and the Tikhonov cut-off of
the TIE that the noise calls for (numpy; used by ``qc_per_nm="auto"`` of SITIE and TIE).

Noise: Immerkær's estimator (Immerkær 1996, "Fast noise variance estimation"): the image
convolved with the mask N = [[1, −2, 1], [−2, 4, −2], [1, −2, 1]] (the difference of two
Laplacians, blind to planes and nearly blind to smooth contrast) gives, for white Gaussian noise
of standard deviation σ, |I ∗ N| of mean σ·6·√(2/π), so σ = √(π/2)·mean|I ∗ N|/6. On the
project's simulated LTEM images (128², 5 nm, −0.1 mm and −1 mm) it returns 0.098–0.103 × mean for
10 % noise, 0.29–0.31 for 30 %, and ≤ 0.004 for noise-free ones.

Cut-off: the TIE estimate with cut-off qc, φ_qc = ∇⁻²_qc D (D = −(2π/λ)∂I/∂z / I0, the
regularised inverse Laplacian of :mod:`napari_phase.physics.poisson`), predicts the data F·D̂ with
F(q) = q⁴/(q² + qc²)². Morozov's discrepancy principle picks the qc at which the misfit equals the
noise: mean over pixels of |(1 − F) D̂|² (Parseval) = σ_D², with σ_D the noise of D from σ. The
misfit grows monotonically with qc, so qc is found by bisection (on log qc). Equal noise in every
pixel is assumed; the mirror padding of the solver is used, so the edges count like the interior.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..physics.poisson import mirror_pad

_MASK = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of white noise in a 2-D image (Immerkær's estimator, see module doc);
    for (N, Y, X) the root-mean-square over the images. Same unit as the image."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3:
        return float(np.sqrt(np.mean([noise_sigma(f) ** 2 for f in a])))
    if min(a.shape) < 3:
        return 0.0
    c = ndimage.convolve(a, _MASK, mode="reflect")[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(c).mean() / 6.0)


def misfit(d_hat: np.ndarray, q2: np.ndarray, qc: float) -> float:
    """Mean-square misfit (per pixel) of the cut-off-qc TIE estimate: mean |(1 − F) D̂|² / n."""
    f = q2**2 / (q2 + qc**2) ** 2 if qc > 0 else np.ones_like(q2)
    r = (1.0 - f) * d_hat
    r.flat[0] = 0.0  # the mean is not part of the fit
    return float((np.abs(r) ** 2).sum() / d_hat.size**2)


def discrepancy_qc(d: np.ndarray, sigma_d: float, pixel_size: float, *, pad: bool = True, tau: float = 1.0) -> float:
    """Tikhonov cut-off qc (cycles per unit of ``pixel_size``) by the discrepancy principle:
    the qc whose misfit (:func:`misfit`) equals (τ·σ_D)², for the source ``d`` (Y, X) of the
    Poisson equation with white noise σ_D per pixel. 0 when σ_D is 0; the Nyquist frequency
    when even the largest cut-off fits the data to within the noise (the image is noise)."""
    sigma_d = float(sigma_d)
    if not np.isfinite(sigma_d) or sigma_d <= 0:
        return 0.0
    g = mirror_pad(np.asarray(d, dtype=np.float64)) if pad else np.asarray(d, dtype=np.float64)
    g = g - g.mean()
    d_hat = np.fft.fft2(g)
    qy = np.fft.fftfreq(g.shape[0], d=pixel_size)[:, None]
    qx = np.fft.fftfreq(g.shape[1], d=pixel_size)[None, :]
    q2 = qy**2 + qx**2
    target = (float(tau) * sigma_d) ** 2
    q_hi = 0.5 / pixel_size
    if misfit(d_hat, q2, q_hi) <= target:
        return q_hi
    q_lo = 1e-3 / (max(g.shape) * pixel_size)
    if misfit(d_hat, q2, q_lo) >= target:
        return 0.0
    lo, hi = np.log(q_lo), np.log(q_hi)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if misfit(d_hat, q2, float(np.exp(mid))) < target:
            lo = mid
        else:
            hi = mid
    return float(np.exp(0.5 * (lo + hi)))


def radial_power(g_hat: np.ndarray, qr: np.ndarray, nbins: int) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged |ĝ|² in ``nbins`` rings of |q| (bin index per pixel, mean per ring)."""
    idx = np.minimum((qr / qr.max() * nbins).astype(int), nbins - 1)
    p = np.abs(g_hat) ** 2
    s = np.bincount(idx.ravel(), p.ravel(), nbins)
    n = np.bincount(idx.ravel(), minlength=nbins)
    return idx, s / np.maximum(n, 1)


def wiener_filter(d: np.ndarray, sigma_d: float, pixel_size: float, *, pad: bool = True, apply_to: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Wiener-filtered copy of ``d`` (Y, X) with white noise σ_D per pixel:
    Ŵ(q) = max(0, 1 − σ_D²·n / P(q)), P the ring average of |D̂|² over |q| (n pixels; the noise
    power of white noise is σ_D²·n in numpy's unnormalised FFT), made monotone (non-increasing
    Returns (filtered d, the highest ring |q| that the filter passes by at least ½, cycles per
    unit of ``pixel_size``; 0 if none does). ``apply_to``: filter that map instead of ``d``."""
    a = np.asarray(d, dtype=np.float64)
    ny, nx = a.shape
    g = mirror_pad(a) if pad else a
    mean = g.mean()
    g_hat = np.fft.fft2(g - mean)
    qy = np.fft.fftfreq(g.shape[0], d=pixel_size)[:, None]
    qx = np.fft.fftfreq(g.shape[1], d=pixel_size)[None, :]
    qr = np.sqrt(qy**2 + qx**2)
    nbins = max(8, min(g.shape) // 2)
    idx, p = radial_power(g_hat, qr, nbins)
    w_ring = np.clip(1.0 - float(sigma_d) ** 2 * g.size / np.maximum(p, 1e-300), 0.0, 1.0)
    w_ring[0] = 1.0
    centres = (np.arange(nbins) + 0.5) / nbins * qr.max()
    passed = np.nonzero((w_ring[1:] >= 0.5) & (centres[1:] <= 0.5 / pixel_size))[0]  # corner rings: few pixels
    q_half = float(centres[passed[-1] + 1]) if passed.size else 0.0
    if apply_to is not None:  # the same filter on another map of the same shape (e.g. the phase solved from d)
        h = mirror_pad(np.asarray(apply_to, np.float64)) if pad else np.asarray(apply_to, np.float64)
        mean = h.mean()
        g_hat = np.fft.fft2(h - mean)
    out = np.real(np.fft.ifft2(g_hat * w_ring[idx])) + mean
    return out[:ny, :nx], q_half
