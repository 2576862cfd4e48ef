"""Descan: where the beam lands on the detector at each scan position, fitted over the scan and removed.

Every real scan has a centre offset (the optical axis is not at the detector centre the methods
assume) and most have a descan that drifts across the scan. Both shift every pattern by
d(r, c) = (d_y, d_x) detector px at scan row r, column c. Fitted over the scan with a low-order
model (``model``):

    "constant":  d = c₀
    "plane":     d = c₀ + a·(r − r̄) + b·(c − c̄)        (r̄, c̄: the scan centre)

by least squares over the finite measurements, refitted without gross outliers (residual >
``OUTLIER_SIGMA`` robust σ, σ = max(1.4826·MAD, ``MIN_SIGMA_PX``); dead or saturated frames); a
term smaller than ``SIGNIFICANCE`` = 3 standard errors (from the residual scatter) is left at 0:
at low dose the disc centre of one pattern is noisy (20 counts: ~3 px) and a plane fitted to
noise moves the CNN's patterns by a few hundredths of a px, which costs it xc (graphene bilayer,
500 e/Å²: 0.275 → 0.215 before this rule). What is measured:

* ``source="disc"`` (the default everywhere): the bright-field disc centre of each pattern
  (:func:`disc_centres`: the centroid of the pattern's cover of the disc, 1 inside, 0 outside and
  I/d across a band around the edge, d the pattern's own disc level; linear in the intensity where
  the edge is, so pixel area, a detector's point spread and an interpolating descan move it only
  as far as they move the beam, and the interior contrast, where the specimen shows, is kept out).
  It measures the beam, not the specimen: a 0.25 px centre offset on abTEM's CeO2 scan is read as
  0.250 px (the earlier thresholded centroid read 0.242, and iCoM integrated the rest into a plane
  of 4 % of its variance); the project's clean bench scans read ≤ 0.002 px.
* ``source="com"``: the centre of mass of each pattern (what iCoM integrates). The specimen shifts
  the CoM too (that is the signal), so this plane also takes away the window's mean specimen
  gradient and its linear trend. That mean gradient is real and observable once the optical axis
  is known (the CoM is an absolute measurement); taking it away costs xc where a window is not a
  whole number of cells (iCoM on the CeO2 37 × 45 bench window: xc 0.920 → 0.885), so it is an
  option, not the default.

Removal: iCoM subtracts d from the CoM before integration (com.py; measured in the same pass:
an offset would integrate to a ramp, a descan changing across the scan to a quadratic); SSB reads
the scan through :class:`Recentred`, which moves every pattern by −d (Fourier shift) so the disc
sits on the nominal optical axis; the CNN reads each pattern around its fitted centre (bilinear,
airpi/preprocess.py: a Fourier shift rings into the dark field, which the network's I^0.1 input
magnifies: a 0.02 px Fourier shift took the network alone from xc 0.978 to 0.88).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..jobs import InputError, Progress
from ._data import RowView, check_4d, iter_rows, rows_per_block, shape_of

MODELS = ("plane", "constant", "off")
SOURCES = ("com", "disc")
#: a measurement further than this many robust σ from the fit is an outlier (bad frame)
OUTLIER_SIGMA = 6.0
#: the robust σ is floored here (px): a clean scan whose centres agree to 0.001 px has no outliers
MIN_SIGMA_PX = 0.05
#: refits without the outliers; the fit has converged when the outlier set stops changing
MAX_REFITS = 10
#: a fitted term smaller than this many standard errors is noise (low dose), left at 0
SIGNIFICANCE = 3.0
#: the fit fails (uncorrected result kept) when fewer positions than this fraction are inliers
MIN_INLIER_FRACTION = 0.5


@dataclasses.dataclass(frozen=True)
class DescanFit:
    """The fitted descan d(r, c) = c₀ + a·(r − r̄) + b·(c − c̄), detector px, per axis (y, x).

    ``coef_y_px`` / ``coef_x_px`` = (c₀, a, b): offset at the scan centre, px per scan row, px per
    scan column. ``note``: why the model is not the one asked for (e.g. a 1 × N scan)."""

    model: str
    source: str
    scan_shape: tuple[int, int]
    coef_y_px: tuple[float, float, float]
    coef_x_px: tuple[float, float, float]
    rms_residual_px: float = 0.0
    outliers: int = 0
    note: str = ""
    #: (κ_y, κ_x): the share of the specimen's CoM shift the disc centres read, taken out before the
    #: fit (:func:`without_specimen_leak`)
    leak: tuple[float, float] = (0.0, 0.0)

    def shift_px(self, rows: np.ndarray | None = None, cols: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(d_y, d_x) at scan positions (broadcast ``rows``, ``cols``); default the whole scan."""
        if rows is None or cols is None:
            rows, cols = np.indices(self.scan_shape, dtype=np.float64)
        r = np.asarray(rows, np.float64) - (self.scan_shape[0] - 1) / 2
        c = np.asarray(cols, np.float64) - (self.scan_shape[1] - 1) / 2
        cy, cx = self.coef_y_px, self.coef_x_px
        return cy[0] + cy[1] * r + cy[2] * c, cx[0] + cx[1] * r + cx[2] * c

    def across_scan_px(self) -> tuple[float, float]:
        """How far the fitted descan moves the beam from the first to the last scan position (y, x px)."""
        ny, nx = self.scan_shape
        return (self.coef_y_px[1] * (ny - 1) + self.coef_y_px[2] * (nx - 1),
                self.coef_x_px[1] * (ny - 1) + self.coef_x_px[2] * (nx - 1))

    def summary(self, detector_mrad_per_px: float | None = None) -> str:
        """One line for a panel / log: offset and change across the scan, px (and mrad)."""
        if self.model == "off":
            return "descan: off (raw centre)"
        oy, ox = self.coef_y_px[0], self.coef_x_px[0]
        src = "CoM" if self.source == "com" else "BF disc"
        line = f"descan ({self.model}, from {src}): offset ({oy:+.2f}, {ox:+.2f}) px"
        if self.model == "plane":
            ay, ax = self.across_scan_px()
            line += f", across the scan ({ay:+.2f}, {ax:+.2f}) px"
        if detector_mrad_per_px:
            line += f" [offset {math.hypot(oy, ox) * detector_mrad_per_px:.2f} mrad]"
        if self.note:
            line += f"; {self.note}"
        return line

    def to_metadata(self, detector_mrad_per_px: float | None = None) -> dict:
        md = {"model": self.model, "source": self.source, "coef_y_px": list(self.coef_y_px),
              "coef_x_px": list(self.coef_x_px), "coefficients": "(offset at scan centre, per scan row, per scan column)",
              "rms_residual_px": self.rms_residual_px,
              "outliers": self.outliers, "specimen_leak": list(self.leak),
              "summary": self.summary(detector_mrad_per_px)}
        if detector_mrad_per_px:
            md["coef_y_mrad"] = [c * detector_mrad_per_px for c in self.coef_y_px]
            md["coef_x_mrad"] = [c * detector_mrad_per_px for c in self.coef_x_px]
        if self.note:
            md["note"] = self.note
        return md


