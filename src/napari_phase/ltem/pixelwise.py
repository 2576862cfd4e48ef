"""Pixel-wise LTEM phase retrieval: SIPRAD's forward model and loss without the network.

The ablation of the deep image prior, the faster solver the panel offers, and SIPRAD's seed. The
magnetic phase is optimised directly, pixel by pixel (on the extended canvas with
``boundary="extend"``), from the SITIE start, minimising

    D(φ) + w·σ̂²·R(φ),    D = mean((s·I_sim(φ) − I/mean(I))²)  (the window's pixels),

with the same forward model, amplitude handling (``"uniform"`` or a contaminant mask) and closed-
form intensity scale s as :mod:`.siprad`. σ̂² is the noise variance of the normalised image,
estimated from its finest (diagonal Haar) scale (:func:`noise_variance`). Priors R (rad, px):

- ``"auto"`` (default): ``"tv"`` with the weight chosen from the data (below), unless the image's
  contrast-to-noise ratio (var(I) − σ̂²)/σ̂² is below LOW_CNR = 0.4 or its noise below
  ``noise_floor`` — then the former default, the Laplacian prior with w = 10: with so little
  signal the discrepancy principle over-smooths and TV collapses to flat plateaus (measured,
  bubbles −0.25 mm 50 %: phase / B 0.81 / 0.69 with TV vs 0.75 / 0.86 with the Laplacian); on
  clean small images TV loses to it too (skyrmions 96², noise-free: 0.92 vs 0.95). With
  ``boundary="reflect"`` (the earlier edge model, kept for comparison) it is the earlier prior
  too (TV with mirrored edges: skyrmion window 0.90 vs 0.96). The prior used lands in
  ``metadata["prior_used"]``.
- ``"tv"`` (default): total variation, mean √(|∇φ|² + ε²) (ε = ``tv_epsilon`` rad/px). The
  induction of a magnetic film is concentrated in domain walls (B·t ∝ ∇φ is sparse), so a prior on
  |∇φ| that tolerates sharp walls keeps the plateaus of bubbles and stripe domains flat — the long
  wavelengths the Fresnel image hardly constrains (measured on windows at −1 mm, 50 % noise:
  bubbles 0.94 vs 0.87 with the Laplacian prior).
- ``"laplacian"``: mean squared discrete Laplacian (penalises curvature only; linear ramps are free).
- ``"gradient"``: mean squared finite difference (Tikhonov/H¹; damps the slowest variations).

**Prior strength from the data** (``smoothness=None``, the default): Morozov's discrepancy
principle: keep the strongest prior whose solution still explains the image down to its noise,
D ≤ ``discrepancy`` × σ̂² (a weaker one fits noise). The weights are the ladder 256, 128, …, 0.25
(factors of 2); the search starts at 16 (64 for images cleaner than the noise floor), walks down
while D > τσ̂² (each solve warm-started from the last; it also ends if a step lowers D by < 1 %)
or up while D ≤ τσ̂², and keeps the last weight with D ≤ τσ̂² (measured on windows at −1 mm,
50 % noise it picks w = 2–4, where a sweep of fixed weights peaks). σ̂ is floored at ``noise_floor`` (3 % of the mean intensity): no real image is cleaner
than that relative to this model (electron counts of ~10³ per pixel, the unknown specimen beyond
the ring), and on a noise-free simulation the bare Haar estimate (~0.15 %) would leave the long
wavelengths to the optimiser's slow convergence (bubbles 0.64 instead of 0.96 at −1 mm). A number
for ``smoothness`` fixes w instead. The chosen w lands in the metadata
(``smoothness_used``, ``data_residual`` = D/σ̂²).

Optimiser: L-BFGS (strong-Wolfe line search) in chunks of ``chunk`` iterations; with TV on a
Fourier-preconditioned variable u, φ = F⁻¹[P·F[u]], P(q) = (4 Im T(q)² + w σ̂² g(q) + δ)^−½ with T the
transfer function (4 Im T² is the weak-phase image's curvature: δI ≈ −2 Im(T)·φ per Fourier
component), g(q) = 4 sin²(πq_y) + 4 sin²(πq_x) the discrete |∇|² symbol and δ = 10⁻³·max(4 Im T²);
every wavelength then converges at a similar rate (without it the long wavelengths, whose data
curvature falls as q⁴, were still moving when the run stopped); the quadratic priors optimise the
pixels themselves, as before. A stage stops when a chunk
improves the objective by less than a relative ``tolerance`` or at ``iterations`` L-BFGS steps.
TV lowers the contrast of small features (Rudin–Osher–Fatemi); the kept TV solution is therefore
rescaled about its mean by the one factor α ∈ [1, 3] that minimises the data term alone
(``metadata["debias_scale"]``, measured 1.1–1.2). It recovers part of the loss only: on a bubble
window the phase slope against the truth is 0.55 (Laplacian prior 0.63) while the accuracy is
higher. The result is smoothed like SIPRAD's (Gaussian ``smoothing_px``).
"""

