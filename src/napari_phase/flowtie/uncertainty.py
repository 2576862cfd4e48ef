"""σ of the classical TIE's phase by noise propagation (numpy; see :mod:`napari_phase.uncertainty`).

The classical TIE is linear in ∂I/∂z = (I+ − I−)/(2 dz) for a fixed in-focus image I0
(:mod:`.baselines`), but I0 enters the divergence ∇·(I0∇φ) too, and at low dose on a crystal (strong
phase gradients) its noise is not negligible (measured: CeO2 3 nm at 1e3 e/Å², noise coverage
0.21 / 0.41 with ∂I/∂z noise alone). So σ is the RMS over K draws of the change of the same solve
(I0 inside the divergence, cut-off, padding) when noise is added to all three images
(:func:`napari_phase.uncertainty.propagate`): σ² = (1/K) Σ_k [φ(I + n_k) − φ(I)]². The noise is
shot noise shaped: Var n(x) = σ_I² · Ī(x) / mean(I), Ī the image smoothed over 1 px (clipped at 0),
σ_I the noise each image shows (Immerkær's estimator, :func:`napari_phase.ltem.regularise.noise_sigma`).
White noise of the same mean variance puts too much noise in the dark pixels, where 1/I0 amplifies
it (measured: CeO2 20 nm at 1e4 e/Å², noise coverage 1.00 / 1.00 with white noise).

This is the noise part of the error only: the finite-difference ∂I/∂z (exact only while
πλ dz q² ≪ 1), the cut-off and a crystal crop's unknown edge flux are model errors σ does not hold.
"""

from __future__ import annotations

import numpy as np

from ..physics.poisson import solve_tie
from ..ltem.regularise import noise_sigma
from ..uncertainty import DEFAULT_SAMPLES, propagate

CLASSICAL_MODEL = ("noise propagation: each image's noise (Immerkær σ, shot-noise shaped) added to I−, I0, I+ and the "
                   "classical TIE solve repeated, RMS of the change over {k} draws")
CLASSICAL_NOTE = ("noise part only: the finite-difference ∂I/∂z, the Tikhonov cut-off and the crop's edge flux are "
                  "not in σ (docs/methods.md, Uncertainty)")


def shot_noise_sd(imgs: np.ndarray) -> np.ndarray:
    """Per-pixel noise SD of each image of a (3, H, W) triplet, shot-noise shaped (module doc):
    σ_I · √(Ī(x) / mean I), Ī the image smoothed over 1 px and clipped at 0, σ_I Immerkær's."""
    from scipy import ndimage

    imgs = np.asarray(imgs, np.float64)
    shape = np.clip(ndimage.gaussian_filter(imgs, (0, 1.0, 1.0), mode="reflect"), 0.0, None)
    shape = shape / np.maximum(shape.mean(axis=(-2, -1), keepdims=True), 1e-12)
    return np.sqrt(shape) * np.array([noise_sigma(f) for f in imgs])[:, None, None]


