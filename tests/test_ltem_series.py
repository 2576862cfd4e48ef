"""Through-focus series TIE, flipped series, SITIE pair, alignment: size, sign, bad input, CLI."""

import numpy as np
import pytest

from napari_phase.physics.metrics import magnitude_slope
from napari_phase.jobs import CancelToken, InputError, JobCancelled, run_job
from napari_phase.ltem import tie, tie_job
from napari_phase.ltem import align as A
from napari_phase.ltem.forward import Microscope, simulate_image
from napari_phase.ltem.series import didz_least_squares
from napari_phase.ltem.simulate_series import simulate_flipped_series
from napari_phase.physics.induction import induction_from_phase
from napari_phase.physics.metrics import induction_accuracy, pearson_accuracy
from napari_phase.physics.optics import interaction_constant

PX = 5.0
DZ = 2e5
Z5 = np.arange(-2, 3) * DZ


def slope(result, truth, crop=8):
    return magnitude_slope(result, truth, crop)


@pytest.fixture(scope="module")
def clean():
    """Flipped 5-image series, no noise, no misplacement (mirrored about x only)."""
    return simulate_flipped_series("skyrmions", (96, 112), defocus_nm=Z5, noise=0.0, n_contaminants=5,
                                   flip_rotation_deg=0.0, flip_shift_px=(0, 0), seed=3)


@pytest.fixture(scope="module")
def noisy():
    """The target case: 10 % noise, flipped images mirrored, rotated 3° and shifted."""
    return simulate_flipped_series("skyrmions", (128, 128), defocus_nm=Z5, noise=0.1, n_contaminants=6,
                                   flip_rotation_deg=3.0, flip_shift_px=(4.0, -6.0), seed=0)


# ------------------------------------------------------------------------ derivative and series


def test_least_squares_derivative_is_exact_on_linear_data_and_uses_all_images():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 20, 24))
    z = np.array([-3.0, -1.5, 0.0, 1.5, 3.0])
    stack = a[None] + b[None] * z[:, None, None]
    assert np.allclose(didz_least_squares(stack, z), b)
    # a quadratic (second-order defocus) term does not bias the symmetric fit
    assert np.allclose(didz_least_squares(stack + 0.7 * z[:, None, None] ** 2, z), b)
    # the inner images count: changing one changes the slope (not only the two outermost)
    moved = stack.copy()
    moved[1] += 1.0
    assert not np.allclose(didz_least_squares(moved, z), b)
    # N = 3 is the classic central difference
    z3 = np.array([-2.0, 0.0, 2.0])
    s3 = rng.random((3, 8, 8))
    assert np.allclose(didz_least_squares(s3, z3), (s3[2] - s3[0]) / 4.0)


def test_series_tie_recovers_phase_and_b_magnitude(clean):
    r = tie(clean.series, pixel_size_nm=PX, defocus_step_nm=DZ, qc_per_nm=0)
    total = clean.phase_m + clean.phase_e
    assert pearson_accuracy(r.phase, total, crop=6) >= 0.98
    assert r.metadata["method"] == "TIE series" and r.phase.shape == (96, 112)
    # the same with explicit defoci; reversed order with reversed signs is the same series
    r2 = tie(list(clean.series), pixel_size_nm=PX, defocus_nm=Z5, qc_per_nm=0)
    assert np.allclose(r.phase, r2.phase, atol=1e-5)
    # defocus sign: the series read as if over-focus came first gives the negated phase
    r3 = tie(clean.series[::-1], pixel_size_nm=PX, defocus_nm=Z5, qc_per_nm=0)
    assert pearson_accuracy(r3.phase, total, crop=6) <= -0.98


def test_flipped_series_separates_magnetic_and_electrostatic_phase_with_size(clean):
    r = tie(clean.series, pixel_size_nm=PX, defocus_nm=Z5, flipped=clean.flipped, flip_axis="x", qc_per_nm=0)
    assert r.metadata["method"] == "TIE series (flipped)"
    assert pearson_accuracy(r.phase, clean.phase_m, crop=6) >= 0.98
    assert pearson_accuracy(r.arrays["phase_e"], clean.phase_e, crop=6) >= 0.95
    # magnitude: B·t slope against the truth within 5 %
    assert abs(slope(np.stack([r.bx, r.by]), np.stack([clean.bx, clean.by])) - 1) < 0.05
    # φe = σ V0 t inside a contaminant (7 nm, 20 V): contrast inside vs. outside within 10 %
    inside = clean.amplitude < 0.55
    outside = clean.amplitude > 0.999
    expected = interaction_constant(200.0, "nm") * 20.0 * 7.0
    pe = r.arrays["phase_e"]
    got = float(np.median(pe[inside]) - np.median(pe[outside]))
    # φe's default ∂I/∂z is the per-frequency fit (derivative_e="spectral"): measured plateau 0.88
    # of σV0t noise-free (the plain least-squares slope: 0.96, below)
    assert abs(got / expected - 0.88) < 0.05, (got, expected)
    assert r.metadata["parameters"]["derivative_e"] == "spectral"
    ls = tie(clean.series, pixel_size_nm=PX, defocus_nm=Z5, flipped=clean.flipped, flip_axis="x", qc_per_nm=0,
             derivative_e="least_squares").arrays["phase_e"]
    got = float(np.median(ls[inside]) - np.median(ls[outside]))
    assert abs(got / expected - 1) < 0.1, (got, expected)
    # the electrostatic phase does not leak into the magnetic one (and vice versa)
    assert abs(pearson_accuracy(r.phase, clean.phase_e, crop=6)) < 0.2


