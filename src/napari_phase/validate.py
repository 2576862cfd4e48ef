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
    v = number(value, name)
    if not math.isfinite(v):
        raise InputError(f"{name} must be finite, got {v}")
    return v


def number(value, name: str) -> float:
    """A real number (not a string, bool, sequence or complex); may be NaN/inf (see :func:`finite`)."""
    if isinstance(value, (str, bytes, bool, np.bool_)) or isinstance(value, complex) or np.iscomplexobj(value):
        raise InputError(f"{name} must be a number, got {value!r}")
    if np.ndim(value) != 0:
        raise InputError(f"{name} must be one number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None


#: beam energies every method accepts, kV (a value in volts, 2e5, is refused rather than used)
ENERGY_KV_RANGE = (1.0, 5000.0)


def energy_kv(value, name: str = "voltage_kv") -> float:
    """The beam energy in kV, finite and within :data:`ENERGY_KV_RANGE` (1–5000 kV)."""
    v = finite(value, name)
    lo, hi = ENERGY_KV_RANGE
    if v <= 0:
        raise InputError(f"{name} must be positive: the beam energy in kV ({lo:g}–{hi:g}), got {v:g}")
    if not lo <= v <= hi:
        hint = ": that looks like volts, give kV (e.g. 200)" if v > hi else ""
        raise InputError(f"{name} must be the beam energy in kV ({lo:g}–{hi:g}), got {v:g}{hint}")
    return v


def integer(value, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """A whole number (1.5 is refused, not truncated) within [lo, hi]."""
    v = finite(value, name)
    if v != int(v):
        raise InputError(f"{name} must be a whole number, got {value!r}")
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        span = f"{lo}–{hi}" if lo is not None and hi is not None else (f">= {lo}" if lo is not None else f"<= {hi}")
        raise InputError(f"{name} must be a whole number {span}, got {v}")
    return v


def pair(value, name: str, what: str = "two numbers (y, x)") -> tuple[float, float]:
    """Two finite numbers, e.g. a centre (y, x) or a step (y, x)."""
    if isinstance(value, (str, bytes)) or np.ndim(value) != 1 or len(value) != 2:
        raise InputError(f"{name} must be {what}, got {value!r}")
    return finite(value[0], name), finite(value[1], name)


def point_on_grid(value, name: str, shape) -> tuple[float, float]:
    """A point (y, x) in pixels that lies on a grid of ``shape`` (..., ny, nx): 0 <= y <= ny − 1,
    0 <= x <= nx − 1 (e.g. the optical axis on the detector)."""
    y, x = pair(value, name, "(y, x) in pixels")
    ny, nx = int(shape[-2]), int(shape[-1])
    if not (0 <= y <= ny - 1 and 0 <= x <= nx - 1):
        raise InputError(f"{name} ({y:g}, {x:g}) px is off the {ny}x{nx} px detector: give (y, x) within 0..{ny - 1}, 0..{nx - 1}")
    return y, x


#: side of the box (px) over which an image's local mean is taken (noise averages out)
INTENSITY_BOX_PX = 5
#: how many noise σ of that local mean it may lie below zero before it is refused
INTENSITY_NOISE_SIGMAS = 5.0


def noise_sigma(a: np.ndarray) -> float:
    """Robust σ of the pixel noise: the MAD of neighbouring-pixel differences / √2 (a smooth image's
    signal barely enters neighbour differences)."""
    d = np.diff(np.asarray(a, dtype=np.float32), axis=-1).ravel()
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))


def intensities(arr, name: str = "image", box_px: int = INTENSITY_BOX_PX) -> None:
    """Refuse intensities that are negative beyond noise: the local mean over ``box_px`` ×
    ``box_px`` pixels more than :data:`INTENSITY_NOISE_SIGMAS` of its noise (σ / box_px, σ from
    :func:`noise_sigma`) below zero anywhere — an offset, a difference image or signed integers
    (the TIE divides by I: a negative I gives a phase of 10⁴ rad). Counts with noise (even σ of
    half the mean over dark regions) pass."""
    from scipy.ndimage import uniform_filter

    a = np.asarray(arr, dtype=np.float32)
    if a.ndim < 2 or float(a.min()) >= 0:
        return
    local = uniform_filter(a, size=[1] * (a.ndim - 2) + [box_px, box_px], mode="reflect")
    floor = -INTENSITY_NOISE_SIGMAS * noise_sigma(a) / box_px
    bad = int((local < floor).sum())
    if bad:
        raise InputError(f"the {name} has negative intensities beyond noise ({bad} px with a {box_px}x{box_px} local "
                         f"mean below {floor:.3g}, min {float(a.min()):.3g}): give counts, not an offset or difference image")


#: a pattern whose total is below −this × the largest |total| of its block is an offset, not noise
NEGATIVE_SUM_FRACTION = 0.05


def pattern_sums(sums, name: str = "4D-STEM data", *, require_positive: bool = True) -> None:
    """Diffraction patterns must hold counts: none may sum to a total negative beyond noise (below
    −:data:`NEGATIVE_SUM_FRACTION` × the largest |total|: an offset or signed integers, which make
    the centre of mass and the CNN's normalisation meaningless), and (``require_positive``) some
    must sum above zero."""
    s = np.asarray(sums, dtype=np.float64)
    if not s.size:
        return
    scale = float(np.abs(s).max())
    neg = int((s < -NEGATIVE_SUM_FRACTION * scale).sum()) if scale > 0 else 0
    if neg:
        raise InputError(f"{neg} diffraction pattern(s) of the {name} sum to a negative total (min {float(s.min()):.3g}): "
                         "the data have an offset or signed integers; give counts")
    if require_positive and not (s > 0).any():
        raise InputError(f"every diffraction pattern of the {name} sums to zero or less: nothing to reconstruct "
                         "(wrong file or dark reference?)")