def classical_sigma(tri, qc: float, uniform_i0: bool, pad: bool, *, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> dict:
    """{"phase": σ (rad)} of :func:`.baselines.solve_classical` for a prepared triplet."""
    imgs = tri.images.astype(np.float64)
    sd = shot_noise_sd(imgs)

    def solve(stack: np.ndarray) -> np.ndarray:
        didz = (stack[2] - stack[0]) / (2 * tri.dz_a)
        i0 = None if uniform_i0 else stack[1]
        return solve_tie(didz, tri.wavelength_a, tri.pixel_size_a, intensity=i0, qc=qc, pad=bool(pad))

    base = solve(imgs)
    return propagate(lambda noise: {"phase": solve(imgs + noise) - base}, lambda rng: rng.standard_normal(imgs.shape) * sd,
                     samples=samples, seed=seed)


#: FlowTIE's σ scale c (σ = c · the raw spread below), fitted on the "val" split only
#: (InP, Pt, Mo, ZnO, WS2; never the held-out CeO2 / LaAlO3 the benchmark scores):
#: ``python scripts/fit_flowtie_sigma_scale.py`` — the 68.3 % quantile of |e|/σ_raw, pooled.
FLOWTIE_SIGMA_SCALE = 2.055  # 25 val cases; with it, val-pooled within 2σ: 0.889
FLOWTIE_MODEL = ("spread of the network over the 8 grid symmetries of a noise-re-sampled triplet (each image's Immerkær "
                 "σ) around the result, scaled by c = {c:.3g} fitted on the validation split")
FLOWTIE_NOTE = ("network σ: the 8-symmetry spread of one noise re-sampling, scaled by a factor fitted on the validation "
                "crystals; calibrated in pool, not per case (docs/benchmarks.md, Uncertainty)")


def flowtie_sigma(frames, imgs_net: np.ndarray, phase_net: np.ndarray, to_output, *, scale: float = FLOWTIE_SIGMA_SCALE,
                  seed: int = 0) -> dict:
    """{"phase": σ (rad)} of FlowTIE: ``frames(tri_net) -> (8, H, W)`` the network's phase in each of the 8
    grid frames (brought back), for a copy of the network-grid triplet ``imgs_net`` (3, H, W) with
    white noise of each image's Immerkær σ added; σ_raw² = mean over frames of (φ_g − mean φ_g −
    φ_net)², φ_net the (mean-removed) result on the network grid; σ = scale · σ_raw, smoothed over
    1 net px and brought to the output grid by ``to_output`` (net grid -> input grid)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    imgs = np.asarray(imgs_net, np.float64)
    sd = np.array([noise_sigma(f) for f in imgs])[:, None, None]
    ph = np.asarray(frames((imgs + sd * rng.standard_normal(imgs.shape)).astype(np.float32)), np.float64)
    ph = ph - ph.mean(axis=(-2, -1), keepdims=True)
    ref = np.asarray(phase_net, np.float64)
    var = ((ph - (ref - ref.mean())) ** 2).mean(axis=0)
    sigma = float(scale) * np.sqrt(np.maximum(ndimage.gaussian_filter(var, 1.0, mode="reflect"), 0.0))
    return {"phase": np.maximum(np.asarray(to_output(sigma), np.float32), 0.0)}


# ----------------------------------------------------------------------------- gradient descent

#: re-fits of the gradient-descent baseline for its σ (each costs one plain run: σ costs (K + 1)×)
GD_SAMPLES = 2
GD_MODEL = ("spread of {k} re-fits (same start rule, same steps) on the triplet with re-sampled noise (each image's "
            "Immerkær σ, shot-noise shaped) around the result, smoothed over 2 px")
GD_NOTE = ("noise part only, from {k} re-fits (σ's own relative error ~1/√(2K) before smoothing): the optimiser's "
           "incomplete convergence and the forward model's error are not in σ (docs/methods.md, Uncertainty)")


def gd_sigma_job(tri, phase: np.ndarray, refit, *, samples: int = GD_SAMPLES, seed: int = 0):
    """Job: σ of the gradient-descent phase by re-fits on re-sampled noise,

        σ² = G_2 * [(1/K) Σ_k (φ_k − mean φ_k − φ)²],   φ_k = refit(I + n_k),

    n_k drawn like :func:`classical_sigma`'s (shot-shaped, each image's Immerkær σ) and ``refit(images)``
    a sub-job running the method's own fit (start, steps, band limit) on other images, returning
    (phase, cancelled). Returns {"phase": σ} or None when a re-fit was cancelled."""
    from scipy import ndimage

    imgs = tri.images.astype(np.float64)
    sd = shot_noise_sd(imgs)
    rng = np.random.default_rng(seed)
    ref = np.asarray(phase, np.float64)
    ref = ref - ref.mean()
    acc = np.zeros(ref.shape)
    for _ in range(int(samples)):
        other, cancelled = yield from refit((imgs + sd * rng.standard_normal(imgs.shape)).astype(np.float32))
        if cancelled:
            return None
        d = np.asarray(other, np.float64)
        acc += (d - d.mean() - ref) ** 2
    var = ndimage.gaussian_filter(acc / int(samples), 2.0, mode="reflect")
    return {"phase": np.sqrt(np.maximum(var, 0.0)).astype(np.float32)}
