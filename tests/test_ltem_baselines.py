"""LTEM simulation and the SITIE / TIE baselines: sign, scale (B·t), robustness, jobs."""

import numpy as np
import pytest

from job_helpers import run_cancelling_after
from napari_phase import __version__
from napari_phase.jobs import InputError, JobCancelled, Progress, run_job
from napari_phase.ltem.forward import Microscope, simulate_image
from napari_phase.ltem.simulate import (
    add_noise,
    bubble_lattice,
    contaminant_wave,
    contaminants,
    magnetic_phase,
    simulate,
    skyrmion_lattice,
    stripe_domains,
)
from napari_phase.ltem.sitie import sitie, sitie_job, sitie_phase
from napari_phase.ltem.tie import tie, tie_job, tie_phase
from napari_phase.physics.metrics import pearson_accuracy
from napari_phase.result import PhaseResult

HBAR_OVER_E = 658.2119569  # T·nm², written out on purpose
PX = 5.0


@pytest.fixture(scope="module")
def sky():
    """Bloch skyrmions, 96x128 px of 5 nm, the truth and images at ±0.1 mm."""
    return {df: simulate("skyrmions", (96, 128), defocus_nm=df, seed=0) for df in (-1e5, 1e5)}


# --------------------------------------------------------------------------- SITIE: sign and scale


@pytest.mark.parametrize("df", [-1e5, 1e5])
def test_sitie_round_trip_sign(sky, df):
    s = sky[df]
    phase = sitie_phase(s.image, pixel_size_nm=PX, defocus_nm=df, qc_per_nm=0)
    acc = pearson_accuracy(phase, s.phase_m, crop=4)
    assert acc >= 0.99, acc
    assert np.std(phase) / np.std(s.phase_m) == pytest.approx(1.0, abs=0.05)
    # the wrong sign of defocus gives the negated phase
    flipped = sitie_phase(s.image, pixel_size_nm=PX, defocus_nm=-df, qc_per_nm=0)
    assert pearson_accuracy(flipped, s.phase_m, crop=4) <= -0.99


def test_sitie_weak_phase_is_near_exact():
    y, x = np.mgrid[0:64, 0:80]
    phi = np.exp(-((x - 40) ** 2 + (y - 30) ** 2) / (2 * 7.0**2))
    mic = Microscope(defocus_nm=-1e4, cs_mm=0, divergence_mrad=0, defocus_spread_nm=0)
    img = simulate_image(phi, pixel_size_nm=PX, microscope=mic, pad_px=32)
    rec = sitie_phase(img, pixel_size_nm=PX, defocus_nm=-1e4, qc_per_nm=0)
    assert pearson_accuracy(rec, phi) > 0.9999
    assert np.ptp(rec) == pytest.approx(np.ptp(phi), rel=0.01)


def test_sitie_recovers_uniform_induction():
    """In-plane stripe domains magnetised ±y with B0·t = 1 T × 50 nm: inside the domains
    |By·t| = 50 T·nm exactly. SITIE at small defocus must read it back within 2 % — a factor-of-2
    slip (2π/φ0 instead of e/ħ) anywhere in phase or induction fails this."""
    s = simulate(
        "stripes",
        (48, 160),
        defocus_nm=-2e4,
        field_margin_px=0,  # 160 px = 2 periods: periodic, zero net moment
        saturation_induction_t=1.0,
        thickness_nm=50.0,
        texture_params=dict(kind="inplane", period_nm=400.0, wall_width_nm=10.0),
    )
    mx, my, _ = s.magnetization
    inside = np.abs(my) > 0.999
    # the ground truth itself: Mansuripur with e/ħ
    np.testing.assert_allclose(np.abs(s.by[inside]), 50.0, rtol=2e-3)
    # triangle-wave phase: slope (e/ħ) B0 t across a 200 nm domain, less w·ln 2 for each of its
    # two half-walls (∫(1 − tanh(u/w)) du = w ln 2)
    assert np.ptp(s.phase_m) == pytest.approx(50.0 / HBAR_OVER_E * (200.0 - 2 * 10.0 * np.log(2)), rel=2e-3)

    r = sitie(s.image, pixel_size_nm=PX, defocus_nm=-2e4, qc_per_nm=0)
    by_signed = r.by[inside] * np.sign(my[inside])
    assert np.mean(by_signed) == pytest.approx(50.0, rel=0.02)
    assert np.percentile(np.abs(by_signed - 50.0), 95) < 1.0  # uniform, not just right on average
    assert np.abs(r.bx[inside]).max() < 0.5
    assert r.unit_of("by") == "T·nm" and r.unit_of("phase") == "rad"


