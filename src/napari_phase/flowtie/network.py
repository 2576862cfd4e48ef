"""The FlowTIE network: a small U-Net from a normalised triplet to the phase-gradient flow.

Everything here lives on the *network grid*: the triplet resampled so that the pixel is
p_net = 1/(4 q_ap) (q_ap = α/λ the aperture radius), i.e. the intensity's band limit 2 q_ap sits at
the grid's Nyquist frequency. On that grid the physics has one dimensionless number,
κ = π λ dz q_ap² (the Fresnel phase at the aperture edge), and the TIE reads

    ∇²φ ≈ −(π²/(16 κ)) (I+ − I−)      (lengths in net pixels, I0 ≈ 1).

Input channels (:func:`network_inputs`): I− − 1, I0 − 1, I+ − 1, the scaled TIE source
d = (π²/(16κ))(I+ − I−)/8 (≈ −∇²φ/8), the classical-TIE phase (rad; two Poisson solves on the same
grid) and log κ as a constant map. Output: two channels added to the classical-TIE flow ∇φ_TIE, so
the network learns the correction (small for thin specimens, large where dynamical scattering
breaks the TIE): flow = ∇φ_TIE + U(x) in rad per net pixel. The phase follows by least-squares
integration (:func:`.flow.integrate_t`), band-limited to the aperture (|q| ≤ 0.25 cycles/px).
"""

from __future__ import annotations

import math

import torch
from torch import nn

IN_CHANNELS = 6
#: aperture radius on the network grid (cycles per net pixel): p_net = 1/(4 q_ap)
Q_AP_NET = 0.25


def _block(cin: int, cout: int) -> nn.Sequential:
    groups = max(1, min(8, cout // 4))
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect"), nn.GroupNorm(groups, cout), nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1, padding_mode="reflect"), nn.GroupNorm(groups, cout), nn.SiLU(),
    )


class FlowTIENet(nn.Module):
    """U-Net (``levels`` stride-2 stages, widths ``base``·2^k, GroupNorm + SiLU) → 2-channel flow
    correction in rad per net pixel. Input (B, 6, H, W) with H, W multiples of 2^levels."""

    def __init__(self, base: int = 16, levels: int = 3):
        super().__init__()
        self.base, self.levels = int(base), int(levels)
        widths = [self.base * 2**k for k in range(self.levels + 1)]
        self.stem = _block(IN_CHANNELS, widths[0])
        self.down = nn.ModuleList(nn.Conv2d(widths[k], widths[k + 1], 3, stride=2, padding=1) for k in range(self.levels))
        self.enc = nn.ModuleList(_block(widths[k + 1], widths[k + 1]) for k in range(self.levels))
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[k + 1], widths[k], 2, stride=2) for k in reversed(range(self.levels)))
        self.dec = nn.ModuleList(_block(2 * widths[k], widths[k]) for k in reversed(range(self.levels)))
        self.head = nn.Conv2d(widths[0], 2, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def multiple(self) -> int:
        return 2**self.levels

    def config(self) -> dict:
        return {"architecture": "FlowTIENet U-Net", "base": self.base, "levels": self.levels,
                "in_channels": IN_CHANNELS, "out": "flow correction (2, rad/net px) added to the classical-TIE flow"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = self.stem(x)
        for down, enc in zip(self.down, self.enc):
            skips.append(h)
            h = enc(down(h))
        for up, dec in zip(self.up, self.dec):
            h = dec(torch.cat([up(h), skips.pop()], dim=1))
        return self.head(h)


def network_inputs(triplet: torch.Tensor, phase_tie: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """(B, 6, H, W) input from a triplet (B, 3, H, W; mean(I0) = 1), the classical-TIE phase
    (B, H, W; rad) and κ = πλ dz q_ap² (B,)."""
    kappa = kappa.reshape(-1, 1, 1).to(triplet.dtype)
    d = (math.pi**2 / (16 * kappa)) * (triplet[:, 2] - triplet[:, 0]) / 8
    logk = torch.log(kappa).expand_as(d)
    return torch.cat([triplet - 1.0, d[:, None], phase_tie[:, None], logk[:, None]], dim=1)


def build(card: dict | None = None) -> FlowTIENet:
    """The architecture a model card describes (for :func:`napari_phase.models.load_model`)."""
    arch = (card or {}).get("architecture_config", {})
    return FlowTIENet(base=int(arch.get("base", 16)), levels=int(arch.get("levels", 3)))
