"""FlowTIE panel: runs through the panel give the right numbers, cancel, wrong layer types, sample."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from napari_phase.flowtie import simulate_triplet  # noqa: E402
from napari_phase.physics.metrics import xc  # noqa: E402

PX, KEV = 0.2, 300.0


def lattice_phase(shape, px, a=3.9, amp=0.4, sigma=0.35):
    y, x = np.mgrid[: shape[0], : shape[1]] * px
    ph = np.zeros(shape)
    for oy, ox, s in ((0, 0, 1.0), (a / 2, a / 2, 0.5)):
        dy = ((y - oy) / a + 0.5) % 1 - 0.5
        dx = ((x - ox) / a + 0.5) % 1 - 0.5
        ph += s * amp * np.exp(-((dy * a) ** 2 + (dx * a) ** 2) / (2 * sigma**2))
    return ph - ph.mean()


@pytest.fixture
def panel(make_napari_viewer):
    from napari_phase.widgets.flowtie_panel import FlowTIEPanel

    viewer = make_napari_viewer()
    p = FlowTIEPanel(viewer)
    viewer.window.add_dock_widget(p)
    return viewer, p


@pytest.fixture(scope="module")
def thin():
    ph = lattice_phase((78, 78), PX)
    tri = simulate_triplet(np.exp(1j * ph), defocus_step_nm=1.0, pixel_size_a=PX, energy_kev=KEV)
    return tri, ph


def _run(p, timeout_ms=120000):
    assert p.run()
    assert p.runner.wait(timeout_ms)
    return p.runner.last_outcome, p.runner.last_result


def _set(p, dz=1.0, px=PX, kev=KEV, alpha=0.0, method="classical TIE"):
    p.dz_nm.setValue(dz)
    p.pixel_a.setValue(px)
    p.energy_kev.setValue(kev)
    p.semiangle.setValue(alpha)
    p.method.setCurrentText(method)


def test_panel_tie_stacked_numbers(panel, thin):
    viewer, p = panel
    tri, ph = thin
    layer = viewer.add_image(tri, name="triplet")
    assert p.set_stack_layer(layer)
    _set(p)
    outcome, res = _run(p)
    assert outcome == "done", p.runner.status_text
    assert xc(res.phase, ph, 4) > 0.9
    assert 0.6 < np.std(res.phase[4:-4, 4:-4]) / np.std(ph[4:-4, 4:-4]) < 1.2
    names = [l.name for l in viewer.layers]
    assert "TIE phase [rad]" in names and "TIE flow arrows" in names and "TIE |flow| [rad/Å]" in names
    lay = viewer.layers["TIE phase [rad]"]
    assert np.allclose(lay.scale[-2:], [PX, PX]) and str(lay.units[-1]) == "angstrom"
    assert lay.metadata["napari_phase"]["method"] == "classical TIE"
    arrows = viewer.layers["TIE flow arrows"]
    assert arrows.data.shape[1:] == (2, 2) and 50 < len(arrows.data) < 2000
    # arrows point along the true gradient (sign!) where it is strong
    g = np.stack(np.gradient(ph, PX))
    pos = arrows.data[:, 0].astype(int)
    d = arrows.data[:, 1]
    true = g[:, pos[:, 0], pos[:, 1]].T
    strong = np.hypot(*true.T) > np.percentile(np.hypot(*true.T), 50)
    cos = (d[strong] * true[strong]).sum(1) / (np.hypot(*d[strong].T) * np.hypot(*true[strong].T) + 1e-12)
    assert np.median(cos) > 0.8


def test_panel_three_layers_flipped_sign_fails(panel, thin):
    """Giving the three layers in the wrong order (+dz as −dz) flips the phase: the panel passes
    the order through, and the test sees the sign."""
    viewer, p = panel
    tri, ph = thin
    a, b, c = (viewer.add_image(t, name=n) for t, n in zip(tri, ("under", "focus", "over")))
    assert p.set_triplet_layers(a, b, c)
    _set(p)
    _, good = _run(p)
    assert xc(good.phase, ph, 4) > 0.9
    assert p.set_triplet_layers(c, b, a)
    _, bad = _run(p)
    assert xc(bad.phase, ph, 4) < -0.9


def test_panel_flowtie_shipped_model(panel):
    """FlowTIE through the panel on a thin held-out crystal (CeO2 [001], 3 nm): numbers vs σV."""
    import math

    from napari_phase.flowtie import evaluate as ev
    from napari_phase.flowtie.solve import available

    if not available():
        pytest.skip("no shipped FlowTIE model in this tree")
    viewer, p = panel
    s = ev.cases(ev.heldout_bank(thicknesses_nm=(3.0,), names=("CeO2",), zone_axes=((0, 0, 1),)), doses=(math.inf,))[0]
    p.set_stack_layer(viewer.add_image(s["tri"], name="triplet"))
    _set(p, dz=s["dz_nm"], px=s["pixel_size_a"], kev=s["energy_kev"], alpha=s["alpha_mrad"], method="FlowTIE (network)")
    outcome, res = _run(p)
    assert outcome == "done", p.runner.status_text
    assert xc(res.phase, s["target"], 8) > 0.95
    assert 0.7 < np.std(res.phase[8:-8, 8:-8]) / np.std(s["target"][8:-8, 8:-8]) < 1.4
    assert "FlowTIE phase [rad]" in [l.name for l in viewer.layers]
    assert viewer.layers["FlowTIE phase [rad]"].metadata["napari_phase"]["model"] == "flowtie_default"


def test_panel_gd_cancel(panel, thin):
    viewer, p = panel
    tri, _ = thin
    p.set_stack_layer(viewer.add_image(tri, name="triplet"))
    _set(p, method="gradient descent")
    p.steps.setValue(100000)
    assert p.run()
    import time

    from qtpy.QtWidgets import QApplication

    t0 = time.time()
    while time.time() - t0 < 3:
        QApplication.processEvents()
        time.sleep(0.01)
    p.runner.cancel()
    assert p.runner.wait(60000)
    assert p.runner.last_outcome == "cancelled"
    assert p.runner.last_result is not None and p.runner.last_result.cancelled
    assert any("(cancelled)" in l.name for l in viewer.layers)


def test_panel_wrong_layer_type_and_bad_input(panel, thin, monkeypatch):
    from napari_phase.widgets import _runner

    warnings = []
    monkeypatch.setattr(_runner, "warn", lambda m: warnings.append(m))
    monkeypatch.setattr(_runner, "show_warning", lambda m: warnings.append(m))
    viewer, p = panel
    tri, _ = thin
    labels = viewer.add_labels(np.zeros((3, 78, 78), np.uint8), name="labels")
    assert not p.set_stack_layer(labels)
    assert any("Labels" in w for w in warnings)
    assert not p.set_stack_layer(viewer.add_image(tri[0], name="single"))
    # dz = 0 cannot be typed (minimum), but identical images must be refused with a message
    p.set_stack_layer(viewer.add_image(np.stack([tri[1]] * 3), name="same"))
    _set(p)
    assert not p.run()
    assert p.runner.last_outcome == "rejected"
    assert any("identical" in w for w in warnings)


def test_sample_opens_and_fills_parameters(panel):
    from napari_phase.io.sample_data import list_samples

    if "flowtie_srtio3" not in list_samples():
        pytest.skip("FlowTIE sample not generated")
    viewer, p = panel
    viewer.open_sample("napari-phase", "flowtie_srtio3")
    layer = viewer.layers["FlowTIE SrTiO3 triplet"]
    assert layer.data.shape[0] == 3
    p.set_stack_layer(layer)
    assert p.dz_nm.value() == pytest.approx(2.0)
    assert p.energy_kev.value() == pytest.approx(300.0)
    assert p.pixel_a.value() == pytest.approx(0.1)
    assert p.semiangle.value() == pytest.approx(20.0, abs=0.2)
    sv = viewer.layers["FlowTIE SrTiO3 triplet true σV [rad]"].data
    assert sv.shape == layer.data.shape[1:] and np.ptp(sv) > 1.0
