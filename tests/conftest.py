import os
import subprocess
import sys

import numpy as np
import pytest

# Keep torch from oversubscribing the small CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")

#: Fixtures that build a napari viewer (its canvas needs OpenGL on a display).
VIEWER_FIXTURES = {"make_napari_viewer", "make_napari_viewer_proxy", "napari_viewer"}
#: pytest-qt fixtures that create the QApplication (fine offscreen, fatal without a display).
QT_FIXTURES = {"qtbot", "qapp", "qtmodeltester"}
#: NAPARI_PHASE_GUI_TESTS=1 runs the viewer tests without probing, =0 leaves them out.
GUI_ENV = "NAPARI_PHASE_GUI_TESTS"
HOW_TO = ("install Xvfb and Mesa (apt-get install xvfb xauth libgl1-mesa-dri; `make test` does it when root) "
          "or run on a display; " + GUI_ENV + "=1 forces them")

# A child Python asks Qt for a window-system OpenGL context: the same thing napari's canvas needs.
# It runs apart because Qt aborts the whole process (not an exception) when it finds no display.
_PROBE = """
from qtpy.QtGui import QOffscreenSurface, QOpenGLContext
from qtpy.QtWidgets import QApplication
app = QApplication([])
ctx = QOpenGLContext()
surface = QOffscreenSurface()
surface.create()
ok = ctx.create() and surface.isValid() and ctx.makeCurrent(surface)
print("platform", app.platformName(), "gl", bool(ok))
raise SystemExit(0 if ok and app.platformName() not in ("offscreen", "minimal") else 3)
"""


def viewer_tests_unavailable() -> str | None:
    """Why napari's viewer cannot be built here, or None when it can (the probe above)."""
    forced = os.environ.get(GUI_ENV)
    if forced == "1":
        return None
    if forced == "0":
        return f"{GUI_ENV}=0"
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY is unset)"
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "QT_API": os.environ.get("QT_API", "pyqt6")})
    except subprocess.TimeoutExpired:
        return "Qt's OpenGL probe hung"
    if proc.returncode != 0:
        last = (proc.stdout + proc.stderr).strip().splitlines()
        return f"no OpenGL context on display {os.environ.get('DISPLAY', '')!r} ({last[-1][:80] if last else proc.returncode})"
    return None


def _needs_viewer(item) -> bool:
    return item.get_closest_marker("gui") is not None or bool(VIEWER_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config, items):
    """Without a display that gives OpenGL, leave the viewer tests out (one line at the end says why)
    and let the other Qt tests (qtbot, widgets without a canvas) run on Qt's offscreen platform."""
    if not any(_needs_viewer(it) or QT_FIXTURES & set(getattr(it, "fixturenames", ())) for it in items):
        return
    why = viewer_tests_unavailable()
    if why is None:
        return
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before pytest-qt's qapp exists: no abort on a missing display
    viewer_items = [it for it in items if _needs_viewer(it)]
    if not viewer_items:
        return
    keep = [it for it in items if not _needs_viewer(it)]
    config.hook.pytest_deselected(items=viewer_items)
    items[:] = keep
    config._napari_phase_gui_skip = f"{len(viewer_items)} viewer tests left out: {why}; to run them, {HOW_TO}."


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    line = getattr(config, "_napari_phase_gui_skip", None)
    if line:
        terminalreporter.write_line(f"napari-phase: {line}", yellow=True)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _napari_phase_registered():
    """napari's test viewer does not discover installed plugins by itself: register ours."""
    from npe2 import PluginManager, PluginManifest

    pm = PluginManager.instance()
    if "napari-phase" not in pm:
        pm.register(PluginManifest.from_distribution("napari-phase"))
    yield
