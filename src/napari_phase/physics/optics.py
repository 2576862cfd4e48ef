"""Electron optics: wavelength, interaction constant, frequency grids, lens transfer, Fresnel.

Sign convention (DESIGN.md §3): Δf is the propagation distance from the exit plane to the imaged
plane along the beam; negative is under-focus. Fresnel propagation by z multiplies the spectrum by
exp(-iπλz q²); the lens transfer is T(q) = A(q) exp(-iχ(q)) E(q) with
χ(q) = πλΔf q² + (π/2) Cs λ³ q⁴ + πλ A1 q² cos(2(θ_q − θ_A1)).
Lengths in one unit throughout a call (nm for LTEM, Å for 4D-STEM); q in cycles per that unit.
"""

from __future__ import annotations

import math

import numpy as np

from .constants import (
    ELECTRON_MASS_KG,
    ELEMENTARY_CHARGE_C,
    PLANCK_J_S,
    SPEED_OF_LIGHT_M_S,
)


def _check_voltage(voltage_kv: float) -> float:
    v = float(voltage_kv)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"voltage_kv must be a positive number, got {voltage_kv!r}")
    return v * 1e3


def electron_wavelength_m(voltage_kv: float) -> float:
    """Relativistic wavelength λ = h / sqrt(2 m0 e U (1 + eU/(2 m0 c²))) in metres."""
    u = _check_voltage(voltage_kv)
    e, m0, c = ELEMENTARY_CHARGE_C, ELECTRON_MASS_KG, SPEED_OF_LIGHT_M_S
    return PLANCK_J_S / math.sqrt(2 * m0 * e * u * (1 + e * u / (2 * m0 * c**2)))


def electron_wavelength_nm(voltage_kv: float) -> float:
    """Relativistic electron wavelength in nm (0.0025079 nm at 200 kV)."""
    return electron_wavelength_m(voltage_kv) * 1e9


def electron_wavelength_a(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å (0.025079 Å at 200 kV)."""
    return electron_wavelength_m(voltage_kv) * 1e10


def interaction_constant(voltage_kv: float, unit: str = "A") -> float:
    """σ = 2π γ m0 e λ / h² in rad/(V·Å) (unit="A", 7.29e-4 at 200 kV) or rad/(V·nm) (unit="nm")."""
    u = _check_voltage(voltage_kv)
    e, m0, c = ELEMENTARY_CHARGE_C, ELECTRON_MASS_KG, SPEED_OF_LIGHT_M_S
    gamma = 1 + e * u / (m0 * c**2)
    sigma_per_v_m = 2 * math.pi * gamma * m0 * e * electron_wavelength_m(voltage_kv) / PLANCK_J_S**2
    if unit in ("A", "Å", "angstrom"):
        return sigma_per_v_m * 1e-10
    if unit == "nm":
        return sigma_per_v_m * 1e-9
    raise ValueError(f"unit must be 'A' or 'nm', got {unit!r}")


def fft_frequencies(shape: tuple[int, int], pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Spatial frequencies (qy, qx) in cycles per length unit, broadcastable to ``shape`` (FFT order)."""
    ny, nx = int(shape[-2]), int(shape[-1])
    qy = np.fft.fftfreq(ny, d=pixel_size)[:, None]
    qx = np.fft.fftfreq(nx, d=pixel_size)[None, :]
    return qy, qx


def chi(
    q2: np.ndarray,
    wavelength: float,
    defocus: float,
    cs: float = 0.0,
    astig: float = 0.0,
    astig_angle_rad: float = 0.0,
    q_angle: np.ndarray | None = None,
) -> np.ndarray:
    """Aberration phase χ(q) = πλΔf q² + (π/2) Cs λ³ q⁴ + πλ A1 q² cos(2(θ_q − θ_A1)) (rad).

    ``q2`` = |q|²; all lengths (λ, Δf, Cs, A1) in the same unit as 1/q.
    """
    out = math.pi * wavelength * defocus * q2 + 0.5 * math.pi * cs * wavelength**3 * q2**2
    if astig and q_angle is not None:
        out = out + math.pi * wavelength * astig * q2 * np.cos(2 * (q_angle - astig_angle_rad))
    return out


def spatial_envelope(q2: np.ndarray, wavelength: float, defocus: float, cs: float, divergence_rad: float) -> np.ndarray:
    """Partial spatial coherence: E_s = exp(-(π θc)² (Cs λ² q³ + Δf q)² / ln 2), θc the beam divergence."""
    if not divergence_rad:
        return np.ones_like(q2)
    q = np.sqrt(q2)
    return np.exp(-((math.pi * divergence_rad) ** 2) * (cs * wavelength**2 * q**3 + defocus * q) ** 2 / math.log(2))


def temporal_envelope(q2: np.ndarray, wavelength: float, defocus_spread: float) -> np.ndarray:
    """Partial temporal coherence: E_t = exp(-½ (π λ Δ q²)²), Δ the rms defocus spread."""
    if not defocus_spread:
        return np.ones_like(q2)
    return np.exp(-0.5 * (math.pi * wavelength * defocus_spread) ** 2 * q2**2)


def lens_transfer(
    shape: tuple[int, int],
    pixel_size: float,
    wavelength: float,
    defocus: float,
    cs: float = 0.0,
    astig: float = 0.0,
    astig_angle_rad: float = 0.0,
    divergence_rad: float = 0.0,
    defocus_spread: float = 0.0,
    aperture_q: float | None = None,
) -> np.ndarray:
    """T(q) = A(q) exp(-iχ(q)) E_s(q) E_t(q) on the FFT grid (complex128).

    ``aperture_q``: objective aperture radius in cycles/length (None: no aperture).
    """
    qy, qx = fft_frequencies(shape, pixel_size)
    q2 = qy**2 + qx**2
    angle = np.arctan2(qy, qx) if astig else None
    t = np.exp(-1j * chi(q2, wavelength, defocus, cs, astig, astig_angle_rad, angle))
    t = t * spatial_envelope(q2, wavelength, defocus, cs, divergence_rad)
    t = t * temporal_envelope(q2, wavelength, defocus_spread)
    if aperture_q is not None:
        t = t * (q2 <= aperture_q**2)
    return t


def fresnel_propagator(shape: tuple[int, int], pixel_size: float, wavelength: float, distance: float) -> np.ndarray:
    """Free-space propagation by ``distance`` along the beam: exp(-iπλz q²) on the FFT grid."""
    qy, qx = fft_frequencies(shape, pixel_size)
    return np.exp(-1j * math.pi * wavelength * distance * (qy**2 + qx**2))
