"""``.h5`` / ``.hdf5`` / ``.hdf`` and ``.emd``: our result / layer files, HyperSpy and EMD (handed to
rosettasciio), or any file with 2-D+ datasets, walked (EMD dim vectors, py4DSTEM calibration);
dask-backed when large."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..jobs import InputError
from ._calibration import _calibration_from_dict, _unit_family
from ._context import MAX_LAYERS, _Ctx, _one_line
from ._dataset import Dataset, _make_dataset
from ._json import _jsonable, _parse_json
from ._own_format import (
    FORMAT_ATTR,
    LAYERS_FORMAT,
    RESULT_FORMAT,
    _dataset_from_layer_json,
    _result_array_dataset,
    _result_info,
)
from ._rsciio import _load_rsciio
from ._stem_formats import is_arina, is_prismatic, load_arina, load_prismatic


def _load_h5(ctx: _Ctx) -> list[Dataset]:
    import h5py

    p = ctx.path
    _register_filters()
    try:
        f = h5py.File(p, "r")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"Cannot read {p.name}: not a valid HDF5 file ({_one_line(exc)})") from exc
    keep_open = False
    try:
        attrs = f.attrs
        if is_arina(f) or is_prismatic(f):
            datasets = load_arina(f, ctx) if is_arina(f) else load_prismatic(f, ctx)
        elif "STEM Metadata" in f and len(f) == 1:
            raise InputError(f"Cannot read {p.name}: it holds only the scan metadata of a Dectris Arina "
                             f"acquisition; open {p.stem}_master.h5 (it links the data files and reads this one)")
        elif _attr_str(attrs.get(FORMAT_ATTR)) in (LAYERS_FORMAT, RESULT_FORMAT):
            datasets = _load_our_h5(f, ctx)
        elif _attr_str(attrs.get("file_format")).lower() == "hyperspy":
            f.close()
            return _load_rsciio(ctx, "hspy")
        elif "Data" in f and "Operations" in f or "version_major" in attrs or "emd_group_type" in attrs:
            # Velox / NCEM / EMD 1.0 (py4DSTEM): rosettasciio first, our walker as a fallback.
            f.close()
            try:
                return _load_rsciio(ctx, "emd")
            except InputError:
                return _walk_h5_file(ctx)
        else:
            datasets = _walk_h5(f, ctx)
        keep_open = any(ds.lazy and not isinstance(ds.data, np.memmap) for ds in datasets)
        return datasets
    finally:
        if not keep_open:
            try:
                f.close()
            except Exception:  # noqa: BLE001
                pass


def _load_emd(ctx: _Ctx) -> list[Dataset]:
    """Prismatic (our reader); Velox / NCEM / EMD 1.0 (py4DSTEM) through rosettasciio; our HDF5
    walker if that fails."""
    if _is_prismatic_file(ctx.path):
        return _load_h5(ctx)
    try:
        return _load_rsciio(ctx, "emd")
    except InputError as first:
        try:
            return _walk_h5_file(ctx)
        except Exception:  # noqa: BLE001 - report rosettasciio's reason, the more telling one
            raise first from None


def _register_filters() -> None:
    """Compression filters of detector files (bitshuffle-LZ4 of Dectris, ...), if hdf5plugin is there."""
    try:
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass


def _is_prismatic_file(path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return is_prismatic(f)
    except Exception:  # noqa: BLE001
        return False


def _walk_h5_file(ctx: _Ctx) -> list[Dataset]:
    import h5py

    f = h5py.File(ctx.path, "r")
    datasets: list[Dataset] = []
    try:
        datasets = _walk_h5(f, ctx)
        return datasets
    finally:
        if not any(ds.lazy and not isinstance(ds.data, np.memmap) for ds in datasets):
            f.close()


def _attr_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _attr_str(value.item())
    return str(value)


def _h5_array(dset: Any, ctx: _Ctx) -> Any:
    nbytes = float(np.prod(dset.shape)) * dset.dtype.itemsize
    if not ctx.want_lazy(nbytes):
        return dset[()]
    import dask.array as da

    if dset.chunks is not None:
        chunks = dset.chunks
    elif dset.ndim >= 3:
        chunks = ("auto",) * (dset.ndim - 2) + (-1, -1)
    else:
        chunks = "auto"
    return da.from_array(dset, chunks=chunks, lock=True, name=False)


def _load_our_h5(f: Any, ctx: _Ctx) -> list[Dataset]:
    import h5py

    result = None
    if "result_json" in f.attrs:
        result = _result_info(_parse_json(_attr_str(f.attrs["result_json"]), ctx.path))
    out = []
    for key in f:
        dset = f[key]
        if not isinstance(dset, h5py.Dataset) or "companion_of" in dset.attrs:
            continue
        data = _h5_array(dset, ctx)
        if result is not None and "array_name" in dset.attrs and "layer_json" not in dset.attrs:
            out.append(_result_array_dataset(_attr_str(dset.attrs["array_name"]), data, result))
            continue
        info = _parse_json(_attr_str(dset.attrs.get("layer_json", "{}")), ctx.path)
        info.setdefault("name", key)
        colors = f.get(f"{key}__edge_color")
        if colors is not None and isinstance(colors, h5py.Dataset):
            info.setdefault("kwargs", {})["edge_color"] = np.asarray(colors[()])
        out.append(_dataset_from_layer_json(data, info, ctx.path))
    return out


def _walk_h5(f: Any, ctx: _Ctx) -> list[Dataset]:
    import h5py

    found: list[tuple[str, Any]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim >= 2 and obj.dtype.kind in "biufc" and min(obj.shape) > 0:
            found.append((name, obj))

    f.visititems(visit)
    if not found:
        raise InputError(f"Cannot read {ctx.path.name}: the HDF5 file holds no image arrays (no numeric dataset "
                         "with two or more dimensions)")
    # 4-D (4D-STEM) first, largest first; the rest in file order.
    four = sorted([x for x in found if x[1].ndim == 4], key=lambda x: -int(np.prod(x[1].shape)))
    rest = [x for x in found if x[1].ndim != 4]
    file_cal = _h5_py4dstem_calibration(f)
    out = []
    for name, dset in (four + rest)[:MAX_LAYERS]:
        attrs = _h5_attrs_chain(dset)
        cal = {**file_cal, **_calibration_from_dict(attrs)}
        axes = _emd_dims(dset)
        data = _h5_array(dset, ctx)
        label = name if dset.name.split("/")[-1] != "data" else name.rsplit("/", 1)[0]
        out.append(_make_dataset(data, label or name, axes=axes, calibration=cal,
                                 metadata={"hdf5_path": dset.name, "attrs": attrs}))
    return out


def _h5_attrs_chain(dset: Any) -> dict:
    """Attributes of a dataset and its parent groups (nearest wins), JSON-friendly."""
    out: dict = {}
    node = dset
    chain = []
    while True:
        chain.append(node)
        if node.name == "/":
            break
        node = node.parent
    for obj in reversed(chain):
        for k, v in obj.attrs.items():
            out[str(k)] = _jsonable(v)
    return out


def _emd_dims(dset: Any) -> list[dict] | None:
    """EMD-style dim vectors (dim1..dimN or dim0..dimN-1 next to the dataset) as axes dicts."""
    grp = dset.parent
    start = 0 if "dim0" in grp else 1
    axes = []
    for i in range(dset.ndim):
        dim = grp.get(f"dim{i + start}")
        if dim is None or getattr(dim, "ndim", 0) != 1 or dim.shape[0] < 1:
            return None
        vec = np.asarray(dim[()], dtype=float) if dim.dtype.kind in "iuf" else None
        if vec is None:
            return None
        if vec.shape[0] not in (2, dset.shape[i]) and dset.shape[i] > 1:
            return None
        scale = float(vec[1] - vec[0]) if vec.shape[0] >= 2 else 1.0
        axes.append({"name": _attr_str(dim.attrs.get("name", "")), "units": _attr_str(dim.attrs.get("units", "")),
                     "scale": scale or 1.0, "offset": float(vec[0])})
    return axes


def _h5_py4dstem_calibration(f: Any) -> dict:
    """py4DSTEM keeps R/Q pixel sizes in a 'calibration' metadata group."""
    import h5py

    cal: dict = {}
    groups: list = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group) and name.split("/")[-1] == "calibration":
            groups.append(obj)

    try:
        f.visititems(visit)
    except Exception:  # noqa: BLE001
        return cal
    for g in groups:
        a = {k: _jsonable(v) for k, v in g.attrs.items()}
        if "R_pixel_size" in a:
            fam = _unit_family(str(a.get("R_pixel_units", "A")))
            if fam and fam[0] == "length":
                cal["scan_step_a"] = float(a["R_pixel_size"]) * fam[1] * 10
        if "Q_pixel_size" in a:
            fam = _unit_family(str(a.get("Q_pixel_units", "A^-1")))
            if fam and fam[0] == "angle":
                cal["detector_mrad_per_px"] = float(a["Q_pixel_size"]) * fam[1]
            elif fam and fam[0] == "recip":
                cal["detector_inv_a_per_px"] = float(a["Q_pixel_size"]) * fam[1] / 10
    return cal
