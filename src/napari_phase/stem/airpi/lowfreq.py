"""Low spatial frequencies of the CNN phase from a linear, measured reconstruction (iCoM or SSB).

The CNN predicts each exit wave from a 3x3 kernel of patterns, so the long-range (low-q) part of
the stitched phase is only constrained patch by patch; on weak objects it comes out shrunk
(scripts/stem_error_bands.py measures this per band). Two linear methods measure exactly those
frequencies:

* **iCoM** — the CoM theorem for a phase object: ⟨k⟩(r_p) = (1/2π) ∇φ ⊛ |ψ_in|², so iCoM returns
  φ ⊛ |ψ_in|² with the optics' own transfer T(q) = FT[|ψ_in|²](q) / FT[|ψ_in|²](0) (the aperture's
  autocorrelation, 1 at q = 0, 0 at 2α/λ; :func:`icom_transfer`), which is divided out;
* **SSB** — linear in the data and unbiased for a weak phase object inside 0 < |q| < 2α/λ (T = 1).

The two estimates are combined in Fourier space with a smooth crossover L(q) (1 below
q_c(1 − w), a cos² ramp to 0 at q_c(1 + w), q_c = ``cutoff`` · α/λ) and a noise-adaptive
confidence c(q) (:func:`com_confidence`: the CoM field of a phase object is curl-free, so its
transverse part measures the noise, and c = ε·SNR/(1 + ε·SNR) is the inverse-variance weight of
the source against a CNN whose error power is ε times the signal's):

    Φ(q) = w(q) · Φ_src(q) / T(q)  +  (1 − w(q)) · Φ_cnn(q),    w = L · c · clip(T / T_MIN, 0, 1)

with T clipped below at ``T_MIN``; w fades out where T < T_MIN (a defocused probe's T falls fast
and can turn negative: there the source carries no low-q information and the CNN is kept).
The source (scan grid) is interpolated onto the CNN's finer grid (cubic spline) and both maps are
mirror-extended about the same lines before their FFTs (no edge wrap-around).

``DEFAULT_CUTOFF`` and ``DEFAULT_EPSILON`` were chosen on simulated scans of TRAINING-split
structures (scripts/stem_lowfreq_crossover.py: graphene, hBN, MoS2, SrTiO3, GaAs, MgO at 5e3, 1e5
e/Å² and noise-free; the rule: the best mean xc at 1e5 and ∞ among the settings that lower no case
by more than 0.005), never on the held-out bench data.
"""

from __future__ import annotations

import math

import numpy as np

#: default crossover q_c as a fraction of α/λ and its relative half-width w (chosen on the training side)
DEFAULT_CUTOFF = 1.2
DEFAULT_WIDTH = 0.5
#: the iCoM transfer is divided out only down to this value (noise amplification ≤ 1/T_MIN)
T_MIN = 0.2
#: the CNN's error power as a fraction of the signal's, for the noise-adaptive weight (com_confidence)
DEFAULT_EPSILON = 0.1
SOURCES = ("icom", "ssb")


