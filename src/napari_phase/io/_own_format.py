"""napari-phase's own file conventions (what :mod:`.writer` writes): the format markers, saved
PhaseResult JSON -> Datasets and layer metadata, and our per-layer JSON (TIFF tag / HDF5 attributes)
-> Dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._calibration import CALIBRATION_KEYS, _guess_kind, _unit_family
from ._dataset import Dataset

#: Marker attribute / JSON "format" value of files our writer produces.
LAYERS_FORMAT = "napari-phase-layers"
RESULT_FORMAT = "napari-phase-result"
FORMAT_ATTR = "napari_phase_format"
#: Private TIFF tag holding our JSON (name, scale, units, metadata) next to the ImageJ tags.
TIFF_JSON_TAG = 65000
#: Key of the PhaseResult metadata (method, parameters, ...) inside layer metadata (the same schema
#: as widgets/_layers.py: {"napari_phase": ..., "unit", "array_name", "pixel_size", "pixel_unit"}).
RESULT_META_KEY = "napari_phase"


def _result_info(info: dict) -> dict | None:
    return info if isinstance(info, dict) and info.get("format") == RESULT_FORMAT else None


def _result_array_dataset(name: str, arr: Any, info: dict) -> Dataset:
    """A Dataset for one array of a saved PhaseResult (npz / h5 / tif)."""
    unit = str(info.get("pixel_unit", "nm"))
    px = float(info.get("pixel_size", 1.0))
    array_unit = (info.get("array_units") or {}).get(name, "")
    rgb = array_unit == "RGB" or (np.ndim(arr) == 3 and np.shape(arr)[-1] in (3, 4) and name.startswith("color"))
    spatial = np.ndim(arr) - (1 if rgb else 0)
    scale = [1.0] * max(spatial - 2, 0) + [px, px]
    units = ["pixel"] * max(spatial - 2, 0) + [unit, unit]
    layer_md = result_layer_metadata(name, info)
    kwargs: dict = {"rgb": True} if rgb else {}
    if array_unit == "rad" and not rgb:
        kwargs["colormap"] = "gray"
    kind = "rgb" if rgb else ("image" if spatial == 2 else "stack")
    return Dataset(data=arr, name=name, kind=kind, scale=tuple(scale + ([1.0] if rgb else [])),
                   units=tuple(units + (["pixel"] if rgb else [])),
                   calibration=_pixel_calibration(px, unit), layer_metadata=layer_md, layer_kwargs=kwargs,
                   metadata={"result": info})


def result_layer_metadata(name: str, info: dict) -> dict:
    """Layer metadata for array ``name`` of a saved result (``info``: the result JSON)."""
    unit = str(info.get("pixel_unit", "nm"))
    px = float(info.get("pixel_size", 1.0))
    md = {
        RESULT_META_KEY: info.get("metadata", {}),
        "unit": (info.get("array_units") or {}).get(name, ""),
        "array_name": name,
        "pixel_size": px,
        "pixel_unit": unit,
        "kind": "result",
    }
    md.update(_pixel_calibration(px, unit))
    return md


def _pixel_calibration(px: float, unit: str) -> dict:
    fam = _unit_family(unit)
    if fam and fam[0] == "length":
        return {"pixel_size_nm": px * fam[1]}
    return {}


def _dataset_from_layer_json(data: Any, info: dict, p: Path) -> Dataset:
    """A Dataset from our own per-layer JSON (TIFF tag or HDF5 attributes)."""
    layer_type = str(info.get("layer_type", "image"))
    kwargs = dict(info.get("kwargs") or {})
    nd = np.ndim(data)
    spatial = nd - (1 if kwargs.get("rgb") else 0)
    if layer_type == "vectors":
        spatial = int(np.shape(data)[-1]) if nd == 3 else 2
    scale = tuple(float(s) for s in (info.get("scale") or [1.0] * spatial))
    units = tuple(str(u) for u in (info.get("units") or ["pixel"] * spatial))
    translate = tuple(float(t) for t in (info.get("translate") or [0.0] * spatial))
    pad = nd - len(scale) if layer_type != "vectors" else 0
    md = info.get("metadata")
    md = dict(md) if isinstance(md, dict) else {}
    kind = str(md.get("kind", _guess_kind(np.shape(data), kwargs.get("rgb", False))))
    cal = {k: md[k] for k in CALIBRATION_KEYS if k in md and md[k] is not None}
    if layer_type == "vectors":
        return Dataset(data=data, name=str(info.get("name") or p.stem), kind="vectors", layer_type="vectors",
                       scale=scale, units=units, translate=translate, axis_names=tuple(f"dim{i}" for i in range(nd)),
                       calibration=cal, layer_metadata=md, layer_kwargs=kwargs)
    return Dataset(data=data, name=str(info.get("name") or p.stem), kind=kind, layer_type=layer_type,
                   scale=scale + (1.0,) * pad, units=units + ("pixel",) * pad, translate=translate + (0.0,) * pad,
                   calibration=cal, layer_metadata=md, layer_kwargs=kwargs)
