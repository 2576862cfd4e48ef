"""SIPRAD: magnetic phase and induction from one Lorentz-TEM image with a deep image prior.

After McCray, Zhou et al. (npj Comput. Mater. 2024); physics and conventions in DESIGN.md §3–5.

Model. The exit wave is ψ = A exp(i(φm + φe)); the image is I = s·|F⁻¹[F[ψ]·T]|² with the lens
transfer T(q) of :class:`~napari_phase.ltem.forward.Microscope` (defocus, Cs, divergence and
defocus-spread envelopes). What lies beyond the image edge is the ``boundary`` model
(:mod:`.boundary`): ``"auto"`` (default) treats the image as a periodic tile when its opposite
edges match, else as a window of a larger specimen (``"extend"``: φm lives on a canvas larger by a
free border ring of ``pad_px`` ≥ the transfer's lateral reach; the image is formed on the canvas
and compared with the data inside the window only); ``"reflect"`` is the earlier mirror padding
(measured on windows at −1 mm, 50 % noise: skyrmions 0.987 with the ring vs 0.965 reflected).
The measured image is divided by its mean; the
intensity scale s is fitted in closed form at every step (s = ⟨I_sim, I⟩/⟨I_sim, I_sim⟩).

Deep image prior. A light U-Net (:mod:`.dip`) maps a fixed input — the seed phase divided by its
standard deviation — to φm (times the same scale). The seed (``init``): ``"sitie"`` — the SITIE
phase, optionally smoothed by a Gaussian of ``init_smoothing_px`` (default 0; with ``init="auto"``
2 px on an image outside the weak-phase regime, :data:`STRONG_PHASE_INIT_SMOOTHING_PX`); ``"pixelwise"`` —
the pixel-wise solution with the TV prior whose weight is chosen from the data
(:class:`~napari_phase.ltem.pixelwise.FrameSolver`; the weakest rung of its weight ladder whose
residual is still ``SEED_ROOM`` = 1.1 σ̂², so the fit has room), on the whole canvas; ``"auto"`` (default) — the
pixel-wise seed when the image is noisy (σ̂ ≥ ``AUTO_SEED_NOISE`` = 0.2 of the mean) and its
contrast-to-noise ratio (var I − σ̂²)/σ̂² lies in ``AUTO_SEED_CNR`` = 0.4–2 (and the boundary
is a window's free ring, ``"extend"``, and λ|Δf| ≤ ``AUTO_SEED_MAX_LAMBDA_DEFOCUS_NM2`` = 3500 nm²,
−1.4 mm at 200 kV), else SITIE. That is
where the long wavelengths are left to the prior and the TV seed fixes them (windows at −1 mm,
50 %: bubbles 0.960 vs 0.914, stripes 0.973 vs 0.956); below 0.4 the TV seed collapses, above 2
the network from SITIE already recovers them (bounds measured, not derived; docs/methods.md). It is pre-trained to reproduce its input
(at most ``pretrain_iterations`` steps, fewer once the normalised MSE is below
``pretrain_tolerance``), then optimised with Adam on the mean squared error between the simulated
and the measured image, with fresh Gaussian noise (``input_noise``) added to the input at every
step. The iterate with the lowest loss is kept; the run stops early when the loss reaches the
noise level (loss ≤ ``discrepancy`` × σ̂², σ̂² the image's noise variance estimated from its finest
scale — Morozov's discrepancy principle: fitting further only fits noise; a start that is already
within 3 standard deviations of σ̂² is returned without fitting, :data:`SEED_FIT_SIGMAS`) or when the best loss
has not improved by a relative ``tolerance`` within ``patience`` steps (convergence), or when the
kept phase has changed by less than ``settle_tolerance`` (relative RMS) over the last 100 steps
(clean images, whose loss keeps creeping down long after the phase has settled). The kept
phase is smoothed with a Gaussian of ``smoothing_px`` and Bx·t, By·t (T·nm) follow from it.

Amplitude A: ``"uniform"`` (A = 1, only the scale s is fitted); a **mask** (2-D bool/int array,
non-zero = contaminant): A = 1 outside and a fitted level a ∈ (0, 1) inside; ``"joint"``
(:mod:`.joint`): the contaminant detector's particles (:mod:`.detect`, defocus-independent
features), each with a level fitted with the phase (started and seeded as mask mode); every
``project_every`` steps a particle whose level shows no absorption is dropped; the result has two
levels (background 1, particles at the kept levels' area-weighted geometric mean). Wherever A
is modelled, the contaminants' electrostatic phase follows from it: A = exp(−t/ξ) and φe = σV0t
give φe = σ V0 ξ (−ln A) (``mean_inner_potential_v`` V0, ``extinction_length_nm`` ξ, σ the
interaction constant at the voltage).

Speed (this project's choices, measured in docs/benchmarks.md): every learned layer works at half
resolution or coarser (8–32 channels), channels-last layout; the paper's 200 + 5000 steps at lr
2e-4 are replaced by a pre-training that stops once the input is reproduced (usually 20–60 steps)
and a few hundred fit steps at lr 1e-2 ended by the stopping rules above. The CPU thread count is
measured at run time (:class:`~napari_phase.threads.ThreadTuner`: a few steps with each candidate,
the fastest kept, re-checked now and then), because on a shared CPU it cannot be predicted. torch.compile was measured and not used: on the 2-core CPU it
took 46 s to compile and the compiled step was slower (35 vs 29 ms at 256²). The exit wave is
complex, so the image formation needs full complex FFTs (no rfft); they are ~15 % of a step.
Time series (T, Y, X) are solved frame by frame, each frame's network warm-started from the
previous frame's best weights (no second pre-training).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from ..jobs import InputError, JobCancelled, Progress, Stopwatch, with_cpu_fallback
from ..uncertainty import check_flag
from ..result import PhaseResult
from ..threads import ThreadTuner
from ..validate import positive
from ..validate import non_negative as _non_negative
from .problem import (  # the set-up shared with pixelwise.py
    _int_at_least,
    _jsonable,
    build_result,
    ForwardModel,
    make_problem,
    noise_variance,
    preview,
    Problem,
    seeded,
    sitie_init,
    smooth,
)

# torch (and the modules that import it: .dip, .forward) is imported inside the functions, so that
# importing this module — and the package's public API — stays light.

#: Defaults shared by :func:`siprad` and the panel/CLI (documented in the siprad docstring).
DEFAULTS = {
    "iterations": 1000,
    "pretrain_iterations": 200,
    "learning_rate": 1e-2,
    "pretrain_learning_rate": 5e-3,
    "pretrain_tolerance": 2e-3,
    "input_noise": 0.03,
    "patience": 100,
    "tolerance": 5e-3,
    "discrepancy": 0.98,
    "settle_tolerance": 0.02,
    "smoothing_px": 2.0,
    "init_smoothing_px": 0.0,
    "init": "auto",
    "noise_floor": 0.03,
    "channels": (8, 16, 32, 32),  # = dip.DEFAULT_CHANNELS
    "network_binning": 1,
    "mean_inner_potential_v": 20.0,
    "extinction_length_nm": 10.0,
    "project_every": 100,
    "contaminant_learning_rate": 2e-2,
}


# ----------------------------------------------------------------------------- SIPRAD

#: Settle rule (ends clean-image runs, where neither the noise level nor the loss plateau is
#: reached soon): every SETTLE_EVERY fit steps the kept phase is compared with the one
#: SETTLE_WINDOW steps earlier; the run stops when ‖Δφ‖/‖φ − mean φ‖ < ``settle_tolerance``.
SETTLE_EVERY = 25
SETTLE_WINDOW = 100


#: The seed already explains the image: when the start iterate's misfit is within SEED_FIT_SIGMAS
#: standard deviations of the noise level (the mean of N squared Gaussian residuals has relative
#: standard deviation √(2/N)), the data cannot improve it and SIPRAD returns it without fitting.
#: Fitting there only fits noise: Adam's first steps are full-size whatever the gradient, and on
#: bubbles −0.25 mm 50 % (seed 2, 256² window) four steps reached the discrepancy level and took the
#: phase accuracy from 0.719 (the start) to 0.384. None disables the check.
SEED_FIT_SIGMAS: float | None = 3.0


@dataclass
class _FrameState:
    """Best iterate of the frame being solved (read by the cancel handler)."""

    best_loss: float = math.inf
    best_phase: object = None  # torch tensor (Y, X)
    best_amp: object = None  # torch tensor (Y, X) or None
    best_state: dict | None = None
    iterations: int = 0
    pretrain_iterations: int = 0
    stopped_early: bool = False
    stop_reason: str = ""
    noise_sigma: float = 0.0
    scale: float = 1.0
    seed_info: dict | None = None  # the pixel-wise seed's weight, residual and steps
    init: str = ""  # the seed used: "pixelwise" | "sitie"


def _as_channels_last(x):
    import torch

    return x.contiguous(memory_format=torch.channels_last)


#: Progress steps given to the pixel-wise seed of each frame (its L-BFGS steps, capped).
SEED_PROGRESS_STEPS = 600
#: The pixel-wise seed must leave the network room to fit: SIPRAD starts from the weakest rung of
#: the seed's weight ladder whose data residual is still at least SEED_ROOM × σ̂² (else the rung
#: with the largest residual, i.e. the strongest prior). A seed at the noise level (the discrepancy
#: choice itself) left the fit nothing to do (stopped after 1–100 steps: SIPRAD returned the TV
#: solution). 1.05 (session 4) → 1.1 (session 7, docs/benchmarks_ltem_windows.md Run 7): on the 8
#: windows where the TV seed is used (−0.25…−1 mm, 50/100 %, seeds 1–2, 256²) and the former grid's
#: mirror-padded stripes −0.5 mm 50 %, no B and one phase (−0.005) lower than with 1.05; bubbles −1 mm 50 %,
#: seeds 1 / 2: 0.959 / 0.935 → 0.967 / 0.947. 1.2 gained more phase on stripes and skyrmions but
#: cost the mirror-padded stripes cell 0.037 in B.
SEED_ROOM = 1.1


def seed_rung(stages: list[dict], room: float | None = None) -> int:
    """Index of the network's seed on the pixel-wise weight ladder (``stages``: dicts with
    ``weight`` and ``residual`` in units of σ̂²): the weakest rung whose residual is still ≥ ``room``
    (default SEED_ROOM), so the fit has room; if none is that high, the rung with the largest residual."""
    room = SEED_ROOM if room is None else float(room)
    roomy = [i for i, st in enumerate(stages) if st["residual"] >= room]
    if roomy:
        return min(roomy, key=lambda i: stages[i]["weight"])
    return max(range(len(stages)), key=lambda i: stages[i]["residual"])


def _pixelwise_seed(fm, y, frame, problem, opts, tuner, seed_state, step0, total, t, n_frames):
    """SIPRAD's start: the pixel-wise solution on the canvas (TV prior, weight by the discrepancy
    principle; :class:`~napari_phase.ltem.pixelwise.FrameSolver`), yielding Progress. A later frame
    of a series starts from the previous frame's seed and weight."""
    from .pixelwise import DEFAULTS as PW
    from .pixelwise import FrameSolver

    pw_opts = {**PW, "prior": "tv", "noise_floor": opts["noise_floor"], "qc_per_nm": opts["qc_per_nm"]}
    mask_f = None if problem.mask is None else fm.torch.as_tensor(problem.mask, dtype=fm.torch.float32, device=fm.device)
    a0 = None
    if problem.mask is not None and problem.mask.any():
        a0 = math.sqrt(float(np.clip(frame[problem.mask].mean() / frame[~problem.mask].mean(), 1e-4, 0.98)))
    start = seed_state.get("canvas")
    if start is None:
        start = fm.to_canvas(sitie_init(frame, problem, opts["qc_per_nm"]))
    weight = seed_state.get("weight")
    solver = FrameSolver(fm, y, pw_opts, tuner, mask_f, a0)
    gen = solver.run(start, None if weight is None else 2 * weight)
    try:
        while True:
            its = next(gen)
            done = min(SEED_PROGRESS_STEPS, solver.iterations + its)
            yield Progress(step0 + done, total, f"SIPRAD: seed (pixel-wise) frame {t + 1}/{n_frames}, step {solver.iterations + its}")
    except StopIteration as stop:
        canvas = stop.value
    if opts["warm_start"]:
        seed_state.update(canvas=canvas, weight=solver.weight)
    k = seed_rung(solver.stages)
    seed_state["info"] = {"weight": solver.stages[k]["weight"], "residual": solver.stages[k]["residual"],
                          "iterations": solver.iterations}
    return solver.canvases[k]


