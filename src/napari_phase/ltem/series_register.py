"""Defocus-insensitive registration of a through-focus series: each image onto its own
simulation ("register to the model"; numpy in and out, the forward model of :mod:`.forward`).

Cross-correlating images of *different* defocus is biased by their different contrast (measured:
spurious shifts up to 1.6 px on a drift-free simulated series). Here every defocused image k is
registered onto an image simulated *at its own defocus* z_k, so that the two differ only by noise
and the model's error:

1. φ from the TIE of the series as currently aligned (per-frequency ∂I/∂z, zero-flux boundary,
   Tikhonov ``qc_per_nm``; the least-squares slope gave shift errors rms 0.20 instead of 0.18 px
   on the benchmark's drift, seeds 0–2); in-focus intensity A² = mean of the aligned defocused images;
2. M_k = |F⁻¹[F[A e^{iφ}] T(z_k)]|² (:func:`.forward.simulate_image`, the microscope's default
   Cs, θc and defocus spread, voltage given);
3. the shift s_k that best fits I_k(r − s_k) ≈ a·M_k(r) + b over the inner pixels (Gauss–Newton on
   the shift with the image gradients, Fourier-shift interpolation so that no shift smooths
   the noise — a spline shift lowers the residual at half-pixel shifts and biases the fit there);
4. the shifts of the defocused images are re-centred (mean zero; the model's frame is the mean of
   theirs), and 1–3 repeat until the largest change is below ``tol_px`` (the model follows the data,
   so each round removes part of the misalignment; measured on the benchmark's 5-image series,
   10 % noise: 6 rounds).

The in-focus image (z = 0) has no phase contrast to register on and carries no weight in the
least-squares ∂I/∂z: it is placed last, by its amplitude contrast in the defocused images' own
model (:func:`fit_in_focus_offset`: the offset t of the in-focus intensity that makes
|F⁻¹[F[√I0(r − t) e^{iφ}] T(z_k)]|² fit the defocused images best), and every shift is then
expressed relative to it (the in-focus image is not moved). Registering it onto the mean of the
defocused images instead, as before, was biased by their even (∝ z²) magnetic contrast, which the
in-focus image lacks: 0.56–0.67 px on undrifted 128² windows with two particles, 10 % noise (the
model's estimate of that contrast, subtracted, removed only part of it). That offset is used only
when it is significant (:data:`MIN_SIGNIFICANCE`): the in-focus image of a nearly pure phase
object has nothing to register on, and the series then stays in the frame of its defocused images' mean.
:func:`series_misfit` scores a set of shifts by how well the moved series fits its own model
(used to refuse a coarse start that cross-correlation got wrong).

What the data cannot decide: a shift proportional to the defocus, s_k = z_k·w, is an exact
symmetry of the images (a tilted beam, or a uniform in-plane deflection, moves the image by z·w),
and the under- vs over-focus offset is close to it; such components converge slowly and keep
errors of a few tenths of a pixel (docs/benchmarks.md, series section).

Shifts (dy, dx) in px: the amount each image is moved to land on the in-focus image (the
convention of :mod:`.align`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .forward import Microscope, simulate_image
from .series_solve import default_series_qc_per_nm, series_phase

#: rounds of model → registration (stops earlier when the shifts change by less than ``tol_px``)
MAX_ROUNDS = 20
#: the refinement may move an image at most this far from its start (px); beyond, the start is kept
MAX_REFINEMENT_PX = 3.0
#: after the last round the shifts must have settled to this (px), else the start is kept
#: (measured: the benchmark's series settle to < 0.01 px in 2–6 rounds; pure noise or a 24² px
#: series still moved by 0.36–0.5 px per round after 20)
MAX_FINAL_CHANGE_PX = 0.1
#: smallest fitted region (px, after the margins) for the refinement to run
MIN_FIT_PX = 24
#: inner margin (px) left out of the fits (edge fill of shifted images, the model's boundary)
MARGIN_PX = 8
#: the in-focus image is moved only when its fitted offset s is significant: sᵀC⁻¹s above this
#: (C: the fit's covariance, :func:`fit_in_focus_offset`; 16: 4 standard errors). Measured on
#: undrifted 128² windows at 10 % noise (bench textures, seed 0): the in-focus image of a nearly
#: pure phase object has no contrast to register on, and its unchecked fit moved every other
#: image by 0.5–3.5 px (standard errors 0.3–50 px).
MIN_SIGNIFICANCE = 16.0
#: white noise smoothed by a Gaussian of σ px is correlated over ≈ 4πσ² px: the residual variance
#: of :func:`fit_in_focus_offset` (whose model carries the in-focus image's noise smoothed by 1 px)
#: counts that many pixels as one (conservative: the defocused images' own noise is white)
def _correlated_px(smooth_px: float) -> float:
    return max(1.0, 4.0 * np.pi * float(smooth_px) ** 2)


def fourier_shift(image: np.ndarray, shift_yx) -> np.ndarray:
    """``image`` moved by ``shift_yx`` (px) with the Fourier shift theorem (periodic: the pixels
    that wrap in are outside the valid box of the shift); float32."""
    sy, sx = (float(v) for v in shift_yx)
    a = np.asarray(image, dtype=np.float64)
    if sy == 0 and sx == 0:
        return a.astype(np.float32)
    qy = np.fft.fftfreq(a.shape[-2])[:, None]
    qx = np.fft.fftfreq(a.shape[-1])[None, :]
    return np.real(np.fft.ifft2(np.fft.fft2(a) * np.exp(-2j * np.pi * (qy * sy + qx * sx)))).astype(np.float32)


def shift_series(stack: np.ndarray, shifts) -> np.ndarray:
    """Every image of ``stack`` (N, Y, X) moved by its (dy, dx) (:func:`fourier_shift`)."""
    return np.stack([fourier_shift(f, s) for f, s in zip(stack, np.asarray(shifts, dtype=np.float64))])


def _fit_inputs(moving, reference, margin_px: int, smooth_px: float):
    """(moving, reference) as float64, smoothed by ``smooth_px`` when > 0, and the inner slices."""
    mov = np.asarray(moving, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if smooth_px > 0:
        mov, ref = ndimage.gaussian_filter(mov, smooth_px), ndimage.gaussian_filter(ref, smooth_px)
    m = int(margin_px)
    return mov, ref, (slice(m, ref.shape[0] - m), slice(m, ref.shape[1] - m))


def fit_shift(moving: np.ndarray, reference: np.ndarray, start=(0.0, 0.0), *, margin_px: int = MARGIN_PX,
              iterations: int = 10, smooth_px: float = 0.0) -> tuple[float, float]:
    """The shift s (px) that best fits moving(r − s) ≈ a·reference(r) + b over the inner pixels,
    i.e. moving(r) ≈ a·reference(r + s) + b (least squares in s, a, b; Gauss–Newton from
    ``start``). The *reference* is the one shifted (:func:`fourier_shift`) and differentiated: it
    is the clean model, and the noise of ``moving`` then enters only the residual — gradients of a
    noisy image in the Jacobian attenuate every step (errors in variables; measured: a 0.6 px
    offset between an in-focus image at 10 % noise and a mean image fitted as 0.05 px).
    ``smooth_px``: Gaussian smoothing of both images first (for two noisy images)."""
    mov, ref, inner = _fit_inputs(moving, reference, margin_px, smooth_px)
    y = mov[inner].ravel()
    s = np.asarray(start, dtype=np.float64).copy()
    qy = np.fft.fftfreq(ref.shape[0])[:, None]
    qx = np.fft.fftfreq(ref.shape[1])[None, :]
    fr = np.fft.fft2(ref)
    for _ in range(iterations):
        f = fr * np.exp(2j * np.pi * (qy * s[0] + qx * s[1]))  # reference(r + s)
        w = np.real(np.fft.ifft2(f))[inner].ravel()
        gy = np.real(np.fft.ifft2(f * 2j * np.pi * qy))[inner].ravel()  # ∂/∂s_y of reference(r + s)
        gx = np.real(np.fft.ifft2(f * 2j * np.pi * qx))[inner].ravel()
        a = float(np.dot(w - w.mean(), y - y.mean()) / max(np.dot(w - w.mean(), w - w.mean()), 1e-30))
        # y ≈ a·(w + g·δ) + b: least squares over (a·δy, a·δx, a, b)
        design = np.stack([a * gy, a * gx, w, np.ones_like(w)], axis=1)
        sol, *_ = np.linalg.lstsq(design, y - a * w, rcond=None)
        step = np.clip(sol[:2], -1.0, 1.0)
        s += step
        if np.abs(step).max() < 1e-3:
            break
    return float(s[0]), float(s[1])


def significance(shift_yx, cov: np.ndarray) -> float:
    """sᵀC⁻¹s: the squared size of a shift in standard errors (0 when C is infinite)."""
    if not np.isfinite(cov).all():
        return 0.0
    s = np.asarray(shift_yx, dtype=np.float64)
    return float(s @ np.linalg.solve(cov, s))


def model_series(phase: np.ndarray, intensity0: np.ndarray, defocus_nm, pixel_size_nm: float, voltage_kv: float) -> np.ndarray:
    """Images (N, Y, X) of the wave √I0·e^{iφ} at each defocus (nm), default microscope otherwise."""
    i0 = np.asarray(intensity0, dtype=np.float64)
    amp = np.sqrt(np.maximum(i0, 1e-3 * float(i0.mean())))
    pad = max(phase.shape[-2:]) // 4
    return np.stack([simulate_image(phase, amp, pixel_size_nm=pixel_size_nm, pad_px=pad,
                                    microscope=Microscope(voltage_kv=float(voltage_kv), defocus_nm=float(z)))
                     for z in defocus_nm])


def fit_in_focus_offset(stack: np.ndarray, shifts, defocus_nm, pixel_size_nm: float, *, voltage_kv: float = 200.0,
                        qc_per_nm: float | None = None, iterations: int = 4, step_px: float = 0.25,
                        margin_px: int = MARGIN_PX) -> tuple[np.ndarray, float]:
    """Where the in-focus image sits relative to the defocused images moved by ``shifts``: the
    offset t (px) of the in-focus intensity I0 that makes the model of every defocused image,
    M_k(t) = |F⁻¹[F[√I0(r − t)·e^{iφ}] T(z_k)]|² (φ: the TIE phase of the moved series), fit it
    best (I_k ≈ a_k·M_k(t) + b_k over the inner pixels, least squares in t; Gauss–Newton with
    central differences of ``step_px``). Only the amplitude contrast the in-focus image shares with
    the defocused ones moves with t; their magnetic contrast, odd and even in z, is in the model
    through φ and does not pull on t (registering the in-focus image onto the mean of the
    defocused ones did: their even, ∝ z², contrast is not in the in-focus image, measured bias
    0.6–0.7 px on undrifted 128² windows with two particles). Returns (t, significance tᵀC⁻¹t)
    with C = σ²(JᵀJ)⁻¹ (σ²: the residual variance times the pixels one smoothed noise value spans;
    0 when the in-focus image has no contrast to place it by)."""
    arr = np.asarray(stack, dtype=np.float32)
    z = np.asarray(defocus_nm, dtype=np.float64)
    n = arr.shape[0]
    mid = n // 2
    outer = np.flatnonzero(z != 0)
    qc = default_series_qc_per_nm(arr.shape, pixel_size_nm) if qc_per_nm is None else float(qc_per_nm)
    moved = shift_series(arr, shifts)
    phi = series_phase(moved, z, pixel_size_nm, voltage_kv, qc, True, "mirror", "spectral")
    i0 = ndimage.gaussian_filter(arr[mid].astype(np.float64), 1.0)
    m = int(margin_px)
    ys = moved[outer, m:-m, m:-m].reshape(len(outer), -1).astype(np.float64)

    def models(t):
        return model_series(phi, fourier_shift(i0, t), z[outer], pixel_size_nm, voltage_kv)[:, m:-m, m:-m].reshape(len(outer), -1)

    t = np.zeros(2)
    h = np.zeros((2, 2))
    var = 0.0
    for _ in range(int(iterations)):
        base = models(t)
        jac = [(models(t + d) - models(t - d)) / (2 * step_px) for d in (np.array([step_px, 0.0]), np.array([0.0, step_px]))]
        h, g, var = np.zeros((2, 2)), np.zeros(2), 0.0
        for i in range(len(outer)):
            design = np.stack([base[i], np.ones_like(base[i])], axis=1)
            sol, *_ = np.linalg.lstsq(design, ys[i], rcond=None)
            r = ys[i] - design @ sol
            j = sol[0] * np.stack([jac[0][i], jac[1][i]], axis=1)
            j -= design @ np.linalg.lstsq(design, j, rcond=None)[0]  # what a gain or offset cannot absorb
            h += j.T @ j
            g += j.T @ r
            var += float(r @ r)
        if not np.isfinite(h).all() or np.linalg.det(h) <= 1e-12 * max(float(np.trace(h)) ** 2, 1e-300):
            return np.zeros(2), 0.0
        step = np.clip(np.linalg.solve(h, g), -1.0, 1.0)
        t = t + step
        if np.abs(step).max() < 1e-3:
            break
    cov = var / ys.size * _correlated_px(1.0) * np.linalg.inv(h)
    return t, significance(t, cov)


def series_misfit(stack: np.ndarray, shifts, defocus_nm, pixel_size_nm: float, *, voltage_kv: float = 200.0,
                  qc_per_nm: float | None = None) -> float:
    """How badly the series, moved by ``shifts`` (N, 2) px, fits its own model: the TIE phase of
    the moved series, each defocused image simulated at its defocus (:func:`model_series`, I0 the
    moved series' mean), a·M_k + b fitted to each moved image over the inner pixels; returns the
    mean squared residual over the defocused images divided by the series' mean intensity²
    (dimensionless; compare only between shifts of the same series)."""
    arr = np.asarray(stack, dtype=np.float32)
    z = np.asarray(defocus_nm, dtype=np.float64)
    qc = default_series_qc_per_nm(arr.shape, pixel_size_nm) if qc_per_nm is None else float(qc_per_nm)
    moved = shift_series(arr, shifts)
    phi = series_phase(moved, z, pixel_size_nm, voltage_kv, qc, True, "mirror", "spectral")
    model = model_series(phi, moved.mean(axis=0), z, pixel_size_nm, voltage_kv)
    return float(np.mean(model_residuals(moved, model, z))) / float(arr.mean()) ** 2


def model_residuals(stack: np.ndarray, model: np.ndarray, defocus_nm, margin_px: int = MARGIN_PX) -> list[float]:
    """Mean squared residual (counts²) of each defocused image I_k after fitting a·M_k + b to it over
    the inner pixels (``margin_px`` left out), M the :func:`model_series` images; in-focus images skipped."""
    m = int(margin_px)
    out = []
    for k in np.flatnonzero(np.asarray(defocus_nm) != 0):
        y = np.asarray(stack[k], np.float64)[m:-m, m:-m].ravel()
        w = np.asarray(model[k], np.float64)[m:-m, m:-m].ravel()
        design = np.stack([w, np.ones_like(w)], axis=1)
        sol, *_ = np.linalg.lstsq(design, y, rcond=None)
        out.append(float(np.mean((y - design @ sol) ** 2)))
    return out


def register_series_to_model(stack: np.ndarray, defocus_nm, pixel_size_nm: float, *, voltage_kv: float = 200.0,
                             qc_per_nm: float | None = None, start=None, max_rounds: int = MAX_ROUNDS,
                             tol_px: float = 0.01, amplitude_from: str = "in-focus") -> tuple[np.ndarray, dict]:
    """Shifts (N, 2) in px that bring each image of a checked series (N ≥ 3, odd, symmetric
    defoci) onto the in-focus one, by registering each defocused image onto its simulation at
    its own defocus (module docstring). ``start``: shifts to begin from (e.g. a coarse
    cross-correlation). Returns (shifts, info) with the rounds run and the last change (px)."""
    arr = np.asarray(stack, dtype=np.float32)
    z = np.asarray(defocus_nm, dtype=np.float64)
    n = arr.shape[0]
    if min(arr.shape[-2:]) - 2 * MARGIN_PX < MIN_FIT_PX:
        begin = np.zeros((n, 2)) if start is None else np.asarray(start, dtype=np.float64)
        return begin - begin[n // 2], {"rounds": 0, "fallback": f"image smaller than {MIN_FIT_PX + 2 * MARGIN_PX} px: kept the start"}
    mid = n // 2
    outer = [k for k in range(n) if k != mid]
    qc = default_series_qc_per_nm(arr.shape, pixel_size_nm) if qc_per_nm is None else float(qc_per_nm)
    shifts = np.zeros((n, 2)) if start is None else np.asarray(start, dtype=np.float64).copy()
    shifts[outer] -= shifts[outer].mean(axis=0)
    shifts[mid] = 0.0
    change, rounds = float("inf"), 0
    for rounds in range(1, int(max_rounds) + 1):
        aligned = shift_series(arr, shifts)
        phi = series_phase(aligned, z, pixel_size_nm, voltage_kv, qc, True, "mirror", "spectral")
        i0 = ndimage.gaussian_filter(arr[mid].astype(np.float64), 1.0) if amplitude_from == "in-focus" else aligned[outer].mean(axis=0)
        model = model_series(phi, i0, z, pixel_size_nm, voltage_kv)
        new = shifts.copy()
        for k in outer:
            new[k] = fit_shift(arr[k], model[k], start=shifts[k])
        new[outer] -= new[outer].mean(axis=0)
        change = float(np.abs(new - shifts).max())
        shifts = new
        if change < tol_px:
            break
    # where the in-focus image sits relative to the defocused ones (its amplitude in their model);
    # every shift is then expressed relative to it
    s_mid, d2 = fit_in_focus_offset(arr, shifts, z, pixel_size_nm, voltage_kv=voltage_kv, qc_per_nm=qc)
    info = {"rounds": rounds, "last_change_px": change, "method": "registered to the model at each image's own defocus",
            "in_focus_shift_yx_px": [float(v) for v in s_mid], "in_focus_significance": d2}
    begin = np.zeros((n, 2)) if start is None else np.asarray(start, dtype=np.float64)
    rel = begin - begin[mid]
    frame = rel[outer].mean(axis=0)  # where the start put the defocused images relative to the in-focus one
    # the refinement's move against the start, apart from the frame (the defocused images' mean
    # position, which the in-focus offset sets: its move is counted only when that is used)
    moved = float(np.abs(shifts[outer] - (rel[outer] - frame)).max())
    if d2 < MIN_SIGNIFICANCE:
        # the in-focus image has too little contrast to place it: it stays in the defocused images'
        # frame (not the start's: a cross-correlation fooled by contrast reversal sets that wrong)
        info["in_focus"] = f"fit not significant ({d2:.2g} < {MIN_SIGNIFICANCE:g} squared standard errors): not moved relative to the mean of the others"
        s_mid = np.zeros(2)
    else:
        moved = max(moved, float(np.abs(-s_mid - frame).max()))
    shifts = shifts - s_mid
    shifts[mid] = 0.0
    if not np.isfinite(shifts).all() or not np.isfinite(moved) or moved > MAX_REFINEMENT_PX:
        # the model did not describe the images (wrong defoci, no contrast): keep the coarse shifts
        info.update(fallback=f"refinement moved an image by {moved:.2g} px (> {MAX_REFINEMENT_PX:g}): kept the start")
        return rel, info
    if change > MAX_FINAL_CHANGE_PX:
        info.update(fallback=f"no convergence in {rounds} rounds (last change {change:.2g} px): kept the start")
        return rel, info
    return shifts, info
