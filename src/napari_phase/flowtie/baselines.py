"""Baselines for defocus triplets: the classical TIE and gradient descent on the phase pixels.

Classical TIE (transport of intensity, continuity form with the project's sign convention):

    ∇·(I0 ∇φ) = −(2π/λ) ∂I/∂z,   ∂I/∂z ≈ (I+ − I−)/(2 dz),

solved with FFT Poisson solves by :func:`napari_phase.physics.poisson.solve_tie` (two solves with the
in-focus image I0 inside the divergence; ``uniform_i0=True`` uses one solve with I0 = mean, for
comparison; optional Tikhonov cut-off ``qc_per_a``). Lengths in Å: λ, dz (given in nm) and the
pixel are converted to Å; φ in rad, the flow ∇φ in rad/Å.

Gradient descent: the exit wave ψ = exp(a + iφ) on a grid padded by the Fresnel blur width (the
padding is free, so edges need no periodicity), Adam on

    L = Σ_k ‖I_k(ψ) − I_k‖² / (3 Var I)  +  w_c ‖∇·(I0∇φ) + (2π/λ) ∂I/∂z‖² / ‖(2π/λ) ∂I/∂z‖²,

with I_k(ψ) the Fresnel forward model of :func:`.triplet.fresnel_triplet_t` through the aperture
(``semiangle_mrad``). Starts from the classical TIE phase (``init="tie"``, default: from zero it
needs many more steps on a crystal) or from zero (``init="zero"``); keeps the best
iterate; the phase is reported band-limited to the aperture.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np

from .. import __version__
from ..jobs import InputError, JobCancelled, Progress, Stopwatch, resolve_device, run_job
from ..physics.poisson import mirror_pad, solve_tie
from ..result import PhaseResult
from ..uncertainty import DEFAULT_SAMPLES, attach, check_flag, not_computed, sigma_step
from ..validate import non_negative
from .flow import phase_gradient
from .triplet import Triplet, aperture_q_per_a, check_parameters, prepare_triplet


def make_result(phase, flow, tri: Triplet, method: str, params: dict, runtime_s: float, device: str = "cpu",
                extra: dict | None = None, extra_arrays: dict | None = None) -> PhaseResult:
    """The PhaseResult every triplet method returns: phase (rad), flow (2, H, W; rad/Å), metadata."""
    arrays = {"phase": np.asarray(phase, np.float32), "flow": np.asarray(flow, np.float32)}
    arrays.update(extra_arrays or {})
    meta = {
        "method": method,
        "version": __version__,
        "defocus_step_nm": tri.dz_a / 10.0,
        "pixel_size_a": tri.pixel_size_a,
        "energy_kev": tri.energy_kev,
        "wavelength_a": tri.wavelength_a,
        "triplet_order": "(-dz, 0, +dz)",
        "sign_convention": "defocus = propagation distance along the beam, negative = under-focus",
        "flow": "phase gradient (d/dy, d/dx) in rad/Å",
        "input_shape": list(tri.images.shape),
        **tri.info,
        "messages": list(tri.messages),
        **params,
        "runtime_s": float(runtime_s),
        "device": device,
    }
    meta.update(extra or {})
    units = {"phase": "rad", "flow": "rad/Å"}
    return PhaseResult(arrays, pixel_size=tri.pixel_size_a, pixel_unit="Å", array_units=units, metadata=meta)


def default_qc_per_a(shape, pixel_size_a: float) -> float:
    """Default Tikhonov cut-off 2/FOV (1/Å), as the LTEM TIE: tames the low-frequency error that the
    unknown flux through the edges of a cropped field of view causes."""
    return 2.0 / (max(shape) * pixel_size_a)


def solve_classical(tri: Triplet, qc_per_a: float | None = None, uniform_i0: bool = False, pad: bool = True) -> np.ndarray:
    """Classical-TIE phase (rad, zero mean, float64) of a prepared triplet (qc None → 2/FOV)."""
    i0 = None if uniform_i0 else tri.images[1].astype(np.float64)
    qc = default_qc_per_a(tri.shape, tri.pixel_size_a) if qc_per_a is None else float(qc_per_a)
    return solve_tie(tri.didz, tri.wavelength_a, tri.pixel_size_a, intensity=i0, qc=qc, pad=bool(pad))


def _check_qc(qc_per_a, tri: Triplet) -> float:
    return default_qc_per_a(tri.shape, tri.pixel_size_a) if qc_per_a is None else non_negative(qc_per_a, "qc_per_a")


def tie_classical_job(triplet, *, defocus_step_nm, pixel_size_a, energy_kev, qc_per_a=None, uniform_i0=False,
                      pad=True, register=False, detector_mrad=None, detector_mrad_per_px=None, uncertainty=False):
    """Classical TIE as a job (yields Progress, returns PhaseResult); ``uncertainty``: add
    ``phase_sigma`` (:mod:`.uncertainty`) in one more cancellable step."""
    clock = Stopwatch()
    want_sigma = check_flag(uncertainty)
    tri = prepare_triplet(triplet, defocus_step_nm=defocus_step_nm, pixel_size_a=pixel_size_a, energy_kev=energy_kev,
                          register=register, detector_mrad=detector_mrad, detector_mrad_per_px=detector_mrad_per_px)
    qc = _check_qc(qc_per_a, tri)
    yield Progress(0, 1, "classical TIE: solving")
    phase = solve_classical(tri, qc, bool(uniform_i0), bool(pad))
    flow = phase_gradient(phase, tri.pixel_size_a)
    yield Progress(1, 1, "classical TIE: done")
    params = {"qc_per_a": qc, "qc_source": "default 2/FOV" if qc_per_a is None else "given", "uniform_i0": bool(uniform_i0),
              "pad": "mirror (non-periodic field)" if pad else "none (periodic field)",
              "i0": "uniform (mean)" if uniform_i0 else "in-focus image inside the divergence (two Poisson solves)"}
    result = make_result(phase, flow, tri, "classical TIE", params, clock.elapsed_s)
    if not want_sigma:
        return result
    from .uncertainty import CLASSICAL_MODEL, CLASSICAL_NOTE, classical_sigma

    return (yield from sigma_step(result, lambda: classical_sigma(tri, qc, bool(uniform_i0), bool(pad)), label="classical TIE",
                                  model=CLASSICAL_MODEL.format(k=DEFAULT_SAMPLES), calibrated=False, note=CLASSICAL_NOTE,
                                  samples=DEFAULT_SAMPLES))


def tie_classical(triplet, *, defocus_step_nm: float, pixel_size_a: float, energy_kev: float, qc_per_a: float | None = None,
                  uniform_i0: bool = False, pad: bool = True, register: bool = False, detector_mrad: float | None = None,
                  detector_mrad_per_px: float | None = None, uncertainty: bool = False) -> PhaseResult:
    """Classical TIE of a (3, H, W) triplet ordered (−dz, 0, +dz): ∇·(I0∇φ) = −(2π/λ)(I+ − I−)/(2dz).

    ``defocus_step_nm`` dz > 0; ``pixel_size_a`` in Å; ``energy_kev`` beam energy; ``qc_per_a``
    Tikhonov cut-off in 1/Å (None: 2/FOV; 0: none); ``uniform_i0`` replaces I0 by its mean (one
    solve); ``pad``: mirror-extend (a cropped, non-periodic field; default) or not (a periodic one).
    The mirror extension assumes no flux through the edges; a crystal crop has some, hence the
    default cut-off.
    ``uncertainty``: also ``phase_sigma`` (rad): the images' noise propagated (noise part only).
    Returns a PhaseResult: ``phase`` (rad), ``flow`` (2, H, W; ∇φ in rad/Å), ``metadata``.
    """
    return run_job(tie_classical_job(triplet, defocus_step_nm=defocus_step_nm, pixel_size_a=pixel_size_a,
                                     energy_kev=energy_kev, qc_per_a=qc_per_a, uniform_i0=uniform_i0, pad=pad, register=register,
                                     detector_mrad=detector_mrad, detector_mrad_per_px=detector_mrad_per_px,
                                     uncertainty=uncertainty))


# ----------------------------------------------------------------------------- gradient descent

def _thread_tuner(device):
    try:
        from ..threads import ThreadTuner
    except ImportError:  # pragma: no cover - older trees
        return contextlib.nullcontext(None)
    return ThreadTuner.for_device(device)


def _margin_px(tri: Triplet, aperture_q: float | None) -> int:
    """Padding (px) covering the Fresnel blur λ·dz·q_max of the ±dz images."""
    q_max = aperture_q if aperture_q is not None else 0.5 / tri.pixel_size_a
    return int(math.ceil(tri.wavelength_a * tri.dz_a * q_max / tri.pixel_size_a)) + 4


def band_limit_mirror(phase: np.ndarray, pixel_size_a: float, aperture_q: float | None) -> np.ndarray:
    """Low-pass a (non-periodic) map to |q| ≤ aperture_q on its mirror extension (None: unchanged)."""
    if aperture_q is None:
        return np.asarray(phase, np.float32)
    ny, nx = phase.shape[-2:]
    ext = mirror_pad(np.asarray(phase, np.float64))
    qy = np.fft.fftfreq(ext.shape[-2], d=pixel_size_a)[:, None]
    qx = np.fft.fftfreq(ext.shape[-1], d=pixel_size_a)[None, :]
    out = np.real(np.fft.ifft2(np.fft.fft2(ext) * (qy**2 + qx**2 <= aperture_q**2)))[..., :ny, :nx]
    return out.astype(np.float32)


def descend(tri: Triplet, init_phase: np.ndarray, *, aperture_q, steps: int, lr: float, weight_continuity: float,
            weight_prior: float = 0.0, device, label: str, report_every: int = 10):
    """Adam on the phase pixels (and a log-amplitude) against the triplet; a generator yielding
    Progress and returning (phase, amplitude, info). ``weight_prior`` pulls φ towards ``init_phase``
    (used by FlowTIE's refinement). JobCancelled stops early with the best iterate."""
    import torch

    from .flow import divergence_t, gradient_t
    from .triplet import fresnel_triplet_t

    dev = device
    h, w = tri.shape
    m = _margin_px(tri, aperture_q)
    meas = torch.as_tensor(tri.images, device=dev)
    i0 = meas[1]
    k_wave = 2 * math.pi / tri.wavelength_a
    src = -k_wave * torch.as_tensor(tri.didz, dtype=torch.float32, device=dev)  # ∇·(I0∇φ) must equal this
    src_norm = float((src**2).mean()) + 1e-20
    var = float(((meas - meas.mean(dim=(-2, -1), keepdim=True)) ** 2).mean()) + 1e-12
    init = torch.as_tensor(np.pad(np.asarray(init_phase, np.float32), m, mode="reflect"), device=dev)
    prior = init.clone()
    phi = init.clone().requires_grad_(True)
    log_a = torch.zeros_like(init, requires_grad=True)
    opt = torch.optim.Adam([phi, log_a], lr=lr)
    best = (math.inf, None, None, 0)
    history = []
    cancelled = False
    with _thread_tuner(dev) as tuner:
        for it in range(int(steps)):
            with (tuner.step() if tuner is not None else contextlib.nullcontext()):
                psi = torch.exp(torch.complex(log_a, phi))
                pred = fresnel_triplet_t(psi, tri.pixel_size_a, tri.wavelength_a, tri.dz_a, aperture_q)[..., m:m + h, m:m + w]
                loss_fm = ((pred - meas) ** 2).mean() / var
                core = phi[m:m + h, m:m + w]
                flux = gradient_t(core, tri.pixel_size_a) * i0
                resid = divergence_t(flux, tri.pixel_size_a) - src
                loss_c = (resid[4:-4, 4:-4] ** 2).mean() / src_norm
                loss = loss_fm + weight_continuity * loss_c
                if weight_prior:
                    loss = loss + weight_prior * ((phi - prior)[m:m + h, m:m + w] ** 2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                value = float(loss.detach())
                if value < best[0]:
                    best = (value, phi.detach()[m:m + h, m:m + w].clone(), log_a.detach()[m:m + h, m:m + w].clone(), it)
                opt.step()
            if it % report_every == 0 or it == steps - 1:
                history.append({"step": it, "loss": value, "forward": float(loss_fm.detach()), "continuity": float(loss_c.detach())})
                try:
                    yield Progress(it + 1, int(steps), f"{label}: step {it + 1}/{steps}, loss {value:.4g}")
                except JobCancelled:
                    cancelled = True
                    break
        threads = tuner.summary() if tuner is not None else None
    phase = best[1].cpu().numpy().astype(np.float64) if best[1] is not None else np.asarray(init_phase, np.float64)
    amp = np.exp(best[2].cpu().numpy()) if best[2] is not None else np.ones((h, w))
    info = {"best_step": best[3], "best_loss": best[0], "history": history[-20:], "cancelled": cancelled,
            "margin_px": m, "threads": threads}
    return phase - phase.mean(), amp.astype(np.float32), info


def tie_gradient_descent_job(triplet, *, defocus_step_nm, pixel_size_a, energy_kev, semiangle_mrad=None, steps=300,
                             lr=0.02, weight_continuity=0.1, init="tie", device="auto", register=False,
                             detector_mrad=None, detector_mrad_per_px=None, uncertainty=False):
    """Gradient descent on the phase pixels as a job (yields Progress; a cancel returns the best so far).
    ``uncertainty``: add ``phase_sigma`` from re-fits on re-sampled noise (:func:`.uncertainty.gd_sigma_job`)."""
    clock = Stopwatch()
    want_sigma = check_flag(uncertainty)
    _, _, _, alpha = check_parameters(defocus_step_nm, pixel_size_a, energy_kev, semiangle_mrad)
    tri = prepare_triplet(triplet, defocus_step_nm=defocus_step_nm, pixel_size_a=pixel_size_a, energy_kev=energy_kev,
                          register=register, detector_mrad=detector_mrad, detector_mrad_per_px=detector_mrad_per_px)
    steps = int(steps)
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    if init not in ("tie", "zero"):
        raise InputError(f"init must be 'tie' or 'zero', got {init!r}")
    lr = float(lr)
    if not lr > 0:
        raise InputError(f"lr must be positive, got {lr}")
    dev = resolve_device(device)
    q_ap = aperture_q_per_a(alpha, tri.energy_kev)

    def fit(t: Triplet, label: str):
        start = solve_classical(t) if init == "tie" else np.zeros(t.shape)
        ph, a, inf = yield from descend(t, start, aperture_q=q_ap, steps=steps, lr=lr,
                                        weight_continuity=float(weight_continuity), device=dev, label=label)
        return band_limit_mirror(ph, t.pixel_size_a, q_ap), a, inf

    yield Progress(0, steps, "gradient descent: starting")
    phase, amp, info = yield from fit(tri, "gradient descent")
    flow = phase_gradient(phase, tri.pixel_size_a)
    params = {"semiangle_mrad": alpha, "steps": steps, "lr": lr, "weight_continuity": float(weight_continuity), "init": init,
              "optimiser": "Adam on phase and log-amplitude pixels", **info}
    result = make_result(phase, flow, tri, "gradient descent", params, clock.elapsed_s, str(dev), extra_arrays={"amplitude": amp})
    if not want_sigma:
        return result
    from .uncertainty import GD_MODEL, GD_NOTE, GD_SAMPLES, gd_sigma_job

    if info["cancelled"]:
        return not_computed(result, "cancelled: no σ")

    def refit(images):
        ph, _, inf = yield from fit(dataclasses.replace(tri, images=images), "gradient descent σ re-fit")
        return ph, inf["cancelled"]

    try:
        yield Progress(0, 1, "gradient descent: uncertainty (σ)", result)
    except JobCancelled:
        return not_computed(result, "cancelled before σ was computed: the result is kept without σ")
    sigma = yield from gd_sigma_job(tri, phase, refit)
    if sigma is None:
        return not_computed(result, "cancelled while σ was computed: the result is kept without σ")
    return attach(result, sigma, model=GD_MODEL.format(k=GD_SAMPLES), calibrated=False, note=GD_NOTE.format(k=GD_SAMPLES),
                  samples=GD_SAMPLES)


def tie_gradient_descent(triplet, *, defocus_step_nm: float, pixel_size_a: float, energy_kev: float,
                         semiangle_mrad: float | None = None, steps: int = 300, lr: float = 0.02,
                         weight_continuity: float = 0.1, init: str = "tie", device: str = "auto", register: bool = False,
                         detector_mrad: float | None = None, detector_mrad_per_px: float | None = None,
                         uncertainty: bool = False) -> PhaseResult:
    """Phase of a (3, H, W) triplet (−dz, 0, +dz) by Adam on the phase pixels: Fresnel forward model
    of the triplet through the aperture (``semiangle_mrad``) + ``weight_continuity`` × the
    continuity (TIE) residual. Returns PhaseResult: ``phase`` (rad, band-limited to the aperture),
    ``flow`` (rad/Å), ``amplitude`` (fitted exit-wave amplitude), ``metadata``. ``uncertainty``: also
    ``phase_sigma`` (rad; two re-fits on re-sampled noise, noise part only: about 3× the time)."""
    return run_job(tie_gradient_descent_job(triplet, defocus_step_nm=defocus_step_nm, pixel_size_a=pixel_size_a,
                                            energy_kev=energy_kev, semiangle_mrad=semiangle_mrad, steps=steps, lr=lr,
                                            weight_continuity=weight_continuity, init=init, device=device, register=register,
                                            detector_mrad=detector_mrad, detector_mrad_per_px=detector_mrad_per_px,
                                            uncertainty=uncertainty))