def test_target_case_aligned_noisy_flipped_series(noisy):
    """10 % noise, flipped images mirrored + rotated 3° + shifted: measured φm ≈ 0.95, B accuracy ≈ 0.98,
    B·t slope ≈ 1.00 (qc = 1e-3/nm); φe ≈ 0.85 (below the issue's 0.95: noise at low frequencies)."""
    r = tie(noisy.series, pixel_size_nm=PX, defocus_nm=Z5, flipped=noisy.flipped, flip_axis="x", align=True, qc_per_nm=1e-3)
    t = r.metadata["flipped_transform"]
    assert abs(t["angle_deg"] - 3.0) < 0.3
    y0, y1, x0, x1 = r.metadata["crop_yx"]
    assert r.phase.shape == (y1 - y0, x1 - x0) and (y1 - y0) >= 110 and (x1 - x0) >= 110
    crop = (slice(y0, y1), slice(x0, x1))
    pm, pe = noisy.phase_m[crop], noisy.phase_e[crop]
    bx, by = induction_from_phase(pm, PX)
    assert pearson_accuracy(r.phase, pm, crop=8) >= 0.9
    assert induction_accuracy(r.bx, r.by, bx, by, crop=8) >= 0.97
    assert abs(slope(np.stack([r.bx, r.by]), np.stack([bx, by])) - 1) < 0.05
    assert pearson_accuracy(r.arrays["phase_e"], pe, crop=8) >= 0.8
    assert r.arrays["aligned"].shape == (5, y1 - y0, x1 - x0) and r.arrays["aligned_flipped"].shape == (5, y1 - y0, x1 - x0)
    # without alignment the misplaced flipped series gives a poor separation
    bad = tie(noisy.series, pixel_size_nm=PX, defocus_nm=Z5, flipped=noisy.flipped, flip_axis="x", align=False, qc_per_nm=1e-3)
    assert pearson_accuracy(bad.phase[crop], pm, crop=8) < 0.8


def test_target_case_with_the_defaults_meets_phim_and_b_magnitude(noisy):
    """The issue's target case with ONE default setting (no qc given): the aligned field is a window,
    so boundary "auto" solves with the free boundary, each series on its own frame; φe with the
    per-frequency ∂I/∂z and its lowest frequencies from the amplitude (one material). Measured
    (seed 0): φm 0.986, B·t slope 0.989, φe 0.965 (0.914 before both), φe slope 0.84, k 1.26 rad
    against the simulation's σV0ξ = 1.46 rad."""
    r = tie(noisy.series, pixel_size_nm=PX, defocus_nm=Z5, flipped=noisy.flipped, flip_axis="x", align=True)
    p = r.metadata["parameters"]
    assert p["boundary"] == "free" and p["qc_source"].startswith("default") and p["qc_e_source"] == "default 2/FOV"
    assert r.metadata["flipped_solved_on"].startswith("its own recorded frame")
    y0, y1, x0, x1 = r.metadata["crop_yx"]
    crop = (slice(y0, y1), slice(x0, x1))
    pm, pe = noisy.phase_m[crop], noisy.phase_e[crop]
    bx, by = induction_from_phase(pm, PX)
    assert pearson_accuracy(r.phase, pm, crop=8) >= 0.97
    assert induction_accuracy(r.bx, r.by, bx, by, crop=8) >= 0.98
    assert abs(slope(np.stack([r.bx, r.by]), np.stack([bx, by])) - 1) < 0.05
    assert pearson_accuracy(r.arrays["phase_e"], pe, crop=8) >= 0.95
    assert abs(slope(r.arrays["phase_e"], pe) - 0.84) < 0.08
    prior = r.metadata["phase_e_prior"]
    k_true = interaction_constant(200.0, "nm") * 20.0 * 10.0  # σ V0 ξ of the simulated contaminants
    assert prior["used"] and 0.75 < prior["k_rad"] / k_true < 0.95
    # the zero-flux (mirror) condition on the same window loses φm accuracy
    mirror = tie(noisy.series, pixel_size_nm=PX, defocus_nm=Z5, flipped=noisy.flipped, flip_axis="x", align=True, boundary="mirror")
    assert pearson_accuracy(mirror.phase, pm, crop=8) < pearson_accuracy(r.phase, pm, crop=8) - 0.02


