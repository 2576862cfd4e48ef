"""Small Qt helpers every panel shares: numeric fields declared once (:class:`Field` tables built
by :func:`add_fields`, read by :func:`read_fields`, prefilled by :func:`prefill_fields`), spin
boxes, tidy forms, row visibility, device choice, scrolling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QDoubleSpinBox, QFormLayout, QFrame, QScrollArea, QSpinBox, QVBoxLayout, QWidget


@dataclass(frozen=True)
class Field:
    """One numeric field of a panel, declared once.

    ``attr``: the panel attribute holding the spin box; ``key``: the parameter name it is read into
    (and the layer-metadata key it is prefilled from when ``from_metadata``); ``label``: the form
    row's text (with the unit shown); ``value``, ``lo``, ``hi``, ``decimals``, ``step``: the box in
    shown units; ``scale``: parameter = shown value × scale (e.g. 1e6 for mm shown, nm passed);
    ``special``: text shown at ``lo`` ("none", "auto", "off"), read as ``None``; ``integer``: a
    whole-number box (QSpinBox); ``suffix``: text after the number; ``keyboard_tracking``: report
    every keystroke (Qt's default) rather than on Enter/focus-out."""

    attr: str
    key: str
    label: str
    value: float
    lo: float
    hi: float
    decimals: int = 2
    step: float = 1.0
    tooltip: str = ""
    scale: float = 1.0
    special: str | None = None
    integer: bool = False
    from_metadata: bool = False
    suffix: str = ""
    keyboard_tracking: bool = False


def field_box(f: Field) -> QDoubleSpinBox | QSpinBox:
    """The spin box of a :class:`Field` (reports on Enter/focus-out, not on every keystroke)."""
    if f.integer:
        box = QSpinBox()
        box.setRange(int(f.lo), int(f.hi))
        box.setSingleStep(max(1, int(f.step)))
        box.setValue(int(f.value))
        box.setToolTip(f.tooltip)
        box.setKeyboardTracking(False)
    else:
        box = spin(f.value, f.lo, f.hi, f.decimals, f.step, f.tooltip)
    if f.special:
        box.setSpecialValueText(f.special)
    if f.suffix:
        box.setSuffix(f.suffix)
    if f.keyboard_tracking:
        box.setKeyboardTracking(True)
    return box


def add_fields(owner: Any, form: QFormLayout, fields: tuple[Field, ...]) -> None:
    """Build each field's box as ``owner.<attr>`` and add it to ``form`` as a labelled row, in order."""
    for f in fields:
        box = field_box(f)
        setattr(owner, f.attr, box)
        form.addRow(f.label, box)


def read_fields(owner: Any, fields: tuple[Field, ...]) -> dict[str, Any]:
    """{key: shown value × scale} of each field (int for integer fields; ``None`` where a field with
    special text sits at its minimum)."""
    out: dict[str, Any] = {}
    for f in fields:
        box = getattr(owner, f.attr)
        v = box.value()
        if f.special and v <= box.minimum():
            out[f.key] = None
        else:
            out[f.key] = int(v) if f.integer else float(v) * f.scale
    return out


def prefill_fields(owner: Any, fields: tuple[Field, ...], metadata: dict) -> list[str]:
    """Set the ``from_metadata`` fields whose key the layer metadata holds (value / scale); returns
    the keys set (a value that is not a number is left to the user)."""
    done = []
    for f in fields:
        if f.from_metadata and metadata.get(f.key) is not None:
            try:
                v = float(metadata[f.key]) / f.scale
                getattr(owner, f.attr).setValue(int(round(v)) if f.integer else v)
            except (TypeError, ValueError, OverflowError):
                continue
            done.append(f.key)
    return done


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
