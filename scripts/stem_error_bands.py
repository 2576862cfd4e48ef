"""Where the 4D-STEM methods' phase error lives: error power by spatial-frequency band (issue 6).

For each held-out bench case (bench/stem.py: multislice, 300 kV, 20 mrad, 0.2 Å step, 32² scan,
64² detector at 1.25 mrad/px) the phase of each method (CNN, iCoM, SSB; and the CNN with the
low-frequency correction of stem/airpi/lowfreq.py) is compared with the true σV sampled at the
method's own pixels. After cropping 2 scan steps per edge and removing the means, both maps get
the same Hann window; with M, T their spectra,

    error(band) = Σ_band |M − T|² / Σ_band |T|²          (0 = exact, 1 = as large as the signal)
    transfer(band) = Re Σ_band M T* / Σ_band |T|²        (1 = right magnitude, < 1 = shrunk)

over rings of |q| in units of α/λ (1.016 1/Å here; the BF disc's band limit is 2α/λ).

    PYTHONPATH=. .venv/bin/python scripts/stem_error_bands.py [--scan 32] [--doses 1e5,inf] [--no-lowfreq]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

BANDS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # |q| in units of α/λ


def band_table(phase: np.ndarray, truth: np.ndarray, pixel_a: float, crop: int, alpha_over_lambda: float):
    """(error, transfer) per band of BANDS (see module doc)."""
    m = phase[crop:phase.shape[0] - crop, crop:phase.shape[1] - crop].astype(np.float64)
    t = truth[crop:truth.shape[0] - crop, crop:truth.shape[1] - crop].astype(np.float64)
    win = np.hanning(m.shape[0])[:, None] * np.hanning(m.shape[1])[None, :]
    fm = np.fft.fft2((m - m.mean()) * win)
    ft = np.fft.fft2((t - t.mean()) * win)
    q = np.hypot(np.fft.fftfreq(m.shape[0], pixel_a)[:, None], np.fft.fftfreq(m.shape[1], pixel_a)[None, :])
    q = q / alpha_over_lambda
    err, tr = [], []
    for lo, hi in zip(BANDS[:-1], BANDS[1:]):
        sel = (q >= lo) & (q < hi) & (q > 0)
        p = float((np.abs(ft[sel]) ** 2).sum())
        if not sel.any() or p == 0:
            err.append(float("nan"))
            tr.append(float("nan"))
            continue
        err.append(float((np.abs(fm[sel] - ft[sel]) ** 2).sum()) / p)
        tr.append(float(np.real((fm[sel] * np.conj(ft[sel])).sum())) / p)
    return err, tr


def main(argv=None) -> int:
    import torch

    torch.set_num_threads(1)
    from napari_phase import stem
    from napari_phase.bench import stem as bs
    from napari_phase.physics.metrics import xc
    from napari_phase.physics.optics import electron_wavelength_a

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scan", type=int, default=32)
    p.add_argument("--doses", default="1e5,inf")
    p.add_argument("--structures", default=",".join(bs.STRUCTURES))
    p.add_argument("--no-lowfreq", action="store_true", help="skip the CNN + low-frequency rows")
    args = p.parse_args(argv)
    doses = [None if d.strip() in ("inf", "∞") else float(d) for d in args.doses.split(",")]
    aol = bs.SEMIANGLE_MRAD * 1e-3 / electron_wavelength_a(bs.ENERGY_KEV)
    kw = dict(energy_kev=bs.ENERGY_KEV, scan_step_a=bs.STEP_A, detector_mrad_per_px=bs.DET_MRAD)
    methods = {
        "iCoM": lambda d: stem.icom(d, **kw),
        "SSB": lambda d: stem.ssb(d, semiangle_mrad=bs.SEMIANGLE_MRAD, **kw),
        "CNN": lambda d: stem.cnn(d, semiangle_mrad=bs.SEMIANGLE_MRAD, oversample=2, device="cpu", threads=1,
                                  low_frequency=None, **kw),
    }
    if not args.no_lowfreq:
        methods["CNN + iCoM low-q"] = lambda d: stem.cnn(d, semiangle_mrad=bs.SEMIANGLE_MRAD, oversample=2, device="cpu",
                                                         threads=1, low_frequency="icom", **kw)
    head = " | ".join(f"{lo:g}–{hi:g}" for lo, hi in zip(BANDS[:-1], BANDS[1:]))
    print(f"bands: |q| in units of α/λ = {aol:.3f} 1/Å; cells: error power / truth power (transfer)")
    print(f"| case | method | xc | {head} |")
    print("|---|---|---|" + "---|" * (len(BANDS) - 1))
    for name in args.structures.split(","):
        sim = bs.simulate(name, args.scan, 1)
        for dose in doses:
            data = bs.with_dose(sim.data, dose, seed=1)
            for label, fn in methods.items():
                res = fn(data)
                px = res.pixel_size_a
                truth = bs.truth_on_grid(sim.phase, sim.phase_pixel_size_a, res.phase.shape, px)
                crop = int(round(bs.CROP * bs.STEP_A / px))
                err, tr = band_table(res.phase, truth, px, crop, aol)
                cells = " | ".join("–" if np.isnan(e) else f"{e:.2f} ({t:.2f})" for e, t in zip(err, tr))
                d = "∞" if dose is None else f"{dose:g}"
                print(f"| {name} {d} | {label} | {xc(res.phase, truth, crop):.3f} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
