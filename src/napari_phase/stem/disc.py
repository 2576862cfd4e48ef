"""Bright-field disc detection on the mean diffraction pattern (centre and radius, sub-pixel).

The mean pattern is normalised between its background b (median outside a first disc estimate)
and the disc level d (median inside): u = clip((I − b)/(d − b), 0, 1). For a hard-edged disc
``u`` is the pixel's covered fraction, so the area A = Σu gives the radius r = sqrt(A/π) and the
u-weighted centroid gives the centre, both to a small fraction of a pixel. Two passes refine the
levels. With the semi-angle known, the detector sampling follows: mrad/px = α / r (and the reverse).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..jobs import InputError


@dataclass(frozen=True)
class DiscFit:
    """Bright-field disc on the detector: centre (cy, cx) and radius, in detector pixels."""

    center_y_px: float
    center_x_px: float
    radius_px: float
    contrast: float  # (disc − background) / disc level: 1 = clean disc on a dark background

    @property
    def center_px(self) -> tuple[float, float]:
        return (self.center_y_px, self.center_x_px)

    def detector_mrad_per_px(self, semiangle_mrad: float) -> float:
        """Detector sampling from a known convergence semi-angle: α / r."""
        return float(semiangle_mrad) / self.radius_px

    def semiangle_mrad(self, detector_mrad_per_px: float) -> float:
        """Convergence semi-angle from a known detector sampling: r · (mrad/px)."""
        return self.radius_px * float(detector_mrad_per_px)


def _levels(img: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
    out = ~inside
    d = float(np.median(img[inside])) if inside.any() else float(img.max())
    b = float(np.median(img[out])) if out.any() else float(img.min())
    return b, d


def detect_disc(pattern: Any, *, iterations: int = 3) -> DiscFit:
    """Centre and radius of the bright-field disc in a (mean) diffraction pattern (see module doc).

    Raises InputError for a pattern with no disc (flat / all zero) and for a disc that fills the
    detector or is cut by its edge (the calibration would be wrong).
    """
    img = np.asarray(pattern, dtype=np.float64)
    if img.ndim != 2:
        raise InputError(f"disc detection needs one 2-D pattern, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise InputError("the mean pattern has NaN/inf values")
    lo, hi = float(img.min()), float(img.max())
    if not hi > lo:
        raise InputError("the mean pattern is flat: no bright-field disc to detect")
    ny, nx = img.shape
    inside = img > lo + 0.5 * (hi - lo)
    u = None
    b = d = 0.0
    for _ in range(max(1, iterations)):
        b, d = _levels(img, inside)
        if not d > b:
            raise InputError("no bright-field disc found: the pattern has no bright region above its background")
        u = np.clip((img - b) / (d - b), 0.0, 1.0)
        inside = u > 0.5
    area = float(u.sum())
    if area < 3:
        raise InputError("no bright-field disc found (the bright region is smaller than 3 px)")
    yy, xx = np.indices(img.shape, dtype=np.float64)
    cy = float((u * yy).sum() / area)
    cx = float((u * xx).sum() / area)
    r = math.sqrt(area / math.pi)
    edge = np.concatenate([inside[0], inside[-1], inside[:, 0], inside[:, -1]])
    edge_frac = float(edge.mean())
    if edge_frac > 0.5 or area > 0.7 * ny * nx:
        raise InputError(f"the bright-field disc fills the detector (radius ≈ {r:.1f} px on {ny}x{nx} px): "
                         "it is larger than the detector, so it cannot be measured; use a smaller camera length")
    if cy - r < -0.5 or cx - r < -0.5 or cy + r > ny - 0.5 or cx + r > nx - 0.5:
        raise InputError(f"the bright-field disc (centre {cy:.1f}, {cx:.1f}, radius {r:.1f} px) is cut by the "
                         "detector edge: centre the beam or use a smaller camera length")
    return DiscFit(cy, cx, r, float((d - b) / d) if d else 0.0)


def disc_job(data: Any, *, block_rows: int | None = None, iterations: int = 3):
    """Mean pattern of a 4D scan (streamed, Progress per block of rows) and its BF disc, as a job.

    Returns a PhaseResult: ``arrays["mean_pattern"]`` (detector px) and the fit in
    ``metadata`` (``center_y_px``, ``center_x_px``, ``radius_px``, ``contrast``; :func:`fit_of`
    rebuilds the DiscFit)."""
    import dataclasses

    from ..result import PhaseResult
    from ._data import mean_pattern_job

    mean = yield from mean_pattern_job(data, block_rows)
    fit = detect_disc(mean, iterations=iterations)
    return PhaseResult({"mean_pattern": mean}, pixel_size=1.0, pixel_unit="px", array_units={"mean_pattern": "counts"},
                       metadata={"method": "bf_disc", **dataclasses.asdict(fit)})


def fit_of(result) -> DiscFit:
    """The DiscFit stored in a :func:`disc_job` result's metadata."""
    md = result.metadata
    return DiscFit(float(md["center_y_px"]), float(md["center_x_px"]), float(md["radius_px"]), float(md["contrast"]))
