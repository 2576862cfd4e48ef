"""Single-image transport of intensity (SITIE), the fast LTEM baseline and SIPRAD's seed.

With a uniform in-focus intensity I0 = mean(I) and ∂I/∂z ≈ (I − I0)/Δf, the TIE
∇·(I0∇φ) = −(2π/λ) ∂I/∂z (sign derived in :mod:`napari_phase.physics.poisson`) gives

    φ = −(2π/λ) ∇⁻²[(I − I0) / (Δf · I0)],

solved with FFTs on a mirror-padded grid, optionally Tikhonov-regularised
(1/q² → q²/(q²+qc²)²). Δf follows DESIGN.md §3 (propagation distance, negative = under-focus;
PyLorentz's defocus values have the opposite sign). SITIE assumes a pure phase object (uniform
amplitude) and the linear (small-defocus) regime; contaminants and large defocus bias it.

The phase is returned with zero mean; the integrated induction Bx·t, By·t (T·nm) follows from
:func:`napari_phase.physics.induction_from_phase`.
"""

from __future__ import annotations

import numpy as np

from .. import __version__
from ..jobs import InputError, JobCancelled, Progress, Stopwatch, run_job
from ..physics.induction import induction_from_phase
from ..physics.optics import electron_wavelength_nm
from ..result import PhaseResult
from ..uncertainty import DEFAULT_SAMPLES, check_flag, not_computed, sigma_step
from ..validate import as_image, energy_kv, intensities, nonzero, positive
from ..physics.poisson import solve_tie

#: Default Tikhonov cut-off, in units of 1/FOV (FOV = max(ny, nx) · pixel size): qc = 2/FOV.
#: Measured on the project's simulated textures (skyrmions, stripes, bubbles; 128² and 256² at
#: 5 nm; Δf −0.1, −1, −3 mm; Gaussian noise 0, 30, 100 %; 54 cases), mean accuracy was 0.38 with
#: qc = 0, 0.70 / 0.74 / 0.75 / 0.73 with qc = 1, 1.5, 2, 3 /FOV. The plain inverse Laplacian
#: (qc_per_nm=0) is better only for noise-free images at small defocus (e.g. 0.998 vs 0.995 for
#: skyrmions at −0.1 mm) — and it is the quantitative choice: a cut-off damps the slowest phase
#: variations and with them B·t over large uniform domains.
DEFAULT_QC_FOV_UNITS = 2.0

#: ``metadata["parameters"]["qc_source"]`` for ``qc_per_nm="auto"``
AUTO_SOURCE = "auto: no cut-off; Wiener filter from the noise (Immerkær σ, ring-averaged power)"


def default_qc_per_nm(shape, pixel_size_nm: float) -> float:
    """Default Tikhonov cut-off (cycles/nm) for an image of ``shape`` (..., Y, X)."""
    return DEFAULT_QC_FOV_UNITS / (max(int(shape[-2]), int(shape[-1])) * float(pixel_size_nm))


def _check_params(pixel_size_nm, defocus_nm, voltage_kv, qc_per_nm, shape) -> tuple[float, float, float, float]:
    px = positive(pixel_size_nm, "pixel_size_nm", "nm")
    df = nonzero(defocus_nm, "defocus_nm", "nm")
    kv = energy_kv(voltage_kv, "voltage_kv")
    qc = check_qc(qc_per_nm, shape, px)
    return px, df, kv, qc


#: the value of ``qc_per_nm`` that asks for the regularisation chosen from the data
AUTO = "auto"


def is_auto(qc_per_nm) -> bool:
    return isinstance(qc_per_nm, str) and qc_per_nm.strip().lower() == AUTO


def check_qc(qc_per_nm, shape, px: float) -> float:
    """The Tikhonov cut-off to use: the default for None, 0 for "auto" (the noise is then
    handled by :func:`auto_filter`), else a finite number >= 0."""
    if is_auto(qc_per_nm):
        return 0.0
    if qc_per_nm is None:
        qc = default_qc_per_nm(shape, px)
    else:
        try:
            qc = float(qc_per_nm)
        except (TypeError, ValueError):
            raise InputError(f"qc_per_nm must be a number, 'auto' or None, got {qc_per_nm!r}") from None
        if not np.isfinite(qc) or qc < 0:
            raise InputError(f"qc_per_nm (Tikhonov cut-off) must be >= 0 cycles/nm, got {qc_per_nm!r}")
    return qc


