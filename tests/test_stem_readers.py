"""Real files from real detectors and programs (../shared/real-files, never copied into the package).

Each must open with the right kind, shape, axis order, dtype and calibration, lazily on request.
A reader that raises FAILS here; only a missing folder skips (the file set is not shipped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_phase.io.readers import load, load_all, read
from napari_phase.jobs import InputError

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-files"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real-file folder {REAL} is absent (not shipped)")


def _lazy(data) -> bool:
    return isinstance(data, np.memmap) or not isinstance(data, np.ndarray)


def test_merlin_mib_4dstem():
    ds = load(REAL / "001_4x2_6bit.mib")
    assert ds.kind == "4dstem" and ds.shape == (2, 4, 256, 256) and np.dtype(ds.data.dtype) == np.uint8
    assert ds.axis_names == ("scan_y", "scan_x", "ky", "kx")
    assert "scan_step_a" not in ds.calibration  # the file has none: the panel asks for it
    assert _lazy(load(REAL / "001_4x2_6bit.mib", lazy=True).data)
    arr = np.asarray(ds.data)
    assert arr.max() > 0 and arr.max() < 64  # 6-bit counter


def test_merlin_single_chip_frames():
    ds = load(REAL / "Single_9_Frame_CounterDepth_12_Rows_256.mib")
    assert ds.kind == "stack" and ds.shape == (9, 256, 256)
    assert np.dtype(ds.data.dtype).itemsize == 2 and np.dtype(ds.data.dtype).kind == "u"


def test_arina_nexus_bitshuffle():
    from rsciio.arina import file_reader

    ds = load(REAL / "test_00_master.h5")
    assert ds.kind == "4dstem" and ds.shape == (4, 4, 192, 192) and np.dtype(ds.data.dtype) == np.uint16
    assert ds.calibration["scan_step_a"] == pytest.approx(1.39152, rel=1e-5)
    assert ds.calibration["voltage_kv"] == pytest.approx(300.0)
    ref = file_reader(str(REAL / "test_00_master.h5"))[0]["data"]
    np.testing.assert_array_equal(np.asarray(ds.data), ref)
    lazy = load(REAL / "test_00_master.h5", lazy=True)
    assert _lazy(lazy.data) and lazy.shape == (4, 4, 192, 192)
    data, kwargs, kind = read(str(REAL / "test_00_master.h5"))[0]
    assert kind == "image" and kwargs["scale"][:2] == pytest.approx([1.39152, 1.39152], rel=1e-5)
    assert kwargs["units"][:2] == ["Å", "Å"] and kwargs["metadata"]["kind"] == "4dstem"


def test_arina_metadata_file_alone_says_what_to_open():
    with pytest.raises(InputError, match="test_00_master.h5"):
        load(REAL / "test_00.h5")


def test_arina_data_file_alone_decodes_with_hdf5plugin():
    ds = load(REAL / "test_00_data_000001.h5")
    assert ds.shape == (16, 192, 192)


def test_prismatic_depth_series():
    ds = load(REAL / "Si100_4D.emd")
    assert ds.kind == "4dstem" and ds.shape == (2, 11, 11, 8, 8)
    assert ds.axis_names == ("depth", "scan_y", "scan_x", "ky", "kx")
    cal = ds.calibration
    # Prismatic's numbers are Å (probe step rx = 0.5 Å; 1/Q spacing = the 5.43 Å Si cell)
    assert cal["scan_step_a"] == pytest.approx(0.5)
    assert 1 / cal["detector_inv_a_per_px"] == pytest.approx(5.43, rel=1e-3)
    assert cal["voltage_kv"] == pytest.approx(100.0) and cal["semiangle_mrad"] == pytest.approx(30.0)
    assert ds.scale[0] == pytest.approx(2.715, rel=1e-4) and ds.units == ("Å", "Å", "Å", "1/Å", "1/Å")
    import h5py

    with h5py.File(REAL / "Si100_4D.emd", "r") as f:
        raw = f["4DSTEM_simulation/data/datacubes/CBED_array_depth0001/datacube"][()]
    np.testing.assert_array_equal(np.asarray(ds.data)[1], raw.transpose(1, 0, 3, 2))  # (R_x, R_y) -> (y, x)
    lazy = load(REAL / "Si100_4D.emd", lazy=True)
    assert _lazy(lazy.data) and lazy.shape == ds.shape
    _, kwargs, _ = read(str(REAL / "Si100_4D.emd"))[0]
    assert kwargs["axis_labels"] == ["depth", "scan_y", "scan_x", "ky", "kx"]


def test_py4dstem_emd():
    ds = load(REAL / "py4DSTEM_size2x3x4x5.h5")
    assert ds.kind == "4dstem" and ds.shape == (2, 3, 4, 5)
    assert ds.calibration["scan_step_a"] == pytest.approx(1.268, rel=1e-3)
    assert ds.calibration["detector_inv_a_per_px"] == pytest.approx(0.04425, rel=1e-3)
    assert _lazy(load(REAL / "py4DSTEM_size2x3x4x5.h5", lazy=True).data)


def test_blockfile():
    ds = load(REAL / "test1.blo")
    assert ds.kind == "4dstem" and ds.shape == (3, 2, 144, 144) and np.dtype(ds.data.dtype) == np.uint8
    assert ds.calibration["scan_step_a"] == pytest.approx(128.0)
    assert ds.calibration["voltage_kv"] == pytest.approx(200.0)
    assert _lazy(load(REAL / "test1.blo", lazy=True).data)


def test_digitalmicrograph():
    img = load(REAL / "test_STEM_image.dm3")
    assert img.kind == "image" and img.shape == (68, 68)
    assert img.calibration["pixel_size_nm"] == pytest.approx(0.24854, rel=1e-4)
    um = load(REAL / "test_dm_image_um_unit.dm3")
    assert um.calibration["pixel_size_nm"] == pytest.approx(168.67, rel=1e-4)  # 0.16867 µm
    dp = load(REAL / "test_diffraction_pattern.dm3")
    assert dp.shape == (87, 87) and dp.calibration["detector_inv_nm_per_px"] == pytest.approx(0.17443, rel=1e-4)


def test_velox_emd():
    ds = load(REAL / "fei_example_tem_stack.emd")
    assert ds.kind == "stack" and ds.shape == (2, 3, 3)
    assert ds.calibration["pixel_size_nm"] == pytest.approx(0.00817288, rel=1e-4)


def test_every_real_file_opens_or_explains():
    """Nothing crashes: each file gives layers or one InputError line."""
    for p in sorted(REAL.iterdir()):
        if p.is_dir() or p.suffix.lower() in (".md", ".hdr"):
            continue
        try:
            assert load_all(p)
        except InputError as exc:
            assert "\n" not in str(exc) and p.name in str(exc)


def test_real_4d_file_runs_through_the_stem_calibration():
    """The Prismatic file's metadata becomes a usable Calibration (detector sampling via λ)."""
    from napari_phase.stem import Calibration
    from napari_phase.physics.optics import electron_wavelength_a

    _, kwargs, _ = read(str(REAL / "Si100_4D.emd"))[0]
    cal = Calibration.from_metadata(kwargs["metadata"])
    assert cal.energy_kev == 100 and cal.scan_step_a == pytest.approx(0.5)
    assert cal.detector_mrad_per_px == pytest.approx(0.18416 * electron_wavelength_a(100) * 1e3, rel=1e-3)
