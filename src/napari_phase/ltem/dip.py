"""Deep-image-prior networks for SIPRAD (torch).

A light convolutional encoder–decoder (a U-Net with few channels) that maps a fixed input map to
one output map. SIPRAD uses it twice: :class:`PhaseDIP` maps the (normalised) SITIE phase to the
magnetic phase φm, and — in ``amplitude="joint"`` mode — a smaller one maps the normalised image
to the amplitude (:class:`AmplitudeDIP`).

Built for speed on a CPU: the first layer already has stride 2, so every learned layer but the
optional full-resolution head works at half resolution or coarser; channels-last memory layout;
reflect padding (no dark borders); BatchNorm + LeakyReLU as in the original deep image prior
(Ulyanov et al. 2018). The networks are always used in training mode (batch of one, BatchNorm
normalises over the image), also for the output that is kept, so there is no train/eval switch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Default channel widths per level (level k works at 1/2^(k+1) of the input resolution).
DEFAULT_CHANNELS = (8, 16, 32, 32)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, padding_mode="reflect")
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.bn(self.conv(x)), 0.2)


class UNetDIP(nn.Module):
    """Encoder (strided 3×3 convs) – decoder (bilinear upsampling, skip concatenation, 3×3 conv).

    ``channels``: widths of the encoder levels, the first at half resolution. ``full_res_head``:
    end with a small 3×3 conv at full resolution on the upsampled features concatenated with the
    input; otherwise (SIPRAD's choice: as accurate on the project's textures, and cheaper) a 1×1
    conv at half resolution followed by bilinear upsampling. ``binning``: the network sees the input
    averaged over binning × binning pixels (so every layer works at 1/binning of the resolution it
    would otherwise) and its output is upsampled bilinearly to the input size. Works for any input
    size ≥ binning · 2^len(channels) px (odd sizes included).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, channels=DEFAULT_CHANNELS, full_res_head: bool = True,
                 binning: int = 1) -> None:
        super().__init__()
        self.binning = int(binning)
        if self.binning < 1:
            raise ValueError(f"binning must be >= 1, got {binning!r}")
        ch = [int(c) for c in channels]
        if not ch or min(ch) < 1:
            raise ValueError(f"channels must be positive widths, got {channels!r}")
        c = [in_channels] + ch
        self.down = nn.ModuleList([_Block(c[i], c[i + 1], 2) for i in range(len(ch))])
        self.up = nn.ModuleList([_Block(c[i + 1] + c[i], c[i]) for i in reversed(range(1, len(ch)))])
        self.full_res_head = bool(full_res_head)
        if self.full_res_head:
            mid = max(4, ch[0])
            self.head = nn.Sequential(
                nn.Conv2d(ch[0] + in_channels, mid, 3, 1, 1, padding_mode="reflect"),
                nn.LeakyReLU(0.2),
                nn.Conv2d(mid, out_channels, 1),
            )
        else:
            self.head = nn.Conv2d(ch[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        skips = []
        h = F.avg_pool2d(x, self.binning, ceil_mode=True) if self.binning > 1 else x
        for block in self.down:
            h = block(h)
            skips.append(h)
        h = skips.pop()
        for block in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], 1))
        if self.full_res_head:
            h = F.interpolate(h, size=size, mode="bilinear", align_corners=False)
            return self.head(torch.cat([h, x], 1))
        return F.interpolate(self.head(h), size=size, mode="bilinear", align_corners=False)


def min_size_px(channels=DEFAULT_CHANNELS, binning: int = 1) -> int:
    """Smallest image side the network accepts (reflect padding needs ≥ 2 px at the coarsest level)."""
    return int(binning) * 2 ** (len(tuple(channels)) + 1)


def make_phase_net(channels=DEFAULT_CHANNELS, full_res_head: bool = True, binning: int = 1) -> UNetDIP:
    """The phase network: 1 input channel (normalised seed phase) → 1 output (φm / scale)."""
    return UNetDIP(1, 1, channels, full_res_head, binning)
