"""SIPRAD's joint mode: the contaminant amplitude solved with the phase, seeded by the detector.

Why a seed. A free amplitude map fitted with the phase is not identifiable from one defocused
image: a dark skyrmion core can be explained by the magnetic phase or by absorption, and the free
two-level network marked ~5× the particle area (IoU 0.09 on a 64² test image, 0–0.61 at 256²).
What tells a particle from a texture is what the detector (:mod:`.detect`) learnt from
defocus-independent features: the flux deficit 1 − A² that survives smoothing beyond the defocus
blur (a phase only moves intensity around), the blob's size, its flat interior and Fresnel fringe.

Model. The detector's particles k (its "Suggest mask" answer, calibrated thresholds) carry one
level a_k each:  A(r) = a_k on particle k, 1 elsewhere,  a_k = exp(−softplus(z_k)), started at
a0 = √(⟨I⟩_particles / ⟨I⟩_rest) (A² is the transmitted flux) as mask mode starts. The start phase
is made as in mask mode (the particles filled by the background mean in SITIE, or the pixel-wise
seed with a particle level), then the levels are fitted with the phase by the same loss and
optimiser; the electrostatic phase follows from A as in every mode (φe = σ V0 ξ (−ln A),
:class:`~napari_phase.ltem.siprad.ForwardModel`). Every ``project_every`` steps a particle whose
level shows no absorption (a_k ≥ 1 − ``min_contrast``) leaves the model, so joint mode keeps or
drops the detector's particles and never adds any. The result is projected to two levels:
background 1 and the area-weighted geometric mean of the kept levels.

What was tried and measured before this choice (docs/benchmarks_ltem_windows.md, "Joint mode"):
letting the fit move the support — per-pixel support logits in a 10-nm band around each blob, or
a per-particle shift and edge offset — made it worse (IoU 0.88 → 0.62 on skyrmions at 256²;
0.44 → 0.22 at 64²; both measured before the start phase was seeded with the mask, one image each):
at |Δf| = 1 mm the blur √(λ|Δf|) ≈ 50 nm is larger than the particles, and the phase absorbs what
the support does, so the image constrains a particle's level but not its edge.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

JOINT_DEFAULTS = {
    "min_contrast": 0.05,  # a particle whose level a_k ≥ 1 − this is background
}


def detector_seed(image: np.ndarray, *, pixel_size_nm: float, defocus_nm: float, voltage_kv: float = 200.0) -> np.ndarray:
    """The detector's particle mask of one image (bool): :func:`.detect.suggest_contaminant_mask`
    with its calibrated thresholds (the "Suggest mask" button's answer). Numpy in and out."""
    from .detect import suggest_contaminant_mask

    return suggest_contaminant_mask(image, pixel_size_nm=pixel_size_nm, defocus_nm=defocus_nm, voltage_kv=voltage_kv)


def start_level(frame: np.ndarray, seed: np.ndarray) -> float:
    """a0 = √(⟨I⟩ on the seed / ⟨I⟩ elsewhere), clipped to [0.01, 0.98] (A² is the transmitted flux)."""
    seed = np.asarray(seed, bool)
    if not seed.any() or seed.all():
        return 0.98
    ratio = float(np.mean(frame[seed]) / max(float(np.mean(frame[~seed])), 1e-12))
    return math.sqrt(float(np.clip(ratio, 1e-4, 0.98)))


class JointAmplitude:
    """The joint-mode amplitude of one frame: the detector's particles, each with a fitted level a_k
    (torch parameters z_k, a_k = exp(−softplus(z_k))); particles whose level shows no absorption are dropped."""

    def __init__(self, frame: np.ndarray, *, pixel_size_nm: float, defocus_nm: float, voltage_kv: float, device,
                 min_contrast: float = JOINT_DEFAULTS["min_contrast"], seed_mask: np.ndarray | None = None) -> None:
        import torch

        self.torch = torch
        frame = np.asarray(frame, np.float64)
        if seed_mask is None:
            seed_mask = detector_seed(frame, pixel_size_nm=pixel_size_nm, defocus_nm=defocus_nm, voltage_kv=voltage_kv)
        self.seed = np.asarray(seed_mask, bool)
        self.min_contrast = float(min_contrast)
        labels, n = ndimage.label(self.seed)
        self.n_particles = int(n)
        self.labels_np = labels
        self.labels = torch.as_tensor(labels.astype(np.int64), device=device)
        a0 = start_level(frame, self.seed)
        z0 = math.log(math.expm1(-math.log(a0)))  # softplus⁻¹(−ln a0)
        self.z = torch.full((n + 1,), z0, device=device, requires_grad=True)  # z[0]: background, never used
        self.keep = torch.ones((n + 1,), device=device)
        self.keep[0] = 0.0

    def seed_problem(self, problem):
        """The SIPRAD problem with the detector's mask, for the start phase (SITIE with the particles
        filled by the background mean, or the pixel-wise seed with a fitted particle level), as mask
        mode starts; the problem itself is not changed."""
        import dataclasses

        return dataclasses.replace(problem, mask=self.seed.copy()) if self.seed.any() else problem

    def neg_log_amp(self):
        """−ln A = softplus(z_k) on kept particle k, 0 elsewhere (torch, differentiable)."""
        return (self.torch.nn.functional.softplus(self.z) * self.keep)[self.labels]

    def param_groups(self, level_learning_rate: float):
        """Optimiser group of the levels (as mask mode's level)."""
        return [{"params": [self.z], "lr": float(level_learning_rate)}]

    def levels(self) -> np.ndarray:
        """a_k = exp(−softplus(z_k)) per particle (index 0 unused)."""
        with self.torch.no_grad():
            return np.exp(-self.torch.nn.functional.softplus(self.z).cpu().numpy().astype(np.float64))

    def kept(self) -> np.ndarray:
        """Particles still in the model whose level is below 1 − min_contrast (bool, index 0 False)."""
        return (self.keep.cpu().numpy() > 0) & (self.levels() < 1.0 - self.min_contrast)

    def project(self) -> None:
        """Particles whose level shows no absorption (a_k ≥ 1 − min_contrast) leave the model."""
        with self.torch.no_grad():
            self.keep.copy_(self.torch.as_tensor(self.kept().astype(np.float32), device=self.keep.device))

    def final_amplitude(self, amp: np.ndarray | None = None) -> np.ndarray:
        """Two-level amplitude (background 1): the kept particles at one level, the area-weighted
        geometric mean exp(⟨ln a_k⟩) of their fitted levels (``amp``, the kept iterate's A map,
        gives the levels it was fitted with; default the current ones)."""
        on = self.kept()[self.labels_np]
        out = np.ones(self.labels_np.shape, np.float32)
        if not on.any():
            return out
        if amp is None:
            amp = self.levels()[self.labels_np]
        level = float(np.exp(np.mean(np.log(np.clip(np.asarray(amp, np.float64)[on], 1e-6, 1.0)))))
        if level < 1.0 - self.min_contrast:
            out[on] = level
        return out

    def info(self, amp: np.ndarray) -> dict:
        """Metadata: what the detector seeded and what the joint fit kept."""
        kept = self.kept()
        return {"joint_seed_pixels": int(self.seed.sum()), "joint_particles_seeded": self.n_particles,
                "joint_particles_dropped": int(self.n_particles - kept.sum()), "joint_marked_pixels": int((np.asarray(amp) < 1).sum()),
                "joint_levels": [round(float(a), 4) for a in self.levels()[1:]]}


