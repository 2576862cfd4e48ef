"""Demo part: the 4D-STEM sample (SrTiO3 [001], 64² scan) through the CNN (default: low spatial
frequencies from iCoM; and the network alone), iCoM and SSB, with the 4D-STEM bench's methods and
``score``: xc against the true phase object σV sampled on each method's grid (2 scan steps cut at
each edge), and the FRC 0.5 cutoff as a fraction of the aperture's band limit 2α/λ. ``--quick``
runs the first 32² scan positions only."""

from __future__ import annotations

from ._report import SampleReport, timed
from .samples import load_sample

NAME = "stem_srtio3"
QUICK_SCAN = 32
ORDER = ("CNN + iCoM low-q (default)", "CNN (network only)", "iCoM", "SSB")
COLUMNS = [("xc", "xc vs σV", 3), ("frc_vs_2alpha", "FRC 0.5 / (2α/λ)", 2), ("phase_std_ratio", "std ratio", 2)]


def reports(quick: bool, device: str):
    from ..bench.stem import _methods, score, truth_on_grid
    from ..physics.optics import electron_wavelength_a

    data, truth, meta = load_sample(NAME)
    if quick:  # the 4D-STEM bench's quick scan size; the truth's origin (first scan position) is kept
        data = data[:QUICK_SCAN, :QUICK_SCAN]
    calib = dict(energy_kev=meta["voltage_kv"], scan_step_a=meta["scan_step_a"],
                 detector_mrad_per_px=meta["detector_mrad_per_px"], semiangle_mrad=meta["semiangle_mrad"])
    two_alpha = 2 * meta["semiangle_mrad"] * 1e-3 / electron_wavelength_a(meta["voltage_kv"])  # 1/Å
    spec = meta.get("specimen", {})
    rep = SampleReport(NAME, f"{NAME}: {spec.get('structure', '')} {spec.get('zone_axis', '')}, {spec.get('thickness_a', 0):g} Å, "
                             f"{data.shape[0]}x{data.shape[1]} scan of {meta['scan_step_a']:g} Å, {data.shape[2]}² detector, "
                             f"{meta['voltage_kv']:g} kV, {meta['semiangle_mrad']:g} mrad, dose {meta['dose_e_per_a2']:g} e/Å²",
                       COLUMNS, ("xc", "xc vs σV"))
    methods = _methods(device, compare=False, **calib)
    missing = [m for m in ORDER if m not in methods]
    if missing:
        rep.note = f"not run: {', '.join(missing)} (no shipped CNN model)"
    phase, px_true = truth["phase_true"], meta["phase_pixel_size_a"]
    bf = data.astype("float32").sum(axis=(2, 3))
    rep.tiles += [("virtual BF (whole detector)", bf)]
    for label in (m for m in ORDER if m in methods):
        res, dt = timed(methods[label], data)
        rep.add(label, dt, score(res, phase, px_true, meta["scan_step_a"], two_alpha))
        if len(rep.tiles) == 1:  # the truth on the first method's grid, beside it
            rep.tiles.append(("true sigma*V", truth_on_grid(phase, px_true, res.phase.shape, res.pixel_size_a,
                                                       res.metadata.get("origin_a", (0.0, 0.0)))))
        rep.tiles.append((f"{label}", res.phase))
        rep.arrays[label] = res.phase
    yield rep
