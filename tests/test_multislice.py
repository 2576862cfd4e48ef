"""The multislice simulator: Kirkland potentials, specimens bank, probe, propagation, 4D-STEM.

Sizes are pinned, not only shapes: σ at 200 kV, one atom's integrated projected potential, the
mean inner potential of Si, the TIE magnitude of a propagated phase bump, CoM = (1/2π)∫|ψ|²∇φ,
Poisson means. Tiny grids throughout.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_phase.jobs import InputError
from napari_phase.physics import multislice as ms
from napari_phase.physics import optics
from napari_phase.physics import potentials as pot
from napari_phase.physics import specimens as spc
from napari_phase.physics.metrics import xc

torch.set_num_threads(1)

REQUIRED = (
    [pot._symbol(z) for z in range(1, 37)]
    + "Sr Ag Ba La Mo W Au Pb Bi Ga As In Se Te Ti Zr Nb Hf Ta Pt Ce".split()
)


# --------------------------------------------------------------------------- potentials


def test_kirkland_table_covers_required_elements():
    for sym in REQUIRED:
        p = pot.element_parameters(sym)
        assert p.shape == (4, 3) and np.all(p[1] > 0) and np.all(p[3] > 0), sym
    for spec in spc.STRUCTURES:
        for sym in set(spc.build(spec).get_chemical_symbols()):
            pot.element_parameters(sym)
    with pytest.raises(InputError, match="unknown element"):
        pot.element_parameters("Xx")
    with pytest.raises(InputError):
        pot.projected_potential([[1.0, 1.0, 0.0]], ["Qq"], (16, 16), 0.1)


def test_one_atom_integral_and_radial_profile():
    n, dx = 256, 0.05
    v = pot.projected_potential([[n * dx / 2, n * dx / 2, 0.0]], ["Si"], (n, n), dx)
    # ∫ v_z d²r = 2π a0 e f_e(0); 2π a0 e = 47.878 V·Å², f_e(0) of Si = 5.814 Å (Kirkland)
    assert pot.TWO_PI_A0_E == pytest.approx(47.878, rel=1e-4)
    assert float(v.sum()) * dx * dx == pytest.approx(278.37, rel=2e-3)
    # real space against the analytic K0 + Gaussian form at known radii (independent route)
    r = np.array([0.5, 1.0, 1.5])
    got = v[n // 2, n // 2 + np.round(r / dx).astype(int)]
    assert got == pytest.approx(pot.projected_potential_radial("Si", r), rel=0.03)
    assert pot.projected_potential_radial("Si", 1.0) == pytest.approx(19.65, rel=0.01)
    # an atom placed off-grid integrates the same, and its peak sits where it was placed
    v2 = pot.projected_potential([[3.33, 4.17, 0.0]], ["Si"], (n, n), dx)
    assert float(v2.sum()) * dx * dx == pytest.approx(278.37, rel=2e-3)
    iy, ix = np.unravel_index(np.argmax(v2), v2.shape)
    assert abs(iy * dx - 4.17) <= dx and abs(ix * dx - 3.33) <= dx


def test_heavier_atom_has_more_potential_and_slices_split_atoms():
    f = {s: pot.projected_potential_ft(s, 0.0) for s in ("C", "Si", "Au")}
    assert f["C"] < f["Si"] < f["Au"]
    pos = [[2.0, 2.0, 0.5], [4.0, 4.0, 3.5]]
    sl = pot.potential_slices(pos, ["O", "Sr"], (64, 64), 0.1, slice_thickness_a=2.0, thickness_a=4.0)
    assert sl.shape == (2, 64, 64) and sl.dtype == np.float32
    assert sl[0].sum() * 0.01 == pytest.approx(pot.projected_potential_ft("O", 0.0), rel=1e-3)
    assert sl[1].sum() * 0.01 == pytest.approx(pot.projected_potential_ft("Sr", 0.0), rel=1e-3)
    with pytest.raises(InputError, match="slice_thickness_a"):
        pot.potential_slices(pos, ["O", "Sr"], (64, 64), 0.1, slice_thickness_a=0.0)


def test_mean_inner_potential_of_silicon():
    """Mean of the projected potential / thickness = MIP of neutral-atom Si ≈ 13.9 V (Kirkland
    atoms, no bonding; measured values are 12–14 V). Independent of the grid."""
    atoms = spc.supercell("Si", (0, 0, 1), extent_a=(10.862, 10.862), thickness_a=5.431)
    assert atoms.info["periodic"] and len(atoms) == 32
    v = pot.projected_potential(atoms.positions, atoms.numbers, (64, 64), 10.862 / 64)
    mip = float(v.mean()) / atoms.info["thickness_a"]
    assert 13.0 < mip < 15.0


# --------------------------------------------------------------------------- specimens


def test_structure_bank_and_split():
    assert len(spc.STRUCTURES) >= 20
    train, val, held = (set(spc.structures(s)) for s in spc.SPLITS)
    assert not (train & val) and not (train & held) and not (val & held)
    assert {"GaAs", "SrTiO3"} <= train
    assert any("twisted" in n for n in held) and {"CeO2", "LaAlO3"} <= held
    assert spc.build("MoS2-twisted-bilayer").info["twist_deg"] == pytest.approx(6.01, abs=0.01)
    with pytest.raises(InputError, match="unknown structure"):
        spc.build("Unobtainium")
    with pytest.raises(InputError):
        spc.structures("test")


@pytest.mark.parametrize("name,zone", [("GaAs", (1, 1, 0)), ("SrTiO3", (1, 1, 1)), ("GaN", (1, 0, 0)), ("TiO2-rutile", (0, 0, 1))])
def test_oriented_cells_keep_density_and_put_zone_along_z(name, zone):
    conv = spc.build(name)
    cell = spc.oriented_cell(name, zone)
    assert np.allclose(cell.cell.array[2, :2], 0) and cell.cell.array[2, 2] > 0
    assert np.allclose(cell.cell.array[:2, 2], 0)
    assert len(cell) / cell.get_volume() == pytest.approx(len(conv) / conv.get_volume(), rel=1e-6)
    direction = np.asarray(zone) @ conv.cell.array
    assert cell.cell.array[2, 2] == pytest.approx(np.linalg.norm(direction), rel=1e-6)
    with pytest.raises(InputError):
        spc.oriented_cell(name, (0, 0, 0))


def test_supercell_thickness_rotation_and_seed():
    a = spc.supercell("GaAs", (0, 0, 1), extent_a=(20, 20), thickness_a=22.0, rotation_deg=None, seed=5)
    b = spc.supercell("GaAs", (0, 0, 1), extent_a=(20, 20), thickness_a=22.0, rotation_deg=None, seed=5)
    assert a.info["rotation_deg"] == b.info["rotation_deg"] and np.allclose(a.positions, b.positions)
    assert a.info["thickness_a"] == pytest.approx(4 * 5.653)
    # density of the box matches the crystal's
    dens = len(a) / (20 * 20 * a.info["thickness_a"])
    assert dens == pytest.approx(8 / 5.653**3, rel=0.05)
    assert a.positions[:, :2].min() >= 0 and a.positions[:, 0].max() < 20
    with pytest.raises(InputError):
        spc.supercell("GaAs", thickness_a=0.0)
    with pytest.raises(InputError):
        spc.supercell("GaAs", extent_a=(-1, 5))


def test_potential_bank_matches_direct_potential():
    bank = spc.PotentialBank(["SrTiO3"], sampling_a=0.1, zone_axes=[(0, 0, 1)], dw_rms_a=0.0)
    v, info = bank.sample_projected(4, (78, 78), 0.1, thickness_a=3 * 3.905, rotate=False, scale_range=0.0, seed=0)
    assert v.shape == (4, 78, 78) and info[0]["thickness_a"] == pytest.approx(3 * 3.905)
    at = spc.supercell("SrTiO3", (0, 0, 1), extent_a=(7.81, 7.81), thickness_a=3 * 3.905)
    ref = pot.projected_potential(at.positions, at.numbers, (78, 78), 0.1)
    # same mean (zero frequency is exact) and, after the same shift, the same map up to the band limit
    assert float(v.mean()) == pytest.approx(float(ref.mean()), rel=0.01)
    # translation-invariant comparison: the amplitude spectra agree (band limit aside)
    spec_bank = np.abs(np.fft.fft2(v[0].numpy()))
    spec_ref = np.abs(np.fft.fft2(ref))
    low = np.hypot(*np.meshgrid(np.fft.fftfreq(78, 0.1), np.fft.fftfreq(78, 0.1))) < 2.0
    assert xc(spec_bank[low], spec_ref[low]) > 0.99
    # rotations keep the mean potential (a rotation-invariant quantity)
    vr, _ = bank.sample_projected(4, (64, 64), 0.12, thickness_a=3 * 3.905, rotate=True, seed=1)
    assert float(vr.mean()) == pytest.approx(float(ref.mean()), rel=0.05)
    with pytest.raises(InputError, match="finer"):
        bank.sample_projected(1, (32, 32), 0.05)


# --------------------------------------------------------------------------- probe, transmission, propagation


def test_sigma_and_phase_object_phase():
    assert ms.sigma(200.0) == pytest.approx(7.29e-4, rel=2e-3)
    n, dx = 64, 0.1
    v = pot.projected_potential([[3.2, 3.2, 0.0], [1.0, 5.0, 0.0]], ["Si", "O"], (n, n), dx)
    t = ms.transmission(v, 200.0, antialias=False)
    assert np.allclose(np.abs(t), 1, atol=1e-5)
    assert np.allclose(np.angle(t), np.angle(np.exp(1j * 7.29e-4 * v)), atol=3e-3)
    assert float(np.angle(t).max()) / float(v.max()) == pytest.approx(7.29e-4, rel=3e-3)


def test_probe_normalisation_aperture_and_aberrations():
    n, dx, kv, alpha = 96, 0.1, 300.0, 20.0
    p = ms.probe(n, dx, kv, alpha, centered=True)
    assert p.dtype == np.complex64 and float((np.abs(p) ** 2).sum()) == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(np.argmax(np.abs(p)), p.shape) == (n // 2, n // 2)
    spec = np.abs(np.fft.fft2(p)) ** 2
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n, dx), np.fft.fftfreq(n, dx), indexing="ij"))
    mrad = k * ms.wavelength_a(kv) * 1e3
    on = spec > 1e-6 * spec.max()
    assert mrad[on].max() <= alpha and mrad[on].max() > alpha - 1.0 / (n * dx) * ms.wavelength_a(kv) * 1e3
    assert np.all(on[mrad < alpha - 1.5])
    # the aberration phase is -optics.chi (defocus, Cs, astigmatism), inside the aperture
    pk = ms.probe_fourier_t((n, n), dx, kv, alpha, defocus_a=-50.0, cs_mm=0.5, astig_a=20.0, astig_angle_deg=30.0).numpy()
    qy, qx = optics.fft_frequencies((n, n), dx)
    q2 = qy**2 + qx**2
    want = -optics.chi(q2, ms.wavelength_a(kv), -50.0, 0.5e7, 20.0, math.radians(30.0), np.arctan2(qy, qx))
    inside = mrad < alpha - 1
    assert np.allclose(np.angle(pk[inside] * np.exp(-1j * want[inside])), 0, atol=2e-3)
    # a defocused probe is the focused one propagated by the defocus (DESIGN §3 sign)
    p0 = ms.probe(n, dx, kv, alpha, centered=False)
    pd = ms.probe(n, dx, kv, alpha, defocus_a=80.0, centered=False)
    assert np.allclose(ms.fresnel_propagate(p0, dx, kv, 80.0), pd, atol=2e-5)
    with pytest.raises(InputError):
        ms.probe(n, dx, kv, 0.0)
    with pytest.raises(InputError):
        ms.probe(n, dx, float("nan"), alpha)
    with pytest.raises(InputError, match="Nyquist"):
        ms.probe(n, 0.5, kv, alpha)  # 20 mrad needs better than 0.49 Å sampling at 300 kV


def test_fresnel_sign_follows_the_tie():
    """∂I/∂z = -(λ/2π) ∇·(I∇φ): a phase maximum brightens downstream (+z), darkens upstream, with
    the TIE magnitude at its centre."""
    n, dx, kv, z = 128, 0.1, 200.0, 5.0
    y, x = (np.indices((n, n)) - n / 2) * dx
    s = 1.0
    phi = 0.2 * np.exp(-(x**2 + y**2) / (2 * s**2))
    psi = np.exp(1j * phi)
    ip = np.abs(ms.fresnel_propagate(psi, dx, kv, +z)) ** 2
    im = np.abs(ms.fresnel_propagate(psi, dx, kv, -z)) ** 2
    c = (n // 2, n // 2)
    assert ip[c] > 1 > im[c]
    lap = -0.2 * 2 / s**2  # ∇²φ at the centre of the Gaussian
    tie = -(ms.wavelength_a(kv) / (2 * math.pi)) * lap
    assert (ip[c] - im[c]) / (2 * z) == pytest.approx(tie, rel=0.1)


def _gaas_cell(thickness_a, extent=(11.306, 11.306)):
    return spc.supercell("GaAs", (0, 0, 1), extent_a=extent, thickness_a=thickness_a)


def test_one_slice_multislice_is_a_propagated_phase_object():
    at = _gaas_cell(5.653)
    dx = 11.306 / 96
    ew, sv = ms.plane_wave_exit_wave(at, energy_kev=300.0, sampling_a=dx, slice_thickness_a=10.0, antialias=False, device="cpu")
    assert ew.shape == (1, 96, 96) and sv.shape == (96, 96)
    want = ms.fresnel_propagate(np.exp(1j * sv), dx, 300.0, 5.653)
    assert np.allclose(ew[0], want, atol=2e-4)
    assert float(sv.max()) == pytest.approx(ms.sigma(300.0) * float(
        pot.projected_potential(at.positions, at.numbers, (96, 96), dx).max()), rel=1e-4)


def _lowpass(a, dx, q_inv_a=1.5):
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(a.shape[0], dx), np.fft.fftfreq(a.shape[1], dx), indexing="ij"))
    return np.fft.ifft2(np.fft.fft2(a) * (k < q_inv_a)).real


def test_thin_crystal_is_a_phase_object_and_a_thick_one_is_not():
    """Compared below 1.5 Å⁻¹ (the 2/3 anti-aliasing cut trims σV's sharp column peaks):
    one GaAs cell (0.57 nm) gives exit phase ≈ σV; 40 cells (22.6 nm) do not (dynamical)."""
    dx = 11.306 / 96
    thin, sv_thin = ms.plane_wave_exit_wave(_gaas_cell(5.653), energy_kev=300.0, sampling_a=dx, slice_thickness_a=1.42, device="cpu")
    ph_thin, ref = _lowpass(np.angle(thin[0]), dx), _lowpass(sv_thin, dx)
    assert xc(ph_thin, ref) > 0.99
    assert 0.85 < np.std(ph_thin) / np.std(ref) < 1.1  # a doubled or halved σ fails here
    assert float(np.abs(thin[0]).std()) < 0.05  # nearly a pure phase object
    thick, sv_thick = ms.plane_wave_exit_wave(_gaas_cell(40 * 5.653), energy_kev=300.0, sampling_a=dx, slice_thickness_a=1.42, device="cpu")
    assert xc(_lowpass(np.angle(thick[0]), dx), _lowpass(sv_thick, dx)) < 0.5  # exit phase no longer follows σV
    assert float(np.abs(thick[0]).std()) > 0.1  # channelling: strong amplitude contrast
    # electrons scattered beyond the 2/3 anti-aliasing aperture (here 56 mrad) leave the wave
    assert 0.7 < float(np.sum(np.abs(thick[0]) ** 2)) / thick[0].size <= 1.0
    assert float(sv_thick.mean()) == pytest.approx(40 * float(sv_thin.mean()), rel=1e-3)


def test_bank_exit_waves_agree_with_direct_multislice():
    bank = spc.PotentialBank(["GaAs"], sampling_a=11.306 / 96, zone_axes=[(0, 0, 1)], dw_rms_a=0.0, oversample=2)
    ew, sv, t = ms.bank_exit_waves(bank, 0, 2, (96, 96), 11.306 / 96, energy_kev=300.0, thickness_a=8 * 5.653, rotate=True, seed=0)
    assert ew.shape == (2, 96, 96) and t == pytest.approx(8 * 5.653)
    # rotation-invariant numbers against the direct route: mean σV and the exit-wave intensity spread
    dx = 11.306 / 96
    direct, sv_d = ms.plane_wave_exit_wave(_gaas_cell(8 * 5.653), energy_kev=300.0, sampling_a=dx, slice_thickness_a=5.653 / 4, device="cpu")
    assert float(sv.mean()) == pytest.approx(float(sv_d.mean()), rel=0.03)
    assert float(np.abs(ew[0].numpy()).std()) == pytest.approx(float(np.abs(direct[0]).std()), rel=0.25)


def test_frozen_phonons_smear_the_potential():
    at = _gaas_cell(2 * 5.653)
    dx = 11.306 / 96
    _, sv0 = ms.plane_wave_exit_wave(at, energy_kev=300.0, sampling_a=dx, device="cpu")
    ew, sv = ms.plane_wave_exit_wave(at, energy_kev=300.0, sampling_a=dx, frozen_phonons=6, phonon_rms_a=0.12, seed=1, device="cpu")
    assert ew.shape[0] == 6
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(96, dx), np.fft.fftfreq(96, dx), indexing="ij"))
    p0, p1 = np.abs(np.fft.fft2(sv0)) ** 2, np.abs(np.fft.fft2(sv)) ** 2
    hi = (k > 1.2) & (k < 3.0)
    # the configuration average approaches the Debye–Waller-damped potential: power × exp(-4π²u²k²)
    # (on the Bragg reflections; off them the finite number of configurations leaves diffuse power)
    bragg = hi & (p0 > 1e-3 * p0[hi].max())
    dw = (p0[bragg] * np.exp(-4 * math.pi**2 * 0.12**2 * k[bragg] ** 2)).sum() / p0[bragg].sum()
    assert p1[bragg].sum() / p0[bragg].sum() == pytest.approx(dw, rel=0.3)
    assert p1[hi].sum() / p0[hi].sum() < 0.5
    assert xc(_lowpass(sv, dx, 1.0), _lowpass(sv0, dx, 1.0)) > 0.97  # low frequencies kept
    assert float(sv.mean()) == pytest.approx(float(sv0.mean()), rel=1e-3)
    # the averaged intensity of the configurations is smoother than a single configuration's
    i_avg = (np.abs(ew) ** 2).mean(0)
    i_one = np.abs(ew[0]) ** 2
    assert (np.abs(np.fft.fft2(i_avg))[hi] ** 2).sum() < (np.abs(np.fft.fft2(i_one))[hi] ** 2).sum()


# --------------------------------------------------------------------------- 4D-STEM


def _smooth_potential(n, dx, rms_rad, kv, seed=0, qmax=0.25):
    rng = np.random.default_rng(seed)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n, dx), np.fft.fftfreq(n, dx), indexing="ij"))
    spec = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) * (k < qmax) * (k > 0)
    phi = np.fft.ifft2(spec).real
    phi = phi / phi.std() * rms_rad
    return (phi / ms.sigma(kv)).astype(np.float32), phi


@pytest.mark.parametrize("det", [32, 33])
def test_4dstem_vacuum_dose_and_optical_axis(det):
    kv, mrad_px = 300.0, 1.0
    extent = ms.wavelength_a(kv) / (mrad_px * 1e-3)
    dx = extent / 48
    v = np.zeros((96, 96), np.float32)
    sim = ms.simulate_4dstem(v, potential_sampling_a=dx, scan_step_a=0.5, scan_gpts=(8, 6), energy_kev=kv,
                             semiangle_mrad=10.0, detector_mrad_per_px=mrad_px, detector_gpts=det, device="cpu")
    d = sim.data
    assert d.shape == (8, 6, det, det) and d.dtype == np.float32
    assert d.sum((-2, -1)) == pytest.approx(1.0, abs=1e-4)  # all of the probe lands on the detector
    ky, kx = np.indices((det, det))
    m = d.mean((0, 1))
    assert (m * ky).sum() / m.sum() == pytest.approx(det // 2, abs=1e-3)
    assert (m * kx).sum() / m.sum() == pytest.approx(det // 2, abs=1e-3)
    # the disc radius in mrad is the semi-angle
    r_mrad = np.hypot(ky - det // 2, kx - det // 2)[m > 1e-3 * m.max()].max() * sim.metadata["detector_mrad_per_px"]
    assert 9.0 <= r_mrad <= 10.0
    assert sim.metadata["detector_mrad_per_px"] == pytest.approx(mrad_px, rel=1e-6)
    noisy = ms.simulate_4dstem(v, potential_sampling_a=dx, scan_step_a=0.5, scan_gpts=(8, 6), energy_kev=kv, semiangle_mrad=10.0,
                               detector_mrad_per_px=mrad_px, detector_gpts=det, dose_e_per_a2=2000.0, seed=3, device="cpu")
    counts = noisy.data.sum((-2, -1))
    assert counts.mean() == pytest.approx(2000.0 * 0.25, rel=0.03)  # 500 e per position
    assert counts.var() == pytest.approx(500.0, rel=0.5)  # Poisson: variance = mean
    assert np.all(noisy.data == np.round(noisy.data)) and noisy.metadata["seed"] == 3


def test_4dstem_com_points_along_phase_gradient():
    """CoM (1/Å) = (1/2π) ∫|ψ(r−rp)|² ∇φ dr (DESIGN §6): direction and magnitude within 10 %."""
    kv, mrad_px, det, alpha = 300.0, 1.0, 32, 12.0
    n_win = 48
    dx = ms.wavelength_a(kv) / (mrad_px * 1e-3) / n_win
    big = 96
    v, phi = _smooth_potential(big, dx, 0.3, kv, seed=2)
    step = 4 * dx
    sim = ms.simulate_4dstem(v, potential_sampling_a=dx, scan_step_a=step, scan_gpts=(6, 6), energy_kev=kv, semiangle_mrad=alpha,
                             detector_mrad_per_px=mrad_px, detector_gpts=det, mode="phase_object", device="cpu")
    d = sim.data.astype(np.float64)
    ky, kx = np.indices((det, det)) - det // 2
    inv_a = sim.metadata["detector_inv_a_per_px"]
    com_y = (d * ky).sum((-2, -1)) / d.sum((-2, -1)) * inv_a
    com_x = (d * kx).sum((-2, -1)) / d.sum((-2, -1)) * inv_a
    # expected, computed independently: probe intensity-weighted phase gradient
    k = np.fft.fftfreq(big, dx)
    gy = np.fft.ifft2(2j * np.pi * k[:, None] * np.fft.fft2(phi)).real
    gx = np.fft.ifft2(2j * np.pi * k[None, :] * np.fft.fft2(phi)).real
    p = ms.probe(n_win, dx, kv, alpha, centered=True)
    w = np.abs(p) ** 2
    oy, ox = (np.array(sim.metadata["scan_origin_a"]) / dx).round().astype(int)
    ey, ex = np.zeros((6, 6)), np.zeros((6, 6))
    for i in range(6):
        for j in range(6):
            y0, x0 = oy + 4 * i - n_win // 2, ox + 4 * j - n_win // 2
            ey[i, j] = (w * gy[y0 : y0 + n_win, x0 : x0 + n_win]).sum() / (2 * np.pi)
            ex[i, j] = (w * gx[y0 : y0 + n_win, x0 : x0 + n_win]).sum() / (2 * np.pi)
    got = np.concatenate([com_y.ravel(), com_x.ravel()])
    want = np.concatenate([ey.ravel(), ex.ravel()])
    assert xc(got, want) > 0.98
    assert np.linalg.norm(got) / np.linalg.norm(want) == pytest.approx(1.0, rel=0.1)
    # the ground-truth phase starts at the first scan position, in rad
    assert sim.phase[0, 0] == pytest.approx(phi[oy, ox], abs=1e-4)
    assert sim.phase_pixel_size_a == pytest.approx(dx)


def test_4dstem_subpixel_scan_positions():
    """A scan line in quarter-pixel steps across one phase bump: the CoM changes sign where the
    bump is (x0 = 40.3 px), to 0.05 px — probe positions are placed with sub-pixel accuracy."""
    kv, mrad_px, det, alpha, n_win = 300.0, 1.0, 32, 15.0, 48
    dx = ms.wavelength_a(kv) / (mrad_px * 1e-3) / n_win
    y, x = np.indices((80, 80)) * dx
    x0, y0 = 40.3 * dx, 40.0 * dx
    phi = 0.3 * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * 1.0**2))
    start = 38.0 * dx
    sim = ms.simulate_4dstem((phi / ms.sigma(kv)).astype(np.float32), potential_sampling_a=dx, scan_step_a=0.25 * dx,
                             scan_gpts=(1, 17), energy_kev=kv, semiangle_mrad=alpha, detector_mrad_per_px=mrad_px,
                             detector_gpts=det, mode="phase_object", scan_origin_a=(y0, start), device="cpu")
    d = sim.data[0].astype(np.float64)
    com_x = (d * (np.arange(det) - det // 2)[None, None, :]).sum((-2, -1)) / d.sum((-2, -1))
    xs = start + np.arange(17) * 0.25 * dx
    assert np.all(np.diff(com_x[4:13]) < 0)  # the gradient points to the bump from both sides
    i = int(np.flatnonzero((com_x[:-1] > 0) & (com_x[1:] <= 0))[0])
    x_cross = xs[i] + (xs[i + 1] - xs[i]) * com_x[i] / (com_x[i] - com_x[i + 1])
    assert x_cross / dx == pytest.approx(40.3, abs=0.05)


def test_exit_waves_oracle_object_and_patterns():
    """POA exit waves at sub-pixel positions: ψ_out·conj(ψ_in) has the phase σV of the window
    (where the probe is bright); multislice exit waves give simulate_4dstem's patterns."""
    kv, dx, n = 300.0, 0.25, 40
    v, phi = _smooth_potential(96, dx, 0.4, kv, seed=5, qmax=0.5)
    pos = np.array([[12.0, 12.0], [12.3, 11.85], [13.1, 12.6]])
    ex = ms.exit_waves(v, pos, energy_kev=kv, semiangle_mrad=25.0, sampling_a=dx, window_gpts=n, mode="phase_object", device="cpu")
    assert ex.waves.shape == (1, 3, n, n) and ex.sigma_v.shape == (96, 96)
    assert np.allclose(ex.sigma_v, phi, atol=1e-4)
    k = np.fft.fftfreq(n, dx)
    for j, p in enumerate(pos):
        off = p - ex.window_origin_a[j]  # probe position inside the window (Å)
        ramp = np.exp(-2j * np.pi * ((off[0] - n // 2 * dx) * k[:, None] + (off[1] - n // 2 * dx) * k[None, :]))
        pin = np.fft.ifft2(np.fft.fft2(ex.probe) * ramp)
        bright = np.abs(pin) ** 2 > 0.1 * (np.abs(pin) ** 2).max()
        oy, ox = (ex.window_origin_a[j] / dx).round().astype(int)
        obj = np.angle(ex.waves[0, j] * np.conj(pin))
        assert np.abs(obj - phi[oy : oy + n, ox : ox + n])[bright].max() < 0.02
    with pytest.raises(InputError, match="inside the specimen"):
        ms.exit_waves(v, [[1.0, 1.0]], energy_kev=kv, semiangle_mrad=25.0, sampling_a=dx, window_gpts=n, device="cpu")
    with pytest.raises(InputError, match="frozen phonons"):
        ms.exit_waves(v, pos, energy_kev=kv, semiangle_mrad=25.0, sampling_a=dx, window_gpts=n, frozen_phonons=2, device="cpu")
    with pytest.raises(InputError, match="band limit"):
        ms.exit_waves(v, pos, energy_kev=kv, semiangle_mrad=40.0, sampling_a=dx, window_gpts=n, device="cpu")
    with pytest.raises(InputError, match="positions_a"):
        ms.exit_waves(v, np.zeros((2, 3)), energy_kev=kv, semiangle_mrad=25.0, sampling_a=dx, window_gpts=n, device="cpu")
    # multislice exit waves through the 4D-STEM path give the same patterns
    at = spc.supercell("SrTiO3", (0, 0, 1), extent_a=(27.3, 27.3), thickness_a=7.81)
    kw = dict(energy_kev=300.0, semiangle_mrad=20.0, device="cpu")
    sim = ms.simulate_4dstem(at, scan_step_a=0.37, scan_gpts=(2, 2), detector_mrad_per_px=1.0, detector_gpts=64, **kw)
    o = np.array(sim.metadata["scan_origin_a"])
    p4 = np.array([o, o + [0, 0.37], o + [0.37, 0], o + [0.37, 0.37]])
    ex2 = ms.exit_waves(at, p4, sampling_a=sim.metadata["sampling_a"], window_gpts=96, **kw)
    pats = ms.patterns_t(torch.as_tensor(ex2.waves[0]), (64, 64)).numpy()
    assert np.allclose(pats, sim.data.reshape(4, 64, 64), atol=1e-6 * float(sim.data.max()) + 1e-7)


def test_4dstem_of_a_crystal_multislice_close_to_phase_object_when_thin():
    at = spc.supercell("SrTiO3", (0, 0, 1), extent_a=(27.3, 27.3), thickness_a=3.905)
    kw = dict(scan_step_a=0.5, scan_gpts=(4, 4), energy_kev=300.0, semiangle_mrad=20.0, detector_mrad_per_px=1.0,
              detector_gpts=64, device="cpu")
    a = ms.simulate_4dstem(at, mode="phase_object", **kw)
    b = ms.simulate_4dstem(at, mode="multislice", slice_thickness_a=1.0, **kw)
    assert a.data.shape == (4, 4, 64, 64)
    assert xc(a.data, b.data) > 0.99
    assert a.phase.shape == (int(1.5 / a.phase_pixel_size_a + 1e-6) + 1,) * 2
    assert 0.5 < float(a.phase.max()) < 2.0  # one SrTiO3 cell: σV of an Sr column ≈ 1 rad
    assert a.metadata["energy_kev"] == 300.0 and a.metadata["phase_origin"] == "first scan position"
    # 15 cells (5.9 nm): dynamical scattering separates multislice from the phase object
    thick = spc.supercell("SrTiO3", (0, 0, 1), extent_a=(27.3, 27.3), thickness_a=15 * 3.905)
    c = ms.simulate_4dstem(thick, mode="phase_object", **kw)
    d = ms.simulate_4dstem(thick, mode="multislice", slice_thickness_a=1.0, **kw)
    assert xc(c.data, d.data) < 0.95
    assert np.abs(c.data - d.data).sum() / c.data.sum() > 0.2


def test_4dstem_bad_input():
    at = _gaas_cell(5.653)
    kw = dict(scan_step_a=0.5, scan_gpts=(2, 2), energy_kev=300.0, detector_mrad_per_px=1.0, detector_gpts=32, device="cpu")
    with pytest.raises(InputError, match="does not fit on the detector"):
        ms.simulate_4dstem(at, semiangle_mrad=20.0, **kw)
    with pytest.raises(InputError, match="too small"):
        ms.simulate_4dstem(at, semiangle_mrad=10.0, **kw)  # 11 Å specimen, 20 Å window
    big = spc.supercell("GaAs", (0, 0, 1), extent_a=(28, 28), thickness_a=5.653)
    with pytest.raises(InputError, match="slice_thickness_a"):
        ms.simulate_4dstem(big, semiangle_mrad=10.0, slice_thickness_a=0.0, **kw)
    with pytest.raises(InputError, match="mode"):
        ms.simulate_4dstem(big, semiangle_mrad=10.0, mode="magic", **kw)
    with pytest.raises(InputError, match="dose"):
        ms.simulate_4dstem(big, semiangle_mrad=10.0, dose_e_per_a2=0.0, **kw)
    with pytest.raises(InputError, match="scan_step_a"):
        ms.simulate_4dstem(big, semiangle_mrad=10.0, **{**kw, "scan_step_a": 0.0})
    with pytest.raises(InputError, match="NaN"):
        ms.simulate_4dstem(np.full((64, 64), np.nan), potential_sampling_a=0.41, semiangle_mrad=10.0, **kw)
    with pytest.raises(InputError, match="potential_sampling_a"):
        ms.simulate_4dstem(np.ones((64, 64)), potential_sampling_a=ms.wavelength_a(300.0) / 1e-3 / 60.5, semiangle_mrad=10.0, **kw)
    with pytest.raises(InputError):
        ms.plane_wave_exit_wave(np.ones((0, 4)), energy_kev=300.0, sampling_a=0.1)
    with pytest.raises(InputError):
        ms.fresnel_propagate(np.ones(5), 0.1, 300.0, 1.0)


def test_exit_waves_t_batch_matches_single_positions():
    n, dx, kv = 48, 0.2, 200.0
    v = torch.as_tensor(_smooth_potential(n, dx, 0.5, kv, seed=4, qmax=1.0)[0])
    t = ms.transmission_t(v[None, None], kv, dx)
    pk = ms.probe_fourier_t((n, n), dx, kv, 20.0)
    shifts = torch.tensor([[[2.0, 3.0], [4.4, 1.62]]], dtype=torch.float64)
    ew = ms.exit_waves_t(t, pk, shifts, dx)
    assert ew.shape == (1, 2, n, n)
    # the ramp puts the probe where it was asked (y, x), to the pixel
    for j in range(2):
        peak = np.unravel_index(int(ew[0, j].abs().argmax()), (n, n))
        assert peak == tuple(int(round(float(v) / dx)) for v in shifts[0, j])
    for j in range(2):
        single = torch.fft.ifft2(pk * ms.shift_phase_t((n, n), dx, shifts[0, j])) * t[0, 0]
        assert torch.allclose(ew[0, j], single, atol=1e-6)
    prop = ms.propagator_t((n, n), dx, kv, 2.0)
    ew2 = ms.exit_waves_t(t, pk, shifts, dx, propagator=prop, repeats=2)
    assert float((ew2.abs() ** 2).sum((-2, -1)).max()) <= 1.0 + 1e-4


# --------------------------------------------------------------------------- abTEM agreement (optional)


def test_agrees_with_abtem():
    """Same crystal, same sampling and slices: abTEM's Kirkland potential and plane-wave exit wave.
    (Measured here, abTEM 1.0.11, GaAs [001] 2.3 nm at 0.05 Å: potential xc 0.9975, mean equal to
    1e-7, peak 3 % apart; exit wave |ψ| xc 0.9985, phase xc 0.9995, complex L2 difference 1.1 %.)"""
    abtem = pytest.importorskip("abtem")
    at = _gaas_cell(4 * 5.653)
    dx = 11.306 / 112
    pot_ab = abtem.Potential(at, gpts=(112, 112), slice_thickness=1.0, parametrization="kirkland", projection="infinite")
    arr_ab = np.asarray(pot_ab.build().compute().array).sum(0).T  # abTEM arrays are (x, y)
    ours = pot.projected_potential(at.positions, at.numbers, (112, 112), dx)
    assert xc(ours, arr_ab) > 0.99
    assert float(ours.mean()) == pytest.approx(float(arr_ab.mean()), rel=1e-3)
    assert float(ours.max()) == pytest.approx(float(arr_ab.max()), rel=0.1)
    ew_ab = np.asarray(abtem.PlaneWave(energy=300e3).multislice(pot_ab).compute().array).T
    ew, _ = ms.plane_wave_exit_wave(at, energy_kev=300.0, sampling_a=dx, slice_thickness_a=1.0, device="cpu")
    assert xc(np.abs(ew[0]), np.abs(ew_ab)) > 0.98
    assert xc(np.angle(ew[0]), np.angle(ew_ab)) > 0.98
    assert np.linalg.norm(ew[0] - ew_ab) / np.linalg.norm(ew_ab) < 0.05
