"""Small phase-object 4D-STEM data with known phase for the 4D-STEM tests (numpy, POA, periodic).

The object (M×M px of dx Å) is periodic; the probe (aperture α, optional defocus) is shifted by
whole object pixels; each pattern is |FFT(ψ_in(r − r_p) t(r))|² on an M×M detector with
Δk = 1/(M dx), k = 0 at index M // 2 (fftshift). Scan positions every ``step_px`` object pixels
starting at the object's origin, so the scan covers exactly one period.
Also checks here that the helper obeys the CoM theorem of DESIGN §6, on which the tests rely.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from napari_phase.physics.optics import chi, electron_wavelength_a

ENERGY_KEV = 300.0
SEMIANGLE_MRAD = 20.0


def probe(m: int, dx: float, energy_kev=ENERGY_KEV, semiangle_mrad=SEMIANGLE_MRAD, defocus_a=0.0) -> np.ndarray:
    lam = electron_wavelength_a(energy_kev)
    k = np.fft.fftfreq(m, dx)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    a = (np.sqrt(k2) < semiangle_mrad * 1e-3 / lam) * np.exp(-1j * chi(k2, lam, defocus_a))
    p = np.fft.ifft2(a)
    return p / np.sqrt((np.abs(p) ** 2).sum())


def smooth_phase(m: int, dx: float, *, qmax: float, rms: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(m, dx)
    q = np.hypot(k[:, None], k[None, :])
    spec = (rng.normal(size=(m, m)) + 1j * rng.normal(size=(m, m))) * (q < qmax) * (q > 0)
    phi = np.fft.ifft2(spec).real
    return phi / phi.std() * rms


def atoms_phase(m: int, dx: float, *, spacing_a=3.2, sigma_a=0.35, peak=0.4, seed=0, crystal=False) -> np.ndarray:
    """A lattice of Gaussian 'atoms' (positive phase peaks) of random heights, periodic, with a
    vacancy; ``crystal``: all atoms of height ``peak`` and no vacancy (a perfect crystal)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((m, m)) * dx
    size = m * dx
    phi = np.zeros((m, m))
    n = int(round(size / spacing_a))
    for i in range(n):
        for j in range(n):
            if (i, j) == (1, 2) and not crystal:
                continue  # a vacancy breaks the symmetry
            y0, x0 = (i + 0.3) * spacing_a, (j + 0.6) * spacing_a
            dy = (yy - y0 + size / 2) % size - size / 2
            dxx = (xx - x0 + size / 2) % size - size / 2
            phi += peak * (1.0 if crystal else rng.uniform(0.6, 1.0)) * np.exp(-(dy**2 + dxx**2) / (2 * sigma_a**2))
    return phi


def simulate(phi: np.ndarray, dx: float, step_px: int, *, energy_kev=ENERGY_KEV, semiangle_mrad=SEMIANGLE_MRAD,
             defocus_a=0.0, dose_e_per_a2: float | None = None, seed: int = 0):
    """(data (sy, sx, M, M) float32, probe, detector_mrad_per_px, scan_step_a)."""
    m = phi.shape[0]
    p = probe(m, dx, energy_kev, semiangle_mrad, defocus_a)
    t = np.exp(1j * phi)
    n = m // step_px
    data = np.empty((n, n, m, m), np.float32)
    for iy in range(n):
        for ix in range(n):
            exit_wave = np.roll(p, (iy * step_px, ix * step_px), axis=(0, 1)) * t
            data[iy, ix] = np.abs(np.fft.fftshift(np.fft.fft2(exit_wave))) ** 2
    data /= data.sum(axis=(-2, -1), keepdims=True)
    step_a = step_px * dx
    if dose_e_per_a2 is not None:
        rng = np.random.default_rng(seed)
        data = rng.poisson(data * dose_e_per_a2 * step_a**2).astype(np.float32)
    det_mrad = 1.0 / (m * dx) * electron_wavelength_a(energy_kev) * 1e3
    return data, p, det_mrad, step_a


def blurred_truth(phi: np.ndarray, p: np.ndarray, step_px: int) -> np.ndarray:
    """φ ⊛ |ψ_in|² sampled at the scan positions (what iCoM measures, DESIGN §6)."""
    blur = np.fft.ifft2(np.fft.fft2(phi) * np.conj(np.fft.fft2(np.abs(p) ** 2))).real
    return blur[::step_px, ::step_px]


def rotate_detector(data: np.ndarray, rotation_deg: float, transpose: bool) -> np.ndarray:
    """Patterns as a detector rotated/flipped against the scan records them: a scan-frame vector g
    appears as m = F(R(−θ) g) (the inverse of the package's g = R(θ) F(m))."""
    t = math.radians(rotation_deg)
    c, s = math.cos(t), math.sin(t)
    mat = np.array([[c, s], [-s, c]])
    m = data.shape[-1]
    center = np.array([m // 2, m // 2], float)
    offset = center - mat @ center
    out = np.empty_like(data)
    for idx in np.ndindex(data.shape[:2]):
        out[idx] = ndimage.affine_transform(data[idx], mat, offset=offset, order=1)
    return np.swapaxes(out, -1, -2).copy() if transpose else out


# ----------------------------------------------------------------------------- helper checks


def test_com_theorem_holds_for_the_helper():
    """⟨k⟩ = (1/2π) ∫|ψ|² ∇φ: the CoM of the simulated patterns matches the blurred phase gradient."""
    m, dx, step = 64, 0.2, 2
    phi = smooth_phase(m, dx, qmax=1.0, rms=0.3)
    data, p, det_mrad, step_a = simulate(phi, dx, step)
    k = (np.arange(m) - m // 2) / (m * dx)
    kx = (data.sum(axis=-2) @ k) / data.sum(axis=(-2, -1))
    blur = blurred_truth(phi, p, 1)
    q = np.fft.fftfreq(m, dx)[None, :]
    dphi_dx = np.fft.ifft2(2j * math.pi * q * np.fft.fft2(blur)).real  # spectral derivative
    expect = dphi_dx[::step, ::step] / (2 * math.pi)
    assert np.corrcoef(kx.ravel(), expect.ravel())[0, 1] > 0.99
    assert np.std(kx) == pytest.approx(np.std(expect), rel=0.02)
