"""TIE from a through-focus series of any odd length, with an optional flipped series; SITIE with
a flipped pair. Numpy in and out; the FFT Poisson solver of :mod:`napari_phase.physics.poisson`.

Series: images I_k at defoci z_k (nm, negative = under-focus, DESIGN.md §3), symmetric about
the in-focus image in the middle (z_k = −z_{N−1−k}, z_mid = 0), ordered from most under- to most
over-focused. ∂I/∂z is the least-squares slope of I(z) over *all* images,

    ∂I/∂z ≈ Σ_k z_k I_k / Σ_k z_k²

(for symmetric z the slope of a linear and of a quadratic fit coincide, so the even, second-order
defocus term does not bias it; for N = 3 it is (I₊ − I₋)/(2Δz)). The full TIE
∇·(I0∇φ) = −(2π/λ) ∂I/∂z is solved with the Tikhonov cut-off ``qc_per_nm`` (default 0.5/FOV) and
a boundary model: "mirror" (zero flux, the mirror padding of :func:`napari_phase.physics.poisson.solve_tie`) or
"free" (:func:`solve_tie_free`: the field is a window of a larger specimen; phase constant just
outside); "auto" picks "free" when alignment moved or cropped the images or a roi is given. I0, the in-focus intensity, is estimated as the mean of all images of
the series (the first-order defocus contrast cancels over symmetric defoci; the noise drops by
√N): on the benchmark's 5-image series at 10 % noise (no misalignment, qc = 0, seed 0) this
raised the magnetic-phase accuracy from 0.95 to 0.99 against using the in-focus image alone.
Both are normalised by mean(I0).

Flipped series: the same defoci recorded with the specimen turned over (rotated 180° about an
in-plane axis). The image is then mirrored about that axis ("x": left-right, the specimen turned
about the image's y axis; "y": up-down), may be rotated and shifted, and the magnetic phase
changes sign while the electrostatic one does not. After un-mirroring (and registration when
``align``), φ = φe + φm and φ_flip = φe − φm, so

    φm = (φ − φ_flip)/2,   φe = (φ + φ_flip)/2.

With ``align``, the images of each series are registered by :func:`_register_series` (the
sub-2-px drift onto each image's own simulation, :mod:`.series_register`). φe uses the
per-frequency ∂I/∂z (``derivative_e="spectral"``) and gets its Tikhonov-shrunk lowest
frequencies from the amplitude (``phase_e_prior="auto"``, :mod:`.phase_e_prior`): on the
benchmark's flipped series at 10 % noise, φe accuracy 0.920 → 0.966 (seeds 0–2), φe magnitude
0.57 → 0.84 of the truth. Those refinements are kept only when the data say they help
(:mod:`.phase_e_check`: where the absorption follows φe, the refined φe must agree with −ln A
no worse than the plain algebra (φ + φflip)/2 of the φm solve; elsewhere it must fit both recorded
series better); else φe is the plain algebra (``metadata["phase_e_check"]``).
Each series is solved on its own field (the flipped one on its whole recorded,
un-mirrored frame) and φ_flip is warped into the unflipped frame; φe uses its own cut-off
``qc_e_per_nm`` (default 2/FOV, or ``qc_per_nm`` when given).

One image (N = 1) at a non-zero defocus is SITIE (uniform I0 = mean(I)); with a flipped image
it is SITIE with a flipped pair (the amplitude contrast common to both cancels in φm).

B·t (T·nm) from φm by :func:`napari_phase.physics.induction_from_phase`.
"""

from __future__ import annotations

import numpy as np

from ..jobs import InputError, Progress, Stopwatch
from ..uncertainty import DEFAULT_SAMPLES, check_flag, sigma_step
from ..validate import as_image, energy_kv, intensities, number, positive
from . import align as _align
from .series_register import register_series_to_model, series_misfit, shift_series
from .phase_e_check import PHASE_E_CHECKS, choose_phase_e
from .phase_e_prior import PHASE_E_PRIORS, amplitude_prior
from .sitie import AUTO_SOURCE, _result, check_qc, is_auto
from .series_solve import (  # the TIE of one series, shared with series_register.py (didz_*, solve_tie_free: re-exported)
    DEFAULT_SERIES_QC_FOV_UNITS,
    default_series_qc_per_nm,
    didz_least_squares,
    didz_spectral,
    series_phase,
    solve_tie_free,
)

#: boundary models of the series solve (see :func:`solve_tie_free`)
SERIES_BOUNDARIES = ("auto", "free", "mirror")

