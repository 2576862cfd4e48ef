"""Contaminant detection in ONE defocused LTEM image (numpy in and out): a suggested mask.

What tells a particle from a magnetic texture. An absorbing particle (A = exp(−t/ξ) < 1) removes
electrons: after smoothing over more than the defocus blur √(λ|Δf|) the image keeps a flux deficit
1 − A² at the particle, while a pure (magnetic) phase only moves intensity around — a dark skyrmion
core has its bright ring and the lattice averages to the mean. The particle's flat dark interior,
its size (a blob of 4–10 px at 5 nm/px) and its Fresnel edge fringe add local structure. A fixed
threshold sees only "dark", so skyrmion cores (as dark as particles) pass it.

The detector (two stages, "auto-context"):

1. :func:`features` of the normalised image In = I / mean(I), per pixel: Gaussian means
   G_s(In) − 1 (s = 1 … 32 px; the large ones are the flux deficit), differences of Gaussians,
   scale-normalised Laplacian-of-Gaussian s²∇²G_s (s = 1.5 … 8 px: blobs of radius ≈ s√2) and the
   Hessian eigenvalues (s = 2, 4, 8: blob vs line — a domain wall is a line), gradient magnitudes,
   local standard deviation, local minima/maxima of G_2 (flat dark interior, bright fringe), the
   estimated noise σ. A small multilayer perceptron maps them to a probability p₁.
2. :func:`context_features` of p₁ (p₁ smoothed at 1–8 px, its local max and min) are appended and
   a second perceptron gives p: a pixel next to a confident particle, or inside a blob of the
   right size, is judged with its neighbourhood.

Both perceptrons (2 hidden layers of 64, SiLU) are trained on the project's own simulations
(:func:`napari_phase.ltem.simulate.simulate`; skyrmions, stripes and bubbles, 5–60 % noise,
defocus −0.6 to −1.6 mm, 5 nm pixels, 0–12 particles of radius 20–50 nm) by
``scripts/train_contaminant_detector.py``; weights, feature standardisation, the decision
thresholds (picked on validation simulations, never on the benchmark's) and a card with the
held-out IoU ship in ``models/contaminant_detector.json``. Post-processing: a blob is kept where p
passes ``threshold`` and grown to its connected region above ``grow_threshold`` (hysteresis),
blobs smaller than ``min_size_px`` dropped, holes filled.

Domain: the feature scales are in pixels, learnt at 5 nm/px and |Δf| ≈ 1 mm; the image is
resampled internally so that one pixel is 5 nm (``pixel_size_nm``). A positive (over-focus)
defocus flips the Fresnel fringes: the image is used as is, accuracy there is not measured.
Measured IoU: the weights' card (``card()["heldout_iou"]``) and ``python -m
napari_phase.bench.ltem --only detector``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..jobs import InputError

WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "contaminant_detector.json"
FORMAT = 2  # the weights file's layout; format 1 (one 19-feature stage) is no longer read
TRAIN_PIXEL_SIZE_NM = 5.0
SCALES_PX = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
LOG_SCALES_PX = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
HESSIAN_SCALES_PX = (2.0, 4.0, 8.0)
TEXTURE_SCALES_PX = (2.0, 4.0, 8.0)
TILE_PX = 768  # large images are processed in tiles of this core size ...
TILE_MARGIN_PX = 192  # ... with this much context (> 4·32 px Gaussian reach + the context stage's 4·8 px)


def noise_sigma(img: np.ndarray) -> float:
    """Robust estimate of white-noise σ: MAD of the 4-neighbour Laplacian residual / √20."""
    lap = 4 * img[1:-1, 1:-1] - img[:-2, 1:-1] - img[2:, 1:-1] - img[1:-1, :-2] - img[1:-1, 2:]
    return float(np.median(np.abs(lap - np.median(lap))) * 1.4826 / np.sqrt(20.0))


def features(image: np.ndarray, *, mean: float | None = None, noise: float | None = None) -> np.ndarray:
    """(35, Y, X) float32 stage-1 features of a 2-D image (module docstring); In = I / mean(I).
    ``mean`` and ``noise`` (σ of In): the whole image's, when ``image`` is one tile of it."""
    img = np.asarray(image, dtype=np.float64)
    img = img / (img.mean() if mean is None else float(mean))
    feats = []
    g = {s: ndimage.gaussian_filter(img, s, mode="reflect") for s in SCALES_PX}
    for s in SCALES_PX:
        feats.append(g[s] - 1.0)
    for a, b in zip(SCALES_PX[:-1], SCALES_PX[1:]):
        feats.append(g[a] - g[b])
    for s in LOG_SCALES_PX:
        hyy = ndimage.gaussian_filter(img, s, order=(2, 0), mode="reflect") * s * s
        hxx = ndimage.gaussian_filter(img, s, order=(0, 2), mode="reflect") * s * s
        feats.append(hxx + hyy)  # scale-normalised LoG: > 0 at the centre of a dark blob of radius ≈ s√2
        if s in HESSIAN_SCALES_PX:
            hxy = ndimage.gaussian_filter(img, s, order=(1, 1), mode="reflect") * s * s
            half_diff = np.sqrt(((hxx - hyy) * 0.5) ** 2 + hxy**2)
            feats.append(0.5 * (hxx + hyy) + half_diff)  # larger eigenvalue
            feats.append(0.5 * (hxx + hyy) - half_diff)  # smaller: ≈ 0 along a line (wall), > 0 at a dark blob
    for s in TEXTURE_SCALES_PX:
        gy, gx = np.gradient(g[s] if s in g else ndimage.gaussian_filter(img, s, mode="reflect"))
        feats.append(np.hypot(gy, gx) * s)
        g2 = ndimage.gaussian_filter(img * img, s, mode="reflect")
        feats.append(np.sqrt(np.clip(g2 - g[s] ** 2, 0, None)))
    for size in (5, 9, 15):  # flat dark interior
        feats.append(ndimage.minimum_filter(g[2.0], size=size) - 1.0)
    for size in (9, 15):  # bright Fresnel fringe around it
        feats.append(ndimage.maximum_filter(g[2.0], size=size) - 1.0)
    feats.append(np.full(img.shape, noise_sigma(img) if noise is None else float(noise)))
    return np.stack(feats).astype(np.float32)


