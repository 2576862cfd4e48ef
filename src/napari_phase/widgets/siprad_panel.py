"""Dock panel "SIPRAD (LTEM)": magnetic phase and induction from one defocused Lorentz-TEM image.

Binds a napari Image layer and the microscope parameters to the LTEM jobs
(:func:`napari_phase.ltem.sitie_job`, :func:`napari_phase.ltem.siprad_job`,
:func:`napari_phase.ltem.pixelwise.pixelwise_job`), runs them through
:class:`~napari_phase.widgets._runner.JobRunner` and shows the results as layers
(:mod:`napari_phase.widgets._layers`). The contaminant mask tool is embedded as a collapsible
section. No science here.
"""

from __future__ import annotations

import inspect
import logging
from functools import partial
from typing import Any, Callable

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from ..jobs import InputError
from ..result import PhaseResult
from .. import validate
from . import _runner
from ._layers import add_or_update, result_to_layers
from ._form import device_choices as _device_choices
from ._form import set_row_visible as _set_row_visible
from ._form import scrolling_panel as _scrolling_panel
from ._form import Field, add_fields, prefill_fields, read_fields
from ._form import tidy_form as _tidy_form
from ._runner import JobRunner, LayerCombo
from .mask_tool import MASK_LAYER_NAME, MaskTool

logger = logging.getLogger(__name__)

SIPRAD = "SIPRAD (deep image prior)"
PIXELWISE = "Pixel-wise (fast)"
SITIE = "SITIE (instant)"
SOLVERS = {SIPRAD: "siprad", PIXELWISE: "pixelwise", SITIE: "sitie"}
BASE_NAMES = {"siprad": "SIPRAD", "pixelwise": "Pixel-wise", "sitie": "SITIE"}
RUN_TEXT = {"siprad": "Run SIPRAD", "pixelwise": "Run pixel-wise", "sitie": "Run SITIE"}

#: the panel's "image edges" choices → the solvers' ``boundary`` argument (ltem/boundary.py)
EDGES = {"auto": "auto", "window of a larger specimen": "extend", "periodic tile": "periodic"}

AMP_UNIFORM = "uniform"
AMP_MASK = "mask"
AMP_JOINT = "joint"

HELP = (
    "<b>1</b> pick the defocused LTEM image &nbsp; <b>2</b> check the microscope parameters &nbsp; "
    "<b>3</b> optional: mask contaminants &nbsp; <b>4</b> <i>SITIE preview</i> (instant) or <i>Run</i>"
)

#: fallbacks when a solver's signature cannot be read
DEFAULTS = {"iterations": 1000, "preview_every": 50, "smoothness": 0.0}  # smoothness 0 = "auto"


def get_job_function(key: str) -> Callable:
    """The job generator function of a solver ("siprad" | "pixelwise" | "sitie").

    Imported lazily (torch etc. load on first use). Tests monkeypatch this function.
    """
    try:
        if key == "sitie":
            from ..ltem import sitie_job as fn
        elif key == "siprad":
            from ..ltem import siprad_job as fn
        elif key == "pixelwise":
            from ..ltem.pixelwise import pixelwise_job as fn
        else:
            raise KeyError(key)
    except ImportError as exc:
        raise RuntimeError(f"the {BASE_NAMES.get(key, key)} solver is not available in this installation ({exc})") from exc
    return fn


def _signature_default(key: str, name: str) -> Any:
    try:
        param = inspect.signature(get_job_function(key)).parameters.get(name)
    except Exception:  # noqa: BLE001 - not importable yet: use our fallback
        param = None
    if param is None or param.default is inspect.Parameter.empty or param.default is None:
        return DEFAULTS.get(name)
    return param.default



