"""Checks on user input shared by every method; each failure is an InputError with a plain message."""

from __future__ import annotations

import math

import numpy as np

from .jobs import InputError

MIN_SIZE_PX = 16


def as_image(data, *, name: str = "image", ndim: tuple[int, ...] = (2,), min_size_px: int = MIN_SIZE_PX) -> np.ndarray:
    """Return ``data`` as a finite float32 array of an allowed ndim, or raise InputError.

    Rejects: None/empty, wrong number of dimensions, complex, images smaller than ``min_size_px``
    on either of the last two axes, NaN/inf, and constant images (no contrast to work from).
    """
    if data is None:
        raise InputError(f"no {name} given")
    arr = np.asarray(data)
    if arr.size == 0:
        raise InputError(f"the {name} is empty")
    if np.iscomplexobj(arr):
        raise InputError(f"the {name} is complex; give an intensity image (real numbers)")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"the {name} must be numeric intensities, got dtype {arr.dtype}")
    if arr.ndim not in ndim:
        want = " or ".join(f"{d}-D" for d in ndim)
        raise InputError(f"the {name} must be {want}, got {arr.ndim}-D with shape {arr.shape}")
    if min(arr.shape[-2:]) < min_size_px:
        raise InputError(f"the {name} is too small ({arr.shape[-2]}x{arr.shape[-1]} px); need at least {min_size_px}x{min_size_px}")
    arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int((~finite).sum())
        raise InputError(f"the {name} has {bad} NaN/inf pixel(s); fix or crop them first")
    if float(arr.max()) == float(arr.min()):
        raise InputError(f"the {name} is constant (no contrast): nothing to reconstruct")
    return arr


def positive(value, name: str, unit: str = "") -> float:
    """A finite number > 0 (e.g. pixel size, voltage)."""
    v = finite(value, name)
    if v <= 0:
        raise InputError(f"{name} must be positive, got {v:g}{(' ' + unit) if unit else ''}")
    return v


def nonzero(value, name: str, unit: str = "") -> float:
    """A finite number != 0 (e.g. defocus: zero defocus gives no phase contrast)."""
    v = finite(value, name)
    if v == 0:
        raise InputError(f"{name} must not be zero{(' ' + unit) if unit else ''}: an in-focus image has no phase contrast")
    return v


def non_negative(value, name: str) -> float:
    """A finite number >= 0 (e.g. smoothing width, divergence)."""
    v = finite(value, name)
    if v < 0:
        raise InputError(f"{name} must be >= 0, got {v:g}")
    return v


def finite(value, name: str) -> float:
    """A finite real number (e.g. Cs, which may be zero or negative)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{name} must be finite, got {v}")
    return v
