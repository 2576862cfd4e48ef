"""Centre of mass (CoM) of each diffraction pattern, integrated CoM (iCoM), scan rotation/flip guess.

For a phase object the CoM of a pattern, in 1/Å, is ⟨k⟩(r_p) = (1/2π) ∫ |ψ_in(r − r_p)|² ∇φ(r) dr
(DESIGN §6). With g = 2π⟨k⟩ (rad/Å) on the scan grid the phase follows by Fourier integration:

    φ̂(q) = (q_x ĝ_x + q_y ĝ_y) / (2πi |q|²),   φ̂(0) = 0,

so iCoM returns φ blurred by the probe intensity |ψ_in|². The field is mirror-extended before the
FFT (the even extension of φ is continuous, so a non-periodic scan gets no edge artefacts and its
mean gradient is kept); an off-centre optical axis therefore shows as a ramp: give ``center=``
(e.g. from :func:`~napari_phase.stem.disc.detect_disc`) or ``remove_mean_gradient=True``.

Scan rotation/flip (see calibration.py): g = R(θ) F(m). The automatic guess minimises Σ curl(g)²:
curl(R(θ)m) = cos θ · curl m + sin θ · div m, a quadratic form in (cos θ, sin θ) whose smallest
eigenvector is the answer (exact, no angle grid), for F = identity and F = swap. The remaining
180° ambiguity is settled by the sign of the phase's skewness (positive: atoms, a positive
potential, are phase maxima).
"""

from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..jobs import InputError, Job, JobCancelled, Progress, Stopwatch, run_job
from ..result import PhaseResult
from ..uncertainty import check_flag, not_computed
from . import descan as _descan
from ._data import check_4d, iter_rows, rows_per_block
from ._grid import square_result
from .calibration import Calibration


@dataclass
class ComMaps:
    """CoM per scan position in detector pixels, relative to the optical axis, detector frame."""

    com_y_px: np.ndarray
    com_x_px: np.ndarray
    total_counts: np.ndarray

    def in_mrad(self, detector_mrad_per_px: float) -> tuple[np.ndarray, np.ndarray]:
        return self.com_y_px * detector_mrad_per_px, self.com_x_px * detector_mrad_per_px

    def in_inv_a(self, detector_inv_a_per_px: float) -> tuple[np.ndarray, np.ndarray]:
        return self.com_y_px * detector_inv_a_per_px, self.com_x_px * detector_inv_a_per_px