def off(scan_shape: tuple[int, int], source: str = "com") -> DescanFit:
    return DescanFit("off", source, tuple(int(s) for s in scan_shape), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))


def check_model(model: Any) -> str:
    if isinstance(model, DescanFit):
        return model.model
    if model is None or model is False:
        return "off"
    if model not in MODELS:
        raise InputError(f"descan must be one of {', '.join(repr(m) for m in MODELS)}, got {model!r}")
    return str(model)


def fit_descan(map_y_px: np.ndarray, map_x_px: np.ndarray, *, model: str = "plane", source: str = "com",
               valid: np.ndarray | None = None) -> DescanFit:
    """Fit the descan model (module doc) to per-position centres (detector px, detector frame).

    Non-finite values and positions outside ``valid`` are left out. A scan (or set of valid
    positions) too thin for a plane (one row or one column) gets the constant model, said in
    ``note``. Raises InputError when nothing is left to fit or the outlier rejection does not
    settle (fewer than half the positions kept)."""
    model = check_model(model)
    if source not in SOURCES:
        raise InputError(f"descan source must be 'com' or 'disc', got {source!r}")
    my = np.asarray(map_y_px, np.float64)
    mx = np.asarray(map_x_px, np.float64)
    if my.ndim != 2 or my.shape != mx.shape:
        raise InputError(f"descan maps must be two 2-D maps of the same shape, got {my.shape} and {mx.shape}")
    shape = (int(my.shape[0]), int(my.shape[1]))
    if model == "off":
        return off(shape, source)
    ok = np.isfinite(my) & np.isfinite(mx)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    if not ok.any():
        raise InputError("descan fit: no position has a finite beam centre (every pattern empty or NaN)")
    rows, cols = np.indices(shape, dtype=np.float64)
    rows -= (shape[0] - 1) / 2
    cols -= (shape[1] - 1) / 2
    note = ""
    if model == "plane":
        design = np.stack([np.ones(int(ok.sum())), rows[ok], cols[ok]], axis=1)
        if np.linalg.matrix_rank(design) < 3:
            model = "constant"
            note = (f"the scan ({shape[0]} x {shape[1]}) is too thin to fit a plane: constant descan removed"
                    if min(shape) < 2 else "the valid positions lie on one line: constant descan removed")
    ncoef = 3 if model == "plane" else 1
    a = np.stack([np.ones(shape), rows, cols], axis=-1)[..., :ncoef]
    keep = ok.copy()
    n_ok = int(ok.sum())
    for _ in range(MAX_REFITS + 1):
        coef_y = np.linalg.lstsq(a[keep], my[keep], rcond=None)[0]
        coef_x = np.linalg.lstsq(a[keep], mx[keep], rcond=None)[0]
        res = np.hypot(my - a @ coef_y, mx - a @ coef_x)
        mad = float(np.median(res[keep]))
        sigma = max(1.4826 * mad, MIN_SIGMA_PX)
        new = keep & (res <= OUTLIER_SIGMA * sigma)  # once out, stays out: the set only shrinks
        if new.sum() < MIN_INLIER_FRACTION * n_ok:
            raise InputError(f"descan fit did not converge: only {int(new.sum())} of {n_ok} positions agree with a "
                             f"{model} (the beam centre jumps around); descan not removed")
        if np.array_equal(new, keep):
            break
        keep = new
    else:
        raise InputError(f"descan fit did not converge in {MAX_REFITS} refits (more outliers at every refit); "
                         "descan not removed")
    # a term smaller than SIGNIFICANCE standard errors (residual scatter: shot noise, specimen) is
    # noise, not descan: left at 0 (the design is orthogonal on a full grid, so each term drops alone)
    ak = a[keep]
    dof = max(int(keep.sum()) - ncoef, 1)
    cov = np.linalg.pinv(ak.T @ ak)
    weak = []
    for coef, m in ((coef_y, my), (coef_x, mx)):
        s2 = float(np.sum((m[keep] - ak @ coef) ** 2)) / dof
        se = np.sqrt(np.maximum(np.diag(cov) * s2, 0.0))
        small = np.abs(coef) < SIGNIFICANCE * se
        weak.append(int(small.sum()))
        coef[small] = 0.0
    if sum(weak):
        note = (note + "; " if note else "") + f"{sum(weak)} term(s) below {SIGNIFICANCE:g} standard errors left at 0"
    pad = [0.0] * (3 - ncoef)
    res = np.hypot(my - a @ coef_y, mx - a @ coef_x)
    rms = float(np.sqrt(np.mean(res[keep] ** 2))) if keep.any() else 0.0
    return DescanFit(model, source, shape, tuple(float(v) for v in list(coef_y) + pad),
                     tuple(float(v) for v in list(coef_x) + pad), rms, int(n_ok - keep.sum()), note)


