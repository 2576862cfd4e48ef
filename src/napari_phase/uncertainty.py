"""Per-pixel standard uncertainty σ of a result and its calibration (numpy; no Qt, no torch).

A method asked for ``uncertainty=True`` returns, on the result's grid, ``arrays["phase_sigma"]``
(rad) and, where it gives B, ``arrays["bx_sigma"]``, ``arrays["by_sigma"]`` (T·nm), and describes
them in ``metadata["uncertainty"]`` ({"model", "samples", "calibrated", "note"}).

Noise propagation through a linear method L (SITIE, iCoM, ...): the estimate from data + noise n
is L(data) + L(n), so the noise part of its error has the per-pixel variance
Var_i = E[L(n)_i²], estimated from K draws n_k of the measured noise model:

    σ_i² = (1/K) Σ_k L(n_k)_i²            (E[L(n)] = 0: no mean to subtract),

smoothed over a Gaussian of ``smooth_px`` (the variance of a mirror-padded Fourier filter varies
only over the filter's reach). The relative error of σ is 1/√(2K) per pixel (25 % for K = 8);
smoothing lowers it where the propagated noise decorrelates within ``smooth_px``, but an inverse
Laplacian's or a gradient integration's output noise is correlated over many pixels, so the
error is mostly a smooth, field-wide factor (the benchmark's noise coverage shows its effect).

Calibration (:func:`coverage`): the fraction of pixels with |e − ē| ≤ kσ, e = estimate − truth,
ē its mean (the phase's mean is undefined) or its least-squares plane (B·t's mean is unobservable
from a window: ``remove="plane"``); nominal 0.683 for k = 1 and 0.954 for k = 2, accepted within
:data:`BAND_1SIGMA` / :data:`BAND_2SIGMA`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

#: accepted fraction of pixels within 1σ and within 2σ (nominal 0.683, 0.954)
BAND_1SIGMA = (0.60, 0.76)
BAND_2SIGMA = (0.90, 0.98)

#: σ array name of each estimated array (keep: external checks read these names)
SIGMA_NAMES = {"phase": "phase_sigma", "bx": "bx_sigma", "by": "by_sigma"}

#: noise re-samplings per propagation (module doc: relative error of σ up to 1/√(2K))
DEFAULT_SAMPLES = 8
DEFAULT_SMOOTH_PX = 2.0


def check_flag(uncertainty) -> bool:
    """The ``uncertainty`` keyword: True or False (a clear TypeError otherwise)."""
    if isinstance(uncertainty, (bool, np.bool_)):
        return bool(uncertainty)
    raise TypeError(f"uncertainty must be True or False, got {uncertainty!r}")


def smooth_variance(var: np.ndarray, smooth_px: float) -> np.ndarray:
    """Gaussian-smoothed variance over the last two axes (mirror edges); ``smooth_px`` 0 = none."""
    if not smooth_px:
        return var
    from scipy import ndimage

    sig = [0.0] * (var.ndim - 2) + [float(smooth_px)] * 2
    return ndimage.gaussian_filter(var, sig, mode="reflect")


def propagate(apply: Callable[[np.ndarray], dict[str, np.ndarray]], draw: Callable[[np.random.Generator], np.ndarray],
              *, samples: int = DEFAULT_SAMPLES, smooth_px: float = DEFAULT_SMOOTH_PX, seed: int = 0) -> dict[str, np.ndarray]:
    """σ of each output of a linear map: ``apply(noise)`` -> {name: array} (the method's linear
    operator applied to noise only), ``draw(rng)`` -> one noise draw of the input's shape.
    Returns {name: σ (float32, ≥ 0, finite)} from ``samples`` draws (see module doc)."""
    if int(samples) < 1:
        raise ValueError(f"samples must be >= 1, got {samples!r}")
    rng = np.random.default_rng(seed)
    acc: dict[str, np.ndarray] = {}
    for _ in range(int(samples)):
        for name, out in apply(draw(rng)).items():
            sq = np.asarray(out, np.float64) ** 2
            acc[name] = acc[name] + sq if name in acc else sq
    return {name: np.sqrt(np.maximum(smooth_variance(v / int(samples), smooth_px), 0.0)).astype(np.float32)
            for name, v in acc.items()}


def attach(result, sigmas: dict[str, np.ndarray], *, model: str, calibrated: bool, note: str = "", **info):
    """Put σ arrays into ``result`` (names from :data:`SIGMA_NAMES`, units of the estimated
    arrays) and describe them in ``metadata["uncertainty"]``; returns the result."""
    for key, sigma in sigmas.items():
        name = SIGMA_NAMES[key]
        s = np.asarray(sigma, np.float32)
        if s.shape != np.shape(result.arrays[key]):
            raise ValueError(f"{name} has shape {s.shape}, {key} has {np.shape(result.arrays[key])}")
        result.arrays[name] = np.nan_to_num(np.maximum(s, 0.0), nan=np.inf)
        result.array_units[name] = result.unit_of(key)
    result.metadata["uncertainty"] = {"computed": True, "model": model, "calibrated": bool(calibrated), "note": note, **info}
    return result


def not_computed(result, reason: str):
    """Mark a result asked for σ that has none (e.g. cancelled before σ): it is kept as it is."""
    result.metadata["uncertainty"] = {"computed": False, "calibrated": False, "note": reason}
    return result


def remove_plane(a: np.ndarray) -> np.ndarray:
    """``a`` (Y, X) minus its least-squares plane c0 + c1·y + c2·x."""
    a = np.asarray(a, np.float64)
    yy, xx = np.indices(a.shape, dtype=np.float64)
    m = np.stack([np.ones(a.size), yy.ravel(), xx.ravel()], axis=1)
    coef, *_ = np.linalg.lstsq(m, a.ravel(), rcond=None)
    return a - (m @ coef).reshape(a.shape)


def normalised_error(estimate, truth, sigma, *, remove: str = "mean", crop: int = 0) -> np.ndarray:
    """|e − ē| / σ per pixel (e = estimate − truth; ē its mean or its plane), edges cropped."""
    e = np.asarray(estimate, np.float64) - np.asarray(truth, np.float64)
    s = np.asarray(sigma, np.float64)
    if e.shape != s.shape:
        raise ValueError(f"sigma shape {s.shape} differs from the estimate's {e.shape}")
    if remove not in ("mean", "plane"):
        raise ValueError(f"remove must be 'mean' or 'plane', got {remove!r}")
    if crop:
        e, s = e[..., crop:-crop, crop:-crop], s[..., crop:-crop, crop:-crop]
    e = remove_plane(e) if remove == "plane" else e - e.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > 0, np.abs(e) / s, np.where(e == 0, 0.0, np.inf))


def coverage(estimate, truth, sigma, *, remove: str = "mean", crop: int = 0, ks=(1.0, 2.0)) -> tuple[float, ...]:
    """Fraction of pixels with |e − ē| ≤ kσ for each k in ``ks`` (see module doc)."""
    z = normalised_error(estimate, truth, sigma, remove=remove, crop=crop)
    return tuple(float((z <= k).mean()) for k in ks)


def within_bands(f1: float, f2: float) -> bool:
    """True when the 1σ and 2σ fractions both lie in the accepted bands."""
    return BAND_1SIGMA[0] <= f1 <= BAND_1SIGMA[1] and BAND_2SIGMA[0] <= f2 <= BAND_2SIGMA[1]


def nominal(k: float) -> float:
    """Fraction of a normal distribution within ±kσ (erf(k/√2))."""
    from math import erf, sqrt

    return erf(k / sqrt(2.0))


def run_sub(sub, message: Callable):
    """Drive a sub-job (a σ re-run) inside a job: re-yield its progress as ``message(p)`` without its
    partial results (the layer shown stays the result's); returns its result. A cancel closes it
    and propagates."""
    from .jobs import Progress

    while True:
        try:
            p = next(sub)
        except StopIteration as stop:
            return stop.value
        try:
            yield Progress(p.step, p.total, message(p), None)
        except BaseException:
            sub.close()
            raise


def sigma_step(result, compute: Callable[[], dict[str, np.ndarray]], *, label: str, **attach_kw):
    """Job step (generator) that adds σ to a finished ``result``: one cancellable Progress, then
    ``compute()`` -> {"phase": σ, ...} and :func:`attach`. Cancelled at that step, the result is
    returned as it is, without σ, and ``metadata["uncertainty"]`` says so."""
    from .jobs import JobCancelled, Progress

    try:
        yield Progress(0, 1, f"{label}: uncertainty (σ)", result)
    except JobCancelled:
        return not_computed(result, "cancelled before σ was computed: the result is kept without σ")
    return attach(result, compute(), **attach_kw)


# ----------------------------------------------------------------------------- model error (fitted on validation data)


def highpass_proxy(phase: np.ndarray, smooth_px: float = 2.0) -> np.ndarray:
    """Local RMS of the estimate's detail, p = √(G_s ∗ (φ − G_s ∗ φ)²) (rad; s = ``smooth_px``): where
    a method blurs or shrinks the phase (iCoM's probe blur, SSB's band limit), its error against
    the truth grows with the detail there is to lose. Needs no truth."""
    from scipy import ndimage

    ph = np.asarray(phase, np.float64)
    hp = ph - ndimage.gaussian_filter(ph, smooth_px, mode="reflect")
    return np.sqrt(np.maximum(ndimage.gaussian_filter(hp**2, smooth_px, mode="reflect"), 0.0))


def add_model_error(result, noise_sigma: np.ndarray, c: float, *, proxy: str = "highpass") -> np.ndarray:
    """σ_total = √(σ_noise² + (c·p)²), p = :func:`highpass_proxy` of the result's phase, c fitted on
    validation data only (scripts/fit_model_error_term.py). Keeps the noise part as
    ``arrays["phase_sigma_noise"]``; returns σ_total (for :func:`attach`)."""
    if proxy != "highpass":
        raise ValueError(f"proxy must be 'highpass', got {proxy!r}")
    noise = np.asarray(noise_sigma, np.float64)
    total = np.sqrt(noise**2 + (float(c) * highpass_proxy(result.phase)) ** 2)
    result.arrays["phase_sigma_noise"] = noise.astype(np.float32)
    result.array_units["phase_sigma_noise"] = result.unit_of("phase")
    return total.astype(np.float32)
