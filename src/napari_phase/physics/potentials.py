"""Projected atomic potentials from the Kirkland parametrisation, computed in Fourier space.

Parametrisation (Kirkland, *Advanced Computing in Electron Microscopy*, 2nd ed., 2010, App. C):
the electron scattering factor (Å) at spatial frequency q (1/Å, cycles per Å) is

    f_e(q) = Σ_{i=1..3} a_i / (q² + b_i) + Σ_{i=1..3} c_i exp(-d_i q²).

The projected potential v_z(r) = ∫ V dz (V·Å) has the 2-D Fourier transform (∫ e^{-2πi q·r} d²r)

    v̂_z(q) = 2π a0 e · f_e(q)       [V·Å³],   2π a0 e = 47.878 V·Å²  (a0 = 0.52918 Å, e = 14.3996 V·Å)

and in real space  v_z(r) = 4π² a0 e [Σ a_i K0(2π r √b_i) + Σ (c_i / 2d_i) exp(-π² r²/d_i)].

On a periodic grid (a cell spanned by two in-plane vectors, n_a × n_b pixels, area A) atoms are
placed by structure factors: v̂(q) = Σ_elements v̂_e(q) Σ_{atoms j} exp(-2πi q·r_j), and
V[pixel] = (1/A) Σ_q v̂(q) e^{2πi q·r} (an inverse rFFT times n_a n_b / A): the exact band-limited
(to the grid's Nyquist box) periodic sum of atom potentials; no circular cut is applied here (a hard
one rings: the Lorentzian tails fall only as 1/q²); the multislice band-limits the transmission
function instead (:mod:`napari_phase.physics.multislice`). A Debye–Waller factor
exp(-2π² u² q²) (u: rms displacement per axis, Å) gives the thermally smeared static potential.

Units: potentials in V·Å (projected over a slice); phases follow as σ·V with
σ = :func:`napari_phase.physics.optics.interaction_constant` (rad/(V·Å)).
Axis order (y, x); positions in Å as (x, y, z) columns like ASE (converted internally).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..jobs import InputError
from ._kirkland_table import KIRKLAND

REFERENCE = (
    "E. J. Kirkland, Advanced Computing in Electron Microscopy, 2nd ed., Springer (2010), "
    "Appendix C: scattering-factor parametrisation (3 Lorentzians + 3 Gaussians)"
)
BOHR_RADIUS_A = 0.529177210903
#: e²/(4πε0) expressed as "e" in V·Å (Kirkland's e = 14.4 V·Å).
E_V_A = 14.3996454784
#: 2π a0 e in V·Å²: v̂_z(q) = TWO_PI_A0_E · f_e(q).
TWO_PI_A0_E = 2 * math.pi * BOHR_RADIUS_A * E_V_A


def _symbol(element) -> str:
    from ase.data import chemical_symbols

    if isinstance(element, (int, np.integer)):
        z = int(element)
        if not 1 <= z < len(chemical_symbols):
            raise InputError(f"unknown element with atomic number {z}")
        return chemical_symbols[z]
    sym = str(element).strip().capitalize()
    if sym not in KIRKLAND:
        raise InputError(f"unknown element {element!r}: no Kirkland parameters (known: H to Lr)")
    return sym


def element_parameters(element) -> np.ndarray:
    """Kirkland parameters of one element as a (4, 3) float64 array: rows a, b, c, d."""
    sym = _symbol(element)
    if sym not in KIRKLAND:
        raise InputError(f"unknown element {element!r}: no Kirkland parameters")
    return np.asarray(KIRKLAND[sym], dtype=np.float64).reshape(4, 3)


def scattering_factor(element, q_inv_a) -> np.ndarray:
    """Electron scattering factor f_e(q) in Å at q (1/Å): Σ a/(q²+b) + Σ c exp(-d q²)."""
    a, b, c, d = element_parameters(element)
    q2 = np.asarray(q_inv_a, dtype=np.float64)[..., None] ** 2
    return (a / (q2 + b) + c * np.exp(-d * q2)).sum(-1)


def projected_potential_ft(element, q_inv_a) -> np.ndarray:
    """Fourier transform of one atom's projected potential, v̂_z(q) = 2π a0 e f_e(q), in V·Å³."""
    return TWO_PI_A0_E * scattering_factor(element, q_inv_a)


