"""The "4D-STEM CNN" panel: real iCoM through the panel (numbers against truth), SSB cancel, disc
overlay, navigator, wrong layers, missing calibration, the sample. Needs Xvfb (see test_widgets.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_phase.physics.metrics import xc
from test_stem_sim import atoms_phase, blurred_truth, simulate

pytestmark = pytest.mark.gui

M, DX, STEP = 64, 0.2, 2


@pytest.fixture(scope="module")
def sim():
    phi = atoms_phase(M, DX)
    data, p, det, step_a = simulate(phi, DX, STEP)
    return {"phi": phi, "p": p, "data": data, "det": det, "step": step_a}


@pytest.fixture
def notes(monkeypatch):
    from napari_phase.widgets import _runner

    got = {"warning": [], "error": [], "info": []}
    monkeypatch.setattr(_runner, "show_warning", lambda m: got["warning"].append(str(m)))
    monkeypatch.setattr(_runner, "show_error", lambda m: got["error"].append(str(m)))
    monkeypatch.setattr(_runner, "show_info", lambda m: got["info"].append(str(m)))
    return got


def _panel(viewer, sim, calibrated=True):
    from napari_phase.widgets.stem_panel import StemPanel

    md = {"kind": "4dstem"}
    if calibrated:
        md.update(voltage_kv=300.0, scan_step_a=sim["step"], detector_mrad_per_px=sim["det"], semiangle_mrad=20.0)
    layer = viewer.add_image(sim["data"], name="scan", metadata=md)
    panel = StemPanel(viewer)
    viewer.window.add_dock_widget(panel)
    return panel, layer


def test_icom_through_the_panel_matches_truth(make_napari_viewer, sim, notes):
    viewer = make_napari_viewer()
    panel, _ = _panel(viewer, sim)
    assert panel.energy_kev.value() == 300 and panel.scan_step_a.value() == pytest.approx(sim["step"])
    panel.method.setCurrentText("iCoM")
    assert panel.run()
    assert panel.runner.wait(60000) and panel.runner.last_outcome == "done", panel.runner.status_text
    layer = viewer.layers["iCoM phase [rad]"]
    truth = blurred_truth(sim["phi"], sim["p"], STEP)
    assert xc(layer.data, truth) > 0.999
    assert np.std(layer.data) == pytest.approx(np.std(truth), rel=0.03)
    assert layer.scale[-1] == pytest.approx(sim["step"])  # Å per pixel
    assert str(layer.units[-1]) in ("angstrom", "Å")
    assert not notes["error"]


def test_ssb_through_the_panel_warns_when_the_step_undersamples(make_napari_viewer, sim, notes):
    viewer = make_napari_viewer()
    panel, _ = _panel(viewer, sim)  # 0.4 Å step > λ/(4α) = 0.246 Å at 300 kV, 20 mrad
    panel.method.setCurrentText("SSB")
    assert panel.run()
    assert panel.runner.wait(60000) and panel.runner.last_outcome == "done", panel.runner.status_text
    assert "SSB phase [rad]" in viewer.layers  # the result is kept; the warning only tells
    assert len([m for m in notes["warning"] if "undersamples SSB" in m]) == 1 and not notes["error"]


def test_ssb_cancel_keeps_partial_rows(make_napari_viewer, sim, notes, monkeypatch):
    import napari_phase.stem as stem

    real = stem.ssb_job

    def slow_job(data, **kw):  # forwards throws (cancel) into the real job
        gen = real(data, block_rows=2, preview_every=1, **kw)
        result = None
        try:
            item = next(gen)
            while True:
                time.sleep(0.15)
                try:
                    yield item
                except BaseException as exc:  # JobCancelled thrown by the runner
                    item = gen.throw(exc)
                    continue
                item = next(gen)
        except StopIteration as stop:
            result = stop.value
        return result

    monkeypatch.setattr(stem, "ssb_job", slow_job)
    viewer = make_napari_viewer()
    panel, _ = _panel(viewer, sim)
    panel.method.setCurrentText("SSB")
    assert panel.run()
    t0 = time.perf_counter()
    from qtpy.QtWidgets import QApplication

    while time.perf_counter() - t0 < 20 and "SSB phase [rad] (live)" not in viewer.layers:
        QApplication.processEvents()
        time.sleep(0.01)
    assert "SSB phase [rad] (live)" in viewer.layers  # the growing result is shown
    panel.runner.cancel()
    assert panel.runner.wait(30000)
    assert panel.runner.last_outcome == "cancelled"
    kept = viewer.layers["SSB phase [rad] (cancelled)"]
    assert kept.data.shape[1] == 32 and kept.metadata["napari_phase"]["rows_done"] < 32
    assert "SSB phase [rad] (live)" not in viewer.layers


def test_disc_overlay_virtual_image_and_navigator(make_napari_viewer, sim, notes, monkeypatch):
    viewer = make_napari_viewer()
    panel, layer = _panel(viewer, sim)
    panel.detector_mrad.setValue(0.0)  # unknown: the disc measures it from α
    fit = panel.detect_disc()
    assert fit is not None
    assert panel.center_y.value() == pytest.approx(32, abs=0.3) and panel.center_x.value() == pytest.approx(32, abs=0.3)
    assert panel.detector_mrad.value() == pytest.approx(sim["det"], rel=0.03)
    assert "BF disc" in viewer.layers and viewer.layers["BF disc"].shape_type == ["ellipse"]
    assert "mean pattern (log)" in viewer.layers
    virt = panel.show_virtual_image()
    assert virt is not None and virt.data.shape == (32, 32) and not layer.visible
    pat = panel.show_pattern(5, 7)
    np.testing.assert_allclose(pat.data, np.log1p(sim["data"][5, 7]), rtol=1e-5)
    assert viewer.layers["scan position"].data[0] == pytest.approx([5 * sim["step"], 7 * sim["step"]])
    guess = panel.guess_rotation()
    assert abs((guess["rotation_deg"] + 180) % 360 - 180) < 1.0 and not guess["transpose"]
    # the navigator click (a napari drag callback): a click shows that position's pattern; once the
    # panel's Qt side is gone the callback does nothing (no Python runs from Qt's destructor)
    import types

    from napari_phase.widgets import stem_panel as sp

    cb = panel._click_cb
    assert cb is not None and cb in viewer.mouse_drag_callbacks

    def click(y, x):
        event = types.SimpleNamespace(type="mouse_press", position=(y * sim["step"], x * sim["step"]))
        gen = cb(viewer, event)
        next(gen)
        event.type = "mouse_release"
        with pytest.raises(StopIteration):
            next(gen)

    click(9, 4)
    assert viewer.layers["scan position"].data[0] == pytest.approx([9 * sim["step"], 4 * sim["step"]])
    monkeypatch.setattr(sp, "_qt_deleted", lambda obj: True)
    click(2, 3)
    assert viewer.layers["scan position"].data[0] == pytest.approx([9 * sim["step"], 4 * sim["step"]])


def test_wrong_layers_and_missing_calibration(make_napari_viewer, sim, notes):
    viewer = make_napari_viewer()
    from napari_phase.widgets.stem_panel import StemPanel

    labels = viewer.add_labels(np.zeros((8, 8), np.uint8), name="mask")
    image2d = viewer.add_image(np.ones((16, 16)), name="flat")
    panel = StemPanel(viewer)
    viewer.window.add_dock_widget(panel)
    assert panel.data_combo.current_layer() is None
    assert not panel.set_data_layer(labels) and "Labels" in notes["warning"][-1]
    assert not panel.set_data_layer(image2d) and "2-D" in notes["warning"][-1]
    assert panel.run() is False and "4D-STEM layer" in notes["warning"][-1]
    scan = viewer.add_image(sim["data"], name="scan", metadata={"kind": "4dstem"})  # no calibration
    assert panel.data_combo.current_layer() is scan
    assert "NOT in the file" in panel.data_info.text()
    panel.method.setCurrentText("iCoM")
    assert panel.run() is False and "missing calibration" in notes["warning"][-1]
    panel.energy_kev.setValue(300)
    panel.scan_step_a.setValue(sim["step"])
    panel.detector_mrad.setValue(sim["det"])
    panel.semiangle_mrad.setValue(60.0)
    panel.method.setCurrentText("SSB")
    assert panel.run() is False and "larger than the detector" in notes["warning"][-1]
    bad = sim["data"].copy()
    bad[3, 3, 0, 0] = np.nan
    viewer.layers["scan"].data = bad
    panel.method.setCurrentText("iCoM")
    assert panel.run()
    assert panel.runner.wait(30000) and panel.runner.last_outcome == "failed"
    assert "NaN" in notes["warning"][-1]


def test_sample_opens_with_calibration(make_napari_viewer, notes):
    from napari_phase.io.sample_data import list_samples

    if "stem_srtio3" not in list_samples():
        pytest.fail("the 4D-STEM sample is missing from the package (run sample_data/make_samples.py stem_srtio3)")
    viewer = make_napari_viewer()
    viewer.open_sample("napari-phase", "stem_srtio3")
    from napari_phase.widgets.stem_panel import StemPanel

    panel = StemPanel(viewer)
    viewer.window.add_dock_widget(panel)
    layer = panel.data_combo.current_layer()
    assert layer is not None and layer.data.shape == (64, 64, 64, 64)
    assert panel.energy_kev.value() == 300 and panel.semiangle_mrad.value() == 20
    assert panel.scan_step_a.value() == pytest.approx(0.25) and panel.detector_mrad.value() == pytest.approx(1.25, rel=1e-3)
    assert "true phase" in " ".join(lay.name for lay in viewer.layers)


def test_panel_opens_from_plugin_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    widget, panel = viewer.window.add_plugin_dock_widget("napari-phase", "4D-STEM CNN")
    assert panel.__class__.__name__ == "StemPanel"


def test_depth_series_layer_runs_icom_on_the_chosen_depth(make_napari_viewer, notes):
    from pathlib import Path

    from napari_phase.io.readers import read
    from napari_phase.widgets.stem_panel import StemPanel

    real = Path(__file__).resolve().parents[2] / "shared" / "real-files" / "Si100_4D.emd"
    if not real.is_file():
        pytest.skip("real-file folder absent")
    viewer = make_napari_viewer()
    data, kwargs, kind = read(str(real))[0]
    layer = viewer.add_image(data, **kwargs)
    panel = StemPanel(viewer)
    viewer.window.add_dock_widget(panel)
    assert panel.data_combo.current_layer() is layer
    assert panel.depth.maximum() == 1 and panel.scan_step_a.value() == pytest.approx(0.5)
    assert panel.energy_kev.value() == 100
    panel.depth.setValue(0)
    np.testing.assert_array_equal(np.asarray(panel.data()), np.asarray(layer.data[0]))
    panel.method.setCurrentText("iCoM")
    assert panel.run() and panel.runner.wait(30000) and panel.runner.last_outcome == "done"
    assert viewer.layers["iCoM phase [rad]"].data.shape == (11, 11)
    # the 30 mrad disc does not fit this file's 8x8 detector: SSB is refused with the reason
    panel.method.setCurrentText("SSB")
    assert panel.run() is False and "larger than the detector" in notes["warning"][-1]


def _slowed(gen, dt):
    """Forward a job (throws included: Cancel) with a pause before every progress item."""
    try:
        item = next(gen)
        while True:
            time.sleep(dt)
            try:
                yield item
            except BaseException as exc:  # JobCancelled thrown by the runner
                item = gen.throw(exc)
                continue
            item = next(gen)
    except StopIteration as stop:
        return stop.value


def test_disc_and_virtual_image_run_off_the_main_thread(make_napari_viewer, sim, notes, monkeypatch):
    import threading

    import napari_phase.stem as stem

    real_disc, real_virtual = stem.disc_job, stem.virtual_image_job
    threads, calls = [], []

    def slow_disc(data, **kw):
        calls.append("disc")
        threads.append(threading.get_ident())
        return (yield from _slowed(real_disc(data, block_rows=2, **kw), 0.05))

    def slow_virtual(data, kind, **kw):
        threads.append(threading.get_ident())
        return (yield from _slowed(real_virtual(data, kind, block_rows=2, **kw), 0.05))

    monkeypatch.setattr(stem, "disc_job", slow_disc)
    monkeypatch.setattr(stem, "virtual_image_job", slow_virtual)
    viewer = make_napari_viewer()
    panel, layer = _panel(viewer, sim)
    panel.detector_mrad.setValue(0.0)
    panel.center_y.setValue(-1.0)
    panel.disc_button.click()  # returns at once: the mean pattern is measured by the runner's worker
    assert panel.runner.is_running and panel.center_y.value() == -1.0 and "BF disc" not in viewer.layers
    assert panel.runner.wait(60000) and panel.runner.last_outcome == "done", panel.runner.status_text
    assert threads and threads[0] != threading.get_ident()  # the generator ran in the worker thread
    assert panel.center_y.value() == pytest.approx(32, abs=0.3) and panel.detector_mrad.value() == pytest.approx(sim["det"], rel=0.03)
    assert "BF disc" in viewer.layers
    # measured once per layer: a second detection reuses it (no second pass over the data)
    assert panel.detect_disc() is not None and calls == ["disc"]
    # the virtual image: Cancel mid-way leaves no layer and no error; a full run gives the BF image
    panel.virtual_button.click()
    assert panel.runner.is_running
    panel.runner.cancel()
    assert panel.runner.wait(30000) and panel.runner.last_outcome == "cancelled"
    assert "virtual detector" not in viewer.layers and layer.visible and not notes["error"]
    virt = panel.show_virtual_image()
    assert virt is not None and threads[-1] != threading.get_ident()
    # the rotation guess too: the Guess button returns at once, the fields fill when the CoM is done
    real_guess = stem.rotation_guess_job

    def slow_guess(data, **kw):
        threads.append(threading.get_ident())
        return (yield from _slowed(real_guess(data, block_rows=2, **kw), 0.05))

    monkeypatch.setattr(stem, "rotation_guess_job", slow_guess)
    panel.rotation_deg.setValue(33.0)
    panel.guess_button.click()
    assert panel.runner.is_running and panel.rotation_deg.value() == 33.0
    assert panel.runner.wait(60000) and panel.runner.last_outcome == "done"
    assert abs((panel.rotation_deg.value() + 180) % 360 - 180) < 1.0 and threads[-1] != threading.get_ident()
    bf = stem.bright_field(sim["data"], semiangle_mrad=20.0, detector_mrad_per_px=panel.detector_mrad.value(),
                           center=(panel.center_y.value(), panel.center_x.value()))
    np.testing.assert_allclose(virt.data, bf, rtol=1e-5)
    total = sim["data"].reshape(32, 32, -1).sum(-1)
    assert 0.9 < float((virt.data / total).mean()) < 0.995  # the disc holds most, not all, of the counts
    assert virt.scale[-1] == pytest.approx(sim["step"])


def test_disc_detection_errors_are_one_line_warnings(make_napari_viewer, sim, notes):
    viewer = make_napari_viewer()
    panel, _ = _panel(viewer, {**sim, "data": np.zeros_like(sim["data"])})
    assert panel.detect_disc() is None
    assert panel.runner.last_outcome == "failed" and "zero" in notes["warning"][-1]
    bad = sim["data"].copy()
    bad[3, 4, 10, 10] = np.nan
    viewer.layers["scan"].data = bad
    panel._cache.clear()
    assert panel.detect_disc() is None and "NaN" in notes["warning"][-1] and not notes["error"]


def test_non_square_scan_steps_through_the_panel(make_napari_viewer, sim, notes):
    """Every second scan row (y step twice x): the y step comes from the file's metadata, iCoM runs
    on it, and the virtual image and navigator use both steps."""
    from napari_phase.widgets.stem_panel import StemPanel

    viewer = make_napari_viewer()
    step = sim["step"]
    md = {"kind": "4dstem", "voltage_kv": 300.0, "scan_step_a": step, "scan_step_y_a": 2 * step,
          "detector_mrad_per_px": sim["det"], "semiangle_mrad": 20.0}
    viewer.add_image(sim["data"][::2], name="scan", metadata=md)
    panel = StemPanel(viewer)
    viewer.window.add_dock_widget(panel)
    assert panel.scan_step_y_a.value() == pytest.approx(2 * step) and "y step" in panel.data_info.text()
    assert panel.calibration().step_yx_a == pytest.approx((2 * step, step))
    panel.method.setCurrentText("iCoM")
    assert panel.run() and panel.runner.wait(60000) and panel.runner.last_outcome == "done", panel.runner.status_text
    layer = viewer.layers["iCoM phase [rad]"]
    assert layer.data.shape == (31, 32) and tuple(layer.scale[-2:]) == pytest.approx((step, step))
    import napari_phase.stem as stem

    direct = stem.icom(sim["data"][::2], energy_kev=300.0, scan_step_a=(2 * step, step), detector_mrad_per_px=sim["det"])
    np.testing.assert_allclose(layer.data, direct.phase, atol=1e-4)  # float32 block sums differ in the last bits
    truth = blurred_truth(sim["phi"], sim["p"], STEP)[:31]  # square pixels of the x step over the scanned rows
    assert xc(layer.data, truth, 2) > 0.93  # 0.946: rows 0.8 Å apart undersample these 0.35 Å atoms
    virt = panel.show_virtual_image()
    assert virt.data.shape == (16, 32) and tuple(virt.scale[-2:]) == pytest.approx((2 * step, step))
    panel.show_pattern(3, 5)
    assert viewer.layers["scan position"].data[0] == pytest.approx([3 * 2 * step, 5 * step])
    # '= x' (0) is a square scan again
    panel.scan_step_y_a.setValue(0.0)
    assert panel.calibration().scan_step_a == pytest.approx(step) and not notes["error"]


def test_cnn_low_frequency_and_precision_choices_reach_the_job(make_napari_viewer, sim, notes, monkeypatch):
    """The "low frequencies" row (CNN only) defaults to the library's default source and passes the
    choice to stem.cnn_job; the result line says where the low frequencies came from."""
    from napari_phase import stem
    from napari_phase.result import PhaseResult
    from napari_phase.stem.airpi.reconstruct import LOW_FREQUENCY_DEFAULT
    from napari_phase.widgets import stem_panel as sp

    if not sp._model_available()[0]:
        pytest.skip("no shipped CNN model")
    seen, precisions = [], []

    def fake_job(data, **kw):
        seen.append(kw.get("low_frequency", "missing"))
        precisions.append(kw.get("precision", "missing"))
        meta = {"low_frequency": kw["low_frequency"], "low_frequency_cutoff_inv_a": 1.22}
        return PhaseResult({"phase": np.zeros((4, 4), np.float32)}, 0.1, "Å", metadata=meta)
        yield  # a generator, like the real job

    monkeypatch.setattr(stem, "cnn_job", fake_job)
    viewer = make_napari_viewer()
    panel, _ = _panel(viewer, sim)
    panel.method.setCurrentText(sp.CNN)
    assert panel.low_frequency.currentData() == LOW_FREQUENCY_DEFAULT == "icom"
    assert panel.run() and panel.runner.wait(60000) and panel.runner.last_outcome == "done"
    assert "low frequencies from icom below ~1.22 1/Å" in panel.result_info.text()
    panel.low_frequency.setCurrentIndex(panel.low_frequency.findData(None))
    assert panel.precision.currentData() == "auto"  # the library's default
    panel.precision.setCurrentIndex(panel.precision.findData("float32"))
    assert panel.run() and panel.runner.wait(60000)
    assert seen == ["icom", None] and precisions == ["auto", "float32"]
    panel.method.setCurrentText(sp.ICOM)
    assert panel.low_frequency.isHidden() and panel.precision.isHidden()
    assert not notes["error"]


@pytest.mark.parametrize("method", ["iCoM", "SSB"])
def test_first_run_on_the_sample_frames_the_result_with_one_unit(make_napari_viewer, notes, method, monkeypatch):
    """A newcomer's flow (issue 16 §3): sample -> panel -> Run. The result fills the canvas, the 4-D
    layer's pattern sits beside it (not over it) and napari sees one unit on every displayed axis."""
    import napari._vispy.canvas as vcanvas

    from napari_phase.widgets.stem_panel import StemPanel

    unit_warnings = []
    monkeypatch.setattr(vcanvas, "show_warning", lambda m: unit_warnings.append(str(m)))
    viewer = make_napari_viewer()
    viewer.window._qt_window.resize(1400, 900)
    viewer.open_sample("napari-phase", "stem_srtio3")
    panel = StemPanel(viewer)
    viewer.window.add_dock_widget(panel)
    panel.method.setCurrentText(method)
    assert panel.run()
    assert panel.runner.wait(120000) and panel.runner.last_outcome == "done", panel.runner.status_text
    from qtpy.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()
    viewer.window._qt_viewer.canvas._update_world_units()  # what napari runs before the next draw
    assert viewer.layers.extent.units is not None  # None is what raises the warning
    assert not [w for w in unit_warnings if "nconsistent units" in w], unit_warnings
    phase = viewer.layers[f"{method} phase [rad]"]
    assert str(phase.units[-1]) == "angstrom" and phase.scale[-1] == pytest.approx(0.25)
    # the camera is on the result: centred on it, and the result spans most of the canvas
    (y0, x0), (y1, x1) = np.asarray(phase.extent.world)[:, -2:]
    cam = viewer.camera
    assert cam.center[-2] == pytest.approx((y0 + y1) / 2, abs=0.05 * (y1 - y0))
    assert cam.center[-1] == pytest.approx((x0 + x1) / 2, abs=0.05 * (x1 - x0))
    from napari_phase.widgets.stem_panel import _canvas_hw

    canvas_h, canvas_w = _canvas_hw(viewer)
    assert canvas_h > 300 and canvas_w > 300  # the real canvas, not the fallback
    assert 0.8 <= cam.zoom * max((y1 - y0) / canvas_h, (x1 - x0) / canvas_w) <= 1.0
    # the 4-D layer's pattern lies right of the result, not over it
    src = panel.data_combo.current_layer()
    (sy0, sx0), _ = np.asarray(src.extent.world)[:, -2:]
    assert sx0 >= x1
    assert "descan (plane, from BF disc)" in panel.result_info.text()
    assert [str(u) for u in src.units] == ["angstrom"] * 4


