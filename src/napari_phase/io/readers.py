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
"""

from __future__ import annotations

import importlib
import json
import math
import struct
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..jobs import InputError

#: Arrays larger than this open lazily (memory map or dask), in bytes.
LAZY_THRESHOLD_BYTES = 512 * 2**20

#: Marker attribute / JSON "format" value of files our writer produces.
LAYERS_FORMAT = "napari-phase-layers"
RESULT_FORMAT = "napari-phase-result"
FORMAT_ATTR = "napari_phase_format"
#: Private TIFF tag holding our JSON (name, scale, units, metadata) next to the ImageJ tags.
TIFF_JSON_TAG = 65000
#: Key of the PhaseResult metadata (method, parameters, ...) inside layer metadata (the same schema
#: as widgets/_layers.py: {"napari_phase": ..., "unit", "array_name", "pixel_size", "pixel_unit"}).
RESULT_META_KEY = "napari_phase"

#: Calibration keys the readers recognise in files (attributes, JSON) and report.
CALIBRATION_KEYS = (
    "pixel_size_nm",
    "pixel_size_y_nm",
    "scan_step_a",
    "scan_step_y_a",
    "detector_mrad_per_px",
    "detector_inv_a_per_px",
    "detector_inv_nm_per_px",
    "voltage_kv",
    "defocus_nm",
    "cs_mm",
    "semiangle_mrad",
    "camera_length_mm",
    "divergence_mrad",
    "defocus_spread_nm",
    "magnification",
)

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

#: Most layers one file produces (a py4DSTEM file can hold many small arrays).
MAX_LAYERS = 32
#: Layer metadata keeps the file's original metadata only up to this JSON size (characters).
_ORIGINAL_METADATA_BUDGET = 64_000

LayerData = tuple  # (data, kwargs, layer_type)


# ------------------------------------------------------------------------------------ Dataset


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


def load(path: str | Path, key: str | None = None, *, lazy_threshold_bytes: int | None = None,
         lazy: bool | None = None) -> Dataset:
    """The main dataset of a file: the one named ``key`` if given, else the first (4-D data first,
    then file order). See :func:`load_all`."""
    datasets = load_all(path, lazy_threshold_bytes=lazy_threshold_bytes, lazy=lazy)
    if key is None:
        return datasets[0]
    for ds in datasets:
        if ds.name == key or ds.name.split("/")[-1] == key or ds.name.endswith(f" {key}"):
            return ds
    raise InputError(f"Cannot read {Path(path).name}: no array named {key!r} "
                     f"(it has: {', '.join(d.name for d in datasets)})")


def load_all(path: str | Path, *, lazy_threshold_bytes: int | None = None, lazy: bool | None = None
             ) -> list[Dataset]:
    """Every image-like array in the file as a :class:`Dataset`.

    ``lazy``: None = lazy for arrays above ``lazy_threshold_bytes`` (default
    :data:`LAZY_THRESHOLD_BYTES`); True = always lazy where the format allows; False = always load.
    Raises :class:`InputError` for unknown, missing, empty or unparsable files.
    """
    p = Path(str(path))
    threshold = LAZY_THRESHOLD_BYTES if lazy_threshold_bytes is None else int(lazy_threshold_bytes)
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


@dataclass
class _Ctx:
    path: Path
    threshold: int
    lazy: bool | None

    def want_lazy(self, nbytes: float) -> bool:
        if self.lazy is not None:
            return bool(self.lazy)
        return nbytes > self.threshold


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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    if not msg:
        msg = type(exc).__name__
    elif type(exc).__name__ not in ("InputError", "ValueError", "OSError"):
        msg = f"{msg} ({type(exc).__name__})"
    return msg[:300]


def _postprocess(datasets: list[Dataset], p: Path) -> list[Dataset]:
    out: list[Dataset] = []
    for ds in datasets:
        ds.source = ds.source or str(p)
        if ds.ndim < 2:
            continue
        if ds.layer_type == "image" and np.issubdtype(np.dtype(ds.data.dtype), np.complexfloating):
            out.extend(_split_complex(ds))
        elif ds.layer_type == "image" and np.dtype(ds.data.dtype) == np.bool_:
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


# -------------------------------------------------------------------------------- .npy .npz


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


def _parse_json(text: Any, p: Path) -> dict:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        value = json.loads(str(text))
    except ValueError as exc:
        raise InputError(f"Cannot read {p.name}: its metadata_json is not valid JSON ({exc})") from exc
    return value if isinstance(value, dict) else {"value": value}


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


# ------------------------------------------------------------------------------------- TIFF


def _load_tiff(ctx: _Ctx) -> list[Dataset]:
    import tifffile

    p = ctx.path
    try:
        tif = tifffile.TiffFile(p)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"Cannot read {p.name}: not a valid TIFF file ({_one_line(exc)})") from exc
    with tif:
        if not tif.series:
            raise InputError(f"Cannot read {p.name}: the TIFF holds no image")
        series = tif.series[0]
        page = tif.pages[0]
        nbytes = float(np.prod(series.shape)) * np.dtype(series.dtype).itemsize
        ours = _tiff_json(page)
        ij = tif.imagej_metadata or {}
        ome = tif.ome_metadata
        axes = series.axes
        data = None
        if ctx.want_lazy(nbytes):
            try:
                data = tifffile.memmap(p, mode="r")
            except Exception:  # noqa: BLE001 - compressed/tiled: fall back to reading
                data = None
        if data is None:
            data = series.asarray()
        xres = _tag_value(page, "XResolution")
        yres = _tag_value(page, "YResolution")
    rgb = axes.endswith("S") and data.shape[-1] in (3, 4)
    if ours is not None:
        return [_dataset_from_layer_json(data, ours, p)]
    meta: dict = {"tiff_axes": axes}
    scale = [1.0] * data.ndim
    units = ["pixel"] * data.ndim
    spatial = data.ndim - (1 if rgb else 0)
    found = False
    if ij:
        meta["imagej"] = {k: v for k, v in ij.items() if isinstance(v, (str, int, float, bool))}
        unit = str(ij.get("unit", "")).replace("\\u00B5", "µ")
        if unit and unit.lower() not in ("pixel", "pixels", "inch") and xres and yres:
            px = _res_to_size(xres)
            py = _res_to_size(yres)
            if px and py:
                scale[spatial - 1], scale[spatial - 2] = px, py
                units[spatial - 1] = units[spatial - 2] = unit
                found = True
        if found and spatial >= 3 and "spacing" in ij:
            scale[spatial - 3], units[spatial - 3] = float(ij["spacing"]), unit
    if not found and ome:
        sizes = _ome_pixel_sizes(ome)
        if sizes:
            meta["ome"] = sizes
            (px, ux), (py, uy) = sizes["x"], sizes["y"]
            scale[spatial - 1], scale[spatial - 2] = px, py
            units[spatial - 1], units[spatial - 2] = ux, uy
    return [_make_dataset(data, p.stem, scale=scale, units=units, metadata=meta, rgb=rgb)]


def _tag_value(page: Any, name: str) -> Any:
    tag = page.tags.get(name)
    return None if tag is None else tag.value


def _res_to_size(res: Any) -> float | None:
    try:
        num, den = res
        return float(den) / float(num) if num else None
    except (TypeError, ValueError):
        try:
            return 1.0 / float(res) if float(res) else None
        except (TypeError, ValueError):
            return None


def _tiff_json(page: Any) -> dict | None:
    tag = page.tags.get(TIFF_JSON_TAG)
    candidates = [tag.value] if tag is not None else []
    desc = _tag_value(page, "ImageDescription")
    if isinstance(desc, str) and desc.lstrip().startswith("{"):
        candidates.append(desc)
    for text in candidates:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(value, dict) and value.get("format") in (LAYERS_FORMAT, RESULT_FORMAT):
            return value
    return None


def _ome_pixel_sizes(xml: str) -> dict | None:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.endswith("Pixels"):
            a = el.attrib
            if "PhysicalSizeX" not in a:
                return None
            px = float(a["PhysicalSizeX"])
            py = float(a.get("PhysicalSizeY", px))
            return {"x": (px, a.get("PhysicalSizeXUnit", "µm")), "y": (py, a.get("PhysicalSizeYUnit", "µm"))}
    return None


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


# ------------------------------------------------------------------------------------- HDF5


def _load_h5(ctx: _Ctx) -> list[Dataset]:
    import h5py

    p = ctx.path
    try:
        f = h5py.File(p, "r")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"Cannot read {p.name}: not a valid HDF5 file ({_one_line(exc)})") from exc
    keep_open = False
    try:
        attrs = f.attrs
        if _attr_str(attrs.get(FORMAT_ATTR)) in (LAYERS_FORMAT, RESULT_FORMAT):
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
    """Velox / NCEM / EMD 1.0 (py4DSTEM) through rosettasciio; our HDF5 walker if that fails."""
    try:
        return _load_rsciio(ctx, "emd")
    except InputError as first:
        try:
            return _walk_h5_file(ctx)
        except Exception:  # noqa: BLE001 - report rosettasciio's reason, the more telling one
            raise first from None


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


# ------------------------------------------------------------------------------------- zarr


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


# ---------------------------------------------------------------------------------- rsciio


def _load_rsciio(ctx: _Ctx, module: str) -> list[Dataset]:
    p = ctx.path
    try:
        mod = importlib.import_module(f"rsciio.{module}")
    except ImportError as exc:
        raise InputError(f"Cannot read {p.name}: needs rosettasciio (pip install rosettasciio)") from exc
    size = _path_size(p)
    lazy = ctx.want_lazy(size)
    try:
        signals = mod.file_reader(str(p), lazy=lazy)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"Cannot read {p.name}: rosettasciio ({module}) could not parse it: {_one_line(exc)}"
                         ) from exc
    out = []
    for i, sig in enumerate(signals):
        data = sig.get("data")
        if data is None or np.ndim(data) < 2:
            continue
        rgb = False
        if getattr(data, "dtype", None) is not None and data.dtype.names:
            names = [n for n in ("R", "G", "B", "A") if n in data.dtype.names]
            if len(names) >= 3:
                data = np.stack([np.asarray(data[n]) for n in names], axis=-1)
                rgb = True
            else:
                continue
        axes = sorted(sig.get("axes") or [], key=lambda a: a.get("index_in_array", 0)) if all(
            "index_in_array" in a for a in sig.get("axes") or []) else list(sig.get("axes") or [])
        metadata = sig.get("metadata") or {}
        cal = _calibration_from_rsciio_metadata(metadata, sig.get("original_metadata") or {})
        title = str((metadata.get("General") or {}).get("title") or "") or (p.stem if len(signals) == 1
                                                                             else f"{p.stem} {i}")
        if len(axes) != np.ndim(data) - (1 if rgb else 0):
            axes = None
        nav = [bool(a.get("navigate")) for a in axes] if axes else []
        kind = None
        if axes and np.ndim(data) == 4 and sum(nav) == 2 and nav[:2] == [True, True]:
            kind = "4dstem"
        elif axes and np.ndim(data) == 3 and sum(nav) == 2 and not nav[2]:
            kind = "spectrum_image"
        out.append(_make_dataset(data, title, axes=axes, calibration=cal, kind=kind, rgb=rgb,
                                 metadata={"metadata": metadata,
                                           "original_metadata": sig.get("original_metadata") or {}}))
    if not out and signals:
        raise InputError(f"Cannot read {p.name}: it holds only 1-D signals (spectra), no images")
    return out


def _path_size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def _calibration_from_rsciio_metadata(md: dict, original: dict) -> dict:
    cal: dict = {}
    tem = ((md.get("Acquisition_instrument") or {}).get("TEM")) or {}
    if _is_number(tem.get("beam_energy")):
        cal["voltage_kv"] = float(tem["beam_energy"])
    if _is_number(tem.get("convergence_angle")):
        cal["semiangle_mrad"] = float(tem["convergence_angle"])
    if _is_number(tem.get("camera_length")):
        cal["camera_length_mm"] = float(tem["camera_length"])
    if _is_number(tem.get("magnification")):
        cal["magnification"] = float(tem["magnification"])
    cs = _find_key(original, ("Cs(mm)", "Cs (mm)"), depth=6)
    if _is_number(cs):
        cal["cs_mm"] = float(cs)
    for k in CALIBRATION_KEYS:
        if k in tem and _is_number(tem[k]):
            cal[k] = float(tem[k])
    return cal


def _find_key(tree: Any, keys: tuple, depth: int) -> Any:
    if depth < 0 or not isinstance(tree, dict):
        return None
    for k in keys:
        if k in tree:
            return tree[k]
    for v in tree.values():
        if isinstance(v, dict):
            found = _find_key(v, keys, depth - 1)
            if found is not None:
                return found
    return None


# -------------------------------------------------------------------- units and calibration


def _clean_unit(u: Any) -> str:
    s = str(u if u is not None else "").strip()
    for a, b in (("\\u00B5", "µ"), ("\\u00b5", "µ"), ("μ", "µ"), ("⁻¹", "^-1"), ("**", "^"), (" ", "")):
        s = s.replace(a, b)
    return s


_LENGTH_NM = {"nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "nanometre": 1.0, "å": 0.1, "a": 0.1,
              "angstrom": 0.1, "angstroms": 0.1, "ang": 0.1, "pm": 1e-3, "picometer": 1e-3, "µm": 1e3,
              "um": 1e3, "micron": 1e3, "microns": 1e3, "micrometer": 1e3, "mm": 1e6, "millimeter": 1e6,
              "cm": 1e7, "m": 1e9, "meter": 1e9, "metre": 1e9}
_ANGLE_MRAD = {"mrad": 1.0, "milliradian": 1.0, "rad": 1e3, "radian": 1e3, "µrad": 1e-3, "urad": 1e-3,
               "deg": math.pi / 180 * 1e3, "degree": math.pi / 180 * 1e3, "degrees": math.pi / 180 * 1e3}


def _unit_family(u: Any) -> tuple[str, float] | None:
    """("length", nm per unit) | ("recip", 1/nm per unit) | ("angle", mrad per unit) | None."""
    s = _clean_unit(u).lower()
    if not s:
        return None
    if s in _LENGTH_NM:
        return ("length", _LENGTH_NM[s])
    if s in _ANGLE_MRAD:
        return ("angle", _ANGLE_MRAD[s])
    inner = None
    if s.startswith("1/"):
        inner = s[2:]
    elif s.endswith("^-1"):
        inner = s[:-3]
    elif s.endswith("-1"):
        inner = s[:-2]
    if inner is not None and inner in _LENGTH_NM:
        return ("recip", 1.0 / _LENGTH_NM[inner])
    return None


def _valid_pint_unit(u: str) -> bool:
    if not u:
        return False
    try:
        import pint

        pint.get_application_registry().parse_units(u)
        return True
    except Exception:  # noqa: BLE001
        return False


def _normalise_axis(scale: float, offset: float, unit: Any, *, real_space_unit: str) -> tuple[float, float, str, str]:
    """(scale, offset, unit, family) in our canonical units: real space nm or Å, reciprocal 1/nm or 1/Å,
    angles mrad; other units kept where pint understands them, else "pixel"."""
    fam = _unit_family(unit)
    if fam is None:
        s = _clean_unit(unit)
        if s and s.lower() not in ("<undefined>", "undefined", "none", "pixel", "pixels", "px") and _valid_pint_unit(s):
            return scale, offset, s, "other"
        return scale, offset, "pixel", "pixel"
    family, f = fam
    if family == "length":
        g = f if real_space_unit == "nm" else f * 10.0
        return scale * g, offset * g, real_space_unit, family
    if family == "recip":
        g = f if real_space_unit == "nm" else f / 10.0
        return scale * g, offset * g, f"1/{real_space_unit}", family
    return scale * f, offset * f, "mrad", family


def _guess_kind(shape: tuple, rgb: bool = False) -> str:
    nd = len(shape)
    if rgb:
        return "rgb"
    if nd == 2:
        return "image"
    if nd == 4:
        return "4dstem"
    return "stack"


def _default_axis_names(kind: str, nd: int) -> tuple:
    if kind == "4dstem" and nd == 4:
        return ("scan_y", "scan_x", "ky", "kx")
    if kind == "rgb":
        return tuple(f"dim{i}" for i in range(nd - 3)) + ("y", "x", "channel")
    if kind == "spectrum_image" and nd == 3:
        return ("y", "x", "energy")
    if nd == 2:
        return ("y", "x")
    if nd == 3:
        return ("frame", "y", "x")
    return tuple(f"dim{i}" for i in range(nd - 2)) + ("y", "x")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(float(v))


def _calibration_from_dict(d: dict) -> dict:
    return {k: float(d[k]) if _is_number(d[k]) else d[k] for k in CALIBRATION_KEYS if k in d and d[k] is not None}


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


def _calibration_from_axes(kind: str, scale: list, fams: list) -> dict:
    cal: dict = {}
    n = len(scale)
    if n < 2:
        return cal
    if kind == "4dstem" and n == 4:
        if fams[0] == "length" and fams[1] == "length":
            cal["scan_step_a"] = scale[1]
            if not math.isclose(scale[0], scale[1], rel_tol=1e-6):
                cal["scan_step_y_a"] = scale[0]
        if fams[2] == fams[3] == "angle":
            cal["detector_mrad_per_px"] = scale[3]
        elif fams[2] == fams[3] == "recip":
            cal["detector_inv_a_per_px"] = scale[3]
        return cal
    if fams[-1] == fams[-2] == "length":
        cal["pixel_size_nm"] = scale[-1]
        if not math.isclose(scale[-1], scale[-2], rel_tol=1e-6):
            cal["pixel_size_y_nm"] = scale[-2]
    elif fams[-1] == fams[-2] == "angle":
        cal["detector_mrad_per_px"] = scale[-1]
    elif fams[-1] == fams[-2] == "recip":
        cal["detector_inv_nm_per_px"] = scale[-1]
    return cal


def _apply_explicit_calibration(kind: str, scale: list, units: list, translate: list, fams: list, cal: dict) -> None:
    """Where the axes carry no calibration but the file's attributes / JSON do, use them."""
    n = len(scale)

    def setax(i: int, s: float, u: str, fam: str) -> None:
        if fams[i] == "pixel" and scale[i] == 1.0:
            scale[i], units[i], fams[i] = float(s), u, fam

    if kind == "4dstem" and n == 4:
        if "scan_step_a" in cal:
            setax(1, cal["scan_step_a"], "Å", "length")
            setax(0, cal.get("scan_step_y_a", cal["scan_step_a"]), "Å", "length")
        if "detector_mrad_per_px" in cal:
            for i in (2, 3):
                setax(i, cal["detector_mrad_per_px"], "mrad", "angle")
        elif "detector_inv_a_per_px" in cal:
            for i in (2, 3):
                setax(i, cal["detector_inv_a_per_px"], "1/Å", "recip")
        return
    if n >= 2 and "pixel_size_nm" in cal and _is_number(cal["pixel_size_nm"]):
        setax(n - 1, cal["pixel_size_nm"], "nm", "length")
        setax(n - 2, cal.get("pixel_size_y_nm", cal["pixel_size_nm"]), "nm", "length")


