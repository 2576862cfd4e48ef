"""Preprocessing shared by training and reconstruction: the dimensionless window, the probe,
detector resampling, I^0.1 standardisation, 3x3 kernels and neighbour weights. Torch inside.

The problem is made dimensionless (the same at every voltage and aperture): every diffraction
pattern is resampled so that the bright-field (BF) disc has radius ``BF_RADIUS_PX`` = 16 px on the
``WINDOW_PX`` = 64 px detector, i.e. ``Δθ = α / 16`` per detector pixel. The 64² real-space window
the network works in then has the pixel

    dx = λ / (64 Δθ) = λ · 16 / (64 α)         (Å; 0.246 Å at 300 kV, 20 mrad)

and an aberration-free probe is always the same 64² array (Airy radius 0.61 λ/α = 2.44 px). The
scan step enters as a number of window pixels, ``s = scan_step_a / dx``; defocus as the phase
``χ`` at the aperture edge. The detector window covers ±2α; dark field beyond 2α is cropped.

Conventions: patterns are stored with k = 0 at pixel (32, 32) (``fftshift`` order); the probe in
real space sits at pixel (32, 32) of the window; ψ̂(k) = FFT of ψ(r) with the window centre as
origin, I(k) = |ψ̂(k)|².
"""

from __future__ import annotations

import math

import numpy as np

from ...physics.optics import chi, electron_wavelength_a

WINDOW_PX = 64
BF_RADIUS_PX = 16.0
#: Width (window px) of the Gaussian neighbour weight w(d) = exp(-d² / (2 σ²)), d in window px.
NEIGHBOUR_SIGMA_PX = 4.0
#: Exponent applied to the intensities before standardisation.
INTENSITY_POWER = 0.1
#: The 3x3 kernel's offsets (dy, dx) in scan steps, row-major; index 4 is the centre.
KERNEL_OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def window_pixel_a(energy_kev: float, semiangle_mrad: float) -> float:
    """Real-space pixel of the 64² window in Å: dx = λ·R_BF / (N·α)."""
    lam = electron_wavelength_a(energy_kev)
    return lam * BF_RADIUS_PX / (WINDOW_PX * semiangle_mrad * 1e-3)


def edge_defocus_phase(defocus_a: float, energy_kev: float, semiangle_mrad: float) -> float:
    """Defocus phase at the aperture edge, χ_edge = π Δf α² / λ (rad)."""
    lam = electron_wavelength_a(energy_kev)
    return math.pi * defocus_a * (semiangle_mrad * 1e-3) ** 2 / lam


def probe_window(
    chi_edge_rad: float = 0.0,
    cs_edge_rad: float = 0.0,
    shift_px: tuple[float, float] = (0.0, 0.0),
    n: int = WINDOW_PX,
    radius_px: float = BF_RADIUS_PX,
) -> np.ndarray:
    """The probe ψin(r) on the dimensionless window (complex64, Σ|ψin|² = 1, centre at n/2).

    ψ̂in(k) = A(k) exp(-iχ(k)), A = 1 inside |k| ≤ R_BF px; χ(k) = χ_edge (k/R)² + c_edge (k/R)⁴
    (the same χ = πλΔf q² + (π/2)Csλ³q⁴ of physics.optics, written with dimensionless q = k/R so
    that χ_edge = πΔfα²/λ and c_edge = (π/2)Cs α⁴/λ). ``shift_px`` moves the probe by (dy, dx).
    """
    k = np.fft.fftfreq(n) * n
    ky, kx = k[:, None], k[None, :]
    q2 = (ky**2 + kx**2) / radius_px**2
    # physics.optics.chi with wavelength=1, defocus=χ_edge/π, cs=2 c_edge/π on the unit q grid
    phase = chi(q2, 1.0, chi_edge_rad / math.pi, 2 * cs_edge_rad / math.pi)
    # small soft edge (0.5 px) against ringing of a pixel-sharp aperture
    kr = np.sqrt(ky**2 + kx**2)
    aperture = np.clip(radius_px + 0.5 - kr, 0.0, 1.0)
    ramp = np.exp(-2j * math.pi * (ky * (n / 2 + shift_px[0]) + kx * (n / 2 + shift_px[1])) / n)
    psi = np.fft.ifft2(aperture * np.exp(-1j * phase) * ramp)
    psi /= np.sqrt((np.abs(psi) ** 2).sum())
    return psi.astype(np.complex64)


def probe_mask(probe: np.ndarray, level: float = 0.1) -> np.ndarray:
    """Where |ψin|² ≥ level·max (the region an object patch is trusted)."""
    p2 = np.abs(probe) ** 2
    return p2 >= level * p2.max()


