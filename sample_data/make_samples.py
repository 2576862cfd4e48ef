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


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name, spec in SAMPLES.items():
        p = make(name, spec)
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KiB)")
