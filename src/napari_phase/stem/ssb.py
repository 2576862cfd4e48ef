"""Single side-band ptychography (SSB; Pennycook et al. 2015), accumulated over scan positions.

With the probe A(k) = aperture(k)·exp(−iχ(k)) and the data Fourier-transformed over the scan,
G(k, Q) = Σ_p I(k; r_p) e^{−2πi Q·r_p}, a weak phase object t = 1 + iφ gives

    G(k, Q) = i Φ(Q) A(k − Q) A*(k)    where k, k − Q are in the aperture and k + Q is not,
    G(k, Q) = −i Φ(Q) A(k) A*(k + Q)   where k, k + Q are in the aperture and k − Q is not

(the two double-overlap "trotters"; Φ = DFT of φ over the scan grid, intensities normalised to the
mean bright-field level). SSB estimates Φ(Q) = Σ_trotters W(k, Q) G(k, Q) / N(Q) with W the conjugate
of the factor above, for 0 < |Q| < 2α/λ, and φ = Re IFFT(Φ). Because G is linear in the data,
Φ(Q) = Σ_p e^{−2πi Q·r_p} Σ_k W(k, Q) I(k; r_p) accumulates block by block of scan rows (the live
form of LiberTEM's ptychography40): memory is the sparse W (trotter pixels × Q) plus one block.
Where the bright-field pixels of all patterns fit in memory (``mode="fft"``, the default below
512 MB) the same Φ comes from an FFT over the scan of those pixels, far cheaper on large scans.

Detector frame: k_det = F(R(−θ) Q_scan) (rotation/transpose as in calibration.py).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..jobs import InputError, Job, JobCancelled, Progress, Stopwatch, run_job
from ..physics.optics import chi
from ..result import PhaseResult
from ..uncertainty import check_flag, not_computed, sigma_step
from ._data import check_4d, read_rows, rows_per_block
from ._grid import square_result
from . import ssb_wiener
from .calibration import Calibration
from .descan import recentre_job


def undersampling_message(step_yx_a, wavelength_a: float, semiangle_mrad: float) -> str | None:
    """One line when the scan cannot sample the SSB band: the trotters carry Q up to 2α/λ, a step
    s samples up to its Nyquist 1/(2s), so every step must be ≤ λ/(4α); None when it is."""
    limit_a = wavelength_a / (4 * semiangle_mrad * 1e-3)
    coarse = max(float(v) for v in step_yx_a)
    if coarse <= limit_a * (1 + 1e-9):
        return None
    return (f"scan step {coarse:g} Å undersamples SSB: its Nyquist 1/(2·step) = {0.5 / coarse:.3g} 1/Å is below the "
            f"band 2α/λ = {2 * semiangle_mrad * 1e-3 / wavelength_a:.3g} 1/Å (steps ≤ λ/(4α) = {limit_a:.3g} Å sample "
            "all of it); the finest detail aliases")


def _disc_pixels(det_shape, center, aperture_px):
    """Indices (flat) of the bright-field pixels and their (ky, kx) from the centre, px."""
    cy, cx = center
    yy, xx = np.indices(det_shape, dtype=np.float64)
    ky = (yy - cy).ravel()
    kx = (xx - cx).ravel()
    idx = np.flatnonzero(ky**2 + kx**2 < aperture_px**2)
    return idx, ky[idx], kx[idx]


def _q_detector_px(q_yx, inv_a_per_px, rotation_deg, transpose):
    """Q (scan frame, 1/Å) -> detector frame in px: k_det = F(R(−θ) Q)."""
    t = math.radians(rotation_deg)
    c, s = math.cos(t), math.sin(t)
    qy_s, qx_s = q_yx
    qx_d = (c * qx_s + s * qy_s) / inv_a_per_px
    qy_d = (-s * qx_s + c * qy_s) / inv_a_per_px
    if transpose:
        qx_d, qy_d = qy_d, qx_d
    return qy_d, qx_d


def _trotter_weights(det_shape, center, aperture_px, inv_a_per_px, q_yx, rotation_deg, transpose,
                     wavelength_a, defocus_a, cs_a):
    """Sparse W (n_disc_pixels × n_Q, complex64), the disc pixel indices and N(Q)."""
    idx, ky, kx = _disc_pixels(det_shape, center, aperture_px)
    qy_s = q_yx[0]
    qy_d, qx_d = _q_detector_px(q_yx, inv_a_per_px, rotation_deg, transpose)
    r2 = aperture_px**2
    abr = bool(defocus_a or cs_a)

    def a_of(ky_, kx_):
        if not abr:
            return 1.0
        k2 = (ky_**2 + kx_**2) * inv_a_per_px**2
        return np.exp(-1j * chi(k2, wavelength_a, defocus_a, cs_a))

    rows, cols, vals = [], [], []
    norm = np.zeros(len(qy_s), np.float64)
    a_k = a_of(ky, kx)
    for j in range(len(qy_s)):
        kmy, kmx = ky - qy_d[j], kx - qx_d[j]
        kpy, kpx = ky + qy_d[j], kx + qx_d[j]
        in_m = kmy**2 + kmx**2 < r2
        in_p = kpy**2 + kpx**2 < r2
        minus = in_m & ~in_p
        plus = in_p & ~in_m
        nm, npl = int(minus.sum()), int(plus.sum())
        if nm + npl == 0:
            continue
        if nm:
            w = -1j * np.conj(a_of(kmy[minus], kmx[minus])) * (a_k[minus] if abr else 1.0)
            rows.append(np.flatnonzero(minus))
            cols.append(np.full(nm, j))
            vals.append(np.broadcast_to(w, (nm,)).astype(np.complex64))
        if npl:
            w = 1j * np.conj(a_k[plus] if abr else 1.0) * a_of(kpy[plus], kpx[plus])
            rows.append(np.flatnonzero(plus))
            cols.append(np.full(npl, j))
            vals.append(np.broadcast_to(w, (npl,)).astype(np.complex64))
        norm[j] = nm + npl
    if not rows:
        raise InputError("no spatial frequency of the scan falls in the SSB band (0 < |Q| < 2α): the scan is too "
                         "small or the step too coarse for this aperture")
    w = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(len(idx), len(qy_s)), dtype=np.complex64)
    return w, idx, norm


def ssb_job(data: Any, *, energy_kev: float | None, semiangle_mrad: float | None, scan_step_a: float | tuple | None,
            detector_mrad_per_px: float | None, rotation_deg: float = 0.0, transpose: bool = False,
            center: tuple[float, float] | None = None, defocus_a: float = 0.0, cs_mm: float = 0.0,
            block_rows: int | None = None, preview_every: int = 4, mode: str = "auto",
            max_fft_bytes: int = 512 * 2**20, weighting: str = "wiener",
            descan="plane", uncertainty: bool = False) -> Job:
    """SSB as a job (see module doc). Partial results every ``preview_every`` blocks show the
    accumulation so far. Returns a PhaseResult: ``phase`` (rad) on the scan grid (pixel = scan
    step in Å, origin at the first scan position).

    ``mode``: "accumulate" (per block, memory = W + one block, cost ∝ patterns × Σ_Q trotter size),
    "fft" (keeps the bright-field pixels of every pattern, ~16 bytes each, and Fourier-transforms
    them over the scan: the same numbers, far faster on large scans), or "auto" (fft when that
    cube stays below ``max_fft_bytes``).

    ``weighting``: "wiener" (default: each Q weighted by S/(S + σ²/N) with the noise and signal
    power measured from the data, ssb_wiener.py) or "none" (the plain trotter average, noisy at
    low dose). A scan step coarser than λ/(4α) cannot sample the band up to 2α/λ: a one-line
    warning (``warnings.warn`` and ``metadata["warning"]``). ``descan``: "plane" (default),
    "constant", "off" or a DescanFit — the BF-disc centre measured over the scan (a first pass),
    fitted and every pattern moved back onto the optical axis before SSB (descan.py);
    ``metadata["descan"]``. ``uncertainty``: add ``phase_sigma`` (rad; Poisson counts propagated
    analytically, :func:`.uncertainty.ssb_phase_sigma`; no extra pass over the data)."""
    want_sigma = check_flag(uncertainty)
    if weighting not in ("wiener", "none"):
        raise InputError(f"weighting must be 'wiener' or 'none', got {weighting!r}")
    if mode not in ("auto", "fft", "accumulate"):
        raise InputError(f"mode must be 'auto', 'fft' or 'accumulate', got {mode!r}")
    shape = check_4d(data)
    cal = Calibration(energy_kev=energy_kev, semiangle_mrad=semiangle_mrad, scan_step_a=scan_step_a,
                      detector_mrad_per_px=detector_mrad_per_px, rotation_deg=float(rotation_deg or 0.0),
                      transpose=bool(transpose), defocus_a=float(defocus_a or 0.0), cs_mm=float(cs_mm or 0.0),
                      center_px=center)
    cal.validate(shape[2:], needs=("energy_kev", "semiangle_mrad", "scan_step_a", "detector_mrad_per_px"))
    step_y, step_x = cal.step_yx_a  # non-square steps: native here, the result resampled to square pixels
    watch = Stopwatch()
    data, fit, skipped = yield from recentre_job(data, descan, center=cal.center_for(shape[2:]),
                                                 block_rows=block_rows, label="SSB")
    desc = {"descan": fit.to_metadata(cal.detector_mrad_per_px) if fit else None,
            **({"descan_skipped": skipped} if skipped else {})}
    sy, sx = shape[:2]
    qy = np.fft.fftfreq(sy, d=step_y)
    qx = np.fft.fftfreq(sx, d=step_x)
    qyy, qxx = np.meshgrid(qy, qx, indexing="ij")
    q = np.hypot(qyy, qxx).ravel()
    band = (q > 0) & (q < 2 * cal.aperture_inv_a)
    sel = np.flatnonzero(band)
    center_px = cal.center_for(shape[2:])
    w, disc_idx, norm = _trotter_weights(shape[2:], center_px, cal.aperture_radius_px, cal.detector_inv_a_per_px,
                                         (qyy.ravel()[sel], qxx.ravel()[sel]), cal.rotation_deg, cal.transpose,
                                         cal.wavelength_a, cal.defocus_a, cal.cs_mm * 1e7)
    used = norm > 0
    q_count = int(used.sum())
    warning = undersampling_message(cal.step_yx_a, cal.wavelength_a, cal.semiangle_mrad)
    if warning:
        warnings.warn(warning, UserWarning, stacklevel=2)
    # noise-only pixels for σ² (ssb_wiener.py): extra columns of W, accumulated with the trotters
    n_sel = len(sel)
    w_trotter = w
    cols = sel
    noise_counts = np.zeros(0, np.int64)
    if weighting == "wiener":
        sub = ssb_wiener.noise_q_subset(q[sel])
        _, ky_px, kx_px = _disc_pixels(shape[2:], center_px, cal.aperture_radius_px)
        qy_d, qx_d = _q_detector_px((qyy.ravel()[sel[sub]], qxx.ravel()[sel[sub]]), cal.detector_inv_a_per_px,
                                    cal.rotation_deg, cal.transpose)
        wn, noise_counts = ssb_wiener.noise_region(ky_px, kx_px, cal.aperture_radius_px, qy_d, qx_d)
        w = sp.hstack([w, wn], format="csc")
        cols = np.concatenate([sel, sel[sub]])
    use_fft = mode == "fft" or (mode == "auto" and sy * sx * len(disc_idx) * 12 <= max_fft_bytes)
    if use_fft:
        cube = np.zeros((sy, sx, len(disc_idx)), np.float32)
        wt = w.T.tocsr()
        n = block_rows or rows_per_block(shape)
    else:
        # rows per block: keep the (patterns × Q) complex product near 32 MB
        n = block_rows or int(max(1, min(sy, 32 * 2**20 // max(1, 8 * sx * len(sel)))))
    blocks = -(-sy // n)
    bf_sum = 0.0
    disc_counts = np.zeros(len(disc_idx), np.float64)  # S_k, for σ only
    last: dict = {}
    rows_done = 0
    acc = np.zeros(len(cols), np.complex128)
    ex = None if use_fft else np.exp(-2j * np.pi * np.outer(np.arange(sx) * step_x, qxx.ravel()[cols])).astype(np.complex64)
    qy_sel = qyy.ravel()[cols]

    def fft_accumulate() -> None:
        import scipy.fft

        g = scipy.fft.fft2(cube, axes=(0, 1)).reshape(sy * sx, -1)  # G(k, Q), complex64
        chunk = max(1, (16 * 2**20) // max(1, 8 * g.shape[1]))
        for c0 in range(0, len(cols), chunk):  # Φ(Q) = Σ_k W(k, Q) G(k, Q), a few MB at a time
            c1 = min(len(cols), c0 + chunk)
            acc[c0:c1] = np.asarray(wt[c0:c1].multiply(g[cols[c0:c1]]).sum(axis=1)).ravel()
        del g

    def make(extra: dict) -> PhaseResult:
        if use_fft:
            fft_accumulate()
        spec = np.zeros(sy * sx, np.complex128)
        level = bf_sum / max(1, rows_done * sx * len(disc_idx))
        filt = {"weighting": "none"}
        last["gain"] = None
        if level > 0:
            phi = acc[:n_sel][used] / norm[used] / level
            sigma2 = ssb_wiener.pixel_noise_variance(acc[n_sel:] / level, noise_counts) if weighting == "wiener" else None
            if sigma2 is not None:
                gain, info = ssb_wiener.wiener_gain(phi, norm[used], sigma2, q[sel[used]],
                                                    1.0 / max(sy * step_y, sx * step_x), 2 * cal.aperture_inv_a)
                phi = phi * gain
                last["gain"] = gain
                filt = {"weighting": "wiener", **info}
            elif weighting == "wiener":
                filt = {"weighting": "none", "weighting_skipped": "no noise-only bright-field pixels to measure σ²"}
            spec[sel[used]] = phi
        phase = np.fft.ifft2(spec.reshape(sy, sx)).real
        phase = (phase - phase.mean()).astype(np.float32)
        meta = {"method": "ssb", "energy_kev": cal.energy_kev, "semiangle_mrad": cal.semiangle_mrad,
                "scan_step_a": step_x, "detector_mrad_per_px": cal.detector_mrad_per_px,
                "rotation_deg": cal.rotation_deg, "transpose": cal.transpose, "center_px": list(center_px),
                "defocus_a": cal.defocus_a, "cs_mm": cal.cs_mm, "band_inv_a": 2 * cal.aperture_inv_a,
                "spatial_frequencies_used": q_count, "input_shape": list(shape), "origin": "first scan position",
                "mode": "fft" if use_fft else "accumulate", "ssb_filter": filt,
                **({"warning": warning} if warning else {}),
                "runtime_s": watch.elapsed_s, "device": "cpu", **desc, **extra}
        return square_result(PhaseResult({"phase": phase}, pixel_size=step_x, pixel_unit="Å", metadata=meta), step_y, step_x)

    try:
        for b, r0 in enumerate(range(0, sy, n)):
            r1 = min(sy, r0 + n)
            block = read_rows(data, r0, r1).reshape(r1 - r0, sx, -1)[:, :, disc_idx]  # (rows, sx, n_disc)
            bf_sum += float(block.sum(dtype=np.float64))
            if want_sigma:
                disc_counts += block.sum(axis=(0, 1), dtype=np.float64)
            if use_fft:
                cube[r0:r1] = block
            else:
                v = (w.T @ block.reshape(-1, len(disc_idx)).T).T.reshape(r1 - r0, sx, -1)  # (rows, sx, nQ)
                ey = np.exp(-2j * np.pi * np.outer(np.arange(r0, r1) * step_y, qy_sel)).astype(np.complex64)
                acc += np.einsum("rcq,rq,cq->q", v, ey, ex, optimize=True)
            rows_done = r1
            partial = make({"partial": True, "rows_done": r1}) if ((b + 1) % max(1, preview_every) == 0 and r1 < sy) else None
            yield Progress(b + 1, blocks + 1, f"SSB: scan row {r1}/{sy}", partial)
    except JobCancelled:
        if rows_done == 0:
            raise
        res = make({"cancelled": True, "rows_done": rows_done})
        return not_computed(res, "cancelled: no σ") if want_sigma else res
    if not bf_sum > 0:
        raise InputError("no counts in the bright-field disc of any pattern: check the centre, semi-angle and "
                         "detector sampling (or the data are all zero)")
    result = make({})
    try:
        yield Progress(blocks + 1, blocks + 1, "SSB: done", None)
    except JobCancelled:  # every row is in: the result is complete, only σ is left out
        return not_computed(result, "cancelled: no σ") if want_sigma else result
    if not want_sigma:
        return result
    from ..uncertainty import add_model_error
    from .uncertainty import SSB_MODEL, SSB_MODEL_ERROR_C, SSB_NOTE, ssb_phase_sigma

    def sigma() -> dict:
        level = bf_sum / max(1, sy * sx * len(disc_idx))
        s = ssb_phase_sigma(w_trotter, disc_counts, norm, used, last.get("gain"), level, sy * sx)
        return {"phase": add_model_error(result, np.full(result.phase.shape, s, np.float32), SSB_MODEL_ERROR_C)}

    return (yield from sigma_step(result, sigma, label="SSB", model=SSB_MODEL.format(c=SSB_MODEL_ERROR_C), calibrated=False,
                                  note=SSB_NOTE, noise_model="Poisson counts", samples=0, model_error_c=SSB_MODEL_ERROR_C,
                                  model_error_proxy="highpass"))


def ssb(data: Any, *, energy_kev: float | None, semiangle_mrad: float | None, scan_step_a: float | tuple | None,
        detector_mrad_per_px: float | None, rotation_deg: float = 0.0, transpose: bool = False,
        center: tuple[float, float] | None = None, **kwargs: Any) -> PhaseResult:
    """Single side-band phase (see module doc and :func:`ssb_job`)."""
    return run_job(ssb_job(data, energy_kev=energy_kev, semiangle_mrad=semiangle_mrad, scan_step_a=scan_step_a,
                           detector_mrad_per_px=detector_mrad_per_px, rotation_deg=rotation_deg,
                           transpose=transpose, center=center, **kwargs))