def neighbour_weights(step_px) -> np.ndarray:
    """Weights of the 3x3 kernel, w = exp(-r² / (2σ²)), r the neighbour's distance in window px
    (offset (dy, dx) scan steps × the step s in window px; a (s_y, s_x) pair for non-square scan
    steps: r² = (dy·s_y)² + (dx·s_x)²), σ = NEIGHBOUR_SIGMA_PX (centre weight 1). Shape (9,), float32."""
    sy, sx = (float(step_px[0]), float(step_px[1])) if np.ndim(step_px) else (float(step_px),) * 2
    r2 = np.array([(dy * sy) ** 2 + (dx * sx) ** 2 for dy, dx in KERNEL_OFFSETS], dtype=np.float64)
    return np.exp(-r2 / (2 * NEIGHBOUR_SIGMA_PX**2)).astype(np.float32)


def standardise(patterns, weights=None, eps: float = 1e-6):
    """Network input from intensities: I^0.1, standardised per sample over its 9 patterns, then
    multiplied by the neighbour weights. ``patterns``: (B, 9, 64, 64) torch, >= 0."""
    import torch

    x = torch.clamp(patterns, min=0.0) ** INTENSITY_POWER
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) / (std + eps)
    if weights is not None:
        w = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
        x = x * (w.view(-1, 9, 1, 1) if w.ndim == 2 else w.view(1, 9, 1, 1))
    return x


#: kernels gathered and scaled per step in standardise_kernels (32 × 9 × 64² float32 = 4.7 MB)
KERNEL_CHUNK = 32


def powered(windows):
    """I^0.1 of patterns (…, N, N), clamped at 0: standardise's first step, done once per pattern
    at inference, where each pattern serves in nine kernels."""
    import torch

    return torch.clamp(windows, min=0.0) ** INTENSITY_POWER


def pattern_sums(xp):
    """Σ x and Σ x² of each powered pattern (…, N, N) -> two (…) float64 tensors."""
    import torch

    return xp.sum(dim=(-2, -1), dtype=torch.float64), xp.square().sum(dim=(-2, -1), dtype=torch.float64)


def standardise_kernels(xp, ky, kx, sums, weights, eps: float = 1e-6, out=None):
    """:func:`standardise` of the kernels ``xp[ky, kx]`` (B, 9, N, N) from already-powered windows
    ``xp`` (R, C, N, N) and their :func:`pattern_sums`: each kernel's mean and (unbiased) std come
    from the nine patterns' sums, so the kernel is read once, in one fused subtract-and-scale
    (x·s − mean·s), written into ``out`` when given (e.g. channels 0–8 of a channels-last batch)."""
    import torch

    s1, s2 = sums
    m = 9 * xp.shape[-1] * xp.shape[-2]
    k1 = s1[ky, kx].sum(dim=1)
    k2 = s2[ky, kx].sum(dim=1)
    mean = k1 / m
    std = torch.sqrt(torch.clamp((k2 - m * mean * mean) / (m - 1), min=0.0))
    w = torch.as_tensor(weights, dtype=torch.float64, device=xp.device).view(1, 9)
    scale = w / (std[:, None] + eps)
    shift = (-mean[:, None] * scale).float()[:, :, None, None]
    scale = scale.float()[:, :, None, None]
    if out is None:
        out = torch.empty((len(ky), 9, *xp.shape[-2:]), dtype=xp.dtype, device=xp.device)
    # KERNEL_CHUNK kernels at a time: their gathered patterns stay in cache until scaled into ``out``
    # (2.5× faster than one gather of the whole batch, measured on 256 kernels of 64² patterns)
    rows = xp.reshape(-1, xp.shape[-2] * xp.shape[-1])
    flat = (ky * xp.shape[1] + kx).reshape(len(ky), 9)
    for b0 in range(0, len(ky), KERNEL_CHUNK):
        b1 = min(len(ky), b0 + KERNEL_CHUNK)
        g = torch.index_select(rows, 0, flat[b0:b1].reshape(-1)).view(b1 - b0, 9, *xp.shape[-2:])
        torch.addcmul(shift[b0:b1], g, scale[b0:b1], out=out[b0:b1])
    return out


def probe_channels(probe, batch: int):
    """The probe as two input channels: amplitude (max-normalised) and phase (rad), (B, 2, N, N)."""
    import torch

    p = torch.as_tensor(probe)
    if p.ndim == 2:
        p = p.unsqueeze(0)
    amp = p.abs()
    amp = amp / amp.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    ch = torch.stack([amp, torch.angle(p) * (amp > 0.05)], dim=1).float()
    return ch.expand(batch, -1, -1, -1) if ch.shape[0] == 1 else ch


