"""Mutation checks for issue 17 §1 (the in-focus image placed by its amplitude in the defocused
images' model, ltem/series_register.py) and §3 (the weak-phase regime check of single-image
results, ltem/fit_check.py and problem.py; SIPRAD's smoothed start on a strong phase, siprad.py). One-line mutations in a copy of src/, the named tests
run against it (scripts/mutation_runner.py).

    PYTHONPATH=src python scripts/mutation_check_i17c.py [INDEX ...]     (about 10 min on 2 busy cores)
"""
import sys

from mutation_runner import main

REG = ["tests/test_ltem_series_no_drift.py"]
FIT = ["tests/test_ltem_fit_regime.py"]
L = "src/napari_phase/ltem/"
MUTATIONS = [
    ("registration reference swapped: the in-focus image placed by the defocused images' mean", L + "series_register.py",
     "    i0 = ndimage.gaussian_filter(arr[mid].astype(np.float64), 1.0)\n    m = int(margin_px)",
     "    i0 = ndimage.gaussian_filter(moved[outer].mean(axis=0).astype(np.float64), 1.0)\n    m = int(margin_px)", REG),
    ("significance test skipped", L + "series_register.py", "    if d2 < MIN_SIGNIFICANCE:", "    if False:", REG),
    ("in-focus offset applied with the wrong sign", L + "series_register.py", "    shifts = shifts - s_mid\n", "    shifts = shifts + s_mid\n", REG),
    ("in-focus model moved the wrong way", L + "series_register.py", "model_series(phi, fourier_shift(i0, t),", "model_series(phi, fourier_shift(i0, -t),", REG),
    ("in-focus offset: one Gauss-Newton step only", L + "series_register.py", "    for _ in range(int(iterations)):\n        base = models(t)",
     "    for _ in range(1):\n        base = models(t)", REG),
    ("in-focus significance without the noise correlation", L + "series_register.py", " * _correlated_px(1.0)", "", REG),
    ("regime check never warns", L + "fit_check.py", "    if u > WARN_NONLINEAR and not info[\"warning\"]:", "    if False:", FIT),
    ("regime threshold halved", L + "fit_check.py", "WARN_NONLINEAR = 0.4\n", "WARN_NONLINEAR = 0.2\n", FIT),
    ("regime threshold doubled", L + "fit_check.py", "WARN_NONLINEAR = 0.4\n", "WARN_NONLINEAR = 0.8\n", FIT),
    ("SIPRAD/pixel-wise results without the regime check", L + "problem.py",
     "linear_phases=linear[0] if not problem.is_series else linear)", "linear_phases=None)", FIT),
    ("SIPRAD start change reverted (no smoothing on a strong phase)", L + "siprad.py",
     'if opts["init"] == "auto" and smoothing == 0 and _strong_phase(frame, start, problem):', "if False:", FIT),
    ("SIPRAD start smoothed on every image", L + "siprad.py",
     'if opts["init"] == "auto" and smoothing == 0 and _strong_phase(frame, start, problem):',
     'if opts["init"] == "auto" and smoothing == 0:', FIT),
    ("regime check at the opposite defocus", L + "problem.py", "defocus_nm=mic.defocus_nm,\n", "defocus_nm=-mic.defocus_nm,\n", FIT),
]

if __name__ == "__main__":
    sys.exit(main(MUTATIONS, tag="i17c"))
