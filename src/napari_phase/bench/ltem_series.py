"""LTEM series benchmark (issue 9, item 7): flipped through-focus series and micromagnetic input.

    napari-phase bench [--quick]                 (this section inside docs/benchmarks.md)
    python -m napari_phase.bench.ltem_series [--quick]   (this section alone, to stdout)

1. **Flipped series**: skyrmion lattice (B0·t = 50 T·nm) with contaminants (A ≈ 0.5,
   φe = σ V0 t ≈ 1 rad), 128² px of 5 nm, 5 defoci −0.4 … +0.4 mm, the flipped series mirrored
   left-right, rotated 3° and shifted (4, −6) px, 10 % Gaussian noise per image
   (:func:`napari_phase.ltem.simulate_series.simulate_flipped_series`). napari-phase's TIE
   (least-squares ∂I/∂z over all 5 images, I0 = series mean, alignment; by default the free
   boundary, each series solved on its own frame and the flipped phase warped, qc 0.5/FOV for
   φm and 2/FOV for φe; also with the zero-flux mirror boundary and the spectral ∂I/∂z) against a PyLorentz-style
   two-image TIE implemented here from the published equations (Chess et al. 2017 / PyLorentz
   paper: dI/dz from the two outermost images only, (I₊ − I₋)/(2Δz), in-focus image as I0,
   φm from ½(dI/dz − dI/dz_flip), φe from ½(dI/dz + dI/dz_flip)), fed the same aligned images and
   solved with the same FFT solver, so the difference is the estimator. Both on the region every
   aligned image covers. Metrics: accuracy (Pearson) of φm and φe, B accuracy, and the B·t slope
   (least-squares factor estimate/truth over the stacked Bx·t, By·t; 1 = right magnitude).
2. **Micromagnetic files** (OOMMF skyrmion, skyrmion disk; mumax3 S-state with Ms = 8e5 A/m):
   imaged with :func:`napari_phase.ltem.simulate_from_magnetization` (skyrmions tilted 30° about x,
   so that their Néel walls show; 2 nm pixels), SITIE at −0.1 mm and SIPRAD at −1 mm, noise 0 and
   10 %: correlation of the reconstructed B·t with the B·t from the file (orientation included);
   SITIE with ``qc_per_nm="auto"`` over noise 0–10 % (:func:`auto_rows`).
3. **Diagnosis of φe** (:func:`diagnosis_rows`): estimated vs true alignment, a perfectly placed
   flipped series, smaller defocus steps.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

CROP_PX = 8
PX = 5.0
DZ = 2e5
REAL = Path(__file__).resolve().parents[3].parent / "shared" / "real-files" / "micromagnetic"


#: (file, simulate_from_magnetization keywords, pixel size nm or None = the cell size)
MICROMAGNETIC_CASES = [("skyrmion.omf", {"tilt_x_deg": 30.0}, 2.0),
                       ("skyrmion-disk.omf", {"tilt_x_deg": 30.0, "thickness_axis": "z"}, 2.0),
                       ("mumax-bin4-linux.ovf", {"ms_a_per_m": 8e5}, None)]


def _slope(est, truth, crop=CROP_PX) -> float:
    from ..physics.metrics import magnitude_slope

    return magnitude_slope(est, truth, crop)


def two_image_tie(aligned, aligned_flipped, defocus_nm, pixel_size_nm, voltage_kv=200.0, qc_per_nm=0.0):
    """PyLorentz-style TIE from the published equations (not its code): the outermost pair only,
    in-focus I0 (mean of both in-focus images), φm/φe from the half difference/sum of dI/dz."""
    from ..physics.poisson import solve_tie
    from ..physics.optics import electron_wavelength_nm

    z = np.asarray(defocus_nm, np.float64)
    u, f = np.asarray(aligned, np.float64), np.asarray(aligned_flipped, np.float64)
    mid = len(z) // 2
    i0 = 0.5 * (u[mid] + f[mid])
    scale = float(i0.mean())
    dz = z[-1]
    d_u = (u[-1] - u[0]) / (2 * dz)
    d_f = (f[-1] - f[0]) / (2 * dz)
    lam = electron_wavelength_nm(voltage_kv)
    pm = solve_tie(0.5 * (d_u - d_f) / scale, lam, pixel_size_nm, intensity=i0 / scale, qc=qc_per_nm)
    pe = solve_tie(0.5 * (d_u + d_f) / scale, lam, pixel_size_nm, intensity=i0 / scale, qc=qc_per_nm)
    return pm.astype(np.float32), pe.astype(np.float32)


def _scores(phase_m, phase_e, truth_m, truth_e, px=PX) -> dict:
    from ..physics.induction import induction_from_phase
    from ..physics.metrics import induction_accuracy, pearson_accuracy

    bx, by = induction_from_phase(phase_m, px)
    tbx, tby = induction_from_phase(truth_m, px)
    return {
        "phim": pearson_accuracy(phase_m, truth_m, CROP_PX),
        "phie": pearson_accuracy(phase_e, truth_e, CROP_PX),
        "bacc": induction_accuracy(bx, by, tbx, tby, CROP_PX),
        "bslope": _slope(np.stack([bx, by]), np.stack([tbx, tby])),
        "eslope": _slope(phase_e, truth_e),
    }


def flipped_case(seed: int = 0, noise: float = 0.1):
    """Item 1's flipped series: 128² skyrmions with contaminants, defoci (−2 … 2)·DZ nm, the flipped
    series mirrored in x, rotated 3° and shifted (4, −6) px (a ``SimulatedFlippedSeries``)."""
    from ..ltem.simulate_series import simulate_flipped_series

    return simulate_flipped_series("skyrmions", (128, 128), defocus_nm=np.arange(-2, 3) * DZ, noise=noise,
                                   n_contaminants=6, flip_rotation_deg=3.0, flip_shift_px=(4.0, -6.0), seed=seed)


def crop_scores(result, s, phase_m=None, phase_e=None) -> dict:
    """:func:`_scores` of a flipped-series TIE result (or of ``phase_m``/``phase_e`` on its crop)
    against the truths of ``s`` on the region every aligned image covers (``crop_yx``)."""
    y0, y1, x0, x1 = result.metadata["crop_yx"]
    crop = (slice(y0, y1), slice(x0, x1))
    pm = result.phase if phase_m is None else phase_m
    pe = result.arrays["phase_e"] if phase_e is None else phase_e
    return _scores(pm, pe, s.phase_m[crop], s.phase_e[crop])


def flipped_series_rows(seeds=(0, 1, 2), noises=(0.0, 0.1)) -> list[dict]:
    from ..ltem import tie

    z = np.arange(-2, 3) * DZ
    rows = []
    for noise in noises:
        for seed in seeds:
            s = flipped_case(seed, noise)
            for label, qc, kw in (("napari-phase TIE, 5 images, defaults (free boundary, qc 0.5/FOV; φe 2/FOV, spectral ∂I/∂z, amplitude prior)", None, {}),
                                  ("napari-phase TIE, 5 images, zero-flux (mirror) boundary, other defaults", None, {"boundary": "mirror"}),
                                  ("napari-phase TIE, 5 images, spectral ∂I/∂z, other defaults", None, {"derivative": "spectral"}),
                                  ("napari-phase TIE, 5 images, qc auto (Wiener from the measured noise), φe 2/FOV", "auto", {}),
                                  ("napari-phase TIE, 5 images, qc 1e-3/nm", 1e-3, {}),
                                  ("napari-phase TIE, 5 images, qc 0", 0.0, {})):
                t0 = time.perf_counter()
                r = tie(s.series, pixel_size_nm=PX, defocus_nm=z, flipped=s.flipped, flip_axis="x", align=True, qc_per_nm=qc, **kw)
                dt = time.perf_counter() - t0
                rows.append({"method": label, "noise": noise, "seed": seed, "runtime_s": dt,
                             "angle_err_deg": abs(r.metadata["flipped_transform"]["angle_deg"] - 3.0),
                             **crop_scores(r, s)})
                if qc == 1e-3:
                    for qc2 in (1e-3, 0.0):
                        pm, pe = two_image_tie(r.arrays["aligned"], r.arrays["aligned_flipped"], z, PX, qc_per_nm=qc2)
                        rows.append({"method": f"PyLorentz-style two-image TIE (same aligned images), qc {qc2:g}/nm",
                                     "noise": noise, "seed": seed, "runtime_s": float("nan"), "angle_err_deg": float("nan"),
                                     **crop_scores(r, s, pm, pe)})
    return rows


#: sub-2-px drift of the unflipped series (px, the content of image k moved by it; in-focus image 0)
DRIFT_PX = [(1.5, 0.4), (0.7, -1.2), (0.0, 0.0), (-0.9, 0.6), (1.2, 1.8)]


def drift_rows(seeds=(0, 1, 2), noise: float = 0.1) -> list[dict]:
    """The flipped series of :func:`flipped_series_rows` with (and without) :data:`DRIFT_PX` in the
    unflipped series: the default registration (each image onto its simulation at its own defocus)
    against cross-correlation alone (the earlier method: shifts under 2 px not applied), and the
    φe options (per-frequency ∂I/∂z, amplitude prior) switched off one at a time. Shift error =
    found shift + drift (px) per image."""
    from ..ltem import tie
    from ..ltem.simulate_series import simulate_flipped_series

    z = np.arange(-2, 3) * DZ
    rows = []
    for drift in (True, False):
        for seed in seeds:
            s = simulate_flipped_series("skyrmions", (128, 128), defocus_nm=z, noise=noise, n_contaminants=6,
                                        flip_rotation_deg=3.0, flip_shift_px=(4.0, -6.0), seed=seed,
                                        series_drift_px=DRIFT_PX if drift else None)
            for label, kw in (("defaults (registered to the model; φe spectral + amplitude prior)", {}),
                              ("series registration: cross-correlation only (earlier)", {"series_registration": "cross-correlation"}),
                              ("φe prior off", {"phase_e_prior": "none"}),
                              ("φe prior off, φe ∂I/∂z least squares (earlier φe)", {"phase_e_prior": "none", "derivative_e": "least_squares"})):
                t0 = time.perf_counter()
                r = tie(s.series, pixel_size_nm=PX, defocus_nm=z, flipped=s.flipped, flip_axis="x", align=True, **kw)
                dt = time.perf_counter() - t0
                y0, y1, x0, x1 = r.metadata["crop_yx"]
                crop = (slice(y0, y1), slice(x0, x1))
                got = np.array([t["shift_yx_px"] for t in r.metadata["series_transforms"]])
                err = np.hypot(*(got + (np.array(DRIFT_PX) if drift else 0.0)).T)
                rows.append({"method": label, "drift": drift, "noise": noise, "seed": seed, "runtime_s": dt,
                             "shift_rms": float(np.sqrt((err**2).mean())), "shift_max": float(err.max()),
                             **_scores(r.phase, r.arrays["phase_e"], s.phase_m[crop], s.phase_e[crop])})
    return rows


def drift_markdown(rows: list[dict]) -> list[str]:
    keys = ("phim", "phie", "bslope", "eslope", "shift_rms", "shift_max", "runtime_s")
    out = ["| unflipped series | method | φm acc. | φe acc. | B·t slope | φe slope | shift error rms (px) | shift error max (px) | runtime (s) |",
           "|---|---|---|---|---|---|---|---|---|"]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["drift"], r["method"]), []).append(r)
    for (drift, method), rs in groups.items():
        cells = []
        for k in keys:
            v = np.array([r[k] for r in rs], float)
            cells.append(f"{v.mean():.2f}" if k in ("shift_rms", "shift_max") else
                         (f"{v.mean():.1f}" if k == "runtime_s" else (f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v.mean():.3f}")))
        out.append(f"| {'drift < 2 px' if drift else 'no drift'} | {method} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def _oracle_align_flipped(stack, flipped, flip_axis, **_):
    """The flipped series brought into the unflipped frame with the TRUE transform of the benchmark's
    simulation (mirror about x, 3°, (4, −6) px): a diagnosis of how much the estimated alignment costs,
    never part of the method."""
    from ..ltem import align as A

    un = A.unmirror(flipped, flip_axis).astype(np.float32)
    inv = A._matrix(3.0) @ np.array([4.0, 6.0])  # the un-mirrored frame sees (4, +6) px and −3°; undo it
    rigid = A.Rigid(3.0, (float(-inv[0]), float(-inv[1])), 1.0)
    return np.stack([A.warp_rigid(f, rigid) for f in un]), rigid


def diagnosis_rows(seeds=(0, 1, 2), noises=(0.0, 0.1)) -> list[dict]:
    """Where φe's error comes from (issue 9, target 1): estimated vs true (oracle) alignment; a
    perfectly placed flipped series (no rotation/shift, no alignment); the same with qc_e 0 and with
    the per-frequency ∂I/∂z; smaller defocus steps (the TIE's linear regime)."""
    from unittest import mock

    from ..ltem import align as A
    from ..ltem import tie
    from ..ltem.simulate_series import simulate_flipped_series

    rows = []
    for noise in noises:
        for seed in seeds:
            z = np.arange(-2, 3) * DZ
            s = simulate_flipped_series("skyrmions", (128, 128), defocus_nm=z, noise=noise, n_contaminants=6,
                                        flip_rotation_deg=3.0, flip_shift_px=(4.0, -6.0), seed=seed)
            for label, patch in (("misplaced 3° + (4, −6) px, estimated alignment (default)", None),
                                 ("misplaced, TRUE alignment (oracle)", _oracle_align_flipped)):
                ctx = mock.patch.object(A, "align_flipped", patch) if patch else mock.patch.object(A, "MIN_QUALITY", A.MIN_QUALITY)
                with ctx:
                    r = tie(s.series, pixel_size_nm=PX, defocus_nm=z, flipped=s.flipped, flip_axis="x", align=True)
                y0, y1, x0, x1 = r.metadata["crop_yx"]
                c = (slice(y0, y1), slice(x0, x1))
                rows.append({"method": label, "noise": noise, "seed": seed, "runtime_s": float("nan"),
                             **_scores(r.phase, r.arrays["phase_e"], s.phase_m[c], s.phase_e[c])})
            for dz in (DZ, 5e4, 1e4):
                z = np.arange(-2, 3) * dz
                p = simulate_flipped_series("skyrmions", (128, 128), defocus_nm=z, noise=noise, n_contaminants=6,
                                            flip_rotation_deg=0.0, flip_shift_px=(0.0, 0.0), seed=seed)
                for what, kw in (("defaults", {}), ("qc_e 0", {"qc_e_per_nm": 0.0}),
                                 ("qc_e 0, spectral ∂I/∂z", {"qc_e_per_nm": 0.0, "derivative": "spectral"})):
                    if dz != DZ and what != "qc_e 0":
                        continue
                    r = tie(p.series, pixel_size_nm=PX, defocus_nm=z, flipped=p.flipped, flip_axis="x", **kw)
                    rows.append({"method": f"perfectly placed, no alignment, step {dz / 1e6:g} mm, {what}", "noise": noise,
                                 "seed": seed, "runtime_s": float("nan"), **_scores(r.phase, r.arrays["phase_e"], p.phase_m, p.phase_e)})
    return rows


def auto_rows(noises=(0.0, 0.01, 0.03, 0.1)) -> list[dict]:
    """SITIE with ``qc_per_nm="auto"`` on the micromagnetic files (as :func:`micromagnetic_rows`)
    against qc 0 and the default 2/FOV, over the noise (σ = fraction × mean per pixel)."""
    from ..io.magnetization import read_magnetization
    from ..ltem import sitie
    from ..ltem.micromagnetic import simulate_from_magnetization
    from ..physics.metrics import induction_accuracy

    rows = []
    for name, kw, px in MICROMAGNETIC_CASES:
        mag = read_magnetization(REAL / name)
        for df in (-1e5, -1e6):
            for noise in noises:
                s = simulate_from_magnetization(mag, defocus_nm=df, noise=noise, pixel_size_nm=px, seed=0, **kw)
                row = {"file": name, "defocus_mm": df / 1e6, "noise": noise, "shape": s.image.shape}
                for key, qc in (("auto", "auto"), ("qc0", 0.0), ("default", None)):
                    r = sitie(s.image, pixel_size_nm=s.pixel_size_nm, defocus_nm=df, qc_per_nm=qc)
                    row[key] = induction_accuracy(r.bx, r.by, s.bx, s.by, 2)
                    if key == "auto":
                        row["sigma"] = r.metadata["auto_regularisation"]["noise_sigma_over_mean"]
                rows.append(row)
    return rows


def auto_markdown(rows: list[dict]) -> list[str]:
    out = ["| file | defocus (mm) | noise | σ measured / mean | B·t corr. auto | qc 0 | default 2/FOV |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['file']} | {r['defocus_mm']:g} | {r['noise']:.0%} | {r['sigma']:.3f} | {r['auto']:.3f} | {r['qc0']:.3f} | {r['default']:.3f} |")
    out.append("")
    return out


def dose_rows(method: str = "sitie", noises=(0.1, 0.05, 0.03, 0.02, 0.01, 0.005)) -> list[dict]:
    """B·t correlation over the noise (σ = fraction × mean per pixel, as everywhere here; shot noise
    of 1/fraction² electrons per pixel) for each micromagnetic file: ``method`` "sitie" (SITIE at
    −0.1 mm, ``qc_per_nm="auto"``) or "siprad" (SIPRAD at −1 mm, defaults, seed 0) — the dose at
    which the ≥ 0.9 target is reached."""
    from ..io.magnetization import read_magnetization
    from ..ltem import siprad, sitie
    from ..ltem.micromagnetic import simulate_from_magnetization
    from ..physics.metrics import induction_accuracy

    rows = []
    for name, kw, px in MICROMAGNETIC_CASES:
        mag = read_magnetization(REAL / name)
        for noise in noises:
            df = -1e5 if method == "sitie" else -1e6
            s = simulate_from_magnetization(mag, defocus_nm=df, noise=noise, pixel_size_nm=px, seed=0, **kw)
            t0 = time.perf_counter()
            if method == "sitie":
                r = sitie(s.image, pixel_size_nm=s.pixel_size_nm, defocus_nm=df, qc_per_nm="auto")
            else:
                r = siprad(s.image, pixel_size_nm=s.pixel_size_nm, defocus_nm=df, seed=0)
            rows.append({"file": name, "method": method, "noise": noise, "e_per_px": 1 / noise**2,
                         "b_corr": induction_accuracy(r.bx, r.by, s.bx, s.by, 2), "runtime_s": time.perf_counter() - t0})
    return rows


def sampling_rows(pixels_nm=(2.0, 1.0, 0.5), noise: float = 0.1) -> list[dict]:
    """SITIE at −0.1 mm on the OOMMF skyrmion (tilted 30°) imaged at several pixel sizes, with the
    noise defined per pixel (σ = noise × mean): a smaller pixel at the same per-pixel noise is a
    higher dose per nm² (1/noise² electrons per pixel for shot noise). B·t correlation with the
    default cut-off and the best of a small grid of cut-offs × Gaussian pre-filters (an oracle
    bound for this estimator, not a usable setting)."""
    from scipy import ndimage

    from ..io.magnetization import read_magnetization
    from ..ltem import sitie
    from ..ltem.micromagnetic import simulate_from_magnetization
    from ..physics.metrics import induction_accuracy

    mag = read_magnetization(REAL / "skyrmion.omf")
    rows = []
    for px in pixels_nm:
        s = simulate_from_magnetization(mag, defocus_nm=-1e5, noise=noise, pixel_size_nm=px, seed=0, tilt_x_deg=30.0)
        n = s.image.shape[0]

        def corr(img, qc):
            r = sitie(img, pixel_size_nm=px, defocus_nm=-1e5, qc_per_nm=qc)
            return induction_accuracy(r.bx, r.by, s.bx, s.by, 2)

        best = max(corr(ndimage.gaussian_filter(s.image, g / px) if g else s.image, q / (n * px))
                   for q in (0.0, 0.5, 1.0, 2.0) for g in (0.0, 2.0, 4.0, 8.0))
        rows.append({"pixel_nm": px, "shape": s.image.shape, "dose_e_per_nm2": 1 / noise**2 / px**2,
                     "default": corr(s.image, None), "best": best,
                     "contrast": float(s.image_clean.std() / s.image_clean.mean())})
    return rows


def film_rows(films_nm=(None, 50.0, 100.0), noise: float = 0.1, seeds=(0, 1), device: str = "cpu") -> list[dict]:
    """B·t correlation at ``noise`` for each micromagnetic file imaged as a film of each thickness
    (None: the file's own cells; ``film_thickness_nm`` of ``simulate_from_magnetization``): SITIE at
    −0.1 mm (``qc_per_nm="auto"``) and SIPRAD at −1 mm (defaults), mean over ``seeds`` of the noise,
    with the noise-free image contrast σ/mean at each defocus."""
    from ..io.magnetization import read_magnetization
    from ..ltem import siprad, sitie
    from ..ltem.micromagnetic import simulate_from_magnetization
    from ..physics.metrics import induction_accuracy

    rows = []
    for name, kw, px in MICROMAGNETIC_CASES:
        mag = read_magnetization(REAL / name)
        for film in films_nm:
            for method, df in (("SITIE −0.1 mm, qc auto", -1e5), ("SIPRAD −1 mm", -1e6)):
                vals, times = [], []
                for seed in seeds:
                    s = simulate_from_magnetization(mag, defocus_nm=df, noise=noise, pixel_size_nm=px, seed=seed,
                                                    film_thickness_nm=film, **kw)
                    t0 = time.perf_counter()
                    if df == -1e5:
                        r = sitie(s.image, pixel_size_nm=s.pixel_size_nm, defocus_nm=df, qc_per_nm="auto")
                    else:
                        r = siprad(s.image, pixel_size_nm=s.pixel_size_nm, defocus_nm=df, device=device, seed=0)
                    times.append(time.perf_counter() - t0)
                    vals.append(induction_accuracy(r.bx, r.by, s.bx, s.by, 2))
                rows.append({"file": name, "film_nm": s.params["thickness_nm"], "method": method, "noise": noise,
                             "b_corr": float(np.mean(vals)), "b_corr_each": [round(v, 3) for v in vals],
                             "contrast": float(s.image_clean.std() / s.image_clean.mean()), "runtime_s": float(np.mean(times))})
    return rows


def film_markdown(rows: list[dict]) -> list[str]:
    out = [f"The same files imaged as films of several thicknesses (`film_rows()`; `film_thickness_nm`: the cells along "
           f"the beam stretched, B·t ∝ thickness), {rows[0]['noise']:.0%} noise, mean over the noise seeds (each in "
           "brackets):", "",
           "| file | film (nm) | method | contrast σ/mean | B·t corr. | runtime (s) |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['file']} | {r['film_nm']:g} | {r['method']} | {r['contrast']:.2%} | {r['b_corr']:.3f} "
                   f"({', '.join(f'{v:.3f}' for v in r['b_corr_each'])}) | {r['runtime_s']:.1f} |")
    out.append("")
    return out


def micromagnetic_rows(quick: bool, device: str = "auto") -> list[dict]:
    from ..io.magnetization import read_magnetization
    from ..ltem import siprad, sitie
    from ..ltem.micromagnetic import simulate_from_magnetization
    from ..physics.metrics import induction_accuracy

    rows = []
    for name, kw, px in MICROMAGNETIC_CASES:
        mag = read_magnetization(REAL / name)
        for noise in (0.0, 0.1):
            s1 = simulate_from_magnetization(mag, defocus_nm=-1e5, noise=noise, pixel_size_nm=px, seed=0, **kw)
            for qc in (None, 0.0, "auto"):
                r = sitie(s1.image, pixel_size_nm=s1.pixel_size_nm, defocus_nm=-1e5, qc_per_nm=qc)
                rows.append({"file": name, "method": f"SITIE −0.1 mm, qc {'2/FOV' if qc is None else ('auto' if qc == 'auto' else 0)}", "noise": noise,
                             "shape": s1.image.shape, "b_corr": induction_accuracy(r.bx, r.by, s1.bx, s1.by, 2), "runtime_s": float("nan")})
            s2 = simulate_from_magnetization(mag, defocus_nm=-1e6, noise=noise, pixel_size_nm=px, seed=0, **kw)
            t0 = time.perf_counter()
            r = siprad(s2.image, pixel_size_nm=s2.pixel_size_nm, defocus_nm=-1e6, device=device, seed=0,
                       **({"iterations": 200, "pretrain_iterations": 100} if quick else {}))
            rows.append({"file": name, "method": "SIPRAD −1 mm" + (" (200 it.)" if quick else ""), "noise": noise,
                         "shape": s2.image.shape, "b_corr": induction_accuracy(r.bx, r.by, s2.bx, s2.by, 2),
                         "runtime_s": time.perf_counter() - t0})
            r = sitie(s2.image, pixel_size_nm=s2.pixel_size_nm, defocus_nm=-1e6, qc_per_nm=0.0)
            rows.append({"file": name, "method": "SITIE −1 mm, qc 0", "noise": noise, "shape": s2.image.shape,
                         "b_corr": induction_accuracy(r.bx, r.by, s2.bx, s2.by, 2), "runtime_s": float("nan")})
    return rows


def _mean_table(rows: list[dict]) -> list[str]:
    keys = ("phim", "phie", "bacc", "bslope", "eslope", "runtime_s")
    out = ["| method | noise | φm acc. | φe acc. | B acc. | B·t slope | φe slope | runtime (s) |",
           "|---|---|---|---|---|---|---|---|"]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["method"], r["noise"]), []).append(r)
    for (method, noise), rs in groups.items():
        vals = {k: np.array([r[k] for r in rs], float) for k in keys}
        cells = []
        for k in keys[:-1]:
            v = vals[k]
            cells.append(f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v.mean():.3f}")
        rt = vals["runtime_s"]
        cells.append("–" if np.isnan(rt).all() else f"{np.nanmean(rt):.1f}")
        out.append(f"| {method} | {noise:.0%} | " + " | ".join(cells) + " |")
    return out


