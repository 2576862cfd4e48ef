"""The airpi-style U-Net: 3x3 kernel of diffraction patterns + probe -> exit wave of the centre.

Input (B, 11, 64, 64): nine standardised I^0.1 patterns (weighted by neighbour distance, see
preprocess.py) and the probe's real-space amplitude and phase. A U-Net with strided convolutions
(no pooling), batch norm and SiLU; two 1x1 heads give Δa and Δφ, and the exit wave is a global
residual on the probe:

    ψout = (|ψin| + s_a Δa) · exp(i (arg ψin + s_φ Δφ))

with small trainable output scales s_a, s_φ (initialised to 0.1). ``width`` is the number of
channels at full resolution (doubling per level), ``depth`` the number of stride-2 levels.
"""

from __future__ import annotations

import torch
from torch import nn

IN_CHANNELS = 11


def _block(cin: int, cout: int, stride: int = 1, convs: int = 2) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.SiLU(inplace=True)]
    for _ in range(convs - 1):
        layers += [nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.SiLU(inplace=True)]
    return nn.Sequential(*layers)


class AirpiNet(nn.Module):
    """U-Net predicting the centre exit wave as a residual on the probe (see module doc)."""

    def __init__(self, width: int = 24, depth: int = 4, max_width: int = 256):
        super().__init__()
        self.width, self.depth, self.max_width = int(width), int(depth), int(max_width)
        chans = [min(self.width * 2**i, self.max_width) for i in range(self.depth + 1)]
        self.stem = _block(IN_CHANNELS, chans[0], convs=1)  # full resolution: one conv (CPU cost)
        self.down = nn.ModuleList(_block(chans[i], chans[i + 1], stride=2) for i in range(self.depth))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(self.depth))
        )
        self.merge = nn.ModuleList(_block(2 * chans[i], chans[i], convs=1 if i == 0 else 2)
                                   for i in reversed(range(self.depth)))
        self.head = nn.Conv2d(chans[0], 2, 1)
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.head.weight, std=1e-3)
        self.amp_scale = nn.Parameter(torch.tensor(0.1))
        self.phase_scale = nn.Parameter(torch.tensor(0.1))

    def config(self) -> dict:
        return {"architecture": "AirpiNet", "width": self.width, "depth": self.depth, "max_width": self.max_width}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 11, 64, 64) -> (amplitude, phase) of the exit wave, each (B, 64, 64).

        Channel 9 is the probe amplitude (max 1), channel 10 its phase (rad).
        """
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = skips.pop()
        for up, merge in zip(self.up, self.merge):
            h = merge(torch.cat([up(h), skips.pop()], dim=1))
        d = self.head(h)
        amp = torch.abs(x[:, 9] + self.amp_scale * d[:, 0])
        phase = x[:, 10] + self.phase_scale * d[:, 1]
        return amp, phase


def build(card: dict | None = None) -> AirpiNet:
    """The network described by a model card (``card["network"]``), default sizes otherwise."""
    net = dict((card or {}).get("network", {}))
    return AirpiNet(width=int(net.get("width", 24)), depth=int(net.get("depth", 4)),
                    max_width=int(net.get("max_width", 256)))
