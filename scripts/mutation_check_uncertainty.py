"""Mutation check for the per-pixel σ (issue 19): the shared metric and propagation, SITIE's exact
variance, iCoM's Poisson CoM variance, SSB's analytic Poisson variance, the CNN's rotated
re-sampling, the classical TIE, gradient-descent and TIE-series propagation, FlowTIE's spread,
the panels' σ boxes. Each one-line mutation in a COPY of src/ (PYTHONPATH), only the tests that
concern it (a -k selection of tests/test_uncertainty*.py); prints CAUGHT/survived.

    python scripts/mutation_check_uncertainty.py [index ...]
"""
from mutation_runner import main

U = "src/napari_phase/uncertainty.py"
LU = "src/napari_phase/ltem/uncertainty.py"
SU = "src/napari_phase/stem/uncertainty.py"
CU = "src/napari_phase/stem/airpi/uncertainty.py"
FU = "src/napari_phase/flowtie/uncertainty.py"
SIT = "src/napari_phase/ltem/sitie.py"
SSB = "src/napari_phase/stem/ssb.py"
FP = "src/napari_phase/widgets/flowtie_panel.py"
TP = "src/napari_phase/widgets/tie_series_panel.py"
T = "tests/test_uncertainty.py"


def k(expr):
    return [T, "-k", expr]