def test_free_boundary_recovers_a_window_of_a_larger_film():
    """A field that is a window of a larger film (flux crosses its edges): the free boundary
    (phase constant just outside) recovers the phase, the zero-flux mirror condition does not
    (measured 0.978 vs 0.625); the size of B·t is right."""
    w = simulate_flipped_series("skyrmions", (96, 96), defocus_nm=Z5, noise=0.1, n_contaminants=4, flip_rotation_deg=0.0,
                                flip_shift_px=(0, 0), field="window", seed=5)
    total = w.phase_m + w.phase_e
    free = tie(w.series, pixel_size_nm=PX, defocus_nm=Z5, boundary="free", qc_per_nm=0)
    mirror = tie(w.series, pixel_size_nm=PX, defocus_nm=Z5, boundary="mirror", qc_per_nm=0)
    assert free.metadata["parameters"]["boundary"] == "free"
    assert pearson_accuracy(free.phase, total, crop=6) >= 0.95
    assert pearson_accuracy(mirror.phase, total, crop=6) < 0.8
    tbx, tby = induction_from_phase(total - total.mean(), PX)
    assert abs(slope(np.stack([free.bx, free.by]), np.stack([tbx, tby])) - 1) < 0.05
    # an image as recorded (no alignment, no roi) keeps the zero-flux model under "auto"
    assert tie(w.series, pixel_size_nm=PX, defocus_nm=Z5).metadata["parameters"]["boundary"] == "mirror"
    with pytest.raises(InputError, match="boundary must be one of"):
        tie(w.series, pixel_size_nm=PX, defocus_nm=Z5, boundary="dirichlet")
    with pytest.raises(InputError, match="derivative must be"):
        tie(w.series, pixel_size_nm=PX, defocus_nm=Z5, derivative="cubic")


def test_wrong_flip_axis_is_refused(clean):
    up_down = simulate_flipped_series("skyrmions", (96, 112), defocus_nm=Z5, noise=0.05, n_contaminants=5, flip_axis="y",
                                      flip_rotation_deg=2.0, flip_shift_px=(2, 3), seed=3)
    with pytest.raises(InputError, match="flip_axis='x' does not match.*flip_axis='y'"):
        tie(up_down.series, pixel_size_nm=PX, defocus_nm=Z5, flipped=up_down.flipped, flip_axis="x", align=True)
    with pytest.raises(InputError, match="flip_axis='y' does not match"):
        tie(clean.series, pixel_size_nm=PX, defocus_nm=Z5, flipped=clean.flipped, flip_axis="y", align=False)
    r = tie(up_down.series, pixel_size_nm=PX, defocus_nm=Z5, flipped=up_down.flipped, flip_axis="y", align=True, qc_per_nm=1e-3)
    y0, y1, x0, x1 = r.metadata["crop_yx"]
    bx, by = induction_from_phase(up_down.phase_m[y0:y1, x0:x1], PX)
    assert induction_accuracy(r.bx, r.by, bx, by, crop=8) >= 0.95
    assert abs(r.metadata["flipped_transform"]["angle_deg"] - 2.0) < 0.3


def test_sitie_with_flipped_pair_cancels_the_contaminants():
    s = simulate_flipped_series("skyrmions", (96, 96), defocus_nm=[-1e5], noise=0.0, n_contaminants=5,
                                flip_rotation_deg=0.0, flip_shift_px=(0, 0), seed=4)
    pair = tie(s.series, pixel_size_nm=PX, defocus_nm=[-1e5], flipped=s.flipped, qc_per_nm=0)
    single = tie(s.series, pixel_size_nm=PX, defocus_nm=[-1e5], qc_per_nm=0)
    assert pair.metadata["method"] == "SITIE (flipped)"
    acc_pair = pearson_accuracy(pair.phase, s.phase_m, crop=6)
    acc_single = pearson_accuracy(single.phase, s.phase_m, crop=6)
    assert acc_pair >= 0.97 and acc_pair > acc_single + 0.02, (acc_pair, acc_single)
    assert abs(slope(np.stack([pair.bx, pair.by]), np.stack([s.bx, s.by])) - 1) < 0.1


# ------------------------------------------------------------------------ alignment


def test_register_recovers_rotation_and_subpixel_shift(clean):
    ref = clean.series[0]
    moved = A.warp_rigid(ref, A.Rigid(-2.5, (1.4, -2.7)))
    r = A.register(moved, ref, rotation=True)
    back = A.warp_rigid(moved, r)
    assert abs(r.angle_deg - 2.5) < 0.15
    inner = (slice(12, -12), slice(12, -12))
    assert np.abs(back - ref)[inner].mean() < 0.25 * np.abs(moved - ref)[inner].mean()
    shifted = np.roll(ref, (3, -5), axis=(0, 1))
    t = A.register(shifted, ref)
    assert t.shift_yx == pytest.approx((-3.0, 5.0), abs=0.1) and t.quality > 0.9


