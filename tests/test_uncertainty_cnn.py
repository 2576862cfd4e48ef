"""Per-pixel σ of the 4D-STEM CNN (issue 19): the rotated, re-sampled reader, the way back to the
result's grid, and the σ of the shipped model (dose, non-count data, cancel, unchanged phase, CLI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from job_helpers import run_cancelling_after
from napari_phase import models
from napari_phase.io.writer import load_result
from napari_phase.stem.airpi import data as sim
from napari_phase.stem.airpi.reconstruct import cnn, cnn_job
from napari_phase.stem.airpi.uncertainty import Resampled, looks_like_counts, rotate_back, rotate_centre
from napari_phase.uncertainty import coverage

torch.set_num_threads(1)
shipped = pytest.mark.skipif("airpi_default" not in models.list_models(), reason="no shipped CNN model")


def test_resampled_rows_are_rotated_poisson_draws_the_same_on_every_read():
    rng = np.random.default_rng(0)
    counts = rng.uniform(5, 50, (6, 5, 4, 3)).astype(np.float32)
    r = Resampled(counts, rotate=True, seed=3)
    a, b = r[0:4], r[2:6]
    np.testing.assert_array_equal(a[2:], b[:2])  # a row read twice (a halo) is the same draw
    assert np.array_equal(a, np.round(a)) and a.shape == (4, 5, 4, 3)
    many = np.mean([Resampled(counts, rotate=True, seed=s)[0:6] for s in range(300)], axis=0)
    np.testing.assert_allclose(many, counts[::-1, ::-1, ::-1, ::-1], rtol=0.1)  # rotated by 180°, unbiased
    plain = np.mean([Resampled(counts, rotate=False, seed=s)[0:6] for s in range(300)], axis=0)
    np.testing.assert_allclose(plain, counts, rtol=0.1)
    assert rotate_centre((31.0, 30.0), (64, 64)) == (32.0, 33.0)


def test_rotate_back_puts_each_scan_position_where_it_was():
    ny, nx, s = 7, 9, 2  # scan 7 × 9, 2 object px per step
    f = lambda y, x: 0.3 * y - 0.1 * x + 0.01 * x * y  # noqa: E731
    jy, jx = np.meshgrid(np.arange(ny * s), np.arange(nx * s), indexing="ij")
    rotated = f((ny - 1) * s - jy, (nx - 1) * s - jx)  # the CNN's phase of the rotated scan, on its own grid
    back = rotate_back(rotated, (ny, nx), (s, s))
    inside = (jy <= (ny - 1) * s) & (jx <= (nx - 1) * s)
    np.testing.assert_allclose(back[inside], f(jy, jx)[inside], atol=1e-9)


def test_looks_like_counts():
    assert looks_like_counts(np.full((2, 2, 4, 4), 3.0, np.float32))
    assert not looks_like_counts(np.full((2, 2, 4, 4), 0.3, np.float32))


@pytest.fixture(scope="module")
def scans():
    src = sim.SmoothRandomSource(2, seed=5)
    return {dose: sim.simulate_scan(src, scan_shape=(16, 16), dose_e_per_a2=dose, seed=1) for dose in (500.0, 1e5)}


def _kw(s):
    return dict(energy_kev=s.energy_kev, semiangle_mrad=s.semiangle_mrad, scan_step_a=s.scan_step_a,
                detector_mrad_per_px=s.detector_mrad_per_px, device="cpu", threads=1)


@shipped
def test_cnn_sigma_shrinks_with_dose_and_leaves_the_phase_alone(scans):
    low, high = scans[500.0], scans[1e5]
    rl = cnn(low.data, uncertainty=True, **_kw(low))
    rh = cnn(high.data, uncertainty=True, **_kw(high))
    np.testing.assert_array_equal(rh.phase, cnn(high.data, **_kw(high)).phase)
    for r in (rl, rh):
        s = r.arrays["phase_sigma"]
        assert s.shape == r.phase.shape and np.isfinite(s).all() and (s > 0).all()
        assert r.metadata["uncertainty"]["calibrated"] is False and r.metadata["uncertainty"]["scale"] > 0
    assert np.median(rl.arrays["phase_sigma"]) > 2 * np.median(rh.arrays["phase_sigma"])
    # the σ at 500 e/Å² against the truth on this smooth phase object (inside the training
    # distribution) over-covers with the validation-fitted c = 1.72 (measured 0.93 / 0.99; the
    # unscaled spread 0.7 within 1σ); a σ half as large leaves far more pixels outside 1σ
    truth = low.truth_on_grid(rl.phase.shape, rl.pixel_size)
    f1, f2 = coverage(rl.phase, truth, rl.arrays["phase_sigma"], crop=4)
    h1, _ = coverage(rl.phase, truth, rl.arrays["phase_sigma"] / 2, crop=4)
    assert 0.85 <= f1 <= 0.98 and f2 >= 0.95, (f1, f2)
    assert h1 < f1 - 0.1  # measured 0.78 vs 0.93


@shipped
def test_cnn_sigma_refused_for_scaled_data_and_cancel_keeps_the_phase(scans):
    s = scans[1e5]
    scaled = s.data / s.data.sum(axis=(-2, -1), keepdims=True)
    r = cnn(scaled, uncertainty=True, **_kw(s))
    assert "phase_sigma" not in r.arrays and "counts" in r.metadata["uncertainty"]["note"]
    plain = cnn(s.data, **_kw(s))
    res = run_cancelling_after(cnn_job(s.data, uncertainty=True, **_kw(s)), 6)
    assert "phase_sigma" not in res.arrays and res.metadata["uncertainty"]["computed"] is False
    if not res.metadata.get("cancelled"):  # cancelled after the CNN pass: its phase is kept whole
        np.testing.assert_array_equal(res.phase, plain.phase)
    with pytest.raises(TypeError, match="uncertainty"):
        cnn(s.data, uncertainty=1, **_kw(s))


@shipped
def test_cli_cnn_uncertainty(tmp_path, scans):
    from napari_phase.cli import main

    s = scans[1e5]
    np.save(tmp_path / "scan.npy", s.data)
    out = tmp_path / "c.h5"
    assert main(["cnn", str(tmp_path / "scan.npy"), "--energy-kev", str(s.energy_kev), "--semiangle-mrad",
                 str(s.semiangle_mrad), "--scan-step-a", str(s.scan_step_a), "--detector-mrad-per-px",
                 str(s.detector_mrad_per_px), "--threads", "1", "--uncertainty", "--out", str(out), "--quiet"]) == 0
    back = load_result(out)
    assert back.arrays["phase_sigma"].shape == back.phase.shape and (back.arrays["phase_sigma"] > 0).all()
