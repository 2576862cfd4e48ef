"""widgets/_form.py: panel fields declared once, built, read and prefilled from one table
(Qt widgets only, no viewer: runs on Qt's offscreen platform where there is no display)."""

import pytest

pytest.importorskip("qtpy")


@pytest.fixture
def fields():
    from napari_phase.widgets._form import Field

    return (Field("defocus", "defocus_nm", "defocus (mm)", -1.0, -100.0, 100.0, 3, 0.1, "tip d", scale=1e6,
                  from_metadata=True),
            Field("qc", "qc_per_nm", "qc (1/nm)", 0.0, 0.0, 1.0, 4, 0.001, special="auto", from_metadata=True),
            Field("iters", "iterations", "iterations", 300, 1, 5000, integer=True),
            Field("other", "voltage_kv", "voltage (kV)", 200.0, 1.0, 3000.0, 1))


def test_fields_build_rows_in_order_with_units_and_tooltips(qtbot, fields):
    from qtpy.QtWidgets import QFormLayout, QSpinBox, QWidget

    from napari_phase.widgets._form import add_fields

    w = QWidget()
    qtbot.addWidget(w)
    form = QFormLayout(w)
    add_fields(w, form, fields)
    assert [form.labelForField(getattr(w, f.attr)).text() for f in fields] == [f.label for f in fields]
    assert w.defocus.value() == pytest.approx(-1.0) and w.defocus.decimals() == 3 and w.defocus.toolTip() == "tip d"
    assert (w.defocus.minimum(), w.defocus.maximum()) == (-100.0, 100.0)
    assert w.qc.specialValueText() == "auto" and w.qc.text() == "auto"
    assert isinstance(w.iters, QSpinBox) and w.iters.value() == 300
    assert not w.defocus.keyboardTracking()


def test_read_scales_and_turns_special_text_into_none(qtbot, fields):
    from qtpy.QtWidgets import QFormLayout, QWidget

    from napari_phase.widgets._form import add_fields, read_fields

    w = QWidget()
    qtbot.addWidget(w)
    add_fields(w, QFormLayout(w), fields)
    p = read_fields(w, fields)
    assert p == {"defocus_nm": pytest.approx(-1e6), "qc_per_nm": None, "iterations": 300, "voltage_kv": 200.0}
    assert isinstance(p["iterations"], int)
    w.defocus.setValue(0.5)
    w.qc.setValue(0.002)
    p = read_fields(w, fields)
    assert p["defocus_nm"] == pytest.approx(5e5) and p["qc_per_nm"] == pytest.approx(0.002)


def test_prefill_divides_by_the_scale_and_skips_what_is_not_a_number(qtbot, fields):
    from qtpy.QtWidgets import QFormLayout, QWidget

    from napari_phase.widgets._form import add_fields, prefill_fields

    w = QWidget()
    qtbot.addWidget(w)
    add_fields(w, QFormLayout(w), fields)
    done = prefill_fields(w, fields, {"defocus_nm": -2.5e6, "qc_per_nm": "x", "voltage_kv": 300.0, "iterations": 9})
    assert done == ["defocus_nm"]  # qc is not a number; voltage and iterations are not prefilled fields
    assert w.defocus.value() == pytest.approx(-2.5) and w.other.value() == pytest.approx(200.0) and w.iters.value() == 300


def test_panels_read_their_tables_as_their_solvers_expect(qtbot):
    """The FlowTIE panel and the TIE series panel's OVF section, built on a headless ViewerModel:
    the defaults read as the keywords their functions take (mm shown → nm passed, 'none'/'from
    file'/'cell size' → None)."""
    from napari.components import ViewerModel

    from napari_phase.widgets._form import read_fields
    from napari_phase.widgets.flowtie_panel import FlowTIEPanel
    from napari_phase.widgets.tie_series_panel import OVF_FIELDS, TieSeriesPanel

    ft = FlowTIEPanel(ViewerModel())
    qtbot.addWidget(ft)
    assert ft.parameters() == {"defocus_step_nm": 1.0, "energy_kev": 300.0, "pixel_size_a": 0.1, "semiangle_mrad": 20.0,
                               "detector_mrad": 2.0, "detector_mrad_per_px": 1.0, "steps": 300, "register": False,
                               "device": "auto", "uncertainty": False}
    ft.semiangle.setValue(0.0)
    assert ft.parameters()["semiangle_mrad"] is None
    tie = TieSeriesPanel(ViewerModel())
    qtbot.addWidget(tie)
    assert read_fields(tie, OVF_FIELDS) == {"tilt_x_deg": 0.0, "tilt_y_deg": 0.0, "defocus_nm": pytest.approx(-1e5),
                                            "ms_a_per_m": None, "film_thickness_nm": None, "pixel_size_nm": None,
                                            "noise": 0.0}
    tie.ovf_ms.setValue(8e5)
    tie.ovf_defocus.setValue(0.25)
    p = read_fields(tie, OVF_FIELDS)
    assert p["ms_a_per_m"] == pytest.approx(8e5) and p["defocus_nm"] == pytest.approx(2.5e5)
    import inspect

    from napari_phase.ltem.micromagnetic import simulate_from_magnetization

    assert set(p) <= set(inspect.signature(simulate_from_magnetization).parameters)
    # the series' own table: step shown in mm reaches the TIE in nm; qc "off" -> 0.0 (plain Laplacian)
    from napari_phase.widgets.tie_series_panel import REGULARISATION

    tie.step_mm.setValue(0.25)
    tie.max_rot.setValue(5.0)
    tie.regularisation.setCurrentText(next(k for k, v in REGULARISATION.items() if v == "value"))
    q = tie.parameters()
    assert q["defocus_step_nm"] == pytest.approx(2.5e5) and q["qc_per_nm"] == 0.0 and q["max_rotation_deg"] == 5.0
    assert q["pixel_size_nm"] == 5.0 and q["voltage_kv"] == 200.0 and tie.qc.text() == "off"
    tie.qc.setValue(0.002)
    assert tie.parameters()["qc_per_nm"] == pytest.approx(0.002)