def auto_filter(image: np.ndarray, px: float, pad: bool = True) -> tuple[np.ndarray, dict]:
    """``qc_per_nm="auto"``: the image Wiener-filtered with the noise it shows (σ by Immerkær's
    estimator, :mod:`.regularise`), and what was chosen (σ / mean, the highest |q| the filter
    passes by at least ½). The TIE is linear in I − I0, so this is the Wiener filter of ∂I/∂z."""
    from .regularise import noise_sigma, wiener_filter

    img = np.asarray(image, dtype=np.float64)
    sigma = noise_sigma(img)
    out, q_half = wiener_filter(img, sigma, px, pad=pad)
    return out, {"noise_sigma_over_mean": sigma / float(img.mean()) if img.mean() > 0 else float("nan"),
                 "wiener_half_per_nm": q_half}


def _sitie_frame(image: np.ndarray, px: float, df: float, kv: float, qc: float, pad: bool, auto: bool = False,
                 chosen: list | None = None) -> np.ndarray:
    img = np.asarray(image, dtype=np.float64)
    i0 = float(img.mean())
    if i0 <= 0:
        raise InputError("the image has a non-positive mean intensity; SITIE needs intensities (counts), not a difference image")
    intensities(img, "image")
    if auto:
        img, info = auto_filter(img, px, pad)
        if chosen is not None:
            chosen.append(info)
    didz = (img - i0) / df
    return solve_tie(didz, electron_wavelength_nm(kv), px, intensity=i0, qc=qc, pad=pad).astype(np.float32)


def sitie_phase(
    image: np.ndarray,
    *,
    pixel_size_nm: float,
    defocus_nm: float,
    voltage_kv: float = 200.0,
    qc_per_nm: float | str | None = None,
    pad: bool = True,
) -> np.ndarray:
    """SITIE phase (rad, float32, zero mean) of one defocused LTEM image (Y, X), or of each frame
    of a series (T, Y, X). Plain numpy, no result wrapper. Raises InputError on bad input.
    ``qc_per_nm``: Tikhonov cut-off (cycles/nm); None → 2/FOV, 0 → none, "auto" → chosen from
    the noise (see :func:`sitie`)."""
    arr = as_image(image, name="image", ndim=(2, 3))
    px, df, kv, qc = _check_params(pixel_size_nm, defocus_nm, voltage_kv, qc_per_nm, arr.shape)
    auto = is_auto(qc_per_nm)
    if arr.ndim == 2:
        return _sitie_frame(arr, px, df, kv, qc, pad, auto)
    return np.stack([_sitie_frame(_check_frame(f, t), px, df, kv, qc, pad, auto) for t, f in enumerate(arr)])


def _check_frame(frame: np.ndarray, t: int) -> np.ndarray:
    if float(frame.max()) == float(frame.min()):
        raise InputError(f"frame {t} of the series is constant (no contrast): nothing to reconstruct")
    return frame


def _result(phase: np.ndarray, px: float, params: dict, runtime_s: float, method: str, extra: dict | None = None) -> PhaseResult:
    bx, by = induction_from_phase(phase, px)
    meta = {
        "method": method,
        "version": __version__,
        "parameters": params,
        "runtime_s": float(runtime_s),
        "device": "cpu",
        "sign_convention": "defocus = propagation distance along the beam, negative = under-focus (opposite to PyLorentz)",
    }
    if extra:
        meta.update(extra)
    return PhaseResult(
        arrays={"phase": phase.astype(np.float32), "bx": bx, "by": by},
        pixel_size=px,
        pixel_unit="nm",
        metadata=meta,
    )


