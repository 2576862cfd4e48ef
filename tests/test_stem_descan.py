"""Descan and centre offset (stem/descan.py, issue 16 §1): the fit, the disc-centre measurement, and
iCoM / SSB / the CNN on a scan with a centre offset and a descan added, against the same scan
without them. Scored on the output as it comes (nothing removed)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_phase import stem
from napari_phase.jobs import InputError
from napari_phase.physics.metrics import xc
from napari_phase.stem import descan as D
from test_stem_sim import atoms_phase, blurred_truth, simulate

M, DX, STEP = 64, 0.2, 2
PAD = 8  # the descan is added on a padded detector, then the padding cut: edges see what comes in
WIN = (slice(3, 25), slice(5, 29))  # 8.8 × 9.6 Å: not a whole number of the 3.2 Å cells


def crystal_phase():
    """A square lattice of equal Gaussian 'atoms' (rad), periodic in the 12.8 Å box (4 × 4 cells)."""
    return atoms_phase(M, DX, crystal=True)


def add_descan(data, dy, dx):
    """Every pattern moved by (dy, dx) px (scipy linear-interpolation shift on a zero-padded
    detector: what square pixels record, no ringing), then the padding cut."""
    from scipy import ndimage

    out = np.empty(data.shape, np.float32)
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            big = np.pad(data[i, j].astype(np.float64), PAD)
            out[i, j] = ndimage.shift(big, (dy[i, j], dx[i, j]), order=1, mode="constant")[PAD:-PAD, PAD:-PAD]
    return out


def descan_map(shape, offset=(0.6, -0.4), across=((1.2, 1.2), (-1.0, -1.0))):
    u = np.linspace(0, 1, shape[0])[:, None] * np.ones((1, shape[1]))
    v = np.ones((shape[0], 1)) * np.linspace(0, 1, shape[1])[None, :]
    return offset[0] + across[0][0] * u + across[0][1] * v, offset[1] + across[1][0] * u + across[1][1] * v


def plane_fraction(a):
    from napari_phase.bench.stem_descan import plane_fraction as pf

    return pf(a, 2)


@pytest.fixture(scope="module")
def atoms():
    phi = crystal_phase()
    data, p, det, step_a = simulate(phi, DX, STEP)
    truth = blurred_truth(phi, p, STEP)
    win = np.ascontiguousarray(data[WIN])
    dy, dx = descan_map(win.shape[:2])
    return dict(data=data, det=det, step=step_a, truth=truth, win=win, win_truth=truth[WIN],
                win_descan=add_descan(win, dy, dx), dy=dy, dx=dx)


def _kw(a):
    return dict(energy_kev=300, scan_step_a=a["step"], detector_mrad_per_px=a["det"])


# ----------------------------------------------------------------------------- the fit


def test_fit_recovers_offset_and_slopes_per_axis_with_outliers_and_nan():
    rows, cols = np.indices((20, 30), dtype=np.float64)
    r, c = rows - 9.5, cols - 14.5
    my = 0.6 + 0.05 * r - 0.02 * c
    mx = -0.4 + 0.01 * r + 0.08 * c
    rng = np.random.default_rng(0)
    my = my + rng.normal(0, 0.01, my.shape)
    mx = mx + rng.normal(0, 0.01, mx.shape)
    my[3, 4], mx[7, 8] = 40.0, -25.0  # dead / saturated frames
    my[0, 0] = np.nan
    fit = D.fit_descan(my, mx)
    assert fit.model == "plane" and fit.outliers == 2
    assert fit.coef_y_px == pytest.approx((0.6, 0.05, -0.02), abs=0.005)
    assert fit.coef_x_px == pytest.approx((-0.4, 0.01, 0.08), abs=0.005)
    dy, dx = fit.shift_px()
    assert dy[0, -1] == pytest.approx(0.6 - 0.05 * 9.5 - 0.02 * 14.5, abs=0.02)  # first row, last column
    assert fit.across_scan_px() == pytest.approx((0.05 * 19 - 0.02 * 29, 0.01 * 19 + 0.08 * 29), abs=0.02)
    md = fit.to_metadata(1.25)
    assert md["coef_x_mrad"][2] == pytest.approx(1.25 * fit.coef_x_px[2])
    const = D.fit_descan(my, mx, model="constant")
    assert const.coef_y_px[1:] == (0.0, 0.0) and const.coef_y_px[0] == pytest.approx(0.6, abs=0.01)
    assert D.fit_descan(my, mx, model="off").shift_px()[0].max() == 0.0


def test_fit_leaves_terms_within_the_noise_at_zero():
    """Low dose: each disc centre is noisy (σ = 1 px here); a plane fitted to that noise would move
    every pattern (the CNN pays for a few hundredths of a px), so terms < 3 standard errors stay 0."""
    rng = np.random.default_rng(3)
    noise_y, noise_x = rng.normal(0, 1.0, (2, 32, 32))
    fit = D.fit_descan(noise_y, noise_x)
    assert fit.coef_y_px == (0.0, 0.0, 0.0) and fit.coef_x_px == (0.0, 0.0, 0.0) and "standard errors" in fit.note
    rows = np.arange(32)[:, None] - 15.5
    real = D.fit_descan(0.5 + noise_y, 0.02 * rows + noise_x)  # 0.5 px and 0.6 px across: many σ above the noise
    assert real.coef_y_px[0] == pytest.approx(0.5, abs=0.15) and real.coef_x_px[1] == pytest.approx(0.02, abs=0.01)


def test_fit_falls_back_to_constant_on_a_one_row_scan_and_fails_clearly():
    fit = D.fit_descan(np.full((1, 12), 0.7), np.full((1, 12), -0.2))
    assert fit.model == "constant" and "too thin" in fit.note and "constant" in fit.summary()
    assert fit.coef_y_px[0] == pytest.approx(0.7)
    with pytest.raises(InputError, match="no position has a finite"):
        D.fit_descan(np.full((4, 4), np.nan), np.zeros((4, 4)))
    with pytest.raises(InputError, match="descan must be one of"):
        D.fit_descan(np.zeros((4, 4)), np.zeros((4, 4)), model="quadratic")


def test_fit_that_does_not_settle_is_an_input_error(monkeypatch):
    my = np.zeros((10, 10))
    my[::5, ::5] = 1000.0  # outliers: the first refit changes the set
    monkeypatch.setattr(D, "MAX_REFITS", 0)
    with pytest.raises(InputError, match="did not converge"):
        D.fit_descan(my, np.zeros((10, 10)))


def test_disc_centre_and_pattern_shift_follow_the_sign():
    sub = 8  # a disc with partial-pixel edges (supersampled), interior contrast like a specimen's
    yy, xx = np.indices((64 * sub, 64 * sub)) / sub + (0.5 / sub - 0.5)
    cover = (np.hypot(yy - 32, xx - 32) < 13).reshape(64, sub, 64, sub).mean(axis=(1, 3))
    disc = (cover * (1 + 0.3 * np.sin(np.arange(64) / 3))[None, :]).astype(np.float32)
    moved = D.shift_patterns(disc[None], np.array([1.3]), np.array([-0.7]))
    y0, x0, ok0 = D.disc_centres(disc[None], 32.0, 32.0)
    y1, x1, ok1 = D.disc_centres(moved, 32.0, 32.0)
    assert ok0.all() and ok1.all()
    assert y1[0] - y0[0] == pytest.approx(1.3, abs=0.05)  # a halved or flipped shift fails
    assert x1[0] - x0[0] == pytest.approx(-0.7, abs=0.05)
    _, _, ok = D.disc_centres(np.zeros((2, 64, 64), np.float32), 32.0, 32.0)
    assert not ok.any()


def _pixel_disc(n, radius, cy, cx, sub=8, edge=0.0):
    """A disc of ``radius`` px centred at (cy, cx) as square pixels record it (each pixel the mean
    of sub² samples; ``edge``: a linear soft edge of that width, px)."""
    g = (np.arange(n * sub) + 0.5) / sub - 0.5
    r = np.hypot(g[:, None] - cy, g[None, :] - cx)
    cover = np.clip((radius - r) / edge + 0.5, 0, 1) if edge else (r < radius).astype(float)
    return cover.reshape(n, sub, n, sub).mean(axis=(1, 3)).astype(np.float32)


def test_disc_centre_is_read_to_two_thousandths_of_a_pixel():
    rng = np.random.default_rng(3)
    true = 32 + rng.uniform(-2.5, 2.5, (12, 2))
    discs = np.stack([_pixel_disc(64, 16.3, y, x, edge=0.3) for y, x in true])
    dy, dx, ok = D.disc_centres(discs, 32.0, 32.0)
    assert ok.all()
    err = np.concatenate([dy - (true[:, 0] - 32), dx - (true[:, 1] - 32)])
    assert np.abs(err).max() < 0.002, np.abs(err).max()  # measured 0.0003
    # the thresholded centroid alone (the first stage; the estimator before issue 16's last step) is not
    y0, x0, _, _ = D._first_stage(discs, np.arange(64) - 32.0, np.arange(64) - 32.0)
    assert np.abs(np.concatenate([y0 - (true[:, 0] - 32), x0 - (true[:, 1] - 32)])).max() > 0.01
    # point samples of a disc centred on a pixel, binned 2×2 (abTEM's patterns, issue 16): centre −0.25 px
    yy, xx = np.indices((128, 128)) - 64
    binned = (np.hypot(yy, xx) < 31.3).astype(np.float32).reshape(64, 2, 64, 2).sum(axis=(1, 3))
    by, bx, _ = D.disc_centres(binned[None], 32.0, 32.0)
    assert by[0] == pytest.approx(-0.25, abs=0.002) and bx[0] == pytest.approx(-0.25, abs=0.002)
    # the y and x offsets differ: an axis swap fails
    assert np.abs(dy - dx).max() > 1.0


def test_specimen_share_of_the_com_is_taken_out_of_the_disc_centres():
    rows, cols = np.indices((23, 31), dtype=np.float64)
    beam_y = 0.3 + 0.02 * rows - 0.01 * cols  # the descan (a plane) and the specimen's CoM shift s:
    beam_x = -0.2 - 0.015 * rows + 0.03 * cols  # a window that is not whole periods, so s has a mean
    s_y = 0.1 + 0.4 * np.sin(2 * np.pi * cols / 7.3) + 0.2 * np.cos(2 * np.pi * rows / 5.1)
    s_x = 0.3 * np.cos(2 * np.pi * cols / 6.1) - 0.25 * np.sin(2 * np.pi * rows / 4.3)
    disc_y, disc_x = beam_y + 0.2 * s_y, beam_x + 0.1 * s_x
    ey, ex, (ky, kx) = D.without_specimen_leak(disc_y, disc_x, beam_y + s_y, beam_x + s_x)
    assert ky == pytest.approx(0.2, abs=0.01) and kx == pytest.approx(0.1, abs=0.01)
    assert np.abs(ey - beam_y).max() < 0.003 and np.abs(ex - beam_x).max() < 0.003
    # left in, the share moves the fitted offset by more than iCoM can take (abTEM: 0.01 px -> 4 % plane)
    raw = D.fit_descan(disc_y, disc_x, model="plane", source="disc")
    assert abs(raw.coef_y_px[0] - D.fit_descan(ey, ex, model="plane", source="disc").coef_y_px[0]) > 0.005
    # no specimen (CoM = disc): nothing is taken out; NaN positions are left out
    disc_y[3, 4] = np.nan
    same_y, _, k0 = D.without_specimen_leak(disc_y, beam_x, disc_y, beam_x)
    assert max(k0) <= D.LEAK_MAX
    np.testing.assert_allclose(same_y, disc_y, atol=1e-12)


# ----------------------------------------------------------------------------- iCoM


def test_icom_default_removes_offset_and_descan_the_raw_one_fails(atoms):
    a = atoms
    clean = stem.icom(a["data"], **_kw(a))  # whole periodic box, no descan: the reference
    ref = xc(clean.phase, a["truth"])
    got = stem.icom(a["win_descan"], **_kw(a))
    raw = stem.icom(a["win_descan"], descan="off", **_kw(a))
    x_got, x_raw = xc(got.phase, a["win_truth"], 2), xc(raw.phase, a["win_truth"], 2)
    assert x_got >= ref - 0.01, (x_got, ref)
    assert plane_fraction(got.phase) < plane_fraction(a["win_truth"]) + 0.02  # a ramp left in fails here
    assert x_raw < ref - 0.3 and plane_fraction(raw.phase) > 0.5  # the case fails without the step
    md = got.metadata["descan"]
    assert md["model"] == "plane" and md["source"] == "disc"
    assert 0.0 < min(md["specimen_leak"]) and max(md["specimen_leak"]) <= D.LEAK_MAX  # measured and taken out
    fit = D.DescanFit("plane", "disc", got.phase.shape, tuple(md["coef_y_px"]), tuple(md["coef_x_px"]))
    fy, fx = fit.shift_px()
    # the fitted descan is the added one (sign, axes, size) to a few hundredths of a px
    assert np.abs(fy - a["dy"]).max() < 0.06 and np.abs(fx - a["dx"]).max() < 0.06
    assert got.metadata["descan"]["coef_x_mrad"][0] == pytest.approx(md["coef_x_px"][0] * a["det"])


def test_icom_descan_changes_a_clean_scan_by_less_than_the_target(atoms):
    a = atoms
    off = stem.icom(a["win"], descan="off", **_kw(a))
    on = stem.icom(a["win"], **_kw(a))
    assert xc(on.phase, off.phase) > 0.98  # measured 0.991: the disc reads a little of the specimen
    assert xc(on.phase, a["win_truth"], 2) >= xc(off.phase, a["win_truth"], 2) - 0.01
    const = stem.icom(a["win_descan"], descan="constant", **_kw(a))
    plane = stem.icom(a["win_descan"], **_kw(a))
    # a constant removes the offset only: the descan's slope integrates to a quadratic the plane removes
    assert xc(plane.phase, a["win_truth"], 2) > xc(const.phase, a["win_truth"], 2) + 0.05


def test_icom_descan_from_the_com_takes_the_windows_mean_gradient_too(atoms):
    a = atoms
    com = stem.icom(a["win_descan"], descan_source="com", **_kw(a))
    assert com.metadata["descan"]["source"] == "com"
    # the CoM plane also removes the window's (real) mean specimen gradient: never better than the disc
    assert xc(com.phase, a["win_truth"], 2) <= xc(stem.icom(a["win_descan"], **_kw(a)).phase, a["win_truth"], 2) + 0.005


def test_icom_keeps_the_uncorrected_result_when_the_fit_fails(atoms, monkeypatch):
    a = atoms

    def boom(*args, **kwargs):
        raise InputError("descan fit did not converge (test)")

    monkeypatch.setattr(D, "fit_descan", boom)
    res = stem.icom(a["win_descan"], **_kw(a))
    raw = stem.icom(a["win_descan"], descan="off", **_kw(a))
    assert "did not converge" in res.metadata["descan_skipped"] and res.metadata["descan"] is None
    np.testing.assert_allclose(res.phase, raw.phase, atol=1e-6)


def test_descan_bad_input(atoms):
    a = atoms
    with pytest.raises(InputError, match="descan must be one of"):
        stem.icom(a["win"], descan="sideways", **_kw(a))
    with pytest.raises(InputError, match="descan_source"):
        stem.icom(a["win"], descan_source="edge", **_kw(a))
    with pytest.raises(InputError, match="descan must be one of"):
        stem.ssb(a["win"], semiangle_mrad=20, descan="sideways", **_kw(a))
    bad = a["win_descan"].copy()
    bad[2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        stem.ssb(bad, semiangle_mrad=20, **_kw(a))
    dead = a["win_descan"].copy()
    dead[4, :5] = 0.0  # empty frames: left out of the fit, nothing crashes
    res = stem.icom(dead, **_kw(a))
    assert res.metadata["descan"]["model"] == "plane" and np.isfinite(res.phase).all()


# ----------------------------------------------------------------------------- SSB


def test_ssb_default_recentres_the_patterns(atoms):
    a = atoms
    kw = dict(semiangle_mrad=20.0, **_kw(a))
    ref = xc(stem.ssb(a["win"], descan="off", **kw).phase, a["win_truth"], 2)
    got = stem.ssb(a["win_descan"], **kw)
    raw = stem.ssb(a["win_descan"], descan="off", **kw)
    x_got, x_raw = xc(got.phase, a["win_truth"], 2), xc(raw.phase, a["win_truth"], 2)
    assert x_got >= ref - 0.01, (x_got, ref)
    assert x_raw < ref - 0.03, (x_raw, ref)
    assert plane_fraction(got.phase) < 0.02
    # read in blocks of 3 rows, every block is re-centred at its own rows: the same phase
    blocks = stem.ssb(a["win_descan"], block_rows=3, **kw)
    np.testing.assert_allclose(blocks.phase, got.phase, atol=1e-3 * np.abs(got.phase).max())
    cy = got.metadata["descan"]["coef_y_px"]
    fit = D.DescanFit("plane", "disc", got.phase.shape, tuple(cy), tuple(got.metadata["descan"]["coef_x_px"]))
    assert np.abs(fit.shift_px()[0] - a["dy"]).max() < 0.1


# ----------------------------------------------------------------------------- the CNN (shipped model)


def _crystal_scan(scan_shape, phase_rad=0.5):
    """A 3.2 Å square crystal (equal Gaussian atoms) scanned at 0.2 Å (16 steps per cell) by the
    training forward model (airpi.data.simulate_scan), 64² detector, disc radius 16 px."""
    from napari_phase.stem.airpi import data as adata
    from napari_phase.stem.airpi.preprocess import window_pixel_a

    dxw = window_pixel_a(300.0, 20.0)
    n = int(np.ceil(max(scan_shape) * 0.2 / dxw)) + 2 * (32 + 4) + 2
    yy, xx = np.indices((n, n)) * dxw
    phi = np.zeros((n, n))
    for i in range(-1, int(n * dxw / 3.2) + 2):
        for j in range(-1, int(n * dxw / 3.2) + 2):
            phi += phase_rad * np.exp(-((yy - (i + 0.3) * 3.2) ** 2 + (xx - (j + 0.6) * 3.2) ** 2) / (2 * 0.35**2))
    return adata.simulate_scan(phi.astype(np.float32), scan_shape=scan_shape, scan_step_a=0.2)


@pytest.mark.skipif("airpi_default" not in __import__("napari_phase.models", fromlist=["x"]).list_models(),
                    reason="no shipped CNN model")
def test_cnn_default_with_offset_and_descan_matches_the_clean_whole_cell_scan():
    import torch

    from napari_phase.stem.airpi import cnn

    torch.set_num_threads(1)
    whole = _crystal_scan((16, 16))  # one whole 3.2 Å cell
    part = _crystal_scan((20, 22))  # 4.0 × 4.4 Å: not whole cells
    kw = dict(energy_kev=300.0, semiangle_mrad=20.0, scan_step_a=0.2, detector_mrad_per_px=part.detector_mrad_per_px,
              device="cpu")

    def score(sim, res):
        return xc(res.phase, sim.truth_on_grid(res.phase.shape, res.pixel_size), crop=4)

    ref = score(whole, cnn(whole.data, **kw))
    dy, dx = descan_map(part.data.shape[:2])
    moved = add_descan(part.data, dy, dx)
    got = cnn(moved, **kw)
    raw = cnn(moved, descan="off", **kw)
    x_got, x_raw = score(part, got), score(part, raw)
    assert x_got >= ref - 0.01, (x_got, ref)
    assert x_raw < ref - 0.3, (x_raw, ref)  # the case fails without the step
    truth = part.truth_on_grid(got.phase.shape, got.pixel_size)
    from napari_phase.bench.stem_descan import plane_fraction as pf

    assert pf(got.phase, 4) < pf(truth, 4) + 0.02
    # the network alone reads every pattern around its fitted centre: as good as on the clean window
    alone_clean = score(part, cnn(part.data, low_frequency=None, **kw))
    alone = score(part, cnn(moved, low_frequency=None, **kw))
    assert alone >= alone_clean - 0.02, (alone, alone_clean)
    md = got.metadata["descan"]
    assert md["source"] == "disc" and md["coef_y_px"][0] == pytest.approx(dy.mean(), abs=0.05)
    assert md["coef_x_px"][0] == pytest.approx(dx.mean(), abs=0.05)