def context_features(prob: np.ndarray) -> np.ndarray:
    """(7, Y, X) float32 features of a probability map p: p, G_s(p) for s = 1, 2, 4, 8 px, the
    9-px local max and the 5-px local min."""
    p = np.asarray(prob, dtype=np.float64)
    out = [p] + [ndimage.gaussian_filter(p, s, mode="reflect") for s in (1.0, 2.0, 4.0, 8.0)]
    out += [ndimage.maximum_filter(p, size=9), ndimage.minimum_filter(p, size=5)]
    return np.stack(out).astype(np.float32)


@lru_cache(maxsize=2)
def _load(path: str) -> dict:
    with open(path) as fh:
        raw = json.load(fh)
    if raw.get("format") != FORMAT:
        raise InputError(f"{path} is not a format-{FORMAT} contaminant-detector weights file; re-run scripts/train_contaminant_detector.py")
    stages = [
        {
            "mean": np.asarray(st["mean"], np.float32),
            "std": np.asarray(st["std"], np.float32),
            "layers": [(np.asarray(la["w"], np.float32), np.asarray(la["b"], np.float32)) for la in st["layers"]],
        }
        for st in raw["stages"]
    ]
    return {**raw, "stages": stages}


def card(weights: str | Path | None = None) -> dict:
    """The weights' training card (data, command, time, validation and held-out IoU)."""
    return dict(_load(str(weights or WEIGHTS))["card"])


def mlp_probability(feats: np.ndarray, stage: dict) -> np.ndarray:
    """One stage: p = σ(W₃·silu(W₂·silu(W₁·z + b₁) + b₂) + b₃), z = (f − mean)/std; (Y, X) float32."""
    f, ny, nx = feats.shape
    h = (feats.reshape(f, -1).T - stage["mean"]) / stage["std"]
    layers = stage["layers"]
    for w, b in layers[:-1]:
        h = h @ w.T + b
        h = h * _sigmoid(h)
    w, b = layers[-1]
    return _sigmoid(h @ w.T + b).reshape(ny, nx).astype(np.float32)


def probability(feats: np.ndarray, params: dict) -> np.ndarray:
    """Stage 1 on ``feats``; each further stage on ``feats`` + :func:`context_features` of the
    previous stage's probability. (Y, X) float32."""
    prob = None
    for stage in params["stages"]:
        x = feats if prob is None else np.concatenate([feats, context_features(prob)])
        prob = mlp_probability(x, stage)
    return prob


