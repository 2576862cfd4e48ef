"""Phase ↔ flow: spectral gradient of a phase, least-squares (FFT) integration of a flow.

The flow here is the phase gradient g = ∇φ (rad per length unit; the TIE's velocity is
v = (λ/2π) g). Integration is the least-squares solution of ∇φ = g:

    ∇²φ = ∇·g   →   φ = ∇⁻²(∇·g),

with the inverse Laplacian of :mod:`napari_phase.physics.poisson` (its kernel -1/(4π²|q|²), mean
set to zero). Derivatives are spectral (multiplication by 2πi q) on a mirror-extended grid
(n → 2n − 2, numpy's "reflect", the Poisson solver's convention): the phase and the divergence
are extended evenly, flow component x oddly along x and evenly along y (and y likewise), so the
extended fields are periodic and continuous and the FFT sees no edge jump (Neumann boundary).
φ → gradient → integration gives φ back (mean removed). Implemented once in torch (differentiable:
the network trains through it); numpy wrappers for the public edge.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..physics.poisson import inverse_laplacian_kernel


def _extend(a: torch.Tensor, odd_y: bool = False, odd_x: bool = False) -> torch.Tensor:
    """Mirror-extend the last two axes n → 2n − 2 (reflect about the edge pixels); ``odd_*`` negates
    the reflected part along that axis (for a derivative component)."""
    ny, nx = a.shape[-2:]
    if ny > 2:
        ref = a[..., 1:ny - 1, :].flip(-2)
        a = torch.cat([a, -ref if odd_y else ref], dim=-2)
    if nx > 2:
        ref = a[..., :, 1:nx - 1].flip(-1)
        a = torch.cat([a, -ref if odd_x else ref], dim=-1)
    return a


def _derivative_factors(shape, pixel_size: float, device, dtype=torch.float64):
    """2πi q for y and x on the FFT grid, Nyquist dropped (no odd derivative there)."""
    ny, nx = shape
    qy = torch.fft.fftfreq(ny, d=pixel_size, device=device, dtype=dtype)[:, None]
    qx = torch.fft.fftfreq(nx, d=pixel_size, device=device, dtype=dtype)[None, :]
    lim = 0.5 / pixel_size * (1 - 1e-9)
    dy = 2j * math.pi * qy * (qy.abs() < lim)
    dx = 2j * math.pi * qx * (qx.abs() < lim)
    return dy, dx


def gradient_t(phase: torch.Tensor, pixel_size: float) -> torch.Tensor:
    """Spectral ∇φ of (..., H, W) → (..., 2, H, W) ordered (∂y, ∂x), in rad per length unit."""
    ny, nx = phase.shape[-2:]
    ext = _extend(phase)
    dy, dx = _derivative_factors(ext.shape[-2:], pixel_size, phase.device)
    spec = torch.fft.fft2(ext.to(torch.float64) if phase.dtype == torch.float64 else ext)
    gy = torch.fft.ifft2(spec * dy.to(spec.dtype)).real[..., :ny, :nx]
    gx = torch.fft.ifft2(spec * dx.to(spec.dtype)).real[..., :ny, :nx]
    return torch.stack([gy, gx], dim=-3).to(phase.dtype)


def _div_curl_spectra(flow: torch.Tensor, pixel_size: float):
    gy = _extend(flow[..., 0, :, :], odd_y=True)
    gx = _extend(flow[..., 1, :, :], odd_x=True)
    dy, dx = _derivative_factors(gy.shape[-2:], pixel_size, flow.device)
    sy, sx = torch.fft.fft2(gy), torch.fft.fft2(gx)
    dy, dx = dy.to(sy.dtype), dx.to(sy.dtype)
    return sy * dy + sx * dx, sx * dy - sy * dx, gy.shape[-2:]


def divergence_t(flow: torch.Tensor, pixel_size: float) -> torch.Tensor:
    """Spectral ∇·g of (..., 2, H, W) → (..., H, W)."""
    ny, nx = flow.shape[-2:]
    div_hat, _, _ = _div_curl_spectra(flow, pixel_size)
    return torch.fft.ifft2(div_hat).real[..., :ny, :nx]


def curl_t(flow: torch.Tensor, pixel_size: float) -> torch.Tensor:
    """Spectral ∂x g_y − ∂y g_x of (..., 2, H, W) → (..., H, W) (zero for a true gradient)."""
    ny, nx = flow.shape[-2:]
    _, curl_hat, _ = _div_curl_spectra(flow, pixel_size)
    return torch.fft.ifft2(curl_hat).real[..., :ny, :nx]


def integrate_t(flow: torch.Tensor, pixel_size: float, q_max: float | None = None) -> torch.Tensor:
    """Least-squares phase (..., H, W) of a flow (..., 2, H, W): φ = ∇⁻²(∇·g), zero mean;
    ``q_max`` (cycles per length unit) band-limits it to |q| ≤ q_max on the extended grid."""
    ny, nx = flow.shape[-2:]
    div_hat, _, shape = _div_curl_spectra(flow, pixel_size)
    kern_np = inverse_laplacian_kernel(tuple(int(s) for s in shape), pixel_size)
    if q_max is not None:
        qy = np.fft.fftfreq(int(shape[0]), d=pixel_size)[:, None]
        qx = np.fft.fftfreq(int(shape[1]), d=pixel_size)[None, :]
        kern_np = kern_np * (qy**2 + qx**2 <= q_max**2)
    kern = torch.as_tensor(kern_np, device=flow.device)
    phi = torch.fft.ifft2(div_hat * kern.to(div_hat.real.dtype)).real[..., :ny, :nx]
    return phi - phi.mean(dim=(-2, -1), keepdim=True)


def phase_gradient(phase: np.ndarray, pixel_size: float) -> np.ndarray:
    """∇φ (2, H, W) = (∂φ/∂y, ∂φ/∂x) in rad per unit of ``pixel_size`` (float32)."""
    t = torch.as_tensor(np.asarray(phase, dtype=np.float64))
    return gradient_t(t, float(pixel_size)).numpy().astype(np.float32)


def integrate_flow(flow: np.ndarray, pixel_size: float) -> np.ndarray:
    """Least-squares phase (rad, zero mean, float32) of a flow (2, H, W) in rad per length unit."""
    t = torch.as_tensor(np.asarray(flow, dtype=np.float64))
    return integrate_t(t, float(pixel_size)).numpy().astype(np.float32)


def flow_curl(flow: np.ndarray, pixel_size: float) -> np.ndarray:
    """Curl ∂x g_y − ∂y g_x of a flow (2, H, W), rad per length unit squared."""
    t = torch.as_tensor(np.asarray(flow, dtype=np.float64))
    return curl_t(t, float(pixel_size)).numpy().astype(np.float32)