# ----------------------------------------------------------------------------- measuring the disc centre


#: half-width (px) of the edge band of the second stage (:func:`disc_centres`): the pixels a
#: pixel-sharp edge covers in part (centre within √2/2 px of it), the first stage's error and the
#: spread of a sub-pixel shift by linear interpolation (what a descan does to square pixels).
#: Narrower reads such an edge short: a 0.8 px shift (tests/test_stem_cli.py, a 0.04 rad phase)
#: read as 0.835 / 0.824 / 0.806 / 0.801 px at 0.8 / 1.0 / 1.25 / 1.5 px (iCoM xc 0.09 / 0.12 /
#: 0.41 / 0.97); wider takes in more of the specimen (the CoM signal lives at the disc edge;
#: :func:`without_specimen_leak` takes most of it out): bench/stem_descan.py's 37×45 window with
#: descan, iCoM xc 0.923 at 1.25 and 1.5 px, 0.922 at 1.75.
EDGE_BAND_PX = 1.5


def _first_stage(b: np.ndarray, yy: np.ndarray, xx: np.ndarray):
    """Centroid of u = clip(2·I/d, 0, 1) (d: mean of the pixels above the pattern's mean), the
    radius √(Σu/π) of a disc of that area, d, and ok (False for an empty pattern)."""
    above = b > b.mean(axis=(-2, -1), keepdims=True)
    n_above = above.sum(axis=(-2, -1))
    level = np.where(above, b, 0.0).sum(axis=(-2, -1), dtype=np.float64) / np.maximum(n_above, 1)
    ok = (n_above > 0) & (level > 0)
    safe = np.where(ok, level, 1.0)[..., None, None]
    u = np.clip(2.0 * b / safe, 0.0, 1.0)
    area = np.where(ok, u.sum(axis=(-2, -1), dtype=np.float64), 1.0)
    cy = np.where(ok, u.sum(axis=-1, dtype=np.float64) @ yy / area, 0.0)
    cx = np.where(ok, u.sum(axis=-2, dtype=np.float64) @ xx / area, 0.0)
    return cy, cx, np.sqrt(area / math.pi), ok


