"""Contaminant mask tool: a threshold slider with a live Labels preview on the canvas.

The microscopist moves the slider until the dark (or bright) contaminant particles are covered,
then corrects the mask with napari's own brush and eraser ("Edit mask (brush)" puts the Labels
layer in paint mode). The resulting Labels layer ("contaminant mask", 1 = contaminant,
0 = film) is what the SIPRAD panel's amplitude mode "mask" uses.

"Suggest mask" fills the same layer from the contaminant detector
(:func:`napari_phase.ltem.detect.suggest_contaminant_mask`, which tells particles from dark
skyrmion cores by their flux deficit and shape), off the main thread; the brush corrects it.

:func:`threshold_mask` wraps the science (:mod:`napari_phase.ltem.mask`). For a time series
(T, Y, X) the frame shown in the viewer is thresholded and the mask is 2-D (contaminants sit on the
film and are the same in every frame; the panel accepts a 2-D mask for a series).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget
from superqt import QLabeledDoubleSlider

MASK_LAYER_NAME = "contaminant mask"
CONTAMINANT = 1

BELOW = "darker (below)"
ABOVE = "brighter (above)"


def threshold_mask(image: np.ndarray, threshold: float, *, below: bool = True, smooth_px: float = 1.0, min_size_px: int = 0) -> np.ndarray:
    """uint8 mask (1 = contaminant) of a 2-D image: :func:`napari_phase.ltem.mask.threshold_mask`
    (Gaussian smoothing by ``smooth_px``, particles under ``min_size_px`` dropped, holes filled)."""
    from ..ltem.mask import threshold_mask as science_mask

    img = np.asarray(image, dtype=np.float32)
    if not np.isfinite(img).all():
        img = np.where(np.isfinite(img), img, np.nanmedian(img) if np.isfinite(img).any() else 0.0)
    return science_mask(img, float(threshold), below=below, smooth_px=float(smooth_px), min_size_px=int(min_size_px)).astype(np.uint8)


def _image_data(layer) -> np.ndarray:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return data


def _current_frame(viewer, layer) -> np.ndarray:
    """The 2-D image the viewer shows of ``layer`` (the current frame of a (T, Y, X) series)."""
    data = _image_data(layer)
    if data.ndim == 2:
        return np.asarray(data)
    t = 0
    try:
        point = layer.world_to_data(viewer.dims.point[-layer.ndim:])
        t = int(np.clip(round(float(point[0])), 0, data.shape[0] - 1))
    except Exception:  # noqa: BLE001 - fall back to the first frame
        t = 0
    return np.asarray(data[t])


class MaskTool(QWidget):
    """Threshold slider + live "contaminant mask" Labels layer + brush/eraser editing.

    ``get_image_layer`` returns the image the panel works on (or None). ``mask_changed(layer)`` is
    emitted after the Labels layer is created or updated.
    """

    mask_changed = Signal(object)

    def __init__(self, viewer, get_image_layer: Callable[[], object], parent: QWidget | None = None, debounce_ms: int = 120,
                 get_optics: Callable[[], dict] | None = None) -> None:
        super().__init__(parent)
        # {"pixel_size_nm", "defocus_nm", "voltage_kv"} for the detector (the SIPRAD panel's fields)
        self._get_optics = get_optics
        self._worker = None
        self.viewer = viewer
        self._get_image_layer = get_image_layer
        self._layer = None
        self._image_layer = None
        self._edited = False
        self._updating = False

        self.polarity = QComboBox()
        self.polarity.addItems([BELOW, ABOVE])
        self.polarity.setToolTip("Contaminant particles (e.g. carbon or oxide) usually look dark in LTEM images")
        self.slider = QLabeledDoubleSlider(Qt.Horizontal)
        self.slider.setToolTip("Pixels of the (smoothed) image past this intensity are marked as contaminant; the mask updates live")
        self.smooth = QDoubleSpinBox()
        self.smooth.setRange(0.0, 20.0)
        self.smooth.setSingleStep(0.5)
        self.smooth.setValue(2.0)
        self.smooth.setSuffix(" px")
        self.smooth.setToolTip("Gaussian smoothing (σ in pixels) before thresholding, against noise speckle; 0 = off")
        self.min_size = QSpinBox()
        self.min_size.setRange(0, 1_000_000)
        self.min_size.setValue(10)
        self.min_size.setSuffix(" px")
        self.min_size.setToolTip("Particles smaller than this many pixels are dropped")
        self.edit_button = QPushButton("Edit mask (brush)")
        self.edit_button.setToolTip("Select the mask layer in paint mode: paint adds contaminant, E = eraser, P = paint, [ ] = brush size")
        self.edit_button.clicked.connect(self.edit_mask)
        self.suggest_button = QPushButton("Suggest mask")
        self.suggest_button.setToolTip("Detect the contaminant particles (absorbing: a local loss of intensity, unlike the magnetic contrast) "
                                       "and put them in the mask; uses the pixel size and defocus above. Correct it with the brush.")
        self.suggest_button.clicked.connect(self.suggest_mask)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Empty the mask (e.g. to paint it by hand)")
        self.clear_button.clicked.connect(self.clear_mask)
        self.info = QLabel("Move the slider: the mask appears on the canvas.")
        self.info.setWordWrap(True)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.addRow("contaminant is", self.polarity)
        form.addRow("threshold", self.slider)
        form.addRow("smoothing σ", self.smooth)
        form.addRow("min. particle", self.min_size)
        buttons = QHBoxLayout()
        buttons.addWidget(self.suggest_button)
        buttons.addWidget(self.edit_button)
        buttons.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.info)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self.update_mask)
        self.slider.valueChanged.connect(self._schedule)
        self.smooth.valueChanged.connect(self._schedule)
        self.min_size.valueChanged.connect(self._schedule)
        self.polarity.currentIndexChanged.connect(self._polarity_changed)
        self.set_image_layer(get_image_layer())

    # ------------------------------------------------------------------ public API
    @property
    def below(self) -> bool:
        return self.polarity.currentText() == BELOW

    @property
    def threshold(self) -> float:
        return float(self.slider.value())

    def set_threshold(self, value: float) -> None:
        """Move the slider (as the user would); the mask follows after the debounce delay."""
        self.slider.setValue(float(value))

    @property
    def mask_layer(self):
        """The Labels layer this tool writes (None until the slider was moved)."""
        if self._layer is not None and self._layer in self.viewer.layers:
            return self._layer
        return None

    def set_image_layer(self, layer) -> None:
        """Adapt the slider range to the image's intensities; pick a starting threshold."""
        self._image_layer = layer
        ok = layer is not None and getattr(layer, "data", None) is not None and not getattr(layer, "rgb", False)
        self.setEnabled(bool(ok))
        if not ok:
            self.info.setText("Pick a (grayscale) image above to threshold it.")
            return
        if _image_data(layer).ndim not in (2, 3):
            self.setEnabled(False)
            self.info.setText("The mask tool needs a 2-D image or a (T, Y, X) series.")
            return
        sample = np.asarray(_current_frame(self.viewer, layer), dtype=np.float32)
        finite = sample[np.isfinite(sample)]
        if finite.size == 0 or finite.min() == finite.max():
            self.info.setText("This image has no contrast to threshold.")
            return
        lo, hi = float(finite.min()), float(finite.max())
        span = hi - lo
        from ..ltem.mask import suggest_threshold

        # start where a small fraction of the image is marked: the science's suggestion (mean ∓ 3
        # robust σ) unless that marks nothing, then the 1st (99th) percentile of the smoothed image
        from scipy import ndimage as ndi

        smooth = ndi.gaussian_filter(np.nan_to_num(sample), self.smooth.value()) if self.smooth.value() > 0 else np.nan_to_num(sample)
        p_lo, p_hi = (float(v) for v in np.percentile(smooth, (1.0, 99.0)))
        self._suggest = {
            True: max(float(suggest_threshold(finite, below=True)), p_lo),
            False: min(float(suggest_threshold(finite, below=False)), p_hi),
        }
        decimals = int(max(0, min(6, 3 - np.floor(np.log10(span)))))
        self._stats = (float(finite.mean()), float(finite.std()), lo, hi)
        self._updating = True
        try:
            self.slider.setDecimals(decimals)
            self.slider.setRange(lo, hi)
            self.slider.setSingleStep(span / 200)
            self.slider.setValue(self._default_threshold())
        finally:
            self._updating = False
        self.info.setText("Move the slider: the mask appears on the canvas (magenta).")

    def update_mask(self):
        """Recompute the mask from the slider now and put it in the "contaminant mask" layer."""
        self._timer.stop()
        layer = self._image_layer
        if layer is None or getattr(layer, "rgb", False):
            return None
        if _image_data(layer).ndim not in (2, 3):
            self.info.setText("Cannot threshold this layer; give a 2-D image or a (T, Y, X) series.")
            return None
        mask = threshold_mask(_current_frame(self.viewer, layer), self.threshold, below=self.below, smooth_px=self.smooth.value(), min_size_px=self.min_size.value())
        what = "darker" if self.below else "brighter"
        return self._write_mask(mask, f"({what} than {self.threshold:.4g})", "moving the slider again replaces brush edits.")

    def suggest_mask(self):
        """Run the contaminant detector on the shown frame (in a worker thread); the result fills the
        mask layer like the slider does. Returns the worker (None if nothing was started)."""
        from ..jobs import InputError
        from . import _runner

        layer = self._image_layer
        if layer is None or getattr(layer, "rgb", False) or _image_data(layer).ndim not in (2, 3):
            _runner.warn("Suggest mask needs a 2-D grayscale image or a (T, Y, X) series.")
            return None
        if self._worker is not None:
            return None  # one suggestion at a time
        optics = dict(self._get_optics()) if self._get_optics is not None else {}
        if "pixel_size_nm" not in optics:
            scale = float(list(layer.scale)[-1])
            optics["pixel_size_nm"] = scale if scale != 1.0 else 5.0
        optics.setdefault("defocus_nm", -1.0e6)
        frame = np.asarray(_current_frame(self.viewer, layer))
        from napari.qt.threading import create_worker

        from ..ltem.detect import suggest_contaminant_mask

        def detect():  # errors come back as values: shown as a notification, never raised in Qt's loop
            try:
                return suggest_contaminant_mask(frame, **{k: float(v) for k, v in optics.items()}), None
            except Exception as exc:  # noqa: BLE001
                return None, exc

        worker = create_worker(detect, _start_thread=False)

        def done(outcome):
            mask, exc = outcome
            if exc is not None:
                msg = str(exc) if isinstance(exc, InputError) else f"the detector failed: {exc!r}"
                self.info.setText(f"Suggest mask: {msg}")
                _runner.warn(f"Suggest mask: {msg}")
                return
            self._write_mask(np.asarray(mask, np.uint8), "suggested by the detector", "Suggest mask or the slider replace brush edits.")

        def finished():
            self._worker = None
            self.suggest_button.setEnabled(True)

        worker.returned.connect(done)
        worker.finished.connect(finished)
        self._worker = worker
        self.suggest_button.setEnabled(False)
        self.info.setText("Detecting contaminant particles…")
        worker.start()
        return worker

    def _write_mask(self, mask: np.ndarray, how: str, hint: str):
        """Put ``mask`` (uint8, 1 = contaminant) in the "contaminant mask" Labels layer."""
        layer = self._image_layer
        if layer is None:
            return None
        target = self.mask_layer
        if target is not None and target.data.shape != mask.shape:
            target = None  # image changed shape: make a fresh layer below
            self.viewer.layers.remove(self._layer)
        if target is None:
            from napari.utils.colormaps import DirectLabelColormap

            cmap = DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", CONTAMINANT: "magenta"})
            name = MASK_LAYER_NAME
            if name in self.viewer.layers:  # a layer of that name that is not ours (or of another shape)
                other = self.viewer.layers[name]
                from napari.layers import Labels

                if isinstance(other, Labels) and np.shape(other.data) == mask.shape:
                    target = other
            if target is None:
                target = self.viewer.add_labels(
                    mask,
                    name=name,
                    colormap=cmap,
                    opacity=0.55,
                    scale=list(layer.scale)[-2:],
                    translate=list(layer.translate)[-2:],
                    units=[str(u) for u in getattr(layer, "units", ["pixel"] * layer.ndim)][-2:],
                    metadata={"napari_phase_mask": True, "source_layer": layer.name},
                )
            else:
                target.data = mask
            self._connect(target)
        else:
            target.data = mask
        self._layer = target
        self._edited = False
        frac = 100.0 * float(mask.mean())
        from scipy import ndimage as ndi

        n = ndi.label(mask)[1]
        self._summary = f"{n} particle(s), {frac:.1f} % of the image {how}."
        self.info.setText(self._summary + f" Fix it with 'Edit mask (brush)'; {hint}")
        self.mask_changed.emit(target)
        return target

    def edit_mask(self) -> None:
        """Select the mask layer in paint mode (label 1 = contaminant); E switches to the eraser."""
        target = self.mask_layer or self.update_mask()
        if target is None:
            return
        self.viewer.layers.selection.active = target
        target.visible = True
        target.selected_label = CONTAMINANT
        h, w = target.data.shape[-2:]
        target.brush_size = max(3, int(round(min(h, w) / 40)))
        target.mode = "paint"
        self.info.setText(getattr(self, "_summary", "") + " Now painting on the mask: brush adds contaminant, "
                          "E = eraser, P = paint, [ and ] = brush size.")

    def clear_mask(self) -> None:
        target = self.mask_layer
        if target is None:
            return
        target.data = np.zeros_like(target.data)
        self.info.setText("Mask cleared; paint it with 'Edit mask (brush)' or move the slider.")
        self.mask_changed.emit(target)

    # ------------------------------------------------------------------ internals
    def _default_threshold(self) -> float:
        _, _, lo, hi = self._stats
        return float(np.clip(self._suggest[self.below], lo, hi))

    def _polarity_changed(self, *_):
        if getattr(self, "_stats", None) is not None:
            self._updating = True
            try:
                self.slider.setValue(self._default_threshold())
            finally:
                self._updating = False
        self._schedule()

    def _schedule(self, *_):
        if self._updating or self._image_layer is None:
            return
        self._timer.start()

    def _connect(self, target) -> None:
        try:
            target.events.paint.connect(self._on_paint)
        except Exception:  # noqa: BLE001 - older napari: no paint event
            pass

    def _on_paint(self, *_):
        if not self._edited:
            self._edited = True
            self.info.setText("Mask edited with the brush. It is used as is; moving the slider would recompute it.")
