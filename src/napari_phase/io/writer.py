"""Writers: napari layers and :class:`~napari_phase.result.PhaseResult` to TIFF / HDF5 / NPZ.

Everything written here reads back through :mod:`napari_phase.io.readers` with the same arrays,
scale, units, name and metadata (round-trip tests pin that).

* TIFF: float32 (RGB kept as is), ImageJ-compatible pixel size (resolution tags + ``unit``) so
  ImageJ/Fiji show a calibrated image, and the full layer description (name, scale, units,
  translate, metadata incl. the result's method and parameters, display settings) as JSON in the
  private tag :data:`~napari_phase.io.readers.TIFF_JSON_TAG`.
* HDF5: one dataset per layer (name sanitised), attributes ``name``, ``layer_type``, ``scale``,
  ``units``, ``translate``, ``metadata_json`` and ``layer_json`` (all of it, what our reader uses);
  root attribute ``napari_phase_format``. Vectors as (N, 2, D) float32, labels as integers.
  :func:`save_result` adds the root attribute ``result_json`` and per-dataset ``array_name``.
* NPZ (:func:`save_result` only): the arrays plus a ``metadata_json`` entry.

npe2 writer contributions: :func:`write_single_image` (image -> .tif/.tiff/.h5) and
:func:`write_layers` (several layers -> .h5).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..jobs import InputError
from ..result import PhaseResult
from ._atomic import atomic_paths
from ._calibration import _unit_family
from ._json import _jsonable
from .readers import (
    FORMAT_ATTR,
    LAYERS_FORMAT,
    RESULT_FORMAT,
    RESULT_META_KEY,
    TIFF_JSON_TAG,
    result_layer_metadata,
    unit_to_str,
)

_H5_SUFFIXES = (".h5", ".hdf5", ".hdf")
_TIF_SUFFIXES = (".tif", ".tiff")
#: what :func:`save_result` writes
RESULT_SUFFIXES = _H5_SUFFIXES + _TIF_SUFFIXES + (".npz",)
_KWARGS_KEPT = {
    "image": ("colormap", "contrast_limits", "rgb", "gamma", "opacity", "blending"),
    "labels": ("opacity", "blending"),
    "vectors": ("edge_width", "length", "vector_style", "opacity", "blending", "edge_color"),
}


# ----------------------------------------------------------------------------- npe2 writers


def write_single_image(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 single-layer writer: an image layer to .tif/.tiff (ImageJ-compatible) or .h5."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in _TIF_SUFFIXES:
        with atomic_paths([p]) as (tmp,):
            _write_tiff(tmp, data, meta or {})
        return [str(p)]
    if suffix in _H5_SUFFIXES:
        with atomic_paths([p]) as (tmp,):
            _write_h5(tmp, [(data, meta or {}, "image")])
        return [str(p)]
    raise InputError(f"Cannot write {p.name}: napari-phase writes an image as .tif, .tiff or .h5")


def write_layers(path: str, layer_data: Sequence[tuple]) -> list[str]:
    """npe2 multi-layer writer: image, labels and vectors layers into one HDF5 file."""
    p = Path(path)
    if p.suffix.lower() not in _H5_SUFFIXES:
        if p.suffix:
            raise InputError(f"Cannot write {p.name}: napari-phase writes several layers as .h5")
        p = p.with_suffix(".h5")
    if not layer_data:
        raise InputError(f"Cannot write {p.name}: no layers selected")
    with atomic_paths([p]) as (tmp,):
        _write_h5(tmp, list(layer_data))
    return [str(p)]


# ------------------------------------------------------------------------------ PhaseResult


def result_info(result: PhaseResult) -> dict:
    """The JSON-able description of a result (everything but the arrays)."""
    return {
        "format": RESULT_FORMAT,
        "version": 1,
        "pixel_size": float(result.pixel_size),
        "pixel_unit": str(result.pixel_unit),
        "array_units": {k: str(v) for k, v in result.array_units.items() if k in result.arrays},
        "metadata": json.loads(result.metadata_json()),
    }


def result_to_layer_data(result: PhaseResult, prefix: str = "") -> list[tuple]:
    """napari ``LayerData`` for every array of a result: scale and units from the pixel size, the
    result's metadata (method, parameters, ...) under ``metadata["napari_phase_result"]``, calibration
    keys (``pixel_size_nm``) flat in the metadata. RGB arrays (unit "RGB") become rgb images."""
    info = result_info(result)
    px, unit = float(result.pixel_size), str(result.pixel_unit)
    layers = []
    for name, arr in result.arrays.items():
        arr = np.asarray(arr)
        array_unit = result.unit_of(name)
        rgb = array_unit == "RGB" or (arr.ndim == 3 and arr.shape[-1] in (3, 4) and name.startswith("color"))
        spatial = arr.ndim - (1 if rgb else 0)
        if spatial < 2:
            continue
        kwargs: dict = {
            "name": f"{prefix}{name}",
            "scale": [1.0] * (spatial - 2) + [px, px],
            "units": ["pixel"] * (spatial - 2) + [unit, unit],
            "metadata": result_layer_metadata(name, info),
        }
        if rgb:
            kwargs["rgb"] = True
        elif array_unit == "rad":
            kwargs["colormap"] = "gray"
        layers.append((arr, kwargs, "image"))
    return layers


def save_result(result: PhaseResult, path: str | Path) -> list[str]:
    """Save a result; returns the files written.

    ``.h5``/``.hdf5``: every array plus all metadata in one file. ``.tif``/``.tiff``: one file per
    array (``out_phase.tif``, ``out_bx.tif``, ...). ``.npz``: the arrays plus ``metadata_json``.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in RESULT_SUFFIXES:
        raise InputError(f"Cannot save a result as {p.name}: use .h5, .tif or .npz")
    info = result_info(result)
    if suffix in _H5_SUFFIXES:
        layers = result_to_layer_data(result)
        names = [n for n, a in result.arrays.items() if np.ndim(a) - (1 if result.unit_of(n) == "RGB" else 0) >= 2]
        with atomic_paths([p]) as (tmp,):
            _write_h5(tmp, layers, result_info=info, array_names=names)
        return [str(p)]
    if suffix in _TIF_SUFFIXES:
        layers = result_to_layer_data(result)
        targets = result_tiff_paths(result, p)
        with atomic_paths(targets) as temps:  # all arrays or none
            for tmp, (data, kwargs, _) in zip(temps, layers):
                _write_tiff(tmp, data, kwargs)
        return [str(t) for t in targets]
    if suffix == ".npz":
        arrays = {k: np.asarray(v) for k, v in result.arrays.items() if k != "metadata_json"}
        with atomic_paths([p]) as (tmp,):
            np.savez_compressed(tmp, **arrays, metadata_json=np.array(json.dumps(info)))
        return [str(p)]
    raise InputError(f"Cannot save a result as {p.name}: use .h5, .tif or .npz")