def crossover(q_inv_a: np.ndarray, cutoff_inv_a: float, width: float = DEFAULT_WIDTH) -> np.ndarray:
    """L(q): 1 for q ≤ q_c(1 − w), cos²(π/2 · (q − q_c(1 − w)) / (2 w q_c)) up to q_c(1 + w), then 0."""
    q = np.asarray(q_inv_a, dtype=np.float64)
    if cutoff_inv_a <= 0:
        return np.zeros_like(q)
    lo, hi = cutoff_inv_a * (1 - width), cutoff_inv_a * (1 + width)
    t = np.clip((q - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return np.where(t >= 1.0, 0.0, np.cos(0.5 * math.pi * t) ** 2)


def icom_transfer(q_inv_a: np.ndarray, *, energy_kev: float, semiangle_mrad: float, defocus_a: float = 0.0,
                  cs_mm: float = 0.0, samples: int = 24) -> np.ndarray:
    """T(q) = FT[|ψ_in|²](q) / FT[|ψ_in|²](0) for ψ_in(k) = A(k)·exp(−iχ(k)) (hard aperture at α,
    χ of physics.optics): the autocorrelation Σ_k ψ_in(k + q) ψ_in*(k) of the pupil, computed on a
    k-grid of ``samples`` px per α/λ and read radially (the probe is round). Real, 0 beyond 2α/λ."""
    from ...physics.optics import chi, electron_wavelength_a

    lam = electron_wavelength_a(energy_kev)
    k_ap = semiangle_mrad * 1e-3 / lam
    dk = k_ap / samples
    n = 8 * samples  # pupil 2·samples wide, autocorrelation 4·samples: no wrap-around
    k = np.fft.fftfreq(n, 1.0 / (n * dk))
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    pupil = ((k2 < k_ap**2) * np.exp(-1j * chi(k2, lam, defocus_a, cs_mm * 1e7))).astype(np.complex64)  # ~0.3 MB
    auto = np.fft.fft2(np.abs(np.fft.ifft2(pupil)) ** 2)  # FT of the probe intensity
    prof = np.real(auto[0, : n // 2]) / np.real(auto[0, 0])
    return np.interp(np.abs(np.asarray(q_inv_a, dtype=np.float64)), np.arange(n // 2) * dk, prof, right=0.0)


def com_confidence(com_y: np.ndarray, com_x: np.ndarray, pixel_a: float, *, epsilon: float = None):
    """c(q) = ε·SNR(q) / (1 + ε·SNR(q)), how far the measured CoM field determines the phase at |q|.

    A phase object's CoM field is a gradient (the CoM theorem): its longitudinal part
    ĝ_∥ = q̂·ĝ carries the signal, its transverse part ĝ_⊥ = q̂ × ĝ only noise (shot noise, or model
    error where the specimen is not a phase object). With N = mean |ĝ_⊥|² (white) and P_∥(q) the
    ring mean of |ĝ_∥|², SNR(q) = max(P_∥(q)/N − 1, 0). Treating the CNN's error power as ε times
    the signal power, inverse-variance weighting gives the source the weight ε·SNR/(1 + ε·SNR).
    The maps are on the scan frame, square pixels of ``pixel_a`` Å (any unit: only ratios enter),
    mirror-extended as for iCoM (curl-free extension). Returns a callable of |q| (1/Å)."""
    epsilon = DEFAULT_EPSILON if epsilon is None else float(epsilon)
    gy = np.asarray(com_y, dtype=np.float64)
    gx = np.asarray(com_x, dtype=np.float64)
    gx = np.block([[gx, -gx[:, ::-1]], [gx[::-1, :], -gx[::-1, ::-1]]])
    gy = np.block([[gy, gy[:, ::-1]], [-gy[::-1, :], -gy[::-1, ::-1]]])
    qy = np.fft.fftfreq(gy.shape[0], pixel_a)[:, None]
    qx = np.fft.fftfreq(gy.shape[1], pixel_a)[None, :]
    q = np.hypot(qy, qx)
    safe = np.where(q > 0, q, 1.0)
    fy, fx = np.fft.fft2(gy), np.fft.fft2(gx)
    par = np.abs((qy * fy + qx * fx) / safe) ** 2
    perp = np.abs((qx * fy - qy * fx) / safe) ** 2
    nz = q > 0
    noise = max(float(perp[nz].mean()), 1e-30 * max(float(par[nz].mean()), 1e-300))
    dq = 2.0 / (gy.shape[0] * pixel_a)  # rings two FFT pixels wide
    ring = np.floor(q / dq).astype(int)
    n_ring = int(ring[nz].max()) + 1
    p_ring = np.bincount(ring[nz], weights=par[nz], minlength=n_ring)
    count = np.bincount(ring[nz], minlength=n_ring)
    have = count > 0
    centres = (np.arange(n_ring)[have] + 0.5) * dq
    snr = np.maximum(p_ring[have] / count[have] / noise - 1.0, 0.0)
    conf = epsilon * snr / (1.0 + epsilon * snr)

    def confidence(q_inv_a):
        return np.interp(np.asarray(q_inv_a, dtype=np.float64), centres, conf)

    confidence.noise = noise
    return confidence


def _mirror(a: np.ndarray) -> np.ndarray:
    return np.block([[a, a[:, ::-1]], [a[::-1, :], a[::-1, ::-1]]])


def _q(shape, pixel_a: float) -> np.ndarray:
    return np.hypot(np.fft.fftfreq(shape[0], pixel_a)[:, None], np.fft.fftfreq(shape[1], pixel_a)[None, :])


def combine(phase_cnn: np.ndarray, pixel_cnn_a: float, phase_src: np.ndarray, pixel_src_a: float, *,
            cutoff_inv_a: float, width: float = DEFAULT_WIDTH, transfer=None, confidence=None,
            known: np.ndarray | None = None) -> np.ndarray:
    """The CNN phase with its low frequencies taken from the source (see module doc):
    Φ = Φ_cnn + L_eff · (Φ_src / T − Φ_cnn), with L_eff = L · clip(T / T_MIN, 0, 1) · c(q) (the
    source is trusted only where the optics transfer it and, with ``confidence`` = c(q) of
    :func:`com_confidence`, where the data determine it above the noise) and T clipped at T_MIN.

    ``phase_src`` on a square grid of ``pixel_src_a`` whose pixel (0, 0) is the CNN grid's (the first
    scan position); it is first interpolated onto the CNN grid (cubic spline) so that both maps are
    mirror-extended about the same lines. ``transfer``: T(q) of the source (callable of q in 1/Å;
    None = 1). Pixels outside ``known`` (no CNN patch reached them) stay 0. Returns float32 (rad)."""
    from scipy import ndimage

    phase_cnn = np.asarray(phase_cnn, dtype=np.float64)
    known = np.ones(phase_cnn.shape, bool) if known is None else np.asarray(known, bool)
    fill = phase_cnn[known].mean() if known.any() else 0.0
    cnn = np.where(known, phase_cnn, fill)
    yy, xx = np.indices(cnn.shape, dtype=np.float64) * (pixel_cnn_a / pixel_src_a)
    src = ndimage.map_coordinates(np.asarray(phase_src, dtype=np.float64), [yy, xx], order=3, mode="nearest")
    ny, nx = cnn.shape
    q = _q((2 * ny, 2 * nx), pixel_cnn_a)
    low = crossover(q, cutoff_inv_a, width)
    if confidence is not None:
        low = low * confidence(q)
    if transfer is None:
        low_src = low
    else:
        t = transfer(q)
        low = low * np.clip(t / T_MIN, 0.0, 1.0)
        low_src = low / np.maximum(t, T_MIN)
    spec = low_src * np.fft.fft2(_mirror(src)) - low * np.fft.fft2(_mirror(cnn))
    out = cnn + np.fft.ifft2(spec).real[:ny, :nx]
    return np.where(known, out, 0.0).astype(np.float32)