def test_series_alignment_undoes_drift_of_the_outer_images(clean):
    """Neighbouring defocused images register reliably (quality > 0.9). Registration of a ±Δf image
    onto the in-focus one is biased by the different contrast and is only used when it matches
    well (SERIES_MIN_QUALITY): here the drift is in the outer images."""
    shifts = [(4, -3), (0, 0), (0, 0), (0, 0), (-3, 5)]
    drift = np.stack([np.roll(f, s, axis=(0, 1)) for s, f in zip(shifts, clean.series)])
    aligned, tr = A.align_series(drift)
    for s, t in zip(shifts, tr):
        assert t.shift_yx == pytest.approx((-s[0], -s[1]), abs=0.3)
    r = tie(drift, pixel_size_nm=PX, defocus_nm=Z5, align=True, qc_per_nm=0)
    y0, y1, x0, x1 = r.metadata["crop_yx"]
    bx, by = induction_from_phase((clean.phase_m + clean.phase_e)[y0:y1, x0:x1], PX)
    acc = induction_accuracy(r.bx, r.by, bx, by, crop=6)
    r0 = tie(drift, pixel_size_nm=PX, defocus_nm=Z5, align=False, qc_per_nm=0)
    acc0 = induction_accuracy(r0.bx[y0:y1, x0:x1], r0.by[y0:y1, x0:x1], bx, by, crop=6)
    assert acc >= 0.92 and acc > acc0 + 0.03, (acc, acc0)


DRIFT_PX = [(1.5, 0.4), (0.7, -1.2), (0.0, 0.0), (-0.9, 0.6), (1.2, 1.8)]


def test_sub_2px_drift_is_recovered_by_registering_to_the_model():
    """A drift under 2 px in the unflipped series (the issue's target geometry, 10 % noise, seed 1):
    each image registered onto its simulation at its own defocus. Measured: shifts within 0.33 px
    of the truth (rms over the 5 images 0.19 px), φe 0.966, φm 0.976, B·t slope 0.994;
    cross-correlation alone (the earlier method, which leaves shifts under 2 px alone) gives φe 0.77."""
    s = simulate_flipped_series("skyrmions", (128, 128), defocus_nm=Z5, noise=0.1, n_contaminants=6,
                                flip_rotation_deg=3.0, flip_shift_px=(4.0, -6.0), seed=1, series_drift_px=DRIFT_PX)
    r = tie(s.series, pixel_size_nm=PX, defocus_nm=Z5, flipped=s.flipped, flip_axis="x", align=True)
    got = np.array([t["shift_yx_px"] for t in r.metadata["series_transforms"]])
    err = got + np.array(DRIFT_PX)  # the registration moves each image back by its drift
    assert np.sqrt((err**2).sum(axis=1)).max() < 0.5 and np.sqrt((err**2).sum(axis=1).mean()) < 0.25, err
    y0, y1, x0, x1 = r.metadata["crop_yx"]
    crop = (slice(y0, y1), slice(x0, x1))
    assert pearson_accuracy(r.arrays["phase_e"], s.phase_e[crop], crop=8) >= 0.95
    assert pearson_accuracy(r.phase, s.phase_m[crop], crop=8) >= 0.96
    bx, by = induction_from_phase(s.phase_m[crop], PX)
    assert abs(slope(np.stack([r.bx, r.by]), np.stack([bx, by])) - 1) < 0.03
    old = tie(s.series, pixel_size_nm=PX, defocus_nm=Z5, flipped=s.flipped, flip_axis="x", align=True,
              series_registration="cross-correlation")
    y0, y1, x0, x1 = old.metadata["crop_yx"]
    assert pearson_accuracy(old.arrays["phase_e"], s.phase_e[y0:y1, x0:x1], crop=8) < 0.9


def test_drift_free_series_stays_in_place_and_fit_shift_is_unbiased():
    """On a drift-free series (seed 2, 10 % noise) registering to the model moves no image by more
    than 0.2 px (measured ≤ 0.12; cross-correlating different defoci gave spurious shifts up to
    1.6 px). The shift fit itself: a known sub-pixel shift of a clean model image under 10 % noise."""
    from napari_phase.ltem.series_register import fit_shift, fourier_shift, register_series_to_model

    s = simulate_flipped_series("skyrmions", (128, 128), defocus_nm=Z5, noise=0.1, n_contaminants=6,
                                flip_rotation_deg=0.0, flip_shift_px=(0.0, 0.0), seed=2)
    shifts, info = register_series_to_model(s.series, Z5, PX)
    assert shifts.shape == (5, 2) and np.all(shifts[2] == 0) and np.abs(shifts).max() < 0.2, shifts
    assert 1 <= info["rounds"] <= 20
    ref = simulate_flipped_series("skyrmions", (128, 128), defocus_nm=Z5, noise=0.0, n_contaminants=6,
                                  flip_rotation_deg=0.0, flip_shift_px=(0.0, 0.0), seed=2).series[4]
    rng = np.random.default_rng(0)
    moved = fourier_shift(ref, (0.7, -1.3)) * 1.5 + 0.1 + rng.normal(0, 0.1 * 1.5 * ref.mean(), ref.shape)
    assert fit_shift(moved, ref) == pytest.approx((-0.7, 1.3), abs=0.05)


def test_model_registration_keeps_the_start_when_it_cannot_work():
    """Pure noise (no model to register on) or an image too small for the fit: the refinement is
    not used, the coarse shifts are kept and the metadata says why."""
    from napari_phase.ltem.series_register import register_series_to_model

    noise = np.random.default_rng(0).normal(100, 10, (5, 64, 64)).astype(np.float32)
    start = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    shifts, info = register_series_to_model(noise, Z5, PX, start=start)
    assert "fallback" in info and np.array_equal(shifts, start)
    shifts, info = register_series_to_model(noise[:, :30, :30], Z5, PX)
    assert info["rounds"] == 0 and "smaller" in info["fallback"] and not shifts.any()