def resample_patterns(
    patterns,
    *,
    detector_mrad_per_px: float,
    semiangle_mrad: float,
    center: tuple[float, float] | None = None,
    rotation_deg: float = 0.0,
    transpose: bool = False,
    offsets_px=None,
):
    """Resample detector patterns (B, ky, kx) onto the 64² window with Δθ = α/16 per px (torch).

    ``offsets_px``: per-pattern (dy, dx) detector px added to ``center`` (shape (..., 2), the
    leading axes of ``patterns``): the fitted descan (stem/descan.py), read by moving the sampling
    grid (bilinear: nothing rings into the dark field, where I^0.1 would magnify it).

    Output pixel (u, v) (offsets from the window centre, in window px) reads the detector at
    ``center + zoom · R(rotation) · (u, v)``, zoom = (α/16) / detector_mrad_per_px, after swapping
    ky/kx when ``transpose`` (applied first). Bilinear, after an integer box-average when the
    detector is more than 2x finer than the window; outside the detector reads 0. The total
    counts of the pattern are preserved (intensities are rescaled by the area ratio).
    """
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(patterns).float()
    if transpose:
        x = x.transpose(-2, -1)
    ny, nx = x.shape[-2:]
    if center is None:
        cy, cx = ny / 2, nx / 2
    else:
        cy, cx = float(center[0]), float(center[1])
        if transpose:
            cy, cx = cx, cy
    zoom0 = (semiangle_mrad / BF_RADIUS_PX) / detector_mrad_per_px  # detector px per window px
    zoom = zoom0
    x = x.reshape(-1, 1, ny, nx)
    oy = ox = 0.0
    if offsets_px is not None:
        off = torch.as_tensor(offsets_px, dtype=torch.float32, device=x.device).reshape(-1, 2)
        oy, ox = off[:, 0].view(-1, 1, 1), off[:, 1].view(-1, 1, 1)
        if transpose:
            oy, ox = ox, oy
    pool = int(math.floor(zoom)) if zoom >= 2 else 1
    if pool > 1:  # box-average first so bilinear sampling does not alias a fine detector
        x = F.avg_pool2d(x, pool, stride=pool)
        ny, nx = x.shape[-2:]
        cy, cx, zoom = (cy - (pool - 1) / 2) / pool, (cx - (pool - 1) / 2) / pool, zoom / pool
        oy, ox = oy / pool, ox / pool
    n = WINDOW_PX
    u = torch.arange(n, dtype=torch.float32, device=x.device) - n / 2
    uu, vv = torch.meshgrid(u, u, indexing="ij")
    th = math.radians(rotation_deg)
    c, s = math.cos(th), math.sin(th)
    dy = zoom * (c * uu - s * vv)
    dx = zoom * (s * uu + c * vv)
    # pixel-centre coordinates -> grid_sample's [-1, 1] with align_corners=False; the per-pattern
    # offsets are one broadcast add to the shared grid (built per pattern, the grid's arithmetic
    # cost 0.9 s on a 64² scan)
    gy = (cy + dy + 0.5) / ny * 2 - 1
    gx = (cx + dx + 0.5) / nx * 2 - 1
    grid = torch.stack([gx, gy], dim=-1).unsqueeze(0)  # (1, n, n, 2)
    if offsets_px is not None:
        grid = grid + torch.stack([ox * (2 / nx), oy * (2 / ny)], dim=-1)  # (B, 1, 1, 2): (B, n, n, 2)
    else:
        grid = grid.expand(x.shape[0], -1, -1, -1)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out * zoom0**2  # each window pixel gathers zoom0² detector pixels: counts preserved
    return out.reshape(*torch.as_tensor(patterns).shape[:-2], n, n)


def kernel_indices(rows: np.ndarray, cols: np.ndarray, scan_shape: tuple[int, int], edge: str = "reflect"):
    """Scan indices (P, 9, 2) of the 3x3 neighbourhood of each (row, col), edges padded by
    ``edge`` = "reflect" (mirror without repeating the edge: -1 -> 1) or "replicate" (-1 -> 0)."""
    ny, nx = scan_shape
    off = np.array(KERNEL_OFFSETS)
    r = np.asarray(rows)[:, None] + off[None, :, 0]
    c = np.asarray(cols)[:, None] + off[None, :, 1]

    def fold(i, n):
        if edge == "replicate" or n < 2:
            return np.clip(i, 0, n - 1)
        i = np.where(i < 0, -i, i)
        return np.where(i > n - 1, 2 * (n - 1) - i, i)

    return np.stack([fold(r, ny), fold(c, nx)], axis=-1)
