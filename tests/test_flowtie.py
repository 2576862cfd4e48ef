"""FlowTIE: triplet input, flow integration, classical TIE and gradient-descent baselines.

Ground truth made here: a periodic lattice phase object (Gaussian columns, known phase in rad),
its Fresnel triplet through an aperture (the project's sign convention), and checks of SIZE:
recovered phase magnitude and correlation against the band-limited truth.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_phase.flowtie import (
    integrate_flow,
    phase_gradient,
    prepare_triplet,
    simulate_triplet,
    tie_classical,
    tie_classical_job,
    tie_gradient_descent,
    tie_gradient_descent_job,
)
from napari_phase.flowtie.flow import flow_curl
from napari_phase.flowtie.triplet import aperture_q_per_a, band_limit
from napari_phase.jobs import CancelToken, InputError, run_job
from napari_phase.physics.metrics import psnr, xc

torch.set_num_threads(1)

PX, KEV, ALPHA = 0.2, 300.0, 20.0


def lattice_phase(shape, px, a=3.9, amp=0.4, sigma=0.35):
    """Periodic columns (two per cell, 1 : 0.5) of Gaussian phase, peak ``amp`` rad."""
    y, x = np.mgrid[: shape[0], : shape[1]] * px
    ph = np.zeros(shape)
    for oy, ox, s in ((0, 0, 1.0), (a / 2, a / 2, 0.5)):
        dy = ((y - oy) / a + 0.5) % 1 - 0.5
        dx = ((x - ox) / a + 0.5) % 1 - 0.5
        ph += s * amp * np.exp(-((dy * a) ** 2 + (dx * a) ** 2) / (2 * sigma**2))
    return ph


@pytest.fixture(scope="module")
def thin():
    """(triplet, band-limited true phase, dz_nm) of a thin periodic phase object, 78x78 px."""
    shape = (78, 78)  # 4 x 4 cells of 3.9 Å at 0.2 Å/px: periodic
    ph = lattice_phase(shape, PX)
    dz = 1.0
    tri = simulate_triplet(np.exp(1j * ph), defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV, semiangle_mrad=ALPHA)
    truth = band_limit(ph, PX, aperture_q_per_a(ALPHA, KEV))
    return tri, truth - truth.mean(), dz


def _ratio(est, truth):
    return float(np.std(est) / np.std(truth))


# ----------------------------------------------------------------------------- flow integration

def test_integrate_flow_round_trip_odd_nonsquare():
    y, x = np.mgrid[:37, :50]
    ph = np.sin(2 * np.pi * x / 9.3) * np.cos(2 * np.pi * y / 6.1) + 0.3 * np.exp(-((x - 20) ** 2 + (y - 15) ** 2) / 30)
    ph -= ph.mean()
    g = phase_gradient(ph, 0.5)
    assert g.shape == (2, 37, 50)
    back = integrate_flow(g, 0.5)
    assert np.abs(back - ph).max() < 0.02 * np.ptp(ph)
    assert np.abs(flow_curl(g, 0.5)).max() < 1e-4
    # the gradient's size in rad/Å: d/dx of sin(2πx/T) peaks at 2π/T per px = 2π/(T·0.5) per Å
    gx_true = np.cos(2 * np.pi * x / 9.3) * 2 * np.pi / 9.3 / 0.5 * np.cos(2 * np.pi * y / 6.1)
    gx_true += -0.3 * 2 * (x - 20) / 30 * np.exp(-((x - 20) ** 2 + (y - 15) ** 2) / 30) / 0.5
    err = (g[1] - gx_true)[8:-8, 8:-8]  # spectral derivative: Gibbs ripple from the mirror kink decays inwards
    assert np.sqrt(np.mean(err**2)) < 0.03 * np.abs(gx_true).max()
    # halving the pixel size doubles the gradient and integrating with it gives the same phase
    assert np.allclose(phase_gradient(ph, 0.25), 2 * g, atol=1e-5)


# ----------------------------------------------------------------------------- classical TIE

def test_tie_classical_recovers_thin_phase_magnitude(thin):
    tri, truth, dz = thin
    r = tie_classical(tri, defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV, pad=False, qc_per_a=0)
    assert r.phase.shape == truth.shape and r.flow.shape == (2,) + truth.shape
    assert xc(r.phase, truth) > 0.99
    assert 0.9 < _ratio(r.phase, truth) < 1.1
    assert psnr(r.phase, truth) > 30
    assert r.unit_of("flow") == "rad/Å" and r.pixel_unit == "Å"
    # the flow is the phase gradient in rad/Å
    assert np.allclose(r.flow, phase_gradient(r.phase, PX), atol=1e-4)
    assert r.metadata["method"] == "classical TIE" and r.metadata["defocus_step_nm"] == dz


def test_tie_classical_default_settings_on_crop(thin):
    """Mirror padding + 2/FOV Tikhonov (defaults, for cropped fields) still get the structure."""
    tri, truth, dz = thin
    r = tie_classical(tri, defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV)
    assert xc(r.phase, truth, crop=4) > 0.9
    assert 0.6 < _ratio(r.phase[4:-4, 4:-4], truth[4:-4, 4:-4]) < 1.2


@pytest.mark.parametrize("mutation", ["flipped_dz", "doubled_dz", "swapped_order"])
def test_tie_classical_mutations_fail(thin, mutation):
    tri, truth, dz = thin
    kwargs = dict(pixel_size_a=PX, energy_kev=KEV, pad=False, qc_per_a=0)
    if mutation == "flipped_dz":
        r = tie_classical(tri[::-1].copy(), defocus_step_nm=dz, **kwargs)  # (+dz, 0, -dz) read as (-dz, 0, +dz)
        assert xc(r.phase, truth) < -0.9
    elif mutation == "doubled_dz":
        r = tie_classical(tri, defocus_step_nm=2 * dz, **kwargs)
        assert _ratio(r.phase, truth) < 0.6
    else:
        r = tie_classical(tri[[1, 0, 2]].copy(), defocus_step_nm=dz, **kwargs)  # (0, -dz, +dz): half the dI/dz
        assert _ratio(r.phase, truth) < 0.7


def test_tie_uniform_i0_worse_with_amplitude_contrast():
    """With an absorbing (amplitude) pattern the in-focus image is far from uniform: the full
    ∇·(I0∇φ) solve must beat the constant-I0 one."""
    shape = (78, 78)
    ph = lattice_phase(shape, PX)
    y, x = np.mgrid[:78, :78]
    amp = 1.0 - 0.6 * ph / ph.max()  # absorbing columns: strong in-focus contrast on the lattice
    ph2 = ph
    tri = simulate_triplet(amp * np.exp(1j * ph2), defocus_step_nm=0.5, pixel_size_a=PX, energy_kev=KEV)
    truth = ph2 - ph2.mean()
    full = tie_classical(tri, defocus_step_nm=0.5, pixel_size_a=PX, energy_kev=KEV, pad=False, qc_per_a=0).phase
    uni = tie_classical(tri, defocus_step_nm=0.5, pixel_size_a=PX, energy_kev=KEV, pad=False, qc_per_a=0, uniform_i0=True).phase
    assert xc(full, truth) > 0.99
    assert psnr(full, truth) - psnr(uni, truth) > 6


# ----------------------------------------------------------------------------- gradient descent

def test_gradient_descent_recovers_thin_phase(thin):
    tri, truth, dz = thin
    r = tie_gradient_descent(tri, defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV, semiangle_mrad=ALPHA, steps=120,
                             device="cpu")
    assert xc(r.phase, truth, crop=4) > 0.97
    assert 0.85 < _ratio(r.phase[4:-4, 4:-4], truth[4:-4, 4:-4]) < 1.15
    assert r.metadata["method"] == "gradient descent" and r.metadata["steps"] == 120
    assert r.amplitude.shape == truth.shape
    # doubled dz must fail: the forward model then explains the data with a different phase
    bad = tie_gradient_descent(tri, defocus_step_nm=2 * dz, pixel_size_a=PX, energy_kev=KEV, semiangle_mrad=ALPHA,
                               steps=120, device="cpu")
    assert psnr(bad.phase, truth, 4) < psnr(r.phase, truth, 4) - 3


def test_gradient_descent_cancel_returns_best(thin):
    tri, truth, dz = thin
    token = CancelToken()
    seen = []

    def on_progress(p):
        seen.append(p.step)
        if p.step >= 11:
            token.cancel()

    job = tie_gradient_descent_job(tri, defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV, semiangle_mrad=ALPHA, steps=500,
                                   device="cpu")
    r = run_job(job, on_progress=on_progress, cancel=token)
    assert r.cancelled and max(seen) < 500
    assert r.phase.shape == truth.shape and np.isfinite(r.phase).all()


# ----------------------------------------------------------------------------- input

def test_prepare_triplet_dose_normalised_and_said(thin):
    tri, _, dz = thin
    scaled = tri * np.array([2.0, 1.0, 0.5])[:, None, None]
    t = prepare_triplet(scaled, defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV)
    assert t.info["dose_normalised"] and any("different mean doses" in m for m in t.messages)
    assert np.allclose(t.images.mean(axis=(1, 2)), 1.0, atol=1e-5)
    r1 = tie_classical(scaled, defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV, pad=False, qc_per_a=0)
    r2 = tie_classical(tri, defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV, pad=False, qc_per_a=0)
    assert np.allclose(r1.phase, r2.phase, atol=1e-4)
    assert r1.metadata["dose_normalised"] is True


def test_prepare_triplet_registration():
    """Registration needs in-focus contrast to register onto: absorbing columns give it."""
    from scipy.ndimage import fourier_shift

    ph = lattice_phase((78, 78), PX)
    dz = 1.0
    tri = simulate_triplet((1 - 0.5 * ph / ph.max()) * np.exp(1j * ph), defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV)
    truth = ph - ph.mean()

    shifted = tri.copy()
    shifted[0] = np.real(np.fft.ifft2(fourier_shift(np.fft.fft2(tri[0]), (1.3, -0.7))))
    shifted[2] = np.real(np.fft.ifft2(fourier_shift(np.fft.fft2(tri[2]), (-0.6, 0.9))))
    shifted = np.clip(shifted, 0, None)
    t = prepare_triplet(shifted, defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV, register=True)
    assert np.allclose(t.info["shifts_px"][0], (-1.3, 0.7), atol=0.15)
    assert np.allclose(t.info["shifts_px"][2], (0.6, -0.9), atol=0.15)
    good = tie_classical(shifted, defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV, register=True, pad=False, qc_per_a=0)
    bad = tie_classical(shifted, defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV, register=False, pad=False, qc_per_a=0)
    assert xc(good.phase, truth, 4) > 0.95 > xc(bad.phase, truth, 4)
    assert any("shifted" in m for m in bad.metadata["messages"])


def test_list_of_three_images_and_odd_sizes():
    ph = lattice_phase((39, 52), PX, a=2.6)  # 3 x 4 cells: periodic, odd x even
    tri = simulate_triplet(np.exp(1j * ph), defocus_step_nm=0.5, pixel_size_a=PX, energy_kev=KEV)
    r = tie_classical(list(tri), defocus_step_nm=0.5, pixel_size_a=PX, energy_kev=KEV, pad=False, qc_per_a=0)
    assert r.phase.shape == (39, 52)
    assert xc(r.phase, ph - ph.mean()) > 0.99


@pytest.mark.parametrize(
    "case, match",
    [
        ("mismatched", "same shape"),
        ("dz0", "must not be zero"),
        ("dzneg", "positive"),
        ("identical", "identical"),
        ("nan", "NaN"),
        ("negative", "negative"),
        ("small", "too small"),
        ("two", "exactly 3"),
        ("shape4", r"\(3, H, W\)"),
        ("complex", "complex"),
        ("empty", "empty"),
        ("zero", "zero mean|constant"),
        ("px", "pixel_size_a"),
    ],
)
def test_bad_input(thin, case, match):
    tri, _, dz = thin
    kw = dict(defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV)
    data = tri
    if case == "mismatched":
        data = [tri[0], tri[1], tri[2][:-3]]
    elif case == "dz0":
        kw["defocus_step_nm"] = 0
    elif case == "dzneg":
        kw["defocus_step_nm"] = -1
    elif case == "identical":
        data = np.stack([tri[1]] * 3)
    elif case == "nan":
        data = tri.copy()
        data[0, 3, 3] = np.nan
    elif case == "negative":
        data = tri - 2.0
    elif case == "small":
        data = tri[:, :8, :8]
    elif case == "two":
        data = [tri[0], tri[2]]
    elif case == "shape4":
        data = np.stack([tri] * 2)
    elif case == "complex":
        data = tri.astype(np.complex64)
    elif case == "empty":
        data = np.zeros((3, 0, 0))
    elif case == "zero":
        data = np.zeros_like(tri)
    elif case == "px":
        kw["pixel_size_a"] = float("nan")
    for fn in (tie_classical, tie_gradient_descent):
        with pytest.raises(InputError, match=match):
            fn(data, **kw)


def test_jobs_yield_progress(thin):
    tri, _, dz = thin
    steps = []
    run_job(tie_classical_job(tri, defocus_step_nm=dz, pixel_size_a=PX, energy_kev=KEV), on_progress=lambda p: steps.append(p))
    assert steps and steps[-1].step == steps[-1].total
    assert math.isclose(steps[-1].fraction, 1.0)


# ----------------------------------------------------------------------------- reciprocity (4D-STEM input)

def test_reciprocity_virtual_bf_triplet_equals_fresnel_triplet():
    """Three 4D-STEM scans at probe defocus (−dz, 0, +dz) reduced by a small axial BF detector give
    the Fresnel triplet through an aperture of the probe's semi-angle (same sign, same contrast);
    the 5-D input path of the triplet functions uses exactly that."""
    from napari_phase.physics import multislice as ms
    from napari_phase.stem.detectors import virtual_image

    kev, mrad_px, alpha, dz = 300.0, 1.0, 20.0, 3.0
    dx = ms.wavelength_a(kev) / (mrad_px * 1e-3) / 64  # potential sampling: the window is 64 px
    ph = lattice_phase((112, 112), dx, a=112 * dx / 6, amp=0.5, sigma=0.5)
    scans = []
    for d in (-dz, 0.0, dz):
        sim = ms.simulate_4dstem((ph / ms.sigma(kev)).astype(np.float32), scan_step_a=dx, scan_gpts=(32, 32), energy_kev=kev,
                                 semiangle_mrad=alpha, detector_mrad_per_px=mrad_px, detector_gpts=48, defocus_a=10 * d,
                                 mode="phase_object", potential_sampling_a=dx, device="cpu")
        scans.append(np.asarray(sim.data))
    oy, ox = (int(round(v / dx)) for v in sim.metadata["scan_origin_a"])
    fresnel = simulate_triplet(np.exp(1j * ph), defocus_step_nm=dz, pixel_size_a=dx, energy_kev=kev, semiangle_mrad=alpha)
    fresnel = fresnel[:, oy:oy + 32, ox:ox + 32]
    bf = [np.asarray(virtual_image(s, 0.0, 2.0, detector_mrad_per_px=mrad_px)) for s in scans]
    for k in (0, 2):
        assert xc(bf[k], fresnel[k]) > 0.98
        contrast_bf = bf[k].std() / bf[k].mean()
        contrast_fr = fresnel[k].std() / fresnel[k].mean()
        assert abs(contrast_bf / contrast_fr - 1) < 0.1
    assert xc(bf[0], fresnel[2]) < -0.9  # a flipped defocus sign would show
    # the 5-D path (3, Sy, Sx, Ky, Kx) → virtual BF → classical TIE equals TIE on the Fresnel triplet
    kw = dict(defocus_step_nm=dz, pixel_size_a=dx, energy_kev=kev, pad=False, qc_per_a=0)
    r4 = tie_classical(np.stack(scans), detector_mrad=2.0, detector_mrad_per_px=mrad_px, **kw)
    rf = tie_classical(fresnel, **kw)
    assert xc(r4.phase, rf.phase, 2) > 0.95
    assert "virtual axial bright field" in r4.metadata["input"]
    with pytest.raises(InputError, match="detector"):
        tie_classical(np.stack(scans), **kw)


# ----------------------------------------------------------------------------- command line

def test_cli_flowtie_tie_and_bad_input(thin, tmp_path, capsys):
    from napari_phase.cli import main

    tri, truth, dz = thin
    np.save(tmp_path / "tri.npy", tri)
    out = tmp_path / "tie.h5"
    rc = main(["flowtie", str(tmp_path / "tri.npy"), "--defocus-step-nm", str(dz), "--pixel-size-a", str(PX), "--energy-kev",
               str(KEV), "--method", "tie", "--quiet", "--out", str(out)])
    assert rc == 0 and out.exists()
    import h5py

    with h5py.File(out, "r") as f:
        names = []
        f.visit(names.append)
        key = next(n for n in names if n.endswith("phase") and isinstance(f[n], h5py.Dataset))
        phase = np.asarray(f[key])
    assert phase.shape == truth.shape and xc(phase, truth, 4) > 0.9
    np.save(tmp_path / "same.npy", np.stack([tri[1]] * 3))
    rc = main(["flowtie", str(tmp_path / "same.npy"), "--defocus-step-nm", "1", "--pixel-size-a", "0.2", "--energy-kev", "300",
               "--method", "tie", "--quiet", "--out", str(tmp_path / "x.h5")])
    assert rc == 2 and "identical" in capsys.readouterr().err
