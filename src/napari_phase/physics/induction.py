"""Magnetic phase <-> projected in-plane induction (Aharonov–Bohm), and colour-wheel display.

Bx·t = (ħ/e) ∂φ/∂y,  By·t = -(ħ/e) ∂φ/∂x,  ħ/e = 658.2 T·nm²  (φ in rad, lengths in nm, B·t in T·nm).
Reverse, in Fourier space (Mansuripur; k = 2πq):
φ̂(q) = (e/ħ) · i (qx B̂y·t − qy B̂x·t) / (2π |q|²),  φ̂(0) = 0.
Uses e/ħ, not 2π/φ0 with φ0 = h/2e (that slip doubles the phase).
"""

from __future__ import annotations

import numpy as np

from .constants import E_OVER_HBAR_PER_T_NM2, HBAR_OVER_E_T_NM2
from .optics import fft_frequencies


def induction_from_phase(phase: np.ndarray, pixel_size_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """(Bx·t, By·t) in T·nm from a magnetic phase in rad (central differences, axis order y, x)."""
    phase = np.asarray(phase, dtype=np.float64)
    dphi_dy, dphi_dx = np.gradient(phase, pixel_size_nm, axis=(-2, -1))
    bx = HBAR_OVER_E_T_NM2 * dphi_dy
    by = -HBAR_OVER_E_T_NM2 * dphi_dx
    return bx.astype(np.float32), by.astype(np.float32)


def phase_from_induction(bx_t: np.ndarray, by_t: np.ndarray, pixel_size_nm: float) -> np.ndarray:
    """Magnetic phase (rad) of a projected induction field B·t (T·nm), periodic FFT solution."""
    bx_t = np.asarray(bx_t, dtype=np.float64)
    by_t = np.asarray(by_t, dtype=np.float64)
    qy, qx = fft_frequencies(bx_t.shape, pixel_size_nm)
    q2 = qy**2 + qx**2
    q2[0, 0] = 1.0
    num = qx * np.fft.fft2(by_t) - qy * np.fft.fft2(bx_t)
    spec = E_OVER_HBAR_PER_T_NM2 * 1j * num / (2 * np.pi * q2)
    spec[0, 0] = 0.0
    return np.real(np.fft.ifft2(spec)).astype(np.float32)


def phase_from_magnetization(
    mx: np.ndarray, my: np.ndarray, pixel_size_nm: float, saturation_induction_t: float, thickness_nm: float
) -> np.ndarray:
    """Mansuripur phase (rad) of a thin film with unit in-plane magnetisation (mx, my),
    saturation induction B0 = μ0 Ms (T) and thickness t (nm)."""
    b0t = float(saturation_induction_t) * float(thickness_nm)
    return phase_from_induction(b0t * np.asarray(mx), b0t * np.asarray(my), pixel_size_nm)


def color_wheel_image(bx: np.ndarray, by: np.ndarray, saturate_percentile: float = 99.0) -> np.ndarray:
    """RGB (float32, 0..1) image of an in-plane vector field: hue = direction, value = magnitude.

    Direction angle θ = atan2(By, Bx): +x red, +y (down the image rows) yellow-green, and so on
    round the wheel that :func:`color_wheel_legend` draws.
    """
    bx = np.nan_to_num(np.asarray(bx, dtype=np.float64))
    by = np.nan_to_num(np.asarray(by, dtype=np.float64))
    mag = np.hypot(bx, by)
    top = np.percentile(mag, saturate_percentile) if mag.size else 0.0
    value = np.clip(mag / top, 0, 1) if top > 0 else np.zeros_like(mag)
    hue = (np.arctan2(by, bx) / (2 * np.pi)) % 1.0
    return _hsv_to_rgb(hue, np.ones_like(hue), value)


def color_wheel_legend(size: int = 128) -> np.ndarray:
    """The colour wheel as an RGBA image (size x size), transparent outside the disc."""
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size] - c
    r = np.hypot(x, y) / c
    rgb = color_wheel_image(x * (r <= 1), y * (r <= 1), saturate_percentile=100.0)
    alpha = (r <= 1).astype(np.float32)
    return np.dstack([rgb, alpha]).astype(np.float32)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.zeros(h.shape + (3,), dtype=np.float32)
    for k, (r_, g_, b_) in enumerate(choices):
        m = i == k
        rgb[m, 0], rgb[m, 1], rgb[m, 2] = r_[m], g_[m], b_[m]
    return rgb
