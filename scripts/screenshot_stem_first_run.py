"""Screenshot of a newcomer's first 4D-STEM run -> docs/images/stem_first_run.png (issue 16 §3).

    QT_API=pyqt6 xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_stem_first_run.py [--method CNN|iCoM|SSB]

Exactly the flow a new user takes, nothing else: File > Open Sample > 4D-STEM SrTiO3
(``viewer.open_sample``), Plugins > 4D-STEM CNN (docked through the plugin manager), Run with the
panel's defaults, wait, ``viewer.screenshot`` of the window. Prints the result line, the canvas
units napari uses (None would mean the "Inconsistent units" warning) and any napari warning.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _screenshot_common import _dismiss_toasts, _dock_plugin, _process  # scripts/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--method", default=None, help="the panel's method (default: what the panel offers first)")
    p.add_argument("--out", default=str(ROOT / "docs" / "images" / "stem_first_run.png"))
    args = p.parse_args()

    import napari
    from napari.utils.notifications import notification_manager

    from napari_phase.widgets import stem_panel as sp

    seen = []
    notification_manager.notification_ready.connect(lambda n: seen.append(str(n.message)))
    viewer = napari.Viewer(title="napari-phase: first 4D-STEM run")
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open_sample("napari-phase", "stem_srtio3")
    panel = _dock_plugin(viewer, "4D-STEM CNN", width=430)
    _process(0.5)
    if args.method:
        panel.method.setCurrentText(args.method)
    panel.run()
    panel.runner.wait(900_000)
    _process(1.0)
    _dismiss_toasts(viewer, settle=0.8)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
    print(f"wrote {out}; {panel.runner.last_outcome}; {panel.result_info.text()}")
    print(f"canvas units: {viewer.layers.extent.units}; napari notifications: {seen}")
    viewer.close()


if __name__ == "__main__":
    main()
