"""``.npy`` (memory-mapped when large, calibration from a ``name.json`` sidecar) and ``.npz`` (one
Dataset per array; saved results and samples carry their calibration in ``metadata_json``)."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np

from ..jobs import InputError
from ._calibration import _calibration_from_dict
from ._context import _Ctx
from ._dataset import Dataset, _make_dataset
from ._json import _jsonable, _parse_json
from ._own_format import _result_array_dataset, _result_info


def _load_npy(ctx: _Ctx) -> list[Dataset]:
    p = ctx.path
    with open(p, "rb") as fh:
        if fh.read(6) != b"\x93NUMPY":
            raise InputError(f"Cannot read {p.name}: not a NumPy .npy file (bad header)")
    try:
        mm = np.load(p, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise InputError(f"Cannot read {p.name}: it holds Python objects, not a numeric array") from exc
        raise
    data = mm if ctx.want_lazy(mm.nbytes) else np.array(mm)
    meta = _sidecar_json(p)
    return [_make_dataset(data, p.stem, calibration=_calibration_from_dict(meta), metadata=meta)]


def _sidecar_json(p: Path) -> dict:
    """Calibration from ``name.json`` next to a bare ``.npy`` file, if there is one."""
    side = p.with_suffix(".json")
    if side.is_file():
        try:
            value = json.loads(side.read_text())
            return value if isinstance(value, dict) else {}
        except (OSError, ValueError):
            return {}
    return {}


def _load_npz(ctx: _Ctx) -> list[Dataset]:
    p = ctx.path
    if not zipfile.is_zipfile(p):
        raise InputError(f"Cannot read {p.name}: not a NumPy .npz file (not a zip archive)")
    with np.load(p, allow_pickle=False) as npz:
        keys = list(npz.files)
        info = {}
        if "metadata_json" in keys:
            info = _parse_json(np.asarray(npz["metadata_json"]).item(), p)
        datasets: list[Dataset] = []
        extra_meta: dict = {}
        for key in keys:
            if key == "metadata_json":
                continue
            entry = _npz_member_memmap(p, key) if ctx.lazy is not False else None
            if entry is not None and ctx.want_lazy(entry.nbytes) and entry.ndim >= 2:
                arr = entry
            else:
                try:
                    arr = npz[key]
                except ValueError as exc:
                    raise InputError(f"Cannot read {p.name}: entry {key!r} holds Python objects") from exc
            if arr.ndim < 2 or arr.dtype.kind not in "biufc":
                if arr.size <= 64:
                    extra_meta[key] = _jsonable(np.asarray(arr))
                continue
            datasets.append((key, arr))
    result = _result_info(info)
    out = []
    for key, arr in datasets:
        if result is not None:
            out.append(_result_array_dataset(key, arr, result))
        else:
            out.append(_make_dataset(arr, key, calibration=_calibration_from_dict(info),
                                     metadata={**info, **extra_meta}))
    return out


def _npz_member_memmap(p: Path, key: str) -> np.memmap | None:
    """Memory-map an uncompressed (np.savez) member of an .npz; None where not possible."""
    try:
        with zipfile.ZipFile(p) as zf:
            zinfo = zf.getinfo(f"{key}.npy")
        if zinfo.compress_type != zipfile.ZIP_STORED:
            return None
        with open(p, "rb") as f:
            f.seek(zinfo.header_offset)
            header = f.read(30)
            sig, *_, name_len, extra_len = struct.unpack("<4s5H3I2H", header)
            if sig != b"PK\x03\x04":
                return None
            f.seek(zinfo.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
        if dtype.hasobject:
            return None
        return np.memmap(p, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    except (KeyError, OSError, ValueError, struct.error):
        return None
