"""Regenerate the panel screenshots in docs/images/ (needs a display with OpenGL).

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py

Writes docs/images/siprad_panel.png (the SIPRAD panel after a SITIE preview and, when the SIPRAD
solver is installed, a short SIPRAD run on the bundled skyrmion sample) and
docs/images/mask_tool.png (the contaminant mask tool with its live Labels preview, in brush mode).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _process(seconds: float = 0.3) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def _load_sample(viewer):
    """The bundled skyrmion sample (image, true phase, true mask) as layers."""
    from napari_phase.io.sample_data import skyrmion_lattice_ltem

    layers = []
    for data, kwargs, kind in skyrmion_lattice_ltem():
        layers.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    return layers[0]


def _dock_panel(viewer):
    try:
        _, panel = viewer.window.add_plugin_dock_widget("napari-phase", "SIPRAD (LTEM)")
    except Exception as exc:  # noqa: BLE001 - e.g. manifest not valid in this checkout
        print(f"add_plugin_dock_widget failed ({exc}); docking the panel directly", file=sys.stderr)
        from napari_phase.widgets.siprad_panel import SipradPanel

        panel = SipradPanel(viewer)
        viewer.window.add_dock_widget(panel, name="SIPRAD (LTEM)", area="right")
    return panel


def _siprad_available() -> bool:
    try:
        from napari_phase.ltem import siprad_job  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"), help="output folder")
    parser.add_argument("--siprad-iterations", type=int, default=150, help="iterations of the short SIPRAD run (0 = skip)")
    parser.add_argument("--size", default="1500x940", help="window size WxH")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.lower().split("x"))

    import warnings

    warnings.filterwarnings("ignore", message=".*PyQt5 backend is deprecated.*")
    warnings.filterwarnings("ignore", message=".*System theme detection.*")
    import napari

    viewer = napari.Viewer(show=True, title="napari-phase")
    viewer.window._qt_window.resize(width, height)
    image = _load_sample(viewer)
    panel = _dock_panel(viewer)
    _process(0.5)

    # ------------------------------------------------------------------ siprad_panel.png
    panel.image_combo.set_layer(image)
    panel.run_sitie_preview()
    panel.runner.wait(60_000)
    print("SITIE:", panel.runner.status_text)
    if args.siprad_iterations and _siprad_available():
        panel.solver.setCurrentText("SIPRAD (deep image prior)")
        panel.iterations.setValue(args.siprad_iterations)
        panel.run()
        panel.runner.wait(600_000)
        print("SIPRAD:", panel.runner.status_text)
    else:
        print("SIPRAD solver not available (or skipped): screenshot shows the SITIE preview", file=sys.stderr)
    for layer in viewer.layers:  # the colour-wheel B of the latest run, its arrows and legend on top
        if "SITIE" in layer.name and "SIPRAD" in " ".join(lay.name for lay in viewer.layers):
            layer.visible = False
    viewer.reset_view()
    _process(1.0)
    path = out / "siprad_panel.png"
    viewer.screenshot(str(path), canvas_only=False)
    print("wrote", path)

    # ------------------------------------------------------------------ mask_tool.png
    for layer in viewer.layers:
        layer.visible = layer is image
    panel.solver.setCurrentText("SIPRAD (deep image prior)")
    panel.mask_section.expand(animate=False)
    tool = panel.mask_tool
    tool.smooth.setValue(3.0)
    tool.min_size.setValue(20)
    tool.set_threshold(0.28)
    tool.update_mask()
    tool.edit_mask()
    _process(0.5)
    # scroll the panel so the mask tool is in view
    from qtpy.QtWidgets import QScrollArea

    area = panel.findChild(QScrollArea)
    if area is not None:
        area.ensureWidgetVisible(panel.runner)
    _process(0.5)
    path = out / "mask_tool.png"
    viewer.screenshot(str(path), canvas_only=False)
    print("wrote", path)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
