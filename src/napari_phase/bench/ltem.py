"""LTEM benchmark (issue 3, item 8): SIPRAD vs SITIE vs the pixel-wise solver on simulated images.

    napari-phase bench [--quick]                  (this section inside docs/benchmarks.md)
    python benchmarks/bench_ltem.py [--quick] [--out docs/benchmarks_ltem.md] [--device auto]
                                    [--only grid,boundary,contaminants,speed,busy,detector]
                                    [--textures stripes,skyrmions,bubbles] [--cells JSON] [--from-json A.json,B.json]

The grid can be split over processes (``--only grid --textures stripes`` in one, ``--textures
bubbles`` in another, each ``--out`` its own file) and the section assembled from their .json files
with ``--from-json`` (parts found there are not run again).

Writes a markdown section (and the raw numbers as JSON beside it). ``run(out_path, quick)`` does
the same from Python; ``markdown(quick, device)`` returns the section without writing it.

What is measured (all on images simulated by ``napari_phase.ltem.simulate``: 5 nm pixels, 200 kV,
Cs 1 mm, θc 0.01 mrad, Δ 100 nm, B0·t = 50 T·nm, Gaussian noise σ = fraction × mean intensity):

- **grid**: stripe domains, Bloch skyrmion lattice and random Bloch bubbles, 256² px, defocus
  {−0.25, −0.5, −1, −2, −4} mm × noise {0, 10, 50, 100} %, 2 noise/texture seeds (quick: fewer);
  phase and B accuracy (Pearson), SSIM of the phase, runtime per image.
- **contaminants**: skyrmions with dark particles (A ≈ 0.5, φe ≈ 1 rad): SIPRAD with uniform
  amplitude, the true mask, a threshold mask (the panel's tool, automatic threshold) and joint
  amplitude; pixel-wise uniform and mask; SITIE.
- **speed**: 256² and 512² (skyrmions, −1 mm, 50 %): runtime, steps, steps/s, and
  time-to-accuracy (wall time until the kept iterate is within 0.005 of its final phase accuracy),
  with 1 and 2 CPU threads (and the GPU when there is one).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


CROP_PX = 8
PIXEL_NM = 5.0
DEFOCI_MM = (-0.25, -0.5, -1.0, -2.0, -4.0)
NOISES = (0.0, 0.1, 0.5, 1.0)
TEXTURES = ("stripes", "skyrmions", "bubbles")
WITHIN = 0.005  # "reached its final accuracy": within this of the final phase accuracy
#: The grid's images are non-periodic windows of a larger simulated field (a real micrograph);
#: the "periodic" part repeats the headline cells on periodic tiles for comparison.
GRID_BOUNDARY = "window"
PARTS = ("grid", "boundary", "contaminants", "speed", "busy", "detector")
DETECTOR_SEEDS = (10, 11, 12, 13, 14)  # not the detector's training seeds (1000+)


def _log(msg: str) -> None:
    print(f"[bench_ltem {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _deplane(a: np.ndarray) -> np.ndarray:
    """``a`` minus its least-squares plane c0 + c1·y + c2·x."""
    a = np.asarray(a, dtype=np.float64)
    y, x = np.mgrid[: a.shape[0], : a.shape[1]]
    basis = np.stack([np.ones(a.size), y.ravel(), x.ravel()], 1)
    coef, *_ = np.linalg.lstsq(basis, a.ravel(), rcond=None)
    return a - (basis @ coef).reshape(a.shape)


def plane_free_accuracy(phase, truth, crop: int = CROP_PX) -> float:
    """Phase accuracy after removing the best-fit plane from both (cropped) maps: a uniform
    in-plane B·t over a window is a phase ramp, which only shifts a Fresnel image (by
    λΔf∇φ/2π, ~0.1 px here) and is not observable in a window; the B metric ignores it too
    (components mean-removed)."""
    from napari_phase.physics import pearson_accuracy

    sl = (slice(crop, -crop), slice(crop, -crop)) if crop else (slice(None), slice(None))
    return pearson_accuracy(_deplane(np.asarray(phase)[sl]), _deplane(np.asarray(truth)[sl]), 0)


def _scores(result, sample) -> dict:
    from napari_phase.physics import pearson_accuracy, ssim
    from napari_phase.physics.metrics import induction_accuracy

    return {
        "phase_acc": pearson_accuracy(result.phase, sample.phase_m, CROP_PX),
        "phase_acc_plane_free": plane_free_accuracy(result.phase, sample.phase_m),
        "b_acc": induction_accuracy(result.bx, result.by, sample.bx, sample.by, CROP_PX),
        "ssim": ssim(result.phase, sample.phase_m, CROP_PX),
    }


def _methods(device: str):
    from napari_phase.ltem.pixelwise import pixelwise
    from napari_phase.ltem.siprad import siprad
    from napari_phase.ltem.sitie import sitie

    return {
        "SITIE": lambda img, **kw: sitie(img, **kw),
        "pixel-wise": lambda img, **kw: pixelwise(img, device=device, **kw),
        "SIPRAD": lambda img, **kw: siprad(img, device=device, seed=0, **kw),
    }


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


# ----------------------------------------------------------------------------- grid


def bench_grid(quick: bool, device: str, textures=None, cells=None) -> list[dict]:
    """The grid; ``textures`` limits it to some textures, ``cells`` (a list of [texture,
    defocus_mm, noise, seed]) to some cells."""
    from napari_phase.ltem.simulate import simulate

    if quick:
        default, defoci, noises, seeds = ("stripes", "bubbles"), (-1.0, -4.0), (0.1, 0.5), (1,)
    else:
        default, defoci, noises, seeds = TEXTURES, DEFOCI_MM, NOISES, (1, 2)
    textures = default if textures is None else tuple(textures)
    if cells is None:
        cells = [(t, d, n, s) for t in textures for d in defoci for n in noises for s in seeds]
    methods = _methods(device)
    rows = []
    n_total = len(cells)
    k = 0
    for tex, df_mm, noise, seed in cells:
        df_mm, noise, seed = float(df_mm), float(noise), int(seed)
        k += 1
        sample = simulate(tex, (256, 256), pixel_size_nm=PIXEL_NM, defocus_nm=df_mm * 1e6, noise=noise, seed=seed,
                          boundary=GRID_BOUNDARY)
        common = dict(pixel_size_nm=PIXEL_NM, defocus_nm=df_mm * 1e6)
        row = {"texture": tex, "defocus_mm": df_mm, "noise": noise, "seed": seed}
        for name, fn in methods.items():
            res, dt = _timed(fn, sample.image, **common)
            sc = _scores(res, sample)
            row[name] = {**sc, "runtime_s": dt, "iterations": res.metadata.get("iterations_run"),
                         "stop": res.metadata.get("stop_reason"), "boundary": (res.metadata.get("parameters") or {}).get("boundary")}
        rows.append(row)
        _log(f"grid {k}/{n_total} {tex} {df_mm} mm {noise:.0%} seed {seed}: "
             + ", ".join(f"{m} {row[m]['phase_acc']:.3f}/{row[m]['b_acc']:.3f} ({row[m]['runtime_s']:.1f}s)" for m in methods))
    return rows


# ----------------------------------------------------------------------------- contaminants


def bench_contaminants(quick: bool, device: str) -> list[dict]:
    from napari_phase.ltem.mask import suggest_threshold, threshold_mask
    from napari_phase.ltem.pixelwise import pixelwise
    from napari_phase.ltem.siprad import siprad
    from napari_phase.ltem.simulate import simulate
    from napari_phase.ltem.sitie import sitie

    cases = [(0.1, 1)] if quick else [(0.1, 1), (0.5, 1), (0.1, 2), (0.5, 2)]
    rows = []
    for noise, seed in cases:
        s = simulate("skyrmions", (256, 256), pixel_size_nm=PIXEL_NM, defocus_nm=-1e6, noise=noise, seed=seed, n_contaminants=6)
        thr_mask = threshold_mask(s.image, suggest_threshold(s.image, below=True), below=True)
        common = dict(pixel_size_nm=PIXEL_NM, defocus_nm=-1e6)
        runs = {
            "SITIE": lambda: sitie(s.image, **common),
            "SIPRAD uniform": lambda: siprad(s.image, **common, device=device),
            "SIPRAD true mask": lambda: siprad(s.image, **common, amplitude=s.mask, device=device),
            "SIPRAD threshold mask": lambda: siprad(s.image, **common, amplitude=thr_mask, device=device),
            "SIPRAD joint": lambda: siprad(s.image, **common, amplitude="joint", device=device),
            "pixel-wise uniform": lambda: pixelwise(s.image, **common, device=device),
            "pixel-wise true mask": lambda: pixelwise(s.image, **common, amplitude=s.mask, device=device),
        }
        row = {"noise": noise, "seed": seed, "mask_fraction": float(s.mask.mean()),
               "threshold_mask_iou": float((thr_mask & s.mask).sum() / max(1, (thr_mask | s.mask).sum())),
               "true_amplitude": float(np.median(s.amplitude[s.mask])) if s.mask.any() else 1.0}
        for name, fn in runs.items():
            res, dt = _timed(fn)
            row[name] = {**_scores(res, s), "runtime_s": dt, "contaminant_amplitude": res.metadata.get("contaminant_amplitude")}
            if name == "SIPRAD joint" and res.amplitude is not None:
                jm = res.amplitude < 1
                row[name]["joint_mask_iou"] = float((jm & s.mask).sum() / max(1, (jm | s.mask).sum()))
        rows.append(row)
        _log(f"contaminants {noise:.0%} seed {seed}: " + ", ".join(f"{k} {row[k]['b_acc']:.3f}" for k in runs))
    return rows


# ----------------------------------------------------------------------------- speed


def _trace_siprad(image, sample, device, threads, preview_every=10, **kw):
    """Run SIPRAD with previews; return (result, trace [(t_s, step, acc)], scoring-free runtime)."""
    from napari_phase.jobs import run_job
    from napari_phase.ltem.siprad import siprad_job
    from napari_phase.physics import pearson_accuracy

    job = siprad_job(image, pixel_size_nm=PIXEL_NM, defocus_nm=-1e6, device=device, num_threads=threads,
                     preview_every=preview_every, **kw)
    trace, scoring = [], 0.0

    def score(p):
        nonlocal scoring
        if p.partial is not None:
            ts = time.perf_counter()
            acc = pearson_accuracy(p.partial.phase, sample.phase_m, CROP_PX)
            trace.append((ts - t0 - scoring, p.step, acc))  # wall time so far, scoring excluded
            scoring += time.perf_counter() - ts

    t0 = time.perf_counter()
    result = run_job(job, on_progress=score)
    total = time.perf_counter() - t0 - scoring
    return result, trace, total


def bench_speed(quick: bool, device: str) -> list[dict]:
    import torch

    from napari_phase.jobs import resolve_device
    from napari_phase.ltem.pixelwise import pixelwise
    from napari_phase.ltem.simulate import simulate
    from napari_phase.ltem.sitie import sitie
    from napari_phase.physics import pearson_accuracy

    dev = resolve_device(device)
    sizes = (256,) if quick else (256, 512)
    thread_opts = [None] if dev.type != "cpu" else ([1] if quick else [1, 2])
    rows = []
    for size in sizes:
        s = simulate("skyrmions", (size, size), pixel_size_nm=PIXEL_NM, defocus_nm=-1e6, noise=0.5, seed=1)
        for threads in thread_opts:
            res, trace, total = _trace_siprad(s.image, s, str(dev), threads)
            final = pearson_accuracy(res.phase, s.phase_m, CROP_PX)
            reach = next((t for t, _, a in trace if a >= final - WITHIN), total)
            fit_its = res.metadata["iterations_run"]
            pre_its = res.metadata["pretrain_iterations_run"]
            row = {"method": "SIPRAD", "size": size, "device": str(dev), "threads": res.metadata.get("threads"),
                   "runtime_s": total, "pretrain_steps": pre_its, "fit_steps": fit_its,
                   "steps_per_s": (pre_its + fit_its) / total, "time_to_accuracy_s": reach,
                   "phase_acc": final, "stop": res.metadata.get("stop_reason")}
            rows.append(row)
            _log(f"speed SIPRAD {size}² threads {threads}: {total:.1f} s, {pre_its}+{fit_its} steps, to-accuracy {reach:.1f} s, acc {final:.3f}")
            res, dt = _timed(pixelwise, s.image, pixel_size_nm=PIXEL_NM, defocus_nm=-1e6, device=str(dev), num_threads=threads)
            rows.append({"method": "pixel-wise", "size": size, "device": str(dev), "threads": res.metadata.get("threads"),
                         "runtime_s": dt, "fit_steps": res.metadata["iterations_run"],
                         "steps_per_s": res.metadata["iterations_run"] / dt, "time_to_accuracy_s": dt,
                         "phase_acc": pearson_accuracy(res.phase, s.phase_m, CROP_PX), "stop": ""})
            _log(f"speed pixel-wise {size}² threads {threads}: {dt:.1f} s")
        res, dt = _timed(sitie, s.image, pixel_size_nm=PIXEL_NM, defocus_nm=-1e6)
        rows.append({"method": "SITIE", "size": size, "device": "cpu", "threads": torch.get_num_threads(), "runtime_s": dt,
                     "time_to_accuracy_s": dt, "phase_acc": pearson_accuracy(res.phase, s.phase_m, CROP_PX)})
    return rows


# ----------------------------------------------------------------------------- periodic vs window


def bench_boundary(quick: bool, device: str) -> list[dict]:
    """The headline cell (−1 mm, 50 %) as a non-periodic window and as a periodic tile, solved with
    the default boundary ("auto") and with the earlier reflect padding."""
    from napari_phase.ltem.pixelwise import pixelwise
    from napari_phase.ltem.siprad import siprad
    from napari_phase.ltem.simulate import simulate

    textures = ("skyrmions",) if quick else TEXTURES
    rows = []
    for tex in textures:
        for sim_boundary in ("window", "periodic"):
            s = simulate(tex, (256, 256), pixel_size_nm=PIXEL_NM, defocus_nm=-1e6, noise=0.5, seed=1, boundary=sim_boundary)
            for solver_boundary in ("auto", "reflect"):
                row = {"texture": tex, "image": sim_boundary, "solver_boundary": solver_boundary}
                for name, fn in (("pixel-wise", pixelwise), ("SIPRAD", siprad)):
                    res, dt = _timed(fn, s.image, pixel_size_nm=PIXEL_NM, defocus_nm=-1e6, device=device, boundary=solver_boundary)
                    row[name] = {**_scores(res, s), "runtime_s": dt, "used": res.metadata["parameters"]["boundary"]}
                rows.append(row)
                _log(f"boundary {tex} {sim_boundary} solver {solver_boundary}: "
                     + ", ".join(f"{m} {row[m]['phase_acc']:.3f}/{row[m]['b_acc']:.3f} ({row[m]['used']})" for m in ("pixel-wise", "SIPRAD")))
    return rows


def _boundary_md(rows: list[dict]) -> list[str]:
    out = ["| texture | image | solver boundary (used) | pixel-wise φ / φ′ / B | SIPRAD φ / φ′ / B | time pw / SIPRAD (s) |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        cells = " | ".join(f"{r[m]['phase_acc']:.3f} / {r[m]['phase_acc_plane_free']:.3f} / {r[m]['b_acc']:.3f}" for m in ("pixel-wise", "SIPRAD"))
        out.append(f"| {r['texture']} | {r['image']} | {r['solver_boundary']} ({r['SIPRAD']['used']}) | {cells} | "
                   f"{r['pixel-wise']['runtime_s']:.1f} / {r['SIPRAD']['runtime_s']:.1f} |")
    out.append("")
    return out


# ----------------------------------------------------------------------------- busy CPU

_BUSY_CODE = "import time\nend = time.time() + {s}\nx = 0\nwhile time.time() < end:\n    x += 1\n"


def _busy(n: int, seconds: float):
    """Start ``n`` CPU-bound Python processes that end by themselves after ``seconds``."""
    import subprocess

    return [subprocess.Popen([sys.executable, "-c", _BUSY_CODE.format(s=float(seconds))]) for _ in range(n)]


def _stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except Exception:  # noqa: BLE001 - last resort
            p.kill()


def bench_busy(quick: bool, device: str) -> list[dict]:
    """SIPRAD on the bundled 256² skyrmion sample (uniform amplitude), a fixed amount of work
    (pre-training and fit steps fixed, stopping rules off), idle with 1 and 2 fixed threads and
    with the measured choice, then with one and two competing busy processes (started here, each
    ending by itself after at most 10 min, stopped as soon as the run ends)."""
    from napari_phase.io.sample_data import sample_path
    from napari_phase.jobs import resolve_device
    from napari_phase.ltem.siprad import siprad

    if resolve_device(device).type != "cpu":
        return []
    img = np.load(sample_path("ltem_skyrmions"))["image"]
    work = dict(iterations=60 if quick else 200, pretrain_iterations=20, pretrain_tolerance=0.0, discrepancy=0.0,
                patience=10**6, settle_tolerance=0.0)
    rows = []
    for busy in (0, 1, 2):
        procs = _busy(busy, 600.0) if busy else []
        try:
            time.sleep(1.0 if busy else 0.0)
            for threads in (1, 2, None):
                res, dt = _timed(siprad, img, pixel_size_nm=PIXEL_NM, defocus_nm=-1e6, device="cpu", num_threads=threads, **work)
                steps = res.metadata["iterations_run"] + res.metadata["pretrain_iterations_run"]
                tuning = res.metadata.get("thread_tuning") or {}
                rows.append({"busy_processes": busy, "threads": "measured" if threads is None else threads,
                             "threads_used": res.metadata.get("threads"), "runtime_s": dt, "steps": steps,
                             "probes": len(tuning.get("probes", []))})
                _log(f"busy {busy}: threads {threads} -> {res.metadata.get('threads')}, {dt:.1f} s for {steps} steps")
        finally:
            _stop(procs)
    return rows


def _busy_md(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(no CPU run: the benchmark device is a GPU)", ""]
    out = ["| busy processes | threads | threads used (last) | wall (s) | steps | probes |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['busy_processes']} | {r['threads']} | {r['threads_used']} | {r['runtime_s']:.1f} | {r['steps']} | {r['probes']} |")
    out.append("")
    idle = min(r["runtime_s"] for r in rows if r["busy_processes"] == 0 and r["threads"] != "measured")
    for b in (1, 2):
        m = [r for r in rows if r["busy_processes"] == b and r["threads"] == "measured"]
        if m:
            ratio = m[0]["runtime_s"] / idle
            out.append(f"- {b} busy process{'es' if b > 1 else ''}: measured-thread run {m[0]['runtime_s']:.1f} s = {ratio:.2f}× the fastest "
                       f"idle fixed-thread run ({idle:.1f} s); target ≤ 1.5×: {'met' if ratio <= 1.5 else 'MISSED'}.")
    out.append("")
    return out


# ----------------------------------------------------------------------------- markdown


def _f(x, nd=3):
    return "–" if x is None else f"{x:.{nd}f}"


def _mean(rows, *path):
    vals = []
    for r in rows:
        v = r
        for p in path:
            v = v[p]
        vals.append(v)
    return float(np.mean(vals))


def _grid_md(rows: list[dict]) -> list[str]:
    out = []
    methods = ("SITIE", "pixel-wise", "SIPRAD")
    textures = list(dict.fromkeys(r["texture"] for r in rows))
    n_seeds = len({r["seed"] for r in rows})
    for tex in textures:
        out += [f"#### {tex} (256² px, mean of {n_seeds} seed{'s' if n_seeds > 1 else ''})", "",
                "| Δf (mm) | noise | SITIE φ / B | pixel-wise φ / B | SIPRAD φ / B | SSIM SITIE / pw / SIPRAD | time pw / SIPRAD (s) | SIPRAD steps |",
                "|---|---|---|---|---|---|---|---|"]
        cells = {}
        for r in rows:
            if r["texture"] == tex:
                cells.setdefault((r["defocus_mm"], r["noise"]), []).append(r)
        for (df, nz), rs in sorted(cells.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
            acc = {m: (_mean(rs, m, "phase_acc"), _mean(rs, m, "b_acc")) for m in methods}
            best_b = max(acc[m][1] for m in methods)
            parts = []
            for m in methods:
                txt = f"{acc[m][0]:.3f} / {acc[m][1]:.3f}"
                parts.append(f"**{txt}**" if acc[m][1] == best_b else txt)
            ssim = " / ".join(f"{_mean(rs, m, 'ssim'):.2f}" for m in methods)
            times = f"{_mean(rs, 'pixel-wise', 'runtime_s'):.1f} / {_mean(rs, 'SIPRAD', 'runtime_s'):.1f}"
            steps = int(round(_mean(rs, "SIPRAD", "iterations")))
            out.append(f"| {df:g} | {nz:.0%} | {' | '.join(parts)} | {ssim} | {times} | {steps} |")
        out.append("")
    # headline at -1 mm, 50 %
    head = [r for r in rows if r["defocus_mm"] == -1.0 and r["noise"] == 0.5]
    if head:
        out += ["#### Targets at −1 mm, 50 % noise on non-periodic windows (SIPRAD and pixel-wise: phase ≥ 0.95, B ≥ 0.95)", "",
                "φ′ = phase accuracy with the best-fit plane removed from both maps (a uniform B·t over the window is not "
                "observable: it only shifts the image by ~0.1 px; the B metric removes it as well).", "",
                "| texture | SITIE φ / φ′ / B | pixel-wise φ / φ′ / B | SIPRAD φ / φ′ / B | SIPRAD φ ≥ 0.95 | SIPRAD φ′ ≥ 0.95 | SIPRAD B ≥ 0.95 |",
                "|---|---|---|---|---|---|---|"]
        for tex in textures:
            rs = [r for r in head if r["texture"] == tex]
            if not rs:
                continue
            a = {m: (_mean(rs, m, "phase_acc"), _mean(rs, m, "phase_acc_plane_free"), _mean(rs, m, "b_acc")) for m in methods}
            out.append(f"| {tex} | " + " | ".join(f"{a[m][0]:.3f} / {a[m][1]:.3f} / {a[m][2]:.3f}" for m in methods)
                       + "".join(f" | {'met' if a['SIPRAD'][k] >= 0.95 else 'MISSED'}" for k in range(3)) + " |")
        out.append("")
    # where does the network earn its cost?
    wins = {"SIPRAD": 0, "pixel-wise": 0, "SITIE": 0}
    cells = {}
    for r in rows:
        cells.setdefault((r["texture"], r["defocus_mm"], r["noise"]), []).append(r)
    for rs in cells.values():
        b = {m: _mean(rs, m, "b_acc") for m in methods}
        wins[max(b, key=b.get)] += 1
    out += [f"Best B accuracy per cell: SIPRAD {wins['SIPRAD']}, pixel-wise {wins['pixel-wise']}, SITIE {wins['SITIE']} "
            f"of {len(cells)} cells (bold above).", ""]
    return out


def bench_detector(quick: bool, device: str) -> list[dict]:
    """IoU of the "Suggest mask" detector (ltem.detect) and of the automatic threshold mask with the
    true particles: textures × noise {30, 50} % at −1 mm, 6 particles, seeds; the bundled sample."""
    from napari_phase.ltem.detect import iou, suggest_contaminant_mask
    from napari_phase.ltem.mask import suggest_threshold, threshold_mask
    from napari_phase.ltem.simulate import simulate

    seeds = DETECTOR_SEEDS[:2] if quick else DETECTOR_SEEDS
    rows = []

    def score(image, truth, defocus_nm=-1.0e6, **kw):
        t = time.perf_counter()
        det = suggest_contaminant_mask(image, pixel_size_nm=PIXEL_NM, defocus_nm=defocus_nm)
        dt = time.perf_counter() - t
        thr = threshold_mask(image, suggest_threshold(image), smooth_px=2.0, min_size_px=10)
        return {**kw, "iou_detector": iou(det, truth), "iou_threshold": iou(thr, truth), "seconds": dt}

    for texture in TEXTURES:
        for noise in (0.3, 0.5):
            for seed in seeds:
                s = simulate(texture, noise=noise, n_contaminants=6, seed=seed, defocus_nm=-1.0e6, pixel_size_nm=PIXEL_NM)
                rows.append(score(s.image, s.mask, texture=texture, noise=noise, seed=seed))
    for texture in TEXTURES:  # off the benchmark's conditions: a smaller image, a smaller defocus
        for seed in seeds:
            s = simulate(texture, shape=(128, 128), noise=0.3, n_contaminants=3, seed=seed, defocus_nm=-1.0e6, pixel_size_nm=PIXEL_NM)
            rows.append(score(s.image, s.mask, texture=f"{texture}, 128², 3 particles", noise=0.3, seed=seed))
    for texture in TEXTURES:
        for seed in seeds:
            s = simulate(texture, noise=0.3, n_contaminants=6, seed=seed, defocus_nm=-0.5e6, pixel_size_nm=PIXEL_NM)
            rows.append(score(s.image, s.mask, texture=f"{texture}, −0.5 mm", noise=0.3, seed=seed, defocus_nm=-0.5e6))
    import napari_phase

    d = np.load(Path(napari_phase.__file__).parent / "sample_data" / "ltem_skyrmions.npz")
    rows.append(score(d["image"], d["mask_true"], texture="bundled sample (skyrmions)", noise=0.3, seed=1))
    _log(f"detector: {len(rows)} images")
    return rows


def bench_joint(quick: bool, device: str) -> list[dict]:
    """SIPRAD's joint mode (detector-seeded amplitude, ltem/joint.py) against the detector alone and
    SIPRAD with the true mask: IoU, marked area, fitted level, phase/B accuracy; 256², −1 mm, 6 particles."""
    from napari_phase.ltem.detect import iou, suggest_contaminant_mask
    from napari_phase.ltem.simulate import simulate
    from napari_phase.ltem.siprad import siprad

    cases = [("skyrmions", 0.3), ("bubbles", 0.5)] if quick else [(t, n) for t in TEXTURES for n in (0.3, 0.5)]
    seed = DETECTOR_SEEDS[0]
    rows = []
    for texture, noise in cases:
        s = simulate(texture, noise=noise, n_contaminants=6, seed=seed, defocus_nm=-1.0e6, pixel_size_nm=PIXEL_NM)
        det = suggest_contaminant_mask(s.image, pixel_size_nm=PIXEL_NM, defocus_nm=-1.0e6)
        row = {"texture": texture, "noise": noise, "seed": seed, "iou_detector": iou(det, s.mask), "detector_pixels": int(det.sum()),
               "true_pixels": int(s.mask.sum()), "true_amplitude": float(np.median(s.amplitude[s.mask]))}
        for name, amp in (("joint", "joint"), ("true mask", s.mask)):
            res, dt = _timed(lambda: siprad(s.image, pixel_size_nm=PIXEL_NM, defocus_nm=-1.0e6, amplitude=amp, device=device))
            row[name] = {**_scores(res, s), "runtime_s": dt, "level": res.metadata.get("contaminant_amplitude"),
                         "iou": iou(res.amplitude < 1, s.mask), "marked_pixels": int((res.amplitude < 1).sum()),
                         "dropped": (res.metadata.get("joint") or {}).get("joint_particles_dropped")}
        rows.append(row)
        _log(f"joint {texture} {noise:.0%}: " + ", ".join(f"{k} {row[k]['phase_acc']:.3f}/{row[k]['b_acc']:.3f}" for k in ("joint", "true mask")))
    return rows


def _joint_md(rows: list[dict]) -> list[str]:
    out = ["| texture | noise | IoU detector | IoU joint (marked / true px, dropped) | level joint / true mask / truth | "
           "φ / B joint | φ / B true mask | s joint / true mask |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        j, t = r["joint"], r["true mask"]
        out.append(f"| {r['texture']} | {r['noise']:.0%} | {r['iou_detector']:.3f} | {j['iou']:.3f} ({j['marked_pixels']} / "
                   f"{r['true_pixels']}, {j['dropped']}) | {_f(j['level'])} / {_f(t['level'])} / {r['true_amplitude']:.3f} | "
                   f"{j['phase_acc']:.3f} / {j['b_acc']:.3f} | {t['phase_acc']:.3f} / {t['b_acc']:.3f} | "
                   f"{j['runtime_s']:.1f} / {t['runtime_s']:.1f} |")
    out += ["", "Target (issue 8): joint IoU ≥ the detector's; φ / B within ~0.01 of SIPRAD with the true mask.", ""]
    return out


def _detector_md(rows: list[dict]) -> list[str]:
    out = ["| texture | noise | seeds | IoU detector (mean, min–max) | IoU threshold (mean) | s/image |", "|---|---|---|---|---|---|"]
    keys = []
    for r in rows:
        if (r["texture"], r["noise"]) not in keys:
            keys.append((r["texture"], r["noise"]))
    for tex, nz in keys:
        sel = [r for r in rows if r["texture"] == tex and r["noise"] == nz]
        d = [r["iou_detector"] for r in sel]
        out.append(f"| {tex} | {nz:.0%} | {','.join(str(r['seed']) for r in sel)} | {np.mean(d):.3f} ({min(d):.2f}–{max(d):.2f}) | "
                   f"{np.mean([r['iou_threshold'] for r in sel]):.3f} | {np.mean([r['seconds'] for r in sel]):.2f} |")
    out += ["", "Target (issue 8): IoU ≥ 0.7 at 30 % and 50 % noise and on the bundled sample.", ""]
    return out


def _contaminant_md(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    names = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    out = ["| method | " + " | ".join(f"{r['noise']:.0%} s{r['seed']} φ / B" for r in rows) + " | mean B | runtime (s) |",
           "|---|" + "---|" * (len(rows) + 2)]
    for n in names:
        cells = " | ".join(f"{r[n]['phase_acc']:.3f} / {r[n]['b_acc']:.3f}" for r in rows)
        out.append(f"| {n} | {cells} | {_mean(rows, n, 'b_acc'):.3f} | {_mean(rows, n, 'runtime_s'):.1f} |")
    out.append("")
    lv = [r["SIPRAD true mask"].get("contaminant_amplitude") for r in rows]
    out.append(f"True particle amplitude {rows[0]['true_amplitude']:.3f} (A = exp(−7 nm/10 nm)); fitted by SIPRAD with the true mask: "
               + ", ".join(_f(v) for v in lv) + ". Particles cover " + ", ".join(f"{r['mask_fraction']:.1%}" for r in rows)
               + " of the image; the automatic threshold mask overlaps the true one with IoU "
               + ", ".join(f"{r['threshold_mask_iou']:.2f}" for r in rows) + "; the joint mode's two-level mask with IoU "
               + ", ".join(_f(r["SIPRAD joint"].get("joint_mask_iou"), 2) for r in rows) + ".")
    mask_b, uni_b = _mean(rows, "SIPRAD true mask", "b_acc"), _mean(rows, "SIPRAD uniform", "b_acc")
    out += ["", f"Target 'mask mode beats uniform on B accuracy': {'met' if mask_b > uni_b else 'MISSED'} "
                f"(mean B {mask_b:.3f} vs {uni_b:.3f}).", ""]
    return out


def _speed_md(rows: list[dict]) -> list[str]:
    out = ["| method | size | device | threads | runtime (s) | steps (pre-train + fit) | steps/s | time to final accuracy (s) | phase acc | stop |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        steps = f"{r.get('pretrain_steps', 0)} + {r['fit_steps']}" if "fit_steps" in r else "–"
        sps = _f(r.get("steps_per_s"), 1)
        out.append(f"| {r['method']} | {r['size']}² | {r['device']} | {r.get('threads') or '–'} | {r['runtime_s']:.2f} | {steps} | {sps} | "
                   f"{r['time_to_accuracy_s']:.2f} | {r['phase_acc']:.3f} | {r.get('stop') or ''} |")
    out.append("")
    for size, limit in ((256, 30.0), (512, 120.0)):
        sip = [r for r in rows if r["method"] == "SIPRAD" and r["size"] == size]
        if sip:
            best = min(r["time_to_accuracy_s"] for r in sip)
            out.append(f"- {size}²: SIPRAD reaches its final accuracy in {best:.1f} s (target ≤ {limit:.0f} s: {'met' if best <= limit else 'MISSED'}).")
    out.append("")
    return out


def markdown(quick: bool = False, device: str = "auto", only=PARTS, raw: dict | None = None, textures=None,
             done: dict | None = None, cells=None) -> str:
    """Run the selected parts and return the markdown section (``raw`` receives the numbers).
    ``textures``: the grid's textures (default all); ``done``: numbers of earlier runs (the .json
    files :func:`run` writes, merged by :func:`merge_raw`) — parts found there are not run again."""
    import torch

    done = done or {}

    def part(name, fn, *args):  # a part's rows from an earlier run, else run it now
        return done[name] if name in done else fn(*args)


    try:
        from napari_phase.bench import machine_description

        machine = machine_description()
    except Exception:  # noqa: BLE001 - the header is informative only
        import platform

        machine = platform.processor() or platform.machine()
    raw = {} if raw is None else raw
    t0 = time.perf_counter()
    lines = ["## Lorentz TEM: SIPRAD, pixel-wise, SITIE", "",
             f"`python -m napari_phase.bench.ltem{' --quick' if quick else ''}"
             f"{' --only ' + ','.join(only) if tuple(only) != PARTS else ''}` on {time.strftime('%Y-%m-%d')}; machine: {machine}; "
             f"torch threads at start {torch.get_num_threads()}.",
             "",
             f"Simulated with `ltem.simulate` (5 nm px, 200 kV, Cs 1 mm, θc 0.01 mrad, Δ 100 nm, B0·t = 50 T·nm; Gaussian noise "
             f"σ = fraction × mean intensity); the grid's images are non-periodic windows of a larger field "
             f"(`simulate(boundary='window')`: the image is formed on the whole field, then cropped). Metrics against the true magnetic phase φm: **φ** = phase accuracy (Pearson correlation of "
             f"mean-removed maps), **B** = the same over stacked (Bx·t, By·t) (physics.metrics.induction_accuracy), SSIM of the phase "
             f"(data range = truth's peak-to-peak); all after cropping {CROP_PX} px at each edge. Default parameters of every method "
             f"(SIPRAD: early-stopped, seed 0, network input from `init='auto'` (the pixel-wise TV solution on noisy images with contrast-to-noise 0.4–2, else SITIE); pixel-wise: L-BFGS, `prior='auto'` (TV with its weight chosen by the discrepancy principle; the Laplacian prior, w = 10, below contrast-to-noise 0.4 or on clean images); SITIE: Tikhonov qc = 2/FOV, mirror padding). "
             f"Runtimes are wall-clock on a machine shared with other jobs: treat them as upper bounds.",
             ""]
    if "grid" in only:
        rows = part("grid", bench_grid, quick, device, textures, cells)
        raw["grid"] = rows
        lines += ["### Accuracy grid (defocus × noise)", ""] + _grid_md(rows)
    if "contaminants" in only:
        rows = part("contaminants", bench_contaminants, quick, device)
        raw["contaminants"] = rows
        lines += ["### Contaminants (skyrmions, −1 mm, 6 particles of A ≈ 0.5, φe ≈ 1 rad)", ""] + _contaminant_md(rows)
    if "speed" in only:
        rows = part("speed", bench_speed, quick, device)
        raw["speed"] = rows
        lines += ["### Speed (skyrmions, −1 mm, 50 % noise)", "",
                  f"Time to final accuracy: wall time until SIPRAD's kept iterate (previewed every 10 steps, scoring time excluded) "
                  f"is within {WITHIN} of the final phase accuracy; for the one-shot solvers, their runtime.", ""] + _speed_md(rows)
    if "boundary" in only:
        rows = part("boundary", bench_boundary, quick, device)
        raw["boundary"] = rows
        lines += ["### Window vs periodic tile (−1 mm, 50 % noise, seed 1)", "",
                  "The same texture as a non-periodic window of a larger field and as one periodic tile; solvers with the "
                  "default boundary (`auto`: periodic if the opposite edges match, else a free border ring on an extended "
                  "canvas) and with the earlier reflect padding.", ""] + _boundary_md(rows)
    if "busy" in only:
        rows = part("busy", bench_busy, quick, device)
        raw["busy"] = rows
        lines += ["### A busy CPU (SIPRAD, bundled 256² skyrmion sample, fixed work)", "",
                  "Fixed thread counts vs the measured choice (`threads.ThreadTuner`), idle and with competing busy "
                  "processes started by the benchmark. Other users' jobs on a shared machine add to the load: compare "
                  "rows of one run only.", ""] + _busy_md(rows)
    if "detector" in only:
        rows = part("detector", bench_detector, quick, device)
        raw["detector"] = rows
        lines += ["### Contaminant detector (\"Suggest mask\")", "",
                  "IoU of `ltem.detect.suggest_contaminant_mask` (multi-scale features → two MLP stages, the second "
                  "seeing the first's probability map; trained on simulations with seeds 1000+ and 2000+, thresholds "
                  "picked on seeds 500–699) and of the automatic threshold mask with the true particle mask. "
                  "256² and −1 mm unless the row says otherwise.", ""] + _detector_md(rows)
        jrows = part("detector_joint", bench_joint, quick, device)
        raw["detector_joint"] = jrows
        lines += ["#### Joint mode (SIPRAD `amplitude=\"joint\"`: the detector's particles, levels fitted with the phase)", "",
                  f"Seed {DETECTOR_SEEDS[0]}, 256², −1 mm, 6 particles.", ""] + _joint_md(jrows)
    if done:
        lines.append(f"_Assembled from earlier partial runs (`--from-json`: {', '.join(sorted(done))}); "
                     f"{(time.perf_counter() - t0) / 60:.1f} min here._")
    else:
        lines.append(f"_Benchmark wall time: {(time.perf_counter() - t0) / 60:.1f} min._")
    lines.append("")
    return "\n".join(lines)


def merge_raw(paths) -> dict:
    """The numbers of several partial runs (their .json files) as one: lists of rows are joined
    (e.g. the grid run per texture in parallel processes), so each part appears once; a grid cell
    found in a later file replaces the same cell of an earlier one (cells re-run with ``--cells``)."""
    merged: dict = {}
    for path in paths:
        for name, rows in json.loads(Path(path).read_text()).items():
            merged.setdefault(name, []).extend(rows)
    if "grid" in merged:  # a cell run again in a later file replaces the earlier row, in place
        keyed: dict = {}
        for row in merged["grid"]:
            key = (row["texture"], float(row["defocus_mm"]), float(row["noise"]), int(row["seed"]))
            keyed[key] = row
        merged["grid"] = list(keyed.values())
    return merged


def run(out_path="docs/benchmarks_ltem.md", quick: bool = False, device: str = "auto", only=PARTS, textures=None,
        done: dict | None = None, cells=None) -> str:
    """Run the benchmark, write the markdown to ``out_path`` (and the numbers to .json beside it)."""
    raw: dict = {}
    text = markdown(quick, device, only, raw, textures, done, cells)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=float))
    _log(f"wrote {out}")
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/benchmarks_ltem.md")
    ap.add_argument("--quick", action="store_true", help="a short run (few cases, 256² only)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    ap.add_argument("--textures", default=None, help=f"the grid's textures, comma-separated (default: {', '.join(TEXTURES)})")
    ap.add_argument("--from-json", default=None,
                    help="comma-separated .json files of earlier partial runs (e.g. the grid split over processes): "
                         "their parts are merged and not run again")
    ap.add_argument("--cells", default=None, help='only these grid cells, JSON: [["stripes", -2, 0.1, 1], ...] '
                    "(texture, defocus mm, noise fraction, seed)")
    args = ap.parse_args(argv)
    only = tuple(p.strip() for p in args.only.split(",") if p.strip())
    cells = None
    if args.cells is not None:
        try:
            cells = [(str(t), float(d), float(n), int(sd)) for t, d, n, sd in json.loads(args.cells)]
        except (ValueError, TypeError) as err:
            print(f"error: --cells must be a JSON list of [texture, defocus_mm, noise, seed]: {err}", file=sys.stderr)
            return 2
        if any(c[0] not in TEXTURES for c in cells):
            print(f"error: --cells: unknown texture (textures: {', '.join(TEXTURES)})", file=sys.stderr)
            return 2
    bad = [p for p in only if p not in PARTS]
    textures = None if args.textures is None else tuple(t.strip() for t in args.textures.split(",") if t.strip())
    bad += [t for t in (textures or ()) if t not in TEXTURES]
    if bad:
        print(f"error: unknown part or texture: {', '.join(bad)} (parts: {', '.join(PARTS)}; textures: {', '.join(TEXTURES)})",
              file=sys.stderr)
        return 2
    done = merge_raw(args.from_json.split(",")) if args.from_json else None
    run(args.out, args.quick, args.device, only, textures, done, cells)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
