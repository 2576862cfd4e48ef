"""Calibration of the per-pixel σ (issue 19) -> the "Uncertainty" section of docs/benchmarks.md.

    python -m napari_phase.bench.uncertainty [--quick] [--out docs/benchmarks_uncertainty.md]
        [--plot docs/images/uncertainty_reliability.png]      (also a section of `napari-phase bench`)

For every method with σ, on held-out simulations (seeds no σ was tuned on; no scale factor is
fitted for the linear methods, so every case is held out):

- **truth coverage**: fraction of pixels with |e − ē| ≤ σ and ≤ 2σ, e = estimate − truth (phase:
  ē = the mean; B·t: ē = the least-squares plane), 2 edge pixels cropped — the issue's target
  (0.60–0.76 and 0.90–0.98);
- **noise coverage**: the same against the method's own result on the noise-free input: what
  noise propagation can promise (the error's noise part);
- **where σ rises**: σ at the image edge (outer 4 px) and under contaminants over σ elsewhere;
- **cost**: time with ``uncertainty=True`` over time without, same data, same run (best of 3);
- **reliability**: fraction within kσ, k = 0.5 … 3, pooled over a method's cases, against the
  normal distribution's erf(k/√2).

LTEM (SITIE): textures × Δf × Gaussian noise on 128² windows of 5 nm (``ltem.simulate``), and one
case with 4 contaminant particles; flipped 3-image series (±0.2 mm, 96², 6 contaminants).
4D-STEM (iCoM): the held-out multislice scans of :mod:`.stem` (twisted graphene bilayer, LaAlO3
[001]), Poisson doses of 500, 5e3, 1e5 e/Å². Triplets (classical TIE, FlowTIE): the held-out
crystals of :mod:`napari_phase.flowtie.evaluate` (CeO2, LaAlO3; 3 and 20 nm), FlowTIE's σ scale
fitted on the "val" crystals only (scripts/fit_flowtie_sigma_scale.py).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

KS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
CROP = 2
EDGE_PX = 4


def _log(msg: str) -> None:
    print(f"[bench_uncertainty {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _best_time(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _ratio_edge(sigma: np.ndarray) -> float:
    inner = sigma[EDGE_PX:-EDGE_PX, EDGE_PX:-EDGE_PX]
    ring = np.ones(sigma.shape, bool)
    ring[EDGE_PX:-EDGE_PX, EDGE_PX:-EDGE_PX] = False
    return float(np.median(sigma[ring]) / np.median(inner))


def _row(method: str, case: str, est: dict, truth: dict, ref: dict, sigma: dict, extra: dict,
         noise_sigma: dict | None = None) -> dict:
    """Coverage of each array (phase, bx, by) against truth and against the noise-free result
    (the latter with ``noise_sigma`` where the method also adds a model-error term)."""
    from napari_phase.uncertainty import normalised_error

    row = {"method": method, "case": case, **extra, "z": {}}
    for key in sigma:
        remove = "mean" if key == "phase" else "plane"
        z_t = normalised_error(est[key], truth[key], sigma[key], remove=remove, crop=CROP)
        z_n = normalised_error(est[key], ref[key], (noise_sigma or sigma)[key], remove=remove, crop=CROP)
        row[key] = {"truth": [float((z_t <= k).mean()) for k in KS], "noise": [float((z_n <= k).mean()) for k in KS],
                    "edge_ratio": _ratio_edge(sigma[key])}
        row["z"][key] = z_t.ravel()
    return row


def bench_sitie(quick: bool) -> list[dict]:
    from napari_phase.ltem import sitie
    from napari_phase.ltem.simulate import simulate

    rows = []
    textures = ("skyrmions", "stripes") if quick else ("skyrmions", "stripes", "bubbles")
    cases = [(t, df, noise, 0) for t in textures for df in (-1e5, -1e6) for noise in ((0.3,) if quick else (0.1, 0.3, 1.0))]
    cases.append(("skyrmions", -1e6, 0.3, 4))
    for i, (tex, df, noise, n_cont) in enumerate(cases):
        s = simulate(tex, shape=(128, 128), defocus_nm=df, noise=noise, n_contaminants=n_cont, seed=11 + 3 * i)
        kw = dict(pixel_size_nm=s.pixel_size_nm, defocus_nm=df)
        r = sitie(s.image, uncertainty=True, **kw)
        ref = sitie(s.image_clean, **kw)
        sig = {"phase": r.arrays["phase_sigma"], "bx": r.arrays["bx_sigma"], "by": r.arrays["by_sigma"]}
        extra = {}
        if n_cont:
            extra["contaminant_ratio"] = float(np.median(sig["phase"][s.mask]) / np.median(sig["phase"][~s.mask]))
        case = f"{tex} Δf {df / 1e6:g} mm, noise {noise:.0%}" + (f", {n_cont} contaminants" if n_cont else "")
        rows.append(_row("SITIE", case, r.arrays, {"phase": s.phase_m, "bx": s.bx, "by": s.by},
                         {"phase": ref.phase, "bx": ref.bx, "by": ref.by}, sig, extra))
        _log(f"SITIE {case}: phase truth {rows[-1]['phase']['truth'][1]:.2f}/{rows[-1]['phase']['truth'][3]:.2f}")
    s = simulate("skyrmions", shape=(256, 256), defocus_nm=-1e6, noise=0.5, seed=11)
    t0 = _best_time(lambda: sitie(s.image, pixel_size_nm=s.pixel_size_nm, defocus_nm=-1e6))
    t1 = _best_time(lambda: sitie(s.image, pixel_size_nm=s.pixel_size_nm, defocus_nm=-1e6, uncertainty=True))
    rows.append({"method": "SITIE", "cost": {"case": "skyrmions 256², −1 mm, 50 %", "time_s": t0, "time_sigma_s": t1}})
    return rows


def bench_series(quick: bool) -> list[dict]:
    from napari_phase.ltem import tie
    from napari_phase.ltem.simulate_series import simulate_flipped_series

    rows = []
    textures = ("skyrmions",) if quick else ("skyrmions", "stripes", "bubbles")
    for i, tex in enumerate(textures):
        clean = simulate_flipped_series(tex, shape=(96, 96), defocus_nm=(-2e5, 0.0, 2e5), noise=0.0, flip_rotation_deg=0.0,
                                        flip_shift_px=(0.0, 0.0), seed=21 + i)
        kw = dict(pixel_size_nm=clean.pixel_size_nm, defocus_nm=clean.defocus_nm)
        ref = tie(clean.series, flipped=clean.flipped, **kw)
        mask = clean.amplitude < 0.9
        for level in ((0.3,) if quick else (0.1, 0.3)):
            rng = np.random.default_rng(31 + i)
            ser, fl = ((a + level * a.mean() * rng.standard_normal(a.shape)).astype(np.float32) for a in (clean.series, clean.flipped))
            r = tie(ser, flipped=fl, uncertainty=True, **kw)
            sig = {k: r.arrays[f"{k}_sigma"] for k in ("phase", "bx", "by")}
            extra = {"contaminant_ratio": float(np.median(sig["phase"][mask]) / np.median(sig["phase"][~mask]))} if mask.any() else {}
            case = f"flipped 3-image series ±0.2 mm, {tex}, 6 contaminants, noise {level:.0%}"
            rows.append(_row("TIE flipped", case, r.arrays, {"phase": clean.phase_m, "bx": clean.bx, "by": clean.by},
                             {k: ref.arrays[k] for k in ("phase", "bx", "by")}, sig, extra))
            _log(f"TIE {case}: phase truth {rows[-1]['phase']['truth'][1]:.2f}/{rows[-1]['phase']['truth'][3]:.2f}")
    t0 = _best_time(lambda: tie(ser, flipped=fl, **kw))
    t1 = _best_time(lambda: tie(ser, flipped=fl, uncertainty=True, **kw))
    rows.append({"method": "TIE flipped", "cost": {"case": "flipped 3-image series, 96²", "time_s": t0, "time_sigma_s": t1}})
    return rows


def bench_classical(quick: bool) -> list[dict]:
    from napari_phase.flowtie import evaluate as ev
    from napari_phase.flowtie import tie_classical

    bank = ev.heldout_bank(thicknesses_nm=(3.0, 20.0), names=("LaAlO3",) if quick else ("CeO2", "LaAlO3"), zone_axes=((0, 0, 1),))
    rows = []
    for j, s in enumerate(ev.cases(bank, doses=(float("inf"),), seed=3)):
        kw = dict(defocus_step_nm=s["dz_nm"], pixel_size_a=s["pixel_size_a"], energy_kev=s["energy_kev"])
        ref = tie_classical(s["tri"], **kw)
        for dose in (1e3, 1e4):
            per_px = dose * s["pixel_size_a"] ** 2
            tri = (np.random.default_rng(41 + j).poisson(np.clip(s["tri"], 0, None) * per_px) / per_px).astype(np.float32)
            r = tie_classical(tri, uncertainty=True, **kw)
            case = f"{s['structure']} {s['thickness_nm']:.0f} nm, {dose:g} e/Å²"
            rows.append(_row("classical TIE", case, r.arrays, {"phase": s["target"]}, {"phase": ref.phase},
                             {"phase": r.arrays["phase_sigma"]}, {}))
            _log(f"classical TIE {case}: truth {rows[-1]['phase']['truth'][1]:.2f}/{rows[-1]['phase']['truth'][3]:.2f}")
    t0 = _best_time(lambda: tie_classical(tri, **kw))
    t1 = _best_time(lambda: tie_classical(tri, uncertainty=True, **kw))
    rows.append({"method": "classical TIE", "cost": {"case": f"triplet {tri.shape[-1]}²", "time_s": t0, "time_sigma_s": t1}})
    return rows


def bench_flowtie(quick: bool) -> list[dict]:
    from napari_phase.flowtie import evaluate as ev
    from napari_phase.flowtie.solve import available, flowtie

    if not available():
        return []
    bank = ev.heldout_bank(thicknesses_nm=(3.0, 20.0), names=("LaAlO3",) if quick else ("CeO2", "LaAlO3"))
    rows = []
    for s in ev.cases(bank, doses=(1e4,), seed=3):
        kw = dict(defocus_step_nm=s["dz_nm"], pixel_size_a=s["pixel_size_a"], energy_kev=s["energy_kev"],
                  semiangle_mrad=s["alpha_mrad"], device="cpu")
        r = flowtie(s["tri"], uncertainty=True, **kw)
        case = f"{s['structure']} {tuple(s['zone_axis'])} {s['thickness_nm']:.0f} nm, 1e4 e/Å²"
        row = _row("FlowTIE", case, r.arrays, {"phase": s["target"]}, {"phase": s["target"]},
                   {"phase": r.arrays["phase_sigma"]}, {})
        row["phase"]["noise"] = [float("nan")] * len(KS)  # a network has no noise-free "own result" to compare with
        rows.append(row)
        _log(f"FlowTIE {case}: truth {rows[-1]['phase']['truth'][1]:.2f}/{rows[-1]['phase']['truth'][3]:.2f}")
    tri = s["tri"]
    t0 = _best_time(lambda: flowtie(tri, **kw), repeats=2)
    t1 = _best_time(lambda: flowtie(tri, uncertainty=True, **kw), repeats=2)
    rows.append({"method": "FlowTIE", "cost": {"case": f"triplet {tri.shape[-1]}²", "time_s": t0, "time_sigma_s": t1, "repeats": 2}})
    return rows


def bench_stem(quick: bool, methods=("iCoM", "SSB", "CNN")) -> list[dict]:
    """iCoM, SSB and the CNN with σ on the held-out 4D-STEM structures at three doses. The truth is
    sampled on each method's grid; "noise" compares with the method's own noise-free result (the
    CNN's σ is re-sampling spread, not propagation: its own noise-free result is shown too)."""
    import warnings

    from napari_phase import stem
    from napari_phase.bench._stem_cases import (DET_MRAD, ENERGY_KEV, SEMIANGLE_MRAD, STEP_A, STRUCTURES, simulate,
                                                truth_on_grid, with_dose)
    from napari_phase.stem.airpi.reconstruct import cnn

    scan = 32 if quick else 48
    base = dict(energy_kev=ENERGY_KEV, scan_step_a=STEP_A, detector_mrad_per_px=DET_MRAD)
    run = {"iCoM": lambda d, **k: stem.icom(d, **base, **k),
           "SSB": lambda d, **k: stem.ssb(d, semiangle_mrad=SEMIANGLE_MRAD, **base, **k),
           "CNN": lambda d, **k: cnn(d, semiangle_mrad=SEMIANGLE_MRAD, device="cpu", **base, **k)}
    rows = []
    for name in STRUCTURES:
        sim = simulate(name, scan, 1, seed=5)
        for method in methods:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                ref = run[method](sim.data)
                truth = truth_on_grid(sim.phase, sim.phase_pixel_size_a, ref.phase.shape, ref.pixel_size_a)
                for dose in (500.0, 5e3, 1e5):
                    data = with_dose(sim.data, dose, seed=7 + int(dose))
                    r = run[method](data, uncertainty=True)
                    case = f"{name}, {dose:g} e/Å²"
                    noise = r.arrays.get("phase_sigma_noise")
                    rows.append(_row(method, case, r.arrays, {"phase": truth}, {"phase": ref.phase},
                                     {"phase": r.arrays["phase_sigma"]}, {"sigma_mean": float(r.arrays["phase_sigma"].mean())},
                                     None if noise is None else {"phase": noise}))
                    if noise is not None:  # before the model-error term: the noise part against the truth
                        rows.append(_row(f"{method} (noise part)", case, r.arrays, {"phase": truth}, {"phase": ref.phase},
                                         {"phase": noise}, {}))
                    _log(f"{method} {case}: truth {rows[-1]['phase']['truth'][1]:.2f}/{rows[-1]['phase']['truth'][3]:.2f}")
                if name == "LaAlO3":
                    reps = 2 if method == "CNN" else 3
                    t0 = _best_time(lambda: run[method](data), repeats=reps)
                    t1 = _best_time(lambda: run[method](data, uncertainty=True), repeats=reps)
                    rows.append({"method": method, "cost": {"case": f"{name} {scan}² scan, 64² patterns", "time_s": t0,
                                                            "time_sigma_s": t1, "repeats": reps}})
    return rows


def bench_gd(quick: bool) -> list[dict]:
    """The gradient-descent baseline (default 300 steps) on the held-out LaAlO3 triplets at 1e4 e/Å²."""
    import torch

    from napari_phase.flowtie import evaluate as ev
    from napari_phase.flowtie.baselines import tie_gradient_descent

    torch.set_num_threads(2)
    bank = ev.heldout_bank(thicknesses_nm=(3.0,) if quick else (3.0, 20.0), names=("LaAlO3",), zone_axes=((0, 0, 1),))
    rows = []
    for j, s in enumerate(ev.cases(bank, doses=(float("inf"),), seed=3)):
        kw = dict(defocus_step_nm=s["dz_nm"], pixel_size_a=s["pixel_size_a"], energy_kev=s["energy_kev"],
                  semiangle_mrad=s["alpha_mrad"], device="cpu")
        ref = tie_gradient_descent(s["tri"], **kw)
        per_px = 1e4 * s["pixel_size_a"] ** 2
        tri = (np.random.default_rng(51 + j).poisson(np.clip(s["tri"], 0, None) * per_px) / per_px).astype(np.float32)
        t0 = time.perf_counter()
        plain = tie_gradient_descent(tri, **kw)
        t1 = time.perf_counter()
        r = tie_gradient_descent(tri, uncertainty=True, **kw)
        t2 = time.perf_counter()
        case = f"{s['structure']} {s['thickness_nm']:.0f} nm, 1e4 e/Å²"
        rows.append(_row("gradient descent", case, r.arrays, {"phase": s["target"]}, {"phase": ref.phase},
                         {"phase": r.arrays["phase_sigma"]}, {}))
        _log(f"GD {case}: truth {rows[-1]['phase']['truth'][1]:.2f}/{rows[-1]['phase']['truth'][3]:.2f}")
    rows.append({"method": "gradient descent", "cost": {"case": f"triplet {tri.shape[-1]}², 300 steps", "time_s": t1 - t0,
                                                       "time_sigma_s": t2 - t1, "repeats": 1}})
    return rows


SECTIONS = {"sitie": "bench_sitie", "series": "bench_series", "stem": "bench_stem", "classical": "bench_classical",
            "gd": "bench_gd", "flowtie": "bench_flowtie"}


def _f(x) -> str:
    return "–" if x != x else f"{x:.2f}"


def _band_mark(f1: float, f2: float) -> str:
    from napari_phase.uncertainty import within_bands

    return "yes" if within_bands(f1, f2) else "no"


def _table(rows: list[dict]) -> list[str]:
    lines = ["| method | case | array | truth ≤1σ | truth ≤2σ | in bands | noise ≤1σ | noise ≤2σ | σ edge / interior |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "case" not in r:
            continue
        for key in ("phase", "bx", "by"):
            if key not in r:
                continue
            t, n = r[key]["truth"], r[key]["noise"]
            lines.append(f"| {r['method']} | {r['case']} | {key} | {_f(t[1])} | {_f(t[3])} | {_band_mark(t[1], t[3])} | "
                         f"{_f(n[1])} | {_f(n[3])} | {_f(r[key]['edge_ratio'])} |")
    return lines


def _reliability(rows: list[dict]) -> dict[str, list[float]]:
    """Pooled fraction within kσ per method and array (truth)."""
    pooled: dict[str, list[np.ndarray]] = {}
    for r in rows:
        for key, z in r.get("z", {}).items():
            pooled.setdefault(f"{r['method']} {key}", []).append(z)
    return {label: [float((np.concatenate(zs) <= k).mean()) for k in KS] for label, zs in pooled.items()}


COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def plot(rel: dict[str, list[float]], path: str, size=(560, 440)) -> None:
    """Reliability plot as a plain PNG (Pillow; the project draws figures without matplotlib):
    fraction within k·sigma against k for each method and array, the normal curve dashed."""
    from PIL import Image, ImageDraw

    from napari_phase.uncertainty import nominal

    w, h = size
    x0, x1, y0, y1 = 60, w - 170, h - 50, 30  # plot box: k 0..3 -> x0..x1, fraction 0..1 -> y0..y1
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)

    def xy(k: float, f: float) -> tuple[float, float]:
        return x0 + (x1 - x0) * k / 3.0, y0 + (y1 - y0) * f

    d.rectangle([x0, y1, x1, y0], outline="black")
    for k in range(4):
        d.text((xy(k, 0)[0] - 3, y0 + 6), str(k), fill="black")
    for f in (0.0, 0.25, 0.5, 0.75, 1.0):
        d.text((x0 - 34, xy(0, f)[1] - 6), f"{f:.2f}", fill="black")
        d.line([xy(0, f), xy(3, f)], fill=(225, 225, 225))
    d.text(((x0 + x1) // 2 - 60, y0 + 24), "k (multiples of sigma)", fill="black")
    d.text((x0, 8), "fraction of pixels with |error| <= k sigma (held-out simulations)", fill="black")
    curve = [xy(k, nominal(k)) for k in np.linspace(0, 3, 61)]
    for i in range(0, len(curve) - 1, 2):
        d.line([curve[i], curve[i + 1]], fill="black", width=2)
    d.text((x1 + 10, y1), "- - normal (calibrated)", fill="black")
    for j, (label, fr) in enumerate(rel.items()):
        c = COLOURS[j % len(COLOURS)]
        pts = [xy(k, f) for k, f in zip(KS, fr)]
        d.line(pts, fill=c, width=2)
        for px_, py_ in pts:
            d.ellipse([px_ - 3, py_ - 3, px_ + 3, py_ + 3], fill=c)
        d.text((x1 + 10, y1 + 16 * (j + 1)), label, fill=c)
    img.save(path)


def markdown(quick: bool = False, device: str = "auto", plot_path: str | None = None, sections=None) -> str:
    from napari_phase.uncertainty import nominal

    rows = []
    for key in sections or SECTIONS:
        rows += globals()[SECTIONS[key]](quick)
    rel = _reliability(rows)
    if plot_path:
        plot(rel, plot_path)
    out = ["## Uncertainty: calibration of the per-pixel σ (issue 19)", "",
           f"`python -m napari_phase.bench.uncertainty{' --quick' if quick else ''}` (src/napari_phase/bench/uncertainty.py). "
           "Truth coverage: fraction of pixels with |estimate − truth| ≤ σ (≤ 2σ) after removing the mean (phase) or "
           f"the plane (B·t), {CROP} edge px cropped; target 0.60–0.76 (0.90–0.98). Noise coverage: the same against the "
           "method's own result on the noise-free input (the error's noise part, which is all that noise propagation "
           "models). σ edge / interior: median σ in the outer 4 px over the interior.", ""]
    out += _table(rows)
    out += ["", "In the bands (cases × arrays):"]
    from napari_phase.uncertainty import within_bands

    for method in dict.fromkeys(r["method"] for r in rows):
        cells = [r[k] for r in rows if r["method"] == method and "case" in r for k in ("phase", "bx", "by") if k in r]
        n_t = sum(within_bands(c["truth"][1], c["truth"][3]) for c in cells)
        n_n = sum(within_bands(c["noise"][1], c["noise"][3]) for c in cells)
        own = f", against its noise-free result {n_n} / {len(cells)}" if method not in ("FlowTIE", "CNN") else ""
        out.append(f"- {method}: against the truth {n_t} / {len(cells)}{own}.")
    out += ["", "Reliability (fraction within kσ against the truth, pooled over each method's cases):", "",
            "| k | " + " | ".join(rel) + " | normal |", "|---|" + "---|" * (len(rel) + 1)]
    for i, k in enumerate(KS):
        out.append(f"| {k:g} | " + " | ".join(_f(v[i]) for v in rel.values()) + f" | {_f(nominal(k))} |")
    if plot_path:
        out += ["", f"![σ reliability]({plot_path.split('docs/', 1)[-1]})"]
    out += [""]
    for r in rows:
        if "contaminant_ratio" in r:
            out.append(f"- {r['method']} {r['case']}: median σ under contaminants / elsewhere = {_f(r['contaminant_ratio'])}.")
        if "cost" in r:
            c = r["cost"]
            out.append(f"- Cost, {r['method']} ({c['case']}): {c['time_s'] * 1e3:.1f} ms without σ, "
                       f"{c['time_sigma_s'] * 1e3:.1f} ms with ({c['time_sigma_s'] / c['time_s']:.2f}×, best of {c.get('repeats', 3)}).")
    out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default="docs/benchmarks_uncertainty.md")
    p.add_argument("--plot", default="docs/images/uncertainty_reliability.png", help="reliability plot (PNG) to write")
    p.add_argument("--only", default=None, help=f"comma-separated sections of {', '.join(SECTIONS)} (default: all)")
    a = p.parse_args(argv)
    only = a.only.split(",") if a.only else None
    if only and not set(only) <= set(SECTIONS):
        p.error(f"--only takes {', '.join(SECTIONS)}")
    import torch

    torch.set_num_threads(2)
    text = markdown(a.quick, plot_path=a.plot, sections=only)
    with open(a.out, "w") as fh:
        fh.write(text)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