CNN = ["tests/test_uncertainty_cnn.py"]
GUI = ["GUI", "tests/test_uncertainty_panels.py"]
MUT = [
    ("SITIE σ halved (exact path)", LU, "scale = (2 * np.pi / lam) * sigma_n / (abs(df) * i0)",
     "scale = (2 * np.pi / lam) * sigma_n / (2 * abs(df) * i0)", k("sitie")),
    ("SITIE exact variance: edge weight S dropped", LU, "basis[[0, -1]] *= np.sqrt(2.0)", "basis[[0, -1]] *= 1.0", k("sitie")),
    ("SITIE exact variance: kernel not squared", LU, "[:ny, :nx] ** 2", "[:ny, :nx]", k("sitie")),
    ("SITIE B σ without ħ/e", LU, '"bx": (HBAR_OVER_E_T_NM2 * scale', '"bx": (scale', k("sitie")),
    ("propagation: variance over 2K (σ / √2)", U, "smooth_variance(v / int(samples), smooth_px)",
     "smooth_variance(v / (2 * int(samples)), smooth_px)", k("icom or classical or flipped")),
    ("coverage: mean not removed", U, "else e - e.mean()", "else e", k("coverage")),
    ("coverage: plane not removed", U, 'e = remove_plane(e) if remove == "plane"', 'e = e if remove == "plane"', k("coverage")),
    ("iCoM: CoM variance not divided by the counts", SU, "np.where(n > 0, np.maximum(var_y, 0.0) / safe, empty_y)",
     "np.where(n > 0, np.maximum(var_y, 0.0), empty_y)", k("icom")),
    ("iCoM: σ doubled", SU, 'return {"phase": to_phase(noise[0] * sd_y, noise[1] * sd_x)}',
     'return {"phase": 2 * to_phase(noise[0] * sd_y, noise[1] * sd_x)}', k("icom")),
    ("classical TIE: dI/dz noise over 4 dz", FU, "/ (2 * tri.dz_a)", "/ (4 * tri.dz_a)", k("classical")),
    ("classical TIE: the noise of the in-focus image dropped", FU,
     "return np.sqrt(shape) * np.array([noise_sigma(f) for f in imgs])[:, None, None]",
     "return np.sqrt(shape) * np.array([noise_sigma(f) for f in imgs])[:, None, None] * np.array([1.0, 0.0, 1.0])[:, None, None]",
     k("classical")),
    ("classical TIE: shot-noise shape dropped (white noise)", FU,
     "return np.sqrt(shape) * np.array(", "return np.sqrt(0 * shape + 1) * np.array(", k("classical")),
    ("FlowTIE: σ from the unperturbed triplet (no noise re-sampling)", FU,
     "ph = np.asarray(frames((imgs + sd * rng.standard_normal(imgs.shape)).astype(np.float32)), np.float64)",
     "ph = np.asarray(frames(imgs.astype(np.float32)), np.float64)", k("flowtie")),
    ("FlowTIE: spread around the frames' own mean, not the result", FU,
     "var = ((ph - (ref - ref.mean())) ** 2).mean(axis=0)", "var = ph.var(axis=0)", k("flowtie")),
    ("flipped series: φm noise not halved", LU, "(d[0] - d[1]) / 2", "(d[0] - d[1])", k("flipped")),
    ("cancel at the σ step ignored", U, 'return not_computed(result, "cancelled before σ was computed: the result is kept without σ")',
     "pass", k("cancel")),
    ("SITIE σ asked for by default (sitie())", SIT, "    uncertainty: bool = False,\n) -> PhaseResult:",
     "    uncertainty: bool = True,\n) -> PhaseResult:", k("sitie")),
    ("SITIE σ asked for by default (sitie_job)", SIT, "    uncertainty: bool = False,\n):\n    \"\"\"SITIE as a job",
     "    uncertainty: bool = True,\n):\n    \"\"\"SITIE as a job", k("sitie")),
    # SSB (analytic Poisson)
    ("SSB: Wiener gain left out of σ", SU, "g2 = 1.0 if gain is None else np.asarray(gain, np.float64) ** 2", "g2 = 1.0",
     k("ssb")),
    ("SSB: Var φ over n, not n² (σ × √n)", SU, "return float(np.sqrt(max(float(np.sum(var_q)), 0.0)) / n_scan)",
     "return float(np.sqrt(max(float(np.sum(var_q)), 0.0)) / np.sqrt(n_scan))", k("ssb")),
    ("SSB: counts' variance taken as √counts", SU, "v = np.asarray(w2 @ np.asarray(disc_counts, np.float64)).ravel()[used]",
     "v = np.asarray(w2 @ np.sqrt(np.asarray(disc_counts, np.float64))).ravel()[used]", k("ssb")),
    ("SSB: the level not squared", SU, "var_q = g2 * v / (np.asarray(norm, np.float64)[used] * float(level)) ** 2",
     "var_q = g2 * v / (np.asarray(norm, np.float64)[used] ** 2 * float(level))", k("ssb")),
    ("SSB: σ asked for by default", SSB, 'descan="plane", uncertainty: bool = False) -> Job:',
     'descan="plane", uncertainty: bool = True) -> Job:', k("ssb")),
    ("iCoM/SSB: model-error term dropped", U, "total = np.sqrt(noise**2 + (float(c) * highpass_proxy(result.phase)) ** 2)",
     "total = np.sqrt(noise**2)", k("4dstem")),
    ("model-error proxy without its smoothing (raw detail)", U,
     "return np.sqrt(np.maximum(ndimage.gaussian_filter(hp**2, smooth_px, mode=\"reflect\"), 0.0))",
     "return np.abs(hp)", k("4dstem or proxy")),
    # CNN
    ("CNN: no Poisson re-sampling", CU, "out[i] = np.random.default_rng([self.seed, r]).poisson(block[i])", "out[i] = block[i]", CNN),
    ("CNN: rotated phase brought back one step off", CU, "yy = (scan_shape[0] - 1) * pos_scale[0]", "yy = scan_shape[0] * pos_scale[0]", CNN),
    ("CNN: detector centre not rotated with the detector", CU, "return (det_shape[0] - 1 - float(center[0])",
     "return (float(center[0])", CNN),
    ("CNN: σ halved", CU, "sigma = c * np.sqrt(np.maximum(var, 0.0))", "sigma = 0.5 * c * np.sqrt(np.maximum(var, 0.0))", CNN),
    ("CNN: scale c not applied", CU, "sigma = c * np.sqrt(np.maximum(var, 0.0))", "sigma = np.sqrt(np.maximum(var, 0.0))", CNN),
    ("CNN: scaled data given a σ", CU, "    if not looks_like_counts(data):\n", "    if False:\n", CNN),
    # gradient descent
    ("GD: spread around zero, not the result", FU, "acc += (d - d.mean() - ref) ** 2", "acc += (d - d.mean()) ** 2",
     k("gradient_descent")),
    ("GD: re-fit noise doubled", FU, "other, cancelled = yield from refit((imgs + sd * rng", "other, cancelled = yield from refit((imgs + 2 * sd * rng",
     k("gradient_descent")),
    # panels
    ("FlowTIE panel: σ box ignored", FP, 'sigma = p["uncertainty"] and key != "refine"', "sigma = False", GUI),
    ("TIE-series panel: σ box ignored", TP, 'params["uncertainty"] = bool(self.uncertainty.isChecked())',
     'params["uncertainty"] = False', GUI),
]


if __name__ == "__main__":
    raise SystemExit(main(MUT, tag="mut_uncertainty"))
