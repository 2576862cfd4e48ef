"""FlowTIE inference: triplet → network grid → flow → phase (→ optional per-dataset refinement).

1. The triplet is checked and normalised (:func:`.triplet.prepare_triplet`).
2. It is resampled to the network grid, pixel p_net = 1/(4 q_ap) with q_ap = α/λ (antialiased
   bilinear; with no aperture given the data are taken as sampled at that rate already).
3. The classical-TIE phase is solved on that grid (the network's prior input), the network adds
   its flow correction, and the flow is integrated (least squares, band-limited to q_ap).
4. Phase and flow are resampled back to the input grid; the flow is returned in rad/Å.
5. ``refine_steps`` > 0: Adam on the phase pixels against the Fresnel forward model of the
   triplet and the continuity residual (the gradient-descent baseline's loss), plus a pull
   towards the network's phase (``refine_prior``), starting from it.
"""

from __future__ import annotations

import math

import numpy as np

from ..jobs import InputError, Progress, Stopwatch, resolve_device, run_job
from ..uncertainty import check_flag, sigma_step
from .baselines import band_limit_mirror, descend, make_result, solve_classical
from .flow import gradient_t, integrate_t, phase_gradient
from .network import Q_AP_NET, build, network_inputs
from .triplet import Triplet, aperture_q_per_a, check_parameters, prepare_triplet

DEFAULT_MODEL = "flowtie_default"
#: smallest network grid (px) a triplet may resample to
MIN_NET_PX = 16


def resolve_model(model, device):
    """A FlowTIE network from a shipped name ("default" → flowtie_default), a .pt path, or a module."""
    import torch

    if isinstance(model, torch.nn.Module):
        return model.to(device).eval(), {"model": "given module"}
    name = DEFAULT_MODEL if model in (None, "default") else str(model)
    from .. import models

    try:
        card = models.model_card(name)
    except KeyError as exc:
        raise InputError(f"FlowTIE model {name!r} not found ({exc.args[0]}); train one with `napari-phase train flowtie`") from None
    net = models.load_model(name, build, device)
    info = {"model": name, "model_sha256": card.get("sha256", ""), "model_trained": card.get("trained_on", "")}
    return net, info


def net_pixel_a(pixel_size_a: float, aperture_q: float | None) -> float:
    """The network grid's pixel (Å): 1/(4 q_ap), or the input's pixel without an aperture."""
    return pixel_size_a if aperture_q is None else 1.0 / (4.0 * aperture_q)


