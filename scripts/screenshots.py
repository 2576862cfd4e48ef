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

from _screenshot_common import _dismiss_toasts, _dock_plugin, _process  # scripts/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def _load_sample(viewer):
    """The bundled skyrmion sample (image, true phase, true mask) as layers."""
    from napari_phase.io.sample_data import skyrmion_lattice_ltem

    layers = []
    for data, kwargs, kind in skyrmion_lattice_ltem():
        layers.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    return layers[0]


def _dock_panel(viewer):
    def _direct(viewer):
        from napari_phase.widgets.siprad_panel import SipradPanel

        return SipradPanel(viewer)

    return _dock_plugin(viewer, "SIPRAD (LTEM)", width=400, fallback=_direct)


def _siprad_available() -> bool:
    try:
        from napari_phase.ltem import siprad_job  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"), help="output folder")
    parser.add_argument("--siprad-iterations", type=int, default=100, help="iterations of the short SIPRAD run (0 = skip)")
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
    panel = _dock_panel(viewer)  # widened to 400 px
    _process(0.5)

    # ------------------------------------------------------------------ 1. SITIE preview (instant)
    panel.image_combo.set_layer(image)
    panel.run_sitie_preview()
    panel.runner.wait(60_000)
    print("SITIE:", panel.runner.status_text)

    # ------------------------------------------------------------------ 2. mask_tool.png
    for layer in viewer.layers:
        layer.visible = layer is image
    panel.mask_section.expand(animate=False)
    tool = panel.mask_tool
    tool.smooth.setValue(3.0)
    tool.min_size.setValue(20)
    worker = tool.suggest_mask()  # the detector's suggestion ("Suggest mask"), then brush mode
    t_end = time.time() + 60
    while worker is not None and tool._worker is not None and time.time() < t_end:
        _process(0.1)
    if tool.mask_layer is None:  # detector unavailable: the threshold slider as before
        tool.set_threshold(0.28)
        tool.update_mask()
    tool.edit_mask()
    _process(0.5)
    from qtpy.QtWidgets import QScrollArea

    area = panel.findChild(QScrollArea)
    if area is not None:  # scroll the panel so the mask tool and the buttons are in view
        area.ensureWidgetVisible(panel.runner)
    _process(0.5)
    _dismiss_toasts(viewer)
    path = out / "mask_tool.png"
    viewer.screenshot(str(path), canvas_only=False)
    print("wrote", path)

    # ------------------------------------------------------------------ 3. siprad_panel.png
    panel.mask_section.collapse(animate=False)
    tool.mask_layer.mode = "pan_zoom"
    if args.siprad_iterations and _siprad_available():
        panel.solver.setCurrentText("SIPRAD (deep image prior)")  # amplitude = mask (set by the mask tool)
        panel.iterations.setValue(args.siprad_iterations)
        panel.run()
        panel.runner.wait(600_000)
        print("SIPRAD:", panel.runner.status_text)
        prefix = "SIPRAD"
    else:
        print("SIPRAD solver not available (or skipped): screenshot shows the SITIE preview", file=sys.stderr)
        prefix = "SITIE"
    for layer in viewer.layers:
        if layer.name.startswith(prefix):
            layer.visible = layer.name.endswith(("phase [rad]", "B vectors", "(legend)"))
        elif layer is not image:
            layer.visible = False
    if area is not None:
        area.verticalScrollBar().setValue(0)
    viewer.reset_view()
    _process(1.0)
    _dismiss_toasts(viewer)
    path = out / "siprad_panel.png"
    viewer.screenshot(str(path), canvas_only=False)
    print("wrote", path)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
