"""Transport of intensity (TIE) from a three-image through-focal series.

Stack (3, Y, X) ordered (under, in, over) focus = defocus (−dz, 0, +dz) in the project's sign
convention (DESIGN.md §3: propagation distance, negative = under-focus; PyLorentz's defocus values
have the opposite sign). ∂I/∂z ≈ (I₊ − I₋)/(2 dz), and the full equation
∇·(I0∇φ) = −(2π/λ) ∂I/∂z is solved with the in-focus image I0 in the divergence term (two FFT
Poisson solves on a mirror-padded grid, optional Tikhonov q²/(q²+qc²)², see :mod:`._poisson`).
The intensities are normalised by the mean of I0 (the equation is invariant to a common scale).
"""

from __future__ import annotations

import numpy as np

from ..jobs import InputError, Progress, Stopwatch, run_job
from ..physics.optics import electron_wavelength_nm
from ..validate import as_image, positive
from ._poisson import solve_tie
from .sitie import _result, check_qc


def _check(stack, pixel_size_nm, defocus_step_nm, voltage_kv, qc_per_nm):
    if isinstance(stack, (list, tuple)):
        if len(stack) != 3:
            raise InputError(f"TIE needs exactly 3 images (under-, in-, over-focus), got {len(stack)}")
        shapes = {np.shape(s) for s in stack}
        if len(shapes) != 1:
            raise InputError(f"the 3 TIE images must have the same shape, got {sorted(shapes)}")
    arr = np.asarray(stack)
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise InputError(
            f"TIE needs a stack of exactly 3 images (under-, in-, over-focus) with shape (3, Y, X), got shape {arr.shape}"
        )
    frames = [as_image(arr[0], name="under-focus image"), _in_focus(arr[1]), as_image(arr[2], name="over-focus image")]
    px = positive(pixel_size_nm, "pixel_size_nm", "nm")
    dz = positive(defocus_step_nm, "defocus_step_nm", "nm")
    kv = positive(voltage_kv, "voltage_kv", "kV")
    qc = check_qc(qc_per_nm, frames[1].shape, px)
    if float(frames[1].mean()) <= 0:
        raise InputError("the in-focus image has a non-positive mean intensity; TIE needs intensities (counts)")
    if np.array_equal(frames[0], frames[2]):
        raise InputError("the under- and over-focus images are identical: no intensity change to reconstruct from")
    return frames, px, dz, kv, qc


def _in_focus(image) -> np.ndarray:
    """The in-focus image may be uniform (a pure phase object has no in-focus contrast)."""
    img = np.asarray(image)
    if img.size and np.isrealobj(img) and np.issubdtype(img.dtype, np.number) and np.isfinite(img).all() and np.ptp(img) == 0:
        return img.astype(np.float32)
    return as_image(img, name="in-focus image")


def tie_phase(
    stack,
    *,
    pixel_size_nm: float,
    defocus_step_nm: float,
    voltage_kv: float = 200.0,
    qc_per_nm: float | None = None,
    pad: bool = True,
) -> np.ndarray:
    """TIE phase (rad, float32, zero mean) of a (3, Y, X) stack at defocus (−dz, 0, +dz)."""
    (im, i0, ip), px, dz, kv, qc = _check(stack, pixel_size_nm, defocus_step_nm, voltage_kv, qc_per_nm)
    return _solve(im, i0, ip, px, dz, kv, qc, pad)


def _solve(im, i0, ip, px, dz, kv, qc, pad) -> np.ndarray:
    scale = float(np.mean(i0, dtype=np.float64))
    didz = (ip.astype(np.float64) - im.astype(np.float64)) / (2 * dz * scale)
    return solve_tie(didz, electron_wavelength_nm(kv), px, intensity=i0 / scale, qc=qc, pad=pad).astype(np.float32)


def tie_job(
    stack,
    *,
    pixel_size_nm: float,
    defocus_step_nm: float,
    voltage_kv: float = 200.0,
    qc_per_nm: float | None = None,
    pad: bool = True,
):
    """TIE as a job: yields :class:`Progress`, returns a :class:`PhaseResult` (phase, bx, by).
    Cancellation before the solve propagates :class:`JobCancelled` (there is nothing to return)."""
    clock = Stopwatch()
    (im, i0, ip), px, dz, kv, qc = _check(stack, pixel_size_nm, defocus_step_nm, voltage_kv, qc_per_nm)
    params = {
        "pixel_size_nm": px,
        "defocus_step_nm": dz,
        "voltage_kv": kv,
        "qc_per_nm": qc,
        "qc_source": "default 2/FOV" if qc_per_nm is None else "given",
        "pad": bool(pad),
        "stack_order": "under (-dz), in (0), over (+dz)",
        "input_shape": (3, int(i0.shape[0]), int(i0.shape[1])),
    }
    yield Progress(0, 1, "TIE: solving")  # a JobCancelled thrown here propagates: nothing to return yet
    phase = _solve(im, i0, ip, px, dz, kv, qc, pad)
    yield Progress(1, 1, "TIE: done")
    return _result(phase, px, params, clock.elapsed_s, "TIE")


def tie(
    stack,
    *,
    pixel_size_nm: float,
    defocus_step_nm: float,
    voltage_kv: float = 200.0,
    qc_per_nm: float | None = None,
    pad: bool = True,
):
    """TIE reconstruction of a through-focal triplet: :class:`PhaseResult` with ``phase`` (rad),
    ``bx``, ``by`` (T·nm). ``stack``: (3, Y, X) or a list of 3 images, ordered under-, in-,
    over-focus at defocus −dz, 0, +dz; ``defocus_step_nm`` = dz > 0. The in-focus image may be
    uniform (pure phase object). ``qc_per_nm``: Tikhonov cut-off, None → 2/FOV as in SITIE
    (applied once), 0 → none (best on clean data)."""
    job = tie_job(
        stack, pixel_size_nm=pixel_size_nm, defocus_step_nm=defocus_step_nm, voltage_kv=voltage_kv, qc_per_nm=qc_per_nm, pad=pad
    )
    return run_job(job)
