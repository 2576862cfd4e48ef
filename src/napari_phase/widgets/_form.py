"""Small Qt helpers every panel shares: spin boxes, tidy forms, row visibility, device choice, scrolling."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QDoubleSpinBox, QFormLayout, QFrame, QScrollArea, QVBoxLayout, QWidget


def spin(value: float, lo: float, hi: float, decimals: int, step: float, tooltip: str) -> QDoubleSpinBox:
    """A double spin box that reports on Enter/focus-out, not on every keystroke."""
    box = QDoubleSpinBox()
    box.setDecimals(decimals)
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tooltip)
    box.setKeyboardTracking(False)
    return box


def tidy_form(form: QFormLayout) -> None:
    form.setContentsMargins(6, 4, 6, 4)
    form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
    form.setLabelAlignment(Qt.AlignRight | Qt.AlignVCenter)
    form.setRowWrapPolicy(QFormLayout.DontWrapRows)


def set_row_visible(form: QFormLayout, field: QWidget, visible: bool) -> None:
    """Show or hide a form row: the field and its label."""
    label = form.labelForField(field)
    if label is not None:
        label.setVisible(visible)
    field.setVisible(visible)


def device_choices() -> list[str]:
    """'auto', the accelerators found, 'cpu'."""
    try:
        from ..jobs import available_devices

        found = [d for d in available_devices() if d != "cpu"]
    except Exception:  # noqa: BLE001 - torch missing or broken: CPU only
        found = []
    return ["auto", *found, "cpu"]


def scrolling_panel(panel: QWidget, content: QWidget, min_width: int = 340) -> None:
    """Put ``content`` in a vertical scroll area filling ``panel`` (docks stay usable when short)."""
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    scroll.setWidget(content)
    outer = QVBoxLayout(panel)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    panel.setMinimumWidth(min_width)
