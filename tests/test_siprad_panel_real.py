"""The SIPRAD panel with the REAL solver (no fakes): a painted contaminant mask reaches SIPRAD and
shapes its result, and Cancel stops a real run promptly with its best iterate (issue 8 §5).

Needs Xvfb (see tests/test_widgets.py). ~10 s on two CPU cores.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_phase.physics import pearson_accuracy

pytestmark = pytest.mark.gui

PX = 5.0
DF = -1.0e6


def _panel(viewer):
    _, panel = viewer.window.add_plugin_dock_widget("napari-phase", "SIPRAD (LTEM)")
    return panel


def _setup(panel, viewer, sample, iterations):
    viewer.add_image(sample.image, name="ltem", scale=(PX, PX), units=("nm", "nm"))
    panel.solver.setCurrentText("SIPRAD")
    panel.pixel_size.setValue(PX)
    panel.defocus_mm.setValue(DF / 1e6)
    panel.iterations.setValue(iterations)
    panel.device.setCurrentText("cpu")


def test_real_siprad_with_a_painted_mask(make_napari_viewer, qtbot):
    from napari_phase.ltem.simulate import simulate

    s = simulate("skyrmions", (64, 64), pixel_size_nm=PX, defocus_nm=DF, noise=0.1, n_contaminants=3, seed=5,
                 contaminant_radius_nm=(15.0, 25.0))
    viewer = make_napari_viewer()
    panel = _panel(viewer)
    _setup(panel, viewer, s, iterations=60)
    labels = viewer.add_labels(np.zeros(s.image.shape, np.int32), name="my particles", scale=(PX, PX), units=("nm", "nm"))
    labels.data[s.mask] = 1  # "painted" by the user
    labels.refresh()
    panel.amplitude.setCurrentText("mask")
    panel.mask_combo.set_layer(labels)
    panel.edges.setCurrentText("window of a larger specimen")
    with qtbot.waitSignal(panel.runner.finished, timeout=120_000) as blocker:
        assert panel.run()
    assert blocker.args == ["done"], panel.runner.status_text
    amp = viewer.layers["SIPRAD amplitude"].data
    # the painted pixels, and only they, carry the fitted contaminant amplitude
    assert np.all(amp[~s.mask] == 1.0)
    level = float(amp[s.mask].mean())
    assert np.allclose(amp[s.mask], level) and abs(level - float(np.median(s.amplitude[s.mask]))) < 0.1
    pe = viewer.layers["SIPRAD φe electrostatic [rad]"].data
    assert np.all(pe[~s.mask] == 0) and float(np.median(pe[s.mask])) == pytest.approx(float(np.median(s.phase_e[s.mask])), rel=0.2)
    phase_layer = viewer.layers["SIPRAD phase [rad]"]
    assert pearson_accuracy(phase_layer.data, s.phase_m, 4) > 0.95
    params = phase_layer.metadata["napari_phase"]["parameters"]
    assert params["amplitude"] == "mask" and params["mask_pixels"] == int(s.mask.sum())
    assert params["boundary"] == "extend" and params["boundary_requested"] == "extend"  # the panel's "image edges"


def test_real_siprad_cancel_is_prompt_and_keeps_the_best(make_napari_viewer, qtbot):
    from napari_phase.ltem.simulate import simulate

    s = simulate("skyrmions", (96, 96), pixel_size_nm=PX, defocus_nm=DF, noise=0.0, seed=2)
    viewer = make_napari_viewer()
    panel = _panel(viewer)
    _setup(panel, viewer, s, iterations=5000)
    panel.preview_every.setValue(5)
    assert panel.run()
    qtbot.waitUntil(lambda: any(lay.name.endswith("(live)") for lay in viewer.layers), timeout=60_000)
    t0 = time.perf_counter()
    with qtbot.waitSignal(panel.runner.finished, timeout=30_000):
        panel.runner.cancel()
    assert time.perf_counter() - t0 < 10.0  # a step is ~0.05 s; generous for a loaded machine
    names = [lay.name for lay in viewer.layers]
    assert "SIPRAD phase [rad] (cancelled)" in names and not any(n.endswith("(live)") for n in names)
    phase = viewer.layers["SIPRAD phase [rad] (cancelled)"].data
    assert np.isfinite(phase).all() and pearson_accuracy(phase, s.phase_m, 4) > 0.5
    assert panel.runner.run_button.isEnabled()
