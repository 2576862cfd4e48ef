"""Regenerate the bundled sample data (src/napari_phase/sample_data/*.npz) from the simulator.

Each file holds `image` (float32 LTEM intensity), `phase_true` (magnetic phase, rad), `mask_true`
(contaminant pixels) and `metadata_json` (pixel size, defocus, microscope, noise, seed, texture).
Run: `python sample_data/make_samples.py` (or `make samples`). Deterministic (seeded).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_phase.ltem.simulate import simulate

OUT = Path(__file__).resolve().parents[1] / "src" / "napari_phase" / "sample_data"

SAMPLES = {
    "ltem_skyrmions": dict(texture="skyrmions", shape=(256, 256), defocus_nm=-1.0e6, noise=0.3,
                           n_contaminants=6, seed=1),
    "ltem_stripes": dict(texture="stripes", shape=(256, 256), defocus_nm=-0.5e6, noise=0.1,
                         n_contaminants=0, seed=2),
}


def make(name: str, spec: dict) -> Path:
    s = simulate(**spec)
    meta = {
        "sample": name,
        "pixel_size_nm": s.pixel_size_nm,
        **{k: v for k, v in s.microscope.as_dict().items()},
        "noise": spec["noise"],
        "noise_definition": "Gaussian sigma as a fraction of the mean intensity",
        "texture": spec["texture"],
        "n_contaminants": spec["n_contaminants"],
        "seed": spec["seed"],
        "made_by": "sample_data/make_samples.py",
    }
    path = OUT / f"{name}.npz"
    np.savez_compressed(path, image=s.image.astype(np.float32), phase_true=s.phase_m.astype(np.float32),
                        mask_true=s.mask.astype(bool), metadata_json=json.dumps(meta, default=float))
    return path


#: 4D-STEM samples: multislice (physics.multislice) of a bank structure, Poisson counts (uint16).
STEM_SAMPLES = {
    "stem_srtio3": dict(structure="SrTiO3", zone_axis=(0, 0, 1), extent_a=(36.0, 36.0), thickness_a=16.0,
                        scan_step_a=0.25, scan_gpts=(64, 64), energy_kev=300.0, semiangle_mrad=20.0,
                        detector_mrad_per_px=1.25, detector_gpts=64, defocus_a=0.0, dose_e_per_a2=1e5,
                        frozen_phonons=2, phonon_rms_a=0.08, seed=0),
}


def make_stem(name: str, spec: dict) -> Path:
    """A 4D-STEM sample: counts (scan_y, scan_x, ky, kx) uint16 + the true phase object σV (rad)."""
    import torch

    from napari_phase.physics import multislice, specimens

    torch.set_num_threads(1)
    spec = dict(spec)
    atoms = specimens.supercell(spec.pop("structure"), spec.pop("zone_axis"), extent_a=spec.pop("extent_a"),
                                thickness_a=spec.pop("thickness_a"))
    sim = multislice.simulate_4dstem(atoms, device="cpu", **spec)
    counts = np.asarray(sim.data)
    if counts.max() >= 2**16:
        raise SystemExit(f"{name}: counts exceed uint16")
    md = sim.metadata
    meta = {
        "sample": name,
        "kind": "4dstem",
        "voltage_kv": md["energy_kev"],
        "semiangle_mrad": md["semiangle_mrad"],
        "scan_step_a": md["scan_step_a"],
        "detector_mrad_per_px": md["detector_mrad_per_px"],
        "detector_inv_a_per_px": md["detector_inv_a_per_px"],
        "defocus_nm": md["defocus_a"] / 10.0,
        "cs_mm": md["cs_mm"],
        "center_px": md["center_px"],
        "dose_e_per_a2": md["dose_e_per_a2"],
        "phase_pixel_size_a": sim.phase_pixel_size_a,
        "phase_origin": "first scan position",
        "specimen": md["specimen"],
        "simulation": {k: v for k, v in md.items() if k not in ("specimen",)},
        "made_by": "sample_data/make_samples.py",
    }
    path = OUT / f"{name}.npz"
    np.savez_compressed(path, data=counts.astype(np.uint16), phase_true=sim.phase.astype(np.float32),
                        metadata_json=json.dumps(meta, default=str))
    return path


if __name__ == "__main__":
    import sys

    OUT.mkdir(parents=True, exist_ok=True)
    wanted = set(sys.argv[1:])  # names to regenerate (default: all)
    for name, spec in SAMPLES.items():
        if wanted and name not in wanted:
            continue
        p = make(name, spec)
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KiB)")
    for name, spec in STEM_SAMPLES.items():
        if wanted and name not in wanted:
            continue
        p = make_stem(name, spec)
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KiB)")
    if not wanted or "flowtie_srtio3" in wanted:  # FlowTIE triplet of a thick crystal (napari_phase.flowtie.sample)
        from napari_phase.flowtie.sample import save_triplet_sample

        p = OUT / "flowtie_srtio3.npz"
        meta = save_triplet_sample(p)
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KiB); classical TIE vs σV: {meta['classical_tie_vs_sigma_v']}")
