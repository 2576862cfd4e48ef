"""Multislice simulator benchmark: throughput of the training paths and of 4D-STEM simulation.

    napari-phase bench                    (this section inside docs/benchmarks.md)
    python -m napari_phase.bench.multislice [--quick] [--device auto] [--threads 1]

- **phase-object training patterns**: a batch of 64 projected potentials from the
  :class:`~napari_phase.physics.specimens.PotentialBank` (random crystal, zone axis, rotation,
  thickness), transmission, probe at a random position, diffraction pattern — per second, with
  the 64² and 128² windows.
- **multislice training exit waves**: plane-wave multislice of a bank crystal (GaAs [001],
  10 nm), 64² and 128², exit waves per second.
- **4D-STEM**: :func:`~napari_phase.physics.multislice.simulate_4dstem` of SrTiO3 [001] (2 nm,
  300 kV, 20 mrad, 1 mrad/px), 64² and 128² detectors (windows 96² and 192²), phase-object and
  multislice (2 Å slices): patterns per second, slicing of the specimen included.
"""

from __future__ import annotations

import argparse
import time


def _rate(fn, n_items: int, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return n_items * repeats / (time.perf_counter() - t0)


def measure(quick: bool = False, device: str = "auto", threads: int | None = 1) -> dict:
    import torch

    from ..jobs import resolve_device
    from ..physics import multislice as ms
    from ..physics import specimens as spc

    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(int(threads))
    reps = 1 if quick else 3
    out: dict = {"device": str(dev), "threads": torch.get_num_threads()}
    kv, alpha = 300.0, 20.0
    lam = ms.wavelength_a(kv)
    bank = spc.PotentialBank(["GaAs", "SrTiO3", "Si", "MgO"], sampling_a=0.1, device=dev)
    batch = 64
    for n in (64, 128):
        dx = lam / 1e-3 / n  # 1 mrad per detector pixel, the window is the detector
        dx = max(dx, 0.1)
        pk = ms.probe_fourier_t((n, n), dx, kv, alpha, device=dev)

        def po_batch(n=n, dx=dx, pk=pk):
            v, _ = bank.sample_projected(batch, (n, n), dx, thickness_a=(5.0, 30.0), seed=0)
            t = ms.transmission_t(v[:, None], kv, dx)
            shifts = torch.rand((batch, 1, 2), dtype=torch.float64, device=dev) * n * dx
            ew = ms.exit_waves_t(t, pk, shifts, dx)
            return ms.patterns_t(ew)

        out[f"po_patterns_per_s_{n}"] = _rate(po_batch, batch, reps)
        nb = 16

        def ms_batch(n=n, dx=dx):
            return ms.bank_exit_waves(bank, 0, nb, (n, n), dx, energy_kev=kv, thickness_a=100.0, seed=0)

        out[f"ms_exit_waves_per_s_{n}_10nm"] = _rate(ms_batch, nb, reps)
    at = spc.supercell("SrTiO3", (0, 0, 1), extent_a=(60.0, 60.0), thickness_a=20.0)
    for det in (64, 128):
        for mode in ("phase_object", "multislice"):
            scan = 8 if quick else 16

            def run(det=det, mode=mode, scan=scan):
                return ms.simulate_4dstem(at, scan_step_a=0.4, scan_gpts=(scan, scan), energy_kev=kv, semiangle_mrad=alpha,
                                          detector_mrad_per_px=1.0 if det == 64 else 0.5, detector_gpts=det, mode=mode,
                                          slice_thickness_a=2.0, device=dev)

            out[f"stem_{mode}_patterns_per_s_{det}"] = _rate(run, scan * scan, 1)
    return out


def markdown(quick: bool = False, device: str = "auto") -> str:
    from . import machine_description

    r = measure(quick, device)
    rows = [
        "## Multislice simulator throughput",
        "",
        f"Machine: {machine_description()}; device `{r['device']}`, {r['threads']} torch thread(s). "
        "Source: `napari_phase/bench/multislice.py`.",
        "",
        "| path | 64² | 128² |",
        "|---|---|---|",
        f"| phase-object training patterns (bank → probe → pattern), /s | {r['po_patterns_per_s_64']:.0f} | {r['po_patterns_per_s_128']:.0f} |",
        f"| plane-wave multislice exit waves, GaAs [001] 10 nm, /s | {r['ms_exit_waves_per_s_64_10nm']:.1f} | {r['ms_exit_waves_per_s_128_10nm']:.1f} |",
        f"| 4D-STEM phase object, SrTiO3 2 nm (window 1.5× detector), patterns/s | {r['stem_phase_object_patterns_per_s_64']:.0f} | {r['stem_phase_object_patterns_per_s_128']:.0f} |",
        f"| 4D-STEM multislice, 2 Å slices, patterns/s | {r['stem_multislice_patterns_per_s_64']:.0f} | {r['stem_multislice_patterns_per_s_128']:.0f} |",
        "",
    ]
    return "\n".join(rows)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    r = measure(a.quick, a.device, a.threads)
    for k, v in r.items():
        print(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
