"""SSB with and without the Wiener weight, beside py4DSTEM's SSB, on the bench's quick arrays (issue 16 §4).

    PYTHONPATH=/tmp/py4d python scripts/ssb_wiener_table.py      (py4DSTEM rows only where it imports)

The quick bench's data: held-out bilayer and LaAlO3, 32² scans, 1 frozen-phonon configuration,
Poisson seed 1 (bench/stem.py); xc as the bench computes it.
"""
import numpy as np

from napari_phase import stem
from napari_phase.bench import stem as b
from napari_phase.physics.metrics import xc


def score(res, sim):
    px = res.pixel_size_a
    truth = b.truth_on_grid(sim.phase, sim.phase_pixel_size_a, res.phase.shape, px, res.metadata.get("origin_a", (0.0, 0.0)))
    return xc(res.phase, truth, int(round(b.CROP * b.STEP_A / px)))


def main():
    kw = dict(energy_kev=b.ENERGY_KEV, semiangle_mrad=b.SEMIANGLE_MRAD, scan_step_a=b.STEP_A, detector_mrad_per_px=b.DET_MRAD)
    try:
        p4 = b._py4dstem_methods()["py4DSTEM SSB"]
    except Exception:  # noqa: BLE001 - the optional [compare] extra
        p4 = None
    print("| structure | dose (e/Å²) | SSB, plain average (`weighting='none'`, as before) | **SSB, Wiener (default)** "
          "| py4DSTEM SSB | Wiener − py4DSTEM |")
    print("|---|---|---|---|---|---|")
    for name in b.STRUCTURES:
        sim = b.simulate(name, 32, 1)
        for dose in b.DOSES:
            d = b.with_dose(sim.data, dose, seed=1)
            plain = score(stem.ssb(d, weighting="none", **kw), sim)
            wiener = score(stem.ssb(d, **kw), sim)
            theirs = score(p4(d), sim) if p4 else None
            t = "–" if theirs is None else f"{theirs:.3f}"
            diff = "–" if theirs is None else f"{wiener - theirs:+.3f}"
            print(f"| {name} | {'∞' if dose is None else f'{dose:g}'} | {plain:.3f} | **{wiener:.3f}** | {t} | {diff} |",
                  flush=True)


if __name__ == "__main__":
    main()