def result_tiff_paths(result: PhaseResult, path: str | Path) -> list[Path]:
    """The files :func:`save_result` writes for ``path`` ending .tif: one per array, ``out_phase.tif``, ..."""
    p = Path(path)
    return [p.with_name(f"{p.stem}_{_sanitise(kwargs['name'])}{p.suffix}") for _, kwargs, _ in result_to_layer_data(result)]


def load_result(path: str | Path) -> PhaseResult:
    """Read back a result saved by :func:`save_result` (.h5, .npz, or one array's .tif), or build
    one from an HDF5 file of layers written from napari."""
    from ._json import _parse_json
    from ._own_format import _result_info
    from .readers import load_all

    p = Path(path)
    suffix = p.suffix.lower()
    if not p.exists():
        raise InputError(f"Cannot read {p}: file not found")
    if suffix in _H5_SUFFIXES:
        import h5py

        try:
            with h5py.File(p, "r") as f:
                if "result_json" in f.attrs:
                    raw = f.attrs["result_json"]
                    info = _parse_json(raw.decode() if isinstance(raw, bytes) else str(raw), p)
                    arrays = {}
                    for key in f:
                        dset = f[key]
                        if isinstance(dset, h5py.Dataset):
                            name = dset.attrs.get("array_name", key)
                            arrays[name.decode() if isinstance(name, bytes) else str(name)] = dset[()]
                    return _result_from_info(arrays, info)
        except OSError as exc:
            raise InputError(f"Cannot read {p.name}: not a valid HDF5 file ({exc})") from exc
    elif suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as npz:
                info = _parse_json(np.asarray(npz["metadata_json"]).item(), p) if "metadata_json" in npz.files else {}
                if _result_info(info) is not None:
                    arrays = {k: npz[k] for k in npz.files if k != "metadata_json"}
                    return _result_from_info(arrays, info)
        except (OSError, ValueError) as exc:
            raise InputError(f"Cannot read {p.name}: {exc}") from exc
    datasets = [d for d in load_all(p, lazy=False) if d.layer_type == "image"]
    if not datasets:
        raise InputError(f"Cannot read a result from {p.name}: it holds no image arrays")
    return _result_from_datasets(datasets)


def _result_from_info(arrays: dict, info: dict) -> PhaseResult:
    return PhaseResult(
        arrays=arrays,
        pixel_size=float(info.get("pixel_size", 1.0)),
        pixel_unit=str(info.get("pixel_unit", "nm")),
        array_units=dict(info.get("array_units") or {}),
        metadata=dict(info.get("metadata") or {}),
    )


