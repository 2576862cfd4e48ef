"""Screenshot of the "4D-STEM CNN" panel on the bundled SrTiO3 sample -> docs/images/stem_panel.png.

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_stem_panel.py [--method iCoM|SSB|CNN]

Opens the sample, detects the BF disc, shows the virtual BF image and one position's pattern, runs
the chosen method (default: CNN when a model is shipped, else SSB) and grabs the window.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _screenshot_common import _dismiss_toasts, _dock_plugin, _process  # scripts/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--method", default=None)
    p.add_argument("--out", default=str(ROOT / "docs" / "images" / "stem_panel.png"))
    args = p.parse_args()

    import napari

    from napari_phase.widgets import stem_panel as sp

    viewer = napari.Viewer(title="napari-phase: 4D-STEM")
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open_sample("napari-phase", "stem_srtio3")
    panel = _dock_plugin(viewer, "4D-STEM CNN", width=430)
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
    _dismiss_toasts(viewer, settle=0.8)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.window._qt_window.grab().save(str(out))
    print(f"wrote {out}; {panel.result_info.text()}")
    viewer.close()


if __name__ == "__main__":
    main()
