"""Virtual detectors: annular integration of each diffraction pattern (BF, ABF, ADF images).

I_virtual(r_p) = Σ_k I(k; r_p) · [inner ≤ |k − c| · Δθ < outer], angles in mrad, c the optical axis
(detector centre unless ``center``). Streams over scan rows (numpy, memmap or dask input).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import validate
from ..jobs import InputError
from ._data import check_4d, iter_rows, rows_per_block
from .calibration import detector_center


def annulus_mask(detector_shape: tuple[int, int], inner_mrad: float, outer_mrad: float, *,
                 detector_mrad_per_px: float, center: tuple[float, float] | None = None) -> np.ndarray:
    """Boolean mask of detector pixels with inner ≤ θ < outer (θ = distance from ``center`` × mrad/px)."""
    det = validate.positive(detector_mrad_per_px, "detector sampling", "mrad/px")
    inner = validate.non_negative(inner_mrad, "inner angle")
    outer = validate.positive(outer_mrad, "outer angle", "mrad")
    if not outer > inner:
        raise InputError(f"the outer angle ({outer:g} mrad) must be larger than the inner angle ({inner:g} mrad)")
    cy, cx = center if center is not None else detector_center(detector_shape)
    yy, xx = np.indices(tuple(detector_shape), dtype=np.float64)
    theta = np.hypot(yy - cy, xx - cx) * det
    mask = (theta >= inner) & (theta < outer)
    if not mask.any():
        raise InputError(f"the detector {inner:g}–{outer:g} mrad covers no pixel (the detector reaches "
                         f"{float(theta.max()):.1f} mrad at {det:g} mrad/px)")
    return mask


def _virtual_rows(data: Any, inner_mrad: float, outer_mrad: float, *, detector_mrad_per_px: float,
                  center: tuple[float, float] | None = None, block_rows: int | None = None):
    """Generator: the virtual image filled block by block (Progress after each); returns the image."""
    from ..jobs import Progress

    shape = check_4d(data)
    mask = annulus_mask(shape[2:], inner_mrad, outer_mrad, detector_mrad_per_px=detector_mrad_per_px, center=center)
    w = mask.astype(np.float32).ravel()
    out = np.empty(shape[:2], np.float32)
    n = block_rows or rows_per_block(shape)
    total = -(-shape[0] // n)
    for i, (r0, r1, block) in enumerate(iter_rows(data, n)):
        out[r0:r1] = block.reshape(r1 - r0, shape[1], -1) @ w
        yield Progress(i + 1, total, f"virtual image: scan row {r1}/{shape[0]}")
    return out


def virtual_image(data: Any, inner_mrad: float, outer_mrad: float, *, detector_mrad_per_px: float,
                  center: tuple[float, float] | None = None, block_rows: int | None = None) -> np.ndarray:
    """Virtual detector image (scan_y, scan_x), float32: counts summed over inner ≤ θ < outer mrad."""
    from ..jobs import run_job

    return run_job(_virtual_rows(data, inner_mrad, outer_mrad, detector_mrad_per_px=detector_mrad_per_px,
                                 center=center, block_rows=block_rows))


#: the virtual detectors by name: (inner, outer) as multiples of the semi-angle α (ADF: to the edge)
DETECTOR_ANGLES = {"bf": (0.0, 1.0), "abf": (0.5, 1.0), "adf": (1.1, None)}


def virtual_image_job(data: Any, kind: str = "bf", *, semiangle_mrad: float, detector_mrad_per_px: float,
                      center=None, scan_step_a: float | None = None, block_rows: int | None = None):
    """BF/ABF/ADF image as a job (Progress per block of rows, cancellable between blocks).

    Returns a PhaseResult with ``arrays["virtual"]`` (counts) on the scan grid: pixel =
    ``scan_step_a`` (Å; x step, with ``metadata["scan_step_y_a"]`` for a (y, x) pair that differs)
    when known, else 1 scan px; metadata: detector kind and its angles (mrad)."""
    from ..result import PhaseResult

    if kind not in DETECTOR_ANGLES:
        raise InputError(f"detector must be one of {', '.join(DETECTOR_ANGLES)}, got {kind!r}")
    shape = check_4d(data)
    alpha = validate.positive(semiangle_mrad, "semi-angle", "mrad")
    lo, hi = DETECTOR_ANGLES[kind]
    inner = lo * alpha
    outer = hi * alpha if hi is not None else 10.0 * max(shape[2:]) * detector_mrad_per_px
    img = yield from _virtual_rows(data, inner, outer, detector_mrad_per_px=detector_mrad_per_px, center=center,
                                   block_rows=block_rows)
    meta = {"method": "virtual detector", "detector": kind, "inner_mrad": inner, "outer_mrad": outer}
    step = 1.0
    if scan_step_a is not None:
        steps = np.broadcast_to(np.asarray(scan_step_a, dtype=np.float64), (2,))
        step = float(steps[1])
        meta["scan_step_a"] = step
        if steps[0] != steps[1]:
            meta["scan_step_y_a"] = float(steps[0])  # one value per scan position: not resampled
    return PhaseResult({"virtual": img}, pixel_size=step, pixel_unit="Å" if scan_step_a is not None else "px",
                       array_units={"virtual": "counts"}, metadata=meta)


def bright_field(data: Any, *, semiangle_mrad: float, detector_mrad_per_px: float, center=None) -> np.ndarray:
    """BF: 0 to α."""
    return virtual_image(data, 0.0, semiangle_mrad, detector_mrad_per_px=detector_mrad_per_px, center=center)


def annular_bright_field(data: Any, *, semiangle_mrad: float, detector_mrad_per_px: float, center=None) -> np.ndarray:
    """ABF: α/2 to α."""
    return virtual_image(data, 0.5 * semiangle_mrad, semiangle_mrad, detector_mrad_per_px=detector_mrad_per_px,
                         center=center)


def annular_dark_field(data: Any, *, semiangle_mrad: float, detector_mrad_per_px: float, center=None,
                       outer_mrad: float | None = None) -> np.ndarray:
    """ADF: 1.1 α (just outside the disc) to ``outer_mrad`` (default: the detector's edge)."""
    shape = check_4d(data)
    outer = outer_mrad if outer_mrad is not None else 10.0 * max(shape[2:]) * detector_mrad_per_px
    return virtual_image(data, 1.1 * semiangle_mrad, outer, detector_mrad_per_px=detector_mrad_per_px, center=center)
