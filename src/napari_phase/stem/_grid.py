"""Non-square scan steps: a result on the scan grid (step_y ≠ step_x) resampled to square pixels.

iCoM and SSB work natively with (step_y, step_x) (gradients and scan frequencies use each axis's
own step); only the result's pixel must be square (``PhaseResult.pixel_size`` is one number and the
napari layers use it for both axes). A map f sampled at y = i·step_y, x = j·step_x is resampled
(cubic spline, scipy.ndimage.map_coordinates) onto y' = i'·p, x' = j'·p with p = min(step_y,
step_x), covering the same extent [0, (n−1)·step]; pixel (0, 0) stays at the first scan position.
"""

from __future__ import annotations

import numpy as np

#: relative difference of the two steps below which a scan counts as square (nothing is resampled)
SQUARE_TOLERANCE = 0.01


def is_square(step_y: float, step_x: float) -> bool:
    return abs(step_y - step_x) <= SQUARE_TOLERANCE * max(step_y, step_x)


def to_square(arr: np.ndarray, step_y: float, step_x: float) -> tuple[np.ndarray, float]:
    """(map on square pixels of p = min(step_y, step_x), p); the last two axes are (y, x)."""
    from scipy import ndimage

    arr = np.asarray(arr)
    if is_square(step_y, step_x):
        return arr, float(step_x)
    p = float(min(step_y, step_x))
    ny, nx = arr.shape[-2:]
    my = int(np.floor((ny - 1) * step_y / p + 1e-6)) + 1
    mx = int(np.floor((nx - 1) * step_x / p + 1e-6)) + 1
    yy = np.arange(my)[:, None] * (p / step_y) + np.zeros((1, mx))
    xx = np.zeros((my, 1)) + np.arange(mx)[None, :] * (p / step_x)
    flat = arr.reshape(-1, ny, nx)
    out = np.stack([ndimage.map_coordinates(a.astype(np.float64), [yy, xx], order=3, mode="nearest") for a in flat])
    return out.reshape(arr.shape[:-2] + (my, mx)).astype(arr.dtype if arr.dtype.kind == "f" else np.float32), p


def square_result(result, step_y: float, step_x: float):
    """The PhaseResult with every map resampled to square pixels (a no-op for square steps); the
    metadata keeps both steps (``scan_step_a`` = x, ``scan_step_y_a`` = y, the readers' keys) and
    the new pixel (``square_pixel_a``)."""
    if is_square(step_y, step_x):
        return result
    arrays = {}
    p = float(step_x)
    for name, arr in result.arrays.items():
        arrays[name], p = to_square(arr, step_y, step_x)
    result.arrays = arrays
    result.pixel_size = p
    result.metadata["scan_step_a"] = float(step_x)
    result.metadata["scan_step_y_a"] = float(step_y)
    result.metadata["square_pixel_a"] = p
    result.metadata["resampled"] = "scan grid (step_y ≠ step_x) resampled to square pixels, cubic spline"
    return result
