"""`make test` on a machine without a display (tests/conftest.py): the viewer tests are left out
with one closing line saying why, Qt tests without a canvas run offscreen, nothing aborts.
Each case runs pytest in a child process on three tiny tests beside a copy of the conftest."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TINY = '''
def test_viewer(make_napari_viewer):
    make_napari_viewer()

def test_widget(qtbot):
    from qtpy.QtWidgets import QLabel
    w = QLabel("x")
    qtbot.addWidget(w)
    assert w.text() == "x"

def test_plain():
    assert 1 + 1 == 2
'''


def _run(tmp_path, **env_changes):
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_tiny.py").write_text(TINY)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "NAPARI_PHASE_GUI_TESTS")}
    env.update({k: v for k, v in env_changes.items() if v is not None}, QT_API="pyqt6")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "-o", "addopts=", str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_no_display_leaves_viewer_tests_out_with_one_line(tmp_path):
    rc, out = _run(tmp_path)
    assert rc == 0, out
    assert "2 passed, 1 deselected" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("napari-phase:")]
    assert len(lines) == 1 and "1 viewer tests left out: no display" in lines[0] and "xvfb" in lines[0].lower()
    assert "Fatal Python error" not in out


def test_a_display_without_a_server_is_probed_not_trusted(tmp_path):
    rc, out = _run(tmp_path, DISPLAY=":97")  # nothing listens there
    assert rc == 0, out
    assert "2 passed, 1 deselected" in out and "no OpenGL context on display ':97'" in out


def test_switch_leaves_them_out_on_request(tmp_path):
    rc, out = _run(tmp_path, NAPARI_PHASE_GUI_TESTS="0")
    assert rc == 0 and "2 passed, 1 deselected" in out and "NAPARI_PHASE_GUI_TESTS=0" in out, out


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run not installed")
def test_under_xvfb_everything_runs(tmp_path):
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_tiny.py").write_text(TINY)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM", "NAPARI_PHASE_GUI_TESTS")}
    proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable, "-m", "pytest", "-q",
                           "-p", "no:cacheprovider", "-o", "addopts=", str(tmp_path)], cwd=tmp_path,
                          env={**env, "QT_API": "pyqt6"}, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "3 passed" in out and "left out" not in out, out
