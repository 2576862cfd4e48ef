"""Mutation check for issue 18 (the first hour of a new user): the headless test hook
(tests/conftest.py), declared dependencies and the house's import direction, the FlowTIE sample
reader in io, the demo's parts and the panels' field tables (widgets/_form.py and the tables of the
FlowTIE, TIE series and SIPRAD panels). Each one-line mutation: src/ ones in a copy of src/
(scripts/mutation_runner.py), the others (conftest, pyproject) in place, restored afterwards.

    python scripts/mutation_check_first_hour.py [index ...]
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from mutation_runner import ROOT, run_one

HEADLESS = ["tests/test_headless.py"]
HOUSE = ["tests/test_house.py"]
IO = ["tests/test_io.py", "-k", "flowtie_sample"]
DEMO = ["tests/test_demo.py"]
FORM = ["tests/test_form.py"]
SIPRAD_GUI = ["GUI", "tests/test_widgets.py", "-k", "prefills_from_layer"]

CONF = "tests/conftest.py"
SD = "src/napari_phase/io/sample_data.py"
FORMPY = "src/napari_phase/widgets/_form.py"
MUT = [
    # ---- make test without a display (in place)
    ("no offscreen platform when the viewer tests are left out", CONF,
     '    os.environ["QT_QPA_PLATFORM"] = "offscreen"', '    pass', HEADLESS),
    ("an unset DISPLAY is trusted (viewer tests kept)", CONF,
     '        return "no display (DISPLAY is unset)"', '        return None', HEADLESS),
    ("the OpenGL probe's answer ignored", CONF,
     "    if proc.returncode != 0:\n", "    if False:\n", HEADLESS),
    ("the closing line not written", CONF,
     '        terminalreporter.write_line(f"napari-phase: {line}", yellow=True)', '        pass', HEADLESS),
    ("the switch =0 ignored", CONF, '    if forced == "0":', '    if forced == "no":', HEADLESS),
    # ---- declared dependencies (in place)
    ("superqt not declared", "pyproject.toml", '    "superqt>=0.6",\n', "", HOUSE),
    ("Pillow not declared", "pyproject.toml", '    "Pillow>=9.0",\n', "", HOUSE),
    # ---- io reads the FlowTIE sample without the method (copy of src/)
    ("io imports the FlowTIE method again", SD,
     "    return load_triplet_sample_npz(sample_path(",
     "    from ..flowtie.sample import make_triplet_sample  # noqa: F401\n    return load_triplet_sample_npz(sample_path(", HOUSE),
    ("triplet scaled in pixel units on its first axis too", SD,
     '"scale": [1.0, px, px]', '"scale": [px, px, px]', IO),
    ("σV and exit-wave phase swapped", SD,
     '            sv = np.asarray(npz["sigma_v"], np.float32)', '            sv = np.asarray(npz["exit_wave_phase"], np.float32)', IO),
    # ---- the demo
    ("4D-STEM truth sampled with the scan step as its pixel", "src/napari_phase/demo/stem.py",
     "score(res, phase, px_true, meta[\"scan_step_a\"], two_alpha)", "score(res, phase, meta[\"scan_step_a\"], meta[\"scan_step_a\"], two_alpha)", DEMO),
    ("4D-STEM xc of the negated phase", "src/napari_phase/bench/stem.py",
     '    return {"xc": xc(res.phase, truth, crop)', '    return {"xc": xc(-res.phase, truth, crop)', DEMO),
    ("4D-STEM energy from the wrong key", "src/napari_phase/demo/stem.py",
     'calib = dict(energy_kev=meta["voltage_kv"]', 'calib = dict(energy_kev=0.5 * meta["voltage_kv"]', DEMO),
    ("FlowTIE case with σV and exit-wave truths swapped", "src/napari_phase/demo/flowtie.py",
     'case = {"tri": tri, "target": truth["sigma_v"], "exit_wave_phase": truth["exit_wave_phase"],',
     'case = {"tri": tri, "target": truth["exit_wave_phase"], "exit_wave_phase": truth["sigma_v"],', DEMO),
    ("FlowTIE triplet order reversed", "src/napari_phase/demo/flowtie.py",
     'case = {"tri": tri,', 'case = {"tri": tri[::-1],', DEMO),
    ("series scored on φe as φm", "src/napari_phase/bench/ltem_series.py",
     "    return _scores(pm, pe, s.phase_m[crop], s.phase_e[crop])", "    return _scores(pe, pm, s.phase_m[crop], s.phase_e[crop])", DEMO),
    ("series flipped stack not passed", "src/napari_phase/demo/series.py",
     "flipped=s.flipped, flip_axis", "flipped=None, flip_axis", DEMO),
    ("LTEM truth B from a negated phase", "src/napari_phase/demo/ltem.py",
     'bx_t, by_t = induction_from_phase(truth["phase_true"]', 'bx_t, by_t = induction_from_phase(-truth["phase_true"]', DEMO),
    ("summary table shows the runtime as the score", "src/napari_phase/demo/_report.py",
     "{_fmt(r.get(key), 3)} | {what}", "{_fmt(r.get('runtime_s'), 3)} | {what}", DEMO),
    ("unknown parts accepted", "src/napari_phase/cli.py", "    if bad or not parts:", "    if False:", DEMO),
    # ---- field tables
    ("read ignores the unit scale", FORMPY, "float(v) * f.scale", "float(v)", FORM),
    ("special text never read as None", FORMPY, "        if f.special and v <= box.minimum():", "        if False:", FORM),
    ("prefill multiplies by the scale", FORMPY, "float(metadata[f.key]) / f.scale", "float(metadata[f.key]) * f.scale", FORM),
    ("prefill ignores from_metadata", FORMPY, "        if f.from_metadata and metadata.get(f.key) is not None:",
     "        if metadata.get(f.key) is not None:", FORM),
    ("FlowTIE aperture without its 'none'", "src/napari_phase/widgets/flowtie_panel.py",
     '2, 1.0, special="none", from_metadata=True,', '2, 1.0, from_metadata=True,', FORM),
    ("OVF defocus scale mm -> µm", "src/napari_phase/widgets/tie_series_panel.py",
     '"Defocus in mm, negative = under-focus",\n          scale=1e6)', '"Defocus in mm, negative = under-focus",\n          scale=1e3)', FORM),
    ("OVF Ms without 'from file'", "src/napari_phase/widgets/tie_series_panel.py",
     '0.0, 0.0, 1e8, 0, 1e4, special="from file",', '0.0, 0.0, 1e8, 0, 1e4,', FORM),
    ("SIPRAD defocus not prefilled", "src/napari_phase/widgets/siprad_panel.py",
     '0.1, scale=1e6, from_metadata=True,', '0.1, scale=1e6,', SIPRAD_GUI),
    ("SIPRAD defocus scale mm -> µm", "src/napari_phase/widgets/siprad_panel.py",
     '0.1, scale=1e6, from_metadata=True,', '0.1, scale=1e3, from_metadata=True,', SIPRAD_GUI),
]


def run_in_place(k, mutation) -> bool | None:
    name, path, old, new, tests = mutation
    f = os.path.join(ROOT, path)
    text = open(f).read()
    if text.count(old) != 1:
        print(f"{k} {name}: MUTATION NOT APPLIED (pattern count {text.count(old)})", flush=True)
        return None
    t0 = time.time()
    try:
        open(f, "w").write(text.replace(old, new))
        env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src"), "QT_API": "pyqt6"}
        p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=900)
    finally:
        open(f, "w").write(text)
    caught = p.returncode != 0
    tail = [ln for ln in p.stdout.splitlines() if ln.strip()][-1:]
    print(f"{k} {name}: {'CAUGHT' if caught else 'survived'} ({time.time() - t0:.0f} s; {' '.join(tests)}; "
          f"{tail[0] if tail else ''})", flush=True)
    return caught


def main(argv=None) -> int:
    only = set(sys.argv[1:] if argv is None else argv)
    results = []
    for k, m in enumerate(MUT):
        if only and str(k) not in only:
            continue
        results.append(run_one(k, m, tag="first_hour") if m[1].startswith("src/") else run_in_place(k, m))
    applied = [r for r in results if r is not None]
    print(f"caught {sum(applied)} / {len(applied)}" + (f" ({len(results) - len(applied)} not applied)" if len(applied) < len(results) else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