def test_stem_panel_reads_its_calibration_table_as_calibration_keywords(qtbot):
    """The 4D-STEM panel on a headless ViewerModel: its calibration table reads as the keywords of
    :class:`Calibration` (the stem methods' input): "? (enter)" / "= x" / "centre" → None, the y step
    joined to the x step, the centre as (cy, cx); the panel's calibration() is exactly that."""
    import dataclasses

    from napari.components import ViewerModel

    from napari_phase.stem.calibration import Calibration
    from napari_phase.widgets._form import read_fields
    from napari_phase.widgets.stem_panel import CALIBRATION_FIELDS, StemPanel, calibration_keywords

    panel = StemPanel(ViewerModel())
    qtbot.addWidget(panel)
    raw = read_fields(panel, CALIBRATION_FIELDS)
    assert raw == {"energy_kev": None, "semiangle_mrad": None, "scan_step_a": None, "scan_step_y_a": None,
                   "detector_mrad_per_px": None, "center_y_px": None, "center_x_px": None, "rotation_deg": 0.0,
                   "defocus_a": 0.0, "cs_mm": 0.0}
    kw = calibration_keywords(raw)
    assert set(kw) <= {f.name for f in dataclasses.fields(Calibration)}
    assert Calibration(**kw) == panel.calibration() == Calibration()
    panel.energy_kev.setValue(300.0)
    panel.semiangle_mrad.setValue(21.4)
    panel.scan_step_a.setValue(0.2)
    panel.scan_step_y_a.setValue(0.25)
    panel.detector_mrad.setValue(0.8)
    panel.center_y.setValue(31.5)
    panel.center_x.setValue(32.0)
    panel.cs_mm.setValue(1.2)
    panel.defocus_a.setValue(-50.0)
    kw = calibration_keywords(read_fields(panel, CALIBRATION_FIELDS))
    assert kw == {"energy_kev": 300.0, "semiangle_mrad": pytest.approx(21.4), "scan_step_a": (0.25, 0.2),
                  "detector_mrad_per_px": pytest.approx(0.8), "center_px": (31.5, 32.0), "rotation_deg": 0.0,
                  "defocus_a": -50.0, "cs_mm": pytest.approx(1.2)}
    assert panel.calibration() == Calibration(**kw)
    panel.scan_step_y_a.setValue(0.2)  # the same as x: a square scan, one step
    panel.center_x.setValue(-1.0)  # one coordinate at "centre": the detector centre
    kw = calibration_keywords(read_fields(panel, CALIBRATION_FIELDS))
    assert kw["scan_step_a"] == pytest.approx(0.2) and kw["center_px"] is None


def test_siprad_reconstruction_table_reads_as_the_jobs_take_it(qtbot):
    """The SIPRAD panel's reconstruction table: whole-number boxes that track keystrokes (as before),
    the preview box's suffix, smoothness "auto" and qc "off" read as None."""
    from napari.components import ViewerModel

    from napari_phase.widgets._form import read_fields
    from napari_phase.widgets.siprad_panel import SipradPanel, reconstruction_fields

    panel = SipradPanel(ViewerModel())
    qtbot.addWidget(panel)
    assert [f.key for f in reconstruction_fields()] == ["iterations", "seed", "preview_every", "smoothness", "qc_per_nm"]
    assert panel.preview_every.suffix() == " iterations" and panel.iterations.keyboardTracking()
    assert not panel.qc.keyboardTracking()  # a double box: reports on Enter/focus-out, as before
    rec = read_fields(panel, reconstruction_fields())
    assert rec["smoothness"] is None and rec["qc_per_nm"] is None and isinstance(rec["seed"], int)
    panel.qc.setValue(0.02)
    assert panel.parameters()["qc_per_nm"] == pytest.approx(0.02)
