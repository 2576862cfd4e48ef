"""Contaminant detector ("Suggest mask"): IoU with the true particles on fresh simulations and the
bundled sample, against the automatic threshold, bad input, and the panel button (Xvfb:
``QT_API=pyqt6 xvfb-run -a -s "-screen 0 1600x1000x24" python -m pytest tests/test_ltem_detect.py -q``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import napari_phase
from napari_phase.jobs import InputError
from napari_phase.ltem.detect import (
    WEIGHTS,
    _load,
    card,
    contaminant_probability,
    features,
    iou,
    mask_from_probability,
    probability,
    suggest_contaminant_mask,
    tiled_probability,
)
from napari_phase.ltem.mask import suggest_threshold, threshold_mask
from napari_phase.ltem.simulate import simulate

SAMPLE = Path(napari_phase.__file__).parent / "sample_data" / "ltem_skyrmions.npz"
SEEDS = (20, 21)  # never used in training (1000+) nor in the benchmark (10-14)


def _detect(image):
    return suggest_contaminant_mask(image, pixel_size_nm=5.0, defocus_nm=-1.0e6)


def _baseline(image):
    return threshold_mask(image, suggest_threshold(image), smooth_px=2.0, min_size_px=10)


@pytest.fixture(scope="module")
def scores():
    out = {}
    for noise in (0.3, 0.5):
        for texture in ("skyrmions", "stripes", "bubbles"):
            for seed in SEEDS:
                s = simulate(texture, noise=noise, n_contaminants=6, seed=seed)
                out[(noise, texture, seed)] = (iou(_detect(s.image), s.mask), iou(_baseline(s.image), s.mask))
    return out


@pytest.mark.parametrize("noise", [0.3, 0.5])
def test_iou_on_fresh_simulations(scores, noise):
    # measured (seeds 20, 21, shipped weights): mean 0.819 at 30 %, 0.762 at 50 %; every image >= 0.63
    det = [v[0] for k, v in scores.items() if k[0] == noise]
    base = [v[1] for k, v in scores.items() if k[0] == noise]
    assert np.mean(det) >= {0.3: 0.78, 0.5: 0.72}[noise], det
    assert min(det) >= 0.58, det
    assert np.mean(det) >= np.mean(base) + 0.35, (det, base)


def test_iou_on_bundled_sample():
    d = np.load(SAMPLE)
    got = iou(_detect(d["image"]), d["mask_true"])
    assert got >= 0.78, got  # measured 0.826; the automatic threshold: 0.27
    assert iou(_baseline(d["image"]), d["mask_true"]) < got - 0.4


def test_card_matches_the_shipped_weights():
    c = card()
    params = _load(str(WEIGHTS))
    assert 0.0 < params["grow_threshold"] <= params["threshold"] < 1.0
    assert [st["stage"] for st in c["stages"]] == [1, 2] and len(params["stages"]) == 2
    assert min(c["heldout_iou"].values()) >= 0.7, c["heldout_iou"]  # the target, as trained
    # the card's bundled-sample figure is what these weights give
    d = np.load(SAMPLE)
    assert abs(iou(_detect(d["image"]), d["mask_true"]) - c["heldout_iou"]["bundled sample"]) < 0.005


def test_other_sizes_and_defoci():
    # 128² (3 particles) and -0.5 mm (outside the benchmark's -1 mm): measured 0.83-0.87 and 0.76-0.84
    got = {}
    for texture in ("skyrmions", "stripes", "bubbles"):
        s = simulate(texture, shape=(128, 128), noise=0.3, n_contaminants=3, seed=26)
        got[(texture, "128")] = iou(_detect(s.image), s.mask)
        s = simulate(texture, noise=0.3, n_contaminants=6, seed=27, defocus_nm=-0.5e6)
        got[(texture, "-0.5mm")] = iou(suggest_contaminant_mask(s.image, pixel_size_nm=5.0, defocus_nm=-0.5e6), s.mask)
    assert min(got.values()) >= 0.68, got
    assert np.mean(list(got.values())) >= 0.76, got


def test_contrast_inverted_image_is_not_particles():
    # a bright blob is not an absorbing particle: the flux-deficit features carry the sign
    s = simulate("skyrmions", noise=0.3, n_contaminants=6, seed=23)
    assert iou(_detect(2 * s.image.mean() - s.image), s.mask) < 0.2


def test_thresholds_move_the_mask_the_right_way():
    s = simulate("bubbles", noise=0.3, n_contaminants=6, seed=24)
    lo = suggest_contaminant_mask(s.image, pixel_size_nm=5.0, defocus_nm=-1.0e6, threshold=0.2, grow_threshold=0.1)
    hi = suggest_contaminant_mask(s.image, pixel_size_nm=5.0, defocus_nm=-1.0e6, threshold=0.9, grow_threshold=0.9)
    mid = _detect(s.image)
    assert lo.sum() > mid.sum() > hi.sum()
    assert (hi <= lo).all()


def test_mask_uses_the_calibrated_thresholds(tmp_path):
    s = simulate("stripes", noise=0.5, n_contaminants=6, seed=21)
    params = _load(str(WEIGHTS))
    prob = contaminant_probability(s.image, pixel_size_nm=5.0)
    min_px = int(np.pi * 3.0**2)  # a 15-nm-radius disk at 5 nm/px
    assert np.array_equal(_detect(s.image), mask_from_probability(prob, params["threshold"], params["grow_threshold"], min_px))
    # the thresholds are read from the weights file: stricter ones there give the stricter mask
    raw = json.loads(WEIGHTS.read_text())
    raw.update(threshold=0.97, grow_threshold=0.96)
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps(raw))
    got = suggest_contaminant_mask(s.image, pixel_size_nm=5.0, defocus_nm=-1.0e6, weights=strict)
    assert np.array_equal(got, mask_from_probability(prob, 0.97, 0.96, min_px))
    assert got.sum() < 0.9 * _detect(s.image).sum()


def test_mask_from_probability_hysteresis_size_holes():
    yy, xx = np.mgrid[:80, :80]
    r1 = np.hypot(yy - 20, xx - 20)
    r2 = np.hypot(yy - 60, xx - 60)
    prob = np.zeros((80, 80), np.float32)
    prob[(r1 > 3) & (r1 < 8)] = 0.9  # a confident ring: its hole is filled
    prob[r2 < 6] = 0.4  # a weak blob with no confident pixel: dropped at threshold 0.5
    prob[2:4, 70:73] = 0.95  # a confident speck of 6 px: under the size limit
    m = mask_from_probability(prob, 0.5, 0.3, 28)
    assert m[r1 < 8].all() and m[r1 <= 3].all()  # filled
    assert not m[r2 < 6].any() and not m[2:4, 70:73].any()
    prob[60, 60] = 0.6  # one confident pixel: the weak blob grows to its region above 0.3
    m = mask_from_probability(prob, 0.5, 0.3, 28)
    assert m[r2 < 6].all() and m.sum() == (r1 < 8).sum() + (r2 < 6).sum()


def test_tiles_join_without_seams():
    # large images run tile by tile (bounded memory); the margin covers every filter's reach
    s = simulate("skyrmions", shape=(470, 120), noise=0.3, n_contaminants=5, seed=3)
    params = _load(str(WEIGHTS))
    whole = probability(features(s.image), params)
    assert np.array_equal(tiled_probability(s.image, params, tile_px=64), whole)
    # too narrow a margin shows seams: the comparison above can fail
    assert np.abs(tiled_probability(s.image, params, tile_px=64, margin_px=48) - whole).max() > 0.05


def test_old_or_wrong_weights_file(tmp_path):
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps({"mean": [0.0], "std": [1.0]}))
    with pytest.raises(InputError, match="format"):
        suggest_contaminant_mask(np.random.default_rng(0).random((64, 64)) + 1, pixel_size_nm=5.0, defocus_nm=-1e6, weights=bad)


def test_no_particles_no_mask():
    for texture in ("skyrmions", "stripes", "bubbles"):
        s = simulate(texture, noise=0.5, n_contaminants=0, seed=22)
        assert _detect(s.image).mean() < 0.003, texture  # dark skyrmion cores / domain walls are not particles


def test_intensity_scale_and_pixel_size():
    s = simulate("skyrmions", noise=0.3, n_contaminants=6, seed=23)
    m = _detect(s.image)
    assert np.array_equal(m, _detect(1000.0 * s.image))  # counts vs normalised intensity: the same
    # the same film sampled at 2.5 nm/px (upsampled) is resampled to the training 5 nm/px
    from scipy import ndimage

    up = ndimage.zoom(s.image, 2, order=1)
    m2 = suggest_contaminant_mask(up, pixel_size_nm=2.5, defocus_nm=-1.0e6)
    assert m2.shape == up.shape
    assert iou(m2[::2, ::2], s.mask) >= 0.8 * iou(m, s.mask)
    # a wrong (4x) pixel size puts the particles outside the learnt scale: clearly worse
    assert iou(suggest_contaminant_mask(s.image, pixel_size_nm=20.0, defocus_nm=-1.0e6), s.mask) < iou(m, s.mask) - 0.1


def test_probability_is_high_inside_particles_low_on_film():
    s = simulate("bubbles", noise=0.3, n_contaminants=6, seed=24)
    p = contaminant_probability(s.image, pixel_size_nm=5.0)
    assert p.shape == s.image.shape and p.dtype == np.float32
    assert np.median(p[s.mask]) > 0.5 and np.percentile(p[~s.mask], 99) < 0.5


@pytest.mark.parametrize(
    "image,kw,match",
    [
        (np.full((64, 64), np.nan, np.float32), {}, "NaN"),
        (np.ones((64, 64), np.float32), {}, "constant"),
        (np.random.default_rng(0).random((16, 16)), {}, "too small"),
        (np.random.default_rng(0).random((4, 64, 64)), {}, "2-D"),
        (-np.random.default_rng(0).random((64, 64)), {}, "mean"),
        (np.random.default_rng(0).random((64, 64)) + 1, {"defocus_nm": 0.0}, "defocus"),
        (np.random.default_rng(0).random((64, 64)) + 1, {"pixel_size_nm": -1.0}, "pixel_size"),
        (np.random.default_rng(0).random((64, 64)) + 1, {"threshold": 1.5}, "threshold"),
        (np.random.default_rng(0).random((64, 64)) + 1, {"threshold": 0.4, "grow_threshold": 0.6}, "grow_threshold"),
        (np.where(np.eye(64, dtype=bool), np.inf, 1.0), {}, "NaN or inf"),
        (np.random.default_rng(0).random((64, 64)) + 1, {"pixel_size_nm": 1.0}, "too small an area"),
        (np.random.default_rng(0).random((64, 64)) + 1, {"voltage_kv": np.nan}, "voltage"),
        (np.zeros((0, 64)), {}, "too small"),
        (np.random.default_rng(0).random((64, 64)).astype(np.complex64), {}, "real"),
    ],
)
def test_bad_input(image, kw, match):
    args = {"pixel_size_nm": 5.0, "defocus_nm": -1.0e6, **kw}
    with pytest.raises(InputError, match=match):
        suggest_contaminant_mask(image, **args)


def test_odd_non_square_image():
    s = simulate("stripes", shape=(97, 131), noise=0.3, n_contaminants=3, seed=25)
    m = _detect(s.image)
    assert m.shape == (97, 131) and m.dtype == bool


# --------------------------------------------------------------------------- the panel's button
@pytest.mark.gui
def test_suggest_mask_button_fills_labels(make_napari_viewer, qtbot):
    from qtpy.QtCore import Qt

    from napari_phase.widgets.mask_tool import MASK_LAYER_NAME

    d = np.load(SAMPLE)
    viewer = make_napari_viewer()
    _, panel = viewer.window.add_plugin_dock_widget("napari-phase", "SIPRAD (LTEM)")
    viewer.add_image(d["image"], name="ltem", scale=(5.0, 5.0), units=("nm", "nm"))
    panel.pixel_size.setValue(5.0)
    panel.defocus_mm.setValue(-1.0)
    tool = panel.mask_tool
    qtbot.mouseClick(tool.suggest_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: MASK_LAYER_NAME in viewer.layers and tool._worker is None, timeout=20000)
    layer = viewer.layers[MASK_LAYER_NAME]
    assert type(layer).__name__ == "Labels" and list(layer.scale) == [5.0, 5.0]
    assert iou(layer.data == 1, d["mask_true"]) >= 0.78
    assert tool.suggest_button.isEnabled() and "particle" in tool.info.text()
    assert panel.amplitude.currentText() == "mask" and panel.mask_combo.current_layer() == layer
    tool.edit_mask()  # the brush edits the suggested layer
    assert layer.mode == "paint" and viewer.layers.selection.active is layer
    # a wrong pixel size in the panel reaches the detector (2x too large: a different, worse mask;
    # measured IoU 0.16)
    panel.pixel_size.setValue(10.0)
    qtbot.mouseClick(tool.suggest_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: tool._worker is None, timeout=60000)
    assert iou(viewer.layers[MASK_LAYER_NAME].data == 1, d["mask_true"]) < 0.55


@pytest.mark.gui
def test_suggest_mask_bad_image_warns(make_napari_viewer, qtbot, monkeypatch):
    from napari_phase.widgets import _runner

    got = []
    monkeypatch.setattr(_runner, "show_warning", lambda m: got.append(str(m)))
    viewer = make_napari_viewer()
    _, panel = viewer.window.add_plugin_dock_widget("napari-phase", "SIPRAD (LTEM)")
    viewer.add_image(np.random.default_rng(0).random((20, 20)).astype(np.float32) + 1, name="tiny")
    tool = panel.mask_tool
    tool.suggest_mask()
    qtbot.waitUntil(lambda: tool._worker is None, timeout=10000)
    assert any("too small" in m for m in got), got
    assert tool.suggest_button.isEnabled()
    # a NaN frame: the detector's one-line message, no crash
    nan = np.full((64, 64), np.nan, np.float32)
    tool.set_image_layer(viewer.add_image(nan, name="nan"))
    tool.suggest_mask()
    qtbot.waitUntil(lambda: tool._worker is None, timeout=10000)
    assert any("NaN" in m for m in got), got
    # the wrong layer type (RGB) is refused before any work starts
    rgb = viewer.add_image(np.zeros((64, 64, 3), np.uint8), name="rgb", rgb=True)
    tool.set_image_layer(rgb)
    assert tool.suggest_mask() is None and tool._worker is None
    assert any("grayscale" in m for m in got), got
