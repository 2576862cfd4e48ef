"""Dock panel "TIE series (LTEM)": TIE from a through-focus series, optionally with the flipped
series, alignment, hot-pixel filter and region of interest; and "Simulate from OVF".

Thin: it reads layers and parameters, runs :func:`napari_phase.ltem.tie_job` through
:class:`~napari_phase.widgets._runner.JobRunner`, and shows the result with
:mod:`napari_phase.widgets._layers` (φm or total phase, φe, B·t, and the aligned stacks so the
alignment can be checked). "Simulate from OVF" calls
:func:`napari_phase.ltem.simulate_from_magnetization` and adds the image and its truth.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..jobs import InputError
from . import _runner
from ._layers import add_or_update, result_to_layers
from ._runner import JobRunner, LayerCombo
from ._form import Field, add_fields, field_box, read_fields, scrolling_panel, tidy_form as _tidy_form
from .siprad_panel import pixel_size_from_layer

HELP = (
    "<b>1</b> the series as one stack layer, most under-focused first, in-focus in the middle "
    "(or select its 2-D images and press <i>Stack selected layers</i>) <b>2</b> the defocus step or one "
    "defocus per image <b>3</b> optional: the flipped series <b>4</b> <i>Run TIE</i>"
)
FLIP_AXES = {"x: mirrored left-right": "x", "y: mirrored up-down": "y"}
#: regularisation choices → qc_per_nm (the string "value" reads the qc box)
REGULARISATION = {
    "auto (from the noise)": "auto",
    "default cut-off": None,
    "typed cut-off qc": "value",
}
#: boundary choices → boundary=
BOUNDARIES = {
    "auto": "auto",
    "free (a window of the film)": "free",
    "zero flux (mirror)": "mirror",
}
#: series registration choices → series_registration= (with "align")
REGISTRATIONS = {
    "each image onto its model": "model",
    "cross-correlation only": "cross-correlation",
}
#: φe derivative choices → derivative_e= (flipped series)
DERIVATIVES_E = {
    "per-frequency fit (spectral)": "spectral",
    "least-squares line": "least_squares",
}
#: φe lowest-frequency choices → phase_e_prior=
PHASE_E_PRIORS = {
    "from the amplitude (one material)": "auto",
    "none (shrunk to zero)": "none",
}
ROI_LAYER = "TIE region of interest"
BASE = "TIE"


def roi_from_shapes(shapes_layer, image_layer) -> tuple[int, int, int, int] | None:
    """The last rectangle (or any shape: its bounding box) of a Shapes layer as (y0, y1, x0, x1)
    pixels of ``image_layer`` (world → data coordinates of the image's last two axes), clipped to
    the image; None when the layer has no shape or the box misses the image."""
    if shapes_layer is None or len(shapes_layer.data) == 0:
        return None
    verts = np.asarray(shapes_layer.data[-1], dtype=np.float64)
    world = np.array([shapes_layer.data_to_world(v) for v in verts])
    ny, nx = image_layer.data.shape[-2:]
    pix = np.array([image_layer.world_to_data(np.concatenate([np.zeros(image_layer.ndim - 2), w[-2:]]))[-2:] for w in world])
    y0, x0 = np.floor(pix.min(axis=0) + 0.5).astype(int)
    y1, x1 = np.floor(pix.max(axis=0) + 0.5).astype(int)
    y0, x0, y1, x1 = max(0, y0), max(0, x0), min(ny, y1), min(nx, x1)
    if y1 <= y0 or x1 <= x0:
        return None
    return int(y0), int(y1), int(x0), int(x1)


def _is_stack(layer) -> bool:
    from napari.layers import Image

    md = getattr(layer, "metadata", None) or {}
    return (isinstance(layer, Image) and not getattr(layer, "rgb", False) and layer.ndim == 3
            and "napari_phase" not in md and md.get("kind") != "ground_truth")


def _layer_stack(layer, what: str) -> np.ndarray:
    if layer is None:
        raise InputError(f"pick the {what} stack layer first (or stack 2-D image layers with 'Stack selected')")
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    arr = np.array(data, dtype=np.float32, copy=True)
    if arr.ndim != 3:
        raise InputError(f"'{layer.name}' is {arr.ndim}-D; the {what} must be a stack (N, Y, X)")
    return arr


def parse_floats(text: str, name: str) -> list[float] | None:
    """'-0.4, -0.2, 0, 0.2, 0.4' → floats; empty → None; anything else → InputError."""
    text = text.replace(";", ",").strip()
    if not text:
        return None
    try:
        return [float(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise InputError(f"{name}: give numbers separated by commas, got {text!r}") from None



#: The series' numeric fields (defocus step shown in mm, passed in nm).
SERIES_FIELDS = (
    Field("step_mm", "defocus_step_nm", "defocus step (mm)", 0.2, 0.0, 1000.0, 4, 0.05,
          "Defocus step between neighbouring images in mm (symmetric series)", scale=1e6),
    Field("pixel_size", "pixel_size_nm", "pixel size (nm)", 5.0, 1e-4, 1e5, 4, 0.1,
          "Image sampling in nm per pixel (prefilled from the layer)"),
    Field("voltage_kv", "voltage_kv", "voltage (kV)", 200.0, 1.0, 3000.0, 1, 10.0, "Accelerating voltage in kV"),
    Field("qc", "qc_per_nm", "qc (1/nm)", 0.0, 0.0, 100.0, 5, 0.0005,
          "Tikhonov cut-off qc in cycles/nm (off = the plain inverse Laplacian, "
          "right for quantitative B·t on clean data; raise it against low-frequency noise)", special="off"),
    Field("max_rot", "max_rotation_deg", "max rotation (°)", 10.0, 0.0, 45.0, 1, 1.0,
          "Largest rotation searched between the flipped and unflipped series"),
)

#: "Simulate from OVF": keyword arguments of ltem.simulate_from_magnetization (defocus shown in mm).
OVF_FIELDS = (
    Field("ovf_tilt_x", "tilt_x_deg", "tilt x (°)", 0.0, -79.0, 79.0, 1, 5.0, "Specimen tilt about the image x axis (Néel textures need one)"),
    Field("ovf_tilt_y", "tilt_y_deg", "tilt y (°)", 0.0, -79.0, 79.0, 1, 5.0, "Specimen tilt about the image y axis"),
    Field("ovf_defocus", "defocus_nm", "defocus (mm)", -0.1, -1000.0, 1000.0, 4, 0.05, "Defocus in mm, negative = under-focus",
          scale=1e6),
    Field("ovf_ms", "ms_a_per_m", "Ms (A/m)", 0.0, 0.0, 1e8, 0, 1e4, special="from file",
          tooltip="Saturation magnetisation in A/m (needed for unit-vector files; 0 = from the file)"),
    Field("ovf_film", "film_thickness_nm", "film thickness (nm)", 0.0, 0.0, 1e4, 1, 10.0, special="from file",
          tooltip="Film thickness along the beam in nm (0 = the file's cells); a run with one cell through the film "
                  "often stands for a thicker film: B·t and the contrast scale with it"),
    Field("ovf_px", "pixel_size_nm", "pixel size (nm)", 0.0, 0.0, 1e3, 3, 0.5, "Image pixel size in nm (0 = the cell size)",
          special="cell size"),
    Field("ovf_noise", "noise", "noise", 0.0, 0.0, 10.0, 3, 0.05, "Gaussian noise σ as a fraction of the mean intensity (0.1 = 10 %)"),
)


def result_summary(md: dict) -> str:
    """The panel's result line from a TIE result's metadata (method, flip and series registration,
    φe fall-back and long wavelengths, regularisation, edges, solved region)."""
    text = f"{md.get('method')}: {md.get('phase_meaning', '')}. {md.get('runtime_s', 0):.1f} s."
    if "flipped_transform" in md:
        t = md["flipped_transform"]
        text += f" Flipped series: rotated {t['angle_deg']:.2f}°, shifted {t['shift_yx_px'][0]:.1f}, {t['shift_yx_px'][1]:.1f} px (match {t['quality']:.2f}"
        text += f"; registered on: {t['registered_on']})." if t.get("registered_on") else ")."
    reg = md.get("series_registration")
    if isinstance(reg, dict):
        text += (f" Series registration: {reg['fallback']}." if reg.get("fallback") else
                 f" Series registered onto its model in {reg.get('rounds', 0)} rounds.")
    prior = md.get("phase_e_prior")
    if isinstance(prior, dict):
        text += (f" φe long wavelengths from the amplitude (k {prior['k_rad']:.3g} rad, fit r {prior['correlation']:.2f})."
                 if prior.get("used") else f" φe long wavelengths: none ({prior.get('reason') or 'amplitude does not match φe'}).")
    check = md.get("phase_e_check")
    if isinstance(check, dict) and check.get("kept", "refined") != "refined":
        text += f" φe: the plain algebra (φ + φflip)/2 ({check.get('reason', 'the refinement did not pass its test')})."
    pr = md.get("parameters", {})
    auto = md.get("auto_regularisation")
    if auto:
        first = auto.get("series", auto) if isinstance(auto, dict) else auto
        q = first["wiener_half_per_nm"]
        text += (f" Noise measured: {first['noise_sigma_over_mean']:.1%} of the mean; the Wiener filter keeps detail down to "
                 f"periods of {1 / q:.0f} nm (passes ≥ ½ up to {q:.3g}/nm)." if q > 0 else
                 f" Noise measured: {first['noise_sigma_over_mean']:.1%} of the mean; the Wiener filter passes almost nothing: "
                 "the images are mostly noise.")
    elif "qc_per_nm" in pr:
        text += f" Tikhonov qc {pr['qc_per_nm']:.3g}/nm ({pr.get('qc_source', '')})."
    if "boundary" in pr:
        text += f" Edges: {pr['boundary']}."
    shape_in = pr.get("input_shape")
    if md.get("crop_yx") and shape_in and list(md["crop_yx"]) != [0, shape_in[-2], 0, shape_in[-1]]:
        a, b, c, d = md["crop_yx"]
        why = " and ".join(w for w, on in (("covered by every aligned image", pr.get("align")), ("inside the ROI", pr.get("roi"))) if on)
        text += f" Solved on rows {a}–{b}, columns {c}–{d}" + (f" ({why})." if why else ".")
    return text


class TieSeriesPanel(QWidget):
    """The TIE series dock panel (see module docstring)."""

    def __init__(self, napari_viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from napari.layers import Image

        self.viewer = napari_viewer
        self.help_label = QLabel(HELP)
        self.help_label.setWordWrap(True)
        self.help_label.setTextFormat(Qt.RichText)

        # ---------------------------------------------------------------- series
        self.series_combo = LayerCombo(napari_viewer, (Image,), accept=_is_stack, placeholder="(no stack layer)")
        self.series_combo.setToolTip("Through-focus series (N, Y, X), N odd, ordered from most under- to most over-focused")
        self.stack_button = QPushButton("Stack selected layers")
        self.stack_button.setToolTip("Make one stack layer from the 2-D image layers selected in the layer list, "
                                     "in layer-list order (bottom first)")
        self.stack_button.clicked.connect(lambda *_: self.stack_selected())
        for f in SERIES_FIELDS:  # the numeric boxes, declared once (rows laid out below among the choices)
            setattr(self, f.attr, field_box(f))
        self.defoci_mm = QLineEdit()
        self.defoci_mm.setPlaceholderText("or one per image, e.g. -0.4, -0.2, 0, 0.2, 0.4")
        self.defoci_mm.setToolTip("Defocus of each image in mm, negative = under-focus; overrides the step when filled in")
        self.regularisation = QComboBox()
        self.regularisation.addItems(list(REGULARISATION))
        self.regularisation.setToolTip(
            "auto: the noise is measured in the images and ∂I/∂z is Wiener-filtered with it (no cut-off of the slow phase, "
            "so B·t keeps its size); default: the Tikhonov cut-off 0.5/FOV (series) or 2/FOV (one image), which damps the "
            "slowest phase and with it B·t; typed: the cut-off qc below (off = none)")
        self.boundary = QComboBox()
        self.boundary.addItems(list(BOUNDARIES))
        self.boundary.setToolTip(
            "What lies beyond the field of view. free: the field is a window of a larger specimen (phase continued with the "
            "least gradient); zero flux: nothing crosses the edges (an isolated specimen, or a mirror-symmetric simulation); "
            "auto: free when alignment moved or cropped the images or a region of interest is set")
        series_box = QGroupBox("Through-focus series")
        form = QFormLayout(series_box)
        _tidy_form(form)
        form.addRow("series", self.series_combo)
        form.addRow("", self.stack_button)
        form.addRow("defocus step (mm)", self.step_mm)
        form.addRow("defoci (mm)", self.defoci_mm)
        form.addRow("pixel size (nm)", self.pixel_size)
        form.addRow("voltage (kV)", self.voltage_kv)
        form.addRow("regularisation", self.regularisation)
        form.addRow("qc (1/nm)", self.qc)
        form.addRow("image edges", self.boundary)

        # ---------------------------------------------------------------- flip + alignment
        self.use_flip = QCheckBox("flipped series (separates φm and φe)")
        self.flip_combo = LayerCombo(napari_viewer, (Image,), accept=_is_stack, placeholder="(no stack layer)")
        self.flip_combo.setToolTip("The same defoci recorded with the specimen turned over, as recorded (mirrored)")
        self.flip_axis = QComboBox()
        self.flip_axis.addItems(list(FLIP_AXES))
        self.flip_axis.setToolTip("How the flipped images are mirrored relative to the unflipped ones")
        self.align = QCheckBox("align before solving")
        self.align.setChecked(True)
        self.align.setToolTip("Register the series (shifts) and the flipped series onto it (mirror, rotation, sub-pixel shift); "
                              "the aligned stacks are added as layers to check")
        self.registration = QComboBox()
        self.registration.addItems(list(REGISTRATIONS))
        self.registration.setToolTip(
            "How the images of one series are registered. onto its model: shifts of 2 px or more by cross-correlation, then "
            "every image onto a simulation at its own defocus (sub-pixel, also for small drifts); cross-correlation only: the "
            "first step (shifts under 2 px are left alone; defocus contrast biases cross-correlation)")
        self.derivative_e = QComboBox()
        self.derivative_e.addItems(list(DERIVATIVES_E))
        self.derivative_e.setToolTip(
            "∂I/∂z for the electrostatic phase φe. spectral: per spatial frequency, the fit of the weak-object defocus "
            "response sin(πλΔf q²) over all defoci (uses the large defoci where they are still linear); least-squares: the "
            "straight line through the series at every pixel")
        self.phase_e_prior = QComboBox()
        self.phase_e_prior.addItems(list(PHASE_E_PRIORS))
        self.phase_e_prior.setToolTip(
            "φe's longest wavelengths (below the cut-off 2/FOV, which TIE cannot see) from k·(−ln A) of the in-focus image, "
            "k fitted to the rest of φe — right for one material of varying thickness; none: those wavelengths are zero")
        self.hot_pixels = QCheckBox("remove hot pixels")
        self.hot_pixels.setToolTip("Replace isolated spikes (> 6σ above/below all 8 neighbours) by the 3×3 median")
        self.roi = QLineEdit()
        self.roi.setPlaceholderText("whole image, or draw / type y0 y1 x0 x1 (px)")
        self.roi.setToolTip("Region of interest in pixels of the unflipped frame; filled in by the rectangle drawn "
                            f"in the '{ROI_LAYER}' layer, or typed")
        self.roi_button = QPushButton("Draw ROI")
        self.roi_button.setToolTip(f"Add (or select) the '{ROI_LAYER}' Shapes layer in rectangle mode: drag a rectangle "
                                   "on the image; its pixel range appears in the box (the last rectangle counts)")
        self.roi_button.clicked.connect(lambda *_: self.draw_roi())
        self.roi_clear = QPushButton("Whole image")
        self.roi_clear.setToolTip("Forget the region of interest (removes the drawn rectangles)")
        self.roi_clear.clicked.connect(lambda *_: self.clear_roi())
        roi_row = QWidget()
        rl = QHBoxLayout(roi_row)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.roi_button)
        rl.addWidget(self.roi_clear)
        prep_box = QGroupBox("Flip, alignment, clean-up")
        pf = QFormLayout(prep_box)
        _tidy_form(pf)
        pf.addRow(self.use_flip)
        pf.addRow("flipped series", self.flip_combo)
        pf.addRow("flip axis", self.flip_axis)
        pf.addRow(self.align)
        pf.addRow("max rotation (°)", self.max_rot)
        pf.addRow("registration", self.registration)
        pf.addRow("φe derivative", self.derivative_e)
        pf.addRow("φe long wavelengths", self.phase_e_prior)
        pf.addRow(self.hot_pixels)
        pf.addRow("region of interest", self.roi)
        pf.addRow("", roi_row)
        self.uncertainty = QCheckBox("per-pixel σ (phase, B·t)")
        self.uncertainty.setToolTip("Also compute σ layers of the phase and of Bx·t, By·t (hidden when added): the solve "
                                    "repeated on re-sampled noise, the noise part of the error only; not calibrated "
                                    "against the truth (see the notification)")
        pf.addRow(self.uncertainty)

        # ---------------------------------------------------------------- run
        self.runner = JobRunner(name="TIE", run_text="Run TIE", on_run=self.run, keep_checkbox=False)
        self.result_info = QLabel("")
        self.result_info.setWordWrap(True)
        self.result_info.setStyleSheet("color: #a0a0a0;")

        # ---------------------------------------------------------------- simulate from OVF
        from magicgui.widgets import FileEdit

        self.ovf_file = FileEdit(mode="r", filter="OVF (*.ovf *.omf);;All files (*)")
        self.ovf_file.line_edit.native.setPlaceholderText("OOMMF / mumax3 .ovf or .omf file")
        self.ovf_path = self.ovf_file.line_edit.native  # the path as text (empty: none chosen yet)
        self.ovf_axis = QComboBox()
        self.ovf_axis.addItems(["z", "y", "x", "auto (single-cell axis)"])
        self.ovf_axis.setToolTip("Beam direction in the simulator's frame (the beam travels along −axis)")
        self.ovf_button = QPushButton("Simulate from OVF")
        self.ovf_button.setToolTip("Image the magnetisation with the LTEM forward model; adds the image and its true phase and B·t")
        self.ovf_button.clicked.connect(lambda *_: self.simulate_from_ovf())
        from superqt import QCollapsible

        sim = QWidget()
        sf = QFormLayout(sim)
        _tidy_form(sf)
        sf.addRow("file", self.ovf_file.native)
        sf.addRow("beam along", self.ovf_axis)
        add_fields(self, sf, OVF_FIELDS)
        sf.addRow(self.ovf_button)
        self.ovf_section = QCollapsible("Simulate from OVF (micromagnetic file)")
        self.ovf_section.addWidget(sim)
        self.ovf_section.collapse(animate=False)

        content = QWidget()
        lay = QVBoxLayout(content)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        lay.addWidget(self.help_label)
        lay.addWidget(series_box)
        lay.addWidget(prep_box)
        line = QFrame()
        line.setFrameShape(QFrame.HLine)
        lay.addWidget(line)
        lay.addWidget(self.runner)
        lay.addWidget(self.result_info)
        lay.addWidget(self.ovf_section)
        lay.addStretch(1)
        scrolling_panel(self, content)

        self.use_flip.toggled.connect(self._update_enabled)
        self.align.toggled.connect(self._update_enabled)
        self.regularisation.currentIndexChanged.connect(self._update_enabled)
        self.series_combo.layer_changed.connect(self._on_series_changed)
        self._update_enabled()
        self._on_series_changed(self.series_combo.current_layer())

    # ------------------------------------------------------------------ public API
    def stack_selected(self):
        """Stack the selected 2-D image layers (layer-list order, bottom first) into one layer."""
        from napari.layers import Image

        chosen = [ly for ly in self.viewer.layers if ly in self.viewer.layers.selection and isinstance(ly, Image) and ly.ndim == 2]
        if len(chosen) < 1:
            _runner.warn("select the 2-D image layers of the series in the layer list first (most under-focused lowest)")
            return None
        shapes = {ly.data.shape for ly in chosen}
        if len(shapes) != 1:
            _runner.warn(f"the selected images differ in shape: {sorted(shapes)}")
            return None
        data = np.stack([np.asarray(ly.data, dtype=np.float32) for ly in chosen])
        md = {"stacked_from": [ly.name for ly in chosen]}
        defoci = [ly.metadata.get("defocus_nm") for ly in chosen]
        if all(d is not None for d in defoci):
            md["defocus_nm"] = [float(d) for d in defoci]
            self.defoci_mm.setText(", ".join(f"{d / 1e6:g}" for d in md["defocus_nm"]))
        layer = self.viewer.add_image(data, name=f"series ({len(chosen)} images)", scale=[1.0, *chosen[0].scale[-2:]],
                                      metadata=md)
        self.series_combo.set_layer(layer)
        return layer

    def parameters(self) -> dict:
        """Keyword arguments of :func:`napari_phase.ltem.tie_job` from the widgets (no data)."""
        v = read_fields(self, SERIES_FIELDS)
        params = {"pixel_size_nm": v["pixel_size_nm"], "voltage_kv": v["voltage_kv"]}
        defoci = parse_floats(self.defoci_mm.text(), "defoci (mm)")
        if defoci is not None:
            params["defocus_nm"] = [d * 1e6 for d in defoci]
        else:
            params["defocus_step_nm"] = v["defocus_step_nm"]
        choice = REGULARISATION[self.regularisation.currentText()]
        if choice == "value":
            params["qc_per_nm"] = v["qc_per_nm"] or 0.0  # "off": the plain inverse Laplacian
        else:
            params["qc_per_nm"] = choice
        params["boundary"] = BOUNDARIES[self.boundary.currentText()]
        params["align"] = bool(self.align.isChecked())
        params["max_rotation_deg"] = v["max_rotation_deg"]
        params["series_registration"] = REGISTRATIONS[self.registration.currentText()]
        params["hot_pixel_sigma"] = 6.0 if self.hot_pixels.isChecked() else None
        params["uncertainty"] = bool(self.uncertainty.isChecked())
        roi = parse_floats(self.roi.text(), "region of interest")
        if roi is not None:
            if len(roi) != 4:
                raise InputError("region of interest: give four numbers y0 y1 x0 x1 (pixels)")
            params["roi"] = tuple(int(v) for v in roi)
        if self.use_flip.isChecked():
            params["flip_axis"] = FLIP_AXES[self.flip_axis.currentText()]
            params["derivative_e"] = DERIVATIVES_E[self.derivative_e.currentText()]
            params["phase_e_prior"] = PHASE_E_PRIORS[self.phase_e_prior.currentText()]
        return params

    def draw_roi(self):
        """Add (or reuse) the ROI Shapes layer, select it in rectangle mode; returns the layer."""
        layer = self.viewer.layers[ROI_LAYER] if ROI_LAYER in self.viewer.layers else None
        if layer is None:
            series = self.series_combo.current_layer()
            scale = list(series.scale[-2:]) if series is not None else [1.0, 1.0]
            translate = list(series.translate[-2:]) if series is not None else [0.0, 0.0]
            extra = {"units": list(series.units[-2:])} if series is not None and hasattr(series, "units") else {}
            layer = self.viewer.add_shapes(name=ROI_LAYER, ndim=2, scale=scale, translate=translate, edge_color="yellow",
                                           face_color="transparent", edge_width=1.0, **extra)
            layer.events.data.connect(lambda *_: self._roi_from_layer())
        self.viewer.layers.selection.active = layer
        layer.mode = "add_rectangle"
        return layer

    def clear_roi(self) -> None:
        if ROI_LAYER in self.viewer.layers:
            layer = self.viewer.layers[ROI_LAYER]
            layer.data = []
        self.roi.clear()

    def _roi_from_layer(self) -> None:
        if ROI_LAYER not in self.viewer.layers:
            return
        series = self.series_combo.current_layer()
        if series is None:
            return
        box = roi_from_shapes(self.viewer.layers[ROI_LAYER], series)
        if box is not None:
            self.roi.setText(" ".join(str(v) for v in box))

    def run(self) -> bool:
        ctx: dict = {}
        return self.runner.start(lambda: self._make_job(ctx), on_result=partial(self._show_result, ctx), name="TIE")

    def simulate_from_ovf(self, path: str | None = None):
        """Read the OVF file, image it, add image + true phase + true B·t layers. Returns the sample or None."""
        from ..io.magnetization import read_magnetization
        from ..ltem.micromagnetic import simulate_from_magnetization

        path = path or self.ovf_path.text().strip()
        try:
            if not path:
                raise InputError("choose an .ovf/.omf file first")
            mag = read_magnetization(path)
            axis = self.ovf_axis.currentText()
            sample = simulate_from_magnetization(mag, thickness_axis=None if axis.startswith("auto") else axis,
                                                 **read_fields(self, OVF_FIELDS))
        except (InputError, FileNotFoundError) as exc:
            _runner.warn(str(exc))
            return None
        name = Path(path).stem
        p = sample.pixel_size_nm
        common = {"scale": [p, p], "units": ["nm", "nm"]}
        md = {"pixel_size_nm": p, "defocus_nm": sample.defocus_nm, "voltage_kv": sample.voltage_kv, "source": str(path),
              **{k: v for k, v in sample.params.items() if k in ("tilt_x_deg", "tilt_y_deg", "thickness_axis", "ms_a_per_m", "thickness_nm")}}
        self.viewer.add_image(sample.phase_m, name=f"{name} true phase [rad]", colormap="gray", visible=False,
                              metadata={"kind": "ground_truth", "unit": "rad"}, **common)
        self.viewer.add_image(np.stack([sample.bx, sample.by]), name=f"{name} true Bx·t, By·t [T·nm]", colormap="bwr",
                              visible=False, metadata={"kind": "ground_truth", "unit": "T·nm"}, scale=[1.0, p, p])
        self.viewer.add_image(sample.image, name=f"{name} LTEM {sample.defocus_nm / 1e6:g} mm", metadata=md, **common)
        self.result_info.setText(f"simulated {name}: {sample.image.shape[0]}×{sample.image.shape[1]} px of {p:g} nm, "
                                 f"Δf {sample.defocus_nm / 1e6:g} mm; true B·t up to {float(np.hypot(sample.bx, sample.by).max()):.3g} T·nm")
        return sample

    # ------------------------------------------------------------------ internals
    def _make_job(self, ctx: dict):
        from ..ltem import tie_job

        layer = self.series_combo.current_layer()
        series = _layer_stack(layer, "series")
        params = self.parameters()
        flipped = None
        if self.use_flip.isChecked():
            flip_layer = self.flip_combo.current_layer()
            if flip_layer is layer:
                raise InputError("the flipped series is the same layer as the series; pick the flipped stack")
            flipped = _layer_stack(flip_layer, "flipped series")
        ctx["layer"] = layer
        return tie_job(series, flipped=flipped, **params)

    def _show_result(self, ctx: dict, result) -> None:
        layer = ctx.get("layer")
        layers = result_to_layers(result, BASE, source_layer=None)
        y0, _, x0, _ = result.metadata.get("crop_yx", [0, 0, 0, 0])
        p = float(result.pixel_size)
        base_t = list(np.asarray(layer.translate, float)[-2:]) if layer is not None else [0.0, 0.0]
        for _data, kwargs, _kind in layers:  # the solved region sits at its place in the input frame
            t = list(kwargs.get("translate", [0.0, 0.0]))
            t[-2:] = [t[-2] + base_t[0] + y0 * p, t[-1] + base_t[1] + x0 * p]
            kwargs["translate"] = t
            if "aligned" in kwargs["name"]:
                kwargs["colormap"] = "gray"
        add_or_update(self.viewer, layers)
        self.result_info.setText(result_summary(result.metadata))

    def _on_series_changed(self, layer) -> None:
        if layer is None:
            return
        px, _src = pixel_size_from_layer(layer)
        if px:
            self.pixel_size.setValue(px)
        md = getattr(layer, "metadata", None) or {}
        if isinstance(md.get("defocus_nm"), (list, tuple)) and len(md["defocus_nm"]) == layer.data.shape[0]:
            self.defoci_mm.setText(", ".join(f"{d / 1e6:g}" for d in md["defocus_nm"]))

    def _update_enabled(self, *_) -> None:
        on = self.use_flip.isChecked()
        self.flip_combo.setEnabled(on)
        self.flip_axis.setEnabled(on)
        self.max_rot.setEnabled(on and self.align.isChecked())
        self.registration.setEnabled(self.align.isChecked())
        self.derivative_e.setEnabled(on)
        self.phase_e_prior.setEnabled(on)
        self.qc.setEnabled(REGULARISATION[self.regularisation.currentText()] == "value")