def test_sitie_default_regularisation_helps_with_noise():
    s = simulate("skyrmions", (96, 96), defocus_nm=-1e6, noise=0.5, seed=3)
    plain = sitie_phase(s.image, pixel_size_nm=PX, defocus_nm=-1e6, qc_per_nm=0)
    default = sitie_phase(s.image, pixel_size_nm=PX, defocus_nm=-1e6)
    a_plain = pearson_accuracy(plain, s.phase_m, crop=4)
    a_default = pearson_accuracy(default, s.phase_m, crop=4)
    assert a_default > 0.85 and a_default > a_plain + 0.05, (a_default, a_plain)


# --------------------------------------------------------------------------- TIE


@pytest.fixture(scope="module")
def triplet():
    dz = 2e4
    samples = [simulate("bubbles", (80, 112), defocus_nm=d, n_contaminants=4, seed=5) for d in (-dz, 0.0, dz)]
    return dz, samples


def test_tie_round_trip(triplet):
    dz, samples = triplet
    stack = np.stack([s.image for s in samples])
    r = tie(stack, pixel_size_nm=PX, defocus_step_nm=dz, qc_per_nm=0)
    truth = samples[0].phase  # φm + φe: TIE recovers the total phase
    acc = pearson_accuracy(r.phase, truth, crop=4)
    assert acc >= 0.98, acc
    # with contaminants (non-uniform I0) the full TIE beats SITIE, which assumes uniform amplitude
    acc_sitie = pearson_accuracy(
        sitie_phase(samples[2].image, pixel_size_nm=PX, defocus_nm=dz, qc_per_nm=0), truth, crop=4
    )
    assert acc > acc_sitie + 0.1, (acc, acc_sitie)
    assert r.metadata["method"] == "TIE" and r.phase.shape == (80, 112)
    # list input and swapped order (over, in, under) gives the negated phase
    r2 = tie_phase(list(stack[::-1]), pixel_size_nm=PX, defocus_step_nm=dz, qc_per_nm=0)
    assert pearson_accuracy(r2, truth, crop=4) <= -0.98


def test_tie_pure_phase_matches_sitie_limit():
    s = [simulate("skyrmions", (64, 64), defocus_nm=d, seed=2) for d in (-1e4, 0.0, 1e4)]
    r = tie_phase(np.stack([x.image for x in s]), pixel_size_nm=PX, defocus_step_nm=1e4, qc_per_nm=0)
    assert pearson_accuracy(r, s[0].phase_m, crop=3) > 0.999


# --------------------------------------------------------------------------- results, jobs, series


def test_sitie_result_metadata(sky):
    s = sky[-1e5]
    r = sitie(s.image, pixel_size_nm=PX, defocus_nm=-1e5)
    assert isinstance(r, PhaseResult)
    assert set(r.arrays) == {"phase", "bx", "by", "residual"}  # residual: the fit check (issue 17)
    assert r.pixel_size == PX and r.pixel_unit == "nm"
    md = r.metadata
    assert md["method"] == "SITIE" and md["version"] == __version__ and md["device"] == "cpu"
    assert md["runtime_s"] >= 0
    assert md["fit_check"]["explains_image"] is True and md["fit_warning"] is None
    p = md["parameters"]
    assert p["defocus_nm"] == -1e5 and p["voltage_kv"] == 200.0 and p["pad"] is True
    assert p["qc_per_nm"] == pytest.approx(2.0 / (128 * PX))  # the documented default
    r.metadata_json()  # serialisable


