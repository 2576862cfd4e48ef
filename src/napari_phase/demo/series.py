"""Demo part: a flipped through-focus LTEM series made with the project's simulator (the LTEM
series bench's case: 128² skyrmions with contaminants, 5 defoci −0.4 … +0.4 mm, the flipped series
mirrored, rotated 3° and shifted, 10 % noise), through the TIE with its defaults (alignment, all 5
images) and the two-image TIE baseline on the same aligned images; scored by the bench's
``crop_scores``: Pearson accuracy of φm and φe, B accuracy, B·t slope (1 = right magnitude)."""

from __future__ import annotations

from ._report import SampleReport, timed

NAME = "ltem_flipped_series"
COLUMNS = [("phim", "φm accuracy", 3), ("phie", "φe accuracy", 3), ("bacc", "B accuracy", 3), ("bslope", "B·t slope", 2)]


def reports(quick: bool, device: str):
    from ..bench.ltem_series import DZ, PX, crop_scores, flipped_case, two_image_tie
    from ..ltem import tie
    from ..physics import color_wheel_image

    noise = 0.1
    s, t_sim = timed(flipped_case, seed=0, noise=noise)
    z = s.defocus_nm
    mid = len(z) // 2
    rep = SampleReport(NAME, f"{NAME}: simulated (napari_phase.ltem.simulate_series, {t_sim:.1f} s), "
                             f"{s.series.shape[2]}x{s.series.shape[1]} px of {PX:g} nm, {len(z)} defoci "
                             f"{z[0] / 1e6:g} … {z[-1] / 1e6:g} mm, flipped series mirrored in x, rotated 3°, "
                             f"shifted (4, −6) px, noise {noise:g}", COLUMNS, ("phim", "Pearson vs true φm"))
    rep.tiles += [("in focus", s.series[mid]), (f"{z[-1] / 1e6:g} mm", s.series[-1]), ("flipped, in focus", s.flipped[mid]),
                  ("true phi_m", s.phase_m), ("true phi_e", s.phase_e)]
    r, dt = timed(tie, s.series, pixel_size_nm=PX, defocus_nm=z, flipped=s.flipped, flip_axis="x", align=True)
    rep.add("TIE, 5 images + flipped (defaults)", dt, crop_scores(r, s))
    rep.tiles += [("TIE phi_m", r.phase), ("TIE phi_e", r.arrays["phase_e"]), ("TIE B", color_wheel_image(r.bx, r.by))]
    rep.arrays["TIE phase_m"], rep.arrays["TIE phase_e"] = r.phase, r.arrays["phase_e"]
    (pm, pe), dt2 = timed(two_image_tie, r.arrays["aligned"], r.arrays["aligned_flipped"], z, PX, qc_per_nm=0.0)
    rep.add("two-image TIE (outer pair, same aligned images)", dt2, crop_scores(r, s, pm, pe))
    rep.tiles += [("two-image phi_m", pm), ("two-image phi_e", pe)]
    yield rep
