"""Readers: TEM / LTEM / 4D-STEM files to calibrated arrays and napari layers.

Three levels, each built on the one below:

* :func:`load_all` / :func:`load` -> :class:`Dataset` (array + axes + calibration + the file's own
  metadata). No napari import: the CLI and scripts use these.
* :func:`read` -> napari ``LayerData`` tuples ``(data, kwargs, layer_type)`` with ``scale``,
  ``units``, ``metadata`` (calibration keys flat, ``kind``, ``source_path``, a summary of the
  file's metadata).
* :func:`get_reader` -> the npe2 reader contribution (a callable, or None for files we do not handle).

Formats: ``.npy`` (memory-mapped when large), ``.npz`` (one layer per array; our result and sample
files carry their calibration in a ``metadata_json`` entry), ``.tif``/``.tiff`` (our own JSON tag,
ImageJ and OME calibration), ``.h5``/``.hdf5``/``.hdf`` (our result files, HyperSpy, EMD 1.0 /
py4DSTEM ``datacube``, or any file with 2-D+ datasets, walked), ``.zarr`` (array or group, always
lazy through dask), and through rosettasciio ``.dm3``/``.dm4``, ``.emd`` (Velox, NCEM, py4DSTEM),
``.mib``, ``.blo``, ``.hspy``.

Arrays larger than ``lazy_threshold_bytes`` (default :data:`LAZY_THRESHOLD_BYTES`) are opened lazily
(``np.memmap`` or a dask array) rather than read into memory.

Calibration keys (units in the name): ``pixel_size_nm`` (images; ``pixel_size_y_nm`` if the y
sampling differs), ``scan_step_a`` (4D-STEM scan; ``scan_step_y_a``), ``detector_mrad_per_px``,
``detector_inv_a_per_px`` / ``detector_inv_nm_per_px`` (reciprocal-space sampling), ``voltage_kv``,
``defocus_nm``, ``cs_mm``, ``semiangle_mrad``, ``camera_length_mm``. Layer units: images in nm, 4D-STEM
scan axes in Å, detector axes in mrad or 1/Å.

A file we cannot understand raises :class:`napari_phase.jobs.InputError` with a one-line message
naming the file and the reason.

This module is the public API and the dispatch by file type; the parsers live in private modules
next to it: ``_npy`` (.npy/.npz), ``_tiff``, ``_hdf5`` (.h5 and .emd), ``_zarr``, ``_rsciio``, with
``_dataset`` (:class:`Dataset`), ``_calibration`` (units, axes, calibration keys), ``_own_format``
(the writer's markers, result and layer JSON), ``_json`` and ``_context`` (read context, limits).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..jobs import InputError
from ._calibration import CALIBRATION_KEYS
from ._context import MAX_LAYERS, _Ctx, _one_line
from ._dataset import Dataset, LayerData
from ._hdf5 import _load_emd, _load_h5
from ._json import unit_to_str
from ._npy import _load_npy, _load_npz
from ._own_format import (
    FORMAT_ATTR,
    LAYERS_FORMAT,
    RESULT_FORMAT,
    RESULT_META_KEY,
    TIFF_JSON_TAG,
    result_layer_metadata,
)
from ._rsciio import _load_rsciio
from ._tiff import _load_tiff
from ._zarr import _load_zarr

__all__ = [
    "CALIBRATION_KEYS",
    "FORMAT_ATTR",
    "LAYERS_FORMAT",
    "LAZY_THRESHOLD_BYTES",
    "MAX_LAYERS",
    "RESULT_FORMAT",
    "RESULT_META_KEY",
    "SUPPORTED_EXTENSIONS",
    "TIFF_JSON_TAG",
    "Dataset",
    "InputError",
    "LayerData",
    "get_reader",
    "load",
    "load_all",
    "read",
    "result_layer_metadata",
    "unit_to_str",
]

#: Arrays larger than this open lazily (memory map or dask), in bytes.
LAZY_THRESHOLD_BYTES = 512 * 2**20

_RSCIIO_MODULES = {
    ".dm3": "digitalmicrograph",
    ".dm4": "digitalmicrograph",
    ".mib": "quantumdetector",
    ".blo": "blockfile",
    ".hspy": "hspy",
}
_NATIVE = {".emd": "emd", ".npy": "npy", ".npz": "npz", ".tif": "tiff", ".tiff": "tiff", ".h5": "h5", ".hdf5": "h5",
           ".hdf": "h5", ".zarr": "zarr"}
SUPPORTED_EXTENSIONS = tuple(sorted(set(_NATIVE) | set(_RSCIIO_MODULES)))


# ------------------------------------------------------------------------------- public API


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list] | None:
    """npe2 reader contribution: a reader function for files napari-phase understands, else None.

    Only the extension (or, for a directory, zarr markers) is checked here; a recognised file that
    then fails to parse raises :class:`InputError` from the reader with a one-line message.
    """
    paths = list(path) if isinstance(path, (list, tuple)) else [path]
    if not paths:
        return None
    for p in paths:
        if _format_of(Path(str(p))) is None:
            return None
    return read


def read(path: str | Sequence[str], *, lazy_threshold_bytes: int | None = None) -> list[LayerData]:
    """napari ``LayerData`` tuples for one file (or a list of files)."""
    paths = list(path) if isinstance(path, (list, tuple)) else [path]
    layers: list[LayerData] = []
    for p in paths:
        layers.extend(ds.to_layer_data() for ds in load_all(p, lazy_threshold_bytes=lazy_threshold_bytes))
    return layers


#: Dataset.metadata key naming the dtype the file held where the reader changed it for napari
#: (complex -> amplitude + phase layers, bool -> uint8 labels)
SOURCE_DTYPE_KEY = "napari_phase_source_dtype"


def load(path: str | Path, key: str | None = None, *, lazy_threshold_bytes: int | None = None,
         lazy: bool | None = None, intensities: bool = False) -> Dataset:
    """The main dataset of a file: the one named ``key`` if given, else the first (4-D data first,
    then file order). See :func:`load_all`. ``intensities=True`` (the CLI's methods): refuse data
    the file holds as complex or bool, as the methods' API does, rather than use their conversion."""
    datasets = load_all(path, lazy_threshold_bytes=lazy_threshold_bytes, lazy=lazy)
    if key is None:
        return _intensities(datasets[0], path) if intensities else datasets[0]
    for ds in datasets:
        if ds.name == key or ds.name.split("/")[-1] == key or ds.name.endswith(f" {key}"):
            return _intensities(ds, path) if intensities else ds
    raise InputError(f"Cannot read {Path(path).name}: no array named {key!r} "
                     f"(it has: {', '.join(d.name for d in datasets)})")


def _intensities(ds: Dataset, path) -> Dataset:
    source = (ds.metadata or {}).get(SOURCE_DTYPE_KEY)
    if source is not None:
        what = "complex values (a wave, not intensities)" if "complex" in source else "true/false values (a mask)"
        raise InputError(f"Cannot use {Path(str(path)).name}: it holds {what}, dtype {source}; "
                         "the methods take real intensities (counts)")
    return ds


def load_all(path: str | Path, *, lazy_threshold_bytes: int | None = None, lazy: bool | None = None
             ) -> list[Dataset]:
    """Every image-like array in the file as a :class:`Dataset`.

    ``lazy``: None = lazy for arrays above ``lazy_threshold_bytes`` (default
    :data:`LAZY_THRESHOLD_BYTES`); True = always lazy where the format allows; False = always load.
    Raises :class:`InputError` for unknown, missing, empty or unparsable files.
    """
    p = Path(str(path))
    threshold = LAZY_THRESHOLD_BYTES if lazy_threshold_bytes is None else int(lazy_threshold_bytes)
    _check_kind(p)
    fmt = _format_of(p)
    if fmt is None:
        raise InputError(f"Cannot read {p.name}: unsupported file type {p.suffix or '(no extension)'!r}; "
                         f"napari-phase reads {', '.join(SUPPORTED_EXTENSIONS)}")
    if not p.exists():
        raise InputError(f"Cannot read {p}: file not found")
    if p.is_file() and p.stat().st_size == 0:
        raise InputError(f"Cannot read {p.name}: the file is empty")
    ctx = _Ctx(path=p, threshold=threshold, lazy=lazy)
    try:
        if fmt.startswith("rsciio:"):
            datasets = _load_rsciio(ctx, fmt.split(":", 1)[1])
        else:
            datasets = _LOADERS[fmt](ctx)
    except InputError:
        raise
    except ImportError as exc:
        raise InputError(f"Cannot read {p.name}: a package it needs is missing ({_one_line(exc)})") from exc
    except MemoryError as exc:
        raise InputError(f"Cannot read {p.name}: not enough memory; try a smaller lazy_threshold_bytes") from exc
    except Exception as exc:  # noqa: BLE001 - every parser error becomes one clear line
        raise InputError(f"Cannot read {p.name}: {_one_line(exc)}") from exc
    datasets = _postprocess(datasets, p)
    if not datasets:
        raise InputError(f"Cannot read {p.name}: no image data (no array with two or more dimensions) found")
    return datasets


# --------------------------------------------------------------------------------- dispatch


def _check_kind(p: Path) -> None:
    """Only a regular file or a folder is opened: a FIFO or a device would block the reader (or
    never end); a folder that is not a zarr store is named as a folder, not as a file type."""
    import stat

    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        return  # named below, after the file type
    except OSError as exc:
        raise InputError(f"Cannot read {p}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        if _format_of(p) is None:
            raise InputError(f"Cannot read {p.name}: it is a folder, not a file; napari-phase opens a folder only "
                             "as a .zarr store (give a file inside it)")
        return
    if not stat.S_ISREG(mode):
        raise InputError(f"Cannot read {p.name}: not a regular file (a pipe, socket or device); give a data file")


def _format_of(p: Path) -> str | None:
    suffix = p.suffix.lower()
    if p.is_dir():
        if suffix == ".zarr" or any((p / m).exists() for m in (".zgroup", ".zarray", "zarr.json")):
            return "zarr"
        return None
    if suffix in _NATIVE:
        return _NATIVE[suffix]
    if suffix in _RSCIIO_MODULES:
        return "rsciio:" + _RSCIIO_MODULES[suffix]
    return None


def _postprocess(datasets: list[Dataset], p: Path) -> list[Dataset]:
    out: list[Dataset] = []
    for ds in datasets:
        ds.source = ds.source or str(p)
        if ds.ndim < 2:
            continue
        if ds.layer_type == "image" and np.issubdtype(np.dtype(ds.data.dtype), np.complexfloating):
            ds.metadata = {**(ds.metadata or {}), SOURCE_DTYPE_KEY: str(np.dtype(ds.data.dtype))}
            out.extend(_split_complex(ds))
        elif ds.layer_type == "image" and np.dtype(ds.data.dtype) == np.bool_:
            ds.metadata = {**(ds.metadata or {}), SOURCE_DTYPE_KEY: "bool"}
            ds.layer_type = "labels"
            ds.data = ds.data.astype(np.uint8)
            out.append(ds)
        else:
            out.append(ds)
    if len(out) > MAX_LAYERS:
        out = out[:MAX_LAYERS]
    return out


def _split_complex(ds: Dataset) -> list[Dataset]:
    import dataclasses

    if ds.lazy and not isinstance(ds.data, np.memmap):
        import dask.array as da

        amp, ang = da.absolute(ds.data), da.angle(ds.data)
    else:
        arr = np.asarray(ds.data)
        amp, ang = np.abs(arr), np.angle(arr)
    a = dataclasses.replace(ds, data=amp, name=f"{ds.name} amplitude", layer_kwargs=dict(ds.layer_kwargs))
    b = dataclasses.replace(ds, data=ang, name=f"{ds.name} phase", layer_kwargs=dict(ds.layer_kwargs))
    return [a, b]


_LOADERS: dict[str, Callable[[_Ctx], list[Dataset]]] = {
    "npy": _load_npy,
    "npz": _load_npz,
    "tiff": _load_tiff,
    "h5": _load_h5,
    "emd": _load_emd,
    "zarr": _load_zarr,
}
