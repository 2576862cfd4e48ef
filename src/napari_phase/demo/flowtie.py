"""Demo part: the FlowTIE triplet sample (20 nm SrTiO3 [001], dz = ±2 nm) through FlowTIE, the
classical TIE and gradient descent, run and scored by the FlowTIE bench's
``flowtie.evaluate.run_methods`` (same gradient-descent steps as the bench): xc and PSNR against
σV and against the exit-wave phase (8-px edge band removed)."""

from __future__ import annotations

from ._report import SampleReport
from .samples import load_sample

NAME = "flowtie_srtio3"
METHODS = ("FlowTIE", "classical TIE", "gradient descent")
COLUMNS = [("xc_sv", "xc vs σV", 3), ("psnr_sv", "PSNR vs σV (dB)", 1), ("xc_ew", "xc vs exit-wave phase", 3)]


def reports(quick: bool, device: str):
    from ..flowtie import evaluate as ev
    from ..jobs import resolve_device

    tri, truth, meta = load_sample(NAME)
    case = {"tri": tri, "target": truth["sigma_v"], "exit_wave_phase": truth["exit_wave_phase"],
            "dz_nm": meta["defocus_step_nm"], "pixel_size_a": meta["pixel_size_a"], "energy_kev": meta["energy_kev"],
            "alpha_mrad": meta["semiangle_mrad"]}
    rep = SampleReport(NAME, f"{NAME}: {meta['structure']} {meta['zone_axis']}, {meta['thickness_nm']:g} nm, "
                             f"{tri.shape[2]}x{tri.shape[1]} px of {meta['pixel_size_a']:.2g} Å, dz ±{meta['defocus_step_nm']:g} nm, "
                             f"{meta['energy_kev']:g} kV, {meta['semiangle_mrad']:.0f} mrad, dose {meta['dose_e_per_a2']:g} e/Å²",
                       COLUMNS, ("xc_sv", "xc vs σV"))
    rep.tiles += [("-dz", tri[0]), ("0", tri[1]), ("+dz", tri[2]), ("true sigma*V", truth["sigma_v"]),
                  ("true exit-wave phase", truth["exit_wave_phase"])]
    phases: dict = {}
    gd_steps = 150 if quick else 300  # the FlowTIE bench's quick / full gradient-descent steps
    scores = ev.run_methods(case, METHODS, device=str(resolve_device(device)), gd_steps=gd_steps, estimates=phases)
    for m in METHODS:
        rep.add(m, scores[m].pop("runtime_s"), scores[m])
        rep.tiles.append((m, phases[m]))
        rep.arrays[m] = phases[m]
    yield rep
