"""Mutation check for issue 8 (LTEM): each one-line mutation in a COPY of src/ (PYTHONPATH), only the
relevant tests; prints CAUGHT/survived per mutation and the count. Usage: python scripts/mutation_check_ltem.py [index ...]
(GUI mutations need xvfb-run on PATH.)"""
import os, shutil, subprocess, sys, time
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUT = [
 ("SIPRAD B·t halved", "src/napari_phase/ltem/siprad.py",
  "    bx, by = induction_from_phase(phase, problem.pixel_size_nm)\n",
  "    bx, by = [0.5 * b for b in induction_from_phase(phase, problem.pixel_size_nm)]\n",
  ["tests/test_ltem_magnitudes.py", "-k", "true_size"]),
 ("SIPRAD phase doubled", "src/napari_phase/ltem/siprad.py",
  '    arrays: dict[str, np.ndarray] = {"phase": phase, "bx": bx, "by": by}\n',
  '    arrays: dict[str, np.ndarray] = {"phase": 2 * phase, "bx": bx, "by": by}\n',
  ["tests/test_ltem_magnitudes.py", "-k", "true_size"]),
 ("interaction constant doubled inside SIPRAD", "src/napari_phase/ltem/siprad.py",
  "        self.phase_per_log_amp = interaction_constant(",
  "        self.phase_per_log_amp = 2 * interaction_constant(",
  ["tests/test_ltem_magnitudes.py", "-k", "electrostatic"]),
 ("TIE dI/dz doubled", "src/napari_phase/ltem/series.py",
  "    didz = didz_least_squares(stack, z) / scale\n",
  "    didz = 2 * didz_least_squares(stack, z) / scale\n",
  ["tests/test_ltem_magnitudes.py", "tests/test_cli_numbers.py", "-k", "tie"]),
 ("CLI --defocus-mm sign flipped", "src/napari_phase/cli.py",
  'args.defocus_mm, "--defocus-mm", scale=1e6)',
  'args.defocus_mm, "--defocus-mm", scale=-1e6)',
  ["tests/test_cli_numbers.py"]),
 ("simulate --defocus-mm sign flipped", "src/napari_phase/cli.py",
  "shape=(args.size, args.size), defocus_nm=args.defocus_mm * 1e6,",
  "shape=(args.size, args.size), defocus_nm=-args.defocus_mm * 1e6,",
  ["tests/test_cli_numbers.py", "tests/test_cli.py"]),
 ("TIE --defocus-step-mm scaled by 1e3", "src/napari_phase/cli.py",
  'kwargs["defocus_step_nm"] = args.defocus_step_mm * 1e6',
  'kwargs["defocus_step_nm"] = args.defocus_step_mm * 1e3',
  ["tests/test_cli_numbers.py", "-k", "tie"]),
 ("panel silently drops the mask", "src/napari_phase/widgets/siprad_panel.py",
  'params["amplitude"] = self._capture_mask(image) if mode == AMP_MASK else',
  'params["amplitude"] = "uniform" if mode == AMP_MASK else',
  ["GUI", "tests/test_siprad_panel_real.py", "-k", "mask"]),
 ("joint mode forced to all-ones amplitude", "src/napari_phase/ltem/siprad.py",
  "        amp, _, _ = two_level_projection(amp)\n",
  "        amp = np.ones_like(amp)\n",
  ["tests/test_siprad.py", "-k", "joint"]),
 ("SITIE defocus sign flipped inside", "src/napari_phase/ltem/sitie.py",
  "        return _sitie_frame(arr, px, df, kv, qc, pad)\n", "        return _sitie_frame(arr, px, -df, kv, qc, pad)\n", None),
 ("ThreadTuner keeps the slowest count", "src/napari_phase/threads.py",
  "best = min(medians, key=lambda c: (medians[c], c))",
  "best = max(medians, key=lambda c: (medians[c], c))",
  ["tests/test_threads.py"]),
 ("ThreadTuner does not restore the caller's count", "src/napari_phase/threads.py",
  "            self._apply(self._original)\n", "            pass\n",
  ["tests/test_threads.py"]),
 ("auto boundary never detects periodic", "src/napari_phase/ltem/siprad.py",
  'kind = "periodic" if looks_periodic(data) else "extend"', 'kind = "extend"',
  ["tests/test_ltem_boundary.py", "-k", "recorded"]),
 ("settle rule never fires", "src/napari_phase/ltem/siprad.py",
  'if change < opts["settle_tolerance"]:', 'if change < 0:',
  ["tests/test_ltem_boundary.py", "-k", "settle"]),
 ("ring phase not cropped (window offset lost)", "src/napari_phase/ltem/siprad.py",
  "        return x[..., t : t + ny, l : l + nx]\n", "        return x[..., :ny, :nx]\n",
  ["tests/test_ltem_boundary.py", "-k", "mask or odd"]),
 ("noise variance halved (discrepancy stop)", "src/napari_phase/ltem/siprad.py",
  "    return float(np.median(np.abs(d)) / 0.6745) ** 2\n", "    return float(np.median(np.abs(d)) / 0.6745) ** 2 / 2\n",
  ["tests/test_siprad.py", "-k", "noise_estimate"]),
]
only = set(sys.argv[1:])
caught = 0; total = 0; lines = []
for k, (name, path, old, new, tests) in enumerate(MUT):
    if only and str(k) not in only:
        continue
    d = f"/tmp/napari_phase_mut_{k}"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(f"{ROOT}/src", f"{d}/src")
    f = f"{d}/src/{path[4:]}"
    text = open(f).read()
    if text.count(old) != 1:
        lines.append(f"{k} {name}: MUTATION NOT APPLIED (pattern count {text.count(old)})"); print(lines[-1], flush=True); continue
    open(f, "w").write(text.replace(old, new))
    if tests is None:
        tests = ["tests/test_ltem_magnitudes.py", "tests/test_ltem_baselines.py", "-k", "sitie"]
    gui = tests[0] == "GUI"
    cmd = [f"{ROOT}/.venv/bin/python", "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-W", "ignore"] + [t for t in tests if t != "GUI"]
    if gui:
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24"] + cmd
    env = {**os.environ, "PYTHONPATH": f"{d}/src", "QT_API": "pyqt6"}
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    total += 1
    ok = p.returncode != 0
    caught += ok
    tail = [l for l in p.stdout.splitlines() if l.strip()][-1:] 
    lines.append(f"{k} {name}: {'CAUGHT' if ok else 'survived'} ({time.time()-t0:.0f} s; {' '.join(tests)}; {tail[0] if tail else ''})")
    print(lines[-1], flush=True)
    shutil.rmtree(d, ignore_errors=True)
print(f"caught {caught} / {total}")
