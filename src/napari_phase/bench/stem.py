"""4D-STEM benchmark (issue 6, item 10): CNN vs iCoM vs SSB on held-out simulated scans.

    napari-phase bench [--quick]          (this section inside docs/benchmarks.md)
    python -m napari_phase.bench.stem [--quick] [--out docs/benchmarks_stem.md]

What is measured (``physics.multislice.simulate_4dstem``, multislice, 300 kV, 20 mrad, 0.2 Å step,
64² detector at 1.25 mrad/px, structures of ``physics.specimens.split("heldout")`` that no model
was trained on: a twisted graphene bilayer and a thin LaAlO3 [001] oxide):

- **accuracy**: xc (physics.metrics.xc: normalised cross-correlation of mean-removed maps, after
  cropping 2 scan steps at each edge) of each method's phase against the true phase object σV,
  sampled at the method's pixels (bilinear from the simulation grid), at doses 500, 5e3, 1e5 e/Å²
  and no noise (Poisson: counts ~ Poisson(I·D·step²), as the simulator's dose option);
- **resolution**: the highest spatial frequency where the Fourier ring correlation of the
  reconstruction with the truth (3-ring average) is ≥ 0.5, in 1/Å and as a fraction of 2α/λ (the
  aperture's band limit for iCoM/SSB);
- **speed / memory** on this CPU: patterns per second (stitching included for the CNN), peak
  traced memory (tracemalloc: numpy allocations) and a streaming row on a memory-mapped scan
  several times larger than one block.

CNN rows (the default, with its low spatial frequencies from iCoM: stem/airpi/lowfreq.py; and the
network alone) appear when a trained model is shipped (``models.list_models()``); py4DSTEM DPC and
ptychography rows when the optional ``[compare]`` extra is installed (imported here only).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from ._stem_cases import (CROP, DET_MRAD, DET_PX, DOSES, ENERGY_KEV, SEMIANGLE_MRAD, STEP_A,  # noqa: F401
                          STRUCTURES, simulate, truth_on_grid, with_dose)


def _log(msg: str) -> None:
    print(f"[bench_stem {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def frc_cutoff(a: np.ndarray, b: np.ndarray, pixel_a: float, threshold: float = 0.5) -> float:
    """Highest spatial frequency (1/Å) where the Fourier ring correlation of a and b (one-ring-wide
    rings, averaged over 3 neighbouring rings) is still ≥ ``threshold`` (0 if it never is)."""
    a = (a - a.mean()) * np.hanning(a.shape[0])[:, None] * np.hanning(a.shape[1])[None, :]
    b = (b - b.mean()) * np.hanning(b.shape[0])[:, None] * np.hanning(b.shape[1])[None, :]
    fa, fb = np.fft.fft2(a), np.fft.fft2(b)
    qy = np.fft.fftfreq(a.shape[0], pixel_a)[:, None]
    qx = np.fft.fftfreq(a.shape[1], pixel_a)[None, :]
    q = np.hypot(qy, qx)
    dq = 1.0 / (max(a.shape) * pixel_a)
    ring = np.floor(q / dq).astype(int)
    nyq = int(min(a.shape) // 2)
    frc = []
    for r in range(1, nyq):
        m = ring == r
        num = np.real((fa[m] * np.conj(fb[m])).sum())
        den = math.sqrt(float((np.abs(fa[m]) ** 2).sum() * (np.abs(fb[m]) ** 2).sum())) or 1.0
        frc.append(num / den)
    frc = np.convolve(np.asarray(frc), np.ones(3) / 3, mode="same")
    above = np.flatnonzero(frc >= threshold)
    return float((above[-1] + 1.5) * dq) if above.size else 0.0


def _cnn_available() -> bool:
    try:
        from napari_phase.models import list_models

        return any(n.startswith("airpi") for n in list_models())
    except Exception:  # noqa: BLE001
        return False


def _methods(device: str, *, energy_kev: float = ENERGY_KEV, scan_step_a: float = STEP_A,
             detector_mrad_per_px: float = DET_MRAD, semiangle_mrad: float = SEMIANGLE_MRAD,
             compare: bool = True) -> dict:
    """{label: method(data) -> StemResult} at the given calibration (the bench's by default);
    ``compare`` adds py4DSTEM's rows when the optional extra is installed."""
    from napari_phase import stem

    kw = dict(energy_kev=energy_kev, scan_step_a=scan_step_a, detector_mrad_per_px=detector_mrad_per_px)
    out = {
        "iCoM": lambda d: stem.icom(d, **kw),
        "SSB": lambda d: stem.ssb(d, semiangle_mrad=semiangle_mrad, **kw),
    }
    if _cnn_available():
        # the default (low frequencies from iCoM, stem/airpi/lowfreq.py) and the network alone
        out["CNN + iCoM low-q (default)"] = lambda d: stem.cnn(d, semiangle_mrad=semiangle_mrad, oversample=2,
                                                               device=device, low_frequency="icom", **kw)
        out["CNN (network only)"] = lambda d: stem.cnn(d, semiangle_mrad=semiangle_mrad, oversample=2, device=device,
                                                       low_frequency=None, **kw)
    if not compare:
        return out
    try:  # the optional [compare] extra; never imported by the package itself
        import py4DSTEM  # noqa: F401

        out.update(_py4dstem_methods())
    except Exception:  # noqa: BLE001
        pass
    return out


PY4DSTEM_PTYCHO_ITER = 20


def _py4dstem_methods() -> dict:
    """py4DSTEM 0.14 on the same data (only with the ``[compare]`` extra; never imported by the core).

    DPC (iterative CoM integration), SSB and WDD (``DirectPtychography``, one process) and
    single-slice ptychography (20 iterations of the default full-batch gradient descent, and 20
    of mini-batch gradient descent with 64 patterns per batch). The scan rotation is forced to
    0° without transpose, as for our iCoM/SSB/CNN rows (the simulation has none). py4DSTEM's
    axes are (Rx, Ry, Qx, Qy); our (scan_y, scan_x, ky, kx) maps onto them one to one, so its
    "x" is our y and no transpose is needed. ``metadata["origin_a"]`` = (y, x) of pixel (0, 0)
    relative to the first scan position (ptychography crops its object at the floor of the
    first probe position in pixels).
    """
    import py4DSTEM

    from napari_phase.result import PhaseResult

    energy_ev = ENERGY_KEV * 1e3
    com = dict(plot_center_of_mass=False, plot_rotation=False, force_com_rotation=0.0, force_com_transpose=False)

    def datacube(d):
        dc = py4DSTEM.DataCube(data=np.asarray(d, dtype=np.float32))
        dc.calibration.set_R_pixel_size(STEP_A)
        dc.calibration.set_R_pixel_units("A")
        dc.calibration.set_Q_pixel_size(DET_MRAD)
        dc.calibration.set_Q_pixel_units("mrad")
        return dc

    def result(phase, pixel_a, label, origin_a=(0.0, 0.0)):
        return PhaseResult({"phase": np.asarray(phase, np.float32)}, float(pixel_a), "Å",
                           metadata={"method": label, "py4DSTEM": py4DSTEM.__version__, "origin_a": tuple(float(v) for v in origin_a)})

    def dpc(d):
        p = py4DSTEM.process.phase.DPC(datacube=datacube(d), energy=energy_ev, verbose=False)
        p = p.preprocess(**com).reconstruct(progress_bar=False)
        return result(p.object_phase, STEP_A, "py4DSTEM DPC")

    def direct(cls, **kw):
        def run(d):
            p = getattr(py4DSTEM.process.phase, cls)(datacube=datacube(d), energy=energy_ev,
                                                     semiangle_cutoff=SEMIANGLE_MRAD, verbose=False)
            p = p.preprocess(plot_overlap_trotters=False, **com).reconstruct(num_jobs=1, progress_bar=False, **kw)
            return result(np.angle(np.asarray(p.object)), STEP_A, f"py4DSTEM {cls}")
        return run

    def ptycho(batch):
        def run(d):
            p = py4DSTEM.process.phase.SingleslicePtychography(datacube=datacube(d), energy=energy_ev,
                                                               semiangle_cutoff=SEMIANGLE_MRAD, device="cpu", verbose=False)
            p = p.preprocess(plot_probe_overlaps=False, **com)
            p = p.reconstruct(num_iter=PY4DSTEM_PTYCHO_ITER, max_batch_size=batch, seed_random=0 if batch else None,
                              progress_bar=False)
            px = np.asarray(p.sampling, dtype=np.float64)
            first = np.asarray(p._positions_px, dtype=np.float64).min(axis=0)  # the first probe position, px
            origin = (np.floor(first) - first) * px  # pixel (0, 0) of object_cropped vs the first position, Å
            return result(np.angle(np.asarray(p.object_cropped)), px[0], "py4DSTEM ptychography", origin)
        return run

    it = PY4DSTEM_PTYCHO_ITER
    return {"py4DSTEM DPC": dpc, "py4DSTEM SSB": direct("SSB"), "py4DSTEM WDD": direct("WDD", relative_wiener_epsilon=0.01),
            f"py4DSTEM ptycho ({it} it. GD)": ptycho(None), f"py4DSTEM ptycho ({it} it. GD, batch 64)": ptycho(64)}


def score(res, phase_true: np.ndarray, phase_px_a: float, scan_step_a: float, two_alpha_inv_a: float) -> dict:
    """A 4D-STEM result against the true phase object (rad, ``phase_px_a`` Å pixels, origin at the
    first scan position): xc (mean-removed, ``CROP`` scan steps cut at each edge), the FRC 0.5
    cutoff (1/Å and as a fraction of 2α/λ = ``two_alpha_inv_a``) and std(phase)/std(truth)."""
    from napari_phase.physics.metrics import xc

    px = res.pixel_size_a
    truth = truth_on_grid(phase_true, phase_px_a, res.phase.shape, px, res.metadata.get("origin_a", (0.0, 0.0)))
    crop = int(round(CROP * scan_step_a / px))
    q = frc_cutoff(res.phase, truth, px)
    return {"xc": xc(res.phase, truth, crop), "frc_inv_a": q, "frc_vs_2alpha": q / two_alpha_inv_a,
            "phase_std_ratio": float(np.std(res.phase) / np.std(truth))}


def bench_accuracy(quick: bool, device: str, *, structures=None, doses=None, scan: int | None = None,
                   only=None) -> list[dict]:
    """Rows of xc/FRC/time per (structure, dose, method); ``only``: method labels to keep (substring match)."""
    scan = (32 if quick else 64) if scan is None else int(scan)
    phonons = 1 if quick else 4
    methods = _methods(device)
    if only:
        methods = {k: v for k, v in methods.items() if any(o.lower() in k.lower() for o in only)}
    rows = []
    from napari_phase.physics.optics import electron_wavelength_a

    two_alpha = 2 * SEMIANGLE_MRAD * 1e-3 / electron_wavelength_a(ENERGY_KEV)  # 1/Å
    for name in (STRUCTURES if structures is None else structures):
        t0 = time.perf_counter()
        sim = simulate(name, scan, phonons)
        _log(f"simulated {name} {scan}² scan in {time.perf_counter() - t0:.1f} s")
        for dose in (DOSES if doses is None else doses):
            data = with_dose(sim.data, dose, seed=1)
            for label, fn in methods.items():
                t1 = time.perf_counter()
                try:
                    res = fn(data)
                except Exception as exc:  # noqa: BLE001 - a failing method is a row, not a crash
                    rows.append({"structure": name, "dose": dose, "method": label, "error": str(exc)[:120]})
                    continue
                dt = time.perf_counter() - t1
                scores = score(res, sim.phase, sim.phase_pixel_size_a, STEP_A, two_alpha)
                rows.append({"structure": name, "dose": dose, "method": label, **scores, "time_s": dt,
                             "patterns_per_s": scan * scan / dt if dt > 0 else float("inf")})
                _log(f"{name} dose {dose} {label}: xc {scores['xc']:.3f}, FRC {scores['frc_inv_a']:.2f} 1/Å, {dt:.1f} s")
    return rows


def bench_memory(quick: bool) -> list[dict]:
    """iCoM and SSB streaming a memory-mapped scan several times larger than one block."""
    from napari_phase import stem
    from napari_phase.stem import _data

    scan = 96 if quick else 128
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scan.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(scan, scan, DET_PX, DET_PX))
        rng = np.random.default_rng(0)
        yy, xx = np.indices((DET_PX, DET_PX))
        disc = ((yy - 32) ** 2 + (xx - 32) ** 2 < 16**2).astype(np.float32) * 5
        for r in range(scan):
            mm[r] = rng.poisson(disc, size=(scan, DET_PX, DET_PX))
        mm.flush()
        del mm
        data = np.load(path, mmap_mode="r")
        size_mb = data.nbytes / 2**20
        old = _data.BLOCK_BYTES
        _data.BLOCK_BYTES = 16 * 2**20  # one block = 16 MB of float32 patterns
        try:
            for label, fn in (("iCoM", lambda: stem.icom(data, energy_kev=ENERGY_KEV, scan_step_a=STEP_A,
                                                          detector_mrad_per_px=DET_MRAD)),
                              ("SSB (accumulate)", lambda: stem.ssb(data, energy_kev=ENERGY_KEV, semiangle_mrad=SEMIANGLE_MRAD,
                                                                    scan_step_a=STEP_A, detector_mrad_per_px=DET_MRAD,
                                                                    block_rows=4, mode="accumulate")),
                              ("SSB (fft)", lambda: stem.ssb(data, energy_kev=ENERGY_KEV, semiangle_mrad=SEMIANGLE_MRAD,
                                                             scan_step_a=STEP_A, detector_mrad_per_px=DET_MRAD, mode="fft"))):
                tracemalloc.start()
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                rows.append({"method": label, "scan": scan, "data_mb": size_mb, "peak_mb": peak / 2**20, "time_s": dt,
                             "patterns_per_s": scan * scan / dt})
                _log(f"memory {label}: {size_mb:.0f} MB memmap, peak {peak / 2**20:.0f} MB, {dt:.1f} s")
        finally:
            _data.BLOCK_BYTES = old
    return rows


