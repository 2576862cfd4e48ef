"""The plugin as napari sees it: manifest, sample data, dock widget."""

import numpy as np
import pytest


def test_manifest_validates():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-phase")
    assert pm.name == "napari-phase"
    ids = {c.id for c in pm.contributions.commands}
    for cmd in pm.contributions.commands:  # every command points at a real object
        module, _, attr = cmd.python_name.partition(":")
        mod = __import__(module, fromlist=[attr])
        assert callable(getattr(mod, attr)), cmd.python_name
    assert "napari-phase.siprad_panel" in ids
    assert {s.key for s in pm.contributions.sample_data} >= {"ltem_skyrmions", "ltem_stripes"}


def test_npe2_validate_cli():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "npe2", "validate", "napari-phase"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.gui
def test_sample_data_opens_with_calibration(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-phase", "ltem_skyrmions")
    assert len(viewer.layers) >= 2
    image = viewer.layers[0]
    assert image.data.ndim == 2 and np.isfinite(image.data).all()
    assert image.scale[-1] == pytest.approx(5.0)
    assert image.metadata.get("defocus_nm") == pytest.approx(-1e6)
    assert any("true phase" in layer.name for layer in viewer.layers)
    del layers


@pytest.mark.gui
def test_siprad_panel_docks(make_napari_viewer):
    viewer = make_napari_viewer()
    widget, panel = viewer.window.add_plugin_dock_widget("napari-phase", "SIPRAD (LTEM)")
    assert panel is not None
