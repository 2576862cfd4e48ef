"""Units, axes and calibration: unit families and conversion to our canonical units (nm / Å, 1/nm /
1/Å, mrad), default axis names and kind guesses, and calibration keys from axes, dicts and attributes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

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
