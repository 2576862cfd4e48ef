"""Goodness of fit of a single-image result (SITIE, pixel-wise, SIPRAD, joint): does the
reconstructed wave explain the image it came from? (numpy in and out; the forward model of
:mod:`.forward`.)

The result's wave A·e^{iφ} is imaged at the input's defocus, M = |F⁻¹[F[A e^{iφ}] T(z)]|²
(:func:`.forward.simulate_image`; A uniform unless the method estimated it), a gain a ≥ 0 and
an offset b are fitted, I ≈ a·M + b, over the inner pixels (``margin_px`` left out: the solvers'
boundary), and the residual r = I − a·M − b is compared with the noise:

- ``misfit_over_noise`` = ⟨r²⟩/σ² (≈ 1 when the result explains the image down to white noise);
- ``structured_misfit`` = ⟨(G_s ∗ r)²⟩/(σ²/(4πs²)): the residual smoothed by a Gaussian of
  s = ``smooth_px`` against what white noise alone leaves after that smoothing (≈ 1 for noise; a
  texture, a particle or a phase the result got wrong stays, noise does not);
- ``unexplained_fraction`` = ⟨(G_s ∗ r)²⟩/⟨(G_s ∗ (I − Ī))²⟩: the share of the image's (smoothed)
  contrast the result leaves unexplained. This is the number the warning reads
  (:data:`WARN_UNEXPLAINED`): it does not grow without bound on a clean image, where even an
  accurate SITIE leaves a residual many times the noise (its linear model).

A result can explain its image and still be wrong: far from the weak-phase regime (a strong phase,
caustics) one image does not determine the phase (measured on the strong-phase class of
:mod:`.simulate_strong`, one image at −0.4 mm, 128²: SIPRAD leaves 2 % unexplained at accuracy
0.86–0.89). How far an image is from that regime is measured on the image itself: the share of
its contrast that the *linear* model leaves unexplained — :func:`fit_check` of the image's own
SITIE phase (``linear_unexplained_fraction``; SITIE is the exact inverse of the linearised image
formation). Above :data:`WARN_NONLINEAR` every single-image result is warned
(:data:`NONLINEAR_WARNING`) whether or not it fits.

σ: the white-noise level of the image (Immerkær's estimator, :func:`.regularise.noise_sigma`),
floored at ``noise_floor`` × mean intensity (a clean image would otherwise make every model error
look infinite). The residual map r/σ is returned as ``arrays["residual"]`` (units of σ).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .forward import Microscope, simulate_image
from .regularise import noise_sigma

#: the warning fires when ``unexplained_fraction`` exceeds this. Calibrated with SITIE on 72
#: simulated 128² windows (3 textures × −0.25/−1/−4 mm × noise 0/10/50/100 % × 0/4 particles,
#: seed 1; docs/benchmarks.md "Fit check"): every result with phase accuracy < 0.85 leaves ≥ 0.102
#: unexplained; of those > 0.95, all but the clean and 10 % stripes at −0.25 mm (0.125) leave ≤ 0.095
WARN_UNEXPLAINED = 0.10
#: the image is too far from the weak-phase regime for one image to determine the phase when the
#: linear (SITIE) model of it leaves more than this share of its contrast unexplained. Measured:
#: the calibration grid's SITIE leaves at most 0.31 (scripts/ltem_fit_check_calibration.py, seeds
#: 0–2, 216 windows), the LTEM bench's 124 images at most 0.336 (scripts/ltem_regime_bench_grid.py),
#: the strong-phase class 0.51–0.73 (wires, rods, particles, seeds 0–2, −0.4 mm, 128²)
WARN_NONLINEAR = 0.4
NONLINEAR_WARNING = ("the image is far from the weak-phase regime (a linear model leaves {u:.0%} of its contrast unexplained): "
                     "one image may not determine this phase; a through-focus series would be more reliable here")
#: σ is at least this fraction of the mean intensity
NOISE_FLOOR = 0.03
SMOOTH_PX = 2.0
MARGIN_PX = 8
WARNING = "the result does not explain the image ({u:.0%} of its contrast left unexplained): a through-focus series would be more reliable here"


def fit_check(image, phase, *, pixel_size_nm: float, defocus_nm: float, voltage_kv: float = 200.0, amplitude=None,
              microscope: Microscope | None = None, margin_px: int = MARGIN_PX, smooth_px: float = SMOOTH_PX,
              noise_floor: float = NOISE_FLOOR) -> tuple[dict, np.ndarray]:
    """(metadata dict, residual map in units of σ, float32) for one image (Y, X) and the phase
    (rad) reconstructed from it (module docstring). ``microscope``: the method's microscope (its
    defocus is replaced by ``defocus_nm``); default: the default microscope at ``voltage_kv``."""
    img = np.asarray(image, dtype=np.float64)
    ph = np.asarray(phase, dtype=np.float64)
    if img.shape != ph.shape:
        raise ValueError(f"fit_check: image {img.shape} and phase {ph.shape} must have the same shape")
    amp = 1.0 if amplitude is None else np.asarray(amplitude, dtype=np.float64)
    base = microscope.as_dict() if microscope is not None else {"voltage_kv": float(voltage_kv)}
    mic = Microscope(**{**base, "defocus_nm": float(defocus_nm)})
    model = simulate_image(ph, amp, pixel_size_nm=pixel_size_nm, microscope=mic, pad_px=max(ph.shape) // 4).astype(np.float64)
    m = int(min(margin_px, max(0, min(img.shape) // 2 - 8)))
    inner = (slice(m, img.shape[0] - m), slice(m, img.shape[1] - m))
    # a gain and an offset are free (the detector's), but not a negative gain: that would turn
    # a phase of the wrong sign (reversed contrast) into a fit
    w, y = model[inner].ravel(), img[inner].ravel()
    wc = w - w.mean()
    a = max(0.0, float(np.dot(wc, y - y.mean()) / max(float(np.dot(wc, wc)), 1e-30)))
    b = float(y.mean()) - a * float(w.mean())
    resid = img - (a * model + b)
    sigma = max(noise_sigma(img), float(noise_floor) * abs(float(img.mean())), 1e-12)
    misfit = float(np.mean(resid[inner] ** 2)) / sigma**2
    smooth = ndimage.gaussian_filter(resid, smooth_px, mode="reflect")
    structured = float(np.mean(smooth[inner] ** 2)) / (sigma**2 / (4 * np.pi * smooth_px**2))
    contrast = ndimage.gaussian_filter(img - float(img[inner].mean()), smooth_px, mode="reflect")
    unexplained = float(np.mean(smooth[inner] ** 2)) / max(float(np.mean(contrast[inner] ** 2)), 1e-30)
    explains = unexplained <= WARN_UNEXPLAINED
    info = {"misfit_over_noise": misfit, "structured_misfit": structured, "unexplained_fraction": unexplained, "noise_sigma": sigma,
            "intensity_scale": a, "explains_image": bool(explains),
            "warning": None if explains else WARNING.format(u=unexplained),
            "how": f"image simulated from the result at its defocus, a·M + b fitted (a ≥ 0); residual and image smoothed {smooth_px:g} px; warns when more than {WARN_UNEXPLAINED:g} of the contrast is unexplained"}
    return info, (resid / sigma).astype(np.float32)


def regime_check(info: dict, image, linear_phase, *, pixel_size_nm: float, defocus_nm: float, **kw) -> dict:
    """``info`` (a :func:`fit_check` dict) with ``linear_unexplained_fraction``: the share of the
    image's contrast its linear (SITIE) phase ``linear_phase`` leaves unexplained; above
    :data:`WARN_NONLINEAR` the warning says one image may not determine the phase (unless the
    result's own misfit already warns)."""
    lin, _ = fit_check(image, linear_phase, pixel_size_nm=pixel_size_nm, defocus_nm=defocus_nm, **kw)
    u = float(lin["unexplained_fraction"])
    out = {**info, "linear_unexplained_fraction": u, "weak_phase_regime": bool(u <= WARN_NONLINEAR)}
    if u > WARN_NONLINEAR and not info["warning"]:
        out["warning"] = NONLINEAR_WARNING.format(u=u)
    return out


def check_frames(frames, phases, *, pixel_size_nm: float, defocus_nm: float, amplitudes=None, linear_phases=None,
                 **kw) -> tuple[list[dict], np.ndarray, str | None]:
    """:func:`fit_check` of each frame (T, Y, X) against its phase (and :func:`regime_check`
    against ``linear_phases`` when given): (one dict per frame, residual maps (T, Y, X), the first
    warning or None, prefixed by the frame when there are several)."""
    infos, maps, warning = [], [], None
    for t, (img, ph) in enumerate(zip(frames, phases)):
        amp = None if amplitudes is None else amplitudes[t]
        info, res = fit_check(img, ph, pixel_size_nm=pixel_size_nm, defocus_nm=defocus_nm, amplitude=amp, **kw)
        if linear_phases is not None:
            info = regime_check(info, img, linear_phases[t], pixel_size_nm=pixel_size_nm, defocus_nm=defocus_nm, **kw)
        infos.append(info)
        maps.append(res)
        if warning is None and info["warning"]:
            warning = info["warning"] if len(frames) == 1 else f"frame {t}: {info['warning']}"
    return infos, np.stack(maps), warning


def attach_fit_check(result, frames, *, pixel_size_nm: float, defocus_nm: float, amplitudes=None, linear_phases=None, **kw):
    """Put the fit check of ``result`` (its phase, one frame (Y, X) or a series (T, Y, X) like
    ``frames``) into it: ``arrays["residual"]`` (units of σ), ``metadata["fit_check"]`` (a dict,
    or one per frame) and ``metadata["fit_warning"]`` (one line, or None). ``linear_phases``: the
    frames' SITIE phases, shaped like the phase, for :func:`regime_check` (the non-linear methods).
    Returns ``result``."""
    phase = np.asarray(result.arrays["phase"])
    imgs = np.asarray(frames)
    single = phase.ndim == 2
    lin = None if linear_phases is None else np.asarray(linear_phases)
    infos, maps, warning = check_frames(imgs[None] if single else imgs, phase[None] if single else phase,
                                        pixel_size_nm=pixel_size_nm, defocus_nm=defocus_nm, amplitudes=amplitudes,
                                        linear_phases=None if lin is None else (lin[None] if single else lin), **kw)
    result.arrays["residual"] = maps[0] if single else maps
    result.array_units["residual"] = "noise σ"
    result.metadata["fit_check"] = infos[0] if single else infos
    result.metadata["fit_warning"] = warning
    return result
