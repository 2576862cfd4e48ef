"""Dock panel "4D-STEM CNN": phase of the object from a 4D-STEM scan (CNN, iCoM or SSB).

Binds a 4-D image layer (scan_y, scan_x, ky, kx) — or one depth of a 5-D depth series — and its
calibration to :mod:`napari_phase.stem`'s jobs, runs them with
:class:`~napari_phase.widgets._runner.JobRunner` (live growing result, Cancel) and shows the results
with :mod:`napari_phase.widgets._layers` (scale in Å, origin at the first scan position).

Canvas layout (2-D layers, world units Å): the virtual-detector image of the scan (and the results,
which share its scan grid) at the origin; the mean pattern and the pattern of a clicked scan position
to its right, scaled to the scan's height (detector pixels, not Å), with the detected bright-field
disc drawn on them. Clicking the virtual image (without dragging) shows that position's pattern.
The 4-D layer itself is hidden once the virtual image stands in for it. No science here.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..io.sample_data import DISPLAY_UNIT, detector_beside_scan
from ..jobs import InputError, Progress
from ..result import PhaseResult
from . import _runner
from ._layers import add_or_update, result_to_layers
from ._form import Field, add_fields, field_box, prefill_fields, read_fields
from ._form import device_choices as _device_choices
from ._form import set_row_visible as _set_row_visible
from ._runner import JobRunner, LayerCombo, _qt_deleted

logger = logging.getLogger(__name__)

CNN, ICOM, SSB = "CNN (airpi)", "iCoM", "SSB"
BASE_NAMES = {CNN: "CNN", ICOM: "iCoM", SSB: "SSB"}
DETECTORS = {"BF (0–α)": "bf", "ABF (α/2–α)": "abf", "ADF (1.1α–edge)": "adf"}
VIRTUAL_NAME = "virtual detector"
MEAN_NAME = "mean pattern (log)"
PATTERN_NAME = "pattern at scan position (log)"
DISC_NAME = "BF disc"
MARKER_NAME = "scan position"
#: every layer the panel makes (and the 4-D layer's displayed axes) is in this unit: napari renders
#: units only when all layers agree ("Inconsistent units across layers" otherwise)
WORLD_UNIT = DISPLAY_UNIT
HELP = ("<b>1</b> pick the 4D-STEM layer &nbsp; <b>2</b> check the calibration (<i>Detect BF disc</i> measures "
        "the centre and, with the semi-angle, the detector sampling) &nbsp; <b>3</b> choose a method and <i>Run</i>. "
        "Click the virtual image to see a position's pattern.")


#: the descan step (stem/descan.py; the methods' descan=): label, value
DESCAN_CHOICES = (("plane (offset + change across the scan)", "plane"), ("constant (offset only)", "constant"),
                  ("off (raw patterns)", "off"))

#: the CNN's arithmetic (stem.cnn precision=, stem/airpi/inference.py): label, value
PRECISION_CHOICES = (("auto (bfloat16 on an AMX CPU, else float32)", "auto"), ("float32", "float32"),
                     ("bfloat16 (CPU only)", "bfloat16"))

#: the CNN's low-frequency source (stem.cnn low_frequency=): label, value
LOW_FREQUENCY_CHOICES = (("iCoM (measured CoM)", "icom"), ("SSB", "ssb"), ("none (network only)", None))


def _data_problem(layer) -> str | None:
    """Why this layer cannot be a 4D-STEM input (None if it can)."""
    from napari.layers import Image

    if layer is None:
        return "pick a 4D-STEM layer first (File > Open a .mib/.h5/.emd/.blo, or File > Open Sample > napari-phase)"
    if not isinstance(layer, Image):
        return f"'{layer.name}' is a {layer.__class__.__name__} layer; the 4D-STEM panel needs a 4-D Image layer (scan_y, scan_x, ky, kx)"
    if getattr(layer, "rgb", False) or getattr(layer, "multiscale", False):
        return f"'{layer.name}' is an RGB/multiscale image, not a 4D-STEM scan"
    if layer.ndim not in (4, 5):
        return f"'{layer.name}' is {layer.ndim}-D; the 4D-STEM panel needs a 4-D scan (scan_y, scan_x, ky, kx)"
    if layer.ndim == 5 and (layer.metadata or {}).get("kind") != "4dstem":
        return f"'{layer.name}' is 5-D but not a 4D-STEM depth series"
    return None


def _is_candidate(layer) -> bool:
    return _data_problem(layer) is None


def _model_available() -> tuple[bool, str]:
    try:
        from ..models import list_models

        names = list_models()
    except Exception as exc:  # noqa: BLE001
        return False, f"models unavailable ({exc})"
    if any(n.startswith("airpi") for n in names):
        return True, ""
    return False, "no trained 4D-STEM CNN model is shipped in this installation yet"


def _finetune_available() -> tuple[bool, str]:
    ok, why = _model_available()
    if not ok:
        return False, why
    try:
        from ..stem.airpi import finetune_job  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return False, f"fine-tuning is not available ({exc})"
    return True, ""


_MISSING = "? (enter)"  # shown at the minimum (0): not known, read as None

#: The calibration fields (shown units are the Calibration's own: kV, mrad, Å, mm; the y step and the
#: centre are combined into ``scan_step_a`` / ``center_px`` by :func:`calibration_keywords`).
CALIBRATION_FIELDS: tuple[Field, ...] = (
    Field("energy_kev", "energy_kev", "energy (kV)", 0.0, 0.0, 3000.0, 1, 10.0, "Beam energy (kV)",
          special=_MISSING, from_metadata=True),
    Field("semiangle_mrad", "semiangle_mrad", "semi-angle α (mrad)", 0.0, 0.0, 200.0, 2, 0.5,
          "Probe convergence semi-angle α (mrad)", special=_MISSING, from_metadata=True),
    Field("scan_step_a", "scan_step_a", "scan step (Å)", 0.0, 0.0, 1e5, 4, 0.01,
          "Scan step (Å per scan position; along x if the y step differs)", special=_MISSING, from_metadata=True),
    Field("scan_step_y_a", "scan_step_y_a", "y step, if not square (Å)", 0.0, 0.0, 1e5, 4, 0.01,
          "Scan step along y (Å) when it differs from x (non-square scan pixels); '= x' for a square scan",
          special="= x", from_metadata=True),
    Field("detector_mrad", "detector_mrad_per_px", "detector (mrad/px)", 0.0, 0.0, 100.0, 4, 0.05,
          "Detector sampling (mrad per pixel); 'Detect BF disc' measures it from the disc and the semi-angle",
          special=_MISSING, from_metadata=True),
    Field("center_y", "center_y_px", "centre y (px)", -1.0, -1.0, 4096.0, 2, 0.5,
          "Optical axis on the detector, row (px); −1 = detector centre", special="centre", from_metadata=True),
    Field("center_x", "center_x_px", "centre x (px)", -1.0, -1.0, 4096.0, 2, 0.5,
          "Optical axis on the detector, column (px); −1 = detector centre", special="centre", from_metadata=True),
    Field("rotation_deg", "rotation_deg", "scan rotation (°)", 0.0, -360.0, 360.0, 1, 1.0,
          "Scan rotation between detector and scan axes (deg); 'Guess' minimises the curl of the centre-of-mass field"),
    Field("defocus_a", "defocus_a", "defocus (Å)", 0.0, -1e5, 1e5, 1, 10.0, "Probe defocus (Å), negative = under-focus",
          from_metadata=True),
    Field("cs_mm", "cs_mm", "Cs (mm)", 0.0, -100.0, 100.0, 3, 0.1, "Spherical aberration Cs (mm)", from_metadata=True),
)
_CAL = {f.attr: f for f in CALIBRATION_FIELDS}
#: (table key, the name the info line gives it) of the prefilled values it reports, in its order.
_NOTED = (("energy_kev", "energy"), ("semiangle_mrad", "semi-angle"), ("scan_step_a", "scan step"),
          ("detector_mrad_per_px", "detector sampling"), ("scan_step_y_a", "y step"))
_REQUIRED = ("energy_kev", "semiangle_mrad", "scan_step_a", "detector_mrad_per_px")


def calibration_keywords(values: dict[str, Any]) -> dict[str, Any]:
    """:class:`~napari_phase.stem.calibration.Calibration` keywords from the read table (``read_fields``
    of :data:`CALIBRATION_FIELDS`; "not given" already None): the y step joins the x step as (y, x)
    when it differs, the centre is (cy, cx) when both are ≥ 0 (else None, the detector centre)."""
    kw = dict(values)
    step_x, step_y = kw.pop("scan_step_a"), kw.pop("scan_step_y_a")
    kw["scan_step_a"] = (step_y, step_x) if (step_x is not None and step_y is not None and step_y != step_x) else step_x
    cy, cx = kw.pop("center_y_px"), kw.pop("center_x_px")
    kw["center_px"] = (cy, cx) if cy is not None and cx is not None and cy >= 0 and cx >= 0 else None
    return kw


class StemPanel(QWidget):
    """The 4D-STEM dock panel (see module docstring)."""

    def __init__(self, napari_viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from napari.layers import Image

        self.viewer = napari_viewer
        self._cache: dict[str, Any] = {}
        self._live_layer = None
        self._geometry: dict[str, Any] = {}
        self._click_cb = None

        self.help_label = QLabel(HELP)
        self.help_label.setWordWrap(True)
        self.help_label.setTextFormat(Qt.RichText)
        self.data_combo = LayerCombo(napari_viewer, (Image,), accept=_is_candidate, placeholder="(no 4D-STEM layer – open one)")
        self.data_info = QLabel("")
        self.data_info.setWordWrap(True)
        self.depth = QSpinBox()
        self.depth.setToolTip("Which depth (thickness) of a depth series to reconstruct")

        # ---------------------------------------------------------------- calibration
        for f in CALIBRATION_FIELDS[5:8]:  # the centre and rotation boxes share rows (built below)
            setattr(self, f.attr, field_box(f))
        self.transpose = QCheckBox("detector axes transposed")
        self.transpose.setToolTip("The detector's x/y are swapped against the scan's (a flip)")
        self.guess_button = QPushButton("Guess")
        self.guess_button.setToolTip("Guess rotation and transpose from the data (curl of the CoM field)")
        self.guess_button.clicked.connect(lambda *_: self.guess_rotation(wait=False))
        rot_row = QWidget()
        rl = QHBoxLayout(rot_row)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.rotation_deg, 1)
        rl.addWidget(self.guess_button)
        ctr = QWidget()
        cl = QHBoxLayout(ctr)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.center_y)
        cl.addWidget(self.center_x)
        self.disc_button = QPushButton("Detect BF disc")
        self.disc_button.setToolTip("Find the bright-field disc in the mean pattern: sets the centre and, with the "
                                    "semi-angle, the detector sampling (or the semi-angle from the sampling)")
        self.disc_button.clicked.connect(lambda *_: self.detect_disc(wait=False))
        self.disc_info = QLabel("")
        self.disc_info.setWordWrap(True)
        cal_box = QGroupBox("Calibration")
        cf = QFormLayout(cal_box)
        add_fields(self, cf, CALIBRATION_FIELDS[:5])
        cf.addRow("centre y, x (px)", ctr)
        cf.addRow("scan rotation (°)", rot_row)
        cf.addRow("", self.transpose)
        add_fields(self, cf, CALIBRATION_FIELDS[8:])
        cf.addRow(self.disc_button)
        cf.addRow(self.disc_info)

        # ---------------------------------------------------------------- view
        self.detector_kind = QComboBox()
        self.detector_kind.addItems(list(DETECTORS))
        self.virtual_button = QPushButton("Show virtual image")
        self.virtual_button.setToolTip("Virtual-detector image of the scan (orient yourself; click it to see a pattern)")
        self.virtual_button.clicked.connect(lambda *_: self.show_virtual_image(wait=False))
        self.nav_info = QLabel("")
        self.nav_info.setWordWrap(True)
        view_box = QGroupBox("View")
        vf = QFormLayout(view_box)
        vrow = QWidget()
        vl = QHBoxLayout(vrow)
        vl.setContentsMargins(0, 0, 0, 0)
        vl.addWidget(self.detector_kind, 1)
        vl.addWidget(self.virtual_button)
        vf.addRow("detector", vrow)
        vf.addRow(self.nav_info)

        # ---------------------------------------------------------------- method
        self.method = QComboBox()
        self.method.addItems([CNN, ICOM, SSB])
        ok, why = _model_available()
        if not ok:
            self.method.setItemData(0, why, Qt.ToolTipRole)
            self.method.setCurrentText(ICOM)
        self.oversample = QSpinBox()
        self.oversample.setRange(1, 8)
        self.oversample.setValue(2)
        self.oversample.setToolTip("Object pixels per scan step (the CNN's super-resolution)")
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 4096)
        self.batch_size.setValue(256)
        self.batch_size.setToolTip("Kernels per network batch (lower it if the GPU runs out of memory)")
        self.device = QComboBox()
        self.device.addItems(_device_choices())
        self.precision = QComboBox()
        for text, value in PRECISION_CHOICES:
            self.precision.addItem(text, value)
        self.precision.setToolTip("The network's arithmetic: bfloat16 convolutions are ~5x faster on a CPU with "
                                  "AMX tiles (phase within ~0.002 rad of float32); float32 everywhere else")
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.addItem("default")
        self.model.setToolTip("'default' (the shipped model) or the path of a fine-tuned .pt")
        self.low_frequency = QComboBox()
        for text, value in LOW_FREQUENCY_CHOICES:
            self.low_frequency.addItem(text, value)
        self._set_low_frequency_default()
        self.low_frequency.setToolTip(
            "Where the CNN phase's low spatial frequencies come from: the measured centre of mass (iCoM, the "
            "probe blur divided out) or SSB, weighted by the CoM field's signal-to-noise ratio, or the network "
            "alone. A second, quick pass over the data after the network.")
        self.descan = QComboBox()
        for text, value in DESCAN_CHOICES:
            self.descan.addItem(text, value)
        self.descan.setToolTip(
            "Centre offset and descan: the bright-field disc centre of every pattern, fitted over the scan "
            "(a plane, or a constant) and removed before the method runs; 'off' keeps the raw patterns. "
            "The fitted offset and change across the scan are shown after the run.")
        self.auto_rotation = QCheckBox("guess rotation when running")
        self.auto_rotation.setToolTip("iCoM: guess scan rotation and transpose from the data (curl minimisation)")
        self.uncertainty = QCheckBox("per-pixel σ")
        self.uncertainty.setToolTip("Also compute a phase σ layer (hidden when added). iCoM, SSB: Poisson counts propagated, "
                                    "the noise part of the error only; CNN: its spread under a grid symmetry and Poisson "
                                    "re-sampling, scaled (one more CNN run). Not calibrated against the truth: see the "
                                    "notification")
        self.finetune_button = QPushButton("Fine-tune to this instrument")
        ok_ft, why_ft = _finetune_available()
        self.finetune_button.setEnabled(ok_ft)
        self.finetune_button.setToolTip("A short training run of the shipped CNN specialised to this energy, "
                                        "semi-angle and detector sampling" if ok_ft else why_ft)
        self.finetune_button.clicked.connect(lambda *_: self.finetune())
        self.method_box = QGroupBox("Reconstruction")
        self._mf = mf = QFormLayout(self.method_box)
        mf.addRow("method", self.method)
        mf.addRow("oversampling", self.oversample)
        mf.addRow("batch size", self.batch_size)
        mf.addRow("device", self.device)
        mf.addRow("precision", self.precision)
        mf.addRow("model", self.model)
        mf.addRow("low frequencies from", self.low_frequency)
        mf.addRow("descan", self.descan)
        mf.addRow("", self.auto_rotation)
        mf.addRow("", self.uncertainty)
        mf.addRow(self.finetune_button)

        self.runner = JobRunner(name="4D-STEM", run_text="Run", on_run=self.run)
        self.result_info = QLabel("")
        self.result_info.setWordWrap(True)

        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.addWidget(self.help_label)
        top = QFormLayout()
        top.addRow("4D-STEM layer", self.data_combo)
        top.addRow("depth", self.depth)
        lay.addLayout(top)
        lay.addWidget(self.data_info)
        lay.addWidget(cal_box)
        lay.addWidget(view_box)
        lay.addWidget(self.method_box)
        lay.addWidget(self.runner)
        lay.addWidget(self.result_info)
        lay.addStretch(1)
        self._top_form = top
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.setMinimumWidth(330)

        self.data_combo.layer_changed.connect(self._on_layer_changed)
        self.method.currentTextChanged.connect(self._update_visibility)
        self.runner.finished.connect(lambda *_: self._remove_live_layer())
        self._update_visibility()
        self._on_layer_changed(self.data_combo.current_layer())

    # ------------------------------------------------------------------ public API (also for tests)
    def set_data_layer(self, layer) -> bool:
        """Choose the input layer; a layer the panel cannot use gives a warning notification."""
        problem = _data_problem(layer)
        if problem is not None:
            self._set_info(problem, bad=True)
            _runner.warn(problem)
            return False
        return self.data_combo.set_layer(layer)

    def calibration(self):
        """The panel's calibration (missing values as None)."""
        from ..stem.calibration import Calibration

        return Calibration(transpose=self.transpose.isChecked(),
                           **calibration_keywords(read_fields(self, CALIBRATION_FIELDS)))

    def data(self):
        """The chosen 4-D data (one depth of a depth series); a reference, not a copy."""
        layer = self.data_combo.current_layer()
        problem = _data_problem(layer)
        if problem is not None:
            raise InputError(problem)
        data = layer.data
        if layer.ndim == 5:
            data = data[int(self.depth.value())]
        return data

    def detect_disc(self, wait: bool = True):
        """Mean pattern -> BF disc (centre, radius) -> centre fields, detector sampling or semi-angle;
        draws the mean pattern with the disc as a Shapes overlay. The mean pattern is computed off
        the main thread (the panel's JobRunner: progress, Cancel), once per layer/depth. ``wait``:
        block (processing events) until done and return the DiscFit (or None); the button does not wait."""
        from ..stem import disc_job

        try:
            data = self.data()
        except InputError as exc:
            self._set_disc_info(str(exc), bad=True)
            _runner.warn(f"Detect BF disc: {exc}")
            return None
        key = (id(self.data_combo.current_layer()), int(self.depth.value()), np.shape(data))
        if self._cache.get("disc_key") == key:  # already measured: no second pass over the data
            return self._apply_disc(self._cache["disc"])

        def make():
            from ..stem._data import check_4d

            check_4d(data, name=f"layer '{self.data_combo.current_layer().name}'")
            return disc_job(data)

        def done(result: PhaseResult):
            self._cache["disc"], self._cache["disc_key"] = result, key
            self._apply_disc(result)

        self._cache.pop("fit", None)
        if not self.runner.start(make, on_result=done, name="Detect BF disc"):
            if self.runner.last_error is not None:
                self._set_disc_info(str(self.runner.last_error), bad=True)
            return None
        self._set_disc_info("measuring the mean pattern… (Cancel stops it)")
        if not wait:
            return None
        self.runner.wait(600_000)
        return self._cache.get("fit") if self.runner.last_outcome == "done" else None

    def _apply_disc(self, result: PhaseResult):
        """Fill the calibration from a disc_job result and draw it (main thread)."""
        from ..stem.disc import fit_of

        fit = fit_of(result)
        mean = result.arrays["mean_pattern"]
        self._cache["fit"] = fit
        self.center_y.setValue(fit.center_y_px)
        self.center_x.setValue(fit.center_x_px)
        cal = self.calibration()
        if cal.semiangle_mrad is not None:
            det = fit.detector_mrad_per_px(cal.semiangle_mrad)
            old = cal.detector_mrad_per_px
            self.detector_mrad.setValue(det)
            note = f"detector {det:.4g} mrad/px from α = {cal.semiangle_mrad:g} mrad"
            if old is not None and abs(old - det) > 0.02 * det:
                note += f" (the file said {old:.4g})"
        elif cal.detector_mrad_per_px is not None:
            self.semiangle_mrad.setValue(fit.semiangle_mrad(cal.detector_mrad_per_px))
            note = f"semi-angle {fit.semiangle_mrad(cal.detector_mrad_per_px):.3g} mrad from the detector sampling"
        else:
            note = "enter the semi-angle (or the detector sampling) to calibrate the other"
        self._set_disc_info(f"disc centre ({fit.center_y_px:.2f}, {fit.center_x_px:.2f}) px, radius {fit.radius_px:.2f} px; {note}")
        self._draw_patterns(mean, fit)
        return fit

    def show_virtual_image(self, wait: bool = True):
        """Virtual BF/ABF/ADF image of the scan at the origin (Å); hides the 4-D layer. Computed off
        the main thread (JobRunner: progress, Cancel). ``wait``: block until done and return the
        layer (or None); the button does not wait."""
        from ..stem import virtual_image_job

        try:
            data = self.data()
            cal = self.calibration()
            shape = np.shape(data)
            kind = DETECTORS[self.detector_kind.currentText()]
            if cal.semiangle_mrad is None or cal.detector_mrad_per_px is None:
                raise InputError("the virtual detector needs the semi-angle and the detector sampling "
                                 "(enter them, or use 'Detect BF disc')")
        except InputError as exc:
            _runner.warn(f"Virtual image: {exc}")
            return None
        step_y, step = cal.step_yx_a if cal.scan_step_a is not None else (1.0, 1.0)
        box: dict[str, Any] = {}

        def make():
            return virtual_image_job(data, kind, semiangle_mrad=cal.semiangle_mrad,
                                     detector_mrad_per_px=cal.detector_mrad_per_px, center=cal.center_for(shape[2:]),
                                     scan_step_a=cal.scan_step_a)

        def done(result: PhaseResult):
            box["layer"] = self._show_virtual(result.arrays["virtual"], kind, (step_y, step), cal.scan_step_a, shape)

        if not self.runner.start(make, on_result=done, name="Virtual image"):
            return None
        if not wait:
            return None
        self.runner.wait(600_000)
        return box.get("layer")

    def _show_virtual(self, img: np.ndarray, kind: str, steps: tuple[float, float], scan_step_a, shape):
        step_y, step = steps
        kwargs = {"name": VIRTUAL_NAME, "colormap": "gray", "scale": [step_y, step], "units": [WORLD_UNIT, WORLD_UNIT],
                  "metadata": {"kind": "virtual_detector", "detector": kind, "scan_step_a": scan_step_a}}
        self._geometry = {"scan_shape": shape[:2], "step": step, "step_y": step_y, "det_shape": shape[2:]}
        self._place_source()
        layers = add_or_update(self.viewer, [(img, kwargs, "image")])
        src = self.data_combo.current_layer()
        if src is not None and src.visible:
            src.visible = False
        self._install_click()
        self.fit_view()
        self.nav_info.setText("click the virtual image to see that position's pattern (right of it)")
        return layers[0]

    def fit_view(self) -> None:
        """Frame the scan-space images and the patterns beside them (the hidden 4-D layer's detector
        extent would otherwise set the zoom)."""
        if not self._geometry:
            return
        sy, sx = self._geometry["scan_shape"]
        step = self._geometry["step"]
        step_y = self._geometry.get("step_y", step)
        h, w = sy * step_y, 2.1 * sx * step
        cam = self.viewer.camera
        center = list(cam.center)
        center[-2:] = [h / 2 - step_y / 2, w / 2 - step / 2]
        cam.center = tuple(center)
        size = _canvas_hw(self.viewer)
        cam.zoom = 0.9 * min(size[-2] / h, size[-1] / w)

    def show_pattern(self, iy: int, ix: int):
        """Show the diffraction pattern of scan position (iy, ix) beside the virtual image."""
        data = self.data()
        sy, sx = np.shape(data)[:2]
        if not (0 <= iy < sy and 0 <= ix < sx):
            return None
        pat = np.asarray(data[iy, ix], dtype=np.float32)
        if not self._geometry:
            self._geometry = {"scan_shape": (sy, sx), "step": 1.0, "det_shape": pat.shape}
        geom = self._pattern_geometry()
        self._place_source()
        kwargs = {"name": PATTERN_NAME, "colormap": "magma", **geom,
                  "metadata": {"kind": "diffraction_pattern", "scan_index": [int(iy), int(ix)]}}
        layer = add_or_update(self.viewer, [(np.log1p(np.maximum(pat, 0)), kwargs, "image")])[0]
        layer.visible = True
        step = self._geometry["step"]
        step_y = self._geometry.get("step_y", step)
        marker = {"name": MARKER_NAME, "size": max(max(step, step_y) * 1.5, 1e-3), "face_color": "transparent",
                  "border_color": "cyan", "metadata": {"kind": "navigator"}, "units": [WORLD_UNIT, WORLD_UNIT]}
        add_or_update(self.viewer, [(np.array([[iy * step_y, ix * step]], float), marker, "points")])
        self._raise_disc()
        self.nav_info.setText(f"pattern of scan position ({iy}, {ix}) shown right of the virtual image (log scale)")
        return layer

    def guess_rotation(self, wait: bool = True):
        """Curl-minimising guess of scan rotation and transpose (fills the fields). The CoM maps are
        computed off the main thread (JobRunner: progress, Cancel); ``wait``: block until done and
        return the guess (or None); the Guess button does not wait."""
        from ..stem import rotation_guess_job

        try:
            data = self.data()
            cal = self.calibration()
            center = cal.center_for(np.shape(data)[2:])
            steps = cal.step_yx_a if cal.scan_step_a else 1.0
        except InputError as exc:
            _runner.warn(f"Rotation guess: {exc}")
            return None
        box: dict[str, Any] = {}

        def done(result: PhaseResult):
            guess = result.metadata["rotation_guess"]
            box["guess"] = guess
            self.rotation_deg.setValue(guess["rotation_deg"])
            self.transpose.setChecked(guess["transpose"])
            self._set_disc_info(f"rotation guess {guess['rotation_deg']:.1f}°, transpose {guess['transpose']} "
                                f"(remaining curl {100 * guess['curl_fraction']:.0f} % vs "
                                f"{100 * guess['curl_fraction_other']:.0f} % for the other flip)")

        if not self.runner.start(lambda: rotation_guess_job(data, center=center, scan_step_a=steps), on_result=done,
                                 name="Rotation guess"):
            return None
        if not wait:
            return None
        self.runner.wait(600_000)
        return box.get("guess")

    def run(self) -> bool:
        """Run the chosen method (the Run button)."""
        method = self.method.currentText()
        ctx: dict[str, Any] = {"base": BASE_NAMES[method]}
        return self.runner.start(lambda: self._make_job(method, ctx), on_result=partial(self._show_result, ctx),
                                 on_partial=partial(self._show_partial, ctx), name=BASE_NAMES[method])

    def finetune(self) -> bool:
        """Fine-tune the shipped CNN to this energy / semi-angle / detector sampling (a short run)."""
        def make():
            from ..stem.airpi import finetune_job

            cal = self.calibration()
            cal.require("energy_kev", "semiangle_mrad", "detector_mrad_per_px")
            cal.validate()
            out = Path.home() / ".napari-phase" / "models" / (
                f"airpi_ft_{cal.energy_kev:g}kV_{cal.semiangle_mrad:g}mrad_{cal.detector_mrad_per_px:.3g}mradpx.pt")
            out.parent.mkdir(parents=True, exist_ok=True)
            job = finetune_job(energy_kev=cal.energy_kev, semiangle_mrad=cal.semiangle_mrad,
                               detector_mrad_per_px=cal.detector_mrad_per_px, scan_step_a=cal.scan_step_a,
                               out=str(out), device=self.device.currentText())
            return _as_result_job(job, out)

        def done(result: PhaseResult):
            path = result.metadata.get("model_path")
            if path:
                if self.model.findText(path) < 0:
                    self.model.addItem(path)
                self.model.setCurrentText(path)
                self.method.setCurrentText(CNN)
                self.result_info.setText(f"fine-tuned model saved: {path} (chosen as the CNN model)")

        return self.runner.start(make, on_result=done, name="Fine-tune")

    # ------------------------------------------------------------------ jobs
    def _make_job(self, method: str, ctx: dict):
        from .. import stem

        data = self.data()
        from ..stem._data import check_4d

        shape = check_4d(data, name=f"layer '{self.data_combo.current_layer().name}'")
        cal = self.calibration()
        common = dict(energy_kev=cal.energy_kev, scan_step_a=cal.scan_step_a, detector_mrad_per_px=cal.detector_mrad_per_px,
                      transpose=cal.transpose, center=cal.center_px, descan=self.descan.currentData())
        if method == ICOM:
            cal.validate(needs=("energy_kev", "scan_step_a", "detector_mrad_per_px"))
            rot = None if self.auto_rotation.isChecked() else cal.rotation_deg
            return stem.icom_job(data, rotation_deg=rot, uncertainty=self.uncertainty.isChecked(), **common)
        cal.validate(shape[2:], needs=("energy_kev", "semiangle_mrad", "scan_step_a", "detector_mrad_per_px"))
        if method == SSB:
            return stem.ssb_job(data, semiangle_mrad=cal.semiangle_mrad, rotation_deg=cal.rotation_deg,
                                defocus_a=cal.defocus_a, cs_mm=cal.cs_mm, uncertainty=self.uncertainty.isChecked(), **common)
        ok, why = _model_available()
        model = self.model.currentText().strip() or "default"
        if not ok and model == "default":
            raise InputError(f"{why}; choose iCoM or SSB, or give a model file")
        return stem.cnn_job(data, semiangle_mrad=cal.semiangle_mrad, rotation_deg=cal.rotation_deg, defocus_a=cal.defocus_a,
                            cs_mm=cal.cs_mm, oversample=int(self.oversample.value()), batch_size=int(self.batch_size.value()),
                            device=self.device.currentText(), model=model, precision=self.precision.currentData(),
                            low_frequency=self.low_frequency.currentData(), uncertainty=self.uncertainty.isChecked(),
                            **common)

    def _set_low_frequency_default(self) -> None:
        from ..stem.airpi.reconstruct import LOW_FREQUENCY_DEFAULT

        for i, (_, value) in enumerate(LOW_FREQUENCY_CHOICES):
            if value == LOW_FREQUENCY_DEFAULT:
                self.low_frequency.setCurrentIndex(i)

    # ------------------------------------------------------------------ results (main thread)
    def _show_result(self, ctx: dict, result: PhaseResult) -> None:
        suffix = " (cancelled)" if result.cancelled else ""
        if result.metadata.get("warning"):  # e.g. SSB: the scan step undersamples its band
            _runner.warn(str(result.metadata["warning"]))
        self._remove_live_layer()
        self._ensure_geometry()
        self._place_source()
        layers = add_or_update(self.viewer, result_to_layers(result, ctx["base"], suffix=suffix))
        self._raise_disc()
        phase = [lay for lay in layers if (lay.metadata or {}).get("array_name") == "phase"]
        if phase:
            self.viewer.layers.selection.active = phase[0]
            self.frame_layer(phase[0])
        md = result.metadata
        text = (f"{ctx['base']}{suffix}: phase (rad) on {result.phase.shape[0]}×{result.phase.shape[1]} px of "
                f"{result.pixel_size_a:.4g} Å, origin at the first scan position")
        if md.get("low_frequency"):
            text += (f"; low frequencies from {md['low_frequency']} below ~{md['low_frequency_cutoff_inv_a']:.2f} 1/Å")
        elif md.get("low_frequency_skipped"):
            text += f"; {md['low_frequency_skipped']}"
        if md.get("descan"):
            text += f"; {md['descan']['summary']}"
        elif md.get("descan_skipped"):
            text += f"; {md['descan_skipped']}"
        if "rotation_guess" in md:
            text += f"; rotation guess {md['rotation_guess']['rotation_deg']:.1f}°, transpose {md['rotation_guess']['transpose']}"
        hidden = [k for k in result.arrays if k != "phase"]
        if hidden:
            text += ". Also in the layer list: " + ", ".join(hidden)
        self.result_info.setText(text + ".")

    def _show_partial(self, ctx: dict, result: PhaseResult) -> None:
        if result.phase is None:
            return
        preview = PhaseResult({"phase": result.phase}, result.pixel_size, result.pixel_unit,
                              metadata={**result.metadata, "partial": True})
        first = self._live_layer is None
        self._ensure_geometry()
        self._place_source()
        layers = add_or_update(self.viewer, result_to_layers(preview, ctx["base"], suffix=" (live)"))
        self._live_layer = layers[0] if layers else None
        if first and self._live_layer is not None:
            self.frame_layer(self._live_layer)

    def _remove_live_layer(self) -> None:
        layer, self._live_layer = self._live_layer, None
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)

    # ------------------------------------------------------------------ helpers
    def _ensure_geometry(self) -> None:
        """Scan shape and steps for the layout (from the calibration) if nothing set them yet."""
        if self._geometry:
            return
        try:
            shape = np.shape(self.data())
            cal = self.calibration()
        except InputError:
            return
        step_y, step = cal.step_yx_a if cal.scan_step_a is not None else (1.0, 1.0)
        self._geometry = {"scan_shape": shape[-4:-2], "step": step, "step_y": step_y, "det_shape": shape[-2:]}

    def _place_source(self) -> None:
        """Put the 4-D layer's displayed (detector) axes beside the scan-space images, right of them
        and as tall as the scan, in the panel's world unit: its slice never covers a result and
        napari sees one unit on every displayed axis (no "Inconsistent units" warning). The
        layer's own scale/translate/units are kept in its metadata (``napari_phase_geometry``)."""
        layer = self.data_combo.current_layer()
        if layer is None or not self._geometry:
            return
        geom = self._pattern_geometry()
        md = layer.metadata if isinstance(layer.metadata, dict) else {}
        md.setdefault("napari_phase_geometry", {"scale": [float(v) for v in layer.scale],
                                                "translate": [float(v) for v in layer.translate],
                                                "units": [str(u) for u in layer.units]})
        scale = [float(v) for v in layer.scale]
        translate = [float(v) for v in layer.translate]
        units = [str(u) for u in layer.units]
        scale[-2:], translate[-2:], units[-2:] = geom["scale"], geom["translate"], geom["units"]
        if list(layer.scale) != scale or list(layer.translate) != translate or [str(u) for u in layer.units] != units:
            layer.units = units
            layer.scale = scale
            layer.translate = translate

    def frame_layer(self, layer) -> None:
        """Centre the camera on ``layer`` (its displayed y, x extent) and zoom it to fill the canvas."""
        ext = np.asarray(layer.extent.world, dtype=float)[:, -2:]
        (y0, x0), (y1, x1) = ext
        h, w = max(y1 - y0, 1e-9), max(x1 - x0, 1e-9)
        cam = self.viewer.camera
        center = list(cam.center)
        center[-2:] = [(y0 + y1) / 2, (x0 + x1) / 2]
        cam.center = tuple(center)
        size = _canvas_hw(self.viewer)
        cam.zoom = 0.9 * min(size[-2] / h, size[-1] / w)

    def _pattern_geometry(self) -> dict:
        sy, sx = self._geometry.get("scan_shape", (1, 1))
        step = self._geometry.get("step", 1.0)
        step_y = self._geometry.get("step_y", step)
        ky, kx = self._geometry.get("det_shape", (1, 1))
        return detector_beside_scan((sy, sx), (step_y, step), (ky, kx))  # as tall as the scan, to its right

    def _draw_patterns(self, mean: np.ndarray, fit) -> None:
        data = self.data()
        if not self._geometry:
            cal = self.calibration()
            step_y, step = cal.step_yx_a if cal.scan_step_a is not None else (1.0, 1.0)
            self._geometry = {"scan_shape": np.shape(data)[:2], "step": step, "step_y": step_y, "det_shape": mean.shape}
        geom = self._pattern_geometry()
        self._place_source()
        add_or_update(self.viewer, [(np.log1p(np.maximum(mean, 0)), {"name": MEAN_NAME, "colormap": "magma", **geom,
                                                                    "metadata": {"kind": "mean_pattern"}}, "image")])
        s = geom["scale"][0]
        ty, tx = geom["translate"]
        cy, cx, r = fit.center_y_px * s + ty, fit.center_x_px * s + tx, fit.radius_px * s
        # napari ellipse from its bounding box corners (world coordinates)
        box = np.array([[cy - r, cx - r], [cy - r, cx + r], [cy + r, cx + r], [cy + r, cx - r]])
        kwargs = {"name": DISC_NAME, "shape_type": "ellipse", "edge_color": "cyan", "face_color": "transparent",
                  "edge_width": max(r * 0.04, 1e-3), "units": [WORLD_UNIT, WORLD_UNIT],
                  "metadata": {"kind": "bf_disc", "center_px": [fit.center_y_px, fit.center_x_px], "radius_px": fit.radius_px}}
        if DISC_NAME in self.viewer.layers:
            self.viewer.layers.remove(self.viewer.layers[DISC_NAME])
        self.viewer.add_shapes([box], **kwargs)
        self.fit_view()

    def _raise_disc(self) -> None:
        """Overlays (BF disc outline, scan-position marker) above the images they mark."""
        layers = self.viewer.layers
        for name in (DISC_NAME, MARKER_NAME):
            if name in layers:
                layers.move(layers.index(layers[name]), len(layers))

    def _install_click(self) -> None:
        if self._click_cb is not None:
            return
        panel_ref = self

        def on_click(viewer, event):
            dragged = False
            yield
            while event.type == "mouse_move":
                dragged = True
                yield
            if dragged or VIRTUAL_NAME not in viewer.layers or _qt_deleted(panel_ref):
                return  # (a closed panel's callback stays a no-op: no Python runs in Qt's destructor)
            layer = viewer.layers[VIRTUAL_NAME]
            pos = layer.world_to_data(event.position)
            iy, ix = int(round(pos[-2])), int(round(pos[-1]))
            try:
                panel_ref.show_pattern(iy, ix)
            except Exception as exc:  # noqa: BLE001 - a navigator click must never raise into napari
                logger.warning("navigator: %s", exc)

        self._click_cb = on_click
        self.viewer.mouse_drag_callbacks.append(on_click)

    def _on_layer_changed(self, layer) -> None:
        self._cache.clear()
        self._geometry = {}
        if layer is None:
            self._set_info("No 4D-STEM layer yet: open a scan (File > Open) or the sample "
                           "(File > Open Sample > napari-phase > 4D-STEM SrTiO3).")
            _set_row_visible(self._top_form, self.depth, False)
            return
        shape = np.shape(layer.data)
        is_series = layer.ndim == 5
        _set_row_visible(self._top_form, self.depth, is_series)
        if is_series:
            self.depth.setRange(0, shape[0] - 1)
            self.depth.setValue(shape[0] - 1)
        from ..stem.calibration import Calibration

        md = dict(layer.metadata or {})
        cal = Calibration.from_metadata(md)
        step_y = cal.step_yx_a[0] if isinstance(cal.scan_step_a, (tuple, list)) else None
        center = cal.center_px if cal.center_px is not None else (None, None)
        values = {"energy_kev": cal.energy_kev, "semiangle_mrad": cal.semiangle_mrad,
                  "scan_step_a": cal.step_yx_a[1] if cal.scan_step_a is not None else None, "scan_step_y_a": step_y,
                  "detector_mrad_per_px": cal.detector_mrad_per_px, "center_y_px": center[0], "center_x_px": center[1],
                  "defocus_a": cal.defocus_a, "cs_mm": cal.cs_mm}
        for f in CALIBRATION_FIELDS:  # what the file does not give goes back to "not given" / the default
            if f.from_metadata:
                getattr(self, f.attr).setValue(f.value)
        done = prefill_fields(self, CALIBRATION_FIELDS, values)
        notes = [label for key, label in _NOTED if key in done]
        missing = [label for key, label in _NOTED if key in _REQUIRED and key not in done]
        scan = shape[-4:-2]
        det = shape[-2:]
        text = f"scan {scan[0]}×{scan[1]}, detector {det[0]}×{det[1]} px" + (f", {shape[0]} depths" if is_series else "")
        if notes:
            text += "; from the file: " + ", ".join(notes)
        if missing:
            text += "; NOT in the file (please enter): " + ", ".join(missing)
        self._set_info(text, bad=bool(missing))
        self._set_disc_info("")

    def _update_visibility(self, *_) -> None:
        m = self.method.currentText()
        for w in (self.oversample, self.batch_size, self.device, self.precision, self.model, self.low_frequency):
            _set_row_visible(self._mf, w, m == CNN)
        _set_row_visible(self._mf, self.auto_rotation, m == ICOM)
        self.runner.run_button.setText(f"Run {BASE_NAMES[m]}")

    def _set_info(self, text: str, bad: bool = False) -> None:
        self.data_info.setText(text)
        self.data_info.setStyleSheet("color: #e07050;" if bad else "")

    def _set_disc_info(self, text: str, bad: bool = False) -> None:
        self.disc_info.setText(text)
        self.disc_info.setStyleSheet("color: #e07050;" if bad else "")


def _canvas_hw(viewer) -> tuple[float, float]:
    """The canvas (height, width) in screen px: ``viewer.canvas.size`` (napari ≥ 0.6), else the older
    private ``_canvas_size``, else a typical 600 × 800."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        size = getattr(getattr(viewer, "canvas", None), "size", None) or getattr(viewer, "_canvas_size", None)
    return tuple(float(v) for v in size) if size else (600.0, 800.0)


def _as_result_job(job, out: Path):
    """A training job (returning a report) as a job returning a PhaseResult (what JobRunner shows)."""
    report = yield from job
    meta = {"method": "finetune", "model_path": str(out)}
    for key in ("steps", "samples", "elapsed_s", "best"):
        if hasattr(report, key):
            meta[key] = getattr(report, key)
    yield Progress(1, 1, "fine-tuning done", None)
    return PhaseResult({}, 1.0, "Å", metadata=meta)