def sampling_markdown(rows: list[dict]) -> list[str]:
    out = ["Sampling and dose (skyrmion.omf tilted 30°, SITIE −0.1 mm, 10 % noise per pixel, field twice the sample): "
           "the per-pixel noise definition makes a finer pixel a higher dose per nm²; image contrast σ/mean is "
           f"{rows[0]['contrast']:.2%} noise-free.", "",
           "| pixel (nm) | image (px) | dose equivalent (e/nm²) | B·t corr., default qc | best of qc × pre-filter grid |",
           "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['pixel_nm']:g} | {r['shape'][0]}×{r['shape'][1]} | {r['dose_e_per_nm2']:.0f} | {r['default']:.3f} | {r['best']:.3f} |")
    out.append("")
    return out


def markdown(quick: bool = False, device: str = "auto") -> str:
    import torch

    from . import ltem_strong, machine_description

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    seeds = (0,) if quick else (0, 1, 2)
    t0 = time.perf_counter()
    series = flipped_series_rows(seeds=seeds)
    lines = [
        "## LTEM through-focus series with a flipped specimen, and micromagnetic input",
        "",
        f"Machine: {machine_description()}. Command: `napari-phase bench{' --quick' if quick else ''}` "
        "(section `ltem_series`, src/napari_phase/bench/ltem_series.py).",
        "",
        "### Flipped 5-image series (target: φm and φe ≥ 0.95, B·t within 5 %)",
        "",
        "Skyrmion lattice + 6 contaminants, 128² px of 5 nm, defoci −0.4, −0.2, 0, 0.2, 0.4 mm; the flipped series "
        "mirrored left-right, rotated 3°, shifted (4, −6) px; Gaussian noise σ = fraction × mean per image. "
        f"Seeds {list(seeds)} (mean ± sd). Everything is compared on the region every aligned image covers "
        f"(about 119×118 px), minus {CROP_PX} px at the edges; the truth is cropped the same way.",
        "",
        *_mean_table(series),
        "",
        "Where φe's error comes from (`diagnosis_rows()`; the oracle row uses the simulation's true transform):",
        "",
        *_mean_table(diagnosis_rows(seeds=seeds)),
        "",
        f"Rotation found for the flipped series: error {np.nanmean([r['angle_err_deg'] for r in series]):.2f}° on average.",
        "",
        f"Sub-2-px drift in the unflipped series ({DRIFT_PX} px per image, under- to over-focus; `drift_rows()`), "
        f"10 % noise, seeds {list(seeds)}:",
        "",
        *drift_markdown(drift_rows(seeds=seeds)),
        *ltem_strong.markdown(quick).splitlines(),
        "",
    ]
    from .ltem_flip_register import markdown as flip_register_markdown  # issue 17 §2

    lines += flip_register_markdown(quick)
    if REAL.is_dir():
        mm = micromagnetic_rows(quick, device)
        lines += [
            "### Micromagnetic files (target: B·t correlation ≥ 0.9 at 10 % noise)",
            "",
            "Files from ../shared/real-files/micromagnetic (OOMMF: skyrmion 20×20×1 cells of 5 nm, skyrmion disk 20×20×2; "
            "mumax3: 128×32×1 cells of 3.9 nm, unit vectors, Ms = 8e5 A/m given). The skyrmions are Néel-type "
            "(no contrast at normal incidence) and imaged tilted 30° about x, at 2 nm pixels, in vacuum. B·t correlation = "
            "B accuracy (Pearson over stacked Bx·t, By·t, 2 px edge crop) against the B·t from the file's magnetisation.",
            "",
            "| file | method | noise | image (px) | B·t corr. | runtime (s) |",
            "|---|---|---|---|---|---|",
        ]
        for r in mm:
            rt = "–" if np.isnan(r["runtime_s"]) else f"{r['runtime_s']:.1f}"
            lines.append(f"| {r['file']} | {r['method']} | {r['noise']:.0%} | {r['shape'][0]}×{r['shape'][1]} | {r['b_corr']:.3f} | {rt} |")
        lines.append("")
        lines += ["SITIE with `qc_per_nm=\"auto\"` over the noise (`auto_rows()`):", "", *auto_markdown(auto_rows())]
        lines += sampling_markdown(sampling_rows())
        lines += film_markdown(film_rows(seeds=(0,) if quick else (0, 1), device=device))
    lines.append(f"Section time: {time.perf_counter() - t0:.0f} s.")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(markdown(quick="--quick" in sys.argv))