def projected_potential_radial(element, r_a) -> np.ndarray:
    """One atom's projected potential v_z(r) in V·Å at radius r (Å), analytic real-space form."""
    from scipy.special import k0

    a, b, c, d = element_parameters(element)
    r = np.maximum(np.asarray(r_a, dtype=np.float64), 1e-6)[..., None]
    lor = a * k0(2 * math.pi * r * np.sqrt(b))
    gau = c / (2 * d) * np.exp(-(math.pi**2) * r**2 / d)
    return 4 * math.pi**2 * BOHR_RADIUS_A * E_V_A * (lor + gau).sum(-1)


# --------------------------------------------------------------------------- torch core


def _table_t(symbols: Sequence[str], device, dtype):
    import torch

    p = np.stack([element_parameters(s) for s in symbols])  # (E, 4, 3)
    return torch.as_tensor(p, device=device, dtype=dtype)


def reciprocal_grid_t(cell_yx, gpts, device=None, dtype=None, rfft: bool = True):
    """Frequencies of a periodic 2-D cell on its FFT grid.

    ``cell_yx``: (2, 2) rows = the two cell vectors in (y, x) Å (row 0 along array axis 0).
    Returns (h, k, q2): integer frequency indices along each axis (h: (n_a, 1), k: (1, n_b'))
    and |q|² in 1/Å² (n_a, n_b'), with n_b' = n_b//2+1 when ``rfft``.
    """
    import torch

    dtype = dtype or torch.float32
    na, nb = int(gpts[0]), int(gpts[1])
    cell = torch.as_tensor(np.asarray(cell_yx, dtype=np.float64), device=device)
    recip = torch.linalg.inv(cell).T  # rows b_i with b_i · v_j = δ_ij (cycles per Å)
    h = torch.fft.fftfreq(na, d=1.0 / na, device=device, dtype=torch.float64)[:, None]
    k = (torch.fft.rfftfreq if rfft else torch.fft.fftfreq)(nb, d=1.0 / nb, device=device, dtype=torch.float64)[None, :]
    qy = h * recip[0, 0] + k * recip[1, 0]
    qx = h * recip[0, 1] + k * recip[1, 1]
    return h.to(dtype), k.to(dtype), (qy**2 + qx**2).to(dtype)


def form_factors_t(symbols: Sequence[str], q2, dw_rms_a=None):
    """v̂_e(q) (V·Å³) for each element on a |q|² grid: (E, *q2.shape). Band-limit is the caller's.

    ``dw_rms_a``: optional per-element rms displacement (Å, per axis); multiplies by exp(-2π²u²q²).
    """
    import torch

    p = _table_t(symbols, q2.device, q2.dtype)  # (E, 4, 3)
    shp = (len(symbols),) + (1,) * q2.dim() + (3,)
    a, b, c, d = (p[:, i].reshape(shp) for i in range(4))
    q2e = q2[None, ..., None]
    f = (a / (q2e + b) + c * torch.exp(-d * q2e)).sum(-1) * TWO_PI_A0_E
    if dw_rms_a is not None:
        u = torch.as_tensor(np.asarray(dw_rms_a, dtype=np.float64), device=q2.device, dtype=q2.dtype).reshape(-1, *(1,) * q2.dim())
        f = f * torch.exp(-2 * math.pi**2 * u**2 * q2[None])
    return f