def reconstruction_fields() -> tuple[Field, ...]:
    """The reconstruction fields (rows among the method/device/edges choices). A function, not a
    constant: the defaults are the solvers' own keyword defaults, looked up when a panel is built
    (the solvers import lazily). Spin boxes that track keystrokes, as Qt's own; "auto"/"off" → None."""
    return (
        Field("iterations", "iterations", "iterations", int(_signature_default("siprad", "iterations")), 1, 1_000_000,
              step=100, tooltip="Maximum optimisation steps (the solver may stop earlier when converged)",
              integer=True, keyboard_tracking=True),
        Field("seed", "seed", "seed", 0, 0, 2**31 - 1,
              tooltip="Random seed (network initialisation and input noise); stored in the result metadata",
              integer=True, keyboard_tracking=True),
        Field("preview_every", "preview_every", "live preview every", int(_signature_default("siprad", "preview_every")),
              0, 100_000, tooltip="Update the live phase layer every N iterations (0 = no live preview)",
              integer=True, suffix=" iterations", keyboard_tracking=True),
        Field("smoothness", "smoothness", "smoothness", float(_signature_default("pixelwise", "smoothness")), 0.0, 1e6,
              4, 0.1, "Weight of the pixel-wise solver's prior. 'auto' (0): chosen from the data by the "
              "discrepancy principle on the measured noise (see the result's metadata)", special="auto"),
        Field("qc", "qc_per_nm", "SITIE filter qc (1/nm)", 0.0, 0.0, 100.0, 4, 0.001,
              "Tikhonov filter cut-off qc of SITIE in 1/nm (0 = no filter); suppresses low-frequency noise", special="off"),
    )


