"""4D-STEM basics against ground truth: disc, calibration, virtual detectors, CoM/iCoM, rotation guess, SSB."""

from __future__ import annotations

import math

import numpy as np
import pytest

from job_helpers import run_cancelling_after
from napari_phase import stem
from napari_phase.jobs import InputError, JobCancelled, Progress, run_job
from napari_phase.physics.metrics import xc
from napari_phase.physics.optics import electron_wavelength_a
from test_stem_sim import atoms_phase, blurred_truth, rotate_detector, simulate, smooth_phase

M, DX, STEP = 64, 0.2, 2  # 64² object px of 0.2 Å, scan step 0.4 Å -> 32x32 scan, 64² detector


@pytest.fixture(scope="module")
def weak():
    phi = smooth_phase(M, DX, qmax=1.1, rms=0.05, seed=1)
    data, p, det, step_a = simulate(phi, DX, STEP)
    return phi, data, p, det, step_a


@pytest.fixture(scope="module")
def atoms():
    phi = atoms_phase(M, DX)
    data, p, det, step_a = simulate(phi, DX, STEP)
    return phi, data, p, det, step_a


def _std_ratio(a, b):
    return float(np.std(a - a.mean()) / np.std(b - b.mean()))


# ----------------------------------------------------------------------------- calibration, disc


def test_disc_detection_subpixel_and_detector_calibration():
    n, cy, cx, r = 64, 30.37, 33.71, 11.4
    sub = 8  # supersampled hard disc -> exact partial-pixel coverage
    yy, xx = np.indices((n * sub, n * sub)) / sub + (0.5 / sub - 0.5)
    disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2).reshape(n, sub, n, sub).mean(axis=(1, 3))
    pattern = 1000 * disc + 20
    fit = stem.detect_disc(pattern)
    assert fit.center_y_px == pytest.approx(cy, abs=0.05)
    assert fit.center_x_px == pytest.approx(cx, abs=0.05)
    assert fit.radius_px == pytest.approx(r, abs=0.05)
    assert fit.detector_mrad_per_px(20.0) == pytest.approx(20.0 / r, rel=0.01)
    assert fit.semiangle_mrad(20.0 / r) == pytest.approx(20.0, rel=0.01)
    noisy = np.random.default_rng(0).poisson(pattern).astype(np.float32)
    fit2 = stem.detect_disc(noisy)
    assert fit2.radius_px == pytest.approx(r, abs=0.2) and fit2.center_x_px == pytest.approx(cx, abs=0.2)