from __future__ import annotations

import math

import numpy as np

from ..jobs import InputError, JobCancelled, Progress, Stopwatch, with_cpu_fallback
from ..uncertainty import check_flag
from ..threads import ThreadTuner
from ..validate import non_negative as _non_negative
from ..validate import positive
from .problem import (
    ForwardModel,
    _int_at_least,
    _jsonable,
    build_result,
    make_problem,
    noise_variance,
    preview,
    sitie_init,
)

PRIORS = ("auto", "gradient", "laplacian", "tv")

#: prior="auto": below this contrast-to-noise ratio (:func:`contrast_to_noise`) the image says too
#: little for the TV prior with a data-chosen weight (it collapses towards flat plateaus; measured:
#: bubbles −0.25 mm 50 %, CNR 0.06, B accuracy 0.69 vs 0.86; stripes −1 mm 100 %, CNR 0.35, phase
#: 0.88 vs 0.96 in the former grid), and the former default
#: (Laplacian prior, w = LOW_CNR_SMOOTHNESS) is used instead.
LOW_CNR = 0.4
LOW_CNR_SMOOTHNESS = 10.0

#: Prior weights (units of σ̂²) the discrepancy principle may pick, strongest first; the search
#: starts at LADDER_START and walks down (residual above the target) or up (below it).
WEIGHT_LADDER = (256.0, 128.0, 64.0, 32.0, 16.0, 8.0, 4.0, 2.0, 1.0, 0.5, 0.25)
LADDER_START = 16.0
#: ... or at LADDER_START_CLEAN when the image is cleaner than the noise floor (the weight will be large).
LADDER_START_CLEAN = 64.0
#: Walking down also ends when a weaker prior lowers the data residual by less than this (relative).
LADDER_FLAT = 0.01

DEFAULTS = {
    "iterations": 300,
    "smoothness": None,
    "prior": "auto",
    "discrepancy": 1.0,
    "tv_epsilon": 0.01,
    "noise_floor": 0.03,
    "smoothing_px": 2.0,
    "tolerance": 1e-4,
    "chunk": 10,
    "mean_inner_potential_v": 20.0,
    "extinction_length_nm": 10.0,
}


def prior_value(phi, kind: str, tv_epsilon: float = DEFAULTS["tv_epsilon"]):
    """R(φ) of a (Y, X) torch map: "gradient" mean |∇φ|², "laplacian" mean (∇²φ)², "tv" mean
    √(|∇φ|² + ε²) (finite differences, rad/px)."""
    if kind == "gradient":
        return ((phi[1:] - phi[:-1]) ** 2).mean() + ((phi[:, 1:] - phi[:, :-1]) ** 2).mean()
    if kind == "tv":
        gx = phi[:-1, 1:] - phi[:-1, :-1]
        gy = phi[1:, :-1] - phi[:-1, :-1]
        return (gx * gx + gy * gy + tv_epsilon**2).sqrt().mean()
    lap = phi[1:-1, 2:] + phi[1:-1, :-2] + phi[2:, 1:-1] + phi[:-2, 1:-1] - 4 * phi[1:-1, 1:-1]
    return (lap**2).mean()


_prior = prior_value  # the earlier private name


