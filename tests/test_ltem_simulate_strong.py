"""The strong-phase case class (issue 17 §2): nanowires, rods, particles with φe of 5–30 rad,
absorption that follows φe, uneven magnetisation, both sides recorded (the flipped one mirrored)."""

import numpy as np
import pytest

from napari_phase.ltem.align import Rigid, warp_rigid
from napari_phase.ltem.forward import Microscope, simulate_image
from napari_phase.ltem.simulate_strong import (
    PHASE_E_RANGE_RAD,
    STRONG_PHASE_CASES,
    strong_phase_case,
    strong_phase_maps,
)

SHAPE = (96, 96)


@pytest.mark.parametrize("kind", STRONG_PHASE_CASES)
def test_phase_e_is_strong_and_in_range(kind):
    for seed in (0, 1):
        s = strong_phase_case(kind, seed, shape=SHAPE, noise=0.0)
        span = float(np.ptp(s.phase_e))
        assert PHASE_E_RANGE_RAD[0] - 1e-3 <= span <= PHASE_E_RANGE_RAD[1] + 1e-3
        assert abs(span - s.params["phase_e_range_rad"]) < 1e-3
        assert s.series.shape == s.flipped.shape == (3, *SHAPE)
        assert np.isfinite(s.series).all() and s.series.min() > 0


@pytest.mark.parametrize("kind", STRONG_PHASE_CASES)
def test_absorption_follows_phase_e(kind):
    """−ln A = φe/k with k = σV0ξ: thicker is darker (sign) and the slope is 1/k (size)."""
    s = strong_phase_case(kind, 0, shape=SHAPE, noise=0.0)
    mu = -np.log(s.amplitude.astype(np.float64))
    pe = s.phase_e.astype(np.float64)
    slope = np.sum((pe - pe.mean()) * (mu - mu.mean())) / np.sum((pe - pe.mean()) ** 2)
    assert slope == pytest.approx(1.0 / s.params["k_rad"], rel=1e-3)
    assert s.amplitude.min() < 0.7 and s.amplitude.max() <= 1.0


@pytest.mark.parametrize("kind", STRONG_PHASE_CASES)
def test_flipped_side_is_the_mirror_of_the_turned_specimen(kind):
    """Noise-free: series[k] images φe + φm; the flipped series, un-mirrored, images φe − φm with the
    same amplitude (not the same image: φm is not small)."""
    px, kv = 2.57, 300.0
    s = strong_phase_case(kind, 3, shape=SHAPE, noise=0.0)
    maps = strong_phase_maps(kind, SHAPE, px, 3, kv, 2.0)
    m = maps["margin_px"]
    crop = (slice(m, m + SHAPE[0]), slice(m, m + SHAPE[1]))
    for k, z in enumerate(s.defocus_nm):
        mic = Microscope(voltage_kv=kv, defocus_nm=float(z))
        plus = simulate_image(maps["phase_m"] + maps["phase_e"], maps["amplitude"], pixel_size_nm=px, microscope=mic, pad_px=24)[crop]
        minus = simulate_image(-maps["phase_m"] + maps["phase_e"], maps["amplitude"], pixel_size_nm=px, microscope=mic, pad_px=24)[crop]
        np.testing.assert_allclose(s.series[k], plus, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(s.flipped[k][:, ::-1], minus, rtol=1e-4, atol=1e-4)
        if z != 0:
            assert np.abs(s.flipped[k][:, ::-1] - s.series[k]).max() > 0.05  # the magnetic contrast reverses
    sy = strong_phase_case(kind, 3, shape=SHAPE, noise=0.0, flip_axis="y")
    np.testing.assert_allclose(sy.flipped[0][::-1, :], s.flipped[0][:, ::-1], rtol=1e-4, atol=1e-4)


def test_flipped_side_can_be_misplaced():
    s0 = strong_phase_case("rods", 0, shape=SHAPE, noise=0.0)
    s1 = strong_phase_case("rods", 0, shape=SHAPE, noise=0.0, flip_rotation_deg=1.0, flip_shift_px=(2.6, -1.0))
    np.testing.assert_array_equal(s0.series, s1.series)
    moved = warp_rigid(s0.flipped[0], Rigid(1.0, (2.6, -1.0)), order=3)
    inner = (slice(10, -10), slice(10, -10))
    assert np.abs(s1.flipped[0] - s0.flipped[0])[inner].max() > 0.05
    # moved after cropping vs moved before: equal away from the edges
    assert np.abs(s1.flipped[0] - moved)[inner].max() < 0.02


@pytest.mark.parametrize("kind", STRONG_PHASE_CASES)
def test_magnetisation_is_uneven(kind):
    """Inside the bodies the projected induction does not point one way: its mean direction's
    length (1 for a uniform magnetisation) stays well below 1."""
    s = strong_phase_case(kind, 0, shape=SHAPE, noise=0.0)
    inside = s.amplitude < np.exp(-20.0 / s.params["absorption_length_nm"])  # > 20 nm thick
    b = np.hypot(s.bx, s.by)
    ux, uy = (s.bx / np.where(b > 0, b, 1))[inside], (s.by / np.where(b > 0, b, 1))[inside]
    assert inside.sum() > 100
    assert np.hypot(ux.mean(), uy.mean()) < 0.8
    assert float(np.ptp(s.phase_m)) > 1.0


def test_deterministic_per_seed_and_noise_per_image():
    a = strong_phase_case("particles", 4, shape=SHAPE)
    b = strong_phase_case("particles", 4, shape=SHAPE)
    c = strong_phase_case("particles", 5, shape=SHAPE)
    np.testing.assert_array_equal(a.series, b.series)
    np.testing.assert_array_equal(a.flipped, b.flipped)
    np.testing.assert_array_equal(a.phase_e, b.phase_e)
    assert not np.allclose(a.phase_e, c.phase_e)
    clean = strong_phase_case("particles", 4, shape=SHAPE, noise=0.0)
    rel = (a.series - clean.series).std(axis=(1, 2)) / clean.series.mean(axis=(1, 2))
    np.testing.assert_allclose(rel, 0.05, rtol=0.1)
    d = (a.series - clean.series).reshape(3, -1)
    assert abs(np.corrcoef(d[0], d[2])[0, 1]) < 0.1  # independent draws per image
    assert a.params["microscope"]["voltage_kv"] == 300.0 and a.pixel_size_nm == 2.57
    np.testing.assert_array_equal(a.defocus_nm, [-4e5, 0.0, 4e5])


def test_bad_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        strong_phase_case("film", 0, shape=SHAPE)
    with pytest.raises(ValueError, match="flip_axis"):
        strong_phase_case("wires", 0, shape=SHAPE, flip_axis="z")
