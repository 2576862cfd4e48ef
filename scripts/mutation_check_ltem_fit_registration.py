"""Mutation checks for issue 17: the series registration guards (ltem/series_register.py,
ltem/series.py) and the single-image fit check (ltem/fit_check.py and its callers). Each mutation
is one textual one-line change applied to a scratch copy of src/; the named test file is run
against that copy, and a mutation counts as caught when a test fails.

    python scripts/mutation_check_ltem_fit_registration.py [NAME ...]   (about 15 min on 2 busy cores;
                                                   NAME: run only mutations whose name contains it)
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REG = "tests/test_ltem_series_no_drift.py"
FIT = "tests/test_ltem_fit_check.py"
L = "src/napari_phase/ltem/"
MUTATIONS = [
    ("in-focus significance test off", L + "series_register.py", "MIN_SIGNIFICANCE = 16.0", "MIN_SIGNIFICANCE = 0.0", REG),
    ("in-focus significance test inverted", L + "series_register.py", "if d2 < MIN_SIGNIFICANCE:", "if d2 > MIN_SIGNIFICANCE:", REG),
    ("standard error without the noise correlation", L + "series_register.py", " * _correlated_px(1.0)", "", REG),
    ("coarse-start guard skipped", L + "series.py", "    if start.any():", "    if False:", REG),
    ("coarse-start guard inverted", L + "series.py", "if m_coarse > (1.0 - COARSE_START_MARGIN) * m_plain:",
     "if m_coarse < (1.0 - COARSE_START_MARGIN) * m_plain:", REG),
    ("coarse-start margin off", L + "series.py", "COARSE_START_MARGIN = 0.10", "COARSE_START_MARGIN = 0.0", REG),
    ("series misfit on the in-focus image only", L + "series_register.py", "np.flatnonzero(z != 0)", "np.flatnonzero(z == 0)", REG),
    ("fit check: negative gain allowed", L + "fit_check.py", "a = max(0.0, float(", "a = max(-1e30, float(", FIT),
    ("fit check: never warns", L + "fit_check.py", "explains = unexplained <= WARN_UNEXPLAINED", "explains = True", FIT),
    ("fit check: threshold doubled", L + "fit_check.py", "WARN_UNEXPLAINED = 0.10", "WARN_UNEXPLAINED = 0.20", FIT),
    ("fit check: noise doubled", L + "fit_check.py", "sigma = max(noise_sigma(img)", "sigma = 2 * max(noise_sigma(img)", FIT),
    ("fit check: half the defocus", L + "fit_check.py", '"defocus_nm": float(defocus_nm)', '"defocus_nm": 0.5 * float(defocus_nm)', FIT),
    ("SIPRAD/pixel-wise fit check at the opposite defocus", L + "problem.py", "defocus_nm=problem.microscope.defocus_nm", "defocus_nm=-problem.microscope.defocus_nm", FIT),
    ("SITIE fit check at the opposite defocus", L + "sitie.py", "return _fit_checked(res, arr, px, df, kv)", "return _fit_checked(res, arr, px, -df, kv)", FIT),
]


def main() -> int:
    caught = 0
    env = {**os.environ, "QT_API": "pyqt6", "OMP_NUM_THREADS": "1"}
    chosen = [m for m in MUTATIONS if not sys.argv[1:] or any(a in m[0] for a in sys.argv[1:])]
    for name, path, old, new, test in chosen:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(ROOT / "src", Path(tmp) / "src")
            f = Path(tmp) / path
            text = f.read_text(encoding="utf-8")
            assert text.count(old) >= 1, (name, old)
            f.write_text(text.replace(old, new, 1), encoding="utf-8")
            cmd = [sys.executable, "-m", "pytest", str(ROOT / test), "-q", "-x", "-p", "no:cacheprovider", "-k", "not panel"]
            run = subprocess.run(cmd, cwd=ROOT, env={**env, "PYTHONPATH": str(Path(tmp) / "src")}, capture_output=True, text=True)
        hit = run.returncode != 0
        caught += hit
        print(f"{'CAUGHT' if hit else 'missed'}  {name}", flush=True)
    print(f"{caught}/{len(chosen)} mutations caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