# ------------------------------------------------------------------------------------ checks


def as_series(stack, name: str = "series") -> np.ndarray:
    """(N, Y, X) float32 from an array or a list of equally shaped 2-D images."""
    if stack is None:
        raise InputError(f"no {name} given")
    if isinstance(stack, (list, tuple)):
        if len(stack) == 0:
            raise InputError(f"the {name} is empty")
        shapes = [np.shape(s) for s in stack]
        if len(set(shapes)) != 1:
            raise InputError(f"the images of the {name} must all have the same shape, got {sorted(set(shapes))}")
    arr = np.asarray(stack)
    if arr.ndim != 3:
        raise InputError(
            f"the {name} must be a stack (N, Y, X) of N images (N odd: exactly 3 for an under/in/over triplet, "
            f"or 5, 7, ...; or 1 for SITIE), got shape {arr.shape}"
        )
    return arr


def defoci_nm(n: int, defocus_step_nm=None, defocus_nm=None) -> np.ndarray:
    """The defocus of each of ``n`` images (nm, float64), from a step or explicit values, checked:
    N odd, ascending, no duplicates, symmetric about an in-focus (0) middle image; N = 1 needs one
    non-zero defocus."""
    if (defocus_step_nm is None) == (defocus_nm is None):
        raise InputError("give either defocus_step_nm (a symmetric series) or defocus_nm (one value per image), not both or neither")
    if n % 2 == 0:
        raise InputError(
            f"TIE needs an odd number of images (exactly 3 for an under/in/over triplet, or 5, 7, ...) with the in-focus "
            f"image in the middle, got {n}"
        )
    if defocus_step_nm is not None:
        if n == 1:
            raise InputError("a single image needs its defocus (defocus_nm=[...]), not a step; or give exactly 3 images")
        step = positive(defocus_step_nm, "defocus_step_nm", "nm")
        return (np.arange(n) - n // 2) * step
    try:
        z = np.atleast_1d(np.asarray([number(v, "defocus_nm") for v in np.atleast_1d(np.asarray(defocus_nm, dtype=object)).ravel()],
                                     dtype=np.float64))
    except ValueError:
        raise InputError(f"defocus_nm must be one number per image (nm), got {defocus_nm!r}") from None
    if z.size != n:
        raise InputError(f"defocus_nm has {z.size} value(s) for {n} image(s): give one defocus per image")
    if not np.isfinite(z).all():
        raise InputError(f"defocus_nm must be finite numbers, got {defocus_nm!r}")
    if n == 1:
        if z[0] == 0:
            raise InputError("the single image must be defocused (defocus_nm != 0): an in-focus image has no phase contrast")
        return z
    if len(np.unique(z)) != n:
        raise InputError(f"defocus_nm has duplicated values {z.tolist()}: each image needs its own defocus")
    if not np.all(np.diff(z) > 0):
        raise InputError("order the series from most under-focused (most negative defocus_nm) to most over-focused")
    tol = 1e-6 * float(np.max(np.abs(z)))
    if abs(z[n // 2]) > tol or np.max(np.abs(z + z[::-1])) > tol:
        raise InputError(
            f"defocus_nm must be symmetric about the in-focus middle image (−z … 0 … +z), got {z.tolist()}"
        )
    z[n // 2] = 0.0
    return z


def _frame_name(k: int, n: int, z: float) -> str:
    if n == 3:
        return ("under-focus image", "in-focus image", "over-focus image")[k]
    return f"image {k} (defocus {z / 1e6:g} mm)"


def check_series(arr: np.ndarray, z: np.ndarray, label: str = "") -> np.ndarray:
    """Every image finite, numeric, big enough; defocused images not constant; the in-focus image
    may be uniform (a pure phase object) but must have a positive mean."""
    n = arr.shape[0]
    frames = []
    for k in range(n):
        name = label + _frame_name(k, n, z[k])
        if z[k] == 0:
            frames.append(_in_focus(arr[k], name))
        else:
            frames.append(as_image(arr[k], name=name))
    out = np.stack(frames).astype(np.float32)
    mid = n // 2
    if float(out[mid].mean()) <= 0 or float(out.mean()) <= 0:
        what = "in-focus image" if n > 1 else "image"
        raise InputError(f"the {label}{what} has a non-positive mean intensity; TIE needs intensities (counts)")
    for k in range(n):
        intensities(out[k], label + _frame_name(k, n, z[k]))
    if n > 1 and all(np.array_equal(out[k], out[n - 1 - k]) for k in range(mid)):
        raise InputError(f"the {label}under- and over-focus images are identical: no intensity change to reconstruct from")
    return out


def _in_focus(image, name: str) -> np.ndarray:
    img = np.asarray(image)
    if img.size and np.isrealobj(img) and np.issubdtype(img.dtype, np.number) and np.isfinite(img).all() and np.ptp(img) == 0:
        if min(img.shape) < 16:
            return as_image(img, name=name)
        return img.astype(np.float32)
    return as_image(img, name=name)


# ------------------------------------------------------------------------------------ science


#: how the images of one series are registered with ``align`` (the flipped series onto the
#: unflipped one is always one rigid transform, :func:`.align.align_flipped`):
#: "model": shifts of 2 px or more by cross-correlation with the neighbour
#: (:func:`.align.align_series`), then every image onto its simulation at its own defocus
#: (:func:`.series_register.register_series_to_model`) — when the coarse step moved an image, the
#: refinement also runs from no shift and the shifts that fit the series' model better win
#: (:func:`.series_register.series_misfit`); "cross-correlation": the first step only
#: (the earlier behaviour: shifts under :data:`.align.SERIES_MIN_SHIFT_PX` are not applied).
SERIES_REGISTRATIONS = ("model", "cross-correlation")
#: the cross-correlation's start is kept only when it lowers the series' misfit to its own model by
#: this fraction: undrifted strong-phase series (φe of tens of rad deflects the defocused images by
#: several px) gave wrong starts that fit 0.4–4.7 % better (model error), drifted series whose
#: start was right 19–57 % better (scripts/ltem_registration_grid.py, bench.ltem_flip_register)
COARSE_START_MARGIN = 0.10


def _register_series(series: np.ndarray, z: np.ndarray, px: float, kv: float, how: str, extra: dict):
    """(aligned series, one Rigid per image) for ``align=True`` (see :data:`SERIES_REGISTRATIONS`)."""
    n = series.shape[0]
    if n == 1:
        return series, [_align.IDENTITY]
    coarse, tr = _align.align_series(series, rotation=False)
    if how == "cross-correlation":
        return coarse, tr
    start = np.array([t.shift_yx for t in tr], dtype=np.float64)
    shifts, info = register_series_to_model(series, z, px, voltage_kv=kv, start=start)
    info = {**info, "coarse_shifts_yx_px": start.tolist()}
    if start.any():
        # cross-correlating images whose contrast reverses (under- vs over-focus) or repeats (a
        # lattice) can lock onto a wrong shift: the refinement from no shift at all competes, and
        # the shifts under which the series fits its own model better win
        plain, plain_info = register_series_to_model(series, z, px, voltage_kv=kv, start=None)
        m_coarse = series_misfit(series, shifts, z, px, voltage_kv=kv)
        m_plain = series_misfit(series, plain, z, px, voltage_kv=kv)
        info["misfit_from_coarse_start"], info["misfit_from_no_shift"] = m_coarse, m_plain
        if m_coarse > (1.0 - COARSE_START_MARGIN) * m_plain:
            shifts, info = plain, {**plain_info, **{k: v for k, v in info.items() if k.startswith(("misfit", "coarse"))},
                                   "start": f"no shift (the cross-correlation's start does not fit the series {COARSE_START_MARGIN:.0%} better)"}
    extra["series_registration"] = info
    out = shift_series(series, shifts)
    return out, [_align.Rigid(0.0, (float(s[0]), float(s[1])), t.quality) for s, t in zip(shifts, tr)]


def _zero_mean(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()).astype(np.float32)


# ------------------------------------------------------------------------------------ job


def tie_series_job(
    stack,
    *,
    pixel_size_nm: float,
    defocus_step_nm: float | None = None,
    defocus_nm=None,
    flipped=None,
    flip_axis: str = "x",
    align: bool = False,
    align_rotation: bool = True,
    max_rotation_deg: float = 10.0,
    hot_pixel_sigma: float | None = None,
    roi=None,
    voltage_kv: float = 200.0,
    qc_per_nm: float | str | None = None,
    pad: bool = True,
    keep_aligned: bool | None = None,
    boundary: str = "auto",
    qc_e_per_nm: float | None = None,
    derivative: str = "least_squares",
    derivative_e: str = "spectral",
    phase_e_prior: str = "auto",
    phase_e_check: str = "auto",
    series_registration: str = "model",
    uncertainty: bool = False,
):
    """TIE from a series (and its flipped twin) as a job; see :func:`napari_phase.ltem.tie`.
    Raises JobCancelled if cancelled (there is no partial phase to return); cancelled at the σ
    step (``uncertainty``), the result is returned without σ."""
    clock = Stopwatch()
    want_sigma = check_flag(uncertainty)
    arr = as_series(stack, "series")
    n = arr.shape[0]
    z = defoci_nm(n, defocus_step_nm, defocus_nm)
    px = positive(pixel_size_nm, "pixel_size_nm", "nm")
    kv = energy_kv(voltage_kv, "voltage_kv")
    if boundary not in SERIES_BOUNDARIES:
        raise InputError(f"boundary must be one of {SERIES_BOUNDARIES} (free: the field is a window of a larger specimen; mirror: zero flux at the edges; auto: free when alignment moved or cropped the images), got {boundary!r}")
    if derivative not in ("least_squares", "spectral"):
        raise InputError(f"derivative must be 'least_squares' or 'spectral', got {derivative!r}")
    if derivative_e not in ("least_squares", "spectral"):
        raise InputError(f"derivative_e must be 'least_squares' or 'spectral', got {derivative_e!r}")
    if phase_e_prior not in PHASE_E_PRIORS:
        raise InputError(f"phase_e_prior must be one of {PHASE_E_PRIORS} (auto: the electrostatic phase's lowest frequencies from the amplitude, as for one material; none: shrunk to zero), got {phase_e_prior!r}")
    if phase_e_check not in PHASE_E_CHECKS:
        raise InputError(f"phase_e_check must be one of {PHASE_E_CHECKS} (auto: φe's refinements kept only when the data say they help, else the plain algebra (φ + φflip)/2; off: always the refined φe), got {phase_e_check!r}")
    if series_registration not in SERIES_REGISTRATIONS:
        raise InputError(f"series_registration must be one of {SERIES_REGISTRATIONS}, got {series_registration!r}")
    if not pad:
        boundary = "mirror"  # pad=False: the periodic solve of physics.poisson
    if flip_axis not in _align.FLIP_AXES:
        raise InputError(f"flip_axis must be 'x' (flipped left-right) or 'y' (up-down), got {flip_axis!r}")
    series = check_series(arr, z)
    fl = None
    if flipped is not None:
        farr = as_series(flipped, "flipped series")
        if farr.shape != arr.shape:
            raise InputError(f"the flipped series has shape {farr.shape}, the series {arr.shape}: they must match image for image")
        fl = check_series(farr, z, "flipped ")
    if hot_pixel_sigma is not None:
        k = positive(hot_pixel_sigma, "hot_pixel_sigma")
        series, n_hot = _align.remove_outliers(series, k)
        n_hot_f = 0
        if fl is not None:
            fl, n_hot_f = _align.remove_outliers(fl, k)
    params = {
        "pixel_size_nm": px,
        "defocus_nm": [float(v) for v in z],
        "voltage_kv": kv,
        "pad": bool(pad),
        "flipped": fl is not None,
        "flip_axis": flip_axis if fl is not None else None,
        "align": bool(align),
        "align_rotation": bool(align_rotation),
        "max_rotation_deg": float(max_rotation_deg),
        "hot_pixel_sigma": None if hot_pixel_sigma is None else float(hot_pixel_sigma),
        "roi": None if roi is None else [int(v) for v in roi],
        "stack_order": "most under-focused first (defocus ascending)",
        
        "derivative": ("least-squares slope over all images" if derivative == "least_squares" else "per-frequency least squares (weak-object defocus response)") if n > 1 else "SITIE (I - mean)/defocus",
        "input_shape": tuple(int(s) for s in arr.shape),
        "series_registration": series_registration if align and n > 1 else None,
    }
    if flipped is not None:
        params["derivative_e"] = derivative_e
        params["phase_e_prior"] = phase_e_prior
        params["phase_e_check"] = phase_e_check
    if defocus_step_nm is not None:
        params["defocus_step_nm"] = float(defocus_step_nm)
    extra: dict = {}
    if hot_pixel_sigma is not None:
        extra["hot_pixels_replaced"] = int(n_hot + n_hot_f)

    steps = 1 + (1 if fl is not None else 0) + (1 if align else 0)
    done = 0
    yield Progress(done, steps, "checking the flip axis" if fl is not None else "TIE: solving")
    candidates = None
    if fl is not None:
        check = _align.check_flip_axis(series, fl, flip_axis, align=align, max_rotation_deg=max_rotation_deg)
        candidates = check.pop("_named_candidates")
        extra["flip_check"] = check
    rigid = None
    un_fl = None
    if align:
        series, tr = _register_series(series, z, px, kv, series_registration, extra)
        extra["series_transforms"] = [t.as_dict() for t in tr]
        valid = np.ones(series.shape[-2:], bool)
        for t in tr:
            valid &= _align.valid_mask(series.shape[-2:], t)
        box_series = _align.valid_box(valid)
        if fl is not None:
            un_fl = _align.unmirror(fl, flip_axis).astype(np.float32)
            used: dict = {}
            fl, rigid = _align.align_flipped(series, fl, flip_axis, rotation=align_rotation, max_rotation_deg=max_rotation_deg,
                                             candidates=candidates if all(np.hypot(*t.shift_yx) < _align.SERIES_MIN_SHIFT_PX for t in tr) else None,
                                             report=used)
            extra["flipped_transform"] = {**rigid.as_dict(), **used}
            valid &= _align.valid_mask(series.shape[-2:], rigid)
        box = _align.valid_box(valid)
        done += 1
        yield Progress(done, steps, "aligned; solving")
    elif fl is not None:
        fl = _align.unmirror(fl, flip_axis).astype(np.float32)
    ny, nx = series.shape[-2:]
    if align:  # keep only pixels that every aligned image covers (no edge fill in the solve)
        y0, y1, x0, x1 = box
    else:
        y0, y1, x0, x1 = 0, ny, 0, nx
    if roi is not None:
        r = _align.check_roi(roi, (ny, nx))
        y0, y1, x0, x1 = max(y0, r[0]), min(y1, r[1]), max(x0, r[2]), min(x1, r[3])
    if min(y1 - y0, x1 - x0) < 16:
        raise InputError(
            f"after alignment{' and the roi' if roi is not None else ''} only {max(0, y1 - y0)}x{max(0, x1 - x0)} px are covered by "
            "every image; need at least 16x16 (the images overlap too little, or the roi is too small)"
        )
    # Each series is solved on the largest field its own images cover: the unflipped one on the
    # box its aligned images share, the flipped one on its whole recorded (un-mirrored) frame; the
    # flipped *phase* (smooth) is then moved into the unflipped frame with the rigid transform.
    # Cropping both to the box every image covers before solving would make the solve a window
    # with unknown edge flux (measured with the mirror condition, noise-free, qc = 0: φm accuracy 0.72 instead of 0.99).
    warp_phase = rigid is not None and roi is None and min(box_series[1] - box_series[0], box_series[3] - box_series[2]) >= 16
    extra["crop_yx"] = [int(y0), int(y1), int(x0), int(x1)]
    if boundary == "auto":
        # aligned, moved or cropped images are windows of the specimen whatever it is; an image as
        # recorded keeps the zero-flux model (the project's simulations are mirror tiles of it)
        moved = warp_phase or (y0, y1, x0, x1) != (0, ny, 0, nx)
        boundary = "free" if ((align and moved) or roi is not None) else "mirror"
    params["boundary"] = boundary if pad else "periodic"
    extra["flipped_solved_on"] = "its own recorded frame, phase warped" if warp_phase else "the common box"
    auto = is_auto(qc_per_nm)
    chosen: list = []
    qc = check_qc(qc_per_nm, (y1 - y0, x1 - x0), px) if qc_per_nm is not None else default_series_qc_per_nm((y1 - y0, x1 - x0), px)
    params["qc_per_nm"] = qc
    params["qc_source"] = AUTO_SOURCE if auto else (f"default {DEFAULT_SERIES_QC_FOV_UNITS:g}/FOV" if qc_per_nm is None else "given")
    crop = (Ellipsis, slice(y0, y1), slice(x0, x1))
    qc_e = None
    if fl is not None:
        # φe (contaminants, thickness: little signal at the longest wavelengths, where the TIE
        # amplifies noise as 1/q²) gets its own cut-off: given, else qc_per_nm when that was
        # given, else SITIE's 2/FOV (benchmark, 10 % noise, seeds 0–2: φe accuracy 0.90 against
        # 0.83 with the magnetic phase's 0.5/FOV; it shrinks φe's size, see docs/benchmarks.md)
        # with qc_per_nm="auto" φe keeps the 2/FOV cut-off unless qc_e_per_nm is given (measured on the
        # benchmark's series at 10 % noise: the Wiener filter alone leaves φe's low-frequency error, 0.76-0.87)
        qc_e_arg = qc_e_per_nm if qc_e_per_nm is not None else (None if auto else qc_per_nm)
        qc_e = check_qc(qc_e_arg, (y1 - y0, x1 - x0), px)
        params["qc_e_per_nm"] = qc_e
        params["qc_e_source"] = "given" if qc_e_per_nm is not None else ("qc_per_nm" if qc_e_arg is not None else "default 2/FOV")

    def solve_unflipped(q, der=derivative):
        if warp_phase:
            by0, by1, bx0, bx1 = box_series
            full = np.zeros((ny, nx), np.float32)
            full[by0:by1, bx0:bx1] = series_phase(series[..., by0:by1, bx0:bx1], z, px, kv, q, pad, boundary, der, auto, chosen)
            return full[crop]
        return series_phase(series[crop], z, px, kv, q, pad, boundary, der, auto, chosen)

    def solve_flipped(q, der=derivative):
        if warp_phase:
            return _align.warp_rigid(series_phase(un_fl, z, px, kv, q, pad, boundary, der, auto, chosen), rigid, order=3)[crop]
        return series_phase(fl[crop], z, px, kv, q, pad, boundary, der, auto, chosen)

    phi = solve_unflipped(qc)
    done += 1
    yield Progress(done, steps, "TIE: unflipped series solved" if fl is not None else "TIE: done")
    method = "TIE series" if n > 3 else ("TIE" if n == 3 else "SITIE")
    arrays: dict = {}
    if fl is not None:
        phi_f = solve_flipped(qc)
        phase = _zero_mean((phi - phi_f) / 2)
        phase_e = plain_e = (phi + phi_f) / 2
        tried = []
        if qc_e != qc or derivative_e != derivative:
            phi, phi_f = solve_unflipped(qc_e, derivative_e), solve_flipped(qc_e, derivative_e)
            phase_e = (phi + phi_f) / 2
            tried += [f"φe cut-off {qc_e:.3g}/nm"] * (qc_e != qc) + [f"{derivative_e} ∂I/∂z"] * (derivative_e != derivative)
        if phase_e_prior == "auto" and qc_e > 0:
            # −ln A from the in-focus images: the mean over a strong-phase series carries its caustics
            i0_e = (series[crop][n // 2] + fl[crop][n // 2]) / 2 if n > 1 else np.concatenate([series[crop], fl[crop]]).mean(axis=0)
            phase_e, extra["phase_e_prior"] = amplitude_prior(phase_e, i0_e, px, qc_e)
            tried += ["amplitude prior"] * extra["phase_e_prior"]["used"]
        if tried and phase_e_check == "auto":
            phase_e, extra["phase_e_check"] = choose_phase_e(plain_e, phase_e, phase, series[crop], fl[crop], z, px, kv, tried)
        arrays["phase_e"] = _zero_mean(phase_e)
        done += 1
        yield Progress(done, steps, "TIE: flipped series solved")
        method += " (flipped)"
        extra["phase_meaning"] = "phase = magnetic φm = (φ − φflip)/2, phase_e = electrostatic φe = (φ + φflip)/2"
    else:
        phase = phi
        extra["phase_meaning"] = "phase = total φm + φe (no flipped series)"
    series = series[crop]
    fl = None if fl is None else fl[crop]
    keep = align if keep_aligned is None else keep_aligned
    if keep:
        arrays["aligned"] = series
        if fl is not None:
            arrays["aligned_flipped"] = fl
    if auto:
        extra["auto_regularisation"] = {"series": chosen[0], "flipped series": chosen[1]} if fl is not None else chosen[0]
    res = _result(phase, px, params, clock.elapsed_s, method, extra)
    for key, value in arrays.items():
        res.arrays[key] = np.asarray(value, dtype=np.float32)
        res.array_units[key] = "rad" if key == "phase_e" else "counts"
    if want_sigma:
        from .uncertainty import SERIES_MODEL, SERIES_NOTE, series_sigma

        def solve(stack):  # the same solve on a perturbed (cropped, aligned) series
            return series_phase(stack, z, px, kv, qc, pad, boundary, derivative, auto, None)

        return (yield from sigma_step(res, lambda: series_sigma(series, fl, solve, px), label="TIE",
                                      model=SERIES_MODEL.format(k=DEFAULT_SAMPLES), calibrated=False, note=SERIES_NOTE,
                                      samples=DEFAULT_SAMPLES))
    return res
