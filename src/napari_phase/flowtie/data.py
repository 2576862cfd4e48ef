"""Training data for FlowTIE: a bank of multislice exit waves, triplets made on the fly in torch.

Bank (:class:`ExitWaveBank`, built once at the start of training, in memory, seeded): for each
(structure, zone axis) of a split of :mod:`napari_phase.physics.specimens` and ``runs`` random
draws of voltage (80, 120, 200, 300 kV) and in-plane rotation, the plane-wave multislice
(:mod:`napari_phase.physics.multislice`) through up to 40 nm, keeping the exit wave at
``n_thick`` log-spaced thicknesses in 2–40 nm (whole cells; 2-D layers keep their one), with σV
(σ × the projected potential of the same slices). The simulation window is N×N pixels of
p_sim = λ/0.21 (Nyquist at 105 mrad, the 2/3 anti-aliasing limit at 70 mrad), periodic: the
rotated crystal meets itself at the window edge (a boundary the exit wave and σV share).

Per sample (:meth:`ExitWaveBank.batch`): aperture α ∈ 10–30 mrad, dz log-uniform in 0.5–10 nm,
dose log-uniform in 5e2–1e6 e/Å² (a fraction noise-free); the exit-wave spectrum goes through the
aperture and exp(−iπλ(±dz)q²); the three intensities are Fourier-cropped (exactly: they are
band-limited to 2 q_ap) onto the network grid of N_net = round(4·W·α/λ) pixels (p_net = 1/(4 q_ap),
α then taken as N_net·λ/(4W)); σV is band-limited to q_ap and cropped alike; a random patch,
random flips/transposes; Poisson noise; mean(I0) = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..physics import multislice as ms
from ..physics.specimens import PotentialBank, structures
from .network import Q_AP_NET
from .solve import tie_phase_net

VOLTAGES_KEV = (80.0, 120.0, 200.0, 300.0)
THICKNESS_NM = (2.0, 40.0)
APERTURE_MRAD = (10.0, 30.0)
DZ_NM = (0.5, 10.0)
DOSE_E_PER_A2 = (5e2, 1e6)
NOISE_FREE_FRACTION = 0.2
#: p_sim = λ / SIM_ANGLE: the window's Nyquist angle is SIM_ANGLE/2 rad
SIM_ANGLE = 0.21


@dataclass
class Wave:
    """One bank item: the exit-wave spectrum and σV (rad) on an N×N window of ``p_sim_a``."""

    spectrum: torch.Tensor  # (N, N) complex64, FFT of the exit wave
    sigma_v: torch.Tensor  # (N, N) float32 rad
    energy_kev: float
    p_sim_a: float
    thickness_a: float
    structure: str
    zone_axis: tuple


def sim_pixel_a(energy_kev: float) -> float:
    """Simulation pixel (Å) for a voltage: λ/0.21."""
    return ms.wavelength_a(energy_kev) / SIM_ANGLE


class ExitWaveBank:
    """Multislice exit waves of one split's crystals (see module doc); ``build()`` is a generator
    yielding (done, total) so a job can report progress."""

    def __init__(self, split: str = "train", *, gpts: int = 256, runs: int = 2, n_thick: int = 6,
                 thickness_nm=THICKNESS_NM, voltages_kev=VOLTAGES_KEV, names=None, seed: int = 0, device="cpu",
                 fixed_thickness_nm=None, zone_axes=None):
        self.split = split
        self.names = list(names) if names is not None else structures(split)
        self.gpts = int(gpts)
        self.runs = int(runs)
        self.n_thick = int(n_thick)
        self.thickness_nm = tuple(float(t) for t in thickness_nm)
        self.voltages_kev = tuple(float(v) for v in voltages_kev)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.fixed_thickness_nm = None if fixed_thickness_nm is None else tuple(float(t) for t in fixed_thickness_nm)
        self.zone_axes = zone_axes
        self.waves: list[Wave] = []
        self.build_s = 0.0

    def describe(self) -> dict:
        return {"split": self.split, "structures": self.names, "gpts": self.gpts, "runs_per_zone_axis": self.runs,
                "thicknesses_per_run": self.n_thick, "thickness_nm": self.thickness_nm, "voltages_kev": self.voltages_kev,
                "sim_pixel": "λ/0.21 (Nyquist 105 mrad, anti-aliased at 70 mrad)", "waves": len(self.waves), "seed": self.seed,
                "build_s": round(self.build_s, 1)}

    def build(self):
        import time

        t0 = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        pbank = PotentialBank(self.names, sampling_a=sim_pixel_a(max(self.voltages_kev)) * 0.999, device=self.device,
                              zone_axes=self.zone_axes)
        total = len(pbank.entries) * self.runs
        done = 0
        for e, entry in enumerate(pbank.entries):
            for _ in range(self.runs):
                kev = float(rng.choice(self.voltages_kev))
                p = sim_pixel_a(kev)
                slices, dz = pbank.sample_slices(e, 1, (self.gpts, self.gpts), p, rotate=True, seed=int(rng.integers(2**31)))
                sv_period = ms.sigma(kev) * slices.sum(1)[0]
                trans = ms.transmission_t(slices, kev, p)
                prop = ms.propagator_t((self.gpts, self.gpts), p, kev, dz, slices.device)
                if entry.layer_2d:
                    periods = [1]
                elif self.fixed_thickness_nm is not None:
                    periods = sorted({max(1, int(round(t * 10 / entry.period_z_a))) for t in self.fixed_thickness_nm})
                else:
                    lo, hi = (t * 10 / entry.period_z_a for t in self.thickness_nm)
                    want = np.exp(np.sort(rng.uniform(math.log(lo), math.log(hi), self.n_thick)))
                    periods = sorted({max(1, int(round(w))) for w in want})
                wave = torch.ones((1, self.gpts, self.gpts), dtype=torch.complex64, device=slices.device)
                prev = 0
                for n in periods:
                    wave = ms.multislice_t(wave, trans, prop, repeats=n - prev)
                    prev = n
                    self.waves.append(Wave(torch.fft.fft2(wave[0]).to(torch.complex64), (sv_period * n).float(), kev, p,
                                           n * entry.period_z_a, entry.structure, tuple(entry.zone_axis)))
                done += 1
                yield done, total
        self.build_s = time.perf_counter() - t0

    # ------------------------------------------------------------------ samples
    def sample(self, rng: np.random.Generator, patch: int, *, wave_index=None, alpha_mrad=None, dz_nm=None, dose=None,
               augment: bool = True, crops: int = 1, grid_px_a: float | None = None):
        """Training sample(s) on the network grid: a list of ``crops`` dicts of numpy (tri (3,P,P),
        target (P,P), kappa, and the parameters) cut from one triplet. ``alpha_mrad``/``dz_nm``/
        ``dose`` fix a parameter (dose None → random; dose=inf → noise-free). ``grid_px_a``: sample
        on that pixel (Å, ≤ the network's; for evaluation on an input-like grid) instead."""
        w = self.waves[int(rng.integers(len(self.waves))) if wave_index is None else int(wave_index)]
        n = self.gpts
        lam = ms.wavelength_a(w.energy_kev)
        width_a = n * w.p_sim_a
        alpha = rng.uniform(*APERTURE_MRAD) if alpha_mrad is None else float(alpha_mrad)
        n_net = int(round(4 * width_a * alpha * 1e-3 / lam))
        n_net = max(patch if grid_px_a is None else 16, min(n, n_net + (n_net % 2)))
        q_ap = n_net / (4 * width_a)
        alpha = q_ap * lam * 1e3
        dz = math.exp(rng.uniform(math.log(DZ_NM[0]), math.log(DZ_NM[1]))) if dz_nm is None else float(dz_nm)
        dz_a = dz * 10
        q2 = _q2(n, w.p_sim_a)
        spec = w.spectrum * (q2 <= q_ap**2)
        ints = []
        for z in (-dz_a, 0.0, dz_a):
            wave = torch.fft.ifft2(spec * torch.exp(-1j * math.pi * lam * z * q2)) if z else torch.fft.ifft2(spec)
            ints.append(wave.real**2 + wave.imag**2)
        n_grid = n_net if grid_px_a is None else max(n_net, min(n, int(round(width_a / float(grid_px_a)))))
        p_grid = width_a / n_grid
        tri_full = _fourier_crop(torch.stack(ints), n_grid)
        sv_full = torch.fft.ifft2(torch.fft.fft2(w.sigma_v) * (q2 <= q_ap**2)).real
        sv_full = _fourier_crop(sv_full[None], n_grid)[0]
        ew = _fourier_crop_complex(torch.fft.ifft2(spec), n_grid)  # aperture-filtered exit wave
        ew_full = torch.angle(ew * torch.conj(ew.mean()))  # its phase (wraps beyond ±π)
        if dose is None:
            dose = math.inf if rng.random() < NOISE_FREE_FRACTION else math.exp(rng.uniform(*np.log(DOSE_E_PER_A2)))
        out = []
        for _ in range(int(crops)):
            oy, ox = (int(v) for v in rng.integers(0, n_grid, 2))
            tri = torch.roll(tri_full, (-oy, -ox), (-2, -1))[..., :patch, :patch]
            sv = torch.roll(sv_full, (-oy, -ox), (-2, -1))[:patch, :patch]
            ewp = torch.roll(ew_full, (-oy, -ox), (-2, -1))[:patch, :patch]
            if augment:
                if rng.random() < 0.5:
                    tri, sv, ewp = tri.flip(-1), sv.flip(-1), ewp.flip(-1)
                if rng.random() < 0.5:
                    tri, sv, ewp = tri.flip(-2), sv.flip(-2), ewp.flip(-2)
                if rng.random() < 0.5:
                    tri, sv, ewp = tri.transpose(-1, -2), sv.transpose(-1, -2), ewp.transpose(-1, -2)
            tri = tri.clamp_min(0).double().numpy()
            if math.isfinite(dose):
                tri = rng.poisson(tri * dose * p_grid**2) / (dose * p_grid**2)
            tri = tri / max(float(tri[1].mean()), 1e-12)
            target = sv.double().numpy()
            out.append({"tri": tri.astype(np.float32), "target": (target - target.mean()).astype(np.float32),
                        "kappa": math.pi * lam * dz_a * q_ap**2, "alpha_mrad": alpha, "dz_nm": dz, "dose": dose,
                        "energy_kev": w.energy_kev, "thickness_nm": w.thickness_a / 10, "structure": w.structure,
                        "zone_axis": w.zone_axis, "p_net_a": 1 / (4 * q_ap), "pixel_size_a": p_grid,
                        "exit_wave_phase": ewp.double().numpy().astype(np.float32)})
        return out

    def batch(self, rng: np.random.Generator, batch_size: int, patch: int, crops: int = 2, **kwargs) -> dict:
        """A batch: tri (B,3,P,P), tie (B,P,P) classical-TIE phase, kappa (B,), target (B,P,P);
        torch. ``crops`` patches per simulated triplet (the FFT work is shared)."""
        samples: list[dict] = []
        while len(samples) < int(batch_size):
            samples += self.sample(rng, patch, crops=min(crops, int(batch_size) - len(samples)), **kwargs)
        return collate(samples)


def collate(samples: list[dict]) -> dict:
    tri = np.stack([s["tri"] for s in samples])
    kappa = np.array([s["kappa"] for s in samples])
    tie = tie_phase_net(tri, kappa)
    return {"tri": torch.as_tensor(tri), "tie": torch.as_tensor(tie, dtype=torch.float32),
            "kappa": torch.as_tensor(kappa, dtype=torch.float32),
            "target": torch.as_tensor(np.stack([s["target"] for s in samples])),
            "info": [{k: v for k, v in s.items() if k not in ("tri", "target", "exit_wave_phase")} for s in samples]}


def _q2(n: int, p: float):
    q = torch.fft.fftfreq(n, d=p)
    return q[:, None] ** 2 + q[None, :] ** 2


def _fourier_crop_complex(x: torch.Tensor, m: int) -> torch.Tensor:
    """Resample a periodic complex (N, N) map band-limited below m/2 cycles to (m, m)."""
    n = x.shape[-1]
    if m == n:
        return x
    spec = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))
    lo = n // 2 - m // 2
    return torch.fft.ifft2(torch.fft.ifftshift(spec[..., lo:lo + m, lo:lo + m], dim=(-2, -1))) * (m * m) / (n * n)


def _fourier_crop(x: torch.Tensor, m: int) -> torch.Tensor:
    """Resample periodic (C, N, N) real maps to (C, m, m) by cropping the spectrum (m ≤ N)."""
    n = x.shape[-1]
    if m == n:
        return x
    spec = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))
    c = n // 2
    lo = c - m // 2
    crop = spec[..., lo:lo + m, lo:lo + m]
    return torch.fft.ifft2(torch.fft.ifftshift(crop, dim=(-2, -1))).real * (m * m) / (n * n)


assert Q_AP_NET == 0.25  # the crop above puts the aperture at 1/4 of the net grid's sampling rate