def _result_from_datasets(datasets: list) -> PhaseResult:
    arrays, units = {}, {}
    metadata: dict = {}
    named = [ds for ds in datasets if (ds.layer_metadata or {}).get("array_name")]
    if named:  # layers made from a result: keep the result's arrays, not the legend
        datasets = [ds for ds in named if ds.layer_metadata["array_name"] != "legend"] or named
    for ds in datasets:
        md = ds.layer_metadata or {}
        name = str(md.get("array_name") or ds.name)
        arrays[name] = np.asarray(ds.data)
        if md.get("unit") is not None:
            units[name] = str(md["unit"])
        if not metadata and isinstance(md.get(RESULT_META_KEY), dict):
            metadata = dict(md[RESULT_META_KEY])
    first = datasets[0]
    md0 = first.layer_metadata or {}
    if "pixel_size" in md0:
        px, unit = float(md0["pixel_size"]), str(md0.get("pixel_unit", "nm"))
    elif "pixel_size_nm" in first.calibration:
        px, unit = float(first.calibration["pixel_size_nm"]), "nm"
    else:
        spatial = first.ndim - (1 if first.layer_kwargs.get("rgb") else 0)
        px, unit = float(first.scale[spatial - 1]), str(first.units[spatial - 1])
    return PhaseResult(arrays=arrays, pixel_size=px, pixel_unit=unit, array_units=units, metadata=metadata)


# ---------------------------------------------------------------------------------- layers


def _layer_json(data: Any, meta: dict, layer_type: str) -> dict:
    """Everything our reader needs to rebuild the layer, JSON-able."""
    nd = int(np.ndim(data))
    rgb = bool(meta.get("rgb")) and layer_type == "image"
    if layer_type == "vectors":
        spatial = int(np.shape(data)[-1]) if nd == 3 else 2
    else:
        spatial = nd - (1 if rgb else 0)
    scale = _per_axis(meta.get("scale"), spatial, 1.0, float)
    translate = _per_axis(meta.get("translate"), spatial, 0.0, float)
    units = _per_axis(meta.get("units"), spatial, "pixel", unit_to_str)
    metadata = _jsonable(dict(meta.get("metadata") or {}))
    kwargs: dict = {}
    for key in _KWARGS_KEPT.get(layer_type, ()):
        if key not in meta or meta[key] is None:
            continue
        value = _simple(meta[key], key)
        if value is not None:
            kwargs[key] = value
    if rgb:
        kwargs["rgb"] = True
    return {
        "format": LAYERS_FORMAT,
        "version": 1,
        "name": str(meta.get("name") or layer_type),
        "layer_type": layer_type,
        "scale": scale,
        "units": units,
        "translate": translate,
        "metadata": metadata,
        "kwargs": kwargs,
    }


def _per_axis(value: Any, n: int, default: Any, conv: Any) -> list:
    if value is None:
        return [default] * n
    if isinstance(value, str):
        value = [value] * n
    vals = [conv(v) for v in list(value)]
    if len(vals) >= n:
        return vals[-n:]
    return [default] * (n - len(vals)) + vals


def _simple(value: Any, key: str) -> Any:
    """A display setting as plain JSON, or None where it does not translate (custom colormaps)."""
    if key == "colormap":
        if isinstance(value, str):
            return value
        name = value.get("name") if isinstance(value, dict) else getattr(value, "name", None)
        return str(name) if name else None
    if key == "edge_color":
        return value if isinstance(value, str) else None
    value = getattr(value, "value", value)  # enums
    value = _jsonable(value)
    if isinstance(value, str) and value.startswith("<array"):
        return None
    return value


# ------------------------------------------------------------------------------------- TIFF