def test_phase_e_prior_restores_the_shrunk_long_wavelengths():
    """φe = k·(−ln A) for one material: the Tikhonov-shrunk φe gets its lowest frequencies back
    from the amplitude, with k fitted (size pinned); uniform amplitude → not used, φe unchanged."""
    from napari_phase.ltem.phase_e_prior import _split, amplitude_prior

    yy, xx = np.mgrid[:96, :96]
    t = sum(7.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2)) for cy, cx, r in ((30, 30, 6), (60, 70, 9), (75, 20, 5)))
    amp2 = np.exp(-2 * t / 10.0)
    k_true = 1.46
    truth = k_true * t / 10.0
    qc = 2 / (96 * PX)
    shrunk = _split(truth, PX, qc)[0]
    assert pearson_accuracy(shrunk, truth, crop=8) < 0.9
    out, info = amplitude_prior(shrunk, 500.0 * amp2, PX, qc)
    assert info["used"] and info["k_rad"] == pytest.approx(k_true, rel=0.03)
    assert pearson_accuracy(out, truth, crop=8) > 0.99 and abs(slope(out, truth) - 1) < 0.03
    same, info = amplitude_prior(shrunk, np.full((96, 96), 500.0), PX, qc)
    assert not info["used"] and np.allclose(same, shrunk)


def test_hot_pixels_and_roi(clean):
    from napari_phase.ltem.simulate import add_noise

    img = add_noise(clean.series[1], 0.02, seed=1)
    hot = img.copy()
    hot[10, 20], hot[50, 60], hot[70, 5] = 50.0, -20.0, 80.0
    fixed, n = A.remove_outliers(hot, 6.0)
    assert n >= 3 and n < 30
    assert abs(fixed[10, 20] - img[10, 20]) < 0.2
    series = np.stack([add_noise(f, 0.02, seed=k) for k, f in enumerate(clean.series)])
    for k in range(5):  # X-ray spikes: a different pixel in each image
        series[k, 30 + 7 * k, 40 + 5 * k] = 60.0
    r_hot = tie(series, pixel_size_nm=PX, defocus_nm=Z5, qc_per_nm=0)
    r_fix = tie(series, pixel_size_nm=PX, defocus_nm=Z5, qc_per_nm=0, hot_pixel_sigma=6)
    truth = clean.phase_m + clean.phase_e
    assert pearson_accuracy(r_fix.phase, truth, crop=6) > pearson_accuracy(r_hot.phase, truth, crop=6) + 0.02
    assert 5 <= r_fix.metadata["hot_pixels_replaced"] < 60
    r = tie(clean.series, pixel_size_nm=PX, defocus_nm=Z5, roi=(10, 74, 20, 100), qc_per_nm=0)
    assert r.phase.shape == (64, 80) and r.metadata["crop_yx"] == [10, 74, 20, 100]


# ------------------------------------------------------------------------ bad input, cancel


G = np.random.default_rng(1).random((5, 32, 40)).astype(np.float32) + 1.0


@pytest.mark.parametrize(
    "stack, kwargs, match",
    [
        ([G[0], G[1], G[2][:, :30]], {"defocus_step_nm": 1e5}, "same shape"),
        (G[:4], {"defocus_step_nm": 1e5}, "odd number"),
        (G, {"defocus_nm": [-2e5, -1e5, 0, 1e5, 3e5]}, "symmetric"),
        (G, {"defocus_nm": [-2e5, -1e5, 0, 0, 2e5]}, "duplicated"),
        (G, {"defocus_nm": [2e5, 1e5, 0, -1e5, -2e5]}, "most under-focused"),
        (G, {"defocus_nm": [-1e5, 0, 1e5]}, "one defocus per image"),
        (G, {}, "either defocus_step_nm"),
        (G, {"defocus_step_nm": 1e5, "defocus_nm": [0] * 5}, "either defocus_step_nm"),
        (G[:1], {"defocus_step_nm": 1e5}, "single image"),
        (G[:1], {"defocus_nm": [0.0]}, "defocused"),
        (G, {"defocus_step_nm": 1e5, "flipped": G[:3]}, "flipped series has shape"),
        (G, {"defocus_step_nm": 1e5, "flipped": G, "flip_axis": "z"}, "flip_axis"),
        (G, {"defocus_step_nm": 1e5, "roi": (0, 100, 0, 10)}, "roi"),
        (G, {"defocus_step_nm": 1e5, "roi": (0, 10, 0, 10)}, "16x16"),
        (np.where(np.arange(40) == 3, np.nan, G), {"defocus_step_nm": 1e5}, "NaN"),
        (G, {"defocus_step_nm": 1e5, "flipped": np.where(np.arange(40) == 3, np.inf, G)}, "flipped image .* NaN/inf"),
        (np.stack([G[0], G[1], G[2], G[1], G[0]]), {"defocus_step_nm": 1e5}, "identical"),
    ],
)
def test_bad_input(stack, kwargs, match):
    with pytest.raises(InputError, match=match):
        tie(stack, pixel_size_nm=PX, **kwargs)