def _com_block(block: np.ndarray, cy: float, cx: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ky, kx = block.shape[-2:]
    n = block.sum(axis=(-2, -1), dtype=np.float64)
    wy = block.sum(axis=-1, dtype=np.float64) @ (np.arange(ky) - cy)
    wx = block.sum(axis=-2, dtype=np.float64) @ (np.arange(kx) - cx)
    safe = np.where(n > 0, n, 1.0)
    return (np.where(n > 0, wy / safe, 0.0), np.where(n > 0, wx / safe, 0.0), n)


def _com_rows(data: Any, center, block_rows):
    """Generator: CoM maps filled block by block (Progress after each); returns ComMaps."""
    shape = check_4d(data)
    cy, cx = center if center is not None else (shape[2] // 2, shape[3] // 2)
    com_y = np.zeros(shape[:2], np.float64)
    com_x = np.zeros(shape[:2], np.float64)
    counts = np.zeros(shape[:2], np.float64)
    n = block_rows or rows_per_block(shape)
    total = -(-shape[0] // n)
    for i, (r0, r1, block) in enumerate(iter_rows(data, n)):
        com_y[r0:r1], com_x[r0:r1], counts[r0:r1] = _com_block(block, cy, cx)
        yield Progress(i + 1, total, f"centre of mass: scan row {r1}/{shape[0]}")
    if not counts.any():
        raise InputError("every diffraction pattern is zero: nothing to reconstruct (wrong file or dark reference?)")
    return ComMaps(com_y, com_x, counts)


def com_maps(data: Any, *, center: tuple[float, float] | None = None, block_rows: int | None = None) -> ComMaps:
    """CoM maps of a 4D-STEM dataset (streams over scan rows); detector frame, relative to ``center``
    (default the detector centre)."""
    return run_job(_com_rows(data, center, block_rows))


def rotation_guess_job(data: Any, *, center: tuple[float, float] | None = None, scan_step_a=1.0,
                       block_rows: int | None = None) -> Job:
    """CoM maps (Progress per block of rows, cancellable) then :func:`guess_rotation`, as a job.
    Returns a PhaseResult with the CoM maps (detector px, detector frame) and the guess in
    ``metadata["rotation_guess"]``."""
    g = yield from _com_rows(data, center, block_rows)
    guess = guess_rotation(g.com_y_px, g.com_x_px, scan_step_a=scan_step_a)
    steps = np.broadcast_to(np.asarray(scan_step_a, dtype=np.float64), (2,))
    return PhaseResult({"com_y": g.com_y_px.astype(np.float32), "com_x": g.com_x_px.astype(np.float32)},
                       pixel_size=float(steps[1]), pixel_unit="Å", array_units={"com_y": "px", "com_x": "px"},
                       metadata={"method": "rotation guess", "rotation_guess": guess})


# ----------------------------------------------------------------------------- geometry


def to_scan_frame(my: np.ndarray, mx: np.ndarray, rotation_deg: float, transpose: bool) -> tuple[np.ndarray, np.ndarray]:
    """Detector-frame vector field (my, mx) to the scan frame: g = R(θ) F(m) (returns gy, gx)."""
    if transpose:
        mx, my = my, mx
    t = math.radians(rotation_deg)
    c, s = math.cos(t), math.sin(t)
    return s * mx + c * my, c * mx - s * my


def integrate_gradient(gy: np.ndarray, gx: np.ndarray, step_y_a: float, step_x_a: float, *, mirror: bool = True,
                       remove_mean_gradient: bool = False) -> np.ndarray:
    """φ from its gradient (gy, gx) in rad/Å on a grid of (step_y, step_x) Å:
    φ̂ = (q_x ĝ_x + q_y ĝ_y)/(2πi|q|²), φ̂(0) = 0; mirror-extended (see module doc). The mean
    gradient of a window is real signal (kept); ``remove_mean_gradient`` drops it (e.g. when the
    optical axis is only roughly known)."""
    gy = np.asarray(gy, np.float64)
    gx = np.asarray(gx, np.float64)
    if remove_mean_gradient or not mirror:
        gy = gy - gy.mean()
        gx = gx - gx.mean()
    ny, nx = gy.shape
    if mirror:
        gx = np.block([[gx, -gx[:, ::-1]], [gx[::-1, :], -gx[::-1, ::-1]]])
        gy = np.block([[gy, gy[:, ::-1]], [-gy[::-1, :], -gy[::-1, ::-1]]])
    qy = np.fft.fftfreq(gy.shape[0], d=step_y_a)[:, None]
    qx = np.fft.fftfreq(gy.shape[1], d=step_x_a)[None, :]
    q2 = qy**2 + qx**2
    q2[0, 0] = 1.0
    spec = (qx * np.fft.fft2(gx) + qy * np.fft.fft2(gy)) / (2j * math.pi * q2)
    spec[0, 0] = 0.0
    phase = np.fft.ifft2(spec).real[:ny, :nx]
    return (phase - phase.mean()).astype(np.float32)


def _curl_div(my, mx, step_y, step_x):
    dmx_dy, dmx_dx = np.gradient(mx, step_y, step_x)
    dmy_dy, dmy_dx = np.gradient(my, step_y, step_x)
    return dmy_dx - dmx_dy, dmx_dx + dmy_dy


def _skew(a: np.ndarray) -> float:
    a = a - a.mean()
    sd = a.std()
    return float((a**3).mean() / sd**3) if sd > 0 else 0.0


def guess_rotation(com_y: np.ndarray, com_x: np.ndarray, *, scan_step_a: float | tuple = 1.0) -> dict:
    """Scan rotation (deg) and transpose that make the CoM field curl-free (see module doc).

    Returns {"rotation_deg", "transpose", "curl_fraction" (Σcurl²/Σ|∇g|² at the optimum, 0 = ideal),
    "curl_fraction_other" (the best of the other transpose choice), "skewness"}.
    """
    sy, sx = scan_step_a if isinstance(scan_step_a, (tuple, list)) else (scan_step_a, scan_step_a)
    my = np.asarray(com_y, np.float64) - np.mean(com_y)
    mx = np.asarray(com_x, np.float64) - np.mean(com_x)
    if my.shape[0] < 3 or my.shape[1] < 3:
        raise InputError("the scan needs at least 3x3 positions to guess its rotation")
    if not (np.any(my) or np.any(mx)):
        raise InputError("the centre-of-mass field is uniform: no contrast to guess the scan rotation from")
    best = []
    for transpose in (False, True):
        a_y, a_x = (mx, my) if transpose else (my, mx)
        curl, div = _curl_div(a_y, a_x, sy, sx)
        A, B, C = float((curl**2).sum()), float((curl * div).sum()), float((div**2).sum())
        w, v = np.linalg.eigh(np.array([[A, B], [B, C]]))
        c, s = v[:, 0]
        theta = math.degrees(math.atan2(s, c))
        best.append((w[0] / max(A + C, 1e-300), theta, transpose))
    best.sort()
    frac, theta, transpose = best[0]
    gy, gx = to_scan_frame(my, mx, theta, transpose)
    skew = _skew(integrate_gradient(gy, gx, sy, sx))
    if skew < 0:
        theta += 180.0
        skew = -skew
    theta = (theta + 180.0) % 360.0 - 180.0
    return {"rotation_deg": float(theta), "transpose": bool(transpose), "curl_fraction": float(frac),
            "curl_fraction_other": float(best[1][0]), "skewness": float(skew)}


# ----------------------------------------------------------------------------- iCoM


def icom_job(data: Any, *, energy_kev: float | None, scan_step_a: float | tuple | None,
             detector_mrad_per_px: float | None, rotation_deg: float | None = 0.0, transpose: bool = False,
             center: tuple[float, float] | None = None, auto_rotation: bool = False, mirror: bool = True,
             remove_mean_gradient: bool = False, block_rows: int | None = None, descan="plane",
             descan_source: str = "disc", uncertainty: bool = False) -> Job:
    """iCoM as a job: CoM over row blocks (partial phase of the rows done so far), then Fourier
    integration. ``descan``: "plane" (default), "constant" or "off" — the model fitted over the
    scan to the beam centre measured per pattern (``descan_source`` "disc": the BF-disc centre, in
    the same pass; "com": the CoM itself, which also takes the specimen's mean gradient and its
    linear trend) and subtracted from the CoM before integration (descan.py: centre offset and
    descan would integrate to a ramp and a quadratic), or a DescanFit to subtract;
    ``metadata["descan"]`` records it (``"descan_skipped"``: why it could not be fitted).
    ``rotation_deg=None`` or ``auto_rotation=True`` guesses rotation and transpose
    from the data (curl minimisation). Returns a PhaseResult: ``phase`` (rad) on the scan grid
    (pixel = scan step in Å, origin at the first scan position), ``com_x``/``com_y`` (mrad, scan frame).
    ``uncertainty``: add ``phase_sigma`` (rad; Poisson counts propagated, :mod:`.uncertainty`)."""
    want_sigma = check_flag(uncertainty)
    shape = check_4d(data)
    descan_model = _descan.check_model(descan)
    if descan_source not in _descan.SOURCES:
        raise InputError(f"descan_source must be 'disc' or 'com', got {descan_source!r}")
    if isinstance(descan, _descan.DescanFit) and tuple(descan.scan_shape) != tuple(shape[:2]):
        raise InputError(f"descan was fitted on a {descan.scan_shape} scan, the data are {shape[:2]}")
    cal = Calibration(energy_kev=energy_kev, scan_step_a=scan_step_a, detector_mrad_per_px=detector_mrad_per_px,
                      rotation_deg=float(rotation_deg or 0.0), transpose=bool(transpose), center_px=center)
    cal.validate(shape[2:], needs=("energy_kev", "scan_step_a", "detector_mrad_per_px"))
    step_y, step_x = cal.step_yx_a  # non-square steps: native here, the result resampled to square pixels
    cy, cx = cal.center_for(shape[2:])
    auto = auto_rotation or rotation_deg is None
    watch = Stopwatch()
    n = block_rows or rows_per_block(shape)
    total = -(-shape[0] // n) + 1
    com_y = np.zeros(shape[:2], np.float64)
    com_x = np.zeros(shape[:2], np.float64)
    counts = np.zeros(shape[:2], np.float64)
    measure_disc = descan_model != "off" and descan_source == "disc" and not isinstance(descan, _descan.DescanFit)
    disc_y = np.full(shape[:2], np.nan) if measure_disc else com_y
    disc_x = np.full(shape[:2], np.nan) if measure_disc else com_x
    k_scale = 2 * math.pi * cal.detector_inv_a_per_px  # px -> g in rad/Å
    done = 0

    def corrected(rows: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """CoM of the first ``rows`` rows less the fitted descan (detector frame), its metadata."""
        my, mx = com_y[:rows], com_x[:rows]
        if descan_model == "off":
            return my, mx, {"descan": _descan.off(my.shape).to_metadata()}
        valid = counts[:rows] > 0
        try:
            if isinstance(descan, _descan.DescanFit):
                fit = descan
            elif measure_disc:
                ey, ex, leak = _descan.without_specimen_leak(disc_y[:rows], disc_x[:rows], my, mx, valid)
                fit = dataclasses.replace(_descan.fit_descan(ey, ex, model=descan_model, source=descan_source,
                                                             valid=valid), leak=leak)
            else:
                fit = _descan.fit_descan(my, mx, model=descan_model, source=descan_source, valid=valid)
            dy, dx = fit.shift_px(*np.indices(my.shape))
        except InputError as exc:
            return my, mx, {"descan": None, "descan_skipped": str(exc)}
        return my - dy, mx - dx, {"descan": fit.to_metadata(cal.detector_mrad_per_px)}

    def make(rows: int, rot: float, tr: bool, extra: dict) -> PhaseResult:
        my, mx, desc = corrected(rows)
        gy, gx = to_scan_frame(my, mx, rot, tr)
        phase = integrate_gradient(gy * k_scale, gx * k_scale, step_y, step_x, mirror=mirror,
                                   remove_mean_gradient=remove_mean_gradient)
        det = cal.detector_mrad_per_px
        meta = {"method": "icom", "energy_kev": cal.energy_kev, "scan_step_a": step_x,
                "detector_mrad_per_px": det, "rotation_deg": rot, "transpose": tr, "center_px": [cy, cx],
                "auto_rotation": auto, "mirror_padding": mirror, "remove_mean_gradient": remove_mean_gradient, "input_shape": list(shape),
                "origin": "first scan position", "runtime_s": watch.elapsed_s, "device": "cpu", **desc, **extra}
        return square_result(
            PhaseResult({"phase": phase, "com_x": (gx * det).astype(np.float32), "com_y": (gy * det).astype(np.float32)},
                        pixel_size=step_x, pixel_unit="Å", array_units={"com_x": "mrad", "com_y": "mrad"},
                        metadata=meta), step_y, step_x)

    try:
        for i, (r0, r1, block) in enumerate(iter_rows(data, n)):
            com_y[r0:r1], com_x[r0:r1], counts[r0:r1] = _com_block(block, cy, cx)
            if measure_disc:
                disc_y[r0:r1], disc_x[r0:r1], _ = _descan.disc_centres(block, cy, cx)
            done = r1
            partial = make(r1, cal.rotation_deg, cal.transpose, {"partial": True}) if (r1 >= 3 and not auto) else None
            yield Progress(i + 1, total, f"iCoM: scan row {r1}/{shape[0]}", partial)
    except JobCancelled:
        if done < 3:
            raise
        res = make(done, cal.rotation_deg, cal.transpose, {"cancelled": True, "rows_done": done})
        return not_computed(res, "cancelled: no σ") if want_sigma else res
    if not counts.any():
        raise InputError("every diffraction pattern is zero: nothing to reconstruct (wrong file or dark reference?)")
    extra: dict = {}
    rot, tr = cal.rotation_deg, cal.transpose
    if auto:
        guess = guess_rotation(*corrected(shape[0])[:2], scan_step_a=(step_y, step_x))
        rot, tr = guess["rotation_deg"], guess["transpose"]
        extra["rotation_guess"] = guess
    result = make(shape[0], rot, tr, extra)
    yield Progress(total, total, "iCoM: integrated", None)
    if want_sigma:
        from .uncertainty import icom_sigma_step

        def to_phase(my, mx):  # iCoM's linear map, detector-frame CoM (px) -> phase (rad)
            gy, gx = to_scan_frame(my, mx, rot, tr)
            return integrate_gradient(gy * k_scale, gx * k_scale, step_y, step_x, mirror=mirror,
                                      remove_mean_gradient=remove_mean_gradient)

        return (yield from icom_sigma_step(result, data, to_phase, step_y=step_y, step_x=step_x, block_rows=n))
    return result


def icom(data: Any, *, energy_kev: float | None, scan_step_a: float | tuple | None,
         detector_mrad_per_px: float | None, rotation_deg: float | None = 0.0, transpose: bool = False,
         center: tuple[float, float] | None = None, **kwargs: Any) -> PhaseResult:
    """Integrated centre of mass (see module doc and :func:`icom_job`): PhaseResult with ``.phase`` (rad),
    pixel size = scan step (Å)."""
    return run_job(icom_job(data, energy_kev=energy_kev, scan_step_a=scan_step_a,
                            detector_mrad_per_px=detector_mrad_per_px, rotation_deg=rotation_deg,
                            transpose=transpose, center=center, **kwargs))
