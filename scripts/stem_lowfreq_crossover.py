"""Choose the CNN's low-frequency crossover on TRAINING-split structures (issue 6), never on the bench.

Scans of structures from ``physics.specimens.structures("train")`` (and "val" for a check) are
simulated like the bench's (multislice, 300 kV, 20 mrad, 0.2 Å step, 32² scan, 64² detector at
1.25 mrad/px, one phonon configuration) at doses 5e3, 1e5 e/Å² and noise-free. The plain CNN, iCoM
and SSB run once per case (cached in --cache); then every (source, cutoff) of the grid is applied
with stem/airpi/lowfreq.combine (milliseconds) and scored: xc against the true σV at the CNN's
pixels, 2 scan steps cropped per edge, as the bench does.

    PYTHONPATH=src .venv/bin/python scripts/stem_lowfreq_crossover.py [--split train] [--cache /tmp/lowfreq_cache]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ENERGY_KEV, SEMIANGLE_MRAD, STEP_A, DET_MRAD, DET_PX, CROP = 300.0, 20.0, 0.2, 1.25, 64, 2
#: (structure, zone axis, thickness Å): light 2-D layers and thin crystals, as the bench's two classes
CASES = {
    "train": [("graphene", (0, 0, 1), 3.35), ("hBN", (0, 0, 1), 3.35), ("MoS2", (0, 0, 1), 6.15),
              ("SrTiO3", (0, 0, 1), 20.0), ("GaAs", (1, 1, 0), 20.0), ("MgO", (0, 0, 1), 12.0)],
    "val": [("WS2", (0, 0, 1), 6.16), ("InP", (1, 1, 0), 20.0)],
}
DOSES = (5e3, 1e5, None)
CUTOFFS = (0.5, 0.75, 1.0, 1.2)
EPSILONS = (None, 0.1, 0.3, 1.0, 3.0)  # None: the crossover alone (no noise-adaptive weight)


def simulate(name, zone, thickness_a, scan, seed=0):
    import torch

    from napari_phase.physics import multislice, specimens

    torch.set_num_threads(1)
    if name in specimens.structures("heldout"):
        raise ValueError(f"{name} is held out: the crossover must not be chosen on it")
    window_a = multislice.wavelength_a(ENERGY_KEV) / (DET_MRAD * 1e-3)
    extent = (scan - 1) * STEP_A + window_a + 2.0
    atoms = specimens.supercell(name, zone, extent_a=(extent, extent), thickness_a=thickness_a, rotation_deg=None, seed=seed)
    return multislice.simulate_4dstem(atoms, scan_step_a=STEP_A, scan_gpts=(scan, scan), energy_kev=ENERGY_KEV,
                                      semiangle_mrad=SEMIANGLE_MRAD, detector_mrad_per_px=DET_MRAD,
                                      detector_gpts=DET_PX, seed=seed, device="cpu")


def run_case(name, zone, thickness_a, scan, cache: Path):
    """{dose: dict(cnn, amp, icom, ssb, truth_cnn, pixel_cnn, pixel_scan)} (cached as .npz)."""
    from napari_phase import stem
    from napari_phase.bench.stem import truth_on_grid, with_dose

    out = {}
    sim = None
    for dose in DOSES:
        f = cache / f"{name}_{''.join(map(str, zone))}_{thickness_a:g}_{scan}_{dose}.npz"
        kw = dict(energy_kev=ENERGY_KEV, scan_step_a=STEP_A, detector_mrad_per_px=DET_MRAD)
        if f.exists():
            out[dose] = dict(np.load(f))
            if "com_y" not in out[dose]:  # caches of the first version: add the CoM maps
                if sim is None:
                    sim = simulate(name, zone, thickness_a, scan)
                i = stem.icom(with_dose(sim.data, dose, seed=1), **kw)
                out[dose].update(com_y=i.arrays["com_y"], com_x=i.arrays["com_x"])
                np.savez(f, **out[dose])
            continue
        if sim is None:
            sim = simulate(name, zone, thickness_a, scan)
        data = with_dose(sim.data, dose, seed=1)
        c = stem.cnn(data, semiangle_mrad=SEMIANGLE_MRAD, oversample=2, device="cpu", threads=1, low_frequency=None, **kw)
        i = stem.icom(data, **kw)
        s = stem.ssb(data, semiangle_mrad=SEMIANGLE_MRAD, **kw)
        rec = dict(cnn=c.phase, amp=c.arrays["amplitude"], icom=i.phase, ssb=s.phase, com_y=i.arrays["com_y"],
                   com_x=i.arrays["com_x"],
                   truth_cnn=truth_on_grid(sim.phase, sim.phase_pixel_size_a, c.phase.shape, c.pixel_size),
                   pixel_cnn=c.pixel_size, pixel_scan=i.pixel_size)
        np.savez(f, **rec)
        out[dose] = rec
        print(f"  cached {f.name}", file=sys.stderr, flush=True)
    return out


def score(rec, source, cutoff, epsilon=None):
    """xc of the CNN with ``source``'s low frequencies (None: the plain CNN); ``epsilon`` None: no
    noise-adaptive weight (the crossover alone), else lowfreq.com_confidence with that ε."""
    from napari_phase.physics.metrics import xc
    from napari_phase.physics.optics import electron_wavelength_a
    from napari_phase.stem.airpi import lowfreq

    px = float(rec["pixel_cnn"])
    crop = int(round(CROP * STEP_A / px))
    if source is None:
        return xc(rec["cnn"], rec["truth_cnn"], crop)
    aol = SEMIANGLE_MRAD * 1e-3 / electron_wavelength_a(ENERGY_KEV)
    transfer = (lambda q: lowfreq.icom_transfer(q, energy_kev=ENERGY_KEV, semiangle_mrad=SEMIANGLE_MRAD)) \
        if source == "icom" else None
    conf = None if epsilon is None else lowfreq.com_confidence(rec["com_y"], rec["com_x"], float(rec["pixel_scan"]),
                                                               epsilon=epsilon)
    ph = lowfreq.combine(rec["cnn"], px, rec[source], float(rec["pixel_scan"]), cutoff_inv_a=cutoff * aol,
                         transfer=transfer, confidence=conf, known=rec["amp"] > 0)
    return xc(ph, rec["truth_cnn"], crop)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", default="train", choices=list(CASES))
    p.add_argument("--scan", type=int, default=32)
    p.add_argument("--cache", default="/tmp/lowfreq_cache")
    args = p.parse_args(argv)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, zone, t in CASES[args.split]:
        recs = run_case(name, zone, t, args.scan, cache)
        for dose, rec in recs.items():
            rows[(name, dose)] = rec
    configs = [(None, 0.0, None)] + [(s, c, e) for s in ("icom", "ssb") for c in CUTOFFS for e in EPSILONS]
    head = " | ".join("CNN" if s is None else f"{s} {c:g} ε{'–' if e is None else f'{e:g}'}" for s, c, e in configs)
    print(f"xc on {args.split}-split structures; columns: low-frequency source, cutoff (fraction of α/λ) and "
          "ε of the noise-adaptive weight (– = none)")
    print(f"| case | {head} |")
    print("|---|" + "---|" * len(configs))
    table = {}
    for (name, dose), rec in rows.items():
        vals = [score(rec, s, c, e) for s, c, e in configs]
        table[(name, dose)] = vals
        d = "∞" if dose is None else f"{dose:g}"
        print(f"| {name} {d} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    arr = np.array(list(table.values()))
    for label, sel in (("mean, all", slice(None)),):
        print(f"| {label} | " + " | ".join(f"{v:.3f}" for v in arr[sel].mean(0)) + " |")
    for dose in DOSES:
        m = np.array([v for (n, d), v in table.items() if d == dose])
        d = "∞" if dose is None else f"{dose:g}"
        print(f"| mean at {d} | " + " | ".join(f"{v:.3f}" for v in m.mean(0)) + " |")
    worst = (arr - arr[:, :1]).min(0)
    print("| worst change vs CNN | " + " | ".join(f"{v:+.3f}" for v in worst) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
