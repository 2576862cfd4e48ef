"""Training batches made on the fly in torch (no dataset on disk).

One sample = the 3x3 kernel of diffraction patterns around a probe position, the probe, and the
true exit wave of the centre position, all on the dimensionless 64² window of preprocess.py
(BF disc radius 16 px, real-space pixel dx = λ·16/(64α)). Per sample we draw

- the instrument: energy 60–300 kV, semi-angle 10–30 mrad (→ dx and σ), defocus phase at the
  aperture edge χ_edge, scan step in window px (log-uniform) and dose (log-uniform e/Å², or no
  noise);
- the specimen: a rotated, shifted crop of a periodic projected potential V (V·Å) from a
  :class:`SpecimenSource` (structures, zone axes and thicknesses of physics.specimens), sampled at
  dx; the phase object t = exp(iσV) (3 % of samples: vacuum, t = 1);
- the nine probe positions r_n = offset_n · step around the window centre; exit waves
  ψn = ψin(r − r_n)·t(r); patterns I_n = |FFT ψn|² (k = 0 at the centre), scaled to the counts
  per position (dose · step²) and Poisson-sampled; a small random detector-centre error.

Labels: ψ = ψin·t of the centre position, φobj = σV, the probe mask (|ψin|² ≥ 0.1 max).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np
import torch

from ...physics.optics import electron_wavelength_a, interaction_constant
from .preprocess import (
    BF_RADIUS_PX,
    KERNEL_OFFSETS,
    NEIGHBOUR_SIGMA_PX,
    WINDOW_PX,
    probe_channels,
    standardise,
)

N = WINDOW_PX


@dataclasses.dataclass
class Ranges:
    """Parameter ranges of the training data (they land in the model card)."""

    energy_kev: tuple[float, float] = (60.0, 300.0)
    semiangle_mrad: tuple[float, float] = (10.0, 30.0)
    step_px: tuple[float, float] = (0.4, 3.0)  # scan step in window px, log-uniform
    chi_edge_rad: tuple[float, float] = (-3.0, 3.0)  # defocus phase at the aperture edge
    dose_e_per_a2: tuple[float, float] = (1e2, 1e7)  # log-uniform
    noise_free_fraction: float = 0.15
    vacuum_fraction: float = 0.03
    center_jitter_px: float = 0.25  # detector-centre error, window px
    weak_object_fraction: float = 0.1  # samples with the potential scaled by U(0.05, 0.5)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fixed(self, *, energy_kev: float, semiangle_mrad: float, step_px: float | None = None) -> "Ranges":
        """The same ranges restricted to one instrument configuration (fine-tuning)."""
        r = dataclasses.replace(self, energy_kev=(energy_kev, energy_kev), semiangle_mrad=(semiangle_mrad, semiangle_mrad))
        if step_px is not None:
            r.step_px = (0.85 * step_px, 1.15 * step_px)
        return r


# ----------------------------------------------------------------------------- specimen source


class SpecimenSource:
    """Projected potentials V (V·Å) of one split of physics.specimens, served at any pixel size.

    Wraps :class:`napari_phase.physics.specimens.PotentialBank` (Kirkland potentials of ASE
    crystals along several zone axes, random in-plane rotation, origin, ±3 % lattice rescale,
    thickness ``thickness_a`` in whole cells). One bank per sampling level in ``samplings_a``
    (factor ≈ 1.43 apart, each band-limited to its own Nyquist and caching its maps); the samples of
    a batch are drawn per level in one call and zoomed (bilinear) from the level to their exact
    pixel dx (level ≤ dx < next level), so coarse windows do not alias.
    """

    def __init__(self, split: str = "train", samplings_a: Sequence[float] = (0.16, 0.23, 0.33, 0.47, 0.67),
                 thickness_a: tuple[float, float] = (3.0, 30.0), names: Sequence[str] | None = None):
        from ...physics import specimens

        self.split = split
        self.thickness_a = tuple(thickness_a)
        self.banks = [specimens.PotentialBank(list(names) if names else split, sampling_a=s) for s in sorted(samplings_a)]
        self.names = list(self.banks[0].names)
        self.entries = [(e.structure, e.zone_axis) for e in self.banks[0].entries]

    def __len__(self) -> int:
        return len(self.entries)

    def _level(self, dx_a: float) -> int:
        level = 0
        for i, b in enumerate(self.banks):
            if b.sampling_a <= dx_a * 1.0001:
                level = i
        return level

    def sample_batch(self, dx_a: Sequence[float], size: int, seed: int, entries: Sequence[int] | None = None) -> torch.Tensor:
        """(B, size, size) crops, sample b at pixel ``dx_a[b]`` (Å), V·Å."""
        import torch.nn.functional as F

        dx = np.asarray(dx_a, dtype=np.float64)
        out = torch.zeros((len(dx), size, size), dtype=torch.float32)
        levels = np.array([self._level(d) for d in dx])
        for lv in np.unique(levels):
            idx = np.flatnonzero(levels == lv)
            bank = self.banks[lv]
            s = bank.sampling_a
            g = int(math.ceil(size * dx[idx].max() / s)) + 4
            ent = None if entries is None else [int(entries[i]) % len(self) for i in idx]
            maps = []
            if ent is None:
                v, _ = bank.sample_projected(len(idx), (g, g), s, thickness_a=self.thickness_a, seed=seed + 7919 * int(lv))
                maps = v
            else:
                maps = torch.cat([bank.sample_projected(1, (g, g), s, thickness_a=self.thickness_a, seed=seed + j,
                                                        entries=[e])[0] for j, e in enumerate(ent)])
            i = torch.arange(size, dtype=torch.float64) - size / 2
            zoom = torch.as_tensor(dx[idx] / s)[:, None]  # map px per window px
            coord = g / 2 + i[None] * zoom  # (n, size) map px
            norm = ((coord + 0.5) / g * 2 - 1).float()
            gy = norm[:, :, None].expand(-1, -1, size)
            gx = norm[:, None, :].expand(-1, size, -1)
            grid = torch.stack([gx, gy], -1)
            out[idx] = F.grid_sample(maps[:, None].float(), grid, mode="bilinear", align_corners=False)[:, 0]
        return out

    def sample(self, dx_a: float, size: int, seed: int, entry: int | None = None) -> torch.Tensor:
        """One (size, size) projected-potential crop at pixel ``dx_a`` (Å), V·Å."""
        return self.sample_batch([dx_a], size, seed, None if entry is None else [entry])[0]


class SmoothRandomSource:
    """Smooth random periodic 'potentials' (Gaussian-filtered noise, 0..peak V·Å): for tests and
    shake-out runs only, never for a shipped model (no atoms, no physics)."""

    def __init__(self, n_maps: int = 4, size: int = 256, pixel_a: float = 0.1, seed: int = 0,
                 peak_v_a: float = 300.0, corr_a: float = 0.8):
        rng = np.random.default_rng(seed)
        q = np.fft.fftfreq(size, d=pixel_a)
        q2 = q[:, None] ** 2 + q[None, :] ** 2
        self.maps = []
        for _ in range(n_maps):
            f = np.fft.fft2(rng.standard_normal((size, size))) * np.exp(-q2 * corr_a**2 * 2 * math.pi**2)
            m = np.fft.ifft2(f).real
            self.maps.append(torch.as_tensor((m - m.min()) / (np.ptp(m) + 1e-12) * peak_v_a, dtype=torch.float32))
        self.pixel_a = pixel_a
        self.names = [f"smooth{i}" for i in range(n_maps)]

    def __len__(self) -> int:
        return len(self.maps)

    def sample(self, dx_a: float, size: int, seed: int, entry: int | None = None) -> torch.Tensor:
        g = np.random.default_rng(seed)
        vmap = self.maps[int(entry) if entry is not None else int(g.integers(len(self.maps)))]
        h, w = vmap.shape
        i = torch.arange(size, dtype=torch.float64) - size / 2
        ii, jj = torch.meshgrid(i, i, indexing="ij")
        th = g.uniform(0, 2 * math.pi)
        c, s = math.cos(th), math.sin(th)
        y = (c * ii - s * jj) * dx_a / self.pixel_a + g.uniform(0, h)
        x = (s * ii + c * jj) * dx_a / self.pixel_a + g.uniform(0, w)
        y0, x0 = torch.floor(y), torch.floor(x)
        fy, fx = (y - y0).float(), (x - x0).float()
        y0, x0 = y0.long() % h, x0.long() % w
        y1, x1 = (y0 + 1) % h, (x0 + 1) % w
        return ((1 - fy) * (1 - fx) * vmap[y0, x0] + (1 - fy) * fx * vmap[y0, x1]
                + fy * (1 - fx) * vmap[y1, x0] + fy * fx * vmap[y1, x1])


def smooth_random_bank(n_maps: int = 4, seed: int = 0, **kw) -> SmoothRandomSource:
    return SmoothRandomSource(n_maps, seed=seed, **kw)


# ----------------------------------------------------------------------------- batch making


def _uniform(gen, n, lo, hi):
    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)


def _log_uniform(gen, n, lo, hi):
    return torch.exp(_uniform(gen, n, math.log(lo), math.log(hi)))


def probes_batch(chi_edge: torch.Tensor, shifts_px: torch.Tensor, jitter_px: torch.Tensor | None = None):
    """Probes ψin for B samples at K shifts each: (B, K, N, N) complex64, max|ψin| = 1 at no shift.

    ψ̂in(k) = A(k) exp(-i χ_edge (k/R)²) exp(-2πi k·(N/2 + shift)/N); ``jitter_px`` (B, 2) adds a
    detector-centre error as a real-space tilt exp(2πi δk·r/N) (applied by the caller).
    """
    k = torch.fft.fftfreq(N, dtype=torch.float64) * N
    ky, kx = k[:, None], k[None, :]
    kr = torch.sqrt(ky**2 + kx**2)
    aperture = torch.clamp(BF_RADIUS_PX + 0.5 - kr, 0.0, 1.0)
    q2 = (ky**2 + kx**2) / BF_RADIUS_PX**2
    spec = aperture * torch.exp(-1j * chi_edge.view(-1, 1, 1, 1) * q2)  # (B,1,N,N)
    sy = shifts_px[..., 0].unsqueeze(-1).unsqueeze(-1) + N / 2
    sx = shifts_px[..., 1].unsqueeze(-1).unsqueeze(-1) + N / 2
    ramp = torch.exp(-2j * math.pi * (ky * sy + kx * sx) / N)  # (B,K,N,N)
    psi = torch.fft.ifft2(spec * ramp)
    centre = torch.fft.ifft2(spec * torch.exp(-2j * math.pi * (ky + kx) * (N / 2) / N))
    peak = centre.abs().amax(dim=(-2, -1), keepdim=True)
    return (psi / peak).to(torch.complex64)


def diffraction(psi: torch.Tensor) -> torch.Tensor:
    """|FFT ψ|² with k = 0 at pixel (N/2, N/2) (window-centred real-space origin)."""
    f = torch.fft.fft2(torch.fft.ifftshift(psi, dim=(-2, -1)), norm="ortho")
    return torch.fft.fftshift(f.abs() ** 2, dim=(-2, -1))


def neighbour_weights_t(step_px: torch.Tensor) -> torch.Tensor:
    """preprocess.neighbour_weights for a batch of steps: (B, 9)."""
    d2 = torch.tensor([dy * dy + dx * dx for dy, dx in KERNEL_OFFSETS], dtype=torch.float64)
    return torch.exp(-d2[None] * step_px[:, None] ** 2 / (2 * NEIGHBOUR_SIGMA_PX**2)).float()


def detector_roundtrip(patterns: torch.Tensor, zoom: float) -> torch.Tensor:
    """Model a detector coarser than the window (``zoom`` = detector px per window px < 1): bin the
    window pattern onto the detector's pixels and interpolate back bilinearly, as reconstruction's
    resampling does. A finer detector (zoom ≥ 1) loses nothing worth modelling: returned as is."""
    import torch.nn.functional as F

    if zoom >= 1.0:
        return patterns
    shape = patterns.shape
    m = max(4, int(round(N * zoom)))
    x = patterns.reshape(-1, 1, N, N)
    coarse = F.interpolate(x, size=(m, m), mode="area")
    back = F.interpolate(coarse, size=(N, N), mode="bilinear", align_corners=False)
    return back.reshape(shape)


def make_batch(bank, n: int, gen: torch.Generator, ranges: Ranges,
               device="cpu", indices: Sequence[int] | None = None, detector_zoom: float | None = None) -> dict:
    """One training batch of ``n`` samples (see the module doc), tensors on ``device``.
    ``detector_zoom``: model a detector of that sampling (see :func:`detector_roundtrip`)."""
    r = ranges
    energy = _uniform(gen, n, *r.energy_kev)
    alpha = _uniform(gen, n, *r.semiangle_mrad)
    step = _log_uniform(gen, n, *r.step_px) if r.step_px[0] != r.step_px[1] else torch.full((n,), r.step_px[0], dtype=torch.float64)
    chi_edge = _uniform(gen, n, *r.chi_edge_rad)
    dose = _log_uniform(gen, n, *r.dose_e_per_a2)
    noise_free = torch.rand(n, generator=gen) < r.noise_free_fraction
    vacuum = torch.rand(n, generator=gen) < r.vacuum_fraction
    weak = torch.rand(n, generator=gen) < r.weak_object_fraction
    weak_scale = _uniform(gen, n, 0.05, 0.5)
    seeds = torch.randint(2**31 - 1, (n,), generator=gen)
    jitter = (torch.rand(n, 2, generator=gen, dtype=torch.float64) * 2 - 1) * r.center_jitter_px

    dxs = [electron_wavelength_a(float(e)) * BF_RADIUS_PX / (N * float(a) * 1e-3) for e, a in zip(energy, alpha)]
    if hasattr(bank, "sample_batch"):
        v_all = bank.sample_batch(dxs, N, int(seeds[0]), indices)
    else:
        v_all = torch.stack([bank.sample(dxs[b], N, int(seeds[b]), None if indices is None else int(indices[b]) % len(bank))
                             for b in range(n)])
    sig = torch.tensor([interaction_constant(float(e)) for e in energy], dtype=torch.float32)
    scale = torch.where(weak, weak_scale, torch.ones_like(weak_scale)).float() * (~vacuum).float()
    obj_phase = (v_all * (sig * scale)[:, None, None]).float()  # (B,N,N)
    t = torch.polar(torch.ones_like(obj_phase), obj_phase)

    offsets = torch.tensor(KERNEL_OFFSETS, dtype=torch.float64)  # (9,2)
    shifts = offsets[None] * step[:, None, None]  # (B,9,2) window px
    probes = probes_batch(chi_edge, shifts)  # (B,9,N,N)
    exit_waves = probes * t[:, None]
    # detector-centre error: a tilt of the wave shifts the pattern by `jitter` px
    i = torch.arange(N, dtype=torch.float64) - N / 2
    tilt = torch.exp(2j * math.pi * (jitter[:, 0, None, None] * i[:, None] + jitter[:, 1, None, None] * i[None, :]) / N)
    patterns = diffraction(exit_waves * tilt[:, None].to(torch.complex64))  # (B,9,N,N)
    counts = dose * (step * electron_wavelength_a_batch(energy) * BF_RADIUS_PX / (N * alpha * 1e-3)) ** 2
    total = patterns.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    scaled = patterns / total * counts.view(-1, 1, 1, 1).float()
    noisy = torch.poisson(scaled, generator=gen)
    patterns = torch.where(noise_free.view(-1, 1, 1, 1), scaled, noisy)
    if detector_zoom is not None:
        patterns = detector_roundtrip(patterns, float(detector_zoom))

    x = standardise(patterns, neighbour_weights_t(step))
    centre_probe = probes[:, 4]
    x = torch.cat([x, probe_channels(centre_probe, n)], dim=1)
    p2 = centre_probe.abs() ** 2
    mask = p2 >= 0.1 * p2.amax(dim=(-2, -1), keepdim=True)
    batch = {
        "x": x, "psi": centre_probe * t, "probe": centre_probe, "obj_phase": obj_phase,
        "mask": mask, "vacuum": vacuum | (obj_phase.std(dim=(-2, -1)) < 1e-6),
        "step_px": step.float(), "energy_kev": energy.float(), "semiangle_mrad": alpha.float(),
        "dose": torch.where(noise_free, torch.full_like(dose, math.inf), dose).float(),
    }
    return {k: v.to(device) for k, v in batch.items()}


def electron_wavelength_a_batch(energy_kev: torch.Tensor) -> torch.Tensor:
    return torch.tensor([electron_wavelength_a(float(e)) for e in energy_kev], dtype=torch.float64)


def batch_maker(bank, batch_size: int, ranges: Ranges) -> Callable:
    """``make_batch(step, generator, device)`` for training.train_job."""
    def _make(step: int, gen: torch.Generator, device) -> dict:
        return make_batch(bank, batch_size, gen, ranges, device)
    return _make


# ----------------------------------------------------------------------------- whole scans (tests, evaluation)


@dataclasses.dataclass
class SimulatedScan:
    """A simulated 4D-STEM scan with its ground truth (phase-object approximation)."""

    data: np.ndarray  # (ny, nx, 64, 64) float32 counts (or intensities when dose is None)
    energy_kev: float
    semiangle_mrad: float
    scan_step_a: float
    detector_mrad_per_px: float
    phase_map: np.ndarray  # object phase σV (rad) on the fine grid
    map_pixel_a: float
    map_origin_a: float  # position (Å) of phase_map[0, 0] relative to the first scan position

    def truth_on_grid(self, shape: tuple[int, int], pixel_a: float) -> np.ndarray:
        """The true phase on a grid of ``pixel_a`` whose pixel (0, 0) is the first scan position."""
        from scipy.ndimage import map_coordinates

        jy = (np.arange(shape[0]) * pixel_a - self.map_origin_a) / self.map_pixel_a
        jx = (np.arange(shape[1]) * pixel_a - self.map_origin_a) / self.map_pixel_a
        yy, xx = np.meshgrid(jy, jx, indexing="ij")
        return map_coordinates(self.phase_map.astype(np.float64), [yy, xx], order=3, mode="nearest").astype(np.float32)


def simulate_scan(
    potential_source,
    *,
    scan_shape: tuple[int, int] = (24, 24),
    energy_kev: float = 300.0,
    semiangle_mrad: float = 20.0,
    scan_step_a: float = 0.2,
    dose_e_per_a2: float | None = None,
    defocus_chi_edge_rad: float = 0.0,
    seed: int = 0,
    phase_scale: float = 1.0,
    entry: int | None = None,
    batch: int = 256,
) -> SimulatedScan:
    """A 4D-STEM scan of a potential crop under the phase-object approximation, recorded on a
    64 px detector with the BF disc radius at 16 px (``detector_mrad_per_px`` = α/16).

    ``potential_source``: a :class:`SpecimenSource` or :class:`SmoothRandomSource` (``sample``),
    or a 2-D array of phase (rad) at the window pixel. The same forward model as training:
    ψ = ψin(r − r_p)·exp(iσV), I = |FFT ψ|², Poisson counts at ``dose_e_per_a2`` (None: no noise).
    """
    ny, nx = scan_shape
    dx = electron_wavelength_a(energy_kev) * BF_RADIUS_PX / (N * semiangle_mrad * 1e-3)
    margin = N // 2 + 4
    size = int(math.ceil(max(ny, nx) * scan_step_a / dx)) + 2 * margin
    if isinstance(potential_source, np.ndarray):
        phase_map = torch.as_tensor(potential_source, dtype=torch.float32)
        if min(phase_map.shape) < size:
            raise ValueError(f"phase map {tuple(phase_map.shape)} smaller than the {size}² px the scan needs")
    else:
        v = potential_source.sample(dx, size, seed, entry)
        phase_map = interaction_constant(energy_kev) * v * phase_scale
    t = torch.polar(torch.ones_like(phase_map), phase_map.float())
    gen = torch.Generator().manual_seed(seed)
    out = np.zeros((ny, nx, N, N), np.float32)
    positions = [(i, j) for i in range(ny) for j in range(nx)]
    chi = torch.tensor([float(defocus_chi_edge_rad)], dtype=torch.float64)
    for b0 in range(0, len(positions), batch):
        chunk = positions[b0:b0 + batch]
        p = torch.tensor(chunk, dtype=torch.float64) * scan_step_a / dx + (margin - N // 2)  # window corner, map px
        corner = torch.floor(p).long()
        frac = p - corner
        probes = probes_batch(chi, frac[None])[0]  # (B,N,N)
        crops = torch.stack([t[cy:cy + N, cx:cx + N] for cy, cx in corner.tolist()])
        pats = diffraction(probes * crops)
        if dose_e_per_a2 is not None:
            counts = float(dose_e_per_a2) * scan_step_a**2
            pats = pats / pats.sum(dim=(-2, -1), keepdim=True) * counts
            pats = torch.poisson(pats, generator=gen)
        for (i, j), pat in zip(chunk, pats):
            out[i, j] = pat.numpy()
    return SimulatedScan(out, energy_kev, semiangle_mrad, scan_step_a, semiangle_mrad / BF_RADIUS_PX,
                         phase_map.numpy(), dx, -(margin) * dx)
