"""Boundary models of the LTEM fitting solvers (issue 8 §1): periodic test, extended canvas, bad
input; the settle rule that ends clean-image runs (§4)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_phase.jobs import InputError
from napari_phase.ltem.boundary import canvas_margins, extend_reflect, looks_periodic
from napari_phase.ltem.pixelwise import pixelwise
from napari_phase.ltem.simulate import simulate
from napari_phase.ltem.siprad import make_problem, siprad
from napari_phase.physics import pearson_accuracy

PX = 5.0
DF = -1.0e6


def test_periodic_tiles_are_recognised_and_windows_are_not():
    for seed in (1, 3):
        tile = simulate("skyrmions", (128, 128), pixel_size_nm=PX, defocus_nm=DF, noise=0.5, seed=seed, boundary="periodic")
        window = simulate("skyrmions", (128, 128), pixel_size_nm=PX, defocus_nm=DF, noise=0.5, seed=seed, boundary="window")
        assert looks_periodic(tile.image)
        assert not looks_periodic(window.image)
    # lattices whose period fits one axis of the window, at large defocus (the earlier test called
    # these periodic: wrap excess within 0.1 of the spread), and a clean tile it missed
    for tex, df_mm, noise in (("stripes", -2, 0.0), ("skyrmions", -4, 0.1)):
        window = simulate(tex, (256, 256), pixel_size_nm=PX, defocus_nm=df_mm * 1e6, noise=noise, seed=1, boundary="window")
        assert not looks_periodic(window.image), (tex, df_mm)
        assert make_problem(window.image, pixel_size_nm=PX, defocus_nm=df_mm * 1e6).boundary == "extend"
    tile = simulate("skyrmions", (256, 256), pixel_size_nm=PX, defocus_nm=-2.5e5, noise=0.0, seed=1, boundary="periodic")
    assert looks_periodic(tile.image)
    assert not looks_periodic(np.ones((64, 64)))  # nothing varies: not confidently periodic
    assert not looks_periodic(np.random.default_rng(0).random((6, 6)))  # too small to tell


def test_window_simulation_differs_from_mirror_only_near_the_edges():
    kw = dict(pixel_size_nm=PX, defocus_nm=DF, seed=2)
    w = simulate("skyrmions", (96, 96), boundary="window", **kw)
    m = simulate("skyrmions", (96, 96), boundary="mirror", **kw)
    np.testing.assert_array_equal(w.phase_m, m.phase_m)  # the same specimen ...
    inner = (slice(40, 56), slice(40, 56))
    np.testing.assert_allclose(w.image[inner], m.image[inner], rtol=0.05, atol=0.02)  # ... the same centre
    assert np.abs(w.image[:3] - m.image[:3]).max() > 0.05  # ... but the edge sees the real outside
    with pytest.raises(ValueError):
        simulate("skyrmions", (32, 32), boundary="sideways")


def test_canvas_geometry():
    (t, b), (l, r) = canvas_margins((100, 61), 20)
    assert min(t, b, l, r) >= 20
    from scipy.fft import next_fast_len

    assert 100 + t + b == next_fast_len(140) and 61 + l + r == next_fast_len(101)
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    big = extend_reflect(a, ((5, 5), (6, 6)))  # a ring wider than the map itself
    assert big.shape == (13, 16) and np.array_equal(big[5:8, 6:10], a)


def test_boundary_choice_is_recorded_and_bad_values_rejected():
    tile = simulate("skyrmions", (64, 64), pixel_size_nm=PX, defocus_nm=DF, noise=0.1, seed=1, boundary="periodic")
    p = make_problem(tile.image, pixel_size_nm=PX, defocus_nm=DF)
    assert p.params["boundary"] == "periodic" and p.params["pad_px"] == 0 and p.params["boundary_requested"] == "auto"
    p = make_problem(tile.image, pixel_size_nm=PX, defocus_nm=DF, boundary="extend", pad_px=20)
    assert p.boundary == "extend" and p.pad_px == 20
    for bad in ("bogus", 3, None):
        with pytest.raises(InputError, match="boundary"):
            make_problem(tile.image, pixel_size_nm=PX, defocus_nm=DF, boundary=bad)


@pytest.mark.parametrize("boundary", ["extend", "periodic", "reflect"])
def test_every_boundary_solves_odd_and_tiny_images(boundary):
    s = simulate("stripes", (37, 52), pixel_size_nm=PX, defocus_nm=-2e5, noise=0.1, seed=2, boundary="window")
    r = pixelwise(s.image, pixel_size_nm=PX, defocus_nm=-2e5, iterations=20, boundary=boundary, device="cpu")
    assert r.phase.shape == (37, 52) and np.isfinite(r.phase).all()
    tiny = simulate("stripes", (17, 23), pixel_size_nm=PX, defocus_nm=-2e5, seed=2).image
    r = siprad(tiny, pixel_size_nm=PX, defocus_nm=-2e5, iterations=5, pretrain_iterations=5, boundary=boundary, device="cpu")
    assert r.phase.shape == (17, 23) and np.isfinite(r.phase).all()


def test_extended_canvas_with_a_mask():
    s = simulate("skyrmions", (64, 64), pixel_size_nm=PX, defocus_nm=DF, noise=0.1, n_contaminants=3, seed=5,
                 contaminant_radius_nm=(15.0, 25.0), boundary="window")
    r = pixelwise(s.image, pixel_size_nm=PX, defocus_nm=DF, amplitude=s.mask, boundary="extend", iterations=60, device="cpu")
    assert r.metadata["parameters"]["boundary"] == "extend"
    assert r.amplitude.shape == s.image.shape and np.all(r.amplitude[~s.mask] == 1.0)
    assert pearson_accuracy(r.phase, s.phase_m, 4) > 0.87  # measured 0.883 (reflect 0.885, periodic 0.835)


def test_settle_rule_ends_a_clean_run():
    s = simulate("skyrmions", (48, 48), pixel_size_nm=PX, defocus_nm=DF, noise=0.0, seed=1)
    kw = dict(pixel_size_nm=PX, defocus_nm=DF, iterations=1000, pretrain_iterations=20, discrepancy=0.0, patience=10**6,
              device="cpu", num_threads=1)
    r = siprad(s.image, settle_tolerance=0.02, **kw)
    assert r.metadata["stop_reason"] == "phase settled" and r.metadata["iterations_run"] < 1000
    assert pearson_accuracy(r.phase, s.phase_m, 4) > 0.97
    with pytest.raises(InputError):
        siprad(s.image, settle_tolerance=-1, **kw)
