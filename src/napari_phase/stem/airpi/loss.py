"""The composite airpi loss on the predicted exit wave of the centre position (torch).

With ψp = a·exp(iφp) predicted and ψt the truth (both in units where max|ψin| = 1), Ψ = FFT(ψ)
(orthonormal), the probe ψin and the object phase φobj (rad) the specimen imposes:

    L = ‖|ψp|² − |ψt|²‖² + ⟨w (sin φp − sin φt)²⟩ + ⟨w (cos φp − cos φt)²⟩           real space
      + ‖|Ψp|² − |Ψt|²‖² + 3 [⟨W (sin Φp − sin Φt)²⟩ + ⟨W (cos Φp − cos Φt)²⟩]     reciprocal space
      + ⟨m (sin Δ)²⟩ + ⟨m (1 − cos Δ)²⟩,  Δ = (φp − arg ψin) − φobj                object phase
      + (1 − xc)/2,  xc of (φp − arg ψin) against φobj inside the probe mask m

w = |ψt|² / max, W = |Ψt|² / max (phases count where there is signal), m = |ψin|² ≥ 0.1 max.
Vacuum samples (flat φobj) skip the xc term (it is undefined for a constant map).
"""

from __future__ import annotations

import torch

RECIPROCAL_PHASE_WEIGHT = 3.0


def _wmean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (x * w).sum(dim=(-2, -1)) / w.sum(dim=(-2, -1)).clamp_min(1e-12)


def masked_xc(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample normalised cross-correlation of mean-removed a, b inside ``mask`` (B,)."""
    m = mask.float()
    n = m.sum(dim=(-2, -1)).clamp_min(1.0)
    am = a - (a * m).sum(dim=(-2, -1), keepdim=True) / n[..., None, None]
    bm = b - (b * m).sum(dim=(-2, -1), keepdim=True) / n[..., None, None]
    num = (am * bm * m).sum(dim=(-2, -1))
    den = torch.sqrt((am * am * m).sum(dim=(-2, -1)) * (bm * bm * m).sum(dim=(-2, -1)) + 1e-12)
    return num / den


def airpi_loss(amp: torch.Tensor, phase: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss above for predicted (amp, phase) (B, N, N) against ``batch`` (see data.py):
    ``psi`` true exit wave (complex), ``probe`` ψin (complex), ``obj_phase`` φobj, ``mask``,
    ``vacuum`` (B,) bool. Returns (loss, parts as floats incl. ``xc``)."""
    psi_t = batch["psi"]
    probe = batch["probe"]
    mask = batch["mask"]
    psi_p = torch.polar(amp, phase)

    it, ip = psi_t.abs() ** 2, amp**2
    w = it / it.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    ph_t = torch.angle(psi_t)
    l_int = ((ip - it) ** 2).mean(dim=(-2, -1))
    l_sin = _wmean((torch.sin(phase) - torch.sin(ph_t)) ** 2, w)
    l_cos = _wmean((torch.cos(phase) - torch.cos(ph_t)) ** 2, w)

    f_t = torch.fft.fft2(psi_t, norm="ortho")
    f_p = torch.fft.fft2(psi_p, norm="ortho")
    i_ft, i_fp = f_t.abs() ** 2, f_p.abs() ** 2
    scale = i_ft.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    l_rint = (((i_fp - i_ft) / scale) ** 2).mean(dim=(-2, -1))
    big_w = i_ft / scale  # intensity weight: the faint dark field, whose phase is noise-like, counts little
    # sin Φ = Im Ψ / |Ψ|, cos Φ = Re Ψ / |Ψ| (angle() has no gradient at Ψ = 0)
    eps = 1e-6 * f_t.abs().amax(dim=(-2, -1), keepdim=True)
    u_t, u_p = f_t / (f_t.abs() + eps), f_p / (torch.sqrt(f_p.real**2 + f_p.imag**2 + eps**2))
    l_rphase = _wmean((u_p.imag - u_t.imag) ** 2 + (u_p.real - u_t.real) ** 2, big_w)

    obj_p = phase - torch.angle(probe)
    delta = obj_p - batch["obj_phase"]
    mf = mask.float()
    l_obj = _wmean(torch.sin(delta) ** 2 + (1 - torch.cos(delta)) ** 2, mf)
    # xc on the object phase, wrapped difference removed: compare φobj with φobj + wrap(Δ)
    obj_unwrapped = batch["obj_phase"] + torch.atan2(torch.sin(delta), torch.cos(delta))
    xc = masked_xc(obj_unwrapped, batch["obj_phase"], mask)
    has_contrast = ~batch["vacuum"]
    l_xc = torch.where(has_contrast, (1 - xc) / 2, torch.zeros_like(xc))

    per_sample = l_int + l_sin + l_cos + l_rint + RECIPROCAL_PHASE_WEIGHT * l_rphase + l_obj + l_xc
    loss = per_sample.mean()
    n_c = int(has_contrast.sum())
    parts = {
        "loss": float(loss.detach()),
        "int": float(l_int.mean().detach()), "phase_real": float((l_sin + l_cos).mean().detach()),
        "int_recip": float(l_rint.mean().detach()), "phase_recip": float(l_rphase.mean().detach()),
        "obj": float(l_obj.mean().detach()),
        "xc": float(xc[has_contrast].mean().detach()) if n_c else float("nan"),
    }
    return loss, parts
