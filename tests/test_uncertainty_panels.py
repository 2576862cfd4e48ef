"""σ checkboxes of the FlowTIE and TIE-series panels (issue 19): σ layers hidden, the notification
says σ is not calibrated, without the box nothing changes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from napari_phase.flowtie import simulate_triplet  # noqa: E402
from test_flowtie_panel import lattice_phase  # noqa: E402
from test_widgets import notes  # noqa: E402,F401 - the fixture capturing the panels' notifications


def test_flowtie_panel_sigma_layer_for_classical_tie(make_napari_viewer, notes):
    from napari_phase.widgets.flowtie_panel import FlowTIEPanel

    viewer = make_napari_viewer()
    p = FlowTIEPanel(viewer)
    viewer.window.add_dock_widget(p)
    tri = simulate_triplet(np.exp(1j * lattice_phase((48, 48), 0.2)), defocus_step_nm=1.0, pixel_size_a=0.2, energy_kev=300.0)
    tri = (tri + 0.03 * np.random.default_rng(0).standard_normal(tri.shape)).astype(np.float32)
    assert p.set_stack_layer(viewer.add_image(tri, name="triplet"))
    p.dz_nm.setValue(1.0)
    p.pixel_a.setValue(0.2)
    p.energy_kev.setValue(300.0)
    p.semiangle.setValue(0.0)
    p.method.setCurrentText("classical TIE")
    assert p.run() and p.runner.wait(60000)
    assert "TIE phase_sigma [rad]" not in viewer.layers  # not asked for
    p.uncertainty.setChecked(True)
    assert p.run() and p.runner.wait(60000), p.runner.status_text
    sigma = viewer.layers["TIE phase_sigma [rad]"]
    assert not sigma.visible and viewer.layers["TIE phase [rad]"].visible
    assert sigma.data.shape == tri.shape[1:] and (sigma.data > 0).all()
    assert any("NOT calibrated" in m for m in notes["info"]), notes
    p.method.setCurrentText("FlowTIE + refine")  # the refined phase has no σ: the box is hidden
    assert p.uncertainty.isHidden()


def test_tie_series_panel_sigma_layers(make_napari_viewer, notes):
    from napari_phase.ltem.simulate_series import simulate_flipped_series
    from napari_phase.widgets.tie_series_panel import TieSeriesPanel

    s = simulate_flipped_series("stripes", shape=(48, 48), defocus_nm=(-2e5, 0.0, 2e5), noise=0.1, n_contaminants=0, seed=1)
    viewer = make_napari_viewer()
    panel = TieSeriesPanel(viewer)
    viewer.window.add_dock_widget(panel)
    viewer.add_image(s.series, name="series", scale=(1, s.pixel_size_nm, s.pixel_size_nm),
                     metadata={"defocus_nm": [-2e5, 0.0, 2e5]})
    panel.series_combo.set_layer(viewer.layers["series"])
    panel.uncertainty.setChecked(True)
    assert panel.parameters()["uncertainty"] is True
    assert panel.run() and panel.runner.wait(60000), panel.runner.status_text
    sig = [layer for layer in viewer.layers if "sigma" in layer.name]
    assert len(sig) == 3 and not any(layer.visible for layer in sig), [layer.name for layer in viewer.layers]
    assert any("NOT calibrated" in m for m in notes["info"]), notes


def test_b_arrow_opacity_follows_confidence():
    """Arrows within 1σ of zero are faint (α 0.2), beyond 3σ opaque, in between (z − 1)/2; without σ α = 1."""
    from napari_phase.widgets._layers import vectors_data

    bx = np.ones((20, 20), np.float32)
    by = np.zeros((20, 20), np.float32)
    sx = np.full((20, 20), 0.1, np.float32)
    sx[:10] = 2.0  # the top half: |B| = 1 at σ = 2 (z = 0.5)
    sx[10:, :10] = 0.5  # bottom left: z = 2 -> α 0.5
    data, colors, _ = vectors_data(bx, by, across=5, sigma=(sx, np.zeros_like(sx)))
    y, x = data[:, 0, 0], data[:, 0, 1]
    assert np.allclose(colors[y < 10, 3], 0.2)
    assert np.allclose(colors[(y >= 10) & (x < 10), 3], 0.5)
    assert np.allclose(colors[(y >= 10) & (x >= 10), 3], 1.0)
    assert np.allclose(vectors_data(bx, by, across=5)[1][:, 3], 1.0)
