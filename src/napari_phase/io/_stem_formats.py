"""4D-STEM HDF5 layouts the generic walker gets wrong, read lazily with their calibration.

* **Dectris Arina** (NeXus ``*_master.h5`` with ``entry/data/data_00000N`` external links to
  bitshuffle-LZ4 files, needs ``hdf5plugin``; scan shape, step and voltage from the sibling
  ``<name>.h5`` "STEM Metadata" group). Frames become (scan_y, scan_x, ky, kx); uint32 counts are
  read as uint16 when the detector's saturation value fits (as the Arina software does).
* **Prismatic EMD** (``4DSTEM_simulation/data/datacubes/CBED_array_depthNNNN``): a depth series of
  4D-STEM datacubes, one per output thickness, stacked to (depth, scan_y, scan_x, ky, kx). The
  arrays are stored (R_x, R_y, Q_x, Q_y) and are transposed to our (y, x) order. Prismatic works in
  Å: its dim vectors say "[n_m]", but the probe step in its own simulation parameters (``rx``, Å)
  equals the dim spacing, and 1/(Q spacing) equals the simulated cell (5.43 Å for Si), so the
  numbers are Å and 1/Å (a reader that trusts the label makes the scan 10x too coarse).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._context import _Ctx
from ._dataset import Dataset


def _s(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _s(value.item())
    return str(value)


def _num(value: Any) -> float | None:
    try:
        arr = np.asarray(value, dtype=float).ravel()
        return float(arr[0]) if arr.size else None
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- Arina


def is_arina(f: Any) -> bool:
    try:
        desc = _s(f["entry/instrument/detector/description"][()]) if "entry/instrument/detector/description" in f else ""
        return "arina" in desc.lower() and "entry/data" in f
    except Exception:  # noqa: BLE001
        return False


def _arina_scan_metadata(master: Path) -> dict:
    import h5py

    meta_path = master.with_name(master.name.replace("_master.h5", ".h5"))
    if meta_path == master or not meta_path.is_file():
        return {}
    try:
        with h5py.File(meta_path, "r") as g:
            if "STEM Metadata" not in g:
                return {}
            return {str(k): v for k, v in g["STEM Metadata"].attrs.items()}
    except Exception:  # noqa: BLE001 - the metadata file is optional
        return {}


def load_arina(f: Any, ctx: _Ctx) -> list[Dataset]:
    """The Arina scan as one lazy-when-large 4D-STEM dataset (the HDF5 file stays open when lazy)."""
    import hdf5plugin  # noqa: F401 - registers the bitshuffle-LZ4 filter

    from ..jobs import InputError

    group = f["entry/data"]
    dsets = [group[k] for k in sorted(group) if hasattr(group[k], "shape")]
    if not dsets:
        raise InputError(f"Cannot read {ctx.path.name}: the Arina master file links no data files "
                         "(are the *_data_00000N.h5 files next to it?)")
    det = f["entry/instrument/detector"]
    sat = _num(det["saturation_value"][()]) if "saturation_value" in det else None
    dtype = np.dtype(dsets[0].dtype)
    if dtype == np.uint32 and sat is not None and sat < 2**16:
        dtype = np.dtype(np.uint16)
    n = sum(int(d.shape[0]) for d in dsets)
    ky, kx = (int(s) for s in dsets[0].shape[1:])
    md = _arina_scan_metadata(ctx.path)
    ny, nx = _num(md.get("NumPixelsY")), _num(md.get("NumPixelsX"))
    if ny and nx and int(ny) * int(nx) == n:
        scan = (int(ny), int(nx))
    elif int(round(n**0.5)) ** 2 == n:
        scan = (int(round(n**0.5)),) * 2
    else:
        scan = None
    nbytes = n * ky * kx * dtype.itemsize
    if ctx.want_lazy(nbytes):
        import dask.array as da

        parts = [da.from_array(d, chunks=(1, ky, kx), lock=True, name=False) for d in dsets]
        data = da.concatenate(parts, axis=0).astype(dtype)
    else:
        data = np.concatenate([np.asarray(d[()]).astype(dtype, copy=False) for d in dsets], axis=0)
    cal: dict = {}
    energy = _num(md.get("High Tension"))
    if energy is None and "detectorSpecific/photon_energy" in det:
        energy = _num(det["detectorSpecific/photon_energy"][()])
    if energy:
        cal["voltage_kv"] = energy / 1e3
    cl = _num(md.get("Camera Length"))
    if cl:
        cal["camera_length_mm"] = cl * 1e3
    step_nm = _num(md.get("Pixel Size"))
    meta = {"format": "Dectris Arina NeXus", "frames": n, "scan_metadata": {k: _s(v) if isinstance(v, bytes) else
                                                                               _num(v) for k, v in md.items()}}
    if scan is None:
        return [Dataset(data=data, name=ctx.path.stem, kind="stack", scale=(1.0, 1.0, 1.0),
                        units=("pixel",) * 3, axis_names=("frame", "ky", "kx"), calibration=cal, metadata=meta)]
    data = data.reshape(scan + (ky, kx))
    scale = [1.0, 1.0, 1.0, 1.0]
    units = ["pixel"] * 4
    if step_nm:
        cal["scan_step_a"] = step_nm * 10.0
        scale[:2] = [step_nm * 10.0] * 2
        units[:2] = ["Å", "Å"]
    return [Dataset(data=data, name=ctx.path.stem.replace("_master", ""), kind="4dstem", scale=tuple(scale),
                    units=tuple(units), axis_names=("scan_y", "scan_x", "ky", "kx"), calibration=cal, metadata=meta)]


# ----------------------------------------------------------------------------- Prismatic


def is_prismatic(f: Any) -> bool:
    return "4DSTEM_simulation/data/datacubes" in f


def load_prismatic(f: Any, ctx: _Ctx) -> list[Dataset]:
    from ..jobs import InputError

    cubes = f["4DSTEM_simulation/data/datacubes"]
    names = sorted(k for k in cubes if "datacube" in cubes[k])
    if not names:
        raise InputError(f"Cannot read {ctx.path.name}: the Prismatic file holds no 4D-STEM datacube")
    dsets = [cubes[k]["datacube"] for k in names]
    shape0 = dsets[0].shape
    if any(d.shape != shape0 for d in dsets) or len(shape0) != 4:
        raise InputError(f"Cannot read {ctx.path.name}: its Prismatic datacubes differ in shape")
    params = {}
    p = "4DSTEM_simulation/metadata/metadata_0/original/simulation_parameters"
    if p in f:
        params = {str(k): v for k, v in f[p].attrs.items()}
    grp = dsets[0].parent

    def spacing(i: int) -> float | None:
        d = grp.get(f"dim{i}")
        if d is None or d.shape[0] < 2:
            return None
        v = np.asarray(d[()], dtype=float)
        return float(v[1] - v[0])

    rx, qx = spacing(1), spacing(3)
    nbytes = float(np.prod(shape0)) * len(dsets) * dsets[0].dtype.itemsize
    if ctx.want_lazy(nbytes):
        import dask.array as da

        data = da.stack([da.from_array(d, chunks=(1,) + tuple(shape0[1:]), lock=True, name=False) for d in dsets])
        data = data.transpose(0, 2, 1, 4, 3)
    else:
        data = np.stack([np.asarray(d[()]) for d in dsets]).transpose(0, 2, 1, 4, 3)
    cal: dict = {}
    step = _num(params.get("rx")) or rx
    if step:
        cal["scan_step_a"] = step
    if qx:
        cal["detector_inv_a_per_px"] = qx
    if _num(params.get("E")):
        cal["voltage_kv"] = _num(params.get("E"))
    if _num(params.get("sa")):
        cal["semiangle_mrad"] = _num(params.get("sa"))
    if _num(params.get("df")) is not None:
        cal["defocus_nm"] = _num(params.get("df")) / 10.0
    if _num(params.get("C3")) is not None:
        cal["cs_mm"] = _num(params.get("C3")) * 1e-7
    slice_a, every = _num(params.get("s")), _num(params.get("ns"))
    depth_step = slice_a * every if slice_a and every else 1.0
    meta = {"format": "Prismatic EMD (depth series of 4D-STEM)", "depth_step_a": depth_step,
            "datacubes": names, "series_axis": "depth",
            "simulation_parameters": {k: _s(v) if isinstance(v, bytes) else _num(v) for k, v in params.items()}}
    units = ("Å", "Å", "Å", "1/Å", "1/Å") if qx else ("Å", "Å", "Å", "pixel", "pixel")
    scale = (depth_step, step or 1.0, step or 1.0, qx or 1.0, qx or 1.0)
    ds = Dataset(data=data, name=ctx.path.stem, kind="4dstem", scale=scale, units=units,
                 axis_names=("depth", "scan_y", "scan_x", "ky", "kx"), calibration=cal, metadata=meta,
                 layer_kwargs={"axis_labels": ["depth", "scan_y", "scan_x", "ky", "kx"]})
    return [ds]
