"""Dock panel "FlowTIE": phase and phase-gradient flow from a defocus triplet.

Input: three image layers (−dz, 0, +dz), or one stacked layer — (3, H, W) images or
(3, Sy, Sx, Ky, Kx) 4D-STEM scans (reduced by a virtual axial bright-field detector of the given
radius). Parameters: dz (nm), energy (keV), pixel size (Å), aperture semi-angle (mrad), method
(FlowTIE / FlowTIE + refine / classical TIE / gradient descent). Runs the jobs of
:mod:`napari_phase.flowtie` through :class:`~napari_phase.widgets._runner.JobRunner`; shows the
phase (rad), the flow magnitude |∇φ| (rad/Å) and the flow as arrows (a Vectors layer), all with
scale and metadata (:mod:`napari_phase.widgets._layers`). No science here.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

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
from . import _runner
from ._layers import _geometry, _metadata, _robust_limits, add_or_update, layer_name, result_to_layers
from ._form import device_choices as _device_choices
from ._form import scrolling_panel, set_row_visible as _set_row_visible
from ._form import Field, add_fields, prefill_fields, read_fields
from ._form import tidy_form as _tidy_form
from ._runner import JobRunner, LayerCombo

logger = logging.getLogger(__name__)

FLOWTIE = "FlowTIE (network)"
REFINE = "FlowTIE + refine"
TIE = "classical TIE"
GD = "gradient descent"
METHODS = {FLOWTIE: "flowtie", REFINE: "refine", TIE: "tie", GD: "gd"}
BASE_NAMES = {"flowtie": "FlowTIE", "refine": "FlowTIE+refine", "tie": "TIE", "gd": "GD"}
STACKED = "one stacked layer (3 images or 3 scans)"
THREE = "three layers (−dz, 0, +dz)"
#: arrows across the longer side of the flow Vectors layer
ARROWS_ACROSS = 24

HELP = (
    "<b>1</b> pick the triplet (−dz, 0, +dz) &nbsp; <b>2</b> check dz, energy, pixel, aperture &nbsp; "
    "<b>3</b> choose the method and <i>Run</i>. Defocus = propagation distance; negative = under-focus."
)


def _usable(layer) -> bool:
    """Image layers a triplet can come from (not RGB, not this plugin's outputs or ground truth)."""
    from napari.layers import Image

    md = getattr(layer, "metadata", None) or {}
    return (isinstance(layer, Image) and not getattr(layer, "rgb", False) and "napari_phase" not in md
            and md.get("kind") != "ground_truth")


def _layer_problem(layer, stacked: bool) -> str | None:
    from napari.layers import Image

    if layer is None:
        return "pick the input layer(s) first (File > Open, or File > Open Sample > napari-phase)"
    if not isinstance(layer, Image):
        return f"'{layer.name}' is a {layer.__class__.__name__} layer; FlowTIE needs Image layers of intensities"
    if getattr(layer, "rgb", False):
        return f"'{layer.name}' is an RGB image; give recorded grayscale intensities"
    if stacked and layer.ndim not in (3, 5):
        return f"'{layer.name}' is {layer.ndim}-D; a stacked triplet is (3, H, W) images or (3, Sy, Sx, Ky, Kx) scans"
    if not stacked and layer.ndim not in (2, 4):
        return f"'{layer.name}' is {layer.ndim}-D; each of the three layers must be a 2-D image or a 4-D scan"
    return None


def _data(layer) -> np.ndarray:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.array(data, dtype=np.float32, copy=True)


def flow_layers(result: PhaseResult, base: str, source_layer=None, suffix: str = "") -> list[tuple]:
    """The flow as layers: |∇φ| (rad/Å, an image) and subsampled arrows (a Vectors layer, length
    scaled so the strongest is ~0.9 of the arrow spacing; the true values are in the metadata)."""
    flow = np.asarray(result.flow, dtype=np.float32)
    unit = result.unit_of("flow") or "rad/Å"
    geom = _geometry(result, 2, source_layer)
    mag = np.hypot(flow[0], flow[1]).astype(np.float32)
    lo, hi = _robust_limits(mag, 0.0, 99.5)
    out = [(mag, {"name": layer_name(base, "|flow|", unit, suffix), "colormap": "magma", "contrast_limits": (0.0, hi),
                  "visible": False, "metadata": {**_metadata(result, "flow_magnitude", unit)}, **geom}, "image")]
    h, w = mag.shape
    step = max(1, int(round(max(h, w) / ARROWS_ACROSS)))
    ys, xs = np.arange(step // 2, h, step), np.arange(step // 2, w, step)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    gy, gx = flow[0][yy, xx], flow[1][yy, xx]
    top = float(np.percentile(np.hypot(gy, gx), 99)) or 1.0
    factor = 0.9 * step / top
    vec = np.stack([np.column_stack([yy.ravel(), xx.ravel()]), np.column_stack([gy.ravel() * factor, gx.ravel() * factor])],
                   axis=1).astype(np.float32)
    out.append((vec, {"name": layer_name(base, "flow arrows", "", suffix), "edge_color": "#ffd54a", "edge_width": max(1.0, 0.12 * step),
                      "length": 1.0, "vector_style": "arrow", "opacity": 0.85,
                      "metadata": {**_metadata(result, "flow", unit), "arrow_step_px": step,
                                   "arrow_scale": f"1 px of arrow = {1 / factor:.4g} {unit}"}, **geom}, "vectors"))
    return out

#: The microscope fields (shown units = parameter units; the first four prefilled from layer metadata).
MICROSCOPE = (
    Field("dz_nm", "defocus_step_nm", "dz (nm)", 1.0, 0.001, 1e6, 3, 0.1, from_metadata=True,
          tooltip="Defocus step dz in nm: the images are at −dz, 0, +dz (a defocus is a propagation by that distance)"),
    Field("energy_kev", "energy_kev", "energy (keV)", 300.0, 1.0, 3000.0, 1, 10.0, "Beam energy in keV", from_metadata=True),
    Field("pixel_a", "pixel_size_a", "pixel size (Å)", 0.1, 1e-4, 1e5, 4, 0.01,
          "Pixel size in Å (images) or scan step in Å (4D-STEM)", from_metadata=True),
    Field("semiangle", "semiangle_mrad", "aperture (mrad)", 20.0, 0.0, 500.0, 2, 1.0, special="none", from_metadata=True,
          tooltip="Objective aperture semi-angle in mrad (for 4D-STEM: the probe's convergence semi-angle). 0 = none"),
    Field("detector_mrad", "detector_mrad", "virtual BF radius (mrad)", 2.0, 0.01, 500.0, 2, 0.5,
          "4D-STEM: radius of the virtual axial bright-field detector in mrad (small: reciprocity with conventional BF)"),
    Field("detector_px", "detector_mrad_per_px", "detector (mrad/px)", 1.0, 1e-4, 1e4, 4, 0.1,
          "4D-STEM: detector sampling in mrad per pixel"),
)
RECONSTRUCTION = (
    Field("steps", "steps", "iterations", 300, 1, 100_000, tooltip="Iterations of gradient descent, or of the refinement",
          integer=True),
)


class FlowTIEPanel(QWidget):
    """The FlowTIE dock panel (see module docstring)."""

    def __init__(self, napari_viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from napari.layers import Image

        self.viewer = napari_viewer
        self.help_label = QLabel(HELP)
        self.help_label.setWordWrap(True)
        self.help_label.setTextFormat(Qt.RichText)

        # ---------------------------------------------------------------- input
        self.input_mode = QComboBox()
        self.input_mode.addItems([STACKED, THREE])
        self.input_mode.setToolTip("The triplet as one layer (3, H, W) / (3, Sy, Sx, Ky, Kx), or as three layers")
        self.stack_combo = LayerCombo(napari_viewer, (Image,), accept=lambda l: _usable(l) and l.ndim in (3, 5),
                                      placeholder="(no 3-D/5-D image layer)")
        self.under_combo = LayerCombo(napari_viewer, (Image,), accept=lambda l: _usable(l) and l.ndim in (2, 4), placeholder="(none)")
        self.focus_combo = LayerCombo(napari_viewer, (Image,), accept=lambda l: _usable(l) and l.ndim in (2, 4), placeholder="(none)")
        self.over_combo = LayerCombo(napari_viewer, (Image,), accept=lambda l: _usable(l) and l.ndim in (2, 4), placeholder="(none)")
        self.under_combo.setToolTip("image (or 4D-STEM scan) at −dz: under-focus")
        self.focus_combo.setToolTip("image (or scan) in focus")
        self.over_combo.setToolTip("image (or scan) at +dz: over-focus")
        self.input_info = QLabel("")
        self.input_info.setWordWrap(True)
        in_box = QGroupBox("Triplet")
        self._in_form = f = QFormLayout(in_box)
        _tidy_form(f)
        f.addRow("input", self.input_mode)
        f.addRow("stacked layer", self.stack_combo)
        f.addRow("−dz (under)", self.under_combo)
        f.addRow("0 (in focus)", self.focus_combo)
        f.addRow("+dz (over)", self.over_combo)
        f.addRow(self.input_info)

        # ---------------------------------------------------------------- microscope
        mic_box = QGroupBox("Microscope")
        self._mic_form = m = QFormLayout(mic_box)
        _tidy_form(m)
        add_fields(self, m, MICROSCOPE)

        # ---------------------------------------------------------------- method
        self.method = QComboBox()
        self.method.addItems(list(METHODS))
        self.method.setToolTip(
            "FlowTIE: the trained network (fast; aims at the projected potential σV, thick crystals too).\n"
            "FlowTIE + refine: then fits the triplet and the TIE, staying near the network's phase.\n"
            "classical TIE: ∇·(I0∇φ) = −(2π/λ)∂I/∂z, two FFT Poisson solves (instant; thin specimens).\n"
            "gradient descent: phase pixels fitted to the triplet through the aperture (slow)."
        )
        rec_box = QGroupBox("Reconstruction")
        self._rec_form = r = QFormLayout(rec_box)
        _tidy_form(r)
        r.addRow("method", self.method)
        add_fields(self, r, RECONSTRUCTION)
        self.register = QCheckBox("register the three images")
        self.register.setToolTip("Sub-pixel alignment of −dz and +dz onto the in-focus image (needs in-focus contrast)")
        self.device = QComboBox()
        self.device.addItems(_device_choices())
        self.device.setToolTip("auto = CUDA GPU, then Apple MPS, then CPU")
        self.uncertainty = QCheckBox("per-pixel σ")
        self.uncertainty.setToolTip("Also compute a phase σ layer (hidden when added). Classical TIE: the images' noise "
                                    "propagated; gradient descent: two re-fits on re-sampled noise (~3× the time); FlowTIE: "
                                    "the network's 8-symmetry spread, scaled. Not calibrated against the truth (see the "
                                    "notification); not with refine")
        r.addRow("", self.register)
        r.addRow("", self.uncertainty)
        r.addRow("device", self.device)

        self.runner = JobRunner(name="FlowTIE", run_text="Run", on_run=self.run)
        self.result_info = QLabel("")
        self.result_info.setWordWrap(True)
        self.result_info.setStyleSheet("color: #a0a0a0;")

        content = QWidget()
        lay = QVBoxLayout(content)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        for wdg in (self.help_label, in_box, mic_box, rec_box):
            lay.addWidget(wdg)
        line = QFrame()
        line.setFrameShape(QFrame.HLine)
        lay.addWidget(line)
        lay.addWidget(self.runner)
        lay.addWidget(self.result_info)
        lay.addStretch(1)
        scrolling_panel(self, content)
        for combo in self.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)

        self.input_mode.currentTextChanged.connect(self._update_visibility)
        self.method.currentTextChanged.connect(self._update_visibility)
        for combo in (self.stack_combo, self.under_combo, self.focus_combo, self.over_combo):
            combo.layer_changed.connect(self._on_input_changed)
        if self.stack_combo.current_layer() is None and self.focus_combo.current_layer() is not None:
            self.input_mode.setCurrentText(THREE)
        self._update_visibility()
        self._on_input_changed()

    # ------------------------------------------------------------------ public API
    @property
    def method_key(self) -> str:
        return METHODS[self.method.currentText()]

    @property
    def stacked(self) -> bool:
        return self.input_mode.currentText() == STACKED

    def set_stack_layer(self, layer) -> bool:
        """Choose one stacked layer as input (a layer FlowTIE cannot use gives a warning)."""
        problem = _layer_problem(layer, True)
        if problem is None and not self.stack_combo.set_layer(layer):
            problem = f"'{layer.name}' cannot be used as a stacked triplet"
        if problem is not None:
            self._info(problem, bad=True)
            _runner.warn(problem)
            return False
        self.input_mode.setCurrentText(STACKED)
        return True

    def set_triplet_layers(self, under, focus, over) -> bool:
        """Choose three layers (−dz, 0, +dz) as input."""
        for layer in (under, focus, over):
            problem = _layer_problem(layer, False)
            if problem is not None:
                self._info(problem, bad=True)
                _runner.warn(problem)
                return False
        ok = all(c.set_layer(l) for c, l in ((self.under_combo, under), (self.focus_combo, focus), (self.over_combo, over)))
        self.input_mode.setCurrentText(THREE)
        return ok

    def parameters(self) -> dict:
        return {**read_fields(self, MICROSCOPE + RECONSTRUCTION), "register": bool(self.register.isChecked()),
                "device": self.device.currentText(), "uncertainty": bool(self.uncertainty.isChecked())}

    def run(self) -> bool:
        ctx: dict[str, Any] = {}
        key = self.method_key
        return self.runner.start(lambda: self._make_job(key, ctx), on_result=partial(self._show_result, ctx), name=BASE_NAMES[key])

    # ------------------------------------------------------------------ jobs
    def _capture(self):
        if self.stacked:
            layer = self.stack_combo.current_layer()
            problem = _layer_problem(layer, True)
            if problem is not None:
                raise InputError(problem)
            return layer, _data(layer)
        layers = [c.current_layer() for c in (self.under_combo, self.focus_combo, self.over_combo)]
        for layer in layers:
            problem = _layer_problem(layer, False)
            if problem is not None:
                raise InputError(problem)
        if len({id(l) for l in layers}) < 3:
            raise InputError("choose three different layers for −dz, 0 and +dz")
        return layers[1], [_data(l) for l in layers]

    def _make_job(self, key: str, ctx: dict):
        from ..flowtie import baselines, solve

        layer, data = self._capture()
        p = self.parameters()
        four_d = (np.ndim(data) == 5) if not isinstance(data, list) else data[0].ndim == 4
        det = dict(detector_mrad=p["detector_mrad"], detector_mrad_per_px=p["detector_mrad_per_px"]) if four_d else {}
        common = dict(defocus_step_nm=p["defocus_step_nm"], pixel_size_a=p["pixel_size_a"], energy_kev=p["energy_kev"],
                      register=p["register"], **det)
        if not four_d:  # check now, on the main thread: bad input is refused with its message before anything runs
            from ..flowtie.triplet import check_parameters, prepare_triplet

            check_parameters(p["defocus_step_nm"], p["pixel_size_a"], p["energy_kev"], p["semiangle_mrad"])
            prepare_triplet(data, defocus_step_nm=p["defocus_step_nm"], pixel_size_a=p["pixel_size_a"], energy_kev=p["energy_kev"])
        ctx["layer"] = None if four_d else layer
        ctx["base"] = BASE_NAMES[key]
        sigma = p["uncertainty"] and key != "refine"  # the refined phase has no σ (its row is hidden)
        if key == "tie":
            return baselines.tie_classical_job(data, uncertainty=sigma, **common)
        if key == "gd":
            return baselines.tie_gradient_descent_job(data, semiangle_mrad=p["semiangle_mrad"], steps=p["steps"],
                                                      device=p["device"], uncertainty=sigma, **common)
        refine = p["steps"] if key == "refine" else 0
        return solve.flowtie_job(data, semiangle_mrad=p["semiangle_mrad"], refine_steps=refine, device=p["device"],
                                 uncertainty=sigma, **common)

    # ------------------------------------------------------------------ results
    def _show_result(self, ctx: dict, result: PhaseResult) -> None:
        suffix = " (cancelled)" if result.cancelled else ""
        base = ctx["base"]
        phase_only = PhaseResult({k: v for k, v in result.arrays.items() if k != "flow"}, result.pixel_size, result.pixel_unit,
                                 dict(result.array_units), dict(result.metadata))
        data = result_to_layers(phase_only, base, source_layer=ctx.get("layer"), suffix=suffix)
        data += flow_layers(result, base, ctx.get("layer"), suffix)
        layers = add_or_update(self.viewer, data)
        phase = [l for l in layers if (l.metadata or {}).get("array_name") == "phase"]
        if phase:
            self.viewer.layers.selection.active = phase[0]
        msgs = result.metadata.get("messages") or []
        for msg in msgs:
            _runner.info(msg)
        runtime = result.metadata.get("runtime_s", 0.0)
        self.result_info.setText(
            f"{base}{suffix}: phase (rad) with the flow ∇φ as arrows, {runtime:.2f} s on {result.metadata.get('device', 'cpu')}. "
            "In the layer list: |flow| (rad/Å)" + (", amplitude" if "amplitude" in result else "") + "."
            + (" " + " ".join(msgs) if msgs else "")
        )

    # ------------------------------------------------------------------ input changes
    def _on_input_changed(self, *_) -> None:
        layer = self.stack_combo.current_layer() if self.stacked else self.focus_combo.current_layer()
        if layer is None:
            self._info("No triplet yet: open one (File > Open Sample > napari-phase > FlowTIE triplet) or three images.")
            return
        md = layer.metadata or {}
        notes = [key.split("_")[0] for key in prefill_fields(self, MICROSCOPE, md)]
        if "pixel_size_a" not in md:
            unit = str(layer.units[-1]) if getattr(layer, "units", None) is not None else "pixel"
            if unit not in ("pixel", "dimensionless"):
                try:
                    import pint

                    self.pixel_a.setValue(float(pint.Quantity(float(layer.scale[-1]), unit).to("angstrom").magnitude))
                    notes.append("pixel size from the layer scale")
                except Exception:  # noqa: BLE001 - unknown unit: leave the field to the user
                    pass
        shape = layer.data.shape
        four_d = layer.ndim in (4, 5)
        text = f"'{layer.name}': {'×'.join(map(str, shape))}" + (" (4D-STEM: virtual BF detector)" if four_d else "")
        if notes:
            text += "; from metadata: " + ", ".join(notes)
        self._info(text)
        self._update_visibility()

    def _update_visibility(self, *_) -> None:
        stacked = self.stacked
        _set_row_visible(self._in_form, self.stack_combo, stacked)
        for c in (self.under_combo, self.focus_combo, self.over_combo):
            _set_row_visible(self._in_form, c, not stacked)
        layer = self.stack_combo.current_layer() if stacked else self.focus_combo.current_layer()
        four_d = layer is not None and layer.ndim in (4, 5)
        _set_row_visible(self._mic_form, self.detector_mrad, four_d)
        _set_row_visible(self._mic_form, self.detector_px, four_d)
        key = self.method_key
        _set_row_visible(self._rec_form, self.steps, key in ("gd", "refine"))
        _set_row_visible(self._rec_form, self.device, key != "tie")
        _set_row_visible(self._rec_form, self.uncertainty, key != "refine")
        self.runner.run_button.setText(f"Run {BASE_NAMES[key]}")

    def _info(self, text: str, bad: bool = False) -> None:
        self.input_info.setText(text)
        self.input_info.setStyleSheet("color: #e07050;" if bad else "")







