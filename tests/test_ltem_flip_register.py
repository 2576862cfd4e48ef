"""Flip registration on what the flip does not change (issue 17 §2): a strong-phase specimen is
registered on its in-focus amplitude (the flip reverses φm, so the mean and difference images carry
contrast that moves with it); a film without amplitude contrast keeps the mean images."""

from unittest import mock

import numpy as np
import pytest

from napari_phase.bench.ltem_flip_register import expected_flip_transform, registration_error, two_plain_ties_phase_m
from napari_phase.ltem import align as A
from napari_phase.ltem import series as S
from napari_phase.ltem import tie
from napari_phase.ltem.simulate_series import simulate_flipped_series
from napari_phase.ltem.simulate_strong import strong_phase_case
from napari_phase.physics.metrics import pearson_accuracy

SHAPE = (128, 128)
Z5 = np.arange(-2, 3) * 2e5


def _flip_register(s):
    """The calls ``tie(..., align=True)`` makes: the axis check's candidates, then align_flipped."""
    check = A.check_flip_axis(s.series, s.flipped, "x", align=True)
    report: dict = {}
    _, rigid = A.align_flipped(s.series, s.flipped, "x", candidates=check["_named_candidates"], report=report)
    return rigid, report, check["_named_candidates"]


@pytest.mark.parametrize("kind, seed, rot, shift", [
    ("wires", 1, 1.5, (2.5, -2.0)),  # near-parallel wires: the windowed cross-correlation alone is 2.2 px off
    ("rods", 0, 0.0, (0.0, 0.0)),  # only mirrored: the truth is the identity
    ("particles", 1, -2.0, (-3.0, 1.0)),
])
def test_strong_phase_flip_registers_on_the_in_focus_amplitude_within_target(kind, seed, rot, shift):
    s = strong_phase_case(kind, seed, shape=SHAPE, flip_rotation_deg=rot, flip_shift_px=shift)
    truth = expected_flip_transform(rot, shift)
    rigid, report, candidates = _flip_register(s)
    assert report["registered_on"] == "in-focus" and report["in_focus_contrast"] > 0.2
    d_angle, d_shift = registration_error(rigid.as_dict(), truth)
    assert d_angle <= 0.3 and d_shift <= 0.5, (d_angle, d_shift)
    # what the registration used to rest on: the mean images (magnetic contrast cancels only to first
    # order; the φe·φm cross term reverses with the flip) and the outer difference (magnetic contrast)
    # land off target on these specimens — measured 0.3–1.6° and 0.3–2.7 px before this change
    worst = []
    for k in (1, 2):
        c = A.refine_rigid(A.unmirror(s.flipped, "x").mean(axis=0), s.series.mean(axis=0), candidates[k])
        worst.append(registration_error(c.as_dict(), truth))
    assert all(a > 0.3 or d > 0.5 for a, d in worst), worst


def test_magnetic_film_without_amplitude_contrast_keeps_the_mean_images():
    """No particles: the in-focus image's only contrast is magnetic (Cs, focal spread: < 1e-4 of the
    mean) and reverses with the flip; on stripes it matches a lattice-shifted copy 20 px off."""
    s = simulate_flipped_series("skyrmions", (96, 96), defocus_nm=Z5, noise=0.0, n_contaminants=0,
                                flip_rotation_deg=3.0, flip_shift_px=(4.0, -6.0), seed=0)
    rigid, report, _ = _flip_register(s)
    assert report["registered_on"] == "mean" and report["in_focus_contrast"] < 1e-3
    d_angle, d_shift = registration_error(rigid.as_dict(), expected_flip_transform(3.0, (4.0, -6.0)))
    assert d_angle <= 0.3 and d_shift <= 0.5, (d_angle, d_shift)
    st = simulate_flipped_series("stripes", (96, 96), defocus_nm=Z5, noise=0.0, n_contaminants=0,
                                 flip_rotation_deg=3.0, flip_shift_px=(4.0, -6.0), seed=0)
    rigid, report, _ = _flip_register(st)
    assert report["registered_on"] == "mean"
    # stripes are ambiguous along themselves for every image (measured 2.2 px on the mean), but the
    # in-focus image's reversed magnetic contrast would be a whole stripe period off
    assert registration_error(rigid.as_dict(), expected_flip_transform(3.0, (4.0, -6.0)))[1] < 4.0


