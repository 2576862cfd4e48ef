""":class:`Dataset` (one array from a file, with axes, calibration and the file's metadata; turns
into napari ``LayerData``) and :func:`_make_dataset`, which builds one from raw axes / scale / units."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ._calibration import (
    _apply_explicit_calibration,
    _calibration_from_axes,
    _clean_unit,
    _default_axis_names,
    _guess_kind,
    _is_number,
    _normalise_axis,
    _unit_family,
    _valid_pint_unit,
)
from ._json import _metadata_summary

LayerData = tuple  # (data, kwargs, layer_type)


@dataclass
class Dataset:
    """One array from a file, with what the file says about it.

    ``data``: numpy array, ``np.memmap`` or dask array, axis order (..., y, x); 4D-STEM as
    (scan_y, scan_x, ky, kx). ``kind``: "image", "stack", "4dstem", "rgb", "spectrum_image" (a
    guess from shape and axes). ``layer_type``: "image", "labels" or "vectors". ``scale``/``units``/
    ``translate``: per axis (units are strings pint understands: "nm", "Å", "1/Å", "mrad", "pixel").
    ``calibration``: the keys of :data:`CALIBRATION_KEYS` that were found. ``metadata``: the file's own
    metadata (rsciio metadata/original_metadata, HDF5 attributes, ImageJ/OME tags).
    ``layer_metadata``: napari layer metadata stored by our writer (restored as is).
    ``layer_kwargs``: further napari layer kwargs (colormap, contrast_limits, rgb, ...).
    """

    data: Any
    name: str = "data"
    kind: str = "image"
    layer_type: str = "image"
    scale: tuple = ()
    units: tuple = ()
    translate: tuple = ()
    axis_names: tuple = ()
    calibration: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    layer_metadata: dict | None = None
    layer_kwargs: dict = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        nd = self.ndim
        if not self.scale:
            self.scale = (1.0,) * nd
        if not self.units:
            self.units = ("pixel",) * nd
        if not self.translate:
            self.translate = (0.0,) * nd
        if not self.axis_names:
            self.axis_names = _default_axis_names(self.kind, nd)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def shape(self) -> tuple:
        return tuple(int(s) for s in np.shape(self.data))

    @property
    def lazy(self) -> bool:
        """True when the data is not an in-memory numpy array (memmap or dask)."""
        return isinstance(self.data, np.memmap) or not isinstance(self.data, np.ndarray)

    @property
    def pixel_size(self) -> float | None:
        """Sampling of the last two (spatial) axes in their unit, or None if uncalibrated."""
        cal = self.calibration
        for key in ("pixel_size_nm", "scan_step_a"):
            if key in cal:
                return float(cal[key])
        return None

    def to_layer_data(self) -> LayerData:
        """napari ``(data, kwargs, layer_type)`` for this dataset."""
        data = self.data
        spatial = self.ndim - (1 if self.layer_kwargs.get("rgb") else 0)
        if self.layer_type == "vectors":
            spatial = int(np.shape(data)[-1]) if np.ndim(data) == 3 else 2
        scale = [float(s) for s in self.scale[:spatial]]
        units = [str(u) for u in self.units[:spatial]]
        translate = [float(t) for t in self.translate[:spatial]]
        md: dict = dict(self.layer_metadata) if self.layer_metadata is not None else {}
        md.setdefault("kind", self.kind)
        md["source_path"] = self.source
        for key, value in self.calibration.items():
            md.setdefault(key, value)
        if self.layer_metadata is None:
            md.setdefault("axis_names", list(self.axis_names))
            if self.metadata:
                md.setdefault("original_metadata", _metadata_summary(self.metadata))
        kwargs: dict = {"name": self.name, "metadata": md}
        if len(scale) == spatial and spatial > 0:
            kwargs["scale"] = scale
            kwargs["units"] = units
            if any(t != 0 for t in translate):
                kwargs["translate"] = translate
        if self.kind == "4dstem" and self.layer_type == "image" and self.ndim == 4:
            kwargs["axis_labels"] = list(self.axis_names)
        for key, value in self.layer_kwargs.items():
            if key == "colormap" and not _known_colormap(value):
                continue
            kwargs[key] = value
        if self.layer_type == "labels":
            kwargs.pop("colormap", None)
            kwargs.pop("contrast_limits", None)
        return data, kwargs, self.layer_type


def _make_dataset(data: Any, name: str, *, axes: list[dict] | None = None, scale: Sequence | None = None,
                  units: Sequence | None = None, calibration: dict | None = None, metadata: dict | None = None,
                  kind: str | None = None, rgb: bool = False) -> Dataset:
    """Build a Dataset: guess the kind, normalise axes units, derive calibration keys from the axes,
    and fill uncalibrated axes from explicit calibration keys."""
    shape = tuple(np.shape(data)) if not hasattr(data, "shape") else tuple(data.shape)
    nd = len(shape)
    kind = kind or _guess_kind(shape, rgb)
    spatial = nd - (1 if rgb else 0)
    if axes is None:
        sc = list(scale) if scale is not None else [1.0] * spatial
        un = list(units) if units is not None else ["pixel"] * spatial
        axes = [{"scale": float(s), "units": u, "offset": 0.0, "name": ""} for s, u in zip(sc[:spatial], un[:spatial])]
    real_unit = "Å" if kind == "4dstem" else "nm"
    out_scale, out_units, out_translate, fams = [], [], [], []
    for i, ax in enumerate(axes):
        s = ax.get("scale", 1.0)
        s = float(s) if _is_number(s) and float(s) != 0 else 1.0
        o = ax.get("offset", 0.0)
        o = float(o) if _is_number(o) else 0.0
        fam0 = _unit_family(ax.get("units"))
        if kind == "4dstem" and i >= 2 and fam0 is not None and fam0[0] == "length":
            # A length on a detector axis (e.g. BLO's "cm") is not a real-space sampling: keep it raw.
            u = _clean_unit(ax.get("units"))
            s2, o2, u2, fam = s, o, (u if _valid_pint_unit(u) else "pixel"), "other"
        else:
            s2, o2, u2, fam = _normalise_axis(s, o, ax.get("units"), real_space_unit=real_unit)
        out_scale.append(s2)
        out_translate.append(o2)
        out_units.append(u2)
        fams.append(fam)
    cal = dict(calibration or {})
    _apply_explicit_calibration(kind, out_scale, out_units, out_translate, fams, cal)
    cal = {**_calibration_from_axes(kind, out_scale, fams), **cal}
    names = tuple(str(a.get("name") or "") for a in axes)
    axis_names = _default_axis_names(kind, nd)
    if rgb:
        out_scale.append(1.0)
        out_units.append("pixel")
        out_translate.append(0.0)
    return Dataset(data=data, name=str(name), kind=kind, scale=tuple(out_scale), units=tuple(out_units),
                   translate=tuple(out_translate), axis_names=axis_names, calibration=cal,
                   metadata={**(metadata or {}), **({"axis_names_in_file": list(names)} if any(names) else {})},
                   layer_kwargs={"rgb": True} if rgb else {})


def _known_colormap(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        from napari.utils.colormaps import ensure_colormap
    except Exception:  # noqa: BLE001
        return value in ("gray", "twilight", "twilight_shifted", "viridis", "magma", "inferno", "hsv", "bwr")
    try:
        ensure_colormap(value)
        return True
    except Exception:  # noqa: BLE001
        return False