def test_cancel_mid_job_propagates(clean):
    token = CancelToken()
    token.cancel()
    with pytest.raises(JobCancelled):
        run_job(tie_job(clean.series, pixel_size_nm=PX, defocus_nm=Z5, flipped=clean.flipped), cancel=token)


def test_odd_sizes_and_constant_in_focus():
    y, x = np.mgrid[:45, :61]
    phase = 1.5 * np.exp(-((x - 30) ** 2 + (y - 22) ** 2) / 60.0)
    mic = dict(cs_mm=0, divergence_mrad=0, defocus_spread_nm=0)
    imgs = [simulate_image(phase, pixel_size_nm=PX, microscope=Microscope(defocus_nm=z, **mic)) for z in (-4e4, -2e4, 0, 2e4, 4e4)]
    imgs[2] = np.full_like(imgs[2], float(np.mean(imgs[2])))  # a uniform in-focus image is allowed
    r = tie(np.stack(imgs), pixel_size_nm=PX, defocus_step_nm=2e4, qc_per_nm=0)
    assert r.phase.shape == (45, 61)
    assert pearson_accuracy(r.phase, phase, crop=3) > 0.99
    assert abs(slope(r.phase, phase, 3) - 1) < 0.05


# ------------------------------------------------------------------------ CLI