def test_sitie_time_series_and_cancel(sky):
    frames = np.stack([sky[-1e5].image, sky[-1e5].image * 1.1, sky[-1e5].image ** 1.05])
    items = []
    r = run_job(sitie_job(frames, pixel_size_nm=PX, defocus_nm=-1e5), on_progress=items.append)
    assert r.phase.shape == frames.shape and r.bx.shape == frames.shape
    assert [p.step for p in items] == [1, 2, 3] and all(isinstance(p, Progress) for p in items)
    assert items[0].partial.phase.shape == (1, 96, 128)
    single = sitie_phase(frames[1], pixel_size_nm=PX, defocus_nm=-1e5)
    np.testing.assert_allclose(r.phase[1], single, atol=1e-5)
    np.testing.assert_allclose(sitie_phase(frames, pixel_size_nm=PX, defocus_nm=-1e5), r.phase, atol=1e-6)

    r = run_cancelling_after(sitie_job(frames, pixel_size_nm=PX, defocus_nm=-1e5), 1)
    assert r.cancelled and r.phase.shape == (1, 96, 128) and r.metadata["frames_done"] == 1

    job = sitie_job(frames, pixel_size_nm=PX, defocus_nm=-1e5)
    with pytest.raises(JobCancelled):
        job.throw(JobCancelled("before the first frame"))


def test_single_image_job_progress(sky):
    items = []
    r = run_job(sitie_job(sky[1e5].image, pixel_size_nm=PX, defocus_nm=1e5), on_progress=items.append)
    assert 1 <= len(items) <= 2 and items[-1].fraction == 1.0
    assert r.phase.shape == (96, 128)
    items = []
    stack = np.stack([sky[-1e5].image, sky[1e5].image * 0 + sky[-1e5].image.mean(), sky[1e5].image])
    r = run_job(tie_job(stack, pixel_size_nm=PX, defocus_step_nm=1e5), on_progress=items.append)
    assert items and r.metadata["method"] == "TIE" and r.metadata["parameters"]["defocus_step_nm"] == 1e5


@pytest.mark.parametrize("shape", [(37, 53), (64, 17), (45, 45)])
def test_odd_and_non_square(shape):
    s = simulate("skyrmions", shape, defocus_nm=-5e4, seed=1)
    r = sitie(s.image, pixel_size_nm=PX, defocus_nm=-5e4, qc_per_nm=0)
    assert r.phase.shape == shape and r.bx.shape == shape and r.by.shape == shape
    if min(shape) >= 37:
        assert pearson_accuracy(r.phase, s.phase_m, crop=2) > 0.98
    t = tie(np.stack([s.image, s.image_clean * 0 + s.image.mean(), s.image[::-1, ::-1]]), pixel_size_nm=PX, defocus_step_nm=5e4)
    assert t.phase.shape == shape
    assert np.isfinite(t.phase).all()
    assert sitie_phase(s.image, pixel_size_nm=PX, defocus_nm=-5e4, pad=False).shape == shape


# --------------------------------------------------------------------------- bad input


GOOD = np.random.default_rng(0).random((32, 40)).astype(np.float32) + 1.0