def contrast_to_noise(y) -> float:
    """(var(I) − σ̂²)/σ̂² of the normalised image: the variance of its contrast over that of the
    noise (σ̂² from :func:`noise_variance`)."""
    a = np.asarray(y, dtype=np.float64)
    s2 = max(noise_variance(a), 1e-12)
    return float((a.var() - s2) / s2)


def _preconditioner(fm, sigma2: float, weight: float):
    """P(q) = (4 Im T² + w σ̂² g(q) + δ)^−½ on the canvas FFT grid (P(0) = 1: the mean is free)."""
    torch = fm.torch
    transfer = fm.problem_microscope.transfer(fm.canvas_shape, fm.pixel_size_nm)
    curv = torch.as_tensor(4.0 * transfer.imag.astype(np.float64) ** 2, device=fm.device)
    qy = torch.fft.fftfreq(fm.canvas_shape[0], device=fm.device, dtype=torch.float64)[:, None]
    qx = torch.fft.fftfreq(fm.canvas_shape[1], device=fm.device, dtype=torch.float64)[None, :]
    g = 4 * torch.sin(math.pi * qy) ** 2 + 4 * torch.sin(math.pi * qx) ** 2
    denom = curv + weight * sigma2 * g + 1e-3 * float(curv.max().clamp_min(1e-12))
    p = denom.rsqrt()
    p[0, 0] = 1.0
    return p.to(torch.float32)


