"""The 4D-STEM bench's cases: held-out structures, microscope settings, the noise-free scan, dose
and the truth on a method's grid. Shared by bench/stem.py, bench/cnn_speed.py and
bench/stem_descan.py (which bench/stem.py runs as sections: kept apart so no two import each other)."""

from __future__ import annotations

import numpy as np

ENERGY_KEV = 300.0
SEMIANGLE_MRAD = 20.0
STEP_A = 0.2
DET_MRAD = 1.25
DET_PX = 64
DOSES = (500.0, 5e3, 1e5, None)
CROP = 2
STRUCTURES = {
    "graphene-twisted-bilayer": dict(zone_axis=(0, 0, 1), thickness_a=3.35),
    "LaAlO3": dict(zone_axis=(0, 0, 1), thickness_a=20.0),
}


def simulate(name: str, scan: int, phonons: int, seed: int = 0):
    """Noise-free multislice scan of a held-out structure and its true phase."""
    import torch

    from napari_phase.physics import multislice, specimens

    torch.set_num_threads(1)
    if name not in specimens.structures("heldout"):
        raise ValueError(f"{name} is not a held-out structure")
    spec = STRUCTURES[name]
    window_a = multislice.wavelength_a(ENERGY_KEV) / (DET_MRAD * 1e-3)
    extent = (scan - 1) * STEP_A + window_a + 2.0
    atoms = specimens.supercell(name, spec["zone_axis"], extent_a=(extent, extent), thickness_a=spec["thickness_a"])
    return multislice.simulate_4dstem(atoms, scan_step_a=STEP_A, scan_gpts=(scan, scan), energy_kev=ENERGY_KEV,
                                      semiangle_mrad=SEMIANGLE_MRAD, detector_mrad_per_px=DET_MRAD,
                                      detector_gpts=DET_PX, frozen_phonons=phonons, phonon_rms_a=0.08 if phonons > 1 else 0.0,
                                      seed=seed, device="cpu")


def with_dose(intensity: np.ndarray, dose: float | None, seed: int) -> np.ndarray:
    if dose is None:
        return intensity
    rng = np.random.default_rng(seed)
    return rng.poisson(intensity.astype(np.float64) * dose * STEP_A * STEP_A).astype(np.float32)


def truth_on_grid(phase: np.ndarray, phase_px_a: float, shape: tuple[int, int], pixel_a: float,
                  origin_a=(0.0, 0.0)) -> np.ndarray:
    """The true phase sampled at a grid of ``pixel_a`` whose pixel (0, 0) lies at ``origin_a`` (y, x, Å)
    from the first scan position (the simulation's ``phase[0, 0]``)."""
    from scipy import ndimage

    yy, xx = np.indices(shape, dtype=np.float64) * pixel_a
    yy = (yy + float(origin_a[0])) / phase_px_a
    xx = (xx + float(origin_a[1])) / phase_px_a
    return ndimage.map_coordinates(phase.astype(np.float64), [yy, xx], order=1, mode="nearest")
