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