def sitie_job(
    image: np.ndarray,
    *,
    pixel_size_nm: float,
    defocus_nm: float,
    voltage_kv: float = 200.0,
    qc_per_nm: float | str | None = None,
    pad: bool = True,
    uncertainty: bool = False,
):
    """SITIE as a job (generator of :class:`Progress`, returns a :class:`PhaseResult`).

    A single image yields one progress item; a series (T, Y, X) yields one per frame with the
    phase so far as the partial result. On :class:`JobCancelled` the frames done are returned
    with ``metadata["cancelled"] = True`` (the exception propagates if no frame was done).
    ``uncertainty``: add σ maps (:mod:`.uncertainty`) in one more cancellable step.
    """
    clock = Stopwatch()
    want_sigma = check_flag(uncertainty)
    arr = as_image(image, name="image", ndim=(2, 3))
    px, df, kv, qc = _check_params(pixel_size_nm, defocus_nm, voltage_kv, qc_per_nm, arr.shape)
    auto = is_auto(qc_per_nm)
    chosen: list = []
    params = {
        "pixel_size_nm": px,
        "defocus_nm": df,
        "voltage_kv": kv,
        "qc_per_nm": qc,
        "qc_source": AUTO_SOURCE if auto else ("default 2/FOV" if qc_per_nm is None else "given"),
        "pad": bool(pad),
        "input_shape": tuple(int(s) for s in arr.shape),
    }
    if arr.ndim == 2:
        yield Progress(0, 1, "SITIE: solving")
        phase = _sitie_frame(arr, px, df, kv, qc, pad, auto, chosen)
        yield Progress(1, 1, "SITIE: done")
        res = _fit_checked(_result(phase, px, params, clock.elapsed_s, "SITIE", {"auto_regularisation": chosen[0]} if auto else None),
                           arr, px, df, kv)
        return (yield from _sigma(res, arr, px, df, kv, qc, pad, auto)) if want_sigma else res

    n = arr.shape[0]
    done: list[np.ndarray] = []
    try:
        for t in range(n):
            done.append(_sitie_frame(_check_frame(arr[t], t), px, df, kv, qc, pad, auto, chosen))
            partial = PhaseResult(arrays={"phase": np.stack(done)}, pixel_size=px, metadata={"method": "SITIE", "partial": True})
            yield Progress(t + 1, n, f"SITIE: frame {t + 1}/{n}", partial)
    except JobCancelled:
        if not done:
            raise
        res = _result(np.stack(done), px, params, clock.elapsed_s, "SITIE", {"cancelled": True, "frames_done": len(done)})
        res = _fit_checked(res, arr[: len(done)], px, df, kv)
        return not_computed(res, "cancelled: no σ") if want_sigma else res
    res = _result(np.stack(done), px, params, clock.elapsed_s, "SITIE", {"auto_regularisation": chosen} if auto else None)
    res = _fit_checked(res, arr, px, df, kv)
    return (yield from _sigma(res, arr, px, df, kv, qc, pad, auto)) if want_sigma else res


def _fit_checked(result: PhaseResult, frames, px: float, df: float, kv: float) -> PhaseResult:
    """The result with its goodness of fit (:mod:`.fit_check`: residual map, misfit, warning)."""
    from .fit_check import attach_fit_check

    return attach_fit_check(result, frames, pixel_size_nm=px, defocus_nm=df, voltage_kv=kv)


def _sigma(result, arr, px, df, kv, qc, pad, auto):
    """Job step: σ of SITIE's phase and B·t (noise part, :mod:`.uncertainty`), marked uncalibrated."""
    from .uncertainty import SITIE_MODEL, SITIE_NOTE, sitie_sigma

    k = DEFAULT_SAMPLES
    return (yield from sigma_step(result, lambda: sitie_sigma(arr, px, df, kv, qc, pad, auto, samples=k), label="SITIE",
                                  model=SITIE_MODEL.format(k=k), calibrated=False, note=SITIE_NOTE, samples=k))


def sitie(
    image: np.ndarray,
    *,
    pixel_size_nm: float,
    defocus_nm: float,
    voltage_kv: float = 200.0,
    qc_per_nm: float | str | None = None,
    pad: bool = True,
    uncertainty: bool = False,
) -> PhaseResult:
    """SITIE reconstruction: :class:`PhaseResult` with ``phase`` (rad), ``bx``, ``by`` (T·nm).

    ``image``: one defocused LTEM image (Y, X) or a series (T, Y, X), solved frame by frame.
    ``defocus_nm``: propagation distance (negative = under-focus; −1 mm = −1e6 nm).
    ``qc_per_nm``: Tikhonov cut-off in cycles/nm (None → 2/FOV, see :data:`DEFAULT_QC_FOV_UNITS`;
    0 → the plain inverse Laplacian, best for quantitative B·t on clean data; "auto" → no cut-off,
    and the image Wiener-filtered with the noise power it shows, :func:`auto_filter`; what was
    chosen is in ``metadata["auto_regularisation"]``).
    ``pad``: mirror-pad to twice the size against edge artefacts.
    ``uncertainty``: also return ``phase_sigma`` (rad), ``bx_sigma``, ``by_sigma`` (T·nm): the
    image noise propagated through SITIE (noise part only, ``metadata["uncertainty"]``).
    """
    job = sitie_job(
        image, pixel_size_nm=pixel_size_nm, defocus_nm=defocus_nm, voltage_kv=voltage_kv, qc_per_nm=qc_per_nm, pad=pad,
        uncertainty=uncertainty,
    )
    return run_job(job)