def test_disc_from_simulated_mean_pattern_calibrates_the_detector(weak):
    _, data, _, det, _ = weak
    fit = stem.detect_disc(stem.mean_pattern(data))
    assert fit.center_px == pytest.approx((M // 2, M // 2), abs=0.3)
    assert fit.detector_mrad_per_px(20.0) == pytest.approx(det, rel=0.03)


def test_disc_bad_inputs():
    with pytest.raises(InputError, match="flat"):
        stem.detect_disc(np.ones((32, 32)))
    with pytest.raises(InputError, match="fills the detector|larger than the detector"):
        stem.detect_disc(np.pad(np.ones((30, 30)), 1))
    yy, xx = np.indices((32, 32))
    with pytest.raises(InputError, match="cut by the"):
        stem.detect_disc(((yy - 3) ** 2 + (xx - 16) ** 2 < 36).astype(float))


def test_calibration_from_metadata_and_validation():
    lam = electron_wavelength_a(300)
    cal = stem.Calibration.from_metadata({"voltage_kv": 300, "scan_step_a": 0.4, "detector_inv_a_per_px": 0.05,
                                          "semiangle_mrad": 20, "defocus_nm": -5})
    assert cal.detector_mrad_per_px == pytest.approx(0.05 * lam * 1e3)
    assert cal.defocus_a == pytest.approx(-50)
    assert cal.detector_inv_a_per_px == pytest.approx(0.05)
    assert stem.Calibration.from_metadata({"detector_inv_nm_per_px": 0.5, "voltage_kv": 300}).detector_inv_a_per_px == pytest.approx(0.05)
    cal.validate((64, 64), needs=("energy_kev", "semiangle_mrad", "scan_step_a", "detector_mrad_per_px"))
    with pytest.raises(InputError, match="scan step"):
        stem.Calibration(scan_step_a=0.0).validate()
    with pytest.raises(InputError, match="larger than the detector"):
        stem.Calibration(semiangle_mrad=30, detector_mrad_per_px=0.5, energy_kev=300).validate((64, 64))
    with pytest.raises(InputError, match=r"missing calibration: .*scan step.*detector sampling"):
        stem.Calibration(energy_kev=300).require("scan_step_a", "detector_mrad_per_px")
    with pytest.raises(InputError, match="kV"):
        stem.Calibration(energy_kev=300000).validate()


def test_virtual_detectors(weak):
    _, data, _, det, _ = weak
    bf = stem.bright_field(data, semiangle_mrad=20, detector_mrad_per_px=det)
    total = data.sum(axis=(-2, -1))
    # a weak phase object scatters little outside the disc: BF holds nearly all counts
    assert bf.shape == data.shape[:2] and np.all(bf <= total * (1 + 1e-5)) and bf.mean() > 0.9 * total.mean()
    adf = stem.annular_dark_field(data, semiangle_mrad=20, detector_mrad_per_px=det)
    np.testing.assert_allclose(adf + stem.virtual_image(data, 0, 22, detector_mrad_per_px=det), total, rtol=1e-4)
    mask = stem.annulus_mask((64, 64), 10, 20, detector_mrad_per_px=det)
    img = stem.virtual_image(data, 10, 20, detector_mrad_per_px=det)
    np.testing.assert_allclose(img[3, 5], data[3, 5][mask].sum(), rtol=1e-5)
    with pytest.raises(InputError, match="outer angle"):
        stem.virtual_image(data, 20, 10, detector_mrad_per_px=det)
    # the annulus in mrad: 0–10 px worth of angle holds ~π·10² pixels, 5–10 px ~π(10² − 5²)
    disc = stem.annulus_mask((64, 64), 0, 10 * det, detector_mrad_per_px=det)
    ring = stem.annulus_mask((64, 64), 5 * det, 10 * det, detector_mrad_per_px=det)
    assert disc.sum() == pytest.approx(math.pi * 100, rel=0.05) and ring.sum() == pytest.approx(math.pi * 75, rel=0.06)
    assert disc[32, 32] and disc[32, 41] and not disc[32, 43]


# ----------------------------------------------------------------------------- CoM / iCoM


def test_com_maps_units(atoms):
    phi, data, p, det, step_a = atoms
    g = stem.com_maps(data)
    lam = electron_wavelength_a(300)
    my, mx = g.in_mrad(det)
    ky, kx = g.in_inv_a(det * 1e-3 / lam)
    np.testing.assert_allclose(mx, kx * lam * 1e3, rtol=1e-6)
    # CoM theorem: 2π <k_x> = blurred ∂φ/∂x
    blur = blurred_truth(phi, p, 1)
    q = np.fft.fftfreq(M, DX)[None, :]
    gx = np.fft.ifft2(2j * math.pi * q * np.fft.fft2(blur)).real[::STEP, ::STEP]
    assert np.std(2 * math.pi * kx) == pytest.approx(np.std(gx), rel=0.02)


def test_icom_magnitude_against_truth(atoms):
    phi, data, p, det, step_a = atoms
    res = stem.icom(data, energy_kev=300, scan_step_a=step_a, detector_mrad_per_px=det)
    truth = blurred_truth(phi, p, STEP)
    assert res.phase.shape == (32, 32) and res.phase.dtype == np.float32
    assert xc(res.phase, truth) > 0.999
    assert _std_ratio(res.phase, truth) == pytest.approx(1.0, abs=0.03)  # doubled phase / halved step fail here
    assert res.pixel_size_a == pytest.approx(step_a) and res.pixel_unit == "Å"
    assert res.metadata["method"] == "icom" and res.metadata["origin"] == "first scan position"
    # the position of the atoms: phase maxima where the truth has them (no shift of the origin)
    assert np.unravel_index(np.argmax(res.phase), truth.shape) == np.unravel_index(np.argmax(truth), truth.shape)
    assert res.unit_of("com_x") == "mrad"


def test_icom_wrong_calibration_changes_the_magnitude(atoms):
    phi, data, p, det, step_a = atoms
    truth = blurred_truth(phi, p, STEP)
    half_step = stem.icom(data, energy_kev=300, scan_step_a=step_a / 2, detector_mrad_per_px=det)
    assert _std_ratio(half_step.phase, truth) == pytest.approx(0.5, abs=0.03)
    flipped = stem.icom(data, energy_kev=300, scan_step_a=step_a, detector_mrad_per_px=det, rotation_deg=180)
    assert xc(flipped.phase, truth) < -0.99


def test_icom_non_periodic_window(atoms):
    """A window cut from the scan (non-periodic edges): mirror extension keeps the accuracy."""
    phi, data, p, det, step_a = atoms
    truth = blurred_truth(phi, p, STEP)[3:25, 5:29]
    res = stem.icom(data[3:25, 5:29], energy_kev=300, scan_step_a=step_a, detector_mrad_per_px=det)
    assert xc(res.phase, truth) > 0.98
    assert _std_ratio(res.phase, truth) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("rotation_deg, transpose", [(30.0, False), (-100.0, True), (170.0, False)])
def test_rotation_guess_recovers_known_rotation(atoms, rotation_deg, transpose):
    phi, data, p, det, step_a = atoms
    rotated = rotate_detector(data, rotation_deg, transpose)
    g = stem.com_maps(rotated)
    guess = stem.guess_rotation(g.com_y_px, g.com_x_px, scan_step_a=step_a)
    assert guess["transpose"] is transpose
    assert (guess["rotation_deg"] - rotation_deg + 180) % 360 - 180 == pytest.approx(0, abs=1.0)
    truth = blurred_truth(phi, p, STEP)
    res = stem.icom(rotated, energy_kev=300, scan_step_a=step_a, detector_mrad_per_px=det, rotation_deg=None)
    assert xc(res.phase, truth) > 0.99
    # the guess inside icom() is made on the CoM less the fitted descan (here a slope of 1.5e-4 px per row
    # above the noise): the same angle to 0.01°, not to the last digit
    assert res.metadata["rotation_guess"]["rotation_deg"] == pytest.approx(guess["rotation_deg"], abs=0.01)
    wrong = stem.icom(rotated, energy_kev=300, scan_step_a=step_a, detector_mrad_per_px=det, rotation_deg=0, transpose=False)
    # the Fourier integration keeps only the curl-free part: a wrong angle shrinks the phase by cos Δθ
    assert xc(wrong.phase, truth) < 0.9 or abs(_std_ratio(wrong.phase, truth) - 1) > 0.1
    assert _std_ratio(res.phase, truth) == pytest.approx(1.0, abs=0.03)


def test_icom_job_progress_partial_and_cancel(atoms):
    phi, data, p, det, step_a = atoms
    job = stem.icom_job(data, energy_kev=300, scan_step_a=step_a, detector_mrad_per_px=det, block_rows=4)
    items = []
    res = run_job(job, on_progress=items.append)
    assert len(items) == 9 and all(isinstance(i, Progress) for i in items)
    partials = [i.partial for i in items if i.partial is not None]
    assert partials and partials[0].phase.shape[0] == 4 and partials[-1].phase.shape[0] == 32
    seen = []
    job = stem.icom_job(data, energy_kev=300, scan_step_a=step_a, detector_mrad_per_px=det, block_rows=4)
    kept = run_cancelling_after(job, 2, items=seen)
    assert len(seen) == 2  # the job ended right at the cancel
    assert kept.cancelled and kept.metadata["rows_done"] == 8 and kept.phase.shape == (8, 32)
    assert res.phase.shape == (32, 32)


def test_icom_accepts_memmap_and_dask(atoms, tmp_path):
    da = pytest.importorskip("dask.array")
    phi, data, p, det, step_a = atoms
    ref = stem.icom(data, energy_kev=300, scan_step_a=step_a, detector_mrad_per_px=det).phase
    mm = np.lib.format.open_memmap(tmp_path / "d.npy", mode="w+", dtype=np.uint16, shape=data.shape)
    mm[:] = np.round(data / data.max() * 60000)
    mm.flush()
    mm = np.load(tmp_path / "d.npy", mmap_mode="r")
    r1 = stem.icom(mm, energy_kev=300, scan_step_a=step_a, detector_mrad_per_px=det, block_rows=3).phase
    r2 = stem.icom(da.from_array(data, chunks=(5, 32, 64, 64)), energy_kev=300, scan_step_a=step_a,
                   detector_mrad_per_px=det).phase
    assert xc(r1, ref) > 0.999
    np.testing.assert_allclose(r2, ref, atol=1e-5)


# ----------------------------------------------------------------------------- SSB


def test_ssb_weak_phase_object_magnitude(weak):
    phi, data, p, det, step_a = weak
    res = stem.ssb(data, energy_kev=300, semiangle_mrad=20, scan_step_a=step_a, detector_mrad_per_px=det)
    truth = phi[::STEP, ::STEP]  # band-limited below both the scan Nyquist and 2α
    assert xc(res.phase, truth) > 0.995
    assert _std_ratio(res.phase, truth) == pytest.approx(1.0, abs=0.03)
    assert res.pixel_size_a == pytest.approx(step_a) and res.metadata["method"] == "ssb"
    # the wrong semi-angle (mis-placed trotters) or detector sampling degrades it
    bad = stem.ssb(data, energy_kev=300, semiangle_mrad=14, scan_step_a=step_a, detector_mrad_per_px=det)
    assert xc(bad.phase, truth) < 0.95


def test_ssb_beats_icom_on_fine_detail(atoms):
    """SSB transfers up to 2α flat; iCoM blurs by the probe: against the unblurred phase SSB is closer."""
    phi, data, p, det, step_a = atoms
    small = 0.1 * phi  # weak-phase regime
    d2, p2, det, step_a = simulate(small, DX, STEP)
    s = stem.ssb(d2, energy_kev=300, semiangle_mrad=20, scan_step_a=step_a, detector_mrad_per_px=det)
    i = stem.icom(d2, energy_kev=300, scan_step_a=step_a, detector_mrad_per_px=det)
    truth = small[::STEP, ::STEP]
    assert xc(s.phase, truth) > xc(i.phase, truth)
    assert _std_ratio(s.phase, truth) == pytest.approx(1.0, abs=0.1)


def test_ssb_rotated_detector_and_defocus(atoms):
    phi = 0.1 * atoms[0]
    data, p, det, step_a = simulate(phi, DX, STEP, defocus_a=-100.0)
    rotated = rotate_detector(data, 25.0, True)
    truth = phi[::STEP, ::STEP]
    res = stem.ssb(rotated, energy_kev=300, semiangle_mrad=20, scan_step_a=step_a, detector_mrad_per_px=det,
                   rotation_deg=25.0, transpose=True, defocus_a=-100.0)
    assert xc(res.phase, truth) > 0.99
    assert _std_ratio(res.phase, truth) == pytest.approx(1.0, abs=0.1)  # 0.94: the detector rotation interpolates
    no_abr = stem.ssb(rotated, energy_kev=300, semiangle_mrad=20, scan_step_a=step_a, detector_mrad_per_px=det,
                      rotation_deg=25.0, transpose=True)
    assert xc(no_abr.phase, truth) < 0.5
    wrong_sign = stem.ssb(rotated, energy_kev=300, semiangle_mrad=20, scan_step_a=step_a, detector_mrad_per_px=det,
                          rotation_deg=25.0, transpose=True, defocus_a=+100.0)
    assert xc(wrong_sign.phase, truth) < 0.5


def test_ssb_accumulation_equals_one_pass_and_cancel_keeps_partial(weak):
    phi, data, p, det, step_a = weak
    kw = dict(energy_kev=300, semiangle_mrad=20, scan_step_a=step_a, detector_mrad_per_px=det)
    whole = stem.ssb(data, **kw, block_rows=32, mode="accumulate").phase
    blocks = stem.ssb(data, **kw, block_rows=3, mode="accumulate").phase
    np.testing.assert_allclose(blocks, whole, atol=1e-5 * np.abs(whole).max())
    fft = stem.ssb(data, **kw, mode="fft")
    assert fft.metadata["mode"] == "fft"
    np.testing.assert_allclose(fft.phase, whole, atol=1e-4 * np.abs(whole).max())
    seen = []
    kept = run_cancelling_after(stem.ssb_job(data, **kw, block_rows=4, descan="off"), 1, items=seen)
    assert len(seen) == 1  # the job ended right at the cancel
    assert kept.cancelled and kept.metadata["rows_done"] == 4
    # with the descan pass first (the default), a cancel there has no rows to keep: it cancels
    with pytest.raises(JobCancelled):
        run_cancelling_after(stem.ssb_job(data, **kw, block_rows=4), 1)
    seen = []
    kept = run_cancelling_after(stem.ssb_job(data, **kw, block_rows=4), 9, items=seen)  # 8 descan blocks, then SSB
    assert kept.cancelled and kept.metadata["rows_done"] == 4 and kept.metadata["descan"]["model"] == "plane"


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("fn", ["icom", "ssb"])
def test_bad_input_clear_errors(fn, weak):
    _, data, _, det, step_a = weak
    kw = dict(energy_kev=300, scan_step_a=step_a, detector_mrad_per_px=det)
    if fn == "ssb":
        kw["semiangle_mrad"] = 20
    f = getattr(stem, fn)
    cases = [
        (data[0], "must be 4-D"),
        (data[:2], "at least 3 rows"),
        (data[:, :, :, :40], "not square"),
        (np.zeros((4, 4, 64, 64), np.float32), "zero"),
        (np.where(np.arange(64)[None, None, None, :] == 3, np.nan, data).astype(np.float32), "NaN"),
        (data.astype(np.complex64), "complex"),
        (np.zeros((0, 4, 16, 16)), "empty"),
    ]
    for bad, msg in cases:
        with pytest.raises(InputError, match=msg):
            f(bad, **kw)
    with pytest.raises(InputError, match="scan step must be positive"):
        f(data, **{**kw, "scan_step_a": 0.0})
    with pytest.raises(InputError, match="missing calibration"):
        f(data, **{**kw, "detector_mrad_per_px": None})
    if fn == "ssb":
        with pytest.raises(InputError, match="larger than the detector"):
            f(data, **{**kw, "semiangle_mrad": 60.0})


# ----------------------------------------------------------------------------- benchmark helpers


def test_bench_helpers_frc_and_truth_sampling():
    from napari_phase.bench.stem import frc_cutoff, truth_on_grid

    rng = np.random.default_rng(0)
    phi = smooth_phase(64, 0.2, qmax=1.5, rms=1.0, seed=3)
    # identical maps correlate up to the band limit; independent noise does not at all
    assert frc_cutoff(phi, phi, 0.2) > 1.3
    assert frc_cutoff(rng.normal(size=(64, 64)), rng.normal(size=(64, 64)), 0.2) < 0.3
    # a map low-passed at 0.8 1/Å loses agreement beyond it
    k = np.fft.fftfreq(64, 0.2)
    low = np.fft.ifft2(np.fft.fft2(phi) * (np.hypot(k[:, None], k[None, :]) < 0.8)).real
    assert 0.5 < frc_cutoff(low, phi, 0.2) < 0.95
    # sampling the truth at twice the pixel keeps the origin and picks every second value
    np.testing.assert_allclose(truth_on_grid(phi, 0.2, (32, 32), 0.4), phi[::2, ::2], atol=1e-12)


# ----------------------------------------------------------------------------- non-square scan steps


@pytest.fixture(scope="module")
def fine_weak():
    """A weak phase object scanned at 0.2 Å in x and (every second row) 0.4 Å in y."""
    phi = smooth_phase(M, DX, qmax=1.1, rms=0.05, seed=1)
    data, p, det, step_a = simulate(phi, DX, 1)
    return phi, data[::2], p, det, step_a


def test_icom_and_ssb_handle_non_square_scan_steps(fine_weak):
    from napari_phase.stem._grid import to_square

    phi, data, p, det, step_a = fine_weak
    assert data.shape[:2] == (32, 64) and step_a == pytest.approx(DX)
    kw = dict(energy_kev=300, scan_step_a=(2 * step_a, step_a), detector_mrad_per_px=det)
    truth = phi[:63, :64]  # square pixels of min(step) = 0.2 Å over the scanned extent (31·0.4 Å = 62 px)
    s = stem.ssb(data, semiangle_mrad=20, **kw)
    assert s.phase.shape == (63, 64) and s.pixel_size_a == pytest.approx(step_a)
    assert s.metadata["scan_step_y_a"] == pytest.approx(2 * step_a) and s.metadata["scan_step_a"] == pytest.approx(step_a)
    assert xc(s.phase, truth, 2) > 0.99
    assert _std_ratio(s.phase[2:-2, 2:-2], truth[2:-2, 2:-2]) == pytest.approx(1.0, abs=0.05)
    blurred = np.fft.ifft2(np.fft.fft2(phi) * np.conj(np.fft.fft2(np.abs(p) ** 2))).real[:63, :64]
    i = stem.icom(data, **kw)
    assert i.phase.shape == (63, 64) and i.arrays["com_x"].shape == (63, 64)
    assert xc(i.phase, blurred, 2) > 0.99
    assert _std_ratio(i.phase[2:-2, 2:-2], blurred[2:-2, 2:-2]) == pytest.approx(1.0, abs=0.05)
    # the steps swapped (y and x mixed up) give a wrong map: the test pins which step is which
    swapped = stem.ssb(data, semiangle_mrad=20, energy_kev=300, scan_step_a=(step_a, 2 * step_a), detector_mrad_per_px=det)
    assert swapped.phase.shape != truth.shape or xc(swapped.phase, truth, 2) < 0.8
    # square steps: nothing is resampled
    flat = np.arange(12.0).reshape(3, 4)
    out, px = to_square(flat, 0.3, 0.3)
    assert out is flat and px == 0.3
    out, px = to_square(flat, 0.6, 0.3)  # y twice coarser: every second row is interpolated
    assert px == 0.3 and out.shape == (5, 4)
    np.testing.assert_allclose(out[::2], flat, atol=1e-9)
