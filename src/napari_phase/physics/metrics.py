"""Agreement with ground truth, as docs/benchmarks.md reports it.

All comparisons first crop ``crop`` edge pixels and remove each map's mean.
- accuracy: Pearson correlation of the mean-removed maps (the SIPRAD paper's measure), 1 = perfect.
- ssim: structural similarity (scikit-image), data range = the truth's peak-to-peak.
- psnr: 10 log10(range² / MSE), range = the truth's peak-to-peak (dB).
- xc: normalised cross-correlation Σ a b / sqrt(Σ a² Σ b²) of mean-removed maps (airpi paper).
"""

from __future__ import annotations

import numpy as np


def _prepare(estimate: np.ndarray, truth: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(estimate, dtype=np.float64)
    b = np.asarray(truth, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"estimate shape {a.shape} differs from truth shape {b.shape}")
    if crop:
        a = a[..., crop:-crop, crop:-crop]
        b = b[..., crop:-crop, crop:-crop]
    return a - a.mean(), b - b.mean()


def pearson_accuracy(estimate: np.ndarray, truth: np.ndarray, crop: int = 0) -> float:
    """Pearson correlation of mean-removed maps (0 when either is constant)."""
    a, b = _prepare(estimate, truth, crop)
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


xc = pearson_accuracy  # identical once both maps are mean-removed; kept as the 4D-STEM name


def magnitude_slope(estimate: np.ndarray, truth: np.ndarray, crop: int = 0) -> float:
    """Least-squares slope of the estimate on the truth, Σ a b / Σ b² of mean-removed maps: 1 = the
    right size (a doubled phase gives 2, where every correlation still reads 1); 0 for a constant truth."""
    a, b = _prepare(estimate, truth, crop)
    den = float((b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def psnr(estimate: np.ndarray, truth: np.ndarray, crop: int = 0) -> float:
    a, b = _prepare(estimate, truth, crop)
    rng = float(np.ptp(b))
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(rng**2 / mse)) if rng > 0 else float("-inf")


def ssim(estimate: np.ndarray, truth: np.ndarray, crop: int = 0) -> float:
    from skimage.metrics import structural_similarity

    a, b = _prepare(estimate, truth, crop)
    rng = float(np.ptp(b)) or 1.0
    return float(structural_similarity(a, b, data_range=rng))


def compare(estimate: np.ndarray, truth: np.ndarray, crop: int = 0) -> dict[str, float]:
    """All metrics at once: {'accuracy', 'ssim', 'psnr_db'}."""
    return {
        "accuracy": pearson_accuracy(estimate, truth, crop),
        "ssim": ssim(estimate, truth, crop),
        "psnr_db": psnr(estimate, truth, crop),
    }


def induction_accuracy(bx: np.ndarray, by: np.ndarray, bx_true: np.ndarray, by_true: np.ndarray, crop: int = 0) -> float:
    """B accuracy: Pearson correlation of the stacked (Bx·t, By·t) maps with the truth, each
    component mean-removed and edge-cropped as above."""
    a = np.stack(_prepare(bx, bx_true, crop) + _prepare(by, by_true, crop))
    est, ref = a[[0, 2]], a[[1, 3]]
    den = np.sqrt((est * est).sum() * (ref * ref).sum())
    return float((est * ref).sum() / den) if den > 0 else 0.0