def _write_tiff(path: Path, data: Any, meta: dict) -> str:
    import tifffile

    path = Path(path)
    info = _layer_json(data, meta, "image")
    rgb = bool(info["kwargs"].get("rgb"))
    arr = np.asarray(data)
    if not rgb:
        arr = arr.astype(np.float32, copy=False)
    text = json.dumps(info, ensure_ascii=True)
    spatial = arr.ndim - (1 if rgb else 0)
    sy, sx = info["scale"][spatial - 2], info["scale"][spatial - 1]
    ij_unit, factor = _imagej_unit(info["units"][spatial - 1])
    extratags = [(TIFF_JSON_TAG, "s", 0, text, True)]
    kwargs: dict = {}
    if ij_unit is not None and sx > 0 and sy > 0:
        kwargs["resolution"] = (1.0 / (sx * factor), 1.0 / (sy * factor))
    imagej = (not rgb) and 2 <= arr.ndim <= 5
    if imagej:
        axes = {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TZCYX"}[arr.ndim]
        ij_meta: dict = {"axes": axes}
        if ij_unit is not None:
            ij_meta["unit"] = ij_unit
        if arr.ndim >= 3 and info["units"][spatial - 3] == info["units"][spatial - 1]:
            ij_meta["spacing"] = float(info["scale"][spatial - 3]) * factor
        tifffile.imwrite(path, arr, imagej=True, metadata=ij_meta, extratags=extratags, **kwargs)
    else:
        if rgb:
            kwargs["photometric"] = "rgb"
        if "resolution" in kwargs:
            kwargs["resolutionunit"] = "NONE"
        tifffile.imwrite(path, arr, metadata=None, extratags=extratags, **kwargs)
    return str(path)


def _imagej_unit(unit: str) -> tuple[str | None, float]:
    """ImageJ's unit string (ASCII) for ``unit`` and the factor from ``unit`` to it."""
    fam = _unit_family(unit)
    if fam is None:
        return None, 1.0
    family, f = fam
    if family == "length":
        return "nm", f
    if family == "recip":
        return "1/nm", f
    return "mrad", f


# ------------------------------------------------------------------------------------- HDF5


def _write_h5(path: Path, layers: list[tuple], *, result_info: dict | None = None,
              array_names: list[str] | None = None) -> str:
    import h5py

    from .. import __version__

    path = Path(path)
    used: set[str] = set()
    # HDF5 never writes to the disk itself: a failing write (disk full) leaves the HDF5 library in a
    # state that crashes the interpreter at exit. The file is built in memory and written by Python.
    buffer = io.BytesIO()
    f = h5py.File(buffer, "w", track_order=True)
    try:
        f.attrs[FORMAT_ATTR] = RESULT_FORMAT if result_info is not None else LAYERS_FORMAT
        f.attrs["napari_phase_version"] = __version__
        if result_info is not None:
            f.attrs["result_json"] = json.dumps(result_info, ensure_ascii=True)
        for i, layer in enumerate(layers):
            layer = tuple(layer)
            data = layer[0]
            meta = (layer[1] if len(layer) > 1 else None) or {}
            layer_type = str((layer[2] if len(layer) > 2 else None) or "image")
            info = _layer_json(data, meta, layer_type)
            key = _unique(_sanitise(info["name"]), used)
            dset = _create(f, key, data, layer_type)
            dset.attrs["name"] = info["name"]
            dset.attrs["layer_type"] = layer_type
            dset.attrs["scale"] = np.asarray(info["scale"], dtype=float)
            dset.attrs["translate"] = np.asarray(info["translate"], dtype=float)
            dset.attrs["units"] = json.dumps(info["units"], ensure_ascii=False)
            dset.attrs["metadata_json"] = json.dumps(info["metadata"], ensure_ascii=False)
            dset.attrs["layer_json"] = json.dumps(info, ensure_ascii=True)
            if array_names is not None and i < len(array_names):
                dset.attrs["array_name"] = array_names[i]
            colors = meta.get("edge_color") if layer_type == "vectors" else None
            if colors is not None and not isinstance(colors, str):
                colors = np.asarray(colors, dtype=np.float32)
                if colors.ndim == 2 and colors.shape[0] == np.shape(data)[0]:
                    companion = f.create_dataset(_unique(f"{key}__edge_color", used), data=colors)
                    companion.attrs["companion_of"] = key
    finally:
        f.close()
    with open(path, "wb") as fh:
        fh.write(buffer.getbuffer())
    return str(path)


def _create(f: Any, key: str, data: Any, layer_type: str) -> Any:
    dtype = np.dtype(getattr(data, "dtype", np.asarray(data).dtype))
    if layer_type == "vectors":
        dtype = np.dtype(np.float32)
    elif layer_type == "labels":
        if dtype.kind not in "iu":
            dtype = np.dtype(np.int32)
    elif dtype.kind == "f" and dtype.itemsize > 4:
        dtype = np.dtype(np.float32)
    elif dtype.kind == "b":
        dtype = np.dtype(np.uint8)
    shape = tuple(int(s) for s in np.shape(data))
    opts: dict = {}
    if int(np.prod(shape)) > 4096:
        opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if hasattr(data, "compute") and hasattr(data, "store"):  # dask: write block by block
        dset = f.create_dataset(key, shape=shape, dtype=dtype, **opts)
        data.astype(dtype).store(dset, lock=True)
        return dset
    return f.create_dataset(key, data=np.asarray(data).astype(dtype, copy=False), **opts)


def _sanitise(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.\-]+", "_", str(name)).strip("_.")
    return s or "layer"


def _unique(key: str, used: set) -> str:
    out, i = key, 2
    while out in used:
        out = f"{key}_{i}"
        i += 1
    used.add(out)
    return out
