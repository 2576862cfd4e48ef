"""Defocus triplets: checking and preparing the input, and the Fresnel forward model.

A triplet is three intensities (I−, I0, I+) at defocus (−dz, 0, +dz) in the project's sign
convention (DESIGN.md §3: a defocus is a propagation by that distance along the beam, negative =
under-focus), so ∂I/∂z ≈ (I+ − I−)/(2 dz).

Input forms accepted by :func:`prepare_triplet`:

* (3, H, W) or a list of three (H, W) images (TEM/LTEM series, or virtual images already made);
* three 4D-STEM scans at probe defocus −dz, 0, +dz, as one (3, Sy, Sx, Ky, Kx) array or a list of
  three (Sy, Sx, Ky, Kx) arrays: each is reduced to a virtual axial bright-field image with
  :func:`napari_phase.stem.detectors.virtual_image` (a disc of ``detector_mrad`` about the
  pattern centre). By reciprocity, STEM with a small axial detector equals conventional
  bright-field imaging with the probe's aperture as objective aperture, and a probe defocus equals
  an objective defocus, so the three virtual images are a through-focus triplet.

Preparation: optional sub-pixel registration of I− and I+ onto I0 (phase correlation with the
peak searched within ±1/8 of the field — a crystal correlates equally well at every lattice
vector, so the unrestricted peak of ``skimage.registration.phase_cross_correlation`` can jump a
lattice period — refined to 1/20 px; the measured shifts are always reported), and
dose normalisation: propagation conserves the mean intensity, so each image is divided by its own
mean and the triplet scaled so that mean(I0) = 1; unequal doses (> 1 % apart) are reported in
the messages and metadata.

Forward model (:func:`fresnel_triplet_t`): I_k = |F⁻¹[F[ψ] · A(q) · exp(−iπλ z_k q²)]|², z_k ∈
(−dz, 0, +dz), A the objective aperture q ≤ α/λ (α the semi-angle).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..jobs import InputError
from ..physics.optics import electron_wavelength_a
from ..validate import MIN_SIZE_PX, as_image, energy_kv, positive

ORDER = "(-dz, 0, +dz): under-focus, in focus, over-focus"
#: below this in-focus contrast (std/mean) shifts are not measured (nothing to register onto)
MIN_REGISTRATION_CONTRAST = 0.02


@dataclasses.dataclass
class Triplet:
    """A checked triplet: ``images`` (3, H, W) float32 with mean(I0) = 1, and what was done to it."""

    images: np.ndarray
    dz_a: float
    pixel_size_a: float
    energy_kev: float
    wavelength_a: float
    messages: list[str]
    info: dict[str, Any]

    @property
    def didz(self) -> np.ndarray:
        """∂I/∂z ≈ (I+ − I−)/(2 dz), per Å (float64)."""
        return (self.images[2].astype(np.float64) - self.images[0].astype(np.float64)) / (2 * self.dz_a)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.images.shape[-2:])


def aperture_q_per_a(semiangle_mrad: float | None, energy_kev: float) -> float | None:
    """Objective-aperture radius q = α/λ in 1/Å (None for no aperture)."""
    if semiangle_mrad is None:
        return None
    return float(semiangle_mrad) * 1e-3 / electron_wavelength_a(energy_kev)


def check_parameters(defocus_step_nm, pixel_size_a, energy_kev, semiangle_mrad=None) -> tuple[float, float, float, float | None]:
    """dz (nm, > 0), pixel (Å), energy (keV), semi-angle (mrad or None), checked."""
    try:
        dz_value = float(defocus_step_nm)
    except (TypeError, ValueError):
        raise InputError(f"defocus_step_nm must be a number, got {defocus_step_nm!r}") from None
    if dz_value == 0:
        raise InputError("defocus_step_nm must not be zero: the triplet needs images at -dz and +dz to give dI/dz")
    if not math.isfinite(dz_value) or dz_value < 0:
        raise InputError(f"defocus_step_nm must be a positive step dz (images ordered -dz, 0, +dz), got {dz_value:g} nm")
    px = positive(pixel_size_a, "pixel_size_a", "Å")
    kev = energy_kv(energy_kev, "energy_kev")
    alpha = None if semiangle_mrad in (None, 0, 0.0) else positive(semiangle_mrad, "semiangle_mrad", "mrad")
    return dz_value, px, kev, alpha


def _as_frames(data, detector_mrad, detector_mrad_per_px, messages, info) -> list[np.ndarray]:
    """The three raw frames as arrays: 2-D images, or 4-D scans reduced by the virtual detector."""
    if data is None:
        raise InputError("no triplet given: need three images (-dz, 0, +dz)")
    if isinstance(data, (list, tuple)):
        if len(data) != 3:
            raise InputError(f"a triplet is exactly 3 images (-dz, 0, +dz), got {len(data)}")
        frames = [np.asarray(d) for d in data]
        ndims = {f.ndim for f in frames}
        if len(ndims) != 1:
            raise InputError(f"the three inputs must have the same number of dimensions, got {[f.ndim for f in frames]}")
    else:
        arr = np.asarray(data) if not hasattr(data, "compute") else data
        if arr.ndim not in (3, 5) or arr.shape[0] != 3:
            raise InputError(
                f"a triplet must be (3, H, W) images or (3, Sy, Sx, Ky, Kx) 4D-STEM scans ordered {ORDER}; got shape {tuple(arr.shape)}"
            )
        frames = [arr[k] for k in range(3)]
    nd = np.ndim(frames[0])
    if nd == 4:
        frames = [_virtual_bf(f, detector_mrad, detector_mrad_per_px, k) for k, f in enumerate(frames)]
        info["input"] = f"three 4D-STEM scans, virtual axial bright field r = {detector_mrad:g} mrad"
        messages.append(f"4D-STEM: virtual axial bright-field detector of {detector_mrad:g} mrad (reciprocity)")
    elif nd == 2:
        info["input"] = "three images"
    else:
        raise InputError(f"each triplet member must be a 2-D image or a 4-D scan, got {nd}-D")
    shapes = {tuple(np.shape(f)) for f in frames}
    if len(shapes) != 1:
        raise InputError(f"the three images must have the same shape, got {[tuple(np.shape(f)) for f in frames]}")
    return [np.asarray(f) for f in frames]


def _virtual_bf(scan, detector_mrad, detector_mrad_per_px, k) -> np.ndarray:
    if detector_mrad is None or detector_mrad_per_px is None:
        raise InputError("4D-STEM input needs the virtual detector radius (detector_mrad) and the detector sampling (detector_mrad_per_px)")
    radius = positive(detector_mrad, "detector_mrad", "mrad")
    sampling = positive(detector_mrad_per_px, "detector_mrad_per_px", "mrad/px")
    from ..stem.detectors import virtual_image

    img = virtual_image(scan, 0.0, radius, detector_mrad_per_px=sampling)
    return np.asarray(img.compute() if hasattr(img, "compute") else img, dtype=np.float32)


def prepare_triplet(
    data,
    *,
    defocus_step_nm: float,
    pixel_size_a: float,
    energy_kev: float,
    register: bool = False,
    detector_mrad: float | None = None,
    detector_mrad_per_px: float | None = None,
    min_size_px: int = MIN_SIZE_PX,
) -> Triplet:
    """Check a triplet (see module doc) and return it normalised; bad input → InputError."""
    dz_nm, px, kev, _ = check_parameters(defocus_step_nm, pixel_size_a, energy_kev)
    messages: list[str] = []
    info: dict[str, Any] = {"order": ORDER}
    frames = _as_frames(data, detector_mrad, detector_mrad_per_px, messages, info)
    names = ("under-focus (-dz) image", "in-focus image", "over-focus (+dz) image")
    checked = []
    for k, (f, name) in enumerate(zip(frames, names)):
        if k == 1 and np.size(f) and np.isrealobj(f) and np.issubdtype(np.asarray(f).dtype, np.number) \
                and np.isfinite(f).all() and np.ptp(f) == 0 and min(np.shape(f)) >= min_size_px:
            checked.append(np.asarray(f, dtype=np.float32))  # a pure phase object has a flat in-focus image
            continue
        checked.append(as_image(f, name=name, min_size_px=min_size_px))
    for f, name in zip(checked, names):
        if float(f.min()) < 0:
            raise InputError(f"the {name} has negative intensities (min {float(f.min()):.3g}); give counts or intensities >= 0")
        if float(f.mean()) <= 0:
            raise InputError(f"the {name} has zero mean intensity: no signal")
    means = [float(f.mean(dtype=np.float64)) for f in checked]
    info["input_means"] = means
    spread = (max(means) - min(means)) / max(means)
    imgs = np.stack([f / m for f, m in zip(checked, means)]).astype(np.float32)
    if spread > 0.01:
        messages.append(
            "the three images had different mean doses (" + ", ".join(f"{m:.4g}" for m in means)
            + "): each normalised to its mean (propagation conserves the mean intensity)"
        )
        info["dose_normalised"] = True
    else:
        info["dose_normalised"] = False
    diff = np.abs(imgs[2] - imgs[0])
    if float(diff.max()) < 1e-6:
        raise InputError("the -dz and +dz images are identical: no intensity change with defocus, nothing to reconstruct")
    contrast = float(imgs[1].std() / imgs[1].mean())
    if contrast < MIN_REGISTRATION_CONTRAST:  # a (weak) phase object: nothing in focus to register onto
        info["shifts_px"] = None
        if register:
            messages.append(f"registration skipped: the in-focus image has almost no contrast ({100 * contrast:.1f} %)")
        info["registered"] = False
        return Triplet(imgs, dz_nm * 10.0, px, kev, electron_wavelength_a(kev), messages, info)
    shifts = _measure_shifts(imgs)
    info["shifts_px"] = shifts
    if register:
        imgs = _apply_shifts(imgs, shifts)
        messages.append("registered: -dz shifted by ({:.2f}, {:.2f}) px, +dz by ({:.2f}, {:.2f}) px onto the in-focus image".format(
            *shifts[0], *shifts[2]))
        info["registered"] = True
    else:
        info["registered"] = False
        worst = max(math.hypot(*s) for s in shifts)
        if worst > 0.5:
            messages.append(f"the images look shifted by up to {worst:.2f} px against the in-focus one; consider register=True")
    return Triplet(imgs, dz_nm * 10.0, px, kev, electron_wavelength_a(kev), messages, info)


def _measure_shifts(imgs: np.ndarray, upsample: int = 20) -> list[tuple[float, float]]:
    """Shift (dy, dx) in px that moves each image onto I0: phase correlation, peak searched within
    ±1/8 of the field (a crystal correlates equally at every lattice vector: the nearest peak is
    the registration), refined to 1/``upsample`` px by a local matrix DFT of the cross-power."""
    out = []
    ref = np.fft.fft2(imgs[1] - imgs[1].mean())
    h, w = imgs.shape[-2:]
    lim_y, lim_x = max(1, h // 8), max(1, w // 8)
    for k in range(3):
        if k == 1 or np.ptp(imgs[1]) == 0:
            out.append((0.0, 0.0))
            continue
        plain = ref * np.conj(np.fft.fft2(imgs[k] - imgs[k].mean()))
        cross = plain / (np.abs(plain) + 1e-12 * np.abs(plain).max())
        corr = np.real(np.fft.ifft2(cross))
        dy = np.fft.fftfreq(h, 1 / h)[:, None]
        dx = np.fft.fftfreq(w, 1 / w)[None, :]
        corr[(np.abs(dy) > lim_y) | (np.abs(dx) > lim_x)] = -np.inf
        iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
        py, px = float(dy[iy, 0]), float(dx[0, ix])
        # local upsampled correlation: c(s) = Σ_q cross(q) exp(2πi q·s), s on a 1/upsample grid ±1.5 px
        offs = np.arange(-1.5, 1.5 + 1e-9, 1.0 / upsample)
        qy = np.fft.fftfreq(h)[None, :]
        qx = np.fft.fftfreq(w)[:, None]
        ey = np.exp(2j * np.pi * (py + offs)[:, None] * qy)
        ex = np.exp(2j * np.pi * qx * (px + offs)[None, :])
        local = np.real(ey @ plain @ ex)  # plain cross-correlation: robust to the defocus contrast change
        jy, jx = np.unravel_index(int(np.argmax(local)), local.shape)
        out.append((py + float(offs[jy]), px + float(offs[jx])))
    return out


def _apply_shifts(imgs: np.ndarray, shifts) -> np.ndarray:
    from scipy.ndimage import fourier_shift

    out = imgs.copy()
    for k, s in enumerate(shifts):
        if k != 1 and (s[0] or s[1]):
            out[k] = np.real(np.fft.ifft2(fourier_shift(np.fft.fft2(imgs[k]), s))).astype(np.float32)
    return np.clip(out, 0, None)


# ----------------------------------------------------------------------------- forward model

def q2_grid_t(shape, pixel_size_a: float, device=None, dtype=None):
    """|q|² (1/Å²) on the FFT grid, torch."""
    import torch

    dtype = dtype or torch.float32
    qy = torch.fft.fftfreq(int(shape[0]), d=pixel_size_a, device=device, dtype=dtype)[:, None]
    qx = torch.fft.fftfreq(int(shape[1]), d=pixel_size_a, device=device, dtype=dtype)[None, :]
    return qy**2 + qx**2


def fresnel_triplet_t(psi, pixel_size_a: float, wavelength_a: float, dz_a, aperture_q=None):
    """Triplet intensities (..., 3, H, W) of exit waves ψ (..., H, W), complex torch.

    ``dz_a``: a float or a tensor broadcastable to ψ's leading shape (per-sample dz in Å);
    ``aperture_q``: None, a float or such a tensor (aperture radius, 1/Å). Periodic boundaries.
    """
    import torch

    q2 = q2_grid_t(psi.shape[-2:], pixel_size_a, psi.device, torch.float32)
    spec = torch.fft.fft2(psi)
    lead = psi.shape[:-2]
    if aperture_q is not None:
        ap = torch.as_tensor(aperture_q, dtype=torch.float32, device=psi.device)
        if ap.ndim:
            ap = ap.reshape(*lead, 1, 1)
        spec = spec * (q2 <= ap**2).to(spec.dtype)
    dz = torch.as_tensor(dz_a, dtype=torch.float32, device=psi.device)
    if dz.ndim:
        dz = dz.reshape(*lead, 1, 1)
    out = []
    for sign in (-1.0, 0.0, 1.0):
        if sign == 0.0:
            wave = torch.fft.ifft2(spec)
        else:
            prop = torch.exp(-1j * math.pi * wavelength_a * (sign * dz) * q2)
            wave = torch.fft.ifft2(spec * prop)
        out.append(wave.real**2 + wave.imag**2)
    return torch.stack(out, dim=-3)


def simulate_triplet(
    exit_wave: np.ndarray,
    *,
    defocus_step_nm: float,
    pixel_size_a: float,
    energy_kev: float,
    semiangle_mrad: float | None = None,
) -> np.ndarray:
    """(3, H, W) float32 intensities of an exit wave (complex, periodic) at (−dz, 0, +dz) through
    an aperture of ``semiangle_mrad`` (None: none); the forward model of the baselines."""
    import torch

    dz_nm, px, kev, alpha = check_parameters(defocus_step_nm, pixel_size_a, energy_kev, semiangle_mrad)
    psi = torch.as_tensor(np.asarray(exit_wave, dtype=np.complex64))
    out = fresnel_triplet_t(psi, px, electron_wavelength_a(kev), dz_nm * 10.0, aperture_q_per_a(alpha, kev))
    return out.numpy().astype(np.float32)


def band_limit(phase: np.ndarray, pixel_size_a: float, aperture_q: float | None) -> np.ndarray:
    """Low-pass a map (periodic) to |q| ≤ aperture_q (1/Å); None leaves it as is."""
    if aperture_q is None:
        return np.asarray(phase, dtype=np.float32)
    spec = np.fft.fft2(np.asarray(phase, dtype=np.float64))
    qy = np.fft.fftfreq(phase.shape[-2], d=pixel_size_a)[:, None]
    qx = np.fft.fftfreq(phase.shape[-1], d=pixel_size_a)[None, :]
    return np.real(np.fft.ifft2(spec * (qy**2 + qx**2 <= aperture_q**2))).astype(np.float32)
