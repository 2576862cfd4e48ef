"""Mutation check for the per-pixel σ (issue 19): the shared metric and propagation, SITIE's exact
variance, iCoM's Poisson CoM variance, the classical TIE and TIE-series propagation. Each one-line
mutation in a COPY of src/ (PYTHONPATH), only tests/test_uncertainty.py; prints CAUGHT/survived.

    python scripts/mutation_check_uncertainty.py [index ...]
"""
from mutation_runner import main

U = "src/napari_phase/uncertainty.py"
LU = "src/napari_phase/ltem/uncertainty.py"
SU = "src/napari_phase/stem/uncertainty.py"
FU = "src/napari_phase/flowtie/uncertainty.py"
SIT = "src/napari_phase/ltem/sitie.py"
TESTS = ["tests/test_uncertainty.py"]
MUT = [
    ("SITIE σ halved (exact path)", LU, "scale = (2 * np.pi / lam) * sigma_n / (abs(df) * i0)",
     "scale = (2 * np.pi / lam) * sigma_n / (2 * abs(df) * i0)", TESTS),
    ("SITIE exact variance: edge weight S dropped", LU, "basis[[0, -1]] *= np.sqrt(2.0)", "basis[[0, -1]] *= 1.0", TESTS),
    ("SITIE exact variance: kernel not squared", LU, "[:ny, :nx] ** 2", "[:ny, :nx]", TESTS),
    ("SITIE B σ without ħ/e", LU, '"bx": (HBAR_OVER_E_T_NM2 * scale', '"bx": (scale', TESTS),
    ("propagation: variance over 2K (σ / √2)", U, "smooth_variance(v / int(samples), smooth_px)",
     "smooth_variance(v / (2 * int(samples)), smooth_px)", TESTS),
    ("coverage: mean not removed", U, "else e - e.mean()", "else e", TESTS),
    ("coverage: plane not removed", U, 'e = remove_plane(e) if remove == "plane"', 'e = e if remove == "plane"', TESTS),
    ("iCoM: CoM variance not divided by the counts", SU, "np.where(n > 0, np.maximum(var_y, 0.0) / safe, empty_y)",
     "np.where(n > 0, np.maximum(var_y, 0.0), empty_y)", TESTS),
    ("iCoM: σ doubled", SU, 'return {"phase": to_phase(noise[0] * sd_y, noise[1] * sd_x)}',
     'return {"phase": 2 * to_phase(noise[0] * sd_y, noise[1] * sd_x)}', TESTS),
    ("classical TIE: dI/dz noise over 4 dz", FU, "/ (2 * tri.dz_a)", "/ (4 * tri.dz_a)", TESTS),
    ("classical TIE: the noise of the in-focus image dropped", FU,
     "sd = np.sqrt(shape) * np.array([noise_sigma(f) for f in imgs])[:, None, None]",
     "sd = np.sqrt(shape) * np.array([noise_sigma(f) for f in imgs])[:, None, None] * np.array([1.0, 0.0, 1.0])[:, None, None]",
     TESTS),
    ("classical TIE: shot-noise shape dropped (white noise)", FU,
     "sd = np.sqrt(shape) * np.array(", "sd = np.sqrt(0 * shape + 1) * np.array(", TESTS),
    ("FlowTIE: σ from the unperturbed triplet (no noise re-sampling)", FU,
     "ph = np.asarray(frames((imgs + sd * rng.standard_normal(imgs.shape)).astype(np.float32)), np.float64)",
     "ph = np.asarray(frames(imgs.astype(np.float32)), np.float64)", TESTS),
    ("FlowTIE: spread around the frames' own mean, not the result", FU,
     "var = ((ph - (ref - ref.mean())) ** 2).mean(axis=0)", "var = ph.var(axis=0)", TESTS),
    ("flipped series: φm noise not halved", LU, "(d[0] - d[1]) / 2", "(d[0] - d[1])", TESTS),
    ("cancel at the σ step ignored", U, 'return not_computed(result, "cancelled before σ was computed: the result is kept without σ")',
     "pass", TESTS),
    ("SITIE σ asked for by default (sitie())", SIT, "    uncertainty: bool = False,\n) -> PhaseResult:",
     "    uncertainty: bool = True,\n) -> PhaseResult:", TESTS),
    ("SITIE σ asked for by default (sitie_job)", SIT, "    uncertainty: bool = False,\n):\n    \"\"\"SITIE as a job",
     "    uncertainty: bool = True,\n):\n    \"\"\"SITIE as a job", TESTS),
]


if __name__ == "__main__":
    raise SystemExit(main(MUT, tag="mut_uncertainty"))
