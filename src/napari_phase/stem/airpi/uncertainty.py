"""σ of the CNN's phase: its spread under a grid symmetry and Poisson re-sampling, scaled (issue 19).

A network is not a linear map whose noise can be propagated. Its σ is read from how its answer
moves when the question is asked again in a way that should not change it: the scan and the
detector rotated by 180° together (the object is the same, rotated; the CNN is not exactly
equivariant, so the change carries its model error), with the counts re-sampled, n' ~ Poisson(n)
(n' − n has the variance n of the data's own noise, so the change carries the noise error too).
For K such draws (the k-th rotated when k is odd, on the original grid when even), each phase
brought back to the result's grid and its mean removed,

    σ_raw² = G_s * [(1/K) Σ_k (Δφ_k − mean Δφ_k)²],    Δφ_k = φ(g_k·n'_k) − φ(n),

G_s a Gaussian of ``SMOOTH_PX`` object px, and σ = c · σ_raw with c = :data:`CNN_SIGMA_SCALE` fitted on
the validation structures only (``python scripts/fit_cnn_sigma_scale.py``). K = 1 by default: one
more CNN run (with its low-frequency pass), so σ costs about 2× the plain CNN.

The data must be electron counts (a Poisson re-sampling of scaled intensities is meaningless):
data that are not whole numbers keep the result without σ and say so.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...jobs import JobCancelled, Progress
from ...uncertainty import attach, not_computed, run_sub
from .._data import RowView, read_rows, shape_of

#: c in σ = c·σ_raw, fitted on the validation structures only (InP, Pt, Mo, ZnO, WS2; never the
#: held-out bilayer / LaAlO3 the benchmark scores): ``python scripts/fit_cnn_sigma_scale.py``.
#: 30 val cases (2 thicknesses × 3 doses each): with it, val-pooled within 1σ 0.724, within 2σ 0.920;
#: 12/30 cases in both bands (over-covered on thin crystals, under on Pt/Mo 25 Å at 1e5 e/Å²: 0.43–0.45).
CNN_SIGMA_SCALE = 1.72
DEFAULT_CNN_SAMPLES = 1
SMOOTH_PX = 2.0
CNN_MODEL = ("spread of the CNN under a 180° rotation of scan and detector with Poisson re-sampled counts "
             "({k} draw(s)), smoothed over {s:g} px, scaled by c = {c:.3g} fitted on the validation structures")
CNN_NOTE = ("network σ: the change under a grid symmetry and a Poisson re-sampling, scaled by a factor fitted on "
            "validation structures; not calibrated against the truth on every case (docs/benchmarks.md, Uncertainty)")


class Resampled(RowView):
    """A 4D scan read by row slices through the 180° rotation of scan and detector (``rotate``)
    and a Poisson re-sampling of its counts, drawn per scan row from (``seed``, row) so that a row
    read twice (halos, second passes) is the same draw."""

    def __init__(self, data: Any, *, rotate: bool, seed: int):
        super().__init__(data)
        self.rotate = bool(rotate)
        self.seed = int(seed)

    def rows(self, r0: int, r1: int) -> np.ndarray:
        ny = self.shape[0]
        if self.rotate:
            block = read_rows(self.data, ny - r1, ny - r0)[::-1, ::-1, ::-1, ::-1]
        else:
            block = read_rows(self.data, r0, r1)
        block = np.clip(np.asarray(block, np.float64), 0.0, None)
        out = np.empty(block.shape, np.float32)
        for i, r in enumerate(range(r0, r1)):
            out[i] = np.random.default_rng([self.seed, r]).poisson(block[i])
        return out


def rotate_centre(center: tuple[float, float], det_shape) -> tuple[float, float]:
    """The detector centre (px) after the detector is rotated by 180°: c → (M − 1 − c)."""
    return (det_shape[0] - 1 - float(center[0]), det_shape[1] - 1 - float(center[1]))


def rotate_back(phase: np.ndarray, scan_shape, pos_scale) -> np.ndarray:
    """A phase from the rotated scan on the result's grid: scan position i sits at object px
    i·s, so original px j is rotated px (n − 1)·s − j (linear interpolation, edges held)."""
    from scipy import ndimage

    h, w = phase.shape
    yy = (scan_shape[0] - 1) * pos_scale[0] - np.arange(h, dtype=np.float64)
    xx = (scan_shape[1] - 1) * pos_scale[1] - np.arange(w, dtype=np.float64)
    coords = np.meshgrid(yy, xx, indexing="ij")
    return ndimage.map_coordinates(np.asarray(phase, np.float64), coords, order=1, mode="nearest")


def looks_like_counts(data: Any, rows: int = 2) -> bool:
    """True when the first scan rows hold whole, non-negative numbers (electron counts)."""
    block = np.asarray(read_rows(data, 0, min(rows, shape_of(data)[0])), np.float64)
    return bool(np.all(block >= 0) and np.allclose(block, np.round(block), atol=1e-3) and block.sum() > 0)


def cnn_sigma_job(result, data: Any, rerun: Callable[[Any, tuple[float, float]], Any], *, center, pos_scale,
                  samples: int = DEFAULT_CNN_SAMPLES, scale: float | None = None, seed: int = 0):
    """Job steps adding ``phase_sigma`` to a finished CNN ``result`` (module doc): ``rerun(data, center)``
    is the same CNN job on other data with another detector centre. Cancelled at any step, or data
    that are not counts: the result is kept without σ and ``metadata["uncertainty"]`` says why."""
    shape = shape_of(data)
    c = CNN_SIGMA_SCALE if scale is None else float(scale)
    try:
        yield Progress(0, samples, "CNN uncertainty (σ): checking the counts", None)
    except JobCancelled:
        return not_computed(result, "cancelled before σ was computed: the result is kept without σ")
    if not looks_like_counts(data):
        return not_computed(result, "σ needs electron counts (whole numbers): these data are scaled, so no σ")
    base = np.asarray(result.phase, np.float64)
    base = base - base.mean()
    acc = np.zeros(base.shape)
    for k in range(int(samples)):
        rotate = k % 2 == 0
        draw = Resampled(data, rotate=rotate, seed=seed + k)
        cen = rotate_centre(center, shape[2:]) if rotate else tuple(center)
        sub = rerun(draw, cen)
        try:
            other = yield from run_sub(sub, lambda p: f"CNN uncertainty (σ) {k + 1}/{samples}: {p.message}")  # noqa: B023
        except JobCancelled:
            sub.close()
            return not_computed(result, "cancelled while σ was computed: the result is kept without σ")
        if other.metadata.get("cancelled") or np.shape(other.phase) != base.shape:
            return not_computed(result, "the σ run did not finish: the result is kept without σ")
        ph = rotate_back(other.phase, shape[:2], pos_scale) if rotate else np.asarray(other.phase, np.float64)
        d = ph - ph.mean() - base
        acc += (d - d.mean()) ** 2
    from scipy import ndimage

    var = ndimage.gaussian_filter(acc / int(samples), SMOOTH_PX, mode="reflect")
    sigma = c * np.sqrt(np.maximum(var, 0.0))
    return attach(result, {"phase": sigma.astype(np.float32)}, model=CNN_MODEL.format(k=samples, s=SMOOTH_PX, c=c),
                  calibrated=False, note=CNN_NOTE, samples=int(samples), scale=c, noise_model="Poisson counts")
