"""``.tif`` / ``.tiff``: our own JSON tag, else ImageJ or OME pixel sizes; memory-mapped when large."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from ..jobs import InputError
from ._context import _Ctx, _one_line
from ._dataset import Dataset, _make_dataset
from ._own_format import LAYERS_FORMAT, RESULT_FORMAT, TIFF_JSON_TAG, _dataset_from_layer_json


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
