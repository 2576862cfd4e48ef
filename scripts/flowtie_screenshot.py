"""Screenshot of the "FlowTIE" panel on the bundled thick-SrTiO3 triplet (needs a display).

    QT_API=pyqt6 xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/flowtie_screenshot.py [MODEL]

Writes docs/images/flowtie_panel.png: File > Open Sample > FlowTIE triplet (20 nm SrTiO3 [001],
300 kV, 20 mrad, dz ±2 nm), classical TIE and FlowTIE run through the panel; the FlowTIE phase with
the flow arrows is shown, beside it the true σV for comparison.
"""

from __future__ import annotations

import sys
from pathlib import Path

from _screenshot_common import _dismiss_toasts, _dock, _process  # scripts/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path = ROOT / "docs" / "images" / "flowtie_panel.png") -> int:
    import napari
    import torch

    torch.set_num_threads(1)
    from napari_phase.widgets.flowtie_panel import FlowTIEPanel

    if len(sys.argv) > 1:  # another model (a .pt path with its card) instead of the shipped one
        import napari_phase.flowtie.solve as solve

        solve.DEFAULT_MODEL = sys.argv[1]

    viewer = napari.Viewer(title="napari-phase: FlowTIE", show=True)
    viewer.window._qt_window.resize(1500, 950)
    viewer.open_sample("napari-phase", "flowtie_srtio3")
    panel = FlowTIEPanel(viewer)
    _dock(viewer, panel, "FlowTIE (defocus triplet)", width=430)
    tri = viewer.layers["FlowTIE SrTiO3 triplet"]
    panel.set_stack_layer(tri)
    panel.method.setCurrentText("classical TIE")
    panel.run()
    panel.runner.wait(120000)
    panel.method.setCurrentText("FlowTIE (network)")
    panel.run()
    panel.runner.wait(120000)
    _process(1.0)
    for layer in viewer.layers:
        layer.visible = layer.name in ("FlowTIE phase [rad]", "FlowTIE flow arrows", "FlowTIE SrTiO3 triplet true σV [rad]")
    truth = viewer.layers["FlowTIE SrTiO3 triplet true σV [rad]"]
    truth.translate = (0.0, truth.data.shape[-1] * truth.scale[-1] * 1.05)  # beside the result
    viewer.layers.selection.active = viewer.layers["FlowTIE phase [rad]"]
    viewer.dims.set_current_step(0, 1)  # the in-focus frame of the (hidden) triplet
    viewer.text_overlay.visible = True
    viewer.text_overlay.color = "white"
    viewer.text_overlay.font_size = 11
    viewer.text_overlay.position = "top_left"
    viewer.text_overlay.text = ("20 nm SrTiO3 [001], 300 kV, 20 mrad, dz ±2 nm\n"
                                "left: FlowTIE phase + flow ∇φ (arrows)\nright: true σV (sample's ground truth)")
    viewer.reset_view()
    _process(1.0)
    _dismiss_toasts(viewer)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.window._qt_window.grab().save(str(out))
    print(f"wrote {out}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
