"""Helpers shared by the screenshot scripts (screenshots.py, flowtie_screenshot.py,
screenshot_stem_panel.py, tie_series_screenshot.py).

The scripts are run as ``python scripts/NAME.py``; Python puts scripts/ first on sys.path, so they
import this module as ``from _screenshot_common import ...``. Qt is imported lazily (after napari
has picked the binding).
"""

from __future__ import annotations

import sys
import time


def _process(seconds: float = 0.3) -> None:
    """Pump Qt events for ``seconds`` (lets the canvas, docks and layer list redraw)."""
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def _dismiss_toasts(viewer, settle: float = 0.3) -> None:
    """Close napari's notification pop-ups (e.g. a deprecation notice) before a shot."""
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
            toast.close()
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    _process(settle)


def _widen_dock(viewer, panel, width: int = 400) -> None:
    """Resize the QDockWidget holding ``panel`` to ``width`` px (no-op if it is not docked)."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QDockWidget

    widget = panel
    while widget is not None and not isinstance(widget, QDockWidget):
        widget = widget.parentWidget()
    if widget is not None:
        viewer.window._qt_window.resizeDocks([widget], [width], Qt.Horizontal)


def _dock(viewer, panel, name: str, width: int = 400, area: str = "right"):
    """Dock an already built ``panel`` under ``name`` and widen the dock to ``width`` px."""
    dock = viewer.window.add_dock_widget(panel, name=name, area=area)
    _widen_dock(viewer, panel, width)
    return dock


def _dock_plugin(viewer, widget_name: str, width: int = 400, plugin: str = "napari-phase", fallback=None):
    """Dock the plugin widget ``widget_name`` through napari's plugin manager, widened to ``width`` px.

    ``fallback(viewer)`` (optional) builds the panel when the plugin route fails (e.g. the
    manifest is not valid in this checkout); it is then docked directly under ``widget_name``.
    Returns the panel.
    """
    try:
        _, panel = viewer.window.add_plugin_dock_widget(plugin, widget_name)
    except Exception as exc:  # noqa: BLE001
        if fallback is None:
            raise
        print(f"add_plugin_dock_widget failed ({exc}); docking the panel directly", file=sys.stderr)
        panel = fallback(viewer)
        viewer.window.add_dock_widget(panel, name=widget_name, area="right")
    _widen_dock(viewer, panel, width)
    return panel
