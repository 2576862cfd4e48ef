"""Screenshot of the "4D-STEM CNN" panel on the bundled SrTiO3 sample -> docs/images/stem_panel.png.

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_stem_panel.py [--method iCoM|SSB|CNN]

Opens the sample, detects the BF disc, shows the virtual BF image and one position's pattern, runs
the chosen method (default: CNN when a model is shipped, else SSB) and grabs the window.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _process(seconds: float = 0.3) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--method", default=None)
    p.add_argument("--out", default=str(ROOT / "docs" / "images" / "stem_panel.png"))
    args = p.parse_args()

    import napari
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QDockWidget

    from napari_phase.widgets import stem_panel as sp

    viewer = napari.Viewer(title="napari-phase: 4D-STEM")
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open_sample("napari-phase", "stem_srtio3")
    _, panel = viewer.window.add_plugin_dock_widget("napari-phase", "4D-STEM CNN")
    dock = panel
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    if dock is not None:
        viewer.window._qt_window.resizeDocks([dock], [430], Qt.Horizontal)
    _process(0.5)
    panel.detect_disc()
    panel.show_virtual_image()
    panel.show_pattern(20, 24)
    method = args.method or (sp.CNN if sp._model_available()[0] else sp.SSB)
    panel.method.setCurrentText(method)
    panel.run()
    panel.runner.wait(600_000)
    _process(0.5)
    for name in ("virtual detector",):
        if name in viewer.layers:
            viewer.layers[name].visible = False
    panel.fit_view()
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
            toast.close()
    except Exception:  # noqa: BLE001
        pass
    _process(0.8)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.window._qt_window.grab().save(str(out))
    print(f"wrote {out}; {panel.result_info.text()}")
    viewer.close()


if __name__ == "__main__":
    main()