def disc_centres(block: np.ndarray, cy: float, cx: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BF-disc centre (y, x) of every pattern of ``block`` (..., ky, kx), px relative to (cy, cx).

    The centroid of the pattern's cover u of the disc, linear in the intensity where the edge is:

        u = 1 inside r < R − w,   0 outside r > R + w,   clip(I/d, 0, 1) in the edge band,

    r measured from a first-stage centre (:func:`_first_stage`: the centroid of clip(2·I/d, 0, 1),
    every pixel above half the disc level counts 1; biased by up to 0.05 px on a pixel-sharp edge,
    because it is not linear in a part-covered pixel), R that disc's radius, w = EDGE_BAND_PX, d the
    mean of the pattern's pixels inside r < R − w (its disc level). Pixel area and an interpolating
    descan are linear in the beam, so on an empty beam whose edge lies within the band u sums to
    its true cover and the centroid is exact (abTEM's CeO2 scan binned 2×2: a 0.25 px offset read
    as 0.250 px, the first stage alone 0.242); the interior contrast, where the specimen shows,
    is kept out. An edge blurred beyond the band (a detector's point spread much wider than a
    pixel) is read with a bias like the first stage's. Returns (d_y, d_x, ok); ok is False (d NaN) for an
    empty pattern. Works through the block CHUNK_PATTERNS patterns at a time (its temporaries stay in
    cache: on a 64² scan of 64² patterns in one block, 3× faster than all at once)."""
    b = np.asarray(block, np.float32)
    lead, (ky, kx) = b.shape[:-2], b.shape[-2:]
    flat = b.reshape(-1, ky, kx)
    out = np.empty((3, len(flat)))
    for i in range(0, len(flat), CHUNK_PATTERNS):
        out[:, i:i + CHUNK_PATTERNS] = _disc_centres(flat[i:i + CHUNK_PATTERNS], cy, cx)
    return out[0].reshape(lead), out[1].reshape(lead), out[2].reshape(lead).astype(bool)


#: patterns per chunk in :func:`disc_centres`
CHUNK_PATTERNS = 128


def _disc_centres(b: np.ndarray, cy: float, cx: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`disc_centres` of a stack of patterns (n, ky, kx) float32."""
    ky, kx = b.shape[-2:]
    yy = np.arange(ky, dtype=np.float64) - cy
    xx = np.arange(kx, dtype=np.float64) - cx
    y0, x0, radius, ok = _first_stage(b, yy, xx)
    r = np.sqrt((yy.astype(np.float32)[:, None] - y0[..., None, None].astype(np.float32)) ** 2
                + (xx.astype(np.float32)[None, :] - x0[..., None, None].astype(np.float32)) ** 2)
    inner = r < (radius - EDGE_BAND_PX)[..., None, None]
    outer = r > (radius + EDGE_BAND_PX)[..., None, None]
    n_in = inner.sum(axis=(-2, -1))
    level = np.where(inner, b, 0.0).sum(axis=(-2, -1), dtype=np.float64) / np.maximum(n_in, 1)
    good = ok & (n_in > 0) & (level > 0)
    u = np.clip(b / np.where(good, level, 1.0)[..., None, None].astype(np.float32), 0.0, 1.0)
    u[inner] = 1.0
    u[outer] = 0.0
    area = np.where(good, u.sum(axis=(-2, -1), dtype=np.float64), 1.0)
    dy = np.where(good, u.sum(axis=-1, dtype=np.float64) @ yy / area, np.where(ok, y0, np.nan))
    dx = np.where(good, u.sum(axis=-2, dtype=np.float64) @ xx / area, np.where(ok, x0, np.nan))
    return dy, dx, ok


#: the largest share of the specimen's CoM shift the disc centres are taken to read (:func:`without_specimen_leak`)
LEAK_MAX = 0.5


def _plane_residual(m: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``m`` less its least-squares plane over scan row and column (fitted on ``ok``; 0 elsewhere)."""
    rows, cols = np.indices(m.shape, dtype=np.float64)
    a = np.stack([np.ones(m.shape), rows, cols], axis=-1)
    coef = np.linalg.lstsq(a[ok], m[ok], rcond=None)[0]
    return np.where(ok, m - a @ coef, 0.0)


def without_specimen_leak(disc_y: np.ndarray, disc_x: np.ndarray, com_y: np.ndarray, com_x: np.ndarray,
                          valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Disc centres with the specimen's share taken out, per axis (px).

    The specimen moves intensity across the disc edge, so the disc centre reads a share κ of its CoM
    shift s: disc = d + κ·s, CoM = d + s, d the beam's position (a plane over the scan). Off their
    best-fit planes only the specimen is left in both, so κ = Σ r_disc·r_CoM / Σ r_CoM² (residuals
    from the planes, clipped to [0, LEAK_MAX]), and (disc − κ·CoM)/(1 − κ) = d: the window's mean
    specimen gradient and its trend stay out of the fitted descan (a 0.5 rad crystal, 20 × 22
    window: the fitted offset's error 0.009 → 0.004 px; CeO2 37 × 45 windows: slope errors
    0.0007 → 0.0001 px per row). Returns the corrected maps and (κ_y, κ_x)."""
    dy = np.asarray(disc_y, np.float64)
    dx = np.asarray(disc_x, np.float64)
    cy = np.asarray(com_y, np.float64)
    cx = np.asarray(com_x, np.float64)
    ok = np.isfinite(dy) & np.isfinite(dx) & np.isfinite(cy) & np.isfinite(cx)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    if ok.sum() < 4:
        return dy, dx, (0.0, 0.0)
    out, kappa = [], []
    for disc, com in ((dy, cy), (dx, cx)):
        rd, rc = _plane_residual(disc, ok), _plane_residual(com, ok)
        den = float(np.sum(rc * rc))
        k = float(np.clip(np.sum(rd * rc) / den, 0.0, LEAK_MAX)) if den > 0 else 0.0
        kappa.append(k)
        out.append((disc - k * com) / (1.0 - k))
    return out[0], out[1], (kappa[0], kappa[1])


def pattern_centroids(block: np.ndarray, cy: float, cx: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre of mass (y, x) of every pattern of ``block``, px relative to (cy, cx); NaN when empty."""
    b = np.asarray(block, np.float32)
    ky, kx = b.shape[-2:]
    n = b.sum(axis=(-2, -1), dtype=np.float64)
    safe = np.where(n > 0, n, 1.0)
    wy = b.sum(axis=-1, dtype=np.float64) @ (np.arange(ky) - cy)
    wx = b.sum(axis=-2, dtype=np.float64) @ (np.arange(kx) - cx)
    return np.where(n > 0, wy / safe, np.nan), np.where(n > 0, wx / safe, np.nan)


def measure_job(data: Any, *, center: tuple[float, float], model: str = "plane", block_rows: int | None = None,
                label: str = "descan"):
    """One pass over the scan: the BF-disc centre and the CoM of every pattern (:func:`disc_centres`,
    :func:`pattern_centroids`), the specimen's share taken out (:func:`without_specimen_leak`), then
    :func:`fit_descan` (source "disc"). A job (Progress per block of rows); returns the DescanFit."""
    shape = check_4d(data)
    model = check_model(model)
    if model == "off":
        return off(shape[:2], "disc")
    dy, dx, my, mx = (np.full(shape[:2], np.nan) for _ in range(4))
    n = block_rows or rows_per_block(shape)
    total = -(-shape[0] // n)
    for i, (r0, r1, block) in enumerate(iter_rows(data, n)):
        dy[r0:r1], dx[r0:r1], _ = disc_centres(block, center[0], center[1])
        my[r0:r1], mx[r0:r1] = pattern_centroids(block, center[0], center[1])
        yield Progress(i + 1, total, f"{label}: beam centre, scan row {r1}/{shape[0]}")
    dy, dx, leak = without_specimen_leak(dy, dx, my, mx)
    return dataclasses.replace(fit_descan(dy, dx, model=model, source="disc"), leak=leak)


# ----------------------------------------------------------------------------- removing it from the patterns


def shift_patterns(block: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Every pattern of ``block`` (..., ky, kx) moved by (dy, dx) px (broadcast over the leading
    axes), by a Fourier shift: I'(k) = I(k − d). The patterns are first edge-padded by the largest
    shift (what comes in at an edge is the edge's own value, not the opposite edge). float32."""
    import scipy.fft

    b = np.asarray(block, np.float32)
    n0y, n0x = b.shape[-2:]
    pad = int(math.ceil(max(float(np.max(np.abs(dy), initial=0.0)), float(np.max(np.abs(dx), initial=0.0))))) + 1
    b = np.pad(b, [(0, 0)] * (b.ndim - 2) + [(pad, pad), (pad, pad)], mode="edge")
    ky, kx = b.shape[-2:]
    fy = np.fft.fftfreq(ky)[:, None]
    fx = np.fft.fftfreq(kx)[None, :]
    dy = np.asarray(dy, np.float64)[..., None, None]
    dx = np.asarray(dx, np.float64)[..., None, None]
    ramp = np.exp(-2j * math.pi * (fy * dy + fx * dx)).astype(np.complex64)
    out = scipy.fft.ifft2(scipy.fft.fft2(b, axes=(-2, -1)) * ramp, axes=(-2, -1)).real
    return out[..., pad:pad + n0y, pad:pad + n0x].astype(np.float32)


class Recentred(RowView):
    """A 4D scan read through the fitted descan: rows ``[r0:r1]`` come back (float32 numpy) with
    every pattern moved by −d(r, c), the beam on the nominal optical axis. Only row slices are
    supported (what the streaming readers of _data.py ask for)."""

    def __init__(self, data: Any, fit: DescanFit):
        super().__init__(data)
        self.fit = fit
        if tuple(self.shape[:2]) != tuple(fit.scan_shape):
            raise InputError(f"descan fitted on a {fit.scan_shape} scan, data are {self.shape[:2]}")

    def rows(self, r0: int, r1: int) -> np.ndarray:
        block = self.data[r0:r1]
        if hasattr(block, "compute"):
            block = block.compute()
        block = np.asarray(block, np.float32)
        if not np.isfinite(block).all():
            return block  # read_rows reports the NaN rows; a shift would smear them over the pattern
        rows, cols = np.meshgrid(np.arange(r0, r1), np.arange(self.shape[1]), indexing="ij")
        dy, dx = self.fit.shift_px(rows, cols)
        return shift_patterns(block, -dy, -dx)


def measure_or_skip(data: Any, descan: Any, *, center: tuple[float, float], block_rows: int | None = None,
                    label: str = "descan"):
    """A job: the DescanFit for ``descan`` (a model name: measured and fitted, :func:`measure_job`;
    a DescanFit: itself) and "" — or (None, why) when it could not be fitted (the caller keeps
    the raw patterns). NaN data still raise (the readers' message)."""
    model = check_model(descan)
    if model == "off":
        return off(shape_of(data)[:2], "disc"), ""
    if isinstance(descan, DescanFit):
        if tuple(descan.scan_shape) != tuple(shape_of(data)[:2]):
            raise InputError(f"descan was fitted on a {descan.scan_shape} scan, the data are {shape_of(data)[:2]}")
        return descan, ""
    try:
        return (yield from measure_job(data, center=center, model=model, block_rows=block_rows, label=label)), ""
    except InputError as exc:
        if "NaN/inf" in str(exc):
            raise
        return None, str(exc)


def recentre_job(data: Any, descan: Any, *, center: tuple[float, float], block_rows: int | None = None,
                 label: str = "descan"):
    """For SSB: :func:`measure_or_skip`, then (data read through :class:`Recentred`, the fit, a
    message when it could not be fitted; the data as they are then)."""
    fit, why = yield from measure_or_skip(data, descan, center=center, block_rows=block_rows, label=label)
    if fit is None or fit.model == "off":
        return data, fit, why
    return Recentred(data, fit), fit, ""