def slice_potentials_t(
    frac_ab,
    element_index,
    slice_index,
    n_slices: int,
    form_factors,
    h,
    k,
    gpts,
    area_a2: float,
    band_limit=None,
):
    """Projected potential of each slice on a periodic cell grid, batched over configurations.

    ``frac_ab``: (C, N, 2) fractional coordinates along the two cell vectors (any real values,
    periodic); ``element_index``: (N,) long, index into ``form_factors`` (E, n_a, n_b//2+1);
    ``slice_index``: (N,) long in [0, n_slices) (atoms outside are dropped); ``h``, ``k`` from
    :func:`reciprocal_grid_t`; ``band_limit``: optional (n_a, n_b//2+1) mask.
    Returns (C, n_slices, n_a, n_b) real potentials in V·Å (float of ``form_factors``' dtype).
    Cost ~ C · N · n_a · n_b / 2 complex multiply-adds (separable structure factors, one matmul
    per element and slice group).
    """
    import torch

    na, nb = int(gpts[0]), int(gpts[1])
    C = frac_ab.shape[0]
    rdtype = form_factors.dtype
    cdtype = torch.complex64 if rdtype == torch.float32 else torch.complex128
    device = form_factors.device
    out_ft = torch.zeros((C, n_slices, na, nb // 2 + 1), dtype=cdtype, device=device)
    frac_ab = frac_ab.to(device=device, dtype=torch.float64)
    element_index = torch.as_tensor(element_index, device=device).long()
    slice_index = torch.as_tensor(slice_index, device=device).long()
    inside = (slice_index >= 0) & (slice_index < n_slices)
    two_pi = 2 * math.pi
    h64, k64 = h.to(torch.float64), k.to(torch.float64)
    for e in range(form_factors.shape[0]):
        sel = torch.nonzero((element_index == e) & inside).flatten()
        if sel.numel() == 0:
            continue
        s_of = slice_index[sel]
        # group atoms by slice, padded to the fullest slice (zero weight for padding)
        order = torch.argsort(s_of, stable=True)
        sel, s_of = sel[order], s_of[order]
        counts = torch.bincount(s_of, minlength=n_slices)
        m = int(counts.max())
        starts = torch.cumsum(counts, 0) - counts
        pos_in = torch.arange(sel.numel(), device=device) - starts[s_of]
        fa = torch.zeros((C, n_slices, m), dtype=torch.float64, device=device)
        fb = torch.zeros_like(fa)
        w = torch.zeros((n_slices, m), dtype=rdtype, device=device)
        fa[:, s_of, pos_in] = frac_ab[:, sel, 0]
        fb[:, s_of, pos_in] = frac_ab[:, sel, 1]
        w[s_of, pos_in] = 1.0
        # phases reduced mod 1 in float64 before the float32 exponent keeps large cells accurate
        pa = torch.remainder(-h64.reshape(1, 1, na, 1) * fa[:, :, None, :], 1.0)  # (C, S, na, m)
        pb = torch.remainder(-fb[:, :, :, None] * k64.reshape(1, 1, 1, -1), 1.0)  # (C, S, m, nb')
        ea = torch.polar(w[None, :, None, :].expand(C, -1, na, -1).contiguous(), (two_pi * pa).to(rdtype))
        eb = torch.polar(torch.ones_like(pb, dtype=rdtype), (two_pi * pb).to(rdtype))
        struct = torch.matmul(ea, eb)  # (C, S, na, nb')
        out_ft += struct * form_factors[e]
    if band_limit is not None:
        out_ft = out_ft * band_limit
    return torch.fft.irfft2(out_ft, s=(na, nb)) * (na * nb / area_a2)


# --------------------------------------------------------------------------- numpy edge


def _positions(positions_a, numbers) -> tuple[np.ndarray, list[str], np.ndarray]:
    pos = np.asarray(positions_a, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] not in (2, 3):
        raise InputError(f"positions must be (N, 2) or (N, 3) in Å (x, y[, z]), got shape {pos.shape}")
    if not np.isfinite(pos).all():
        raise InputError("atom positions contain NaN/inf")
    nums = list(numbers) if not isinstance(numbers, str) else [numbers] * len(pos)
    if len(nums) != len(pos):
        raise InputError(f"{len(nums)} element labels for {len(pos)} positions")
    syms = [_symbol(n) for n in nums]
    uniq = sorted(set(syms), key=syms.index)
    idx = np.array([uniq.index(s) for s in syms], dtype=np.int64)
    return pos, uniq, idx


def _grid_args(gpts, sampling_a):
    try:
        ny, nx = (int(g) for g in gpts)
    except (TypeError, ValueError):
        raise InputError(f"gpts must be two integers (ny, nx), got {gpts!r}") from None
    if ny < 2 or nx < 2:
        raise InputError(f"gpts must be at least 2x2, got {gpts!r}")
    s = np.broadcast_to(np.asarray(sampling_a, dtype=np.float64), (2,))
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise InputError(f"sampling_a must be positive, got {sampling_a!r}")
    return (ny, nx), (float(s[0]), float(s[1]))


def potential_slices(
    positions_a,
    numbers,
    gpts,
    sampling_a,
    *,
    slice_thickness_a: float | None = None,
    thickness_a: float | None = None,
    z_origin_a: float = 0.0,
    dw_rms_a: float | dict | None = None,
    device="cpu",
) -> np.ndarray:
    """Slices of projected potential (S, ny, nx) float32 in V·Å on a periodic rectangular box.

    The box spans [0, ny·dy) × [0, nx·dx) (Å) from the origin; atoms outside wrap around.
    Atoms with z in [z0 + s·dz, z0 + (s+1)·dz) fall in slice s; ``slice_thickness_a=None`` gives
    one slice holding every atom (the phase-object projection). ``thickness_a`` defaults to the
    atoms' z extent. ``dw_rms_a``: Debye–Waller rms displacement (Å per axis), global or per element.
    """
    import torch

    pos, uniq, idx = _positions(positions_a, numbers)
    (ny, nx), (dy, dx) = _grid_args(gpts, sampling_a)
    z = pos[:, 2] if pos.shape[1] == 3 else np.zeros(len(pos))
    if slice_thickness_a is None:
        n_slices, sidx = 1, np.zeros(len(pos), dtype=np.int64)
    else:
        dz = float(slice_thickness_a)
        if not math.isfinite(dz) or dz <= 0:
            raise InputError(f"slice_thickness_a must be positive, got {slice_thickness_a!r}")
        t = float(thickness_a) if thickness_a is not None else max(float(z.max() - z_origin_a) + 1e-6, dz) if len(z) else dz
        if not math.isfinite(t) or t <= 0:
            raise InputError(f"thickness_a must be positive, got {thickness_a!r}")
        n_slices = max(1, int(math.ceil(t / dz - 1e-9)))
        sidx = np.floor((z - z_origin_a) / dz).astype(np.int64)
        sidx = np.clip(sidx, 0, n_slices - 1)
    cell = np.diag([ny * dy, nx * dx])
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    h, k, q2 = reciprocal_grid_t(cell, (ny, nx), device=dev)
    u = None
    if dw_rms_a is not None:
        u = [float(dw_rms_a.get(s, 0.0)) for s in uniq] if isinstance(dw_rms_a, dict) else [float(dw_rms_a)] * len(uniq)
    ff = form_factors_t(uniq, q2, u)
    frac = np.stack([pos[:, 1] / cell[0, 0], pos[:, 0] / cell[1, 1]], axis=-1)[None]
    out = slice_potentials_t(
        torch.as_tensor(frac), torch.as_tensor(idx), torch.as_tensor(sidx), n_slices, ff, h, k, (ny, nx),
        float(cell[0, 0] * cell[1, 1]),
    )
    return out[0].cpu().numpy().astype(np.float32)


def projected_potential(positions_a, numbers, gpts, sampling_a, *, dw_rms_a=None, device="cpu") -> np.ndarray:
    """Total projected potential (ny, nx) float32 in V·Å of atoms in a periodic box (see
    :func:`potential_slices`); the phase object is σ·V with σ from ``optics.interaction_constant``."""
    return potential_slices(positions_a, numbers, gpts, sampling_a, dw_rms_a=dw_rms_a, device=device)[0]