def _siprad_run(device, problem: Problem, opts: dict, preview_every: int):
    """The SIPRAD job on one device (generator of Progress, returns PhaseResult)."""
    import torch

    dev = torch.device(device)
    with ThreadTuner.for_device(dev, opts["num_threads"]) as tuner:
        result = yield from _siprad_body(dev, problem, opts, preview_every, tuner)
        result.metadata["threads"] = tuner.threads
        result.metadata["thread_tuning"] = tuner.summary()
    return result


def _siprad_body(device, problem: Problem, opts: dict, preview_every: int, tuner):
    import torch
    import torch.nn.functional as F

    from . import dip as _dip

    clock = Stopwatch()
    dev = torch.device(device)
    fm = ForwardModel(problem, dev, opts["mean_inner_potential_v"], opts["extinction_length_nm"])
    frames = problem.frames
    n_frames = len(frames)
    ny, nx = frames.shape[-2:]
    binning = int(opts["network_binning"])
    levels = max(1, min(len(opts["channels"]), int(math.log2(min(ny, nx) / binning)) - 2))
    channels = tuple(opts["channels"])[:levels]
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(opts["seed"]))
    seed_steps = SEED_PROGRESS_STEPS if opts["init"] != "sitie" else 0
    per_frame = seed_steps + opts["pretrain_iterations"] + opts["iterations"]
    total = n_frames * per_frame
    mode = problem.amplitude_mode

    phase_net = seeded(lambda: _dip.make_phase_net(channels, full_res_head=False, binning=binning), opts["seed"])
    phase_net = phase_net.to(dev).to(memory_format=torch.channels_last)
    joint = None  # joint mode: the detector-seeded amplitude of the frame being solved (.joint)
    joint_infos: list[dict] = []  # ... and what it seeded and kept, per frame

    # mask mode: contaminant level a = exp(-softplus(z)), started from the image contrast
    mask_f = None if fm.mask is None else fm.mask.to(torch.float32)
    done_phases: list[np.ndarray] = []
    done_amps: list[np.ndarray | None] = []
    info = {"iterations_run": [], "pretrain_iterations_run": [], "best_loss": [], "stopped_early": [], "stop_reason": [],
            "noise_sigma": [], "intensity_scale": [], "init_used": [], "seed_smoothness": [], "seed_data_residual": [], "seed_iterations": []}
    contaminant_levels: list[float] = []
    state = _FrameState()
    cancelled = False
    step0 = 0
    seed_state: dict = {}  # the seed solver's weight (warm frames start the ladder there)

    def report(step, msg, frame, force_preview=False):
        partial = None
        if force_preview and state.best_phase is not None:
            partial = preview(done_phases + [state.best_phase.detach().cpu().numpy()], problem, opts["smoothing_px"], "SIPRAD", frame)
        return Progress(min(step, total), total, msg, partial)

    try:
        for t in range(n_frames):
            state = _FrameState()
            step0 = t * per_frame
            frame = frames[t]
            y = fm.target(frame)
            seed_problem = problem
            if mode == "joint":  # the detector's particles, filled in the seed as a mask is (.joint)
                from .joint import JointAmplitude

                mic = problem.microscope
                joint = JointAmplitude(frame, pixel_size_nm=problem.pixel_size_nm, defocus_nm=mic.defocus_nm,
                                       voltage_kv=mic.voltage_kv, device=dev)
                seed_problem = joint.seed_problem(problem)
            init_kind = opts["init"]
            if init_kind == "auto":
                from .pixelwise import contrast_to_noise

                y_np = y.detach().cpu().numpy()
                cnr = contrast_to_noise(y_np)
                heavy = (math.sqrt(noise_variance(y_np)) >= AUTO_SEED_NOISE and AUTO_SEED_CNR[0] <= cnr <= AUTO_SEED_CNR[1]
                         and problem.boundary == "extend"  # only a window's free ring needs it (see AUTO_SEED_NOISE)
                         and problem.microscope.wavelength_nm * abs(problem.microscope.defocus_nm) <= AUTO_SEED_MAX_LAMBDA_DEFOCUS_NM2)
                init_kind = "pixelwise" if heavy else "sitie"
            if init_kind == "pixelwise":  # seed: the pixel-wise solution (TV prior, weight from the data)
                canvas = yield from _pixelwise_seed(fm, y, frame, seed_problem, opts, tuner, seed_state, step0, total, t, n_frames)
            else:
                start = sitie_init(frame, seed_problem, opts["qc_per_nm"])
                smoothing = opts["init_smoothing_px"]
                if opts["init"] == "auto" and smoothing == 0 and _strong_phase(frame, start, problem):
                    smoothing, init_kind = STRONG_PHASE_INIT_SMOOTHING_PX, f"sitie smoothed {STRONG_PHASE_INIT_SMOOTHING_PX:g} px (strong phase)"
                canvas = fm.to_canvas(smooth(start, smoothing))
            step0 += seed_steps
            state.seed_info = seed_state.pop("info", None)
            state.init = init_kind
            init = fm.crop(canvas)
            in_scale = float(init.std()) or 1.0
            x0 = _as_channels_last(torch.as_tensor(np.ascontiguousarray(canvas, dtype=np.float32) / in_scale, device=dev)[None, None])
            z_c = None
            if mode == "mask":
                m = problem.mask
                ratio = float(np.clip(frame[m].mean() / frame[~m].mean(), 1e-4, 0.98)) if m.any() else 0.98
                a0 = math.sqrt(ratio)
                z0 = math.log(math.expm1(-math.log(a0)))  # softplus⁻¹(−ln a0)
                if contaminant_levels:  # warm start from the previous frame
                    z0 = math.log(math.expm1(max(-math.log(contaminant_levels[-1]), 1e-4)))
                z_c = torch.tensor(z0, device=dev, requires_grad=True)

            def neg_log_amp():
                if mode == "mask":
                    return F.softplus(z_c) * mask_f
                if mode == "joint":
                    return joint.neg_log_amp()
                return None

            # ---- pre-training (first frame, or every frame without warm start)
            if t == 0 or not opts["warm_start"]:
                opt = torch.optim.Adam(phase_net.parameters(), lr=opts["pretrain_learning_rate"])
                for i in range(opts["pretrain_iterations"]):
                    with tuner.step():
                        opt.zero_grad(set_to_none=True)
                        noise = torch.randn(x0.shape, generator=gen, device=dev) * opts["input_noise"]
                        out = phase_net(x0 + noise)
                        loss = F.mse_loss(out, x0)
                        loss.backward()
                        opt.step()
                    state.pretrain_iterations = i + 1
                    yield report(step0 + i + 1, f"SIPRAD: pre-training {i + 1} (frame {t + 1}/{n_frames})", t)
                    if loss.item() < opts["pretrain_tolerance"]:
                        break

            # ---- the start point counts as an iterate (so a cancel always has a result)
            with torch.no_grad():
                phi = phase_net(x0)[0, 0] * in_scale
                nla = neg_log_amp()
                loss, scale = fm.loss(fm.image(phi, nla), y)
                state.best_loss, state.best_phase = float(loss), fm.crop(phi).detach().clone()
                state.best_amp = None if nla is None else torch.exp(-nla).detach().clone()
                state.scale = float(scale)
                state.best_state = copy.deepcopy(phase_net.state_dict())

            # ---- fit the image
            groups = [{"params": phase_net.parameters(), "lr": opts["learning_rate"]}]
            if z_c is not None:
                groups.append({"params": [z_c], "lr": opts["contaminant_learning_rate"]})
            if joint is not None:
                groups += joint.param_groups(opts["contaminant_learning_rate"])
            opt = torch.optim.Adam(groups)
            ref_loss, since = state.best_loss, 0
            snapshots = []  # kept phase every SETTLE_EVERY steps (settle rule)
            noise_var = noise_variance(y.detach().cpu().numpy())
            stop_loss = opts["discrepancy"] * noise_var
            state.noise_sigma = math.sqrt(noise_var)
            base = step0 + opts["pretrain_iterations"]
            n_fit = opts["iterations"]
            if SEED_FIT_SIGMAS is not None and state.best_loss <= noise_var * (1 + SEED_FIT_SIGMAS * math.sqrt(2.0 / y.numel())):
                state.stop_reason, state.stopped_early, n_fit = "the seed fits to the noise level", True, 0
            for i in range(n_fit):
                with tuner.step():
                    opt.zero_grad(set_to_none=True)
                    noise = torch.randn(x0.shape, generator=gen, device=dev) * opts["input_noise"]
                    phi = phase_net(x0 + noise)[0, 0] * in_scale
                    nla = neg_log_amp()
                    loss, scale = fm.loss(fm.image(phi, nla), y)
                    loss.backward()
                    opt.step()
                    lv = float(loss.detach())
                state.iterations = i + 1
                if not math.isfinite(lv):
                    raise FloatingPointError("SIPRAD: the loss became NaN/inf; try a lower learning_rate")
                if lv < state.best_loss:
                    state.best_loss = lv
                    state.best_phase = fm.crop(phi).detach().clone()
                    state.best_amp = None if nla is None else torch.exp(-nla).detach().clone()
                    state.scale = float(scale)
                    if opts["warm_start"] and n_frames > 1:
                        state.best_state = copy.deepcopy(phase_net.state_dict())
                if lv < ref_loss * (1 - opts["tolerance"]):
                    ref_loss, since = lv, 0
                else:
                    since += 1
                if lv <= stop_loss:
                    state.stop_reason = "noise level reached"
                elif since >= opts["patience"]:
                    state.stop_reason = "converged"
                elif opts["settle_tolerance"] and (i + 1) % SETTLE_EVERY == 0:
                    snapshots.append(state.best_phase)
                    if len(snapshots) > SETTLE_WINDOW // SETTLE_EVERY:
                        old_phase = snapshots.pop(0)
                        change = float((state.best_phase - old_phase).norm() / (state.best_phase - state.best_phase.mean()).norm().clamp_min(1e-12))
                        if change < opts["settle_tolerance"]:
                            state.stop_reason = "phase settled"
                if joint is not None and (i + 1) % opts["project_every"] == 0 and i + 1 < opts["iterations"]:
                    joint.project()
                show = preview_every > 0 and (i + 1) % preview_every == 0
                yield report(base + i + 1, f"SIPRAD: frame {t + 1}/{n_frames}, step {i + 1}, loss {lv:.4g}", t, show)
                if state.stop_reason:
                    state.stopped_early = i + 1 < opts["iterations"]
                    break

            done_phases.append(state.best_phase.cpu().numpy())
            done_amps.append(_final_amplitude(state, mode, joint, joint_infos))
            if mode == "mask":
                contaminant_levels.append(float(state.best_amp[fm.mask].mean()) if bool(fm.mask.any()) else 1.0)
            _record(info, state)
            if opts["warm_start"] and state.best_state is not None:
                phase_net.load_state_dict(state.best_state)
            state = _FrameState()  # recorded: a cancel from here on must not add this frame again
            yield Progress((t + 1) * per_frame, total, f"SIPRAD: frame {t + 1}/{n_frames} done")
    except JobCancelled:
        cancelled = True
        if state.best_phase is not None:
            done_phases.append(state.best_phase.cpu().numpy())
            done_amps.append(_final_amplitude(state, mode, joint, joint_infos))
            _record(info, state)
        if not done_phases:  # cancelled before the first iterate: fall back to the SITIE start
            done_phases.append(sitie_init(frames[0], problem, opts["qc_per_nm"]))
            done_amps.append(None if mode == "uniform" else np.ones((ny, nx), np.float32))

    scalar = not problem.is_series
    meta = {
        "parameters": {**problem.params, **{k: _jsonable(v) for k, v in opts.items()}, "channels_used": list(channels)},
        "seed": int(opts["seed"]),
        "device": str(dev),
        "runtime_s": clock.elapsed_s,
        "cancelled": cancelled,
        "frames_done": len(done_phases),
    }
    for k, v in info.items():
        meta[k] = (v[0] if v else None) if scalar else v
    if mode == "mask":
        meta["contaminant_amplitude"] = (contaminant_levels[0] if contaminant_levels else None) if scalar else contaminant_levels
    if mode == "joint":
        fractions = [float((a < 1).mean()) for a in done_amps if a is not None]
        levels_j = [float(a.min()) for a in done_amps if a is not None]
        meta["contaminant_fraction"] = (fractions[0] if fractions else None) if scalar else fractions
        meta["contaminant_amplitude"] = (levels_j[0] if levels_j else None) if scalar else levels_j
        meta["joint"] = (joint_infos[0] if joint_infos else None) if scalar else joint_infos
    return build_result("SIPRAD", problem, done_phases, done_amps, fm.phase_per_log_amp, opts["smoothing_px"], meta)


