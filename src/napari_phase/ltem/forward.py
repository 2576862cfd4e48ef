"""Differentiable Lorentz-TEM image model (torch), with a numpy wrapper.

ψ = A exp(i(φm + φe));  I = |F⁻¹[F[ψ] · T]|²,  T(q) = A_ap(q) exp(-iχ(q)) E_s(q) E_t(q)
(physics/optics.py, DESIGN.md §4–5). Lengths in nm; defocus negative = under-focus. Optional
reflect padding (``pad_px`` on each side) keeps the periodic FFT from wrapping the edges.
"""

from __future__ import annotations

import math

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..physics.optics import electron_wavelength_nm, lens_transfer


@dataclass(frozen=True)
class Microscope:
    """LTEM imaging parameters (paper defaults: 200 kV, Cs 1 mm, θc 0.01 mrad, Δ 100 nm)."""

    voltage_kv: float = 200.0
    defocus_nm: float = -1.0e6
    cs_mm: float = 1.0
    divergence_mrad: float = 0.01
    defocus_spread_nm: float = 100.0
    astig_nm: float = 0.0
    astig_angle_deg: float = 0.0
    aperture_mrad: float | None = None

    @property
    def wavelength_nm(self) -> float:
        return electron_wavelength_nm(self.voltage_kv)

    def as_dict(self) -> dict:
        return asdict(self)

    def reach_px(self, pixel_size_nm: float) -> float:
        """Lateral reach of the transfer in pixels: λ|Δf|·q_max / pixel, with q_max where the
        spatial-coherence envelope exp(−(πθcΔf q)²…) falls below e⁻³ (or Nyquist, if lower): how far
        outside a point its image is formed (Fresnel fringes of an edge reach this far)."""
        q_nyq = 0.5 / pixel_size_nm
        theta = self.divergence_mrad * 1e-3
        q_env = math.sqrt(3 * math.log(2)) / (math.pi * theta * abs(self.defocus_nm)) if theta > 0 and self.defocus_nm else q_nyq
        return self.wavelength_nm * abs(self.defocus_nm) * min(q_nyq, q_env) / pixel_size_nm

    def transfer(self, shape: tuple[int, int], pixel_size_nm: float) -> np.ndarray:
        """Complex transfer function T(q) on the FFT grid of ``shape``."""
        lam = self.wavelength_nm
        aperture_q = None if self.aperture_mrad is None else self.aperture_mrad * 1e-3 / lam
        return lens_transfer(
            shape,
            pixel_size_nm,
            lam,
            self.defocus_nm,
            cs=self.cs_mm * 1e6,
            astig=self.astig_nm,
            astig_angle_rad=np.deg2rad(self.astig_angle_deg),
            divergence_rad=self.divergence_mrad * 1e-3,
            defocus_spread=self.defocus_spread_nm,
            aperture_q=aperture_q,
        )


def pad_reflect(x: torch.Tensor, pad_px: int) -> torch.Tensor:
    """Mirror-pad the last two axes by ``pad_px`` (clipped to what reflect padding allows)."""
    if pad_px <= 0:
        return x
    p = min(pad_px, x.shape[-1] - 1, x.shape[-2] - 1)
    shape = x.shape
    y = torch.nn.functional.pad(x.reshape(-1, 1, *shape[-2:]), (p, p, p, p), mode="reflect")
    return y.reshape(*shape[:-2], *y.shape[-2:])


def image_from_wave(
    phase: torch.Tensor, amplitude: torch.Tensor | float, transfer: torch.Tensor, pad_px: int = 0
) -> torch.Tensor:
    """I = |F⁻¹[F[A e^{iφ}] T]|² (torch, differentiable). ``transfer`` matches the padded shape."""
    pad_px = _eff_pad(phase, pad_px)
    if pad_px:
        phase = pad_reflect(phase, pad_px)
        if torch.is_tensor(amplitude) and amplitude.ndim >= 2:
            amplitude = pad_reflect(amplitude, pad_px)
    wave = torch.polar(torch.as_tensor(amplitude, dtype=phase.dtype, device=phase.device).expand_as(phase), phase)
    image = torch.fft.ifft2(torch.fft.fft2(wave) * transfer).abs() ** 2
    if pad_px:
        image = image[..., pad_px:-pad_px, pad_px:-pad_px]
    return image


def simulate_image(
    phase: np.ndarray,
    amplitude: np.ndarray | float = 1.0,
    *,
    pixel_size_nm: float,
    microscope: Microscope | None = None,
    pad_px: int = 0,
) -> np.ndarray:
    """Noise-free LTEM image (float32) of the exit wave A exp(iφ) (numpy in, numpy out)."""
    mic = microscope or Microscope()
    phase_t = torch.as_tensor(np.asarray(phase, dtype=np.float64))
    amp_t = torch.as_tensor(np.asarray(amplitude, dtype=np.float64))
    p = _eff_pad(phase_t, pad_px)
    transfer = torch.as_tensor(mic.transfer((phase_t.shape[-2] + 2 * p, phase_t.shape[-1] + 2 * p), pixel_size_nm))
    with torch.no_grad():
        image = image_from_wave(phase_t, amp_t, transfer, p)
    return image.numpy().astype(np.float32)


def _eff_pad(x: torch.Tensor, pad_px: int) -> int:
    """Reflect padding cannot exceed the image size minus one."""
    return max(0, min(pad_px, x.shape[-1] - 1, x.shape[-2] - 1))