# --------------------------------------------------------------------------------- JSON


def _jsonable(value: Any, _depth: int = 0) -> Any:
    """JSON-friendly copy: numpy scalars to Python, small arrays to lists, big ones to a summary."""
    if _depth > 20:
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v, _depth + 1) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.size <= 64 and value.dtype.kind in "biufUS":
            return _jsonable(value.tolist(), _depth + 1)
        return f"<array shape={value.shape} dtype={value.dtype}>"
    if hasattr(value, "dimensionality"):  # pint unit
        return unit_to_str(value)
    return str(value)


def unit_to_str(u: Any) -> str:
    """A unit (string or pint Unit) as a short string pint parses back: 'nm', 'Å', '1/nm', 'mrad'."""
    if u is None:
        return "pixel"
    if isinstance(u, str):
        return u or "pixel"
    try:
        s = format(u, "~")
    except (TypeError, ValueError):
        s = str(u)
    s = s.replace(" ", "")
    return {"px": "pixel", "": "pixel", "1/Å": "1/Å"}.get(s, s)


def _metadata_summary(md: dict) -> Any:
    """The file's metadata for the layer, within a size budget (the Dataset keeps all of it)."""
    j = _jsonable(md)
    try:
        text = json.dumps(j)
    except (TypeError, ValueError):
        return {"keys": [str(k) for k in md]}
    if len(text) <= _ORIGINAL_METADATA_BUDGET:
        return j
    out: dict = {"_truncated": True}
    for k, v in j.items() if isinstance(j, dict) else []:
        t = json.dumps(v)
        if len(t) <= _ORIGINAL_METADATA_BUDGET // 4:
            out[k] = v
        else:
            out[k] = {"_keys": list(v)[:50]} if isinstance(v, dict) else "<large>"
    return out


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


_LOADERS: dict[str, Callable[[_Ctx], list[Dataset]]] = {
    "npy": _load_npy,
    "npz": _load_npz,
    "tiff": _load_tiff,
    "h5": _load_h5,
    "emd": _load_emd,
    "zarr": _load_zarr,
}
