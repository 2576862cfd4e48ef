"""Contaminant detection in ONE defocused LTEM image (numpy in and out): a suggested mask.

What tells a particle from a magnetic texture. An absorbing particle (A = exp(−t/ξ) < 1) removes
electrons: after smoothing over more than the defocus blur √(λ|Δf|) the image keeps a flux deficit
1 − A² at the particle, while a pure (magnetic) phase only moves intensity around — a dark skyrmion
core has its bright ring and the lattice averages to the mean. The particle's flat dark interior and
its Fresnel edge fringe add local structure at a few pixels. A fixed threshold sees only "dark",
so skyrmion cores (as dark as particles) pass it.

The detector: multi-scale features of the normalised image In = I / mean(I) — Gaussian means
G_s(In) − 1 (s = 1 … 32 px; the large ones are the flux deficit), differences of Gaussians,
gradient magnitudes, local variance, the estimated noise σ — fed pixel by pixel to a small
multilayer perceptron (2 hidden layers) trained on the project's own simulations
(:func:`napari_phase.ltem.simulate.simulate`: skyrmions, stripes and bubbles, 5–60 % noise,
defocus −0.6 to −1.6 mm, 5 nm pixels, 0–9 particles of radius 20–50 nm; 300 images). The weights ship in
``models/contaminant_detector.json`` with the script that made them
(``scripts/train_contaminant_detector.py``). Post-processing: probability > ``threshold``, blobs
smaller than ``min_size_px`` dropped, holes filled; a blob is kept where its probability passes
``threshold`` and grown to the connected region above ``grow_threshold``.

Domain: the feature scales are in pixels, learnt at 5 nm/px and |Δf| ≈ 1 mm; the image is
resampled internally so that one pixel is 5 nm (``pixel_size_nm``), and a positive (over-focus)
defocus flips the Fresnel fringes: the image is used as is (the features that matter most, the
flux deficit, do not depend on the sign), but accuracy outside the training range is not measured.

Measured (``python -m napari_phase.bench.ltem --only detector``; −1 mm, 6 particles, 5 seeds):
IoU 0.62–0.69 per texture at 30 % and 50 % noise (automatic threshold 0.22–0.33), 0.69 on the
bundled sample (threshold 0.27). The misses: the smallest particles (radius ≲ 5 px) next to dark
skyrmion cores or domain walls, and blurred edges (masks a little small).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..jobs import InputError

WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "contaminant_detector.json"
TRAIN_PIXEL_SIZE_NM = 5.0
SCALES_PX = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def noise_sigma(img: np.ndarray) -> float:
    """Robust estimate of white-noise σ: MAD of the 4-neighbour Laplacian residual / √20."""
    lap = 4 * img[1:-1, 1:-1] - img[:-2, 1:-1] - img[2:, 1:-1] - img[1:-1, :-2] - img[1:-1, 2:]
    return float(np.median(np.abs(lap - np.median(lap))) * 1.4826 / np.sqrt(20.0))


def features(image: np.ndarray) -> np.ndarray:
    """(F, Y, X) float32 features of a 2-D image (see module docstring); In = I / mean(I)."""
    img = np.asarray(image, dtype=np.float64)
    img = img / img.mean()
    feats = []
    g = {s: ndimage.gaussian_filter(img, s, mode="reflect") for s in SCALES_PX}
    g2 = {s: ndimage.gaussian_filter(img * img, s, mode="reflect") for s in (2.0, 4.0, 8.0)}
    for s in SCALES_PX:
        feats.append(g[s] - 1.0)
    for a, b in zip(SCALES_PX[:-1], SCALES_PX[1:]):
        feats.append(g[a] - g[b])
    for s in (2.0, 4.0, 8.0):
        gy, gx = np.gradient(g[s])
        feats.append(np.hypot(gy, gx) * s)
        feats.append(np.sqrt(np.clip(g2[s] - g[s] ** 2, 0, None)))
    # the local minimum of the lightly smoothed image (flat dark interior) and the noise level
    feats.append(ndimage.minimum_filter(g[2.0], size=5) - 1.0)
    feats.append(np.full(img.shape, noise_sigma(img)))
    return np.stack(feats).astype(np.float32)


@lru_cache(maxsize=2)
def _load(path: str) -> dict:
    with open(path) as fh:
        raw = json.load(fh)
    return {k: (np.asarray(v, dtype=np.float32) if isinstance(v, list) else v) for k, v in raw.items()}


def probability(feats: np.ndarray, params: dict) -> np.ndarray:
    """MLP p = σ(W3·silu(W2·silu(W1·z + b1) + b2) + b3), z the standardised features; (Y, X)."""
    f, ny, nx = feats.shape
    z = (feats.reshape(f, -1).T - params["mean"]) / params["std"]
    h = z @ params["w1"].T + params["b1"]
    h = h * _sigmoid(h)
    h = h @ params["w2"].T + params["b2"]
    h = h * _sigmoid(h)
    logit = h @ params["w3"].T + params["b3"]
    return _sigmoid(logit).reshape(ny, nx)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1/(1+exp(-x)), without overflow


def _check(image) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 2:
        raise InputError(f"the contaminant detector needs one 2-D image, got shape {img.shape}")
    if min(img.shape) < 32:
        raise InputError(f"the image is too small for contaminant detection ({img.shape}); at least 32×32 pixels")
    if not np.issubdtype(img.dtype, np.number) or np.iscomplexobj(img):
        raise InputError(f"the image must be real numbers, got dtype {img.dtype}")
    img = img.astype(np.float64)
    if not np.isfinite(img).all():
        raise InputError("the image contains NaN or inf values")
    if img.max() == img.min():
        raise InputError("the image is constant: there is nothing to detect")
    if img.mean() <= 0:
        raise InputError("the image has a non-positive mean intensity: give an intensity image (counts)")
    return img


def contaminant_probability(image, *, pixel_size_nm: float, weights: str | Path | None = None) -> np.ndarray:
    """Per-pixel probability (float32, image shape) that a pixel belongs to a contaminant."""
    img = _check(image)
    if not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise InputError(f"pixel_size_nm must be positive, got {pixel_size_nm}")
    params = _load(str(weights or WEIGHTS))
    zoom = float(pixel_size_nm) / TRAIN_PIXEL_SIZE_NM
    work = img if abs(zoom - 1.0) < 0.05 else ndimage.zoom(img, zoom, order=1)
    if min(work.shape) < 16:
        raise InputError("the image covers too small an area for contaminant detection")
    prob = probability(features(work), params)
    if work.shape != img.shape:
        prob = ndimage.zoom(prob, (img.shape[0] / work.shape[0], img.shape[1] / work.shape[1]), order=1)
        prob = prob[: img.shape[0], : img.shape[1]]
        if prob.shape != img.shape:
            prob = np.pad(prob, [(0, img.shape[0] - prob.shape[0]), (0, img.shape[1] - prob.shape[1])], mode="edge")
    return prob.astype(np.float32)


def suggest_contaminant_mask(
    image,
    *,
    pixel_size_nm: float,
    defocus_nm: float,
    voltage_kv: float = 200.0,
    threshold: float = 0.5,
    grow_threshold: float = 0.3,
    min_size_px: int | None = None,
    weights: str | Path | None = None,
) -> np.ndarray:
    """Boolean mask (True = contaminant) suggested for one defocused LTEM image.

    ``pixel_size_nm`` sets the scale (features are learnt at 5 nm/px); ``defocus_nm`` and
    ``voltage_kv`` are checked (the detector was trained at 200 kV, Δf ≈ −0.6 … −1.6 mm; other
    values run but are outside the measured range). ``threshold``: a blob is a particle where its
    probability exceeds this; ``grow_threshold``: the blob is the connected region above this
    (hysteresis: the probability map under-covers the particles' blurred edges).
    ``min_size_px``: smallest blob kept (default: a disk of radius 15 nm).
    """
    if not np.isfinite(defocus_nm) or defocus_nm == 0:
        raise InputError(f"defocus_nm must be a non-zero number (the detector uses a defocused image), got {defocus_nm}")
    if not (np.isfinite(voltage_kv) and voltage_kv > 0):
        raise InputError(f"voltage_kv must be positive, got {voltage_kv}")
    if not 0.0 < float(threshold) < 1.0:
        raise InputError(f"threshold must be between 0 and 1, got {threshold}")
    prob = contaminant_probability(image, pixel_size_nm=pixel_size_nm, weights=weights)
    if not 0.0 < float(grow_threshold) <= float(threshold):
        raise InputError(f"grow_threshold must be in (0, threshold], got {grow_threshold}")
    labels, n = ndimage.label(prob > float(grow_threshold))
    seeded = np.zeros(n + 1, dtype=bool)
    seeded[np.unique(labels[prob > float(threshold)])] = True
    seeded[0] = False
    mask = seeded[labels]
    if min_size_px is None:
        min_size_px = int(np.pi * (15.0 / float(pixel_size_nm)) ** 2)
    if min_size_px > 1 and mask.any():
        labels, n = ndimage.label(mask)
        sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
        keep = np.zeros(n + 1, dtype=bool)
        keep[1:] = sizes >= min_size_px
        mask = keep[labels]
    return ndimage.binary_fill_holes(mask)


def iou(a, b) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
