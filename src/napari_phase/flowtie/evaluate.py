"""Held-out evaluation shared by the model card and the benchmark.

Cases: held-out crystals of :mod:`napari_phase.physics.specimens` (never in training) at thin and
thick thicknesses, 300 kV, a 20 mrad aperture, dz = 1 nm, noise-free and a finite dose; the triplet
sampled at 0.1 Å (finer than the network grid, so ``flowtie`` resamples as with real data).
Truths: σV band-limited to the aperture, and the phase of the aperture-filtered exit wave.
Metrics (physics.metrics, edge band of ``CROP_PX`` removed, means removed): xc and PSNR.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..physics.metrics import psnr, xc
from .data import ExitWaveBank

CROP_PX = 8
GRID_PX_A = 0.1
PATCH_PX = 160
ENERGY_KEV = 300.0
ALPHA_MRAD = 20.0
DZ_NM = 1.0


def heldout_bank(thicknesses_nm=(3.0, 20.0), names=("CeO2", "LaAlO3"), zone_axes=((0, 0, 1), (1, 1, 0)), seed=7) -> ExitWaveBank:
    bank = ExitWaveBank("heldout", names=list(names), runs=1, voltages_kev=(ENERGY_KEV,), fixed_thickness_nm=thicknesses_nm,
                        zone_axes=[tuple(z) for z in zone_axes], seed=seed)
    for _ in bank.build():
        pass
    return bank


def cases(bank: ExitWaveBank, doses=(math.inf, 1e4), seed: int = 0):
    """Triplets (3, P, P) with truths for every wave of the bank and dose."""
    rng = np.random.default_rng(seed)
    out = []
    for i, w in enumerate(bank.waves):
        for dose in doses:
            s = bank.sample(rng, PATCH_PX, wave_index=i, alpha_mrad=ALPHA_MRAD, dz_nm=DZ_NM, dose=dose, augment=False,
                            grid_px_a=GRID_PX_A)[0]
            out.append(s)
    return out


def score(est, s) -> dict:
    t, e = s["target"], s["exit_wave_phase"]
    return {"xc_sv": xc(est, t, CROP_PX), "psnr_sv": psnr(est, t, CROP_PX), "xc_ew": xc(est, e, CROP_PX),
            "psnr_ew": psnr(est, e, CROP_PX)}


def run_methods(s, methods, *, model="default", device="cpu", gd_steps=200, refine_steps=50,
                estimates: dict | None = None) -> dict:
    """{method: metrics + runtime_s} for one case; each method's phase (rad) also goes into
    ``estimates`` when a dict is given."""
    from .baselines import tie_classical, tie_gradient_descent
    from .solve import flowtie

    kw = dict(defocus_step_nm=s["dz_nm"], pixel_size_a=s["pixel_size_a"], energy_kev=s["energy_kev"])
    res = {}
    for m in methods:
        t0 = time.perf_counter()
        if m == "zero":
            est = np.zeros_like(s["target"])
        elif m == "classical TIE":
            est = tie_classical(s["tri"], **kw).phase
        elif m == "gradient descent":
            est = tie_gradient_descent(s["tri"], semiangle_mrad=s["alpha_mrad"], steps=gd_steps, device=device, **kw).phase
        elif m == "FlowTIE":
            est = flowtie(s["tri"], semiangle_mrad=s["alpha_mrad"], model=model, device=device, **kw).phase
        elif m == "FlowTIE + refine":
            est = flowtie(s["tri"], semiangle_mrad=s["alpha_mrad"], model=model, device=device, refine_steps=refine_steps, **kw).phase
        else:
            raise ValueError(m)
        res[m] = {**score(est, s), "runtime_s": time.perf_counter() - t0}
        if estimates is not None:
            estimates[m] = est
    return res


def heldout_table(model="default", *, device="cpu", quick: bool = True, methods=None, bank=None) -> list[dict]:
    """Rows of (structure, zone, thickness, dose, method, xc/PSNR vs σV and exit-wave phase, runtime)."""
    bank = bank or heldout_bank()
    methods = methods or (["zero", "classical TIE", "FlowTIE"] if quick else
                          ["zero", "classical TIE", "gradient descent", "FlowTIE", "FlowTIE + refine"])
    rows = []
    for s in cases(bank):
        for m, r in run_methods(s, methods, model=model, device=device).items():
            rows.append({"structure": s["structure"], "zone_axis": list(s["zone_axis"]), "thickness_nm": round(s["thickness_nm"], 2),
                         "dose_e_per_a2": s["dose"] if math.isfinite(s["dose"]) else "noise-free", "method": m,
                         **{k: round(float(v), 4) for k, v in r.items()}})
    return rows
