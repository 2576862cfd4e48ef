"""The project's one multislice simulator: probes, transmission, Fresnel propagation, 4D-STEM.

Batched PyTorch inside (CPU or CUDA through ``jobs.resolve_device``), numpy at the public edge.
Conventions (DESIGN.md §3, §4, §6); lengths in Å, angles in mrad, potentials in V·Å:

- Probe: Ψ(k) = A(k) exp(-iχ(k)), A a hard aperture |k| ≤ α/λ, χ(k) = πλΔf k² + (π/2)Cs λ³k⁴
  + πλ A1 k² cos 2(θ_k − θ_A1) (as ``optics.chi``); ψ = F⁻¹Ψ, Σ|ψ|² = 1 over the grid.
  A positive Δf is a propagation of the focused probe by +Δf (the crossover lies Δf above the
  entrance surface); negative Δf focuses the probe into the specimen.
- Transmission: t = exp(iσV), σ = ``optics.interaction_constant`` (rad/(V·Å)), V the slice's
  projected potential (V·Å); band-limited to 2/3 of the grid's Nyquist frequency (anti-aliasing).
- Propagation by z: spectrum × exp(-iπλz k²) (``optics.fresnel_propagator``), same 2/3 band limit.
- Multislice: ψ_{n+1} = P_dz[t_n ψ_n] for every slice (the exit plane is the bottom of the last
  slice); a phase object is ψ t with t = exp(iσ ΣV) and no propagation.
- Diffraction pattern: |F[ψ_exit]|² / N (sums to 1 on the full grid), fftshifted: the optical
  axis at pixel (ky//2, kx//2); detector pixel = λ/(n·dx) rad. Poisson dose D (e/Å²):
  counts ~ Poisson(I · D · step_y · step_x).
- Frozen phonons: every atom displaced by N(0, u²) per axis (u the rms, Å, global or per
  element), intensities averaged over configurations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..jobs import InputError, resolve_device
from . import optics
from .potentials import form_factors_t, reciprocal_grid_t, slice_potentials_t

ANTIALIAS = 2.0 / 3.0


def _finite_positive(value, name: str, unit: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number ({unit}), got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be positive ({unit}), got {value!r}")
    return v


def _finite(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{name} must be finite, got {value!r}")
    return v


def _gpts(gpts, name="gpts") -> tuple[int, int]:
    if np.isscalar(gpts):
        gpts = (gpts, gpts)
    try:
        ny, nx = (int(g) for g in gpts)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be one or two integers, got {gpts!r}") from None
    if ny < 4 or nx < 4:
        raise InputError(f"{name} must be at least 4x4, got {gpts!r}")
    return ny, nx


def wavelength_a(energy_kev: float) -> float:
    """Relativistic electron wavelength in Å (``optics.electron_wavelength_a``)."""
    return optics.electron_wavelength_a(_finite_positive(energy_kev, "energy_kev", "keV"))


def sigma(energy_kev: float) -> float:
    """Interaction constant σ in rad/(V·Å) (7.29e-4 at 200 kV)."""
    return optics.interaction_constant(_finite_positive(energy_kev, "energy_kev", "keV"), "A")


# --------------------------------------------------------------------------- torch building blocks


def _kgrid_t(gpts, sampling_a, device, dtype=None):
    import torch

    dtype = dtype or torch.float32
    ky = torch.fft.fftfreq(gpts[0], d=sampling_a, device=device, dtype=torch.float64)[:, None]
    kx = torch.fft.fftfreq(gpts[1], d=sampling_a, device=device, dtype=torch.float64)[None, :]
    return ky.to(dtype), kx.to(dtype)


def antialias_mask_t(gpts, sampling_a, device=None, fraction: float = ANTIALIAS):
    """1 where |k| ≤ fraction · 1/(2·sampling) (the inscribed Nyquist circle), else 0 (float32)."""
    ky, kx = _kgrid_t(gpts, sampling_a, device)
    return ((ky**2 + kx**2) <= (fraction * 0.5 / sampling_a) ** 2).float()


def _as_batch(v, device):
    import torch

    t = torch.as_tensor(v, device=device, dtype=torch.float64)
    return t.reshape(-1, 1, 1) if t.dim() else t


def probe_fourier_t(
    gpts,
    sampling_a: float,
    energy_kev,
    semiangle_mrad,
    defocus_a=0.0,
    cs_mm=0.0,
    astig_a=0.0,
    astig_angle_deg=0.0,
    device=None,
):
    """Probe spectrum Ψ(k) = A exp(-iχ) on the FFT grid, complex64, normalised so that the
    real-space probe F⁻¹Ψ (torch ``ifft2``) has Σ|ψ|² = 1. Any of energy, semiangle, defocus,
    Cs, astigmatism may be a (B,) array for a batch of probes: returns (B, H, W), else (H, W)."""
    import torch

    device = resolve_device(device or "cpu")
    ky, kx = _kgrid_t(gpts, sampling_a, device, torch.float64)
    k2 = ky**2 + kx**2
    e = np.asarray(energy_kev, dtype=np.float64)
    lam = _as_batch(np.vectorize(optics.electron_wavelength_a)(e) if e.ndim else optics.electron_wavelength_a(float(e)), device)
    alpha = _as_batch(np.asarray(semiangle_mrad, dtype=np.float64) * 1e-3, device)
    df = _as_batch(defocus_a, device)
    cs = _as_batch(np.asarray(cs_mm, dtype=np.float64) * 1e7, device)
    a1 = _as_batch(astig_a, device)
    th_a = _as_batch(np.radians(np.asarray(astig_angle_deg, dtype=np.float64)), device)
    chi = math.pi * lam * df * k2 + 0.5 * math.pi * cs * lam**3 * k2**2
    chi = chi + math.pi * lam * a1 * k2 * torch.cos(2 * (torch.atan2(ky, kx) - th_a))
    aperture = (k2 <= (alpha / lam) ** 2).to(torch.float64)
    n = gpts[0] * gpts[1]
    norm = torch.sqrt(aperture.sum(dim=(-2, -1), keepdim=True).clamp_min(1) / n)
    psi = torch.polar(aperture / norm, -chi)
    return psi.to(torch.complex64)


def shift_phase_t(gpts, sampling_a, shifts_a, device=None):
    """Fourier shift factors exp(-2πi k·r0) for shifts r0 = (y, x) in Å, shape (..., H, W)
    (separable: an outer product of two 1-D ramps, phases reduced mod 1 in float64)."""
    import torch

    ky = torch.fft.fftfreq(gpts[0], d=sampling_a, device=device, dtype=torch.float64)
    kx = torch.fft.fftfreq(gpts[1], d=sampling_a, device=device, dtype=torch.float64)
    s = torch.as_tensor(shifts_a, device=device, dtype=torch.float64)
    py = torch.remainder(-s[..., 0, None] * ky, 1.0).to(torch.float32) * (2 * math.pi)
    px = torch.remainder(-s[..., 1, None] * kx, 1.0).to(torch.float32) * (2 * math.pi)
    ey = torch.polar(torch.ones_like(py), py)
    ex = torch.polar(torch.ones_like(px), px)
    return ey[..., :, None] * ex[..., None, :]


def transmission_t(potential_va, energy_kev: float, sampling_a: float | None = None, antialias: bool = True):
    """t = exp(iσV) (complex64) of potential slices (..., H, W) in V·Å; band-limited to 2/3 of
    Nyquist when ``antialias`` (needs ``sampling_a``; the cut is in units of the grid only)."""
    import torch

    v = torch.as_tensor(potential_va)
    t = torch.polar(torch.ones_like(v, dtype=torch.float32), (sigma(energy_kev) * v).to(torch.float32))
    if antialias:
        mask = antialias_mask_t(v.shape[-2:], 1.0, v.device)  # fraction of Nyquist: sampling-free
        t = torch.fft.ifft2(torch.fft.fft2(t) * mask)
    return t


def propagator_t(gpts, sampling_a: float, energy_kev: float, distance_a: float, device=None, antialias: bool = True):
    """Fresnel propagator exp(-iπλz k²) on the FFT grid (complex64), from
    ``optics.fresnel_propagator``, times the 2/3 anti-aliasing aperture."""
    import torch

    p = optics.fresnel_propagator(gpts, sampling_a, wavelength_a(energy_kev), float(distance_a))
    p = torch.as_tensor(p, device=device).to(torch.complex64)
    if antialias:
        p = p * antialias_mask_t(gpts, sampling_a, device)
    return p


def multislice_t(wave, transmissions, propagator, repeats: int = 1):
    """ψ ← F⁻¹[P · F[t_s ψ]] for s over the slices, the whole stack ``repeats`` times.

    ``wave``: (..., H, W) complex; ``transmissions``: (..., S, H, W) broadcastable against the wave
    with a slice axis at -3; ``propagator``: (H, W) or broadcastable (..., H, W)."""
    import torch

    n_slices = transmissions.shape[-3]
    for _ in range(int(repeats)):
        for s in range(n_slices):
            wave = torch.fft.ifft2(torch.fft.fft2(wave * transmissions[..., s, :, :]) * propagator)
    return wave


def patterns_t(exit_waves, detector_gpts=None):
    """|F[ψ]|²/N fftshifted (optical axis at (n//2, n//2)), cropped to the central detector_gpts."""
    import torch

    n = exit_waves.shape[-2] * exit_waves.shape[-1]
    f = torch.fft.fftshift(torch.fft.fft2(exit_waves), dim=(-2, -1))
    i = (f.real**2 + f.imag**2) / n
    if detector_gpts is None:
        return i
    dy, dx = detector_gpts
    ny, nx = i.shape[-2:]
    oy, ox = ny // 2 - dy // 2, nx // 2 - dx // 2
    return i[..., oy : oy + dy, ox : ox + dx]


# --------------------------------------------------------------------------- numpy helpers


def probe(
    gpts,
    sampling_a: float,
    energy_kev: float,
    semiangle_mrad: float,
    *,
    defocus_a: float = 0.0,
    cs_mm: float = 0.0,
    astig_a: float = 0.0,
    astig_angle_deg: float = 0.0,
    centered: bool = True,
    device="cpu",
) -> np.ndarray:
    """Real-space probe (H, W) complex64 with Σ|ψ|² = 1, centred at pixel (H//2, W//2) when
    ``centered`` (else at pixel (0, 0), FFT convention). Aperture |k| ≤ α/λ, χ as ``optics.chi``."""
    import torch

    g = _gpts(gpts)
    dx = _finite_positive(sampling_a, "sampling_a", "Å")
    alpha = _finite_positive(semiangle_mrad, "semiangle_mrad", "mrad")
    lam = wavelength_a(energy_kev)
    if alpha * 1e-3 / lam < 1.0 / (max(g) * dx):
        raise InputError(f"the aperture ({alpha:g} mrad) is smaller than one pixel of this grid's spectrum; use a larger grid")
    if alpha * 1e-3 / lam > 0.5 / dx:
        raise InputError(f"the aperture ({alpha:g} mrad) reaches beyond this grid's Nyquist angle "
                         f"({0.5 / dx * lam * 1e3:.1f} mrad); use a finer sampling")
    dev = resolve_device(device)
    psi_k = probe_fourier_t(g, dx, energy_kev, alpha, _finite(defocus_a, "defocus_a"), _finite(cs_mm, "cs_mm"),
                            _finite(astig_a, "astig_a"), _finite(astig_angle_deg, "astig_angle_deg"), dev)
    if centered:
        psi_k = psi_k * shift_phase_t(g, dx, [g[0] // 2 * dx, g[1] // 2 * dx], dev)
    return torch.fft.ifft2(psi_k).cpu().numpy().astype(np.complex64)


def transmission(potential_va, energy_kev: float, *, antialias: bool = True) -> np.ndarray:
    """exp(iσV) (complex64) of a projected potential (..., H, W) in V·Å (see :func:`transmission_t`)."""
    import torch

    v = _potential_array(potential_va)
    return transmission_t(torch.as_tensor(v), energy_kev, antialias=antialias).numpy().astype(np.complex64)


def fresnel_propagate(wave, sampling_a: float, energy_kev: float, distance_a: float) -> np.ndarray:
    """Propagate a wave (..., H, W) by ``distance_a`` along the beam: F⁻¹[F[ψ] exp(-iπλz k²)]
    (``optics.fresnel_propagator``; positive = downstream, DESIGN §3). No band limit."""
    w = np.asarray(wave)
    if w.ndim < 2 or min(w.shape[-2:]) < 2:
        raise InputError(f"wave must be at least 2-D (…, H, W), got shape {w.shape}")
    if not np.isfinite(w).all():
        raise InputError("wave contains NaN/inf")
    dx = _finite_positive(sampling_a, "sampling_a", "Å")
    p = optics.fresnel_propagator(w.shape[-2:], dx, wavelength_a(energy_kev), _finite(distance_a, "distance_a"))
    return np.fft.ifft2(np.fft.fft2(w) * p).astype(np.complex64)


def _potential_array(potential_va) -> np.ndarray:
    v = np.asarray(potential_va, dtype=np.float32)
    if v.ndim < 2 or v.size == 0:
        raise InputError(f"potential must be (…, H, W) in V·Å, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise InputError("potential contains NaN/inf")
    return v


def _atoms_of(specimen):
    try:
        from ase import Atoms
    except ImportError:  # pragma: no cover
        Atoms = ()  # noqa: N806
    if isinstance(specimen, Atoms):
        if len(specimen) == 0:
            raise InputError("the specimen has no atoms")
        return specimen
    return None


def _rms_per_atom(atoms, rms_a) -> np.ndarray:
    syms = atoms.get_chemical_symbols()
    if isinstance(rms_a, dict):
        return np.array([float(rms_a.get(s, 0.0)) for s in syms])
    r = float(rms_a)
    if not math.isfinite(r) or r < 0:
        raise InputError(f"phonon rms must be ≥ 0 Å, got {rms_a!r}")
    return np.full(len(syms), r)


@dataclass
class SlicedSpecimen:
    """Potential slices of a specimen on a periodic grid: ``slices`` (C, S, H, W) torch V·Å for C
    frozen-phonon configurations; ``sampling_a``; ``slice_thickness_a``; ``origin_a`` (y, x) of
    pixel (0, 0) in specimen coordinates; ``info``."""

    slices: Any
    sampling_a: float
    slice_thickness_a: float
    origin_a: tuple = (0.0, 0.0)
    info: dict = field(default_factory=dict)


def slice_specimen(
    specimen,
    sampling_a: float,
    *,
    slice_thickness_a: float | None = 2.0,
    frozen_phonons: int = 1,
    phonon_rms_a: float | dict = 0.0,
    seed: int = 0,
    gpts=None,
    device="cpu",
) -> SlicedSpecimen:
    """Slice an ase.Atoms specimen (box cell) on a grid of ``sampling_a`` covering its cell.

    The grid has ceil(L/dx) pixels per axis (periodic over that extent); ``slice_thickness_a=None``
    projects all atoms into one slice (phase object). ``frozen_phonons`` configurations with
    Gaussian displacements of rms ``phonon_rms_a`` (Å per axis; global or per element) drawn from
    ``seed``; configuration 0 is displaced too when the rms is > 0.
    """
    import torch

    atoms = _atoms_of(specimen)
    if atoms is None:
        raise InputError("specimen must be an ase.Atoms (see physics.specimens.supercell)")
    dx = _finite_positive(sampling_a, "sampling_a", "Å")
    cell = atoms.cell.array
    lx, ly, lz = float(cell[0, 0]), float(cell[1, 1]), float(cell[2, 2])
    if abs(cell[0, 1]) + abs(cell[1, 0]) > 1e-6 or lx <= 0 or ly <= 0:
        raise InputError("the specimen needs a rectangular box cell (x, y) in Å")
    if gpts is None:
        gpts = (max(4, int(math.ceil(ly / dx - 1e-6))), max(4, int(math.ceil(lx / dx - 1e-6))))
    ny, nx = _gpts(gpts)
    n_conf = int(frozen_phonons)
    if n_conf < 1:
        raise InputError(f"frozen_phonons must be ≥ 1, got {frozen_phonons!r}")
    pos = atoms.positions.astype(np.float64)
    z0 = 0.0
    thick = lz if lz > 0 else float(pos[:, 2].max() - pos[:, 2].min()) + 1.0
    if slice_thickness_a is None:
        n_slices, dz = 1, thick
    else:
        dz0 = _finite_positive(slice_thickness_a, "slice_thickness_a", "Å")
        n_slices = max(1, int(math.ceil(thick / dz0 - 1e-9)))
        dz = thick / n_slices
    dev = resolve_device(device)
    syms = atoms.get_chemical_symbols()
    uniq = sorted(set(syms))
    eidx = torch.tensor([uniq.index(s) for s in syms], device=dev)
    rms = _rms_per_atom(atoms, phonon_rms_a)
    rng = np.random.default_rng(seed)
    confs = []
    for _ in range(n_conf):
        p = pos + rng.normal(size=pos.shape) * rms[:, None] if rms.any() else pos
        confs.append(p)
    confs = np.stack(confs)  # (C, N, 3)
    sidx = np.clip(np.floor((confs[0, :, 2] - z0) / dz).astype(np.int64), 0, n_slices - 1)  # slice by rest position
    ext = (ny * dx, nx * dx)
    cyx = np.diag(ext)
    h, k, q2 = reciprocal_grid_t(cyx, (ny, nx), device=dev)
    ff = form_factors_t(uniq, q2)
    frac = np.stack([confs[..., 1] / ext[0], confs[..., 0] / ext[1]], -1)
    out = []
    for c in range(n_conf):  # one configuration at a time keeps memory to S·H·W
        out.append(slice_potentials_t(torch.as_tensor(frac[c : c + 1]), eidx, torch.as_tensor(sidx), n_slices, ff, h, k, (ny, nx), ext[0] * ext[1])[0])
    info = {k_: v for k_, v in atoms.info.items() if isinstance(v, (int, float, str, tuple, bool, type(None)))}
    info.update(thickness_a=thick, n_slices=n_slices, frozen_phonons=n_conf, phonon_rms_a=phonon_rms_a if isinstance(phonon_rms_a, dict) else float(phonon_rms_a), phonon_seed=seed)
    return SlicedSpecimen(torch.stack(out), dx, dz, (0.0, 0.0), info)


def plane_wave_exit_wave(
    specimen,
    *,
    energy_kev: float,
    sampling_a: float,
    slice_thickness_a: float = 2.0,
    frozen_phonons: int = 1,
    phonon_rms_a: float | dict = 0.0,
    seed: int = 0,
    antialias: bool = True,
    device="auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Plane-wave multislice exit wave of a specimen, and its projected-potential phase σV.

    ``specimen``: ase.Atoms in a box (see ``specimens.supercell``) or potential slices (S, H, W)
    in V·Å sampled at ``sampling_a``. Returns (ψ_exit (C, H, W) complex64 for C frozen-phonon
    configurations (C = 1 without phonons), σV (H, W) float32 in rad, the mean over configurations
    of σ·ΣV). FlowTIE: exit wave for thicknesses 2–40 nm and σV of the same specimen.
    """
    import torch

    dev = resolve_device(device)
    dx = _finite_positive(sampling_a, "sampling_a", "Å")
    if _atoms_of(specimen) is not None:
        sl = slice_specimen(specimen, dx, slice_thickness_a=slice_thickness_a, frozen_phonons=frozen_phonons,
                            phonon_rms_a=phonon_rms_a, seed=seed, device=dev)
        slices, dz = sl.slices, sl.slice_thickness_a
    else:
        v = _potential_array(specimen)
        slices = torch.as_tensor(v.reshape((1,) * (4 - v.ndim) + v.shape) if v.ndim <= 4 else v, device=dev)
        dz = _finite_positive(slice_thickness_a, "slice_thickness_a", "Å")
    gpts = tuple(slices.shape[-2:])
    t = transmission_t(slices, energy_kev, dx, antialias)
    prop = propagator_t(gpts, dx, energy_kev, dz, dev, antialias)
    wave = torch.ones((slices.shape[0],) + gpts, dtype=torch.complex64, device=dev)
    ew = multislice_t(wave, t, prop)
    sv = sigma(energy_kev) * slices.sum(1).mean(0)
    return ew.cpu().numpy(), sv.cpu().numpy().astype(np.float32)


# --------------------------------------------------------------------------- 4D-STEM


def _window_corners(pos, dx, win):
    """Window pixel (0, 0) of each probe position (whole pixels) and the probe's offset from the
    window centre (Å, sub-pixel)."""
    corner = np.floor(pos / dx + 1e-9).astype(np.int64) - np.array(win) // 2
    return corner, pos - (corner + np.array(win) // 2) * dx


def _scan_exit_waves(t_all, psi_k, prop, pos, dx, win, batch_size):
    """Yield (configuration, b0, b1, exit waves (b, wy, wx)) for probe positions ``pos`` (P, 2) Å:
    the specimen window around each position is cut at whole pixels from the transmissions
    ``t_all`` (C, S, ny, nx), the probe is placed with a Fourier shift; multislice when ``prop``."""
    import torch

    dev = t_all.device
    ny, nx = t_all.shape[-2:]
    corner, frac_shift = _window_corners(pos, dx, win)
    ar_y = torch.arange(win[0], device=dev)
    ar_x = torch.arange(win[1], device=dev)
    centre = torch.as_tensor(np.array(win) // 2 * dx, device=dev, dtype=torch.float64)
    bs = max(1, int(batch_size))
    for c in range(t_all.shape[0]):
        for b0 in range(0, len(pos), bs):
            b1 = min(len(pos), b0 + bs)
            cy = torch.as_tensor(corner[b0:b1, 0], device=dev)
            cx = torch.as_tensor(corner[b0:b1, 1], device=dev)
            iy = (cy[:, None] + ar_y[None]).clamp(0, ny - 1)
            ix = (cx[:, None] + ar_x[None]).clamp(0, nx - 1)
            tw = t_all[c][:, iy[:, :, None], ix[:, None, :]].permute(1, 0, 2, 3)  # (b, S, wy, wx)
            shift = torch.as_tensor(frac_shift[b0:b1], device=dev) + centre
            wave = torch.fft.ifft2(psi_k * shift_phase_t(win, dx, shift, dev))
            ew = multislice_t(wave, tw, prop) if prop is not None else wave * tw.prod(dim=1)
            yield c, b0, b1, ew


@dataclass
class ExitWaves:
    """Exit waves of a probe at given positions: ``waves`` (C, P, wy, wx) complex64 for C
    frozen-phonon configurations; ``window_origin_a`` (P, 2): specimen (y, x) of each window's
    pixel (0, 0) — the probe of position p sits at window pixel (p − origin)/``sampling_a``;
    ``probe``: the incident probe centred at (wy//2, wx//2); ``sigma_v``: σ·ΣV (rad) of the whole
    specimen grid (mean over configurations), pixel (0, 0) at specimen (0, 0); ``metadata``."""

    waves: np.ndarray
    window_origin_a: np.ndarray
    sampling_a: float
    probe: np.ndarray
    sigma_v: np.ndarray
    metadata: dict


def exit_waves(
    specimen,
    positions_a,
    *,
    energy_kev: float,
    semiangle_mrad: float,
    sampling_a: float,
    window_gpts=64,
    defocus_a: float = 0.0,
    cs_mm: float = 0.0,
    astig_a: float = 0.0,
    astig_angle_deg: float = 0.0,
    mode: str = "multislice",
    slice_thickness_a: float = 2.0,
    frozen_phonons: int = 1,
    phonon_rms_a: float | dict = 0.0,
    seed: int = 0,
    batch_size: int = 64,
    device="auto",
) -> ExitWaves:
    """Exit waves ψ_out for a batch of probe positions (P, 2) in Å (y, x, specimen frame).

    ``specimen``: ase.Atoms in a box (sliced at ``sampling_a``) or potential slices (S, H, W) /
    (H, W) in V·Å sampled at ``sampling_a``. Each probe sees the ``window_gpts`` specimen window
    around it (which must lie inside the specimen). ``mode``: "multislice" or "phase_object"
    (ψ_out = ψ_in·exp(iσΣV), the POA of DESIGN §6)."""
    import torch

    if mode not in ("multislice", "phase_object"):
        raise InputError(f"mode must be 'multislice' or 'phase_object', got {mode!r}")
    dx = _finite_positive(sampling_a, "sampling_a", "Å")
    alpha = _finite_positive(semiangle_mrad, "semiangle_mrad", "mrad")
    win = _gpts(window_gpts, "window_gpts")
    if alpha * 1e-3 / wavelength_a(energy_kev) > ANTIALIAS * 0.5 / dx:
        raise InputError(f"the aperture ({alpha:g} mrad) reaches beyond the band limit of a {dx:g} Å grid "
                         f"({ANTIALIAS * 0.5 / dx * wavelength_a(energy_kev) * 1e3:.1f} mrad); use a finer sampling")
    pos = np.asarray(positions_a, dtype=np.float64)
    if pos.ndim == 1 and pos.size == 2:
        pos = pos[None]
    if pos.ndim != 2 or pos.shape[1] != 2 or len(pos) == 0:
        raise InputError(f"positions_a must be (P, 2) Å (y, x), got shape {pos.shape}")
    if not np.isfinite(pos).all():
        raise InputError("positions_a contain NaN/inf")
    dev = resolve_device(device)
    slices, dz, info = _specimen_slices(specimen, dx, mode, slice_thickness_a, frozen_phonons, phonon_rms_a, seed, dev)
    ny, nx = slices.shape[-2:]
    corner, _ = _window_corners(pos, dx, win)
    if corner.min() < 0 or (corner[:, 0] + win[0]).max() > ny or (corner[:, 1] + win[1]).max() > nx:
        raise InputError(
            f"a {win[0]}x{win[1]} px window around every position must lie inside the specimen "
            f"({ny * dx:.1f} x {nx * dx:.1f} Å); move the positions inward or enlarge the specimen"
        )
    psi_k = probe_fourier_t(win, dx, energy_kev, alpha, _finite(defocus_a, "defocus_a"), _finite(cs_mm, "cs_mm"),
                            _finite(astig_a, "astig_a"), _finite(astig_angle_deg, "astig_angle_deg"), dev)
    t_all = transmission_t(slices, energy_kev, dx, antialias=True)
    prop = propagator_t(win, dx, energy_kev, dz, dev) if mode == "multislice" else None
    out = torch.empty((t_all.shape[0], len(pos)) + win, dtype=torch.complex64, device=dev)
    for c, b0, b1, ew in _scan_exit_waves(t_all, psi_k, prop, pos, dx, win, batch_size):
        out[c, b0:b1] = ew
    centre = torch.as_tensor(np.array(win) // 2 * dx, device=dev, dtype=torch.float64)
    probe_real = torch.fft.ifft2(psi_k * shift_phase_t(win, dx, centre, dev))
    sv = sigma(energy_kev) * slices.sum(1).mean(0)
    md = dict(simulator="napari_phase.physics.multislice", mode=mode, energy_kev=float(energy_kev), semiangle_mrad=alpha,
              defocus_a=float(defocus_a), cs_mm=float(cs_mm), sampling_a=dx, window_gpts=list(win),
              slice_thickness_a=float(dz) if mode == "multislice" else None, seed=int(seed), device=str(dev), specimen=info)
    return ExitWaves(out.cpu().numpy(), (corner * dx).astype(np.float64), dx, probe_real.cpu().numpy().astype(np.complex64),
                     sv.cpu().numpy().astype(np.float32), md)


def _specimen_slices(specimen, dx, mode, slice_thickness_a, frozen_phonons, phonon_rms_a, seed, dev):
    """(slices (C, S, ny, nx) torch V·Å, slice thickness Å, info) of an ase.Atoms specimen sliced at
    ``dx`` or of potential slices given at that sampling; one slice in phase-object mode."""
    import torch

    if _atoms_of(specimen) is not None:
        sl = slice_specimen(specimen, dx, slice_thickness_a=None if mode == "phase_object" else slice_thickness_a,
                            frozen_phonons=frozen_phonons, phonon_rms_a=phonon_rms_a, seed=seed, device=dev)
        return sl.slices, sl.slice_thickness_a, sl.info
    v = _potential_array(specimen)
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3:
        raise InputError(f"potential slices must be (S, H, W) or (H, W), got shape {v.shape}")
    if int(frozen_phonons) != 1 or (not isinstance(phonon_rms_a, dict) and float(phonon_rms_a) != 0.0):
        raise InputError("frozen phonons need an atomic specimen (ase.Atoms), not a potential array")
    slices = torch.as_tensor(v, device=dev)[None]
    if mode == "phase_object":
        slices = slices.sum(1, keepdim=True)
    dz = _finite_positive(slice_thickness_a, "slice_thickness_a", "Å")
    return slices, dz, {"potential_shape": list(v.shape)}


@dataclass
class STEMSimulation:
    """A simulated 4D-STEM dataset with its ground truth.

    ``data``: (scan_y, scan_x, ky, kx) float32 (counts when a dose was given, else intensities
    that sum to ≤ 1 per pattern), optical axis at (ky//2, kx//2). ``phase``: σ·V_projected (rad)
    on a grid of ``phase_pixel_size_a`` whose pixel (0, 0) is the first scan position.
    ``probe``: the real-space probe on the simulation window (centred), Σ|ψ|² = 1.
    ``metadata``: every parameter, the seed, the actual detector sampling and the specimen info.
    """

    data: np.ndarray
    phase: np.ndarray
    phase_pixel_size_a: float
    probe: np.ndarray
    metadata: dict


def _window_geometry(energy_kev, detector_mrad_per_px, detector_gpts, window_gpts):
    lam = wavelength_a(energy_kev)
    mrad_px = _finite_positive(detector_mrad_per_px, "detector_mrad_per_px", "mrad/px")
    det = _gpts(detector_gpts, "detector_gpts")
    if window_gpts is None:
        n = int(math.ceil(1.5 * max(det) / 2)) * 2  # 2/3 anti-aliasing then still covers the detector
        window_gpts = (n, n)
    win = _gpts(window_gpts, "window_gpts")
    if win[0] < det[0] or win[1] < det[1]:
        raise InputError(f"window_gpts {win} must be at least the detector's {det}")
    extent_a = lam / (mrad_px * 1e-3)  # window size whose spectrum pixel is one detector pixel
    return lam, det, win, extent_a


def simulate_4dstem(
    specimen,
    *,
    scan_step_a: float,
    scan_gpts,
    energy_kev: float,
    semiangle_mrad: float,
    detector_mrad_per_px: float,
    detector_gpts=64,
    defocus_a: float = 0.0,
    cs_mm: float = 0.0,
    astig_a: float = 0.0,
    astig_angle_deg: float = 0.0,
    dose_e_per_a2: float | None = None,
    mode: str = "multislice",
    slice_thickness_a: float = 2.0,
    frozen_phonons: int = 1,
    phonon_rms_a: float | dict = 0.0,
    scan_origin_a=None,
    window_gpts=None,
    potential_sampling_a: float | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device="auto",
) -> STEMSimulation:
    """Simulate a 4D-STEM dataset (scan_y, scan_x, ky, kx) float32 and its phase object σV.

    ``specimen``: ase.Atoms in a box cell (``specimens.supercell``), or projected-potential slices
    (S, H, W) / (H, W) in V·Å at ``potential_sampling_a``. The simulation window is
    λ/(detector mrad/px) Å wide (``window_gpts`` pixels, default 1.5× the detector) so that one
    spectrum pixel is one detector pixel; patterns are cropped to ``detector_gpts`` around the
    optical axis. ``scan_origin_a`` (y, x) of the first probe position (default: the scan centred
    on the specimen); it is snapped to the potential grid so ``phase[0, 0]`` is the first position.
    ``mode``: "multislice" (slices of ``slice_thickness_a``) or "phase_object".
    ``frozen_phonons`` configurations (rms ``phonon_rms_a``, Å per axis) are averaged.
    ``dose_e_per_a2``: Poisson counts with D·step² electrons per position (None: noise-free).
    """
    import torch

    step = _finite_positive(scan_step_a, "scan_step_a", "Å")
    sy, sx = (int(v) for v in (np.broadcast_to(np.asarray(scan_gpts), (2,))))
    if sy < 1 or sx < 1:
        raise InputError(f"scan_gpts must be positive, got {scan_gpts!r}")
    alpha = _finite_positive(semiangle_mrad, "semiangle_mrad", "mrad")
    if mode not in ("multislice", "phase_object"):
        raise InputError(f"mode must be 'multislice' or 'phase_object', got {mode!r}")
    if dose_e_per_a2 is not None:
        dose = _finite(dose_e_per_a2, "dose_e_per_a2")
        if dose <= 0:
            raise InputError(f"dose_e_per_a2 must be positive (or None for no noise), got {dose_e_per_a2!r}")
    lam, det, win, extent_a = _window_geometry(energy_kev, detector_mrad_per_px, detector_gpts, window_gpts)
    det_edge_mrad = min(det) // 2 * float(detector_mrad_per_px)
    if alpha >= det_edge_mrad:
        raise InputError(
            f"the bright-field disc ({alpha:g} mrad) does not fit on the detector (edge at {det_edge_mrad:g} mrad); "
            "use more detector pixels or a larger mrad/px"
        )
    dev = resolve_device(device)
    if _atoms_of(specimen) is not None:
        if win[0] != win[1]:
            raise InputError("window_gpts must be square for an atomic specimen")
        dx = extent_a / win[0]
    else:
        _potential_array(specimen)
        if potential_sampling_a is None:
            raise InputError("potential_sampling_a (Å/px) is needed with a potential array")
        dx = _finite_positive(potential_sampling_a, "potential_sampling_a", "Å")
        n_exact = extent_a / dx
        if abs(n_exact - round(n_exact)) > 0.005 * n_exact or round(n_exact) < max(det):
            raise InputError(
                f"a potential sampled at {dx:g} Å/px gives a window of {n_exact:.2f} px for {detector_mrad_per_px:g} mrad/px; "
                f"choose potential_sampling_a = {extent_a:.5g}/n Å with an integer n ≥ {max(det)}"
            )
        win = (int(round(n_exact)),) * 2
    slices, dz, spec_info = _specimen_slices(specimen, dx, mode, slice_thickness_a, frozen_phonons, phonon_rms_a, seed, dev)
    ny, nx = slices.shape[-2:]
    actual_mrad_px = lam / (win[0] * dx) * 1e3
    # scan geometry (Å, specimen frame; pixel i is at i·dx)
    span = ((sy - 1) * step, (sx - 1) * step)
    if scan_origin_a is None:
        origin = ((ny * dx - span[0]) / 2, (nx * dx - span[1]) / 2)
    else:
        origin = tuple(float(o) for o in np.broadcast_to(np.asarray(scan_origin_a, dtype=np.float64), (2,)))
    origin = (round(origin[0] / dx) * dx, round(origin[1] / dx) * dx)
    half = (win[0] // 2 * dx, win[1] // 2 * dx)
    if (origin[0] - half[0] < -1e-6 or origin[1] - half[1] < -1e-6 or origin[0] + span[0] + half[0] > ny * dx + 1e-6
            or origin[1] + span[1] + half[1] > nx * dx + 1e-6):
        raise InputError(
            f"the specimen ({ny * dx:.1f} x {nx * dx:.1f} Å) is too small for a {span[0]:.1f} x {span[1]:.1f} Å scan "
            f"plus the {win[0] * dx:.1f} Å probe window; enlarge it or shrink the scan"
        )
    # probe and transmissions
    psi_k = probe_fourier_t(win, dx, energy_kev, alpha, _finite(defocus_a, "defocus_a"), _finite(cs_mm, "cs_mm"),
                            _finite(astig_a, "astig_a"), _finite(astig_angle_deg, "astig_angle_deg"), dev)
    t_all = transmission_t(slices, energy_kev, dx, antialias=True)  # (C, S, ny, nx)
    prop = propagator_t(win, dx, energy_kev, dz, dev) if mode == "multislice" else None
    py, px = np.meshgrid(origin[0] + np.arange(sy) * step, origin[1] + np.arange(sx) * step, indexing="ij")
    pos = np.stack([py.ravel(), px.ravel()], -1)  # (P, 2) Å
    centre = torch.as_tensor(np.array(win) // 2 * dx, device=dev, dtype=torch.float64)
    out = torch.zeros((len(pos),) + det, dtype=torch.float32, device=dev)
    n_conf = t_all.shape[0]
    for _, b0, b1, ew in _scan_exit_waves(t_all, psi_k, prop, pos, dx, win, batch_size):
        out[b0:b1] += patterns_t(ew, det)
    out /= n_conf
    data = out.reshape(sy, sx, *det).cpu().numpy().astype(np.float32)
    if dose_e_per_a2 is not None:
        rng = np.random.default_rng(seed + 1)
        data = rng.poisson(data.astype(np.float64) * float(dose_e_per_a2) * step * step).astype(np.float32)
    # ground truth: σ·ΣV averaged over configurations, from the first scan position
    sv = (sigma(energy_kev) * slices.sum(1).mean(0)).cpu().numpy()
    oy, ox = int(round(origin[0] / dx)), int(round(origin[1] / dx))
    hy, hx = int(math.floor(span[0] / dx + 1e-6)) + 1, int(math.floor(span[1] / dx + 1e-6)) + 1
    phase = sv[oy : oy + hy, ox : ox + hx].astype(np.float32)
    probe_real = torch.fft.ifft2(psi_k * shift_phase_t(win, dx, centre, dev)).cpu().numpy().astype(np.complex64)
    metadata = dict(
        simulator="napari_phase.physics.multislice",
        potential="Kirkland (2010) Appendix C",
        mode=mode,
        energy_kev=float(energy_kev),
        semiangle_mrad=alpha,
        defocus_a=float(defocus_a),
        cs_mm=float(cs_mm),
        astig_a=float(astig_a),
        astig_angle_deg=float(astig_angle_deg),
        scan_step_a=step,
        scan_gpts=[sy, sx],
        scan_origin_a=[float(origin[0]), float(origin[1])],
        detector_gpts=list(det),
        detector_mrad_per_px=float(actual_mrad_px),
        detector_inv_a_per_px=float(1.0 / (win[0] * dx)),
        center_px=[det[0] // 2, det[1] // 2],
        window_gpts=list(win),
        sampling_a=float(dx),
        slice_thickness_a=float(dz) if mode == "multislice" else None,
        frozen_phonons=int(n_conf),
        phonon_rms_a=phonon_rms_a if isinstance(phonon_rms_a, dict) else float(phonon_rms_a),
        dose_e_per_a2=None if dose_e_per_a2 is None else float(dose_e_per_a2),
        seed=int(seed),
        device=str(dev),
        specimen=spec_info,
        phase_pixel_size_a=float(dx),
        phase_origin="first scan position",
    )
    return STEMSimulation(data, phase, float(dx), probe_real, metadata)


# --------------------------------------------------------------------------- training fast paths (torch in/out)


def exit_waves_t(
    transmissions,
    probe_k,
    shifts_a,
    sampling_a: float,
    *,
    propagator=None,
    repeats: int = 1,
):
    """Exit waves of probes at positions ``shifts_a`` (B, P, 2) Å (y, x; relative to pixel (0, 0),
    periodic) through specimens (B, S, H, W) complex transmissions: returns (B, P, H, W) complex64.

    ``probe_k``: (H, W) or (B, H, W) probe spectrum (:func:`probe_fourier_t`). With a
    ``propagator`` (:func:`propagator_t`) every slice is followed by a propagation (multislice,
    the slice stack ``repeats`` times); without, the slices' transmissions are multiplied (phase
    object: pass S = 1). All torch, for on-the-fly training data."""
    import torch

    B, S, H, W = transmissions.shape
    pk = probe_k if probe_k.dim() == 3 else probe_k[None]
    ramps = shift_phase_t((H, W), sampling_a, shifts_a, transmissions.device)  # (B, P, H, W)
    waves = torch.fft.ifft2(pk[:, None] * ramps)
    t = transmissions[:, None]  # (B, 1, S, H, W)
    if propagator is None:
        return waves * t.prod(dim=2)
    return multislice_t(waves, t, propagator, repeats)


def bank_exit_waves(
    bank,
    entry: int,
    batch: int,
    gpts,
    sampling_a: float,
    *,
    energy_kev: float,
    thickness_a: float,
    seed: int = 0,
    rotate: bool = True,
):
    """Plane-wave multislice exit waves of one bank crystal at ``thickness_a`` (rounded to whole
    cells) for ``batch`` random in-plane rotations/origins, fast (the cell's slices repeated).

    Returns torch (exit waves (B, H, W) complex64, σV (B, H, W) float32 rad, thickness_a used)."""
    import torch

    slices, dz = bank.sample_slices(entry, batch, gpts, sampling_a, rotate=rotate, seed=seed)
    ent = bank.entries[int(entry)]
    n = 1 if ent.layer_2d else max(1, int(round(_finite_positive(thickness_a, "thickness_a", "Å") / ent.period_z_a)))
    t = transmission_t(slices, energy_kev, sampling_a)
    prop = propagator_t(tuple(int(g) for g in slices.shape[-2:]), sampling_a, energy_kev, dz, slices.device)
    wave = torch.ones((batch,) + tuple(slices.shape[-2:]), dtype=torch.complex64, device=slices.device)
    ew = multislice_t(wave, t, prop, repeats=n)
    return ew, sigma(energy_kev) * slices.sum(1) * n, n * ent.period_z_a


__all__: Sequence[str] = (
    "ExitWaves",
    "STEMSimulation",
    "SlicedSpecimen",
    "antialias_mask_t",
    "bank_exit_waves",
    "exit_waves",
    "exit_waves_t",
    "fresnel_propagate",
    "multislice_t",
    "patterns_t",
    "plane_wave_exit_wave",
    "probe",
    "probe_fourier_t",
    "propagator_t",
    "shift_phase_t",
    "sigma",
    "simulate_4dstem",
    "slice_specimen",
    "transmission",
    "transmission_t",
    "wavelength_a",
)
