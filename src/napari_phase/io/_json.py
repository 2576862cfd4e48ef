"""JSON helpers: JSON-friendly copies of file metadata, unit strings, the size-limited metadata
summary kept in layer metadata, and parsing of our ``metadata_json`` / ``result_json`` text."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..jobs import InputError

#: Layer metadata keeps the file's original metadata only up to this JSON size (characters).
_ORIGINAL_METADATA_BUDGET = 64_000


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


def _parse_json(text: Any, p: Path) -> dict:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        value = json.loads(str(text))
    except ValueError as exc:
        raise InputError(f"Cannot read {p.name}: its metadata_json is not valid JSON ({exc})") from exc
    return value if isinstance(value, dict) else {"value": value}