def test_cli_series_with_flip_reads_back(tmp_path, clean, capsys):
    from napari_phase.cli import main
    from napari_phase.io.writer import load_result

    paths, fpaths = [], []
    for k in range(5):
        paths.append(str(tmp_path / f"s{k}.npy"))
        fpaths.append(str(tmp_path / f"f{k}.npy"))
        np.save(paths[-1], clean.series[k])
        np.save(fpaths[-1], clean.flipped[k])
    out = tmp_path / "tie.h5"
    argv = ["tie", *paths, "--defocus-step-mm", str(DZ / 1e6), "--flip", *fpaths, "--pixel-size-nm", str(PX),
            "--qc-per-nm", "0", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    res = load_result(out)
    assert pearson_accuracy(res["phase"], clean.phase_m, crop=6) >= 0.98
    assert abs(slope(np.stack([res["bx"], res["by"]]), np.stack([clean.bx, clean.by])) - 1) < 0.05
    assert "phase_e" in res.arrays
    # --qc-per-nm auto and --boundary reach the solver (and are written to the metadata)
    out2 = tmp_path / "tie_auto.h5"
    assert main([*argv[:-5], "--qc-per-nm", "auto", "--boundary", "free", "--out", str(out2), "--quiet"]) == 0
    res2 = load_result(out2)
    assert res2.metadata["parameters"]["qc_source"].startswith("auto") and res2.metadata["parameters"]["boundary"] == "free"
    assert pearson_accuracy(res2["phase"], clean.phase_m, crop=8) >= 0.95
    # unsymmetric defoci: one line, exit 2
    capsys.readouterr()
    bad = ["tie", *paths, "--defocus-mm", "-0.4", "-0.2", "0", "0.2", "0.5", "--pixel-size-nm", "5", "--out", str(tmp_path / "bad.h5")]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "symmetric" in err[0]
    assert main(["tie", *paths, "--defocus-step-mm", "0.2", "--flip", *fpaths[:3], "--pixel-size-nm", "5", "--out", str(tmp_path / "bad.h5")]) == 2


# ------------------------------------------------------------------------ panel (Xvfb)


@pytest.fixture
def notes(monkeypatch):
    from napari_phase.widgets import _runner

    seen = []
    monkeypatch.setattr(_runner, "warn", lambda m: seen.append(m))
    monkeypatch.setattr(_runner, "error", lambda m: seen.append(m))
    return seen


def _tie_panel(viewer):
    pytest.importorskip("napari")
    from napari_phase.widgets.tie_series_panel import TieSeriesPanel

    panel = TieSeriesPanel(viewer)
    viewer.window.add_dock_widget(panel, name="TIE series (LTEM)", area="right")
    return panel


def test_panel_runs_flipped_series_and_shows_layers(make_napari_viewer, qtbot, noisy, notes):
    viewer = make_napari_viewer()
    panel = _tie_panel(viewer)
    viewer.add_image(noisy.series, name="series", scale=(1, PX, PX), metadata={"defocus_nm": list(Z5)})
    viewer.add_image(noisy.flipped, name="flipped", scale=(1, PX, PX))
    assert panel.pixel_size.value() == pytest.approx(PX)
    assert panel.defoci_mm.text() == "-0.4, -0.2, 0, 0.2, 0.4"
    panel.series_combo.set_layer(viewer.layers["series"])
    panel.use_flip.setChecked(True)
    panel.flip_combo.set_layer(viewer.layers["flipped"])
    panel.regularisation.setCurrentIndex(2)  # a typed cut-off
    assert panel.qc.isEnabled()
    panel.qc.setValue(0.001)
    assert panel.parameters()["qc_per_nm"] == pytest.approx(0.001)
    with qtbot.waitSignal(panel.runner.finished, timeout=60000) as blocker:
        panel.run()
    assert blocker.args == ["done"], (panel.runner.status_text, notes)
    res = panel.runner.last_result
    y0, y1, x0, x1 = res.metadata["crop_yx"]
    phase = viewer.layers["TIE phase [rad]"]
    assert phase.data.shape == (y1 - y0, x1 - x0)
    assert list(phase.translate)[-2:] == pytest.approx([y0 * PX, x0 * PX])
    assert pearson_accuracy(phase.data, noisy.phase_m[y0:y1, x0:x1], crop=8) >= 0.9
    assert viewer.layers["TIE aligned [counts]"].data.shape[0] == 5
    assert "TIE aligned_flipped [counts]" in viewer.layers and "TIE phase_e [rad]" in viewer.layers
    assert "rotated" in panel.result_info.text()
    md = res.metadata
    assert md["parameters"]["series_registration"] == "model" and "rounds" in md["series_registration"]
    assert md["parameters"]["derivative_e"] == "spectral" and md["parameters"]["phase_e_prior"] == "auto"
    assert "Series registered onto its model" in panel.result_info.text() or "Series registration:" in panel.result_info.text()
    assert "φe long wavelengths" in panel.result_info.text()
    assert ("φe: the plain algebra" in panel.result_info.text()) == (md["phase_e_check"]["kept"] != "refined")


def test_panel_series_options_reach_the_solver(make_napari_viewer, notes):
    """Registration, φe derivative and φe long-wavelength rows map onto tie()'s keywords; the φe
    rows only with a flipped series, the registration row only with alignment."""
    viewer = make_napari_viewer()
    panel = _tie_panel(viewer)
    p = panel.parameters()
    assert p["series_registration"] == "model" and "derivative_e" not in p and "phase_e_prior" not in p
    assert not panel.derivative_e.isEnabled() and not panel.phase_e_prior.isEnabled() and panel.registration.isEnabled()
    panel.registration.setCurrentIndex(1)
    panel.use_flip.setChecked(True)
    panel.derivative_e.setCurrentIndex(1)
    panel.phase_e_prior.setCurrentIndex(1)
    p = panel.parameters()
    assert (p["series_registration"], p["derivative_e"], p["phase_e_prior"]) == ("cross-correlation", "least_squares", "none")
    assert panel.derivative_e.isEnabled() and panel.phase_e_prior.isEnabled()
    panel.align.setChecked(False)
    assert not panel.registration.isEnabled()
    # every value the panel can send is one the solver accepts
    from napari_phase.ltem.phase_e_prior import PHASE_E_PRIORS as SOLVER_PRIORS
    from napari_phase.ltem.series import SERIES_REGISTRATIONS
    from napari_phase.widgets.tie_series_panel import DERIVATIVES_E, PHASE_E_PRIORS, REGISTRATIONS

    assert set(REGISTRATIONS.values()) == set(SERIES_REGISTRATIONS)
    assert set(PHASE_E_PRIORS.values()) == set(SOLVER_PRIORS)
    assert set(DERIVATIVES_E.values()) == {"spectral", "least_squares"}


def test_panel_bad_input_is_a_notification(make_napari_viewer, qtbot, clean, notes):
    viewer = make_napari_viewer()
    panel = _tie_panel(viewer)
    with qtbot.waitSignal(panel.runner.finished, timeout=5000) as blocker:
        panel.run()
    assert blocker.args == ["rejected"] and "stack layer" in notes[-1]
    viewer.add_image(clean.series[:4], name="four", scale=(1, PX, PX))
    with qtbot.waitSignal(panel.runner.finished, timeout=5000) as blocker:
        panel.run()
    assert blocker.args in (["rejected"], ["failed"]) and "odd number" in notes[-1]
    viewer.add_image(clean.series, name="five", scale=(1, PX, PX))
    panel.series_combo.set_layer(viewer.layers["five"])
    panel.defoci_mm.setText("-0.4, -0.2, 0, 0.2, zero")
    with qtbot.waitSignal(panel.runner.finished, timeout=5000) as blocker:
        panel.run()
    assert blocker.args == ["rejected"] and "numbers" in notes[-1]
    # several 2-D layers stacked into one series
    for k in range(5):
        viewer.add_image(clean.series[k], name=f"img{k}", scale=(PX, PX), metadata={"defocus_nm": float(Z5[k])})
    viewer.layers.selection = {viewer.layers[f"img{k}"] for k in range(5)}
    layer = panel.stack_selected()
    assert layer.data.shape == (5, 96, 112) and panel.defoci_mm.text() == "-0.4, -0.2, 0, 0.2, 0.4"
    assert np.array_equal(layer.data[1], clean.series[1])


def test_panel_simulate_from_ovf(make_napari_viewer, notes):
    from pathlib import Path

    real = Path(__file__).resolve().parents[1].parent / "shared" / "real-files" / "micromagnetic" / "skyrmion.omf"
    if not real.exists():
        pytest.skip("../shared/real-files not present")
    pytest.importorskip("discretisedfield")
    viewer = make_napari_viewer()
    panel = _tie_panel(viewer)
    panel.ovf_tilt_x.setValue(30)
    sample = panel.simulate_from_ovf(str(real))
    assert sample is not None
    layer = viewer.layers["skyrmion LTEM -0.1 mm"]
    assert layer.data.shape == (64, 64) and layer.metadata["defocus_nm"] == -1e5 and list(layer.scale) == [5.0, 5.0]
    assert layer.metadata["thickness_nm"] == 5.0  # the file's one 5 nm cell
    panel.ovf_film.setValue(50.0)
    thick = panel.simulate_from_ovf(str(real))
    assert np.allclose(thick.bx, 10 * sample.bx, atol=1e-4) and viewer.layers[-1].metadata["thickness_nm"] == 50.0
    panel.ovf_film.setValue(0.0)
    assert panel.simulate_from_ovf(str(real.parent / "mumax-bin4-linux.ovf")) is None
    assert "ms_a_per_m" in notes[-1]


def test_panel_regularisation_boundary_and_drawn_roi(make_napari_viewer, qtbot, clean, notes):
    """The qc choice (auto / default / value), the boundary choice, and an ROI drawn as a rectangle
    in a Shapes layer (world coordinates of a scaled, translated layer → pixels), typed as fallback."""
    from napari_phase.widgets.tie_series_panel import ROI_LAYER

    viewer = make_napari_viewer()
    panel = _tie_panel(viewer)
    layer = viewer.add_image(clean.series, name="series", scale=(1, PX, PX), translate=(0, 100.0, -50.0),
                             metadata={"defocus_nm": list(Z5)})
    panel.series_combo.set_layer(layer)
    p = panel.parameters()
    assert p["qc_per_nm"] == "auto" and p["boundary"] == "auto" and not panel.qc.isEnabled() and "roi" not in p
    panel.regularisation.setCurrentIndex(1)
    assert panel.parameters()["qc_per_nm"] is None
    panel.boundary.setCurrentIndex(2)
    assert panel.parameters()["boundary"] == "mirror"
    panel.boundary.setCurrentIndex(1)
    assert panel.parameters()["boundary"] == "free"
    # typed fallback
    panel.roi.setText("10 74 20 100")
    assert panel.parameters()["roi"] == (10, 74, 20, 100)
    # drawn: rows 12..60, columns 30..90 of the image, in world (nm) coordinates
    shapes = panel.draw_roi()
    assert shapes.name == ROI_LAYER and shapes.mode == "add_rectangle"
    rect = np.array([[100 + 12 * PX, -50 + 30 * PX], [100 + 60 * PX, -50 + 90 * PX]])
    to_data = lambda w: np.array([shapes.world_to_data(v) for v in w])  # noqa: E731 (what the mouse gives)
    shapes.add_rectangles(to_data(rect))
    assert panel.roi.text() == "12 60 30 90"
    assert panel.parameters()["roi"] == (12, 60, 30, 90)
    # a rectangle reaching past the image is clipped to it
    shapes.add_rectangles(to_data(np.array([[100 - 40.0, -50 - 40.0], [100 + 50 * PX, -50 + 200 * PX]])))
    assert panel.roi.text() == f"0 50 0 {clean.series.shape[2]}"
    # the run uses it: the result sits on the drawn box
    shapes.add_rectangles(to_data(rect))
    panel.regularisation.setCurrentIndex(0)
    with qtbot.waitSignal(panel.runner.finished, timeout=60000) as blocker:
        panel.run()
    assert blocker.args == ["done"], (panel.runner.status_text, notes)
    res = panel.runner.last_result
    assert res.metadata["crop_yx"] == [12, 60, 30, 90] and res.phase.shape == (48, 60)
    assert res.metadata["parameters"]["boundary"] == "free" and "auto_regularisation" in res.metadata
    assert "Noise measured" in panel.result_info.text() and "Edges: free" in panel.result_info.text()
    phase = viewer.layers["TIE phase [rad]"]
    assert list(phase.translate)[-2:] == pytest.approx([100 + 12 * PX, -50 + 30 * PX])
    assert pearson_accuracy(phase.data, clean.phase_m[12:60, 30:90] + clean.phase_e[12:60, 30:90], crop=4) >= 0.9
    panel.clear_roi()
    assert panel.roi.text() == "" and len(viewer.layers[ROI_LAYER].data) == 0 and "roi" not in panel.parameters()


def test_result_line_says_when_phase_e_fell_back_to_the_plain_algebra():
    from napari_phase.widgets.tie_series_panel import result_summary

    md = {"method": "TIE series (flipped)", "phase_meaning": "φm", "runtime_s": 1.0}
    plain = {"kept": "plain algebra (φ + φflip)/2", "reason": "the refined φe agrees with the absorption −ln A less than the plain algebra"}
    text = result_summary({**md, "phase_e_check": plain})
    assert "φe: the plain algebra (φ + φflip)/2 (the refined φe agrees with the absorption" in text
    assert "plain algebra" not in result_summary({**md, "phase_e_check": {**plain, "kept": "refined"}})
    assert "plain algebra" not in result_summary(md)