class FrameSolver:
    """Pixel-wise solve of one frame with the discrepancy-chosen (or a fixed) prior weight.

    ``run(init_canvas)`` is a generator (yields after each L-BFGS chunk; a JobCancelled thrown in
    leaves the latest iterate in ``self.phase``) that returns the canvas phase (numpy). Used by
    the pixel-wise job and as SIPRAD's seed."""

    def __init__(self, fm, y, opts: dict, tuner, mask_f=None, a0: float | None = None):
        import torch
        import torch.nn.functional as F

        self.torch, self.F = torch, F
        self.fm, self.y, self.opts, self.tuner, self.mask_f = fm, y, opts, tuner, mask_f
        #: σ̂² (normalised image), floored at (``noise_floor``)²: see the module doc
        self.sigma2_estimated = noise_variance(y.detach().cpu().numpy())
        self.sigma2 = max(self.sigma2_estimated, opts["noise_floor"] ** 2, 1e-12)
        self.cnr = contrast_to_noise(y.detach().cpu().numpy())
        self.prior, self.fixed = opts["prior"], opts["smoothness"]
        if self.prior == "auto":
            low = self.cnr < LOW_CNR or self.sigma2_estimated < opts["noise_floor"] ** 2 or fm.boundary == "reflect"
            self.prior = "laplacian" if low else "tv"
            if low and self.fixed is None:
                self.fixed = LOW_CNR_SMOOTHNESS
        self.z_c = None
        if mask_f is not None:
            a0 = 0.99 if a0 is None else float(np.clip(a0, 1e-4, 0.99))
            self.z_c = torch.tensor(math.log(math.expm1(-math.log(a0))), device=fm.device, requires_grad=True)
        self.phase = None  # torch (window) — the latest iterate
        self.amp = None
        self.iterations = 0
        self.weight = None
        self.residual = math.nan  # D / σ̂² of the kept solution
        self.stages: list[dict] = []
        self.canvases: list[np.ndarray] = []  # canvas phase of every stage (SIPRAD picks its seed)
        self.kept = 0  # index of the stage whose solution is the result
        self.debias_scale = 1.0
        self.objective = math.nan

    def nla(self):
        return None if self.z_c is None else self.F.softplus(self.z_c) * self.mask_f

    def _snapshot(self, phi):
        self.phase = self.fm.crop(phi).detach().clone()
        self.amp = None if self.z_c is None else self.torch.exp(-self.nla()).detach().clone()

    def _stage(self, phi0: np.ndarray, weight: float):
        """L-BFGS at one weight from ``phi0`` (canvas); returns (canvas phase, D)."""
        torch, fm, opts = self.torch, self.fm, self.opts
        if self.prior == "tv":
            pre = _preconditioner(fm, self.sigma2, max(weight, 0.25))
            to_phi = lambda u: torch.fft.ifft2(torch.fft.fft2(u) * pre).real  # noqa: E731
            u0 = torch.fft.ifft2(torch.fft.fft2(torch.as_tensor(phi0, device=fm.device)) / pre).real
        else:  # the quadratic priors: plain pixels (as before; preconditioned, the Laplacian's free
            # ramps ran away: bubbles −0.25 mm 50 %, 0.62 vs 0.75)
            to_phi = lambda u: u  # noqa: E731
            u0 = torch.as_tensor(phi0, device=fm.device)
        u = u0.detach().clone().requires_grad_(True)
        params = [u] + ([self.z_c] if self.z_c is not None else [])
        w = weight * self.sigma2
        kind, eps = self.prior, opts["tv_epsilon"]

        def objective():
            phi = to_phi(u)
            data, _ = fm.loss(fm.image(phi, self.nla()), self.y)
            return data, data + w * prior_value(phi, kind, eps)

        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=opts["chunk"], history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-12, tolerance_change=1e-14)

        def closure():  # one forward + backward: the unit the thread tuner times
            with self.tuner.step():
                opt.zero_grad(set_to_none=True)
                _, total = objective()
                total.backward()
            return total

        with torch.no_grad():
            _, last = objective()
        last = float(last)
        its = 0
        while its < opts["iterations"]:
            opt.step(closure)
            its = int(opt.state[opt._params[0]].get("n_iter", its + opts["chunk"]))
            with torch.no_grad():
                data, now = objective()
                phi = to_phi(u)
            now = float(now)
            if not math.isfinite(now):
                raise FloatingPointError("pixel-wise solver: the loss became NaN/inf")
            self._snapshot(phi)
            improved = (last - now) / max(abs(last), 1e-12)
            last = now
            yield its
            if improved < opts["tolerance"]:
                break
        self.iterations += its
        self.objective = last
        return phi.detach().cpu().numpy(), float(data)

    def run(self, init_canvas: np.ndarray, first_weight: float | None = None):
        """Solve; ``first_weight`` starts the ladder lower (warm frames of a series)."""
        init = np.asarray(init_canvas, dtype=np.float32)
        with self.torch.no_grad():
            self._snapshot(self.torch.as_tensor(init, device=self.fm.device))
        fixed = self.fixed
        if fixed is not None:
            phi, data = yield from self._stage(init, float(fixed))
            self._keep(float(fixed), data, phi)
            return phi
        target = self.opts["discrepancy"]
        clean = self.sigma2_estimated < self.opts["noise_floor"] ** 2
        start = first_weight or (LADDER_START_CLEAN if clean else LADDER_START)
        k = min(range(len(WEIGHT_LADDER)), key=lambda i: abs(math.log(WEIGHT_LADDER[i] / start)))
        phi, data = yield from self._stage(init, WEIGHT_LADDER[k])
        self._keep(WEIGHT_LADDER[k], data, phi)
        if self.residual > target:  # too strong: weaken until the residual reaches the noise level
            prev = self.residual
            for w in WEIGHT_LADDER[k + 1 :]:
                phi, data = yield from self._stage(phi, w)
                self._keep(w, data, phi)
                if self.residual <= target or self.residual > prev * (1 - LADDER_FLAT):
                    break
                prev = self.residual
        else:  # fits already: strengthen while the residual stays at or below the noise level
            for w in reversed(WEIGHT_LADDER[:k]):
                phi_w, data = yield from self._stage(phi, w)
                if data / self.sigma2 > target:
                    self.stages.append({"weight": w, "residual": data / self.sigma2, "kept": False})
                    self.canvases.append(phi_w)
                    break
                phi = phi_w
                self._keep(w, data, phi)
        if self.prior == "tv" and self.opts.get("debias", True):
            self.canvases[self.kept] = self._debias(self.canvases[self.kept])
        with self.torch.no_grad():  # the result is the kept stage, not a rejected last one
            self._snapshot(self.torch.as_tensor(self.canvases[self.kept], device=self.fm.device))
        return self.canvases[self.kept]

    def _debias(self, canvas: np.ndarray) -> np.ndarray:
        """Undo TV's loss of contrast with one scalar: φ → αφ with α minimising the data term alone
        (golden-section search on α ∈ [1, 3])."""
        torch, fm = self.torch, self.fm
        phi = torch.as_tensor(canvas, device=fm.device)
        mean = phi.mean()

        def d(a):
            with torch.no_grad():
                return float(fm.loss(fm.image(mean + a * (phi - mean), self.nla()), self.y)[0])

        lo, hi = 1.0, 3.0
        g = (math.sqrt(5) - 1) / 2
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        fa, fb = d(a), d(b)
        for _ in range(20):
            if fa < fb:
                hi, b, fb = b, a, fa
                a = hi - g * (hi - lo)
                fa = d(a)
            else:
                lo, a, fa = a, b, fb
                b = lo + g * (hi - lo)
                fb = d(b)
        alpha = 0.5 * (lo + hi)
        if d(alpha) > d(1.0):
            alpha = 1.0
        self.debias_scale = alpha
        return (mean + alpha * (phi - mean)).cpu().numpy()

    def _keep(self, weight: float, data: float, phi: np.ndarray) -> None:
        self.weight, self.residual = weight, data / self.sigma2
        self.stages.append({"weight": weight, "residual": self.residual, "kept": True})
        self.canvases.append(phi)
        self.kept = len(self.canvases) - 1