def supported_kwargs(fn: Callable, kwargs: dict) -> dict:
    """The subset of ``kwargs`` that ``fn`` accepts (all of them if it takes ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}


def pixel_size_from_layer(layer) -> tuple[float | None, str]:
    """(pixel size in nm or None, where it came from) for a napari layer."""
    md = getattr(layer, "metadata", None) or {}
    if md.get("pixel_size_nm"):
        try:
            return float(md["pixel_size_nm"]), "layer metadata"
        except (TypeError, ValueError):
            pass
    scale = float(layer.scale[-1])
    units = getattr(layer, "units", None)
    unit = str(units[-1]) if units is not None else "pixel"
    if unit in ("pixel", "dimensionless", ""):
        if scale != 1.0:
            return scale, "layer scale (taken as nm)"
        return None, "not in the layer – please check"
    try:
        import pint

        return float(pint.Quantity(scale, unit).to("nm").magnitude), "layer scale"
    except Exception:  # noqa: BLE001
        return scale, f"layer scale ({unit}?)"


def _image_problem(layer) -> str | None:
    """Why this layer cannot be a SIPRAD input (None if it can)."""
    from napari.layers import Image

    if layer is None:
        return "pick an image layer first (File > Open, or File > Open Sample > napari-phase)"
    if not isinstance(layer, Image):
        return f"'{layer.name}' is a {layer.__class__.__name__} layer; SIPRAD needs a grayscale Image layer (the recorded LTEM image)"
    if getattr(layer, "rgb", False):
        return f"'{layer.name}' is an RGB image; give the recorded grayscale intensity image"
    if layer.ndim not in (2, 3):
        return f"'{layer.name}' is {layer.ndim}-D; SIPRAD needs a 2-D image or a (T, Y, X) time series"
    return None


def _is_input_candidate(layer) -> bool:
    """Usable Image layers (2-D or T stack, not RGB), except this plugin's outputs and ground truth
    (phase maps are not LTEM images). Others are not offered; choosing one by code gives a warning."""
    md = getattr(layer, "metadata", None) or {}
    return _image_problem(layer) is None and "napari_phase" not in md and md.get("kind") != "ground_truth"


def _prefer_ltem(layers: list):
    """An image that carries LTEM calibration (defocus) in its metadata."""
    for layer in layers:
        md = getattr(layer, "metadata", None) or {}
        if "defocus_nm" in md:
            return layer
    return None


def _prefer_not_truth(layers: list):
    """Not a ground-truth mask (sample data ship one; the user's own mask comes first)."""
    for layer in layers:
        md = getattr(layer, "metadata", None) or {}
        if md.get("kind") != "ground_truth":
            return layer
    return None


#: The microscope fields (defocus shown in mm, passed in nm); defocus, voltage and Cs prefilled from
#: the layer's metadata (the pixel size from its scale or metadata: pixel_size_from_layer).
MICROSCOPE = (
    Field("pixel_size", "pixel_size_nm", "pixel size (nm)", 1.0, 1e-4, 1e5, 4, 0.1,
          "Image sampling in nm per pixel (prefilled from the layer's scale or metadata)"),
    Field("defocus_mm", "defocus_nm", "defocus (mm)", -1.0, -1000.0, 1000.0, 4, 0.1, scale=1e6, from_metadata=True,
          tooltip="Defocus Δf in mm. Negative = under-focus (weakened lens). "
                  "PyLorentz users: its defocus sign is the opposite of this one."),
    Field("voltage_kv", "voltage_kv", "voltage (kV)", 200.0, 1.0, 3000.0, 1, 10.0, "Accelerating voltage in kV",
          from_metadata=True),
    Field("cs_mm", "cs_mm", "Cs (mm)", 1.0, 0.0, 1e4, 3, 0.1, "Spherical aberration Cs in mm", from_metadata=True),
    Field("divergence_mrad", "divergence_mrad", "divergence (mrad)", 0.01, 0.0, 10.0, 4, 0.001,
          "Beam divergence (illumination semi-angle) θc in mrad; small values keep the mm-defocus contrast"),
    Field("defocus_spread_nm", "defocus_spread_nm", "defocus spread (nm)", 100.0, 0.0, 1e5, 1, 10.0,
          "Defocus spread Δ in nm (temporal coherence envelope)"),
)

class SipradPanel(QWidget):
    """The SIPRAD (LTEM) dock panel (see module docstring)."""

    def __init__(self, napari_viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from napari.layers import Image, Labels

        self.viewer = napari_viewer
        self._iterations_edited = False
        self._setting_iterations = False
        self._live_layer = None
        self._auto_mask_mode_done = False

        # ---------------------------------------------------------------- input
        self.help_label = QLabel(HELP)
        self.help_label.setWordWrap(True)
        self.help_label.setTextFormat(Qt.RichText)
        self.image_combo = LayerCombo(napari_viewer, (Image,), accept=_is_input_candidate, prefer=_prefer_ltem, placeholder="(no image – open one first)")
        self.image_combo.setToolTip("The defocused Lorentz-TEM image (2-D), or a time series (T, Y, X) of them")
        self.image_info = QLabel("")
        self.image_info.setWordWrap(True)

        # ---------------------------------------------------------------- microscope
        mic_box = QGroupBox("Microscope")
        mic = QFormLayout(mic_box)
        _tidy_form(mic)
        add_fields(self, mic, MICROSCOPE)

        # ---------------------------------------------------------------- reconstruction
        self.solver = QComboBox()
        self.solver.addItems(list(SOLVERS))
        self.solver.setToolTip(
            "SIPRAD: deep image prior through the LTEM image model (best under noise, slowest).\n"
            "Pixel-wise: the same image model, no network, a smoothness prior (fast).\n"
            "SITIE: single-image transport of intensity (instant baseline)."
        )
        self.amplitude = QComboBox()
        self.amplitude.addItems([AMP_UNIFORM, AMP_MASK, AMP_JOINT])
        self.amplitude.setToolTip(
            "uniform: one amplitude everywhere (fitted).\n"
            "mask: contaminants from a Labels layer (make one below); their amplitude is fitted.\n"
            "joint: the contaminant detector marks the particles (as 'Suggest mask');\n"
            "their amplitude is fitted with the phase, particles that do not absorb are dropped."
        )
        self.mask_combo = LayerCombo(napari_viewer, (Labels,), default_name=MASK_LAYER_NAME, prefer=_prefer_not_truth, placeholder="(no Labels layer – use the mask tool)")
        self.mask_combo.setToolTip("Labels layer with the contaminants (any non-zero label); same shape as the image")
        self.device = QComboBox()
        self.device.addItems(_device_choices())
        self.device.setToolTip("auto = CUDA GPU, then Apple MPS, then CPU")
        self.edges = QComboBox()
        self.edges.addItems(list(EDGES))
        self.edges.setToolTip(
            "What lies beyond the image edge.\n"
            "auto: a periodic tile if the opposite edges match, else a window of a larger specimen.\n"
            "window: the specimen goes on beyond the edge (a real micrograph): the phase is solved on a\n"
            "larger canvas with a free border ring.\n"
            "periodic: the image is one periodic tile (e.g. a simulation made with FFTs)."
        )
        self.uncertainty = QCheckBox("per-pixel σ (uncertainty)")
        self.uncertainty.setToolTip("Also compute σ layers (phase, Bx·t, By·t; hidden when added). SITIE: the image "
                                    "noise propagated; SIPRAD, joint and pixel-wise: one re-fit of the result's model "
                                    "image with re-sampled noise (about 2× the time). The noise part of the error only, "
                                    "not calibrated against the truth (see the notification)")
        rec_box = QGroupBox("Reconstruction")
        self._rec_form = rec = QFormLayout(rec_box)
        _tidy_form(rec)
        rec.addRow("method", self.solver)
        rec.addRow("amplitude", self.amplitude)
        rec.addRow("mask layer", self.mask_combo)
        self._reconstruction = fields = reconstruction_fields()
        add_fields(self, rec, fields[:2])  # iterations, seed
        rec.addRow("device", self.device)
        add_fields(self, rec, fields[2:4])  # live preview every, smoothness
        rec.addRow("image edges", self.edges)
        add_fields(self, rec, fields[4:])  # SITIE filter qc
        rec.addRow("", self.uncertainty)

        # ---------------------------------------------------------------- mask tool
        from superqt import QCollapsible

        self.mask_tool = MaskTool(napari_viewer, self.image_combo.current_layer, get_optics=lambda: {
            k: v for k, v in self.parameters().items() if k in ("pixel_size_nm", "defocus_nm", "voltage_kv")})
        self.mask_section = QCollapsible("Contaminant mask (suggest, threshold, brush)")
        self.mask_section.addWidget(self.mask_tool)
        self.mask_section.collapse(animate=False)

        # ---------------------------------------------------------------- run
        self.runner = JobRunner(name="SIPRAD", run_text=RUN_TEXT["siprad"], on_run=self.run)
        self.sitie_button = self.runner.add_action(
            "SITIE preview", slot=self.run_sitie_preview,
            tooltip="Instant single-image TIE reconstruction with the parameters above (a baseline, and a check of sign and scale)",
        )
        self.runner.finished.connect(self._on_finished)

        # ---------------------------------------------------------------- layout
        content = QWidget()
        lay = QVBoxLayout(content)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        lay.addWidget(self.help_label)
        img_box = QGroupBox("Image")
        img_form = QFormLayout(img_box)
        _tidy_form(img_form)
        img_form.addRow("LTEM image", self.image_combo)
        img_form.addRow(self.image_info)
        lay.addWidget(img_box)
        lay.addWidget(mic_box)
        lay.addWidget(rec_box)
        lay.addWidget(self.mask_section)
        line = QFrame()
        line.setFrameShape(QFrame.HLine)
        lay.addWidget(line)
        lay.addWidget(self.runner)
        self.result_info = QLabel("")
        self.result_info.setWordWrap(True)
        self.result_info.setStyleSheet("color: #a0a0a0;")
        lay.addWidget(self.result_info)
        lay.addStretch(1)
        _scrolling_panel(self, content, min_width=330)
        self._tidy_combos()

        # ---------------------------------------------------------------- wiring
        self.image_combo.layer_changed.connect(self._on_image_changed)
        self.solver.currentTextChanged.connect(self._update_visibility)
        self.amplitude.currentTextChanged.connect(self._update_visibility)
        self.mask_tool.mask_changed.connect(self._on_mask_changed)
        self.iterations.valueChanged.connect(self._on_iterations_edited)
        for name in ("inserted", "removed"):
            getattr(napari_viewer.layers.events, name).connect(self._refresh_empty_info)
        self._update_visibility()
        self._on_image_changed(self.image_combo.current_layer())

    # ------------------------------------------------------------------ public API
    @property
    def solver_key(self) -> str:
        return SOLVERS[self.solver.currentText()]

    def set_image_layer(self, layer) -> bool:
        """Choose the input layer programmatically; a layer SIPRAD cannot use gives a warning."""
        problem = _image_problem(layer)
        if problem is not None:
            self._set_image_info(problem, bad=True)
            _runner.warn(problem)
            return False
        if not self.image_combo.set_layer(layer):
            _runner.warn(f"'{layer.name}' cannot be used as SIPRAD input")
            return False
        return True

    def parameters(self) -> dict:
        """The microscope and solver parameters as the jobs take them (defocus in nm)."""
        rec = read_fields(self, self._reconstruction)  # smoothness "auto" and qc "off" read as None
        return {
            **read_fields(self, MICROSCOPE),
            "iterations": rec["iterations"],
            "seed": rec["seed"],
            "device": self.device.currentText(),
            "preview_every": rec["preview_every"],
            "smoothness": rec["smoothness"],
            "qc_per_nm": rec["qc_per_nm"],
            "boundary": EDGES[self.edges.currentText()],
            "uncertainty": self.uncertainty.isChecked(),
        }

    def run(self) -> bool:
        """Run the chosen solver (the Run button)."""
        return self._start(self.solver_key)

    def run_sitie_preview(self) -> bool:
        """Run SITIE whatever the chosen solver (the SITIE preview button)."""
        return self._start("sitie")

    # ------------------------------------------------------------------ jobs
    def _start(self, key: str) -> bool:
        ctx: dict[str, Any] = {"key": key}

        def make_job():
            return self._make_job(key, ctx)

        return self.runner.start(
            make_job,
            on_result=partial(self._show_result, ctx),
            on_partial=partial(self._show_partial, ctx),
            name=BASE_NAMES[key],
        )

    def _capture_image(self):
        """(layer, a float32 COPY of its data) — validated; raises InputError with a plain message."""
        layer = self.image_combo.current_layer()
        problem = _image_problem(layer)
        if problem is not None:
            raise InputError(problem)
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        image = np.array(data, dtype=np.float32, copy=True)
        image = validate.as_image(image, name=f"image '{layer.name}'", ndim=(2, 3))
        return layer, image

    def _capture_mask(self, image: np.ndarray) -> np.ndarray:
        layer = self.mask_combo.current_layer()
        if layer is None:
            raise InputError("amplitude mode 'mask' needs a Labels layer of the contaminants: make one with the "
                             "'Contaminant mask' tool below, or choose amplitude 'uniform'")
        mask = np.array(layer.data[0] if getattr(layer, "multiscale", False) else layer.data, copy=True)
        if mask.shape != image.shape[-2:]:
            raise InputError(f"the mask '{layer.name}' is {'×'.join(map(str, mask.shape))} px but the image is "
                             f"{'×'.join(map(str, image.shape[-2:]))} px; the mask must be one 2-D frame of the image's shape")
        from ..ltem.mask import check_mask

        mask = check_mask(mask, image.shape)
        if not mask.any():
            raise InputError(f"the mask '{layer.name}' is empty (no contaminant pixels); move the threshold slider "
                             "or paint it, or choose amplitude 'uniform'")
        if mask.all():
            raise InputError(f"the mask '{layer.name}' covers the whole image; there is no film left to reconstruct")
        return mask

    def _make_job(self, key: str, ctx: dict):
        layer, image = self._capture_image()
        params = self.parameters()
        validate.positive(params["pixel_size_nm"], "pixel size", "nm")
        validate.nonzero(params["defocus_nm"], "defocus", "nm")
        validate.energy_kv(params["voltage_kv"], "voltage")
        if key != "sitie":
            mode = self.amplitude.currentText()
            params["amplitude"] = self._capture_mask(image) if mode == AMP_MASK else ("joint" if mode == AMP_JOINT else "uniform")
        fn = get_job_function(key)
        kwargs = supported_kwargs(fn, params)
        if params["uncertainty"] and "uncertainty" not in kwargs:
            _runner.info(f"{BASE_NAMES[key]} has no per-pixel σ: it runs without one")
        amp = params.get("amplitude", "uniform")
        if "amplitude" not in kwargs and not (isinstance(amp, str) and amp == "uniform"):
            raise InputError(f"the {BASE_NAMES[key]} solver has no amplitude option; choose amplitude 'uniform' or use SIPRAD")
        self._calibrate_source(layer, params["pixel_size_nm"])  # only once the inputs are accepted
        ctx["layer"] = layer
        ctx["base"] = BASE_NAMES[key]
        logger.info("starting %s on %s %s with %s", key, layer.name, image.shape, {k: v for k, v in kwargs.items() if k != "amplitude"})
        return fn(image, **kwargs)

    def _calibrate_source(self, layer, pixel_size_nm: float) -> None:
        """An uncalibrated input layer (units 'pixel') gets the panel's pixel size in nm, so the
        results (always in nm) overlay it; Labels layers made on it by the mask tool follow."""
        from napari.layers import Labels

        units = [str(u) for u in layer.units]
        if units[-1] not in ("pixel", "dimensionless"):
            scale_nm, _ = pixel_size_from_layer(layer)
            if scale_nm and abs(scale_nm - pixel_size_nm) > 0.01 * pixel_size_nm:
                _runner.info(f"'{layer.name}' is calibrated at {scale_nm:.4g} nm/px but the panel says {pixel_size_nm:.4g} nm/px; "
                             "the results use the panel's value and will not overlay the image exactly")
            return
        old = float(layer.scale[-1])
        targets = [layer] + [lay for lay in self.viewer.layers if isinstance(lay, Labels)
                             and (lay.metadata or {}).get("source_layer") == layer.name
                             and str(lay.units[-1]) in ("pixel", "dimensionless")]
        for target in targets:
            scale = list(target.scale)
            tunits = [str(u) for u in target.units]
            scale[-2:] = [pixel_size_nm, pixel_size_nm]
            tunits[-2:] = ["nm", "nm"]
            target.scale = scale
            target.units = tunits
        if abs(old - pixel_size_nm) > 1e-9 * pixel_size_nm:
            self.viewer.reset_view()
        self._set_image_info(f"{self.image_info.text()}; layer calibrated to {pixel_size_nm:.4g} nm/px")

    # ------------------------------------------------------------------ results (main thread)
    def _show_result(self, ctx: dict, result: PhaseResult) -> None:
        suffix = " (cancelled)" if result.cancelled else ""
        self._remove_live_layer()
        data = result_to_layers(result, ctx["base"], source_layer=ctx.get("layer"), suffix=suffix)
        layers = add_or_update(self.viewer, data)
        phase = [lay for lay in layers if (lay.metadata or {}).get("array_name") == "phase"]
        if phase:  # its contrast controls are the ones a user wants first
            self.viewer.layers.selection.active = phase[0]
        self.result_info.setText(_result_summary(result, ctx["base"] + suffix))
        if result.metadata.get("fit_warning"):  # the residual layer shows where the result misses the image
            _runner.warn(f"{ctx['base']}: {result.metadata['fit_warning']}")

    def _show_partial(self, ctx: dict, result: PhaseResult) -> None:
        phase = result.phase
        if phase is None:
            return
        preview = PhaseResult({"phase": phase}, result.pixel_size, result.pixel_unit, metadata={**result.metadata, "partial": True})
        data = result_to_layers(preview, ctx["base"], source_layer=ctx.get("layer"), suffix=" (live)")
        layers = add_or_update(self.viewer, data)
        self._live_layer = layers[0] if layers else None

    def _remove_live_layer(self) -> None:
        layer, self._live_layer = self._live_layer, None
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)

    def _on_finished(self, outcome: str) -> None:
        self._remove_live_layer()

    # ------------------------------------------------------------------ input changes
    def _on_image_changed(self, layer) -> None:
        self.mask_tool.set_image_layer(layer if _image_problem(layer) is None else None)
        if layer is None:
            from napari.layers import Image

            skipped = [lay.name for lay in self.viewer.layers if isinstance(lay, Image) and _image_problem(lay) is not None]
            extra = f" ({len(skipped)} image layer(s) not usable here: RGB or not 2-D/3-D)" if skipped else ""
            self._set_image_info("No image layer yet: open one (File > Open) or a sample (File > Open Sample > napari-phase)." + extra)
            return
        problem = _image_problem(layer)
        if problem is not None:
            self._set_image_info(problem, bad=True)
            _runner.warn(problem)
            return
        notes = []
        shape = layer.data[0].shape if getattr(layer, "multiscale", False) else layer.data.shape
        size = f"{shape[-2]}×{shape[-1]} px" + (f", {shape[0]} frames" if len(shape) == 3 else "")
        px, source = pixel_size_from_layer(layer)
        if px is not None and px > 0:
            self.pixel_size.setValue(px)
            notes.append(f"pixel size from {source}")
        else:
            notes.append(f"pixel size {source}")
        md = layer.metadata or {}
        if "defocus_nm" in prefill_fields(self, MICROSCOPE, md):  # defocus, voltage, Cs
            notes.append("defocus from metadata")
        elif md.get("defocus_mm") is not None:
            self.defocus_mm.setValue(float(md["defocus_mm"]))
            notes.append("defocus from metadata")
        self._set_image_info(f"{size}; " + ", ".join(notes))

    def _refresh_empty_info(self, *_) -> None:
        if self.image_combo.current_layer() is None:
            self._on_image_changed(None)

    def _on_iterations_edited(self, *_) -> None:
        if not self._setting_iterations:
            self._iterations_edited = True

    def _on_mask_changed(self, layer) -> None:
        self.mask_combo.refresh()
        self.mask_combo.set_layer(layer)
        if not self._auto_mask_mode_done and self.amplitude.currentText() == AMP_UNIFORM:
            self._auto_mask_mode_done = True
            self.amplitude.setCurrentText(AMP_MASK)
            if self.solver_key == "sitie":
                self.solver.setCurrentText(SIPRAD)

    def _tidy_combos(self) -> None:
        for combo in self.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)

    def _set_image_info(self, text: str, bad: bool = False) -> None:
        self.image_info.setText(text)
        self.image_info.setStyleSheet("color: #e07050;" if bad else "")

    def _update_visibility(self, *_) -> None:
        key = self.solver_key
        iterative = key in ("siprad", "pixelwise")
        _set_row_visible(self._rec_form, self.amplitude, iterative)
        _set_row_visible(self._rec_form, self.mask_combo, iterative and self.amplitude.currentText() == AMP_MASK)
        _set_row_visible(self._rec_form, self.iterations, iterative)
        _set_row_visible(self._rec_form, self.seed, iterative)
        _set_row_visible(self._rec_form, self.device, iterative)
        _set_row_visible(self._rec_form, self.preview_every, iterative)
        _set_row_visible(self._rec_form, self.smoothness, key == "pixelwise")
        _set_row_visible(self._rec_form, self.edges, iterative)
        self.runner.run_button.setText(RUN_TEXT[key])
        if iterative and not self._iterations_edited:  # each solver's own default until the user edits it
            default = _signature_default(key, "iterations")
            if default:
                self._setting_iterations = True
                self.iterations.setValue(int(default))
                self._setting_iterations = False


def _result_summary(result: PhaseResult, label: str) -> str:
    """What a run added, in words a microscopist reads once."""
    hidden = []
    if "bx" in result and "by" in result:
        hidden += ["Bx·t, By·t, |B|·t (T·nm)", "colour map of B"]
    if "amplitude" in result:
        hidden.append("amplitude")
    if "phase_electrostatic" in result:
        hidden.append("φe (rad)")
    text = f"{label}: phase (rad) shown"
    if "bx" in result:
        text += " with B·t arrows coloured by direction (colour wheel right of the image)"
    if hidden:
        text += ". Also in the layer list (click the eye): " + ", ".join(hidden)
    return text + "."
