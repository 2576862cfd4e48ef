"""FlowTIE benchmark (issue 7, item 8): FlowTIE, FlowTIE + refine, classical TIE, gradient descent.

    napari-phase bench [--quick]          (this section inside docs/benchmarks.md)

Held-out crystals of :mod:`napari_phase.physics.specimens` (CeO2, LaAlO3: never in training),
multislice exit waves (:mod:`napari_phase.physics.multislice`) at thin to thick thicknesses, 300 kV,
a 20 mrad aperture, dz = 1 nm, noise-free and finite doses; triplets sampled at 0.1 Å on a
160 × 160 px field (:mod:`napari_phase.flowtie.evaluate`). Against σV (band-limited to the
aperture) and the phase of the aperture-filtered exit wave: xc and PSNR (edge band of 8 px
removed, means removed); the zero map's PSNR is the floor. Runtime of each method in the same run,
on the machine stated in the page header.
"""

from __future__ import annotations

import math
import statistics
import sys
import time

import numpy as np

METHODS = ("FlowTIE", "FlowTIE + refine", "classical TIE", "gradient descent", "zero")


def _log(msg: str) -> None:
    print(f"[bench_flowtie {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(quick: bool = False, device: str = "cpu", model="default") -> dict:
    """All cases × methods: {"rows": [...], "settings": {...}}."""
    import torch

    from ..flowtie import evaluate as ev
    from ..jobs import resolve_device

    torch.set_num_threads(1)
    dev = str(resolve_device(device))
    thick = (3.0, 20.0) if quick else (3.0, 10.0, 20.0, 30.0)
    zones = ((0, 0, 1),) if quick else ((0, 0, 1), (1, 1, 0))
    doses = (math.inf, 1e4) if quick else (math.inf, 1e4, 2e3)
    gd_steps, refine_steps = (150, 40) if quick else (300, 100)
    _log(f"building the held-out exit-wave bank: thickness {thick} nm, zones {zones}")
    bank = ev.heldout_bank(thicknesses_nm=thick, zone_axes=zones)
    rows = []
    for s in ev.cases(bank, doses=doses):
        _log(f"{s['structure']} {s['zone_axis']} {s['thickness_nm']:.1f} nm, dose {s['dose']:g}")
        res = ev.run_methods(s, METHODS, model=model, device=dev, gd_steps=gd_steps, refine_steps=refine_steps)
        for m, r in res.items():
            rows.append({"structure": s["structure"], "zone": "".join(str(v) for v in s["zone_axis"]),
                         "thickness_nm": s["thickness_nm"], "dose": s["dose"], "method": m, **r})
    settings = {"energy_kev": ev.ENERGY_KEV, "semiangle_mrad": ev.ALPHA_MRAD, "dz_nm": ev.DZ_NM, "pixel_a": ev.GRID_PX_A,
                "field_px": ev.PATCH_PX, "crop_px": ev.CROP_PX, "gd_steps": gd_steps, "refine_steps": refine_steps,
                "device": dev, "thicknesses_nm": thick, "zones": zones, "doses": doses}
    return {"rows": rows, "settings": settings}


def _fmt_dose(d) -> str:
    return "∞" if not math.isfinite(d) else f"{d:.0e}".replace("e+0", "e")


def summary(rows: list[dict]) -> dict:
    """Mean xc/PSNR vs σV per (thickness class, method); thin < 8 nm, thick ≥ 15 nm."""
    out = {}
    for cls, sel in (("thin", lambda r: r["thickness_nm"] < 8), ("thick", lambda r: r["thickness_nm"] >= 15)):
        for m in METHODS:
            rs = [r for r in rows if sel(r) and r["method"] == m]
            if rs:
                out[(cls, m)] = {k: float(np.mean([r[k] for r in rs])) for k in ("xc_sv", "psnr_sv", "xc_ew", "psnr_ew")}
                out[(cls, m)]["runtime_s"] = statistics.median(r["runtime_s"] for r in rs)
                out[(cls, m)]["n"] = len(rs)
    return out


def markdown(quick: bool = False, device: str = "auto", model="default") -> str:
    from . import machine_description

    t0 = time.perf_counter()
    data = run(quick=quick, device=device, model=model)
    rows, st = data["rows"], data["settings"]
    lines = [
        "## FlowTIE (defocus triplets)",
        "",
        f"Held-out crystals (CeO2, LaAlO3; never in training), multislice exit waves, {st['energy_kev']:g} kV, "
        f"{st['semiangle_mrad']:g} mrad aperture, dz = ±{st['dz_nm']:g} nm, triplets at {st['pixel_a']:g} Å/px on "
        f"{st['field_px']}² px; thicknesses {', '.join(f'{t:g}' for t in st['thicknesses_nm'])} nm; doses "
        f"{', '.join(_fmt_dose(d) for d in st['doses'])} e/Å². Truth: σV band-limited to the aperture (and, in brackets "
        f"where shown, the phase of the aperture-filtered exit wave). xc and PSNR after removing an {st['crop_px']} px edge band "
        f"and the means. Gradient descent: {st['gd_steps']} Adam steps; refine: {st['refine_steps']} steps. "
        f"Device `{st['device']}`, torch 1 thread. Machine: {machine_description()}.",
        "",
        "### Means by thickness class (thin < 8 nm, thick ≥ 15 nm)",
        "",
        "| class | method | xc vs σV | PSNR vs σV (dB) | xc vs exit-wave phase | PSNR vs exit-wave phase (dB) | median runtime (s) | cases |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (cls, m), v in summary(rows).items():
        xc_sv = "–" if m == "zero" else f"{v['xc_sv']:.3f}"
        xc_ew = "–" if m == "zero" else f"{v['xc_ew']:.3f}"
        lines.append(f"| {cls} | {m} | {xc_sv} | {v['psnr_sv']:.1f} | {xc_ew} | {v['psnr_ew']:.1f} | {v['runtime_s']:.2f} | {v['n']} |")
    lines += ["", "### Every case (xc / PSNR dB vs σV)", "",
              "| structure | zone | t (nm) | dose (e/Å²) | " + " | ".join(METHODS) + " |",
              "|---|---|---|---|" + "---|" * len(METHODS)]
    keys = sorted({(r["structure"], r["zone"], r["thickness_nm"], r["dose"]) for r in rows}, key=lambda k: (k[2], k[0], k[1], -k[3] if math.isfinite(k[3]) else -1e30))
    for k in keys:
        cells = []
        for m in METHODS:
            r = next(r for r in rows if (r["structure"], r["zone"], r["thickness_nm"], r["dose"]) == k and r["method"] == m)
            cells.append(f"{r['psnr_sv']:.1f} dB" if m == "zero" else f"{r['xc_sv']:.2f} / {r['psnr_sv']:.1f}")
        lines.append(f"| {k[0]} | [{k[1]}] | {k[2]:.1f} | {_fmt_dose(k[3])} | " + " | ".join(cells) + " |")
    lines += ["", f"Section time {time.perf_counter() - t0:.0f} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m napari_phase.bench.flowtie [--quick]
    print(markdown(quick="--quick" in sys.argv, device="cpu"))
