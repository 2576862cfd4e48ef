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


#: looks_periodic: the wrap pair may differ at most this many times as much as the line pairs next
#: to the two edges (measured maximum on the benchmark's 120 periodic tiles: 1.20).
WRAP_RATIO = 1.5


def _pair_differences(img: np.ndarray, axis: int, smooth_px: float = 1.5) -> tuple[float, np.ndarray, float]:
    """Along ``axis`` (0 = rows, 1 = columns): the mean squared difference across the wrap (last →
    first line), of every neighbouring pair of lines, and between lines half the image apart. Each
    line is smoothed along itself only (Gaussian ``smooth_px``), so no smoothing mixes lines across
    the wrap."""
    from scipy.ndimage import gaussian_filter1d

    a = np.moveaxis(np.asarray(img, dtype=np.float64), axis, 0)
    a = gaussian_filter1d(a, smooth_px, axis=1, mode="wrap") if smooth_px else a
    n = a.shape[0]
    wrap = float(np.mean((a[0] - a[-1]) ** 2))
    adjacent = np.mean((a[1:] - a[:-1]) ** 2, axis=1)
    far = float(np.mean((a[: n - n // 2] - a[n // 2 :][: n - n // 2]) ** 2))
    return wrap, adjacent, far


def looks_periodic(image, wrap_ratio: float = WRAP_RATIO) -> bool:
    """True if the image's opposite edges join like neighbouring lines (a periodic tile).

    Per axis, the mean squared difference across the wrap (line N−1 → line 0) is compared with those
    of the line pairs next to it on either side (pairs 0–1, 1–2 and N−3–N−2, N−2–N−1; the larger
    of the two sides' means): in a periodic tile the wrap pair is one more neighbouring pair and
    differs as they do; in a window of a larger specimen it joins two distant places. Periodic if
    the wrap pair differs at most ``wrap_ratio`` times as much on both axes, and the image varies
    along at least one axis (lines half the image apart differ clearly more than neighbours). Lines
    are smoothed along themselves only (σ = 1.5 px) to tame the noise.

    Measured on the benchmark's 256² images (3 textures × 5 defoci × 4 noises × 2 seeds, each as a
    window and as a periodic tile; docs/benchmarks_ltem_windows.md, Run 9): every tile recognised
    (largest ratio 1.20), 13 of 120 windows called periodic, all at 50–100 % noise where the
    contrast is mostly noise. The earlier test (wrap excess within 0.1 of the spread, after a
    smoothing that wrapped across the edge) called 26 windows periodic, among them every stripes
    −2 mm and skyrmions −4 mm window, whose fits then used the wrong boundary (skyrmions −4 mm
    10 %: phase 0.874 as a tile vs 0.979 as a window).
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:  # series: the mean frame
        img = img.mean(axis=0)
    if min(img.shape) < 8:
        return False
    informative = 0
    for axis in (0, 1):
        wrap, adjacent, far = _pair_differences(img, axis)
        typical = float(np.mean(adjacent))
        if far - typical > 0.5 * typical + 1e-12:
            informative += 1
        beside = max(float(np.mean(adjacent[:2])), float(np.mean(adjacent[-2:])))
        if wrap > wrap_ratio * beside + 1e-12 * typical:
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
