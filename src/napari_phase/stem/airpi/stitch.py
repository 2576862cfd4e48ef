"""Stitching exit waves into the phase object: complex summation with sub-pixel placement.

For the probe position r_n the object patch is o_n(r) = ψout,n(r) · conj(ψin(r)) (= |ψin|² t(r)
under the phase-object approximation), trusted where |ψin|² ≥ 0.1 max. Patches live on the 64²
window (pixel dx Å, probe at the window centre); the object grid has pixel p = scan step /
oversample, origin at the first scan position. Each patch is evaluated at the object-grid pixels
around its position by band-limited Fourier interpolation (a matrix DFT): with P̂ = FFT(o_n),

    o_n(u) = (1/N²) Σ_k P̂(k) exp(2πi k·u / N),   u = N/2 + (j − c_n) · p/dx   (window px)

for object pixels j and the position c_n (object px, sub-pixel). The phase ramp exp(2πi k·u/N)
is the sub-pixel shift; the change of pixel size is exact (no rounding of the patch size). The
patches and the weights |ψin|² are summed as complex numbers: O = Σ o_n, W = Σ |ψin|²; phase =
arg O, amplitude = |O| / W.
"""

from __future__ import annotations

import math

import torch

MASK_LEVEL = 0.1


class ObjectAccumulator:
    """Complex sum O and weight W on an object grid (torch, complex64 / float32)."""

    def __init__(self, shape: tuple[int, int], device="cpu"):
        self.shape = (int(shape[0]), int(shape[1]))
        self.obj = torch.zeros(self.shape, dtype=torch.complex64, device=device)
        self.weight = torch.zeros(self.shape, dtype=torch.float32, device=device)

    def add(self, other: "ObjectAccumulator", offset: tuple[int, int] = (0, 0)) -> None:
        """Add another accumulator whose pixel (0, 0) is this grid's ``offset``."""
        oy, ox = offset
        h = min(other.shape[0], self.shape[0] - oy)
        w = min(other.shape[1], self.shape[1] - ox)
        self.obj[oy:oy + h, ox:ox + w] += other.obj[:h, :w].to(self.obj.device)
        self.weight[oy:oy + h, ox:ox + w] += other.weight[:h, :w].to(self.weight.device)

    def phase(self):
        return torch.where(self.weight > 0, torch.angle(self.obj), torch.zeros_like(self.weight))

    def amplitude(self):
        return torch.where(self.weight > 0, self.obj.abs() / self.weight.clamp_min(1e-12), torch.zeros_like(self.weight))


def patch_half_width(probe: torch.Tensor, window_px_per_obj_px: float) -> int:
    """Half-width (object px) of the region where the probe mask can be non-zero."""
    p2 = probe.abs() ** 2
    mask = p2 >= MASK_LEVEL * p2.max()
    n = probe.shape[-1]
    ys, xs = torch.nonzero(mask, as_tuple=True)
    r = float(torch.max(torch.abs(ys.float() - n / 2).max(), torch.abs(xs.float() - n / 2).max()))
    return int(math.ceil((r + 1.5) / window_px_per_obj_px)) + 1


def stitch(
    acc: ObjectAccumulator,
    psi_out: torch.Tensor,
    probe: torch.Tensor,
    positions_px: torch.Tensor,
    window_px_per_obj_px: float,
    origin: tuple[int, int] = (0, 0),
) -> None:
    """Add patches ψout·conj(ψin) (B, N, N) at ``positions_px`` (B, 2) (object px, float, in the
    frame of the full grid) into ``acc`` whose pixel (0, 0) is the full grid's ``origin``."""
    n = psi_out.shape[-1]
    dev = psi_out.device
    probe = probe.to(dev)
    b = psi_out.shape[0]
    if b == 0:
        return
    r = float(window_px_per_obj_px)
    h = patch_half_width(probe, r)
    k = (torch.fft.fftfreq(n, device=dev, dtype=torch.float64) * n)  # (N,)
    spec = torch.fft.fft2(psi_out.to(torch.complex64) * probe.conj())  # (B,N,N)
    wspec = torch.fft.fft2((probe.abs() ** 2).to(torch.complex64))  # (N,N)
    pos = positions_px.to(dev, torch.float64)
    base = torch.floor(pos)  # (B,2)
    offs = torch.arange(-h, h + 2, device=dev, dtype=torch.float64)  # (M,)
    jy = base[:, 0:1] + offs[None]  # (B,M) object px (full-grid frame)
    jx = base[:, 1:2] + offs[None]
    # the DFT matrices depend only on the sub-pixel part of the position: built once per distinct
    # fraction (one for a square scan with an integer oversample), the weight once per distinct pair
    frac, inv = torch.unique(pos - base, dim=0, return_inverse=True)  # (U,2), (B,)
    uy = n / 2 + (offs[None] - frac[:, 0:1]) * r  # (U,M) window px
    ux = n / 2 + (offs[None] - frac[:, 1:2]) * r
    ey = torch.exp(2j * math.pi * uy[..., None] * k / n).to(torch.complex64)  # (U,M,N)
    ex = torch.exp(2j * math.pi * ux[..., None] * k / n).to(torch.complex64)
    weight = ((ey @ wspec @ ex.transpose(-2, -1)).real / (n * n))[inv]  # (B,M,M)
    if len(frac) == 1:
        patch = ey[0] @ spec @ ex[0].transpose(-2, -1) / (n * n)  # (B,M,M)
    else:
        patch = ey[inv] @ spec @ ex[inv].transpose(-2, -1) / (n * n)
    wmax = float((probe.abs() ** 2).max())
    keep = weight >= MASK_LEVEL * wmax
    patch = torch.where(keep, patch, torch.zeros_like(patch))
    weight = torch.where(keep, weight, torch.zeros_like(weight))
    # scatter-add into the accumulator, dropping pixels outside it
    gy = (jy - origin[0]).long()[:, :, None].expand(-1, -1, jx.shape[1])
    gx = (jx - origin[1]).long()[:, None, :].expand(-1, jy.shape[1], -1)
    inside = (gy >= 0) & (gy < acc.shape[0]) & (gx >= 0) & (gx < acc.shape[1])
    flat = (gy * acc.shape[1] + gx)[inside]
    acc.obj.view(-1).index_add_(0, flat.to(acc.obj.device), patch[inside].to(acc.obj.device))
    acc.weight.view(-1).index_add_(0, flat.to(acc.weight.device), weight[inside].float().to(acc.weight.device))
