"""Screenshot of the "TIE series (LTEM)" panel after a flipped-series run (needs a display).

    QT_API=pyqt6 xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/tie_series_screenshot.py

Writes docs/images/tie_series_panel.png: a simulated flipped 5-image series (10 % noise, flipped
images mirrored, rotated 3° and shifted), aligned and solved with the regularisation chosen from
the noise ("auto") inside a region of interest drawn as a rectangle; the magnetic phase.
"""

from __future__ import annotations

import sys
from pathlib import Path

from _screenshot_common import _dismiss_toasts, _dock, _process  # scripts/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path = ROOT / "docs" / "images" / "tie_series_panel.png") -> int:
    import napari
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from napari_phase.ltem.simulate_series import simulate_flipped_series
    from napari_phase.widgets.tie_series_panel import TieSeriesPanel

    z = np.arange(-2, 3) * 2e5
    s = simulate_flipped_series("skyrmions", (128, 128), defocus_nm=z, noise=0.1, n_contaminants=6, seed=0)
    viewer = napari.Viewer(title="napari-phase: TIE series", show=True)
    viewer.window._qt_window.resize(1500, 950)
    viewer.add_image(s.series, name="series (5 defoci)", scale=(1, 5.0, 5.0), units=("pixel", "nm", "nm"),
                     metadata={"defocus_nm": list(z)}, visible=False)
    viewer.add_image(s.flipped, name="flipped series (as recorded)", scale=(1, 5.0, 5.0), units=("pixel", "nm", "nm"), visible=False)
    panel = TieSeriesPanel(viewer)
    _dock(viewer, panel, "TIE series (LTEM)", width=520)
    panel.series_combo.set_layer(viewer.layers["series (5 defoci)"])
    panel.use_flip.setChecked(True)
    panel.flip_combo.set_layer(viewer.layers["flipped series (as recorded)"])
    # regularisation "auto" (the default): the noise is measured in the images; an ROI drawn as a rectangle
    shapes = panel.draw_roi()
    shapes.add_rectangles(np.array([[6.0, 6.0], [122.0, 122.0]]))
    panel.run()
    panel.runner.wait(120000)
    _process(1.0)
    for layer in viewer.layers:
        if "aligned" in layer.name:
            layer.visible = False
    viewer.dims.set_current_step(0, 2)  # the in-focus frame of the (hidden) aligned stacks
    viewer.reset_view()
    _process(1.0)
    _dismiss_toasts(viewer)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.window._qt_window.grab().save(str(out))
    print(f"wrote {out}; {panel.result_info.text()}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
