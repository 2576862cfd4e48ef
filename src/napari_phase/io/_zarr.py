"""``.zarr`` stores (an array, a group walked, OME-NGFF multiscales, HyperSpy zspy), always lazy
through dask unless ``lazy=False``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..jobs import InputError
from ._calibration import _calibration_from_dict
from ._context import MAX_LAYERS, _Ctx, _one_line
from ._dataset import Dataset, _make_dataset
from ._json import _jsonable
from ._rsciio import _load_rsciio


def _load_zarr(ctx: _Ctx) -> list[Dataset]:
    try:
        import zarr
    except ImportError as exc:
        raise InputError(f"Cannot read {ctx.path.name}: reading .zarr needs the 'zarr' package "
                         "(pip install zarr)") from exc
    import dask.array as da

    p = ctx.path
    try:
        node = zarr.open(str(p), mode="r")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"Cannot read {p.name}: not a readable zarr store ({_one_line(exc)})") from exc
    arrays: list[tuple[str, Any, dict]] = []
    if isinstance(node, zarr.Array):
        arrays.append((p.stem, node, dict(node.attrs)))
        root_attrs: dict = {}
    else:
        root_attrs = dict(node.attrs)
        if str(root_attrs.get("file_format", "")).lower() == "hyperspy":
            return _load_rsciio(ctx, "zspy")
        multiscale = _ome_ngff(node, root_attrs)
        if multiscale is not None:
            arrays.append(multiscale)
        else:
            _walk_zarr(node, "", arrays)
    if not arrays:
        raise InputError(f"Cannot read {p.name}: the zarr store holds no image arrays")
    arrays.sort(key=lambda x: 0 if x[1].ndim == 4 else 1)
    out = []
    for name, arr, attrs in arrays[:MAX_LAYERS]:
        if arr.ndim < 2 or np.dtype(arr.dtype).kind not in "biufc":
            continue
        data = da.from_zarr(arr) if ctx.lazy is not False else np.asarray(arr[...])
        merged = {**_jsonable(root_attrs), **_jsonable(attrs)}
        if isinstance(merged.get("metadata_json"), str):
            try:
                merged.update(json.loads(merged["metadata_json"]))
            except ValueError:
                pass
        scale = merged.get("scale") if isinstance(merged.get("scale"), list) else None
        units = merged.get("units") if isinstance(merged.get("units"), list) else None
        if "_ngff_scale" in attrs:
            scale, units = attrs["_ngff_scale"], attrs["_ngff_units"]
        if scale is not None and len(scale) != arr.ndim:
            scale, units = None, None
        if units is not None and len(units) != arr.ndim:
            units = None
        out.append(_make_dataset(data, name, scale=scale, units=units, calibration=_calibration_from_dict(merged),
                                 metadata=merged))
    return out


def _walk_zarr(group: Any, prefix: str, out: list) -> None:
    for name, arr in group.arrays():
        out.append((f"{prefix}{name}", arr, dict(arr.attrs)))
    for name, sub in group.groups():
        _walk_zarr(sub, f"{prefix}{name}/", out)


def _ome_ngff(group: Any, attrs: dict) -> tuple | None:
    ms = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
    if not ms:
        return None
    try:
        first = ms[0]
        ds0 = first["datasets"][0]
        arr = group[ds0["path"]]
        scale = [1.0] * arr.ndim
        for t in ds0.get("coordinateTransformations", []):
            if t.get("type") == "scale":
                scale = [float(s) for s in t["scale"]]
        units = [str(a.get("unit") or "pixel") if isinstance(a, dict) else "pixel" for a in first.get("axes", [])]
        if len(units) != arr.ndim:
            units = ["pixel"] * arr.ndim
        a = dict(arr.attrs)
        a["_ngff_scale"], a["_ngff_units"] = scale, units
        return (first.get("name") or "image", arr, a)
    except (KeyError, IndexError, TypeError, ValueError):
        return None