def _fmt(v, nd=3):
    return "–" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def markdown(quick: bool = False, device: str = "auto", raw: dict | None = None, *, structures=None, doses=None,
             scan: int | None = None, only=None, memory: bool = True, speed: bool = True,
             descan: bool | None = None) -> str:
    """The section; ``descan`` (default: the full run only) appends bench/stem_descan.py's table
    (centre offset, descan, windows that are not whole cells; issue 16 §1)."""
    import torch

    from napari_phase.bench import machine_description

    raw = {} if raw is None else raw
    t0 = time.perf_counter()
    rows = bench_accuracy(quick, device, structures=structures, doses=doses, scan=scan, only=only)
    mem = bench_memory(quick) if memory else []
    raw.update(accuracy=rows, memory=mem)
    scan = (32 if quick else 64) if scan is None else int(scan)
    structures_text = ", ".join(f"{k} [{''.join(str(i) for i in v['zone_axis'])}] {v['thickness_a']:g} Å"
                                for k, v in STRUCTURES.items() if structures is None or k in structures)
    lines = [
        "## 4D-STEM: CNN, iCoM, SSB", "",
        f"`napari-phase bench{' --quick' if quick else ''}` (section `stem`) on {time.strftime('%Y-%m-%d')}; machine: "
        f"{machine_description()}; torch threads {torch.get_num_threads()}.", "",
        f"Held-out structures (`physics.specimens.split('heldout')`, never in training): "
        f"{structures_text}. "
        f"Multislice (`physics.multislice.simulate_4dstem`, Kirkland potentials, {1 if quick else 4} frozen-phonon "
        f"configuration(s)), {ENERGY_KEV:g} kV, α = {SEMIANGLE_MRAD:g} mrad, {STEP_A:g} Å step, {scan}×{scan} scan, "
        f"{DET_PX}² detector at {DET_MRAD:g} mrad/px; Poisson counts at the dose (∞ = noise-free). "
        f"**xc** against the true phase σV sampled at each method's pixels (bilinear), {CROP} scan steps cropped at each edge; "
        "**FRC** = highest frequency where the Fourier ring correlation with the truth (3-ring average) is ≥ 0.5 "
        "(1/Å; and / (2α/λ) = 2.03 1/Å; the scan's Nyquist is 2.5 1/Å); "
        "**std ratio** = std(phase)/std(truth) (1 = right magnitude; iCoM is blurred by the probe so < 1 is expected); "
        "time and patterns/s on this CPU, one run each (shared machine: upper bounds).", "",
    ]
    if not _cnn_available():
        lines += ["No trained CNN model is shipped in this installation yet: CNN rows are missing.", ""]
    try:
        import py4DSTEM
    except Exception:  # noqa: BLE001
        lines += ["py4DSTEM (the optional `[compare]` extra) is not installed here: no DPC/ptychography rows.", ""]
    else:
        lines += [f"py4DSTEM {py4DSTEM.__version__} rows (the `[compare]` extra) on the same arrays in the same run: "
                  "DPC (its iterative CoM integration), SSB and WDD (`DirectPtychography`, `num_jobs=1`, WDD "
                  "`relative_wiener_epsilon=0.01`), single-slice ptychography "
                  f"{PY4DSTEM_PTYCHO_ITER} iterations of gradient descent, full batch (its default) and batches of 64; "
                  "scan rotation forced to 0° (as ours), everything else py4DSTEM's defaults. Ptychography's pixel is "
                  "λ/(64·1.25 mrad) = 0.246 Å and its grid origin is offset from the first scan position by the "
                  "sub-pixel part of the first probe position, which the truth sampling follows. "
                  "Times include py4DSTEM's preprocessing.", ""]
    lines += ["| structure | dose (e/Å²) | method | xc | FRC (1/Å) | FRC / 2α | std ratio | time (s) | patterns/s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        dose = "∞" if r["dose"] is None else f"{r['dose']:g}"
        if "error" in r:
            lines.append(f"| {r['structure']} | {dose} | {r['method']} | failed: {r['error']} | | | | | |")
            continue
        lines.append(f"| {r['structure']} | {dose} | {r['method']} | {r['xc']:.3f} | {r['frc_inv_a']:.2f} | "
                     f"{r['frc_vs_2alpha']:.2f} | {r['phase_std_ratio']:.2f} | {r['time_s']:.2f} | {r['patterns_per_s']:.0f} |")
    if speed and _cnn_available():  # the network against this CPU's matmul (bench/cnn_speed.py)
        from napari_phase.bench import cnn_speed

        speed_result = cnn_speed.run(scan=48 if quick else 64, repeats=2 if quick else 3)
        raw.update(cnn_speed=speed_result)
        lines += ["", cnn_speed.markdown(speed_result).rstrip()]
    if mem:
        lines += ["", "### Streaming a memory-mapped scan (iCoM, SSB)", "",
                  "uint16 patterns in a memory-mapped .npy read in blocks of 16 MB (float32); peak = tracemalloc peak of "
                  "numpy allocations during the call. SSB *accumulate* holds the sparse trotter weights (∝ scan area) and one "
                  "block; SSB *fft* keeps the bright-field pixels of every pattern (float32, then their complex64 FFT) and is the default "
                  "(`mode='auto'`) while that stays under 512 MB.", "",
                  "| method | scan | data (MB) | peak traced (MB) | time (s) | patterns/s |", "|---|---|---|---|---|---|"]
        for r in mem:
            lines.append(f"| {r['method']} | {r['scan']}² × {DET_PX}² | {r['data_mb']:.0f} | {r['peak_mb']:.0f} | "
                         f"{r['time_s']:.1f} | {r['patterns_per_s']:.0f} |")
    if descan if descan is not None else not quick:
        from napari_phase.bench import stem_descan

        names = ("icom", "ssb", "cnn") if _cnn_available() else ("icom", "ssb")
        desc_rows = stem_descan.run(names, log=_log)
        raw["descan"] = desc_rows
        lines += ["", stem_descan.markdown(desc_rows)]
    lines += ["", f"Section run time {time.perf_counter() - t0:.0f} s.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="write the section to this markdown file (default: print it)")
    p.add_argument("--structures", default=None, help=f"comma-separated subset of {','.join(STRUCTURES)}")
    p.add_argument("--doses", default=None, help="comma-separated doses in e/Å² ('inf' = noise-free)")
    p.add_argument("--scan", type=int, default=None, help="scan positions per side (default 32 quick, 64 full)")
    p.add_argument("--only", default=None, help="comma-separated method labels to run (substring match, e.g. CNN,iCoM,py4DSTEM)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory-mapped streaming table")
    p.add_argument("--no-speed", action="store_true", help="skip the CNN-against-matmul speed table (bench/cnn_speed.py)")
    p.add_argument("--descan", action=argparse.BooleanOptionalAction, default=None,
                   help="the descan / window table (bench/stem_descan.py; default: full run only)")
    args = p.parse_args(argv)
    structures = None if args.structures is None else [s.strip() for s in args.structures.split(",") if s.strip()]
    for s in structures or ():
        if s not in STRUCTURES:
            p.error(f"unknown structure {s!r}; choose from {', '.join(STRUCTURES)}")
    doses = None if args.doses is None else [None if v.strip().lower() in ("inf", "none", "∞") else float(v)
                                             for v in args.doses.split(",")]
    only = None if args.only is None else [v.strip() for v in args.only.split(",") if v.strip()]
    text = markdown(args.quick, args.device, structures=structures, doses=doses, scan=args.scan, only=only,
                    memory=not args.no_memory, speed=not args.no_speed, descan=args.descan)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