@pytest.mark.parametrize("method", ["iCoM", "SSB"])  # SSB on this scan gives no live preview first
def test_a_file_layer_in_mrad_is_moved_beside_the_result(make_napari_viewer, sim, notes, method):
    """A 4-D layer as the readers make it (scan axes in Å, detector axes in mrad): after a run the
    panel puts its detector axes in Å beside the result (one unit per displayed axis) and keeps
    the layer's own geometry in its metadata."""
    viewer = make_napari_viewer()
    md = {"kind": "4dstem", "voltage_kv": 300.0, "scan_step_a": sim["step"], "detector_mrad_per_px": sim["det"],
          "semiangle_mrad": 20.0}
    layer = viewer.add_image(sim["data"], name="scan", metadata=md, scale=[sim["step"], sim["step"], sim["det"], sim["det"]],
                             units=["angstrom", "angstrom", "mrad", "mrad"])
    from napari_phase.widgets.stem_panel import StemPanel

    panel = StemPanel(viewer)
    viewer.window.add_dock_widget(panel)
    panel.method.setCurrentText(method)
    assert panel.run() and panel.runner.wait(60000) and panel.runner.last_outcome == "done"
    assert viewer.layers.extent.units is not None
    phase = viewer.layers[f"{method} phase [rad]"]
    (_, _), (_, x1) = np.asarray(phase.extent.world)[:, -2:]
    assert np.asarray(layer.extent.world)[0, -1] >= x1  # the patterns start right of the result
    assert [str(u) for u in layer.units] == ["angstrom"] * 4
    assert layer.metadata["napari_phase_geometry"]["units"][-1] in ("mrad", "milliradian")
    assert layer.metadata["napari_phase_geometry"]["scale"][-1] == pytest.approx(sim["det"])