def _record(info: dict, state: _FrameState) -> None:
    info["iterations_run"].append(state.iterations)
    info["pretrain_iterations_run"].append(state.pretrain_iterations)
    info["best_loss"].append(float(state.best_loss))
    info["stopped_early"].append(bool(state.stopped_early))
    info["stop_reason"].append(state.stop_reason or "iterations")
    info["noise_sigma"].append(float(state.noise_sigma))
    info["intensity_scale"].append(float(state.scale))
    info["init_used"].append(state.init)
    seed = state.seed_info or {}
    info["seed_smoothness"].append(seed.get("weight"))
    info["seed_data_residual"].append(seed.get("residual"))
    info["seed_iterations"].append(seed.get("iterations", 0))


#: SITIE start smoothing (px) on an image outside the weak-phase regime (``init="auto"``,
#: ``init_smoothing_px`` 0): measured on the strong-phase class (wires, rods, particles, seeds 0–1,
#: one image at −0.4 mm, 128²) accuracy 0.890/0.919/0.857, 0.677/0.767/0.849 with the plain SITIE
#: start, 0.891/0.924/0.871, 0.781/0.775/0.860 smoothed by 2 px. The bench grid's images are all in
#: the weak-phase regime (:data:`.fit_check.WARN_NONLINEAR`), so their start does not change.
STRONG_PHASE_INIT_SMOOTHING_PX = 2.0