def tiled_probability(image: np.ndarray, params: dict, tile_px: int = TILE_PX, margin_px: int = TILE_MARGIN_PX) -> np.ndarray:
    """:func:`probability` of :func:`features` computed tile by tile (``tile_px`` cores with
    ``margin_px`` of context around each) so memory stays bounded on large images. The margin is
    wider than every filter's reach (4σ of the 32-px Gaussian plus the context stage's), so
    the tiles join without seams; the mean and noise σ are the whole image's."""
    img = np.asarray(image, dtype=np.float64)
    mean = float(img.mean())
    noise = noise_sigma(img / mean)
    ny, nx = img.shape
    if ny <= tile_px + 2 * margin_px and nx <= tile_px + 2 * margin_px:
        return probability(features(img, mean=mean, noise=noise), params)
    out = np.empty((ny, nx), np.float32)
    for y0 in range(0, ny, tile_px):
        for x0 in range(0, nx, tile_px):
            ya, xa = max(0, y0 - margin_px), max(0, x0 - margin_px)
            yb, xb = min(ny, y0 + tile_px + margin_px), min(nx, x0 + tile_px + margin_px)
            p = probability(features(img[ya:yb, xa:xb], mean=mean, noise=noise), params)
            out[y0 : y0 + tile_px, x0 : x0 + tile_px] = p[y0 - ya : y0 - ya + tile_px, x0 - xa : x0 - xa + tile_px]
    return out


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
    if work.max() == work.min() or work.mean() <= 0:
        raise InputError("the image resampled to 5 nm pixels is constant or has no positive mean")
    prob = tiled_probability(work, params)
    if work.shape != img.shape:
        prob = ndimage.zoom(prob, (img.shape[0] / work.shape[0], img.shape[1] / work.shape[1]), order=1)
        prob = prob[: img.shape[0], : img.shape[1]]
        if prob.shape != img.shape:
            prob = np.pad(prob, [(0, img.shape[0] - prob.shape[0]), (0, img.shape[1] - prob.shape[1])], mode="edge")
    return prob.astype(np.float32)


def mask_from_probability(prob: np.ndarray, threshold: float, grow_threshold: float, min_size_px: int) -> np.ndarray:
    """Hysteresis blobs: connected regions of p > ``grow_threshold`` that contain a pixel with
    p > ``threshold``; blobs of fewer than ``min_size_px`` pixels dropped; holes filled. bool."""
    labels, n = ndimage.label(prob > float(grow_threshold))
    seeded = np.zeros(n + 1, dtype=bool)
    seeded[np.unique(labels[prob > float(threshold)])] = True
    seeded[0] = False
    from .mask import clean_blobs

    return clean_blobs(seeded[labels], min_size_px)


def suggest_contaminant_mask(
    image,
    *,
    pixel_size_nm: float,
    defocus_nm: float,
    voltage_kv: float = 200.0,
    threshold: float | None = None,
    grow_threshold: float | None = None,
    min_size_px: int | None = None,
    weights: str | Path | None = None,
) -> np.ndarray:
    """Boolean mask (True = contaminant) suggested for one defocused LTEM image.

    ``pixel_size_nm`` sets the scale (features are learnt at 5 nm/px); ``defocus_nm`` and
    ``voltage_kv`` are checked (the detector was trained at 200 kV, Δf ≈ −0.6 … −1.6 mm; other
    values run but are outside the measured range). ``threshold``: a blob is a particle where its
    probability exceeds this; ``grow_threshold``: the blob is the connected region above this.
    Both default to the values calibrated on validation simulations (stored with the weights).
    ``min_size_px``: smallest blob kept (default: a disk of radius 15 nm).
    """
    if not np.isfinite(defocus_nm) or defocus_nm == 0:
        raise InputError(f"defocus_nm must be a non-zero number (the detector uses a defocused image), got {defocus_nm}")
    if not (np.isfinite(voltage_kv) and voltage_kv > 0):
        raise InputError(f"voltage_kv must be positive, got {voltage_kv}")
    params = _load(str(weights or WEIGHTS))
    threshold = float(params["threshold"] if threshold is None else threshold)
    grow_threshold = float(min(params["grow_threshold"], threshold) if grow_threshold is None else grow_threshold)
    if not 0.0 < threshold < 1.0:
        raise InputError(f"threshold must be between 0 and 1, got {threshold}")
    if not 0.0 < grow_threshold <= threshold:
        raise InputError(f"grow_threshold must be in (0, threshold], got {grow_threshold}")
    prob = contaminant_probability(image, pixel_size_nm=pixel_size_nm, weights=weights)
    if min_size_px is None:
        min_size_px = int(np.pi * (15.0 / float(pixel_size_nm)) ** 2)
    return mask_from_probability(prob, threshold, grow_threshold, int(min_size_px))


def iou(a, b) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