@pytest.mark.parametrize(
    "image, kwargs, match",
    [
        (GOOD[0], {}, "2-D or 3-D"),
        (GOOD[None, None], {}, "2-D or 3-D"),
        (np.where(np.eye(32, 40) > 0, np.nan, GOOD), {}, "NaN"),
        (np.full((32, 40), 3.0), {}, "constant"),
        (GOOD, {"defocus_nm": 0.0}, "zero"),
        (GOOD, {"defocus_nm": float("nan")}, "finite"),
        (GOOD[:8, :8], {}, "too small"),
        (GOOD, {"pixel_size_nm": -1.0}, "positive"),
        (GOOD, {"voltage_kv": 0.0}, "positive"),
        (GOOD, {"qc_per_nm": -0.1}, "qc_per_nm"),
        (GOOD - 10.0, {}, "non-positive mean"),
        (np.stack([GOOD, np.full_like(GOOD, 2.0)]), {}, "frame 1"),
        (GOOD + 1j, {}, "complex"),
        (None, {}, "no image"),
    ],
)
def test_sitie_bad_input(image, kwargs, match):
    params = {"pixel_size_nm": PX, "defocus_nm": -1e5, **kwargs}
    with pytest.raises(InputError, match=match):
        sitie(image, **params)
    with pytest.raises(InputError, match=match):
        sitie_phase(image, **params)


@pytest.mark.parametrize(
    "stack, kwargs, match",
    [
        (np.stack([GOOD, GOOD]), {}, "exactly 3"),
        (np.stack([GOOD] * 4), {}, "exactly 3"),
        (GOOD, {}, "exactly 3"),
        ([GOOD, GOOD, GOOD[:, :30]], {}, "same shape"),
        ([GOOD, GOOD], {}, "exactly 3"),
        (np.stack([GOOD, GOOD * 1.1, GOOD]), {}, "identical"),
        (np.stack([GOOD, GOOD, GOOD * 1.1]), {"defocus_step_nm": 0.0}, "positive"),
        (np.stack([GOOD, np.zeros_like(GOOD), GOOD * 1.1]), {}, "in-focus image has a non-positive mean"),
        (np.stack([GOOD, GOOD, np.full_like(GOOD, 1.0)]), {}, "over-focus image is constant"),
        (np.stack([GOOD, GOOD, np.where(GOOD > 1.5, np.inf, GOOD)]), {}, "over-focus image has .* NaN/inf"),
    ],
)
def test_tie_bad_input(stack, kwargs, match):
    params = {"pixel_size_nm": PX, "defocus_step_nm": 1e5, **kwargs}
    with pytest.raises(InputError, match=match):
        tie(stack, **params)


# --------------------------------------------------------------------------- simulation


@pytest.mark.parametrize(
    "m",
    [
        lambda: stripe_domains((40, 50), 20, 2.0, 30.0),
        lambda: stripe_domains((40, 50), 20, 2.0, 0.0, kind="inplane"),
        lambda: skyrmion_lattice((40, 50), 16, 5, 2, kind="bloch", jitter_px=1.0),
        lambda: skyrmion_lattice((40, 50), 16, 5, 2, kind="neel", chirality=-1),
        lambda: bubble_lattice((60, 70), (6, 10), 2, seed=3),
    ],
)
def test_textures_are_unit_vectors(m):
    mx, my, mz = m()
    assert mx.dtype == np.float32 and mx.shape == my.shape == mz.shape
    np.testing.assert_allclose(mx**2 + my**2 + mz**2, 1.0, atol=1e-5)
    assert np.hypot(mx, my).max() > 0.9  # there is in-plane moment somewhere


def test_skyrmion_profile_and_neel_has_no_phase():
    mx, my, mz = skyrmion_lattice((64, 64), 24, 7, 2, kind="bloch")
    assert mz.min() < -0.99 and mz.max() > 0.99
    # core down, chirality +1: m at the right of a core points along +y
    cy, cx = np.unravel_index(np.argmin(mz), mz.shape)
    assert my[cy, cx + 7] > 0.9 and abs(mx[cy, cx + 7]) < 0.2
    bloch = simulate("skyrmions", (96, 96), texture_params=dict(kind="bloch")).phase_m
    neel = simulate("skyrmions", (96, 96), texture_params=dict(kind="neel")).phase_m
    assert np.ptp(bloch) > 2.0
    # curl-free in-plane m: no phase at normal incidence (what remains, ~4 %, leaks in from the
    # wrap-around seams of the FFT field around the window)
    assert np.ptp(neel) < 0.06 * np.ptp(bloch)


