"""Held-out evaluation of a CNN model for its card: xc against the true phase object, beside iCoM.

Scans of structures of ``specimens.structures("heldout")`` (never in training or validation) are
simulated with the project's simulator (physics.multislice.simulate_4dstem; 300 kV, 20 mrad,
0.2 Å step, 64 px detector at 1.25 mrad/px), at no noise and at 1e5 e/Å² (Poisson). The CNN
phase (object grid, pixel step/oversample) and iCoM's (scan grid) are each compared with the
true σV sampled at their own pixels (xc of physics.metrics after cropping 2 scan steps per edge).

    python -m napari_phase.stem.airpi.evaluate MODEL.pt [--scan 24] [--write-card]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ENERGY_KEV, SEMIANGLE_MRAD, STEP_A, DET_MRAD = 300.0, 20.0, 0.2, 1.25
HELDOUT = {
    "graphene-twisted-bilayer": dict(zone_axis=(0, 0, 1), thickness_a=3.35, mode="phase_object"),
    "LaAlO3": dict(zone_axis=(0, 0, 1), thickness_a=11.4, mode="phase_object"),
    "LaAlO3 (multislice, 2 nm)": dict(structure="LaAlO3", zone_axis=(0, 0, 1), thickness_a=20.0, mode="multislice"),
}


def truth_on_grid(phase: np.ndarray, phase_px_a: float, shape: tuple[int, int], pixel_a: float) -> np.ndarray:
    """The true phase (pixel (0, 0) at the first scan position) sampled on a grid of ``pixel_a`` (cubic)."""
    from scipy import ndimage

    yy, xx = np.indices(shape, dtype=np.float64) * (pixel_a / phase_px_a)
    return ndimage.map_coordinates(phase.astype(np.float64), [yy, xx], order=3, mode="nearest")


def simulate(name: str, scan: int = 24, dose: float | None = None, seed: int = 0):
    """A held-out scan (data, true phase, its pixel Å) from physics.multislice.simulate_4dstem."""
    import torch

    from ...physics import multislice, specimens

    torch.set_num_threads(1)
    spec = HELDOUT[name]
    structure = spec.get("structure", name)
    if structure not in specimens.structures("heldout"):
        raise ValueError(f"{structure} is not a held-out structure")
    window_a = multislice.wavelength_a(ENERGY_KEV) / (DET_MRAD * 1e-3)
    extent = (scan - 1) * STEP_A + window_a + 2.0
    atoms = specimens.supercell(structure, spec["zone_axis"], extent_a=(extent, extent), thickness_a=spec["thickness_a"])
    sim = multislice.simulate_4dstem(atoms, scan_step_a=STEP_A, scan_gpts=(scan, scan), energy_kev=ENERGY_KEV,
                                     semiangle_mrad=SEMIANGLE_MRAD, detector_mrad_per_px=DET_MRAD, detector_gpts=64,
                                     mode=spec["mode"], dose_e_per_a2=dose, seed=seed, device="cpu")
    return sim


def heldout_scores(model: str = "default", *, scan: int = 24, doses=(None, 1e5), names=None, oversample: int = 2,
                   device: str = "cpu") -> dict:
    """{structure: {dose: {"cnn": xc, "cnn_scan_grid": xc, "cnn_lowq_icom": xc, "icom": xc}}} plus throughput.

    "cnn" is the network alone (``low_frequency=None``: what the card's model is); "cnn_lowq_icom" the
    default pipeline, the low spatial frequencies taken from iCoM (stem.airpi.lowfreq)."""
    from ...physics.metrics import xc
    from .. import icom
    from .reconstruct import cnn

    out: dict = {}
    pats, secs = 0, 0.0
    crop = 2
    for name in names or list(HELDOUT):
        out[name] = {}
        for dose in doses:
            sim = simulate(name, scan, dose)
            kw = dict(energy_kev=ENERGY_KEV, scan_step_a=STEP_A, detector_mrad_per_px=DET_MRAD)
            t0 = time.perf_counter()
            res = cnn(sim.data, semiangle_mrad=SEMIANGLE_MRAD, oversample=oversample, model=model, device=device,
                      low_frequency=None, **kw)
            secs += time.perf_counter() - t0
            pats += scan * scan
            lowq = cnn(sim.data, semiangle_mrad=SEMIANGLE_MRAD, oversample=oversample, model=model, device=device,
                       low_frequency="icom", **kw)
            ic = icom(sim.data, **kw)
            t_cnn = truth_on_grid(sim.phase, sim.phase_pixel_size_a, res.phase.shape, res.pixel_size)
            t_ic = truth_on_grid(sim.phase, sim.phase_pixel_size_a, ic.phase.shape, ic.pixel_size)
            out[name]["inf" if dose is None else f"{dose:g}"] = {
                "cnn": round(xc(res.phase, t_cnn, crop=crop * oversample), 4),
                "cnn_scan_grid": round(xc(res.phase[::oversample, ::oversample], t_ic, crop=crop), 4),
                "cnn_lowq_icom": round(xc(lowq.phase, t_cnn, crop=crop * oversample), 4),
                "icom": round(xc(ic.phase, t_ic, crop=crop), 4),
            }
    out["_setup"] = {"energy_kev": ENERGY_KEV, "semiangle_mrad": SEMIANGLE_MRAD, "scan_step_a": STEP_A,
                     "detector_mrad_per_px": DET_MRAD, "scan": [scan, scan], "oversample": oversample,
                     "crop_scan_steps": crop, "simulator": "physics.multislice.simulate_4dstem",
                     "cnn_patterns_per_s": round(pats / max(secs, 1e-9), 1), "threads": 1}
    return out


def main(argv=None) -> int:
    import torch

    p = argparse.ArgumentParser(prog="python -m napari_phase.stem.airpi.evaluate")
    p.add_argument("model", help="model name or .pt path")
    p.add_argument("--scan", type=int, default=24)
    p.add_argument("--write-card", action="store_true", help="store the scores in the model's card (.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    scores = heldout_scores(args.model, scan=args.scan)
    print(json.dumps(scores, indent=1))
    if args.write_card:
        card_path = Path(args.model).with_suffix(".json")
        card = json.loads(card_path.read_text())
        card["heldout"] = scores
        card["heldout_command"] = f"python -m napari_phase.stem.airpi.evaluate {args.model} --scan {args.scan} --write-card"
        card_path.write_text(json.dumps(card, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
