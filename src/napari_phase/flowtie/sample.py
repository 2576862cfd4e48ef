"""The bundled FlowTIE sample: a through-focus triplet of a thick SrTiO3 [001] crystal.

Multislice exit wave (:mod:`.data`, the project's simulator) of SrTiO3 [001], 20 nm thick, 300 kV,
seen through a 20 mrad objective aperture at dz = ±2 nm, Poisson noise at 1e5 e/Å², sampled at
0.1 Å; with the truths: σV band-limited to the aperture, and the phase of the aperture-filtered exit
wave. At this thickness dynamical scattering makes the exit-wave phase differ from σV and the
classical TIE fails against σV (it recovers something close to the exit-wave phase instead).
The file is read by ``napari_phase.io.sample_data.load_triplet_sample_npz`` (no method needed).
"""

from __future__ import annotations

import json

import numpy as np

SPEC = dict(structure="SrTiO3", zone_axis=(0, 0, 1), thickness_nm=20.0, energy_kev=300.0, semiangle_mrad=20.0,
            defocus_step_nm=2.0, dose_e_per_a2=1e5, pixel_size_a=0.1, seed=3)


def make_triplet_sample(spec: dict | None = None) -> dict:
    """Arrays and metadata of the sample: {"triplet", "sigma_v", "exit_wave_phase", "metadata"}."""
    import torch

    from .baselines import tie_classical
    from .data import ExitWaveBank
    from ..physics.metrics import psnr, xc

    s = {**SPEC, **(spec or {})}
    torch.set_num_threads(1)
    bank = ExitWaveBank("train", names=[s["structure"]], zone_axes=[tuple(s["zone_axis"])], runs=1,
                        voltages_kev=(s["energy_kev"],), fixed_thickness_nm=(s["thickness_nm"],), seed=s["seed"])
    for _ in bank.build():
        pass
    rng = np.random.default_rng(s["seed"])
    n = int(round(bank.gpts * bank.waves[0].p_sim_a / s["pixel_size_a"]))
    smp = bank.sample(rng, n, wave_index=0, alpha_mrad=s["semiangle_mrad"], dz_nm=s["defocus_step_nm"], dose=s["dose_e_per_a2"],
                      augment=False, grid_px_a=s["pixel_size_a"])[0]
    tie = tie_classical(smp["tri"], defocus_step_nm=smp["dz_nm"], pixel_size_a=smp["pixel_size_a"], energy_kev=smp["energy_kev"]).phase
    meta = {
        "sample": "flowtie_srtio3",
        "kind": "triplet",
        "structure": s["structure"], "zone_axis": list(s["zone_axis"]), "thickness_nm": round(smp["thickness_nm"], 3),
        "energy_kev": smp["energy_kev"], "semiangle_mrad": round(smp["alpha_mrad"], 4), "defocus_step_nm": smp["dz_nm"],
        "pixel_size_a": smp["pixel_size_a"], "dose_e_per_a2": s["dose_e_per_a2"], "seed": s["seed"],
        "triplet_order": "(-dz, 0, +dz)",
        "classical_tie_vs_sigma_v": {"xc": round(xc(tie, smp["target"], 8), 3), "psnr_db": round(psnr(tie, smp["target"], 8), 2)},
        "zero_map_psnr_db": round(psnr(np.zeros_like(smp["target"]), smp["target"], 8), 2),
        "made_by": "sample_data/make_samples.py (napari_phase.flowtie.sample)",
    }
    return {"triplet": smp["tri"].astype(np.float32), "sigma_v": smp["target"].astype(np.float32),
            "exit_wave_phase": smp["exit_wave_phase"].astype(np.float32), "metadata": meta}


def save_triplet_sample(path) -> dict:
    d = make_triplet_sample()
    np.savez_compressed(path, triplet=d["triplet"], sigma_v=d["sigma_v"], exit_wave_phase=d["exit_wave_phase"],
                        metadata_json=json.dumps(d["metadata"], default=float))
    return d["metadata"]