def resample(images, shape):
    """Resample (B, C, H, W) torch images to ``shape`` (antialiased bilinear down, bicubic up)."""
    import torch.nn.functional as F

    if tuple(images.shape[-2:]) == tuple(shape):
        return images
    down = shape[0] < images.shape[-2] or shape[1] < images.shape[-1]
    if down:
        return F.interpolate(images, size=tuple(shape), mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(images, size=tuple(shape), mode="bicubic", align_corners=False)


def forward_t(net, tri, tie, kappa):
    """Network forward on the network grid (torch, differentiable): tri (B, 3, H, W) with
    mean(I0) = 1, tie (B, H, W) classical-TIE phase, kappa (B,) → flow (B, 2, H, W; rad/px) and
    phase (B, H, W; rad, band-limited to the aperture). Pads to the U-Net's multiple inside."""
    import torch.nn.functional as F

    b, _, h, w = tri.shape
    x = network_inputs(tri, tie, kappa)
    mult = net.multiple
    ph, pw = (-h) % mult, (-w) % mult
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    corr = net(x)[..., :h, :w]
    flow = gradient_t(tie.double(), 1.0).to(corr.dtype) + corr
    phase = integrate_t(flow.double(), 1.0, q_max=Q_AP_NET).to(corr.dtype)
    return flow, phase


#: the 8 symmetries of the square grid as (transpose, flip y, flip x)
DIHEDRAL = tuple((t, fy, fx) for t in (False, True) for fy in (False, True) for fx in (False, True))


def _to_frame(img, t: bool, fy: bool, fx: bool):
    """Scalar images (..., H, W) into a transformed frame: flip y, flip x, then transpose."""
    if fy:
        img = img.flip(-2)
    if fx:
        img = img.flip(-1)
    return img.transpose(-1, -2) if t else img


def _from_frame(img, t: bool, fy: bool, fx: bool):
    """The inverse of :func:`_to_frame` for scalar images."""
    if t:
        img = img.transpose(-1, -2)
    if fx:
        img = img.flip(-1)
    return img.flip(-2) if fy else img


def _flow_from_frame(flow, t: bool, fy: bool, fx: bool):
    """The inverse of :func:`_to_frame` for a gradient field (B, 2, H, W), components (∂y, ∂x):
    a transpose swaps the components, a flip negates the component along it."""
    if t:
        flow = flow.transpose(-1, -2)[:, [1, 0]]
    if fx:
        flow = flow.flip(-1) * flow.new_tensor([1.0, -1.0])[:, None, None]
    if fy:
        flow = flow.flip(-2) * flow.new_tensor([-1.0, 1.0])[:, None, None]
    return flow


def predict_net_grid(net, tri_net: np.ndarray, kappa: float, device, tie_phase: np.ndarray | None = None,
                     symmetrize: bool = False):
    """Flow (B, 2, H, W; rad per net px) and phase (B, H, W; rad) of triplets already on the
    network grid, tri_net (B, 3, H, W) with mean(I0) = 1 (numpy in, torch out).

    ``symmetrize``: average the network over the 8 flips/transposes of the grid (each result
    brought back to the input frame; the physics is invariant under them, the network only
    approximately), 8× the network time."""
    import torch

    tri_net = np.asarray(tri_net, np.float32)
    if tie_phase is None:
        tie_phase = tie_phase_net(tri_net.astype(np.float64), kappa)
    tri = torch.as_tensor(tri_net, device=device)
    tie = torch.as_tensor(np.asarray(tie_phase, np.float32), device=device)
    kap = torch.as_tensor(np.broadcast_to(np.asarray(kappa, np.float32), (tri.shape[0],)).copy(), device=device)
    if not symmetrize:
        return forward_t(net, tri, tie, kap)
    flows, phases = [], []
    for g in DIHEDRAL:
        f, p = forward_t(net, _to_frame(tri, *g), _to_frame(tie, *g), kap)
        flows.append(_flow_from_frame(f, *g))
        phases.append(_from_frame(p, *g))
    return torch.stack(flows).mean(0), torch.stack(phases).mean(0)


def predict_frames(net, tri_net: np.ndarray, kappa: float, device):
    """Phase (8, H, W; rad, numpy) of one network-grid triplet (3, H, W) in each of the 8 grid
    frames, brought back to the input frame (what ``symmetrize`` averages)."""
    import torch

    tri = torch.as_tensor(np.asarray(tri_net, np.float32)[None], device=device)
    tie = torch.as_tensor(tie_phase_net(tri.cpu().double().numpy(), kappa).astype(np.float32), device=device)
    kap = torch.as_tensor(np.full((1,), kappa, np.float32), device=device)
    with torch.no_grad():
        return np.stack([_from_frame(forward_t(net, _to_frame(tri, *g), _to_frame(tie, *g), kap)[1], *g)[0].cpu().numpy()
                         for g in DIHEDRAL])


def tie_phase_net(tri_net: np.ndarray, kappa) -> np.ndarray:
    """Classical-TIE phase on the network grid (px = 1, units where ∇²φ = −(π²/(16κ))(I+ − I−)):
    the baseline solver with λ·dz chosen so that its source term equals that."""
    tri_net = np.asarray(tri_net, np.float64)
    kap = np.broadcast_to(np.asarray(kappa, np.float64), tri_net.shape[:-3])
    out = np.empty(tri_net.shape[:-3] + tri_net.shape[-2:])
    for idx in np.ndindex(*tri_net.shape[:-3]):
        # λ dz = κ/(π q_ap²) with q_ap = 1/4 px⁻¹: a Triplet in net-pixel units
        lam_dz = float(kap[idx]) / (math.pi * Q_AP_NET**2)
        t = Triplet(tri_net[idx].astype(np.float32), dz_a=lam_dz, pixel_size_a=1.0, energy_kev=0.0, wavelength_a=1.0,
                    messages=[], info={})
        out[idx] = solve_classical(t)
    return out


def flowtie_job(triplet, *, defocus_step_nm, pixel_size_a, energy_kev, semiangle_mrad=None, model="default",
                refine_steps=0, refine_lr=0.01, refine_prior=1.0, weight_continuity=0.1, device="auto", register=False,
                detector_mrad=None, detector_mrad_per_px=None, symmetrize=True, uncertainty=False):
    """FlowTIE as a job: yields Progress, returns a PhaseResult (phase, flow, metadata).
    ``symmetrize``: average the network over the 8 flips/transposes of the grid (see
    :func:`predict_net_grid`). ``uncertainty``: add ``phase_sigma`` (:mod:`.uncertainty`; not with
    ``refine_steps``)."""
    import torch

    clock = Stopwatch()
    want_sigma = check_flag(uncertainty)
    if want_sigma and int(refine_steps) > 0:
        raise InputError("uncertainty=True is available for the network phase only: use refine_steps=0")
    _, _, _, alpha = check_parameters(defocus_step_nm, pixel_size_a, energy_kev, semiangle_mrad)
    tri = prepare_triplet(triplet, defocus_step_nm=defocus_step_nm, pixel_size_a=pixel_size_a, energy_kev=energy_kev,
                          register=register, detector_mrad=detector_mrad, detector_mrad_per_px=detector_mrad_per_px)
    refine_steps = int(refine_steps)
    if refine_steps < 0:
        raise InputError(f"refine_steps must be >= 0, got {refine_steps}")
    dev = resolve_device(device)
    q_ap = aperture_q_per_a(alpha, tri.energy_kev)
    p_net = net_pixel_a(tri.pixel_size_a, q_ap)
    h, w = tri.shape
    hn, wn = max(1, round(h * tri.pixel_size_a / p_net)), max(1, round(w * tri.pixel_size_a / p_net))
    if min(hn, wn) < MIN_NET_PX:
        raise InputError(
            f"the field of view is too small for FlowTIE: {h}x{w} px of {tri.pixel_size_a:g} Å is only {hn}x{wn} px at the "
            f"network's sampling {p_net:.3g} Å (1/(4·aperture)); need at least {MIN_NET_PX} px"
        )
    if max(hn, wn) > 4096:
        raise InputError(f"the field of view is {hn}x{wn} px at the network's sampling {p_net:.3g} Å; crop it below 4096 px")
    total = 2 + refine_steps
    yield Progress(0, total, "FlowTIE: loading the network")
    net, model_info = resolve_model(model, dev)
    kappa = math.pi * tri.wavelength_a * tri.dz_a * (1.0 / (4 * p_net)) ** 2
    with torch.no_grad():
        imgs = resample(torch.as_tensor(tri.images[None]), (hn, wn))
        imgs = imgs / imgs[:, 1:2].mean(dim=(-2, -1), keepdim=True)
        yield Progress(1, total, "FlowTIE: network")
        flow_net, phase_net = predict_net_grid(net, imgs.numpy(), kappa, dev, symmetrize=bool(symmetrize))
        py, px_ = h * tri.pixel_size_a / hn, w * tri.pixel_size_a / wn  # effective net pixel per axis (Å)
        phase = resample(phase_net[None].cpu().double(), (h, w))[0, 0].numpy()
        flow_n = resample(flow_net.cpu().double(), (h, w))[0].numpy()
        flow = np.stack([flow_n[0] / py, flow_n[1] / px_]).astype(np.float32)
    phase = phase - phase.mean()
    params = {"semiangle_mrad": alpha, "net_pixel_a": p_net, "net_shape": [hn, wn], "kappa": kappa,
              "refine_steps": refine_steps, "symmetrize": bool(symmetrize), **model_info}
    method = "FlowTIE"
    extra = {}
    yield Progress(2, total, "FlowTIE: flow integrated")
    if refine_steps:
        method = "FlowTIE + refine"
        phase_r, _, info = yield from descend(tri, phase, aperture_q=q_ap, steps=refine_steps, lr=float(refine_lr),
                                              weight_continuity=float(weight_continuity), weight_prior=float(refine_prior),
                                              device=dev, label="FlowTIE refine")
        phase = band_limit_mirror(phase_r, tri.pixel_size_a, q_ap)
        flow = phase_gradient(phase, tri.pixel_size_a)
        params.update(refine_lr=float(refine_lr), refine_prior=float(refine_prior), weight_continuity=float(weight_continuity))
        extra = {"refine": {k: v for k, v in info.items() if k != "cancelled"}, "cancelled": info["cancelled"]}
    result = make_result(phase.astype(np.float32), flow, tri, method, params, clock.elapsed_s, str(dev), extra=extra)
    if not want_sigma:
        return result
    from .uncertainty import FLOWTIE_MODEL, FLOWTIE_NOTE, FLOWTIE_SIGMA_SCALE, flowtie_sigma

    def to_output(sigma_net):  # net grid -> input grid, like the phase
        return resample(torch.as_tensor(sigma_net[None, None]), (h, w))[0, 0].numpy()

    compute = lambda: flowtie_sigma(lambda t: predict_frames(net, t, kappa, dev), imgs[0].numpy(),  # noqa: E731
                                    phase_net.cpu().double().numpy()[0], to_output)
    return (yield from sigma_step(result, compute, label="FlowTIE", model=FLOWTIE_MODEL.format(c=FLOWTIE_SIGMA_SCALE),
                                  calibrated=False, note=FLOWTIE_NOTE, scale=FLOWTIE_SIGMA_SCALE))


def flowtie(triplet, *, defocus_step_nm: float, pixel_size_a: float, energy_kev: float, semiangle_mrad: float | None = None,
            model="default", refine_steps: int = 0, device: str = "auto", **kwargs):
    """FlowTIE phase of a (3, H, W) triplet ordered (−dz, 0, +dz) (or three 4D-STEM scans, see
    :func:`.triplet.prepare_triplet`). ``defocus_step_nm`` dz > 0, ``pixel_size_a`` Å, ``energy_kev``,
    ``semiangle_mrad`` the objective (probe) aperture (None: the data are taken as sampled at
    1/(4 q_ap)). ``model``: "default", a .pt path or a module. ``symmetrize`` (default True):
    the network's answer averaged over the 8 flips/transposes of the grid (8× its time). Returns a PhaseResult: ``phase``
    (rad), ``flow`` (2, H, W; ∇φ in rad/Å), ``metadata``. Any H, W and pixel size (resampled inside).
    ``uncertainty=True``: also ``phase_sigma`` (rad; the 8-symmetry spread of a noise-re-sampled
    triplet, scaled on the validation split, :mod:`.uncertainty`), about 2× the time."""
    return run_job(flowtie_job(triplet, defocus_step_nm=defocus_step_nm, pixel_size_a=pixel_size_a, energy_kev=energy_kev,
                               semiangle_mrad=semiangle_mrad, model=model, refine_steps=refine_steps, device=device, **kwargs))


def available() -> bool:
    """True when the default model is shipped."""
    from .. import models

    return DEFAULT_MODEL in models.list_models()