def _pixelwise_run(device, problem, opts: dict, preview_every: int):
    import torch

    dev = torch.device(device)
    with ThreadTuner.for_device(dev, opts["num_threads"]) as tuner:
        result = yield from _pixelwise_body(dev, problem, opts, preview_every, tuner)
        result.metadata["threads"] = tuner.threads
        result.metadata["thread_tuning"] = tuner.summary()
    return result


def _pixelwise_body(device, problem, opts: dict, preview_every: int, tuner):
    import torch

    clock = Stopwatch()
    dev = torch.device(device)
    fm = ForwardModel(problem, dev, opts["mean_inner_potential_v"], opts["extinction_length_nm"])
    frames = problem.frames
    n_frames = len(frames)
    per_frame = opts["iterations"] * (1 if opts["smoothness"] is not None else 4)  # progress scale (ladder ~4 stages)
    total = n_frames * per_frame
    mask_f = None if fm.mask is None else fm.mask.to(torch.float32)
    done_phases: list[np.ndarray] = []
    done_amps: list = []
    info = {"iterations_run": [], "best_loss": [], "stopped_early": [], "noise_sigma": [], "smoothness_used": [],
            "data_residual": [], "weight_ladder": [], "prior_used": [], "contrast_to_noise": [], "debias_scale": [], "noise_sigma_used": []}
    levels: list[float] = []
    cancelled = False
    solver = None
    prev_canvas, prev_weight = None, None
    try:
        for t in range(n_frames):
            frame = frames[t]
            y = fm.target(frame)
            if prev_canvas is not None and opts["warm_start"]:
                init = prev_canvas
            else:
                init = fm.to_canvas(sitie_init(frame, problem, opts["qc_per_nm"]))
            a0 = None
            if problem.amplitude_mode == "mask":
                m = problem.mask
                a0 = math.sqrt(float(np.clip(frame[m].mean() / frame[~m].mean(), 1e-4, 0.98))) if m.any() else 0.99
            solver = FrameSolver(fm, y, opts, tuner, mask_f, a0)
            first = None if prev_weight is None or not opts["warm_start"] else 2 * prev_weight
            gen = solver.run(init, first)
            k = 0
            try:
                while True:
                    its = next(gen)
                    k += 1
                    done = min(per_frame - 1, solver.iterations + its)
                    show = preview_every > 0 and k % max(1, preview_every // opts["chunk"]) == 0
                    partial = preview(done_phases + [solver.phase.cpu().numpy()], problem, opts["smoothing_px"], "pixel-wise", t) if show else None
                    w_now = solver.stages[-1]["weight"] if solver.stages else None
                    msg = f"pixel-wise: frame {t + 1}/{n_frames}, step {solver.iterations + its}"
                    yield Progress(t * per_frame + done, total, msg + (f" (prior weight after {w_now:g})" if w_now else ""), partial)
            except StopIteration as stop:
                canvas = stop.value
            prev_canvas, prev_weight = canvas, solver.weight
            done_phases.append(solver.phase.cpu().numpy())
            done_amps.append(None if solver.amp is None else solver.amp.cpu().numpy())
            if solver.z_c is not None:
                levels.append(float(torch.exp(-torch.nn.functional.softplus(solver.z_c)).detach()))
            info["iterations_run"].append(solver.iterations)
            info["best_loss"].append(solver.objective)
            info["stopped_early"].append(solver.iterations < per_frame)
            info["noise_sigma"].append(math.sqrt(solver.sigma2_estimated))  # the estimate (before the floor)
            info["smoothness_used"].append(solver.weight)
            info["data_residual"].append(solver.residual)
            info["weight_ladder"].append(solver.stages)
            info["prior_used"].append(solver.prior)
            info["contrast_to_noise"].append(solver.cnr)
            info["debias_scale"].append(solver.debias_scale)
            info["noise_sigma_used"].append(math.sqrt(solver.sigma2))  # after the floor
            solver = None
            yield Progress((t + 1) * per_frame, total, f"pixel-wise: frame {t + 1}/{n_frames} done")
    except JobCancelled:
        cancelled = True
        if solver is not None and solver.phase is not None:
            done_phases.append(solver.phase.cpu().numpy())
            done_amps.append(None if solver.amp is None else solver.amp.cpu().numpy())
        if not done_phases:
            raise
    scalar = not problem.is_series
    meta = {
        "parameters": {**problem.params, **{k: _jsonable(v) for k, v in opts.items()}},
        "seed": int(opts["seed"]),
        "device": str(dev),
        "runtime_s": clock.elapsed_s,
        "cancelled": cancelled,
        "frames_done": len(done_phases),
    }
    for k, v in info.items():
        meta[k] = (v[0] if v else None) if scalar else v
    if problem.amplitude_mode == "mask":
        meta["contaminant_amplitude"] = (levels[0] if levels else None) if scalar else levels
    return build_result("pixel-wise", problem, done_phases, done_amps, fm.phase_per_log_amp, opts["smoothing_px"], meta)


def pixelwise_job(
    image,
    *,
    pixel_size_nm: float,
    defocus_nm: float,
    voltage_kv: float = 200.0,
    cs_mm: float = 1.0,
    divergence_mrad: float = 0.01,
    defocus_spread_nm: float = 100.0,
    amplitude="uniform",
    smoothness: float | None = DEFAULTS["smoothness"],
    prior: str = DEFAULTS["prior"],
    discrepancy: float = DEFAULTS["discrepancy"],
    tv_epsilon: float = DEFAULTS["tv_epsilon"],
    noise_floor: float = DEFAULTS["noise_floor"],
    iterations: int = DEFAULTS["iterations"],
    smoothing_px: float = DEFAULTS["smoothing_px"],
    tolerance: float = DEFAULTS["tolerance"],
    chunk: int = DEFAULTS["chunk"],
    mean_inner_potential_v: float = DEFAULTS["mean_inner_potential_v"],
    extinction_length_nm: float = DEFAULTS["extinction_length_nm"],
    qc_per_nm: float | None = None,
    pad_px: int | None = None,
    boundary: str = "auto",
    warm_start: bool = True,
    num_threads: int | None = None,
    seed: int = 0,
    device="auto",
    preview_every: int = 50,
    uncertainty: bool = False,
):
    """The pixel-wise solver as a job (Progress per chunk of L-BFGS steps; returns PhaseResult;
    cancel returns the current phase with ``metadata["cancelled"] = True``). See :func:`pixelwise`."""
    call = dict(locals())  # the arguments, for the σ re-fits
    want_sigma = check_flag(uncertainty)
    if isinstance(amplitude, str) and amplitude.strip().lower() == "joint":
        raise InputError("the pixel-wise solver supports amplitude 'uniform' or a contaminant mask, not 'joint' (use SIPRAD)")
    problem = make_problem(
        image,
        pixel_size_nm=pixel_size_nm,
        defocus_nm=defocus_nm,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        divergence_mrad=divergence_mrad,
        defocus_spread_nm=defocus_spread_nm,
        amplitude=amplitude,
        pad_px=pad_px,
        boundary=boundary,
    )
    kind = str(prior).strip().lower()
    if kind not in PRIORS:
        raise InputError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    opts = {
        "smoothness": None if smoothness is None else _non_negative(smoothness, "smoothness"),
        "prior": kind,
        "discrepancy": positive(discrepancy, "discrepancy"),
        "tv_epsilon": positive(tv_epsilon, "tv_epsilon", "rad/px"),
        "noise_floor": _non_negative(noise_floor, "noise_floor"),
        "iterations": _int_at_least(iterations, "iterations", 1),
        "smoothing_px": _non_negative(smoothing_px, "smoothing_px"),
        "tolerance": _non_negative(tolerance, "tolerance"),
        "chunk": _int_at_least(chunk, "chunk", 1),
        "mean_inner_potential_v": _non_negative(mean_inner_potential_v, "mean_inner_potential_v"),
        "extinction_length_nm": positive(extinction_length_nm, "extinction_length_nm", "nm"),
        "qc_per_nm": None if qc_per_nm is None else _non_negative(qc_per_nm, "qc_per_nm"),
        "warm_start": bool(warm_start),
        "seed": _int_at_least(seed, "seed", 0),
        "num_threads": None if num_threads is None else _int_at_least(num_threads, "num_threads", 1),
    }
    result = yield from with_cpu_fallback(lambda dev: _pixelwise_run(dev, problem, opts, int(preview_every or 0)), device)
    from .uncertainty import with_refit_sigma

    return (yield from with_refit_sigma(result, pixelwise_job, call, want_sigma, "pixel-wise"))


def pixelwise(
    image,
    *,
    pixel_size_nm: float,
    defocus_nm: float,
    voltage_kv: float = 200.0,
    cs_mm: float = 1.0,
    divergence_mrad: float = 0.01,
    defocus_spread_nm: float = 100.0,
    amplitude="uniform",
    smoothness: float | None = DEFAULTS["smoothness"],
    iterations: int = DEFAULTS["iterations"],
    seed: int = 0,
    device="auto",
    **options,
):
    """Pixel-wise reconstruction (no network) of one LTEM image (Y, X) or a series (T, Y, X).

    Same arguments and outputs as :func:`~napari_phase.ltem.siprad.siprad` (``amplitude``:
    ``"uniform"`` or a 2-D mask; ``"joint"`` needs the network). ``smoothness``: weight w of the
    prior in units of the estimated noise variance, or None (default) = chosen from the data by the
    discrepancy principle (module doc); ``iterations``: most L-BFGS steps per weight tried.
    Further options (:data:`DEFAULTS`): ``prior`` ("tv" | "gradient" | "laplacian"),
    ``discrepancy`` (τ: the residual the weight is chosen to reach, in units of σ̂²),
    ``tv_epsilon`` (ε of the TV prior, rad/px), ``noise_floor`` (least σ̂ as a fraction of the mean),
    ``smoothing_px``, ``tolerance``, ``chunk``, ``mean_inner_potential_v``,
    ``extinction_length_nm``, ``qc_per_nm``, ``boundary`` (as SIPRAD: "auto" | "extend" | "periodic" |
    "reflect"; with "extend" the prior also acts on the free border ring), ``pad_px``, ``warm_start``, ``num_threads``, ``preview_every``.
    Deterministic (L-BFGS from the SITIE start); ``seed`` is recorded only.
    """
    from ..jobs import run_job

    return run_job(
        pixelwise_job(
            image,
            pixel_size_nm=pixel_size_nm,
            defocus_nm=defocus_nm,
            voltage_kv=voltage_kv,
            cs_mm=cs_mm,
            divergence_mrad=divergence_mrad,
            defocus_spread_nm=defocus_spread_nm,
            amplitude=amplitude,
            smoothness=smoothness,
            iterations=iterations,
            seed=seed,
            device=device,
            **options,
        )
    )