def test_in_focus_contrast_has_the_size_of_the_amplitude_contrast_above_the_noise():
    rng = np.random.default_rng(0)
    x = np.arange(128)[None, :] * np.ones((128, 1))
    clean = 2.0 * (1.0 + 0.05 * np.sin(2 * np.pi * x / 64))  # std/mean = 0.05/√2 (64 px: beyond the smoothing)
    noisy = clean + 0.2 * rng.standard_normal(clean.shape)  # 10 % noise
    assert A.in_focus_contrast(clean) == pytest.approx(0.05 / np.sqrt(2), rel=0.02)
    assert A.in_focus_contrast(noisy) == pytest.approx(0.05 / np.sqrt(2), rel=0.1)
    assert A.in_focus_contrast(2.0 + 0.2 * rng.standard_normal(clean.shape)) < 0.5 * A.MIN_IN_FOCUS_CONTRAST  # 10 % noise alone
    # 30 % noise alone may cross the contrast gate by chance; two such images do not match, and the
    # quality gate refuses them
    a, b = (2.0 + 0.6 * rng.standard_normal(clean.shape) for _ in range(2))
    assert A.register(a, b, rotation=True).quality < 0.5 * A.TRUST_MEAN_QUALITY
    assert A.in_focus_contrast(np.full((64, 64), 3.0)) == 0.0
    assert A.in_focus_contrast(-clean) == 0.0


def test_pick_prefers_the_electrostatic_images_and_falls_back_to_magnetic_contrast():
    inf, mean, diff, mag = (A.Rigid(0.0, (float(k), 0.0), q) for k, q in ((1, 0.9), (2, 0.8), (3, 0.95), (4, 0.97)))
    contrast = A.MIN_IN_FOCUS_CONTRAST
    assert A._pick([inf, mean, diff, mag], contrast) == (inf, "in-focus")
    assert A._pick([inf, mean, diff, mag], 0.5 * contrast) == (mean, "mean")  # no amplitude contrast
    low = A.Rigid(0.0, (1.0, 0.0), 0.4)
    assert A._pick([low, mean, diff, mag], contrast) == (mean, "mean")  # in-focus does not match
    poor = A.Rigid(0.0, (2.0, 0.0), 0.3)
    assert A._pick([low, poor, diff, mag], contrast) == (mag, "|outer difference|")
    assert A._pick([inf], contrast) == (inf, "the single image")


def test_tie_records_the_flip_registration_and_phim_matches_two_plain_ties():
    """align=True on the exact geometry (only mirrored): φm within 0.02 of two plain TIEs combined by
    hand; each series left where it is and the same zero-flux boundary, so that only the flip
    registration differs (the registration within a series is issue 17 §1's)."""
    s = strong_phase_case("rods", 1, shape=(96, 96))
    plain = two_plain_ties_phase_m(s)

    def left_in_place(series, *_a, **_k):
        return series, [A.IDENTITY] * series.shape[0]

    with mock.patch.object(S, "_register_series", left_in_place):
        r = tie(s.series, pixel_size_nm=s.pixel_size_nm, defocus_nm=s.defocus_nm, voltage_kv=300.0, flipped=s.flipped,
                flip_axis="x", align=True, boundary="mirror")
    ft = r.metadata["flipped_transform"]
    assert ft["registered_on"] == "in-focus" and ft["in_focus_contrast"] > 0.2
    assert abs(ft["angle_deg"]) < 0.3 and np.hypot(*ft["shift_yx_px"]) < 0.5
    y0, y1, x0, x1 = r.metadata["crop_yx"]
    crop = (slice(y0, y1), slice(x0, x1))
    acc, acc_plain = pearson_accuracy(r.phase, s.phase_m[crop], 6), pearson_accuracy(plain[crop], s.phase_m[crop], 6)
    assert acc_plain > 0.8 and abs(acc - acc_plain) <= 0.02, (acc, acc_plain)
