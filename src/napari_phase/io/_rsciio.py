"""Formats read through rosettasciio (``.dm3``/``.dm4``, ``.emd``, ``.mib``, ``.blo``, ``.hspy``,
zspy): its signals to Datasets, with calibration from its metadata."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ..jobs import InputError
from ._calibration import CALIBRATION_KEYS, _is_number
from ._context import _Ctx, _one_line
from ._dataset import Dataset, _make_dataset


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
    blo = original.get("blockfile_header") if isinstance(original, dict) else None
    if isinstance(blo, dict) and "voltage_kv" not in cal and _is_number(blo.get("Beam_energy")):
        cal["voltage_kv"] = float(blo["Beam_energy"]) / 1e3  # NanoMegas blockfile: beam energy in V
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
