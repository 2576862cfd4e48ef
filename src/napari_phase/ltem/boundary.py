"""What lies beyond the image's edge: periodic test and the extended canvas of the fitting solvers.

A real LTEM image is a window of a larger specimen: near the edge, the image depends on the phase
up to the lateral reach λ|Δf|q_max *outside* the window. Three boundary models:

- ``"extend"`` (real windows): the unknown phase lives on a canvas larger than the image by a
  free border ring at least as wide as the reach; the image is formed on the canvas (periodic FFT
  there, its seam beyond the ring) and compared with the data only inside the window. The ring is
  constrained by the data it influences and by the prior, nothing else.
- ``"periodic"``: the image is one periodic tile (a simulation made with FFTs): plain FFTs.
- ``"reflect"``: the outside mirrors the inside (the earlier model; kept for comparison).

``"auto"`` picks ``"periodic"`` when the opposite edges match (:func:`looks_periodic`), else
``"extend"``.
"""

from __future__ import annotations

import numpy as np

BOUNDARIES = ("auto", "extend", "periodic", "reflect")


def _edge_scores(img: np.ndarray, axis: int) -> tuple[float, float, float]:
    """Mean squared difference across the wrap (last → first line), between neighbouring lines,
    and between lines half the image apart, along ``axis`` (0 = rows, 1 = columns)."""
    a = np.moveaxis(np.asarray(img, dtype=np.float64), axis, 0)
    n = a.shape[0]
    wrap = float(np.mean((a[0] - a[-1]) ** 2))
    adjacent = float(np.mean((a[1:] - a[:-1]) ** 2))
    far = float(np.mean((a[: n - n // 2] - a[n // 2 :][: n - n // 2]) ** 2))
    return wrap, adjacent, far


def looks_periodic(image, tolerance: float = 0.1) -> bool:
    """True if the image's opposite edges join like neighbouring lines (a periodic tile).

    Per axis, w = ⟨(I₀ − I_{N−1})²⟩ (across the wrap), a = ⟨(I_k − I_{k+1})²⟩ and
    f = ⟨(I_k − I_{k+N/2})²⟩; noise adds the same 2σ² to all three, so the test is on the excess
    w − a against the spread f − a: periodic if (w − a) ≤ ``tolerance`` · (f − a) on every axis
    where the image varies (f clearly above a) and on at least one such axis. The image is
    smoothed a little first (Gaussian σ = 1 px, wrapping) to tame the noise in w.
    """
    from scipy.ndimage import gaussian_filter

    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:  # series: the mean frame
        img = img.mean(axis=0)
    if min(img.shape) < 8:
        return False
    img = gaussian_filter(img, 1.0, mode="wrap")
    informative = 0
    for axis in (0, 1):
        wrap, adjacent, far = _edge_scores(img, axis)
        spread = far - adjacent
        if spread <= 0.5 * adjacent + 1e-12:  # this axis hardly varies (e.g. stripes along it)
            continue
        informative += 1
        if wrap - adjacent > tolerance * spread:
            return False
    return informative > 0


def canvas_margins(shape, ring_px: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) of a canvas with at least ``ring_px`` on each side, its size
    rounded up to a fast FFT length."""
    from scipy.fft import next_fast_len

    out = []
    for n in (int(shape[-2]), int(shape[-1])):
        total = next_fast_len(n + 2 * int(ring_px)) - n
        lo = total // 2
        out.append((lo, total - lo))
    return out[0], out[1]


def extend_reflect(a: np.ndarray, margins) -> np.ndarray:
    """Start values on the canvas: the image-plane map mirrored into the ring (then only a start)."""
    (t, b), (l, r) = margins
    a = np.asarray(a, dtype=np.float32)
    ny, nx = a.shape[-2:]
    if max(t, b) < ny and max(l, r) < nx:
        return np.pad(a, ((t, b), (l, r)), mode="reflect").astype(np.float32)
    return np.pad(a, ((t, b), (l, r)), mode="symmetric").astype(np.float32)
