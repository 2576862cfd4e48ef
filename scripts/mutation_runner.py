"""One mutation-check runner for the project's mutation scripts.

A mutation is ``(name, path, old, new, tests)``: in a COPY of ``src/`` (put first on PYTHONPATH) the
single occurrence of ``old`` in ``path`` becomes ``new``, then only ``tests`` run (a list of pytest
arguments; a leading ``"GUI"`` runs them under xvfb-run). A failing test run means the mutation was
caught. ``main(MUTATIONS)`` prints CAUGHT/survived per mutation and the count; command-line
arguments select mutations by index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_one(k: int, mutation, default_tests=None, tag: str = "mut") -> bool | None:
    """Apply mutation ``k`` in a copy of src/ and run its tests: True caught, False survived, None not applied."""
    name, path, old, new, tests = mutation
    tests = list(tests if tests is not None else default_tests)
    d = f"/tmp/napari_phase_{tag}_{k}"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(f"{ROOT}/src", f"{d}/src")
    f = f"{d}/src/{path[4:]}"
    text = open(f).read()
    if text.count(old) != 1:
        print(f"{k} {name}: MUTATION NOT APPLIED (pattern count {text.count(old)})", flush=True)
        shutil.rmtree(d, ignore_errors=True)
        return None
    open(f, "w").write(text.replace(old, new))
    gui = bool(tests) and tests[0] == "GUI"
    args = [t for t in tests if t != "GUI"]
    python = f"{ROOT}/.venv/bin/python" if os.path.exists(f"{ROOT}/.venv/bin/python") else sys.executable
    cmd = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-W", "ignore", *args]
    if gui:
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *cmd]
    env = {**os.environ, "PYTHONPATH": f"{d}/src", "QT_API": "pyqt6"}
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    caught = p.returncode != 0
    tail = [line for line in p.stdout.splitlines() if line.strip()][-1:]
    print(f"{k} {name}: {'CAUGHT' if caught else 'survived'} ({time.time() - t0:.0f} s; {' '.join(tests)}; "
          f"{tail[0] if tail else ''})", flush=True)
    shutil.rmtree(d, ignore_errors=True)
    return caught


def main(mutations, default_tests=None, tag: str = "mut", argv=None) -> int:
    only = set(sys.argv[1:] if argv is None else argv)
    results = [run_one(k, m, default_tests, tag) for k, m in enumerate(mutations) if not only or str(k) in only]
    applied = [r for r in results if r is not None]
    print(f"caught {sum(applied)} / {len(applied)}" + (f" ({len(results) - len(applied)} not applied)" if len(applied) < len(results) else ""))
    return 0
