"""σ of SITIE's phase and B·t by noise propagation (numpy; see :mod:`napari_phase.uncertainty`).

SITIE is linear in the image: φ = −(2π/λ) ∇⁻²_qc [(I − I0)/(Δf I0)] (:mod:`.sitie`), so white noise
n of the standard deviation σ_n the image shows (Immerkær's estimator, :func:`.regularise.noise_sigma`)
gives the phase noise −(2π/λ) ∇⁻²_qc [n/(Δf I0)], and B·t the central differences of it
(:func:`~napari_phase.physics.induction.induction_from_phase`).

Exact path (mirror padding, no "auto" filter): the reflect extension n → 2n − 2 makes the FFT
solve diagonal in the orthonormal DCT-I basis C (scipy's ``dct(type=1, norm="ortho")``):
∇⁻²_qc = S Cᵀ diag(K) C S⁻¹, S = √2 on the edge pixels (they are not repeated in the extension),
K the kernel of :func:`napari_phase.physics.poisson.inverse_laplacian_kernel` on the padded grid. For white noise of
unit variance, with S⁻² ≈ 1 (neglected: it lowers the variance of the outermost pixels by ≲ 15 %),

    Var φ(y, x) = Σ_{ky,kx} By(y, ky)² K(ky, kx)² Bx(x, kx)²,    B = S Cᵀ per axis,

two matrix products; for ∂φ/∂y (∂φ/∂x) By (Bx) is replaced by its central difference along y (x).
Cost: O(n³), below one FFT solve for n ≤ 512. Otherwise (periodic solve, ``qc_per_nm="auto"``)
σ is the root-mean-square of the same solver applied to noise draws (:func:`napari_phase.uncertainty.propagate`).

This is the noise part of the error only. SITIE's model error (the Tikhonov cut-off's damping of
slow phase, the uniform-amplitude assumption, the linear-in-Δf approximation, a window's unseen
surroundings) is not in σ; on the project's simulations it dominates at |Δf| ≥ 1 mm and low noise
(docs/benchmarks.md, "Uncertainty"), so the σ is marked uncalibrated against the truth.
"""

from __future__ import annotations

import numpy as np

from ..physics.constants import HBAR_OVER_E_T_NM2
from ..physics.induction import induction_from_phase
from ..physics.optics import electron_wavelength_nm
from ..uncertainty import DEFAULT_SAMPLES, propagate
from ..physics.poisson import inverse_laplacian_kernel, solve_tie
from .regularise import noise_sigma

#: what metadata["uncertainty"]["note"] says of SITIE's σ
SITIE_NOTE = ("noise part only: σ propagates the image noise (Immerkær σ, white) through SITIE; the model error "
              "(Tikhonov damping of slow phase, amplitude, large defocus) is not included, so |error| exceeds σ "
              "far more often than 32 % on simulations (docs/benchmarks.md, Uncertainty)")
SITIE_MODEL = ("noise propagation: image noise (Immerkær σ, white Gaussian) through the SITIE solver (exact DCT-I "
               "variance with mirror padding, else the RMS over {k} noise draws)")


def _dct_basis(n: int, px: float) -> tuple[np.ndarray, np.ndarray]:
    """(B, ∂B) per axis: B = S Cᵀ (rows: pixels, columns: DCT-I index), ∂B its central difference."""
    from scipy.fft import dct

    basis = dct(np.eye(n), type=1, norm="ortho", axis=0).T
    if n > 1:
        basis[[0, -1]] *= np.sqrt(2.0)
    deriv = np.gradient(basis, px, axis=0) if n > 1 else np.zeros_like(basis)
    return basis, deriv


def inverse_laplacian_variance(shape: tuple[int, int], px: float, qc: float) -> dict[str, np.ndarray]:
    """Per-pixel variance of ∇⁻²_qc n, ∂/∂y and ∂/∂x of it, for white noise n of unit variance
    on a (Y, X) grid solved with mirror padding (module doc; lengths in the unit of ``px``)."""
    ny, nx = int(shape[0]), int(shape[1])
    k2 = inverse_laplacian_kernel((max(2 * ny - 2, 1), max(2 * nx - 2, 1)), px, qc)[:ny, :nx] ** 2
    by, dby = _dct_basis(ny, px)
    bx, dbx = _dct_basis(nx, px)
    var = lambda a, b: (a**2) @ k2 @ (b**2).T  # noqa: E731
    return {"phase": var(by, bx), "dy": var(dby, bx), "dx": var(by, dbx)}