def test_bloch_stripe_phase_step():
    """Bloch-wall stripes: the phase steps by (e/ħ) B0 t π w at each wall (∫ sin θ du = π w)."""
    w_px, period = 2.0, 64
    mx, my, _ = stripe_domains((16, 128), period, w_px, 0.0, kind="bloch")
    phi = magnetic_phase(mx, my, PX, 1.0, 50.0)
    expected = 50.0 / HBAR_OVER_E * np.pi * w_px * PX
    assert np.ptp(phi) == pytest.approx(expected, rel=0.03)


def test_contaminants_and_wave():
    t = contaminants((64, 64), 5, (4, 8), thickness_nm=7.0, seed=1)
    assert t.max() == pytest.approx(7.0) and t.min() == 0.0 and 0.02 < (t > 3.5).mean() < 0.5
    amp, phase_e = contaminant_wave(t, 200.0, 20.0, 10.0)
    assert amp.max() == pytest.approx(1.0) and amp.min() == pytest.approx(np.exp(-0.7), rel=1e-5)
    assert phase_e.max() == pytest.approx(7.29e-3 * 20 * 7, rel=3e-3)  # σ(200 kV) V0 t ≈ 1.02 rad


def test_add_noise_definition():
    img = np.full((200, 200), 2.0, np.float32)
    noisy = add_noise(img, gaussian_fraction=0.5, seed=1)
    assert noisy.std() == pytest.approx(0.5 * 2.0, rel=0.03)
    assert noisy.mean() == pytest.approx(2.0, abs=0.02)
    shot = add_noise(img, dose_e_per_px=100, seed=1)
    assert shot.std() == pytest.approx(2.0 / np.sqrt(100), rel=0.05)  # mean·sqrt(N)/N
    np.testing.assert_array_equal(add_noise(img, 0.3, seed=4), add_noise(img, 0.3, seed=4))


def test_simulate_sample():
    s = simulate("skyrmions", (64, 80), defocus_nm=-1e6, noise=0.2, n_contaminants=3, seed=7)
    for a in (s.image, s.image_clean, s.phase_m, s.phase_e, s.amplitude, s.bx, s.by, s.mask):
        assert a.shape == (64, 80)
    # mask = thickness above half the particles' (A < exp(-0.35)); most of it at A = exp(-0.7)
    assert s.mask.any() and (s.amplitude[s.mask] < 0.705).all() and (s.amplitude[~s.mask] >= 0.704).all()
    assert np.median(s.amplitude[s.mask]) == pytest.approx(np.exp(-0.7), rel=1e-4)
    # a coherent image conserves the mean intensity: mean(I) = mean(A²)
    coherent = simulate("skyrmions", (64, 80), defocus_nm=-1e6, n_contaminants=3, seed=7, divergence_mrad=0.0, defocus_spread_nm=0.0)
    assert coherent.image_clean.mean() == pytest.approx(np.mean(coherent.amplitude**2), rel=0.02)
    assert (s.image - s.image_clean).std() == pytest.approx(0.2 * s.image_clean.mean(), rel=0.1)
    assert s.defocus_nm == -1e6 and s.microscope.voltage_kv == 200.0
    assert s.params["seed"] == 7 and s.params["noise"] == 0.2
    # B0 t = 50 T·nm: the induction is of that order and the phase a few rad
    assert 20 < np.percentile(np.hypot(s.bx, s.by), 99) < 60
    assert 1.0 < np.ptp(s.phase_m) < 10.0
    again = simulate("skyrmions", (64, 80), defocus_nm=-1e6, noise=0.2, n_contaminants=3, seed=7)
    np.testing.assert_array_equal(s.image, again.image)
    with pytest.raises(ValueError):
        simulate("vortices", (32, 32))
