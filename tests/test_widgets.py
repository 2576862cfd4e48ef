"""Panel helper (JobRunner), result layers and the SIPRAD panel with its mask tool.

Viewer tests need OpenGL: run under Xvfb, e.g.
``xvfb-run -a -s "-screen 0 1600x1000x24" python -m pytest tests/test_widgets.py -q``.
Jobs here are fakes (fast, deterministic) except the SITIE preview, which runs the real solver.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_phase.jobs import InputError, JobCancelled, Progress
from napari_phase.result import PhaseResult

pytestmark = pytest.mark.gui


# --------------------------------------------------------------------------- fakes
def slow_job(n=100, dt=0.03, *, keep_best=True, log=None, image=None):
    """Yields n slow steps with a partial result every 10; on cancel returns its best so far."""
    best = None
    log = log if log is not None else {}
    try:
        for i in range(n):
            time.sleep(dt)
            best = PhaseResult({"phase": np.full((16, 16), float(i), np.float32)}, 2.0, metadata={"method": "fake"})
            log["step"] = i + 1
            yield Progress(i + 1, n, f"step {i + 1}", best if i % 10 == 0 else None)
    except JobCancelled:
        log["cancelled_at"] = time.perf_counter()
        if keep_best and best is not None:
            best.metadata["cancelled"] = True
            return best
        raise
    finally:
        log["closed"] = True
    phase = np.zeros((16, 16), np.float32) if image is None else image
    return PhaseResult({"phase": phase}, 2.0, metadata={"method": "fake"})


def failing_job(exc):
    yield Progress(0, 2, "about to fail")
    raise exc


def quick_job(value=1.0):
    yield Progress(1, 1, "quick")
    return PhaseResult({"phase": np.full((16, 16), value, np.float32)}, 2.0, metadata={"method": "fake"})


@pytest.fixture
def notes(monkeypatch):
    """Capture the warnings / errors the widgets show (napari notifications)."""
    from napari_phase.widgets import _runner

    got = {"warning": [], "error": [], "info": []}
    monkeypatch.setattr(_runner, "show_warning", lambda m: got["warning"].append(str(m)))
    monkeypatch.setattr(_runner, "show_error", lambda m: got["error"].append(str(m)))
    monkeypatch.setattr(_runner, "show_info", lambda m: got["info"].append(str(m)))
    return got


@pytest.fixture
def runner(qtbot):
    from napari_phase.widgets._runner import JobRunner

    results = []
    partials = []
    r = JobRunner(on_result=results.append, on_partial=partials.append, name="fake", partial_interval_s=0.0)
    r.results, r.partials = results, partials
    qtbot.addWidget(r)
    yield r
    if r.is_running:
        r.cancel()
        qtbot.waitUntil(lambda: not r.is_running, timeout=5000)


def _skyrmion_image(shape=(96, 96), px=5.0, defocus_nm=-1.0e6):
    """A small simulated LTEM image (no noise) and its parameters."""
    from napari_phase.ltem.simulate import simulate

    s = simulate("skyrmions", shape=shape, pixel_size_nm=px, defocus_nm=defocus_nm, noise=0.0, seed=0)
    return s.image.astype(np.float32), px, defocus_nm


# --------------------------------------------------------------------------- JobRunner
def test_runner_cancel_midway_is_prompt_and_keeps_best(runner, qtbot):
    log = {}
    assert runner.start(lambda: slow_job(100, 0.03, log=log))
    assert runner.is_running and not runner.run_button.isEnabled() and runner.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: log.get("step", 0) >= 15, timeout=5000)
    t0 = time.perf_counter()
    with qtbot.waitSignal(runner.finished, timeout=2000) as blocker:
        runner.cancel()
    assert time.perf_counter() - t0 < 2.0
    assert blocker.args == ["cancelled"]
    assert log["step"] < 100 and "cancelled_at" in log
    assert not runner.is_running and runner.run_button.isEnabled() and not runner.cancel_button.isEnabled()
    assert len(runner.results) == 1 and runner.results[0].cancelled  # kept (checkbox on by default)
    assert runner.partials, "live previews were delivered"
    assert "cancelled" in runner.status_text


def test_runner_cancel_discards_when_unchecked(runner, qtbot):
    runner.keep_box.setChecked(False)
    log = {}
    runner.start(lambda: slow_job(100, 0.02, log=log))
    qtbot.waitUntil(lambda: log.get("step", 0) >= 3, timeout=5000)
    with qtbot.waitSignal(runner.finished, timeout=2000):
        runner.cancel()
    assert runner.results == [] and "discarded" in runner.status_text
    # a job that cannot return a best-so-far: JobCancelled propagates, still a clean cancel
    log2 = {}
    runner.start(lambda: slow_job(100, 0.02, keep_best=False, log=log2))
    qtbot.waitUntil(lambda: log2.get("step", 0) >= 3, timeout=5000)
    with qtbot.waitSignal(runner.finished, timeout=2000) as blocker:
        runner.cancel()
    assert blocker.args == ["cancelled"] and runner.results == []


def test_runner_input_error_is_a_warning_and_runner_usable(runner, qtbot, notes):
    with qtbot.waitSignal(runner.finished, timeout=3000) as blocker:
        runner.start(lambda: failing_job(InputError("defocus must not be zero")))
    assert blocker.args == ["failed"]
    assert any("defocus must not be zero" in m for m in notes["warning"]) and not notes["error"]
    assert runner.run_button.isEnabled() and not runner.is_running
    # InputError raised while *building* the job (main thread): rejected, nothing runs
    def bad_make():
        raise InputError("pick an image layer first")

    with qtbot.waitSignal(runner.finished, timeout=1000) as blocker:
        assert runner.start(bad_make) is False
    assert blocker.args == ["rejected"] and any("pick an image" in m for m in notes["warning"])
    with qtbot.waitSignal(runner.finished, timeout=3000) as blocker:
        runner.start(lambda: quick_job(3.0))
    assert blocker.args == ["done"] and runner.results[-1].phase[0, 0] == 3.0


def test_runner_runtime_error_is_an_error_and_runner_usable(runner, qtbot, notes):
    # (superqt treats a RuntimeError from a generator as "worker deleted"; the runner must not hang)
    with qtbot.waitSignal(runner.finished, timeout=3000) as blocker:
        runner.start(lambda: failing_job(RuntimeError("CUDA kernel exploded")))
    assert blocker.args == ["failed"]
    assert any("CUDA kernel exploded" in m for m in notes["error"])
    assert isinstance(runner.last_error, RuntimeError)
    assert runner.run_button.isEnabled()
    with qtbot.waitSignal(runner.finished, timeout=3000) as blocker:
        runner.start(lambda: failing_job(ValueError("other failure")))
    assert blocker.args == ["failed"] and any("other failure" in m for m in notes["error"])
    with qtbot.waitSignal(runner.finished, timeout=3000) as blocker:
        runner.start(quick_job)
    assert blocker.args == ["done"]


def test_runner_refuses_second_start_and_survives_widget_deletion(qtbot):
    from qtpy import sip  # noqa: F401 - PyQt only; skip elsewhere

    from napari_phase.widgets._runner import JobRunner

    r = JobRunner(name="fake")
    log = {}
    assert r.start(lambda: slow_job(200, 0.02, log=log))
    assert r.start(quick_job) is False  # one job at a time
    qtbot.waitUntil(lambda: log.get("step", 0) >= 2, timeout=5000)
    sip.delete(r)  # the panel/viewer closed mid-job
    qtbot.waitUntil(lambda: "cancelled_at" in log, timeout=2000)  # job told to stop
    qtbot.wait(100)  # late worker signals reach a dead widget: ignored, no crash


# --------------------------------------------------------------------------- result -> layers (no viewer)
def _fake_result(shape=(32, 40), px=2.5, **extra):
    yy, xx = np.mgrid[: shape[-2], : shape[-1]].astype(np.float32)
    phase = np.broadcast_to(np.exp(-((yy - 16) ** 2 + (xx - 20) ** 2) / 50.0), shape).astype(np.float32)
    from napari_phase.physics.induction import induction_from_phase

    bx, by = induction_from_phase(phase, px)
    arrays = {"phase": phase, "bx": bx, "by": by, **extra}
    return PhaseResult(arrays, px, "nm", metadata={"method": "TEST", "seed": 0})


def test_result_to_layers_names_units_scale():
    from napari_phase.widgets._layers import result_to_layers

    res = _fake_result(amplitude=np.ones((32, 40), np.float32), phase_electrostatic=np.zeros((32, 40), np.float32))
    layers = result_to_layers(res, "SIPRAD")
    by_name = {kw["name"]: (data, kw, kind) for data, kw, kind in layers}
    for name in ("SIPRAD phase [rad]", "SIPRAD Bx·t [T·nm]", "SIPRAD By·t [T·nm]", "SIPRAD |B|·t [T·nm]",
                 "SIPRAD B colour map", "SIPRAD B vectors", "SIPRAD amplitude", "SIPRAD φe electrostatic [rad]"):
        assert name in by_name, (name, list(by_name))
        data, kw, kind = by_name[name]
        assert list(kw["scale"])[-2:] == [2.5, 2.5]
        assert list(kw["units"])[-2:] == ["nm", "nm"]
        assert kw["metadata"]["napari_phase"]["method"] == "TEST"
    lo, hi = by_name["SIPRAD Bx·t [T·nm]"][1]["contrast_limits"]
    assert lo == pytest.approx(-hi) and hi > 0
    assert by_name["SIPRAD Bx·t [T·nm]"][1]["metadata"]["unit"] == "T·nm"
    color = by_name["SIPRAD B colour map"]
    assert color[0].shape == (32, 40, 3) and color[1]["rgb"]
    vec, vkw, _ = by_name["SIPRAD B vectors"]
    assert vec.ndim == 3 and vec.shape[1:] == (2, 2) and vkw["edge_color"].shape == (len(vec), 4)
    assert any("legend" in n for n in by_name)


def test_vectors_point_along_b():
    from napari_phase.widgets._layers import vectors_data

    bx = np.ones((20, 20), np.float32)  # uniform +x field
    by = np.zeros((20, 20), np.float32)
    data, colors, step = vectors_data(bx, by, across=5)
    assert np.allclose(data[:, 1, 0], 0) and (data[:, 1, 1] > 0).all()  # (dy, dx) = (0, +)
    assert np.allclose(colors[:, :3], colors[0, :3]) and colors[0, 0] > 0.9  # +x is red on the wheel


def test_time_series_keeps_t_axis():
    from napari_phase.widgets._layers import result_to_layers

    res = _fake_result(shape=(3, 32, 40))
    layers = {kw["name"]: (d, kw, k) for d, kw, k in result_to_layers(res, "SITIE")}
    d, kw, _ = layers["SITIE phase [rad]"]
    assert d.shape == (3, 32, 40) and list(kw["scale"]) == [1.0, 2.5, 2.5]
    vec = layers["SITIE B vectors"][0]
    assert vec.shape[1:] == (2, 3) and set(np.unique(vec[:, 0, 0])) == {0.0, 1.0, 2.0}
    assert layers["SITIE B colour map"][0].shape == (3, 32, 40, 3)


def test_add_or_update_replaces_in_place(make_napari_viewer):
    from napari_phase.widgets._layers import add_or_update, result_to_layers

    viewer = make_napari_viewer()
    first = add_or_update(viewer, result_to_layers(_fake_result(), "X"))
    n = len(viewer.layers)
    res2 = _fake_result()
    res2.arrays["phase"] = res2.arrays["phase"] * 3
    second = add_or_update(viewer, result_to_layers(res2, "X"))
    assert len(viewer.layers) == n  # no duplicates
    assert all(a == b for a, b in zip(first, second))
    assert viewer.layers["X phase [rad]"].data.max() == pytest.approx(3.0, rel=1e-5)
    # a time series result replaces the 2-D layer of the same name
    add_or_update(viewer, result_to_layers(_fake_result(shape=(2, 32, 40)), "X"))
    assert viewer.layers["X phase [rad]"].ndim == 3 and len(viewer.layers) == n


# --------------------------------------------------------------------------- the panel
def _panel(viewer):
    """The panel as napari makes it (through the plugin manifest, so it gets napari's
    public-only viewer proxy, as in real use)."""
    _, panel = viewer.window.add_plugin_dock_widget("napari-phase", "SIPRAD (LTEM)")
    return panel


def test_panel_opens_from_plugin_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    try:
        _, panel = viewer.window.add_plugin_dock_widget("napari-phase", "SIPRAD (LTEM)")
    except KeyError as exc:  # manifest not loadable (e.g. invalid icon field): say so clearly
        pytest.fail(f"napari cannot load the plugin's widget contribution: {exc}")
    from napari_phase.widgets.siprad_panel import SipradPanel

    assert isinstance(panel, SipradPanel)


def test_panel_prefills_from_layer(make_napari_viewer, notes):
    viewer = make_napari_viewer()
    panel = _panel(viewer)
    assert panel.image_combo.current_layer() is None and "open" in panel.image_info.text().lower()
    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    viewer.add_image(img, name="ltem", scale=(2.5, 2.5), metadata={"defocus_nm": -0.5e6, "voltage_kv": 300.0})
    assert panel.image_combo.current_layer() == viewer.layers["ltem"]
    assert panel.pixel_size.value() == pytest.approx(2.5)
    assert panel.defocus_mm.value() == pytest.approx(-0.5)
    assert panel.voltage_kv.value() == pytest.approx(300.0)
    assert panel.parameters()["defocus_nm"] == pytest.approx(-0.5e6)
    # the pixel-wise prior's weight: "auto" (0) lets the data choose it, a typed value fixes it
    assert panel.smoothness.text() == "auto" and panel.parameters()["smoothness"] is None
    panel.smoothness.setValue(10.0)
    assert panel.parameters()["smoothness"] == pytest.approx(10.0)
    # metadata pixel size wins; a calibrated layer in µm is converted to nm
    viewer.add_image(img, name="um", scale=(0.004, 0.004), units=("µm", "µm"))
    panel.image_combo.set_layer(viewer.layers["um"])
    assert panel.pixel_size.value() == pytest.approx(4.0)


def test_panel_rejects_unusable_layers(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    panel = _panel(viewer)
    labels = viewer.add_labels(np.zeros((32, 32), np.uint8), name="some labels")
    assert panel.image_combo.current_layer() is None  # Labels never offered
    assert panel.set_image_layer(labels) is False
    assert any("Labels" in m for m in notes["warning"])
    vol = viewer.add_image(np.random.random((2, 3, 32, 32)).astype(np.float32), name="4d")
    rgb = viewer.add_image(np.random.random((32, 32, 3)).astype(np.float32), name="rgb", rgb=True)
    assert panel.image_combo.current_layer() is None  # 4-D and RGB images are not offered either
    assert "not usable" in panel.image_info.text()
    assert panel.set_image_layer(vol) is False and any("4-D" in m for m in notes["warning"])
    assert panel.set_image_layer(rgb) is False and any("RGB" in m for m in notes["warning"])
    with qtbot.waitSignal(panel.runner.finished, timeout=3000) as blocker:
        panel.run_sitie_preview()
    assert blocker.args == ["rejected"] and not panel.runner.is_running
    assert any("pick an image layer" in m for m in notes["warning"])
    viewer.layers.remove(vol)
    viewer.layers.remove(rgb)
    nan = np.random.random((32, 32)).astype(np.float32)
    nan[3, 4] = np.nan
    viewer.add_image(nan, name="nan image")
    panel.image_combo.set_layer(viewer.layers["nan image"])
    n_warn = len(notes["warning"])
    with qtbot.waitSignal(panel.runner.finished, timeout=3000) as blocker:
        panel.run_sitie_preview()
    assert blocker.args == ["rejected"]
    assert any("NaN" in m for m in notes["warning"][n_warn:])
    assert panel.runner.run_button.isEnabled() and panel.sitie_button.isEnabled()
    assert not notes["error"]


def test_panel_captures_layer_data_at_start(make_napari_viewer, qtbot, monkeypatch, notes):
    from napari_phase.widgets import siprad_panel

    seen = {}

    def fake_siprad_job(image, *, pixel_size_nm, defocus_nm, amplitude="uniform", iterations=10, preview_every=5, **kw):
        seen["kwargs"] = dict(pixel_size_nm=pixel_size_nm, defocus_nm=defocus_nm, amplitude=amplitude, iterations=iterations)
        for i in range(iterations):
            time.sleep(0.03)
            partial = PhaseResult({"phase": image * (i + 1) / iterations}, pixel_size_nm) if i % preview_every == 0 else None
            yield Progress(i + 1, iterations, f"iteration {i + 1}", partial)
        return PhaseResult({"phase": image.copy(), "bx": image * 0, "by": image * 0 + 1}, pixel_size_nm,
                           metadata={"method": "SIPRAD", "pixel_size_nm": pixel_size_nm})

    monkeypatch.setattr(siprad_panel, "get_job_function", lambda key: fake_siprad_job)
    viewer = make_napari_viewer()
    panel = _panel(viewer)
    original = np.random.default_rng(1).random((48, 48)).astype(np.float32) + 1
    layer = viewer.add_image(original.copy(), name="ltem", scale=(3.0, 3.0), units=("nm", "nm"), translate=(30.0, 60.0))
    panel.iterations.setValue(20)
    panel.preview_every.setValue(5)
    assert panel.run()
    layer.data[:] = 0  # edits after start must not reach the job
    layer.data = np.zeros((48, 48), np.float32)
    qtbot.waitUntil(lambda: any(lay.name.endswith("(live)") for lay in viewer.layers), timeout=3000)
    qtbot.waitUntil(lambda: not panel.runner.is_running, timeout=5000)
    assert panel.runner.last_outcome == "done", panel.runner.status_text
    out = viewer.layers["SIPRAD phase [rad]"]
    np.testing.assert_allclose(out.data, original)
    assert seen["kwargs"]["pixel_size_nm"] == pytest.approx(3.0) and seen["kwargs"]["defocus_nm"] == pytest.approx(-1e6)
    assert list(out.scale) == [3.0, 3.0] and list(out.translate) == [30.0, 60.0]
    assert not any(lay.name.endswith("(live)") for lay in viewer.layers)  # never a half-written layer
    assert "SIPRAD B vectors" in viewer.layers and "SIPRAD By·t [T·nm]" in viewer.layers


def test_panel_cancel_keeps_best_as_cancelled_layers(make_napari_viewer, qtbot, monkeypatch):
    from napari_phase.widgets import siprad_panel

    log = {}

    def fake_job(image, **kw):
        return slow_job(200, 0.02, log=log)

    monkeypatch.setattr(siprad_panel, "get_job_function", lambda key: fake_job)
    viewer = make_napari_viewer()
    panel = _panel(viewer)
    viewer.add_image(np.random.random((16, 16)).astype(np.float32), name="ltem")
    from qtpy.QtCore import Qt

    qtbot.mouseClick(panel.runner.run_button, Qt.LeftButton)  # the real buttons
    qtbot.waitUntil(lambda: log.get("step", 0) >= 12, timeout=5000)
    assert not panel.sitie_button.isEnabled() and not panel.runner.run_button.isEnabled()
    with qtbot.waitSignal(panel.runner.finished, timeout=2000):
        qtbot.mouseClick(panel.runner.cancel_button, Qt.LeftButton)
    names = [lay.name for lay in viewer.layers]
    assert "SIPRAD phase [rad] (cancelled)" in names
    assert not any(n.endswith("(live)") for n in names)
    assert panel.runner.run_button.isEnabled()


def test_mask_tool_slider_makes_and_updates_labels(make_napari_viewer, qtbot):
    from napari_phase.widgets.mask_tool import MASK_LAYER_NAME

    viewer = make_napari_viewer()
    panel = _panel(viewer)
    img = np.ones((64, 64), np.float32)
    img[10:20, 10:20] = 0.1  # a dark particle
    img[40:46, 40:46] = 0.4  # a fainter one
    img += np.random.default_rng(0).normal(0, 0.01, img.shape).astype(np.float32)
    viewer.add_image(img, name="ltem", scale=(2.0, 2.0), units=("nm", "nm"))
    tool = panel.mask_tool
    tool.smooth.setValue(0.5)
    tool.min_size.setValue(4)
    tool.set_threshold(0.25)
    qtbot.waitUntil(lambda: MASK_LAYER_NAME in viewer.layers, timeout=2000)  # debounced live preview
    mask = viewer.layers[MASK_LAYER_NAME]
    assert type(mask).__name__ == "Labels" and list(mask.scale) == [2.0, 2.0]
    assert mask.data[15, 15] == 1 and mask.data[43, 43] == 0 and mask.data[30, 30] == 0
    tool.set_threshold(0.6)
    qtbot.waitUntil(lambda: viewer.layers[MASK_LAYER_NAME].data[43, 43] == 1, timeout=2000)
    assert viewer.layers[MASK_LAYER_NAME] is mask and len([x for x in viewer.layers if x.name == MASK_LAYER_NAME]) == 1
    assert panel.amplitude.currentText() == "mask" and panel.mask_combo.current_layer() == mask
    tool.edit_mask()
    assert mask.mode == "paint" and mask.selected_label == 1 and viewer.layers.selection.active is mask
    tool.polarity.setCurrentIndex(1)  # brighter than threshold: threshold jumps to the bright side
    assert tool.threshold > 0.6


def test_mask_of_wrong_shape_warns(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    panel = _panel(viewer)
    viewer.add_image(np.random.random((64, 64)).astype(np.float32) + 1, name="ltem")
    viewer.add_labels(np.ones((32, 32), np.uint8), name="contaminant mask")
    panel.solver.setCurrentText("SIPRAD (deep image prior)")
    panel.amplitude.setCurrentText("mask")
    assert panel.mask_combo.current_layer() == viewer.layers["contaminant mask"]
    with qtbot.waitSignal(panel.runner.finished, timeout=3000) as blocker:
        panel.run()
    assert blocker.args == ["rejected"]
    assert any("shape" in m for m in notes["warning"]), notes
    assert panel.runner.run_button.isEnabled()


def test_sitie_preview_makes_calibrated_layers(make_napari_viewer, qtbot, notes):
    pytest.importorskip("napari_phase.ltem.sitie")
    image, px, df = _skyrmion_image()
    viewer = make_napari_viewer()
    panel = _panel(viewer)
    viewer.add_image(image, name="ltem", scale=(px, px), units=("nm", "nm"), metadata={"pixel_size_nm": px, "defocus_nm": df})
    from qtpy.QtCore import Qt

    panel.solver.setCurrentText("SIPRAD (deep image prior)")  # the preview button runs SITIE whatever the method
    with qtbot.waitSignal(panel.runner.finished, timeout=20000) as blocker:
        qtbot.mouseClick(panel.sitie_button, Qt.LeftButton)
    assert blocker.args == ["done"], (panel.runner.status_text, notes)
    for name in ("SITIE phase [rad]", "SITIE Bx·t [T·nm]", "SITIE By·t [T·nm]", "SITIE |B|·t [T·nm]", "SITIE B colour map", "SITIE B vectors"):
        layer = viewer.layers[name]
        assert list(layer.scale)[-2:] == [px, px], name
        assert [str(u) for u in layer.units][-2:] == ["nanometer", "nanometer"], name
        assert layer.metadata["napari_phase"]["method"] == "SITIE"
    phase = viewer.layers["SITIE phase [rad]"]
    assert phase.data.shape == image.shape and np.isfinite(phase.data).all() and np.ptp(phase.data) > 0.1
    # a second preview updates the same layers instead of stacking duplicates
    n = len(viewer.layers)
    with qtbot.waitSignal(panel.runner.finished, timeout=20000):
        panel.run_sitie_preview()
    assert len(viewer.layers) == n
    assert viewer.layers["SITIE phase [rad]"] is phase  # updated in place, even through napari's plugin proxy


def test_uncalibrated_layer_is_calibrated_for_overlay(make_napari_viewer, qtbot, monkeypatch, notes):
    from napari_phase.widgets import siprad_panel

    monkeypatch.setattr(siprad_panel, "get_job_function", lambda key: lambda image, **kw: quick_job())
    viewer = make_napari_viewer()
    panel = _panel(viewer)
    layer = viewer.add_image(np.random.random((16, 16)).astype(np.float32), name="raw")
    assert "check" in panel.image_info.text()  # pixel size not in the layer: the user is told
    panel.pixel_size.setValue(2.0)
    with qtbot.waitSignal(panel.runner.finished, timeout=3000):
        panel.run_sitie_preview()
    assert list(layer.scale) == [2.0, 2.0] and str(layer.units[-1]) == "nanometer"
    assert list(viewer.layers["SITIE phase [rad]"].scale) == [2.0, 2.0]


def test_closing_viewer_mid_job_cancels_it(make_napari_viewer, qtbot, monkeypatch):
    from napari_phase.widgets import siprad_panel

    log = {}
    monkeypatch.setattr(siprad_panel, "get_job_function", lambda key: lambda image, **kw: slow_job(300, 0.02, log=log))
    viewer = make_napari_viewer()
    panel = _panel(viewer)
    viewer.add_image(np.random.random((16, 16)).astype(np.float32), name="ltem")
    assert panel.run()
    qtbot.waitUntil(lambda: log.get("step", 0) >= 3, timeout=5000)
    viewer.close()
    qtbot.waitUntil(lambda: log.get("closed", False), timeout=3000)  # the job was told to stop
    assert log["step"] < 300
    qtbot.wait(100)  # its late signals reach a closed viewer: ignored, no crash


def test_time_series_sitie_and_mask(make_napari_viewer, qtbot, notes):
    pytest.importorskip("napari_phase.ltem.sitie")
    from napari_phase.widgets.mask_tool import MASK_LAYER_NAME

    image, px, df = _skyrmion_image(shape=(48, 48))
    series = np.stack([image, np.roll(image, 3, axis=1), np.roll(image, 6, axis=1)])
    series[:, 5:10, 5:10] = 0.05  # a dark particle in every frame
    viewer = make_napari_viewer()
    panel = _panel(viewer)
    viewer.add_image(series, name="series", scale=(1.0, px, px), units=("pixel", "nm", "nm"), metadata={"defocus_nm": df})
    with qtbot.waitSignal(panel.runner.finished, timeout=20000) as blocker:
        panel.run_sitie_preview()
    assert blocker.args == ["done"], (panel.runner.status_text, notes)
    phase = viewer.layers["SITIE phase [rad]"]
    assert phase.data.shape == series.shape and list(phase.scale) == [1.0, px, px]
    assert viewer.layers["SITIE B vectors"].data.shape[-1] == 3  # (t, y, x) arrows
    tool = panel.mask_tool
    tool.smooth.setValue(0.0)
    tool.min_size.setValue(4)
    tool.set_threshold(0.1)
    qtbot.waitUntil(lambda: MASK_LAYER_NAME in viewer.layers, timeout=2000)
    mask = viewer.layers[MASK_LAYER_NAME]
    assert mask.data.shape == series.shape[-2:] and mask.data[7, 7] == 1  # one 2-D mask for the series


def test_sitie_sigma_layers_are_hidden_and_said_uncalibrated(make_napari_viewer, qtbot, notes):
    image, px, df = _skyrmion_image()
    image = image + 0.2 * image.mean() * np.random.default_rng(0).standard_normal(image.shape).astype(np.float32)
    viewer = make_napari_viewer()
    panel = _panel(viewer)
    viewer.add_image(image, name="ltem", scale=(px, px), metadata={"pixel_size_nm": px, "defocus_nm": df})
    panel.uncertainty.setChecked(True)
    with qtbot.waitSignal(panel.runner.finished, timeout=20000) as blocker:
        panel.run_sitie_preview()
    assert blocker.args == ["done"], (panel.runner.status_text, notes)
    sigma = [layer for layer in viewer.layers if "sigma" in layer.name]
    assert len(sigma) == 3 and not any(layer.visible for layer in sigma)
    assert viewer.layers["SITIE phase [rad]"].visible
    assert any("NOT calibrated" in m for m in notes["info"]), notes