def sitie_frame_sigma(image: np.ndarray, px: float, df: float, kv: float, qc: float, pad: bool, auto: bool,
                      *, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """{"phase", "bx", "by"}: σ (rad, T·nm) of SITIE's result for one image (Y, X)."""
    img = np.asarray(image, dtype=np.float64)
    i0 = float(img.mean())
    sigma_n = noise_sigma(img)
    lam = electron_wavelength_nm(kv)
    if pad and not auto:
        scale = (2 * np.pi / lam) * sigma_n / (abs(df) * i0)
        v = inverse_laplacian_variance(img.shape, px, qc)
        return {"phase": (scale * np.sqrt(v["phase"])).astype(np.float32),
                "bx": (HBAR_OVER_E_T_NM2 * scale * np.sqrt(v["dy"])).astype(np.float32),
                "by": (HBAR_OVER_E_T_NM2 * scale * np.sqrt(v["dx"])).astype(np.float32)}

    def apply(noise: np.ndarray) -> dict[str, np.ndarray]:
        if auto:
            from .regularise import wiener_filter

            noise = wiener_filter(img, sigma_n, px, pad=pad, apply_to=noise)[0]
        phase = solve_tie(noise / df, lam, px, intensity=i0, qc=qc, pad=pad)
        bx, by = induction_from_phase(phase, px)
        return {"phase": phase, "bx": bx, "by": by}

    return propagate(apply, lambda rng: rng.normal(0.0, sigma_n, img.shape), samples=samples, seed=seed)


def sitie_sigma(image: np.ndarray, px: float, df: float, kv: float, qc: float, pad: bool, auto: bool,
                *, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """σ maps for one image (Y, X) or a series (T, Y, X), frame by frame."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        return sitie_frame_sigma(arr, px, df, kv, qc, pad, auto, samples=samples, seed=seed)
    frames = [sitie_frame_sigma(f, px, df, kv, qc, pad, auto, samples=samples, seed=seed) for f in arr]
    return {k: np.stack([f[k] for f in frames]) for k in ("phase", "bx", "by")}


SERIES_MODEL = ("noise propagation: each image's noise (Immerkær σ, white Gaussian) added to the series (and the "
                "flipped series), the same TIE solve repeated, RMS of the change over {k} draws")
SERIES_NOTE = ("noise part only: σ propagates the images' noise through the TIE solve; the model error (cut-off, "
               "finite-difference or spectral ∂I/∂z, boundary, alignment) is not included (docs/benchmarks.md, Uncertainty)")


def series_sigma(series: np.ndarray, flipped: np.ndarray | None, solve, px: float, *, samples: int = DEFAULT_SAMPLES,
                 seed: int = 0) -> dict[str, np.ndarray]:
    """{"phase", "bx", "by"}: σ of a TIE series' phase (the magnetic φm = (φ − φflip)/2 with a
    flipped series) by perturbation: ``solve(stack) -> φ`` is the job's own solve on the (cropped,
    aligned) series, nearly linear in the stack (∂I/∂z linear, I0 = the series mean changes only by
    noise/N), so solve(S + n) − solve(S) is the propagated noise."""
    stacks = [np.asarray(series, np.float64)] + ([np.asarray(flipped, np.float64)] if flipped is not None else [])
    base = [solve(s) for s in stacks]
    sig = np.array([[noise_sigma(f) for f in s] for s in stacks])[..., None, None]

    def apply(noise: np.ndarray) -> dict[str, np.ndarray]:
        d = [solve(s + n).astype(np.float64) - b for s, n, b in zip(stacks, noise, base)]
        phase = d[0] if len(d) == 1 else (d[0] - d[1]) / 2
        bx, by = induction_from_phase(phase, px)
        return {"phase": phase, "bx": bx, "by": by}

    return propagate(apply, lambda rng: rng.standard_normal((len(stacks),) + stacks[0].shape) * sig, samples=samples, seed=seed)


# ----------------------------------------------------------------------------- iterative fits (SIPRAD, pixel-wise, joint)

#: re-fits for the σ of an iterative LTEM fit (each costs one plain run: σ costs (K + 1)×; K = 1 keeps the 2× cap)
REFIT_SAMPLES = 1
REFIT_SMOOTH_PX = 2.0
REFIT_MODEL = ("parametric bootstrap: spread of {k} re-fit(s) (the same solver and options, another seed) of the result's "
               "own model image plus white noise of the fit check's σ, around the result, smoothed over {s:g} px")
REFIT_NOTE = ("noise and seed part only, from {k} re-fit(s) (σ's own relative error ~1/√(2K) before smoothing): the "
              "prior's bias and the forward model's error are not in σ (docs/methods.md, Uncertainty)")


def refit_sigma_job(result, image, refit, *, label: str, samples: int = REFIT_SAMPLES, seed: int = 0):
    """Job steps adding σ of ``phase``, ``bx``, ``by`` to a finished fit ``result``:

        σ² = G_s * [(1/K) Σ_k (a_k − a)²]   for a = φ (each φ_k's mean moved onto φ's), Bx·t, By·t,

    a_k from ``refit(image_k, seed_k)`` (a sub-job: the same solver on other data, returning its
    PhaseResult), seed_k = seed + k + 1, and a parametric bootstrap image
    image_k = M + n_k: M = image − σ̂·r the result's own model image (r = ``arrays["residual"]``, the
    fit check's residual in units of its noise σ̂, :mod:`.fit_check`), n_k white noise of σ̂. The
    re-fitted image has the data's noise level, so a solver that sets its regularisation from the
    noise (the discrepancy principle) sets it as for the data: adding noise to the image instead
    doubled the noise variance and moved that choice (pixel-wise, measured: σ 1.6–1.8× the spread
    over noise draws). Without a residual map (no fit check): image + n_k. Each re-fit differs from
    the result by the response to one noise draw and by what the seed changes. Cancelled at any
    step: the result without σ, and ``metadata["uncertainty"]`` says so."""
    from ..jobs import JobCancelled, Progress
    from ..uncertainty import attach, not_computed, run_sub, smooth_variance

    img = np.asarray(image, np.float64)
    resid, fc = result.arrays.get("residual"), result.metadata.get("fit_check")
    if resid is not None and np.shape(resid) == img.shape and fc:
        sd = np.array([f["noise_sigma"] for f in (fc if isinstance(fc, list) else [fc])]).reshape(img.shape[:-2] + (1, 1))
        img = img - sd * np.asarray(resid, np.float64)  # the result's model image M
    else:
        frames = img.reshape((-1,) + img.shape[-2:])
        sd = np.array([noise_sigma(f) for f in frames]).reshape(img.shape[:-2] + (1, 1))
    rng = np.random.default_rng(seed)
    keys = [k for k in ("phase", "bx", "by") if k in result.arrays]
    acc = {k: np.zeros(np.shape(result.arrays[k])) for k in keys}
    for i in range(int(samples)):
        sub = refit((img + sd * rng.standard_normal(img.shape)).astype(np.float32), seed + i + 1)
        try:
            yield Progress(0, 1, f"{label}: uncertainty (σ), re-fit {i + 1}/{samples}", None)
            other = yield from run_sub(sub, lambda p: f"{label} σ re-fit {i + 1}/{samples}: {p.message}")  # noqa: B023
        except JobCancelled:
            sub.close()
            return not_computed(result, "cancelled while σ was computed: the result is kept without σ")
        if other.metadata.get("cancelled"):
            return not_computed(result, "cancelled while σ was computed: the result is kept without σ")
        for k in keys:
            d = np.asarray(other.arrays[k], np.float64) - np.asarray(result.arrays[k], np.float64)
            if k == "phase":
                d = d - d.mean(axis=(-2, -1), keepdims=True)
            acc[k] += d**2
    sig = {k: np.sqrt(np.maximum(smooth_variance(acc[k] / int(samples), REFIT_SMOOTH_PX), 0.0)) for k in keys}
    return attach(result, sig, model=REFIT_MODEL.format(k=samples, s=REFIT_SMOOTH_PX), calibrated=False,
                  note=REFIT_NOTE.format(k=samples), samples=int(samples), noise_model="white, Immerkær σ per frame")


def with_refit_sigma(result, job, call: dict, want_sigma: bool, label: str):
    """Job step: ``result`` of ``job`` (siprad_job, pixelwise_job) called with ``call`` (its
    arguments), with σ of phase, Bx·t, By·t from :func:`refit_sigma_job` when ``want_sigma``."""
    from ..uncertainty import not_computed

    if not want_sigma:
        return result
    if result.metadata.get("cancelled"):
        return not_computed(result, "cancelled: no σ")

    def refit(image, seed):
        return job(image, **{**{k: v for k, v in call.items() if k != "image"}, "seed": seed, "preview_every": 0,
                             "uncertainty": False})

    return (yield from refit_sigma_job(result, call["image"], refit, label=label))
