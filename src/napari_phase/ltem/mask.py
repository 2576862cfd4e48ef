"""Contaminant mask from a threshold: the science behind the panel's mask tool (numpy only)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..jobs import InputError


def threshold_mask(
    image: np.ndarray,
    threshold: float,
    *,
    below: bool = True,
    smooth_px: float = 1.0,
    min_size_px: int = 4,
) -> np.ndarray:
    """Boolean mask of contaminant pixels: image (lightly Gaussian-smoothed by ``smooth_px``) below
    (``below=True``, dark particles) or above ``threshold``; blobs smaller than ``min_size_px``
    pixels are dropped and holes filled."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise InputError(f"the mask tool needs a 2-D image, got shape {img.shape}")
    if smooth_px > 0:
        img = ndimage.gaussian_filter(img, smooth_px)
    mask = img < threshold if below else img > threshold
    return clean_blobs(mask, min_size_px)


def clean_blobs(mask: np.ndarray, min_size_px: int) -> np.ndarray:
    """A particle mask tidied: connected blobs smaller than ``min_size_px`` pixels dropped, holes filled."""
    mask = np.asarray(mask, bool)
    if min_size_px > 1 and mask.any():
        labels, n = ndimage.label(mask)
        sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
        keep = np.zeros(n + 1, dtype=bool)
        keep[1:] = sizes >= min_size_px
        mask = keep[labels]
    return ndimage.binary_fill_holes(mask)


def suggest_threshold(image: np.ndarray, below: bool = True, smooth_px: float = 2.0) -> float:
    """A starting threshold for dark (or bright) particles: the Gaussian-smoothed image's median
    ∓ 3 robust standard deviations, kept inside the smoothed image's range."""
    img = np.asarray(image, dtype=np.float64)
    if smooth_px > 0:
        img = ndimage.gaussian_filter(img, smooth_px)
    med = float(np.median(img))
    mad = float(np.median(np.abs(img - med))) * 1.4826 or float(img.std())
    lo, hi = np.percentile(img, [0.5, 99.5])
    return float(np.clip(med - 3 * mad if below else med + 3 * mad, lo, hi))


def check_mask(mask, image_shape: tuple[int, ...]) -> np.ndarray:
    """A mask (bool/int; non-zero = contaminant) matching the image's last two axes, as bool."""
    m = np.asarray(mask)
    if m.shape != tuple(image_shape[-2:]):
        raise InputError(f"the mask has shape {m.shape} but the image is {tuple(image_shape[-2:])}: they must match")
    if not (m.dtype == bool or np.issubdtype(m.dtype, np.integer)):
        raise InputError(f"the mask must be boolean or integer labels, got dtype {m.dtype}")
    return m != 0