def _strong_phase(frame, linear_phase, problem) -> bool:
    """Is the image outside the weak-phase regime: its own SITIE phase leaves more than
    :data:`.fit_check.WARN_NONLINEAR` of its contrast unexplained (:func:`.fit_check.fit_check`)?"""
    from .fit_check import WARN_NONLINEAR, fit_check

    mic = problem.microscope
    info, _ = fit_check(np.asarray(frame), linear_phase, pixel_size_nm=problem.pixel_size_nm, defocus_nm=mic.defocus_nm,
                        microscope=mic)
    return info["unexplained_fraction"] > WARN_NONLINEAR


def _final_amplitude(state: _FrameState, mode: str, joint=None, joint_infos: list | None = None) -> np.ndarray | None:
    if mode == "uniform" or state.best_amp is None:
        return None
    amp = state.best_amp.cpu().numpy()
    if mode == "joint":  # two levels on the detector-seeded support (.joint.JointAmplitude)
        amp = joint.final_amplitude(amp)
        if joint_infos is not None:
            joint_infos.append(joint.info(amp))
    return amp.astype(np.float32)


def siprad_job(
    image,
    *,
    pixel_size_nm: float,
    defocus_nm: float,
    voltage_kv: float = 200.0,
    cs_mm: float = 1.0,
    divergence_mrad: float = 0.01,
    defocus_spread_nm: float = 100.0,
    amplitude="uniform",
    iterations: int = DEFAULTS["iterations"],
    pretrain_iterations: int = DEFAULTS["pretrain_iterations"],
    learning_rate: float = DEFAULTS["learning_rate"],
    pretrain_learning_rate: float = DEFAULTS["pretrain_learning_rate"],
    pretrain_tolerance: float = DEFAULTS["pretrain_tolerance"],
    input_noise: float = DEFAULTS["input_noise"],
    patience: int = DEFAULTS["patience"],
    tolerance: float = DEFAULTS["tolerance"],
    discrepancy: float = DEFAULTS["discrepancy"],
    settle_tolerance: float = DEFAULTS["settle_tolerance"],
    smoothing_px: float = DEFAULTS["smoothing_px"],
    init_smoothing_px: float = DEFAULTS["init_smoothing_px"],
    init: str = DEFAULTS["init"],
    noise_floor: float = DEFAULTS["noise_floor"],
    channels=DEFAULTS["channels"],
    network_binning: int = DEFAULTS["network_binning"],
    mean_inner_potential_v: float = DEFAULTS["mean_inner_potential_v"],
    extinction_length_nm: float = DEFAULTS["extinction_length_nm"],
    project_every: int = DEFAULTS["project_every"],
    contaminant_learning_rate: float = DEFAULTS["contaminant_learning_rate"],
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
    """SIPRAD as a job: a generator of :class:`~napari_phase.jobs.Progress` (one per step; every
    ``preview_every`` fit steps with the current best phase as ``partial``) that returns the
    :class:`PhaseResult`. Cancelling (JobCancelled thrown at a yield) returns the best result so
    far with ``metadata["cancelled"] = True``. Arguments as :func:`siprad`."""
    call = dict(locals())  # the arguments, for the σ re-fits
    want_sigma = check_flag(uncertainty)
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
    opts = {
        "iterations": _int_at_least(iterations, "iterations", 1),
        "pretrain_iterations": _int_at_least(pretrain_iterations, "pretrain_iterations", 0),
        "learning_rate": positive(learning_rate, "learning_rate"),
        "pretrain_learning_rate": positive(pretrain_learning_rate, "pretrain_learning_rate"),
        "pretrain_tolerance": _non_negative(pretrain_tolerance, "pretrain_tolerance"),
        "input_noise": _non_negative(input_noise, "input_noise"),
        "patience": _int_at_least(patience, "patience", 1),
        "tolerance": _non_negative(tolerance, "tolerance"),
        "discrepancy": _non_negative(discrepancy, "discrepancy"),
        "settle_tolerance": _non_negative(settle_tolerance, "settle_tolerance"),
        "smoothing_px": _non_negative(smoothing_px, "smoothing_px"),
        "init_smoothing_px": _non_negative(init_smoothing_px, "init_smoothing_px"),
        "init": _check_init(init),
        "noise_floor": _non_negative(noise_floor, "noise_floor"),
        "channels": _check_channels(channels),
        "network_binning": _int_at_least(network_binning, "network_binning", 1),
        "mean_inner_potential_v": _non_negative(mean_inner_potential_v, "mean_inner_potential_v"),
        "extinction_length_nm": positive(extinction_length_nm, "extinction_length_nm", "nm"),
        "project_every": _int_at_least(project_every, "project_every", 1),
        "contaminant_learning_rate": positive(contaminant_learning_rate, "contaminant_learning_rate"),
        "qc_per_nm": None if qc_per_nm is None else _non_negative(qc_per_nm, "qc_per_nm"),
        "warm_start": bool(warm_start),
        "seed": _int_at_least(seed, "seed", 0),
        "num_threads": None if num_threads is None else _int_at_least(num_threads, "num_threads", 1),
    }
    from .dip import min_size_px

    side = min(problem.data.shape[-2:])
    if min_size_px(opts["channels"][:1], opts["network_binning"]) > side:  # even a one-level network would not fit
        raise InputError(f"network_binning {opts['network_binning']} is too coarse for a {side}-px image side (at most {side // 4})")
    preview_every = int(preview_every or 0)
    result = yield from with_cpu_fallback(lambda dev: _siprad_run(dev, problem, opts, preview_every), device)
    from .uncertainty import with_refit_sigma

    return (yield from with_refit_sigma(result, siprad_job, call, want_sigma, "SIPRAD"))


INITS = ("auto", "pixelwise", "sitie")

#: init="auto" seeds with the pixel-wise solution when the image's estimated noise σ̂ (a fraction
#: of the mean intensity) is at least AUTO_SEED_NOISE and its contrast-to-noise ratio
#: (pixelwise.contrast_to_noise) lies in AUTO_SEED_CNR and the image is a window (boundary
#: "extend"), else with SITIE (see the module doc). Periodic tiles keep SITIE: there the long
#: wavelengths are not lost at the edge, and the TV seed cost the stripes tile at −1 mm, 50 %
#: 0.010 in phase and 0.014 in B (0.964 / 0.990 with SITIE).
AUTO_SEED_NOISE = 0.2
AUTO_SEED_CNR = (0.4, 2.0)
#: ... and only at small defocus, λ|Δf| ≤ this (nm²; −1.4 mm at 200 kV): there the long wavelengths
#: hardly reach the image and the TV seed supplies them; at larger λ|Δf| the data carry them and the
#: TV seed did harm (256², 50–100 % noise, former grid, seeds 1 / 2, TV seed vs SITIE seed, phase / B:
#: skyrmions −4 mm 50 % 0.566 / 0.904 vs 0.956 / 0.969 (seed 1); stripes −2 mm 100 % 0.930 / 0.976
#: (both seeds) vs 0.974 / 0.987 in the former grid), while at −1 mm it is what meets the window targets.
AUTO_SEED_MAX_LAMBDA_DEFOCUS_NM2 = 3500.0


def _check_init(init) -> str:
    kind = str(init).strip().lower() if isinstance(init, str) else init
    if kind not in INITS:
        raise InputError(f"init must be 'auto', 'pixelwise' or 'sitie', got {init!r}")
    return kind


def _check_channels(channels) -> tuple[int, ...]:
    try:
        ch = tuple(int(c) for c in channels)
    except (TypeError, ValueError):
        raise InputError(f"channels must be a sequence of positive integers, got {channels!r}") from None
    if not ch or min(ch) < 1 or len(ch) > 6:
        raise InputError(f"channels must be 1 to 6 positive integers, got {channels!r}")
    return ch


def siprad(
    image,
    *,
    pixel_size_nm: float,
    defocus_nm: float,
    voltage_kv: float = 200.0,
    cs_mm: float = 1.0,
    divergence_mrad: float = 0.01,
    defocus_spread_nm: float = 100.0,
    amplitude="uniform",
    iterations: int = DEFAULTS["iterations"],
    seed: int = 0,
    device="auto",
    **options,
) -> PhaseResult:
    """SIPRAD reconstruction of one defocused LTEM image (Y, X) or a time series (T, Y, X).

    Returns a :class:`PhaseResult` with ``phase`` (magnetic φm, rad, zero mean, smoothed),
    ``bx``, ``by`` (T·nm), and — with a mask or ``amplitude="joint"`` — ``amplitude`` and
    ``phase_electrostatic`` (rad). Series give (T, Y, X) arrays.

    Microscope: ``pixel_size_nm``; ``defocus_nm`` (propagation distance, negative = under-focus,
    −1 mm = −1e6); ``voltage_kv``; ``cs_mm``; ``divergence_mrad`` (beam divergence θc);
    ``defocus_spread_nm`` (Δ).
    ``amplitude``: ``"uniform"``, ``"joint"`` or a 2-D bool/int contaminant mask (non-zero = particle).
    ``iterations``: most fit steps per frame (early stopping usually ends sooner).
    Further options (defaults in :data:`DEFAULTS`): ``pretrain_iterations``, ``learning_rate``,
    ``pretrain_learning_rate``, ``pretrain_tolerance``, ``input_noise``, ``patience``,
    ``tolerance``, ``discrepancy``, ``smoothing_px``, ``init_smoothing_px`` (smooth the SITIE start;
    2 px helped stripes/skyrmions at small defocus and high noise but hurt bubbles, a wash over the
    benchmark grid, so off by default), ``channels``, ``network_binning`` (the network works on
    binning × binning averaged pixels and its output is upsampled: ~2× cheaper steps at 2, but on
    clean 256² windows less accurate, e.g. bubbles −0.5 mm 0.881 vs 0.946, so 1 by default;
    docs/benchmarks_ltem_windows.md Run 6), ``mean_inner_potential_v`` (V0, V),
    ``extinction_length_nm`` (ξ), ``project_every`` (joint mode), ``contaminant_learning_rate``,
    ``qc_per_nm`` (SITIE start), ``boundary`` ("auto" | "extend" | "periodic" | "reflect", see the
    module doc), ``pad_px`` (border ring / padding, default from the defocus), ``settle_tolerance``,
    ``warm_start`` (series), ``num_threads`` (CPU threads; default None = chosen from measured
    step times by :class:`~napari_phase.threads.ThreadTuner`), ``preview_every``.
    ``seed`` makes the run reproducible (bit for bit with a fixed ``num_threads``: the measured
    thread count may differ between runs and changes the rounding); ``device``: "auto", "cpu", "cuda" (falls back to the CPU
    on CUDA out-of-memory). Metadata: method, version, parameters, seed, device, runtime_s,
    iterations_run, pretrain_iterations_run, best_loss, stopped_early, cancelled, intensity_scale
    (and contaminant_amplitude in mask mode).
    """
    from ..jobs import run_job

    return run_job(
        siprad_job(
            image,
            pixel_size_nm=pixel_size_nm,
            defocus_nm=defocus_nm,
            voltage_kv=voltage_kv,
            cs_mm=cs_mm,
            divergence_mrad=divergence_mrad,
            defocus_spread_nm=defocus_spread_nm,
            amplitude=amplitude,
            iterations=iterations,
            seed=seed,
            device=device,
            **options,
        )
    )
