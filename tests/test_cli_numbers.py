"""The command line's numbers, read back from its output files (issue 8 §5): defocus sign and
units of `simulate`, `sitie`, `siprad` and `tie` are pinned against the Python API and the truth."""

from __future__ import annotations

import numpy as np
import pytest

from napari_phase.physics.metrics import magnitude_slope
from napari_phase.cli import main
from napari_phase.io.writer import load_result
from napari_phase.physics import pearson_accuracy


def slope(result, truth, crop=4):
    return magnitude_slope(result, truth, crop)


def test_simulate_writes_what_the_api_makes(tmp_path):
    from napari_phase.ltem.simulate import simulate

    out = tmp_path / "sim.npz"
    assert main(["simulate", "--texture", "skyrmions", "--size", "48", "--defocus-mm", "-0.5", "--seed", "4", "--out", str(out)]) == 0
    z = np.load(out)
    ref = simulate("skyrmions", (48, 48), defocus_nm=-0.5e6, seed=4)
    np.testing.assert_allclose(z["image"], ref.image, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z["phase_true"], ref.phase_m, rtol=1e-5, atol=1e-6)
    import json

    assert json.loads(str(z["metadata_json"]))["defocus_nm"] == pytest.approx(-0.5e6)


def _sim_npy(tmp_path, texture="skyrmions", n=64, defocus_nm=-1e6, noise=0.1, seed=3):
    """An image without calibration (plain .npy), so the CLI's own flags decide."""
    from napari_phase.ltem.simulate import simulate

    s = simulate(texture, (n, n), pixel_size_nm=5.0, defocus_nm=defocus_nm, noise=noise, seed=seed)
    p = tmp_path / "img.npy"
    np.save(p, s.image)
    return p, s


def test_sitie_cli_defocus_sign_and_units(tmp_path):
    p, s = _sim_npy(tmp_path, defocus_nm=-0.25e6, noise=0.0)
    out = tmp_path / "sitie.h5"
    assert main(["sitie", str(p), "--pixel-size-nm", "5", "--defocus-mm", "-0.25", "--out", str(out), "--quiet"]) == 0
    r = load_result(out)
    assert pearson_accuracy(r.phase, s.phase_m, 4) > 0.9
    # the default Tikhonov cut-off (2/FOV) damps the long wavelengths of this small image (slope ~0.33);
    # a flipped sign (< 0) or a defocus in the wrong unit (x1e3) would not pass
    assert 0.2 < slope(r.phase, s.phase_m) < 1.2


@pytest.mark.parametrize("solver", ["pixelwise", "dip"])
def test_siprad_cli_defocus_sign_and_size(tmp_path, solver):
    p, s = _sim_npy(tmp_path)
    out = tmp_path / "siprad.npz"
    args = ["siprad", str(p), "--pixel-size-nm", "5", "--defocus-mm", "-1", "--solver", solver, "--iterations", "60",
            "--device", "cpu", "--out", str(out), "--quiet"]
    assert main(args) == 0
    r = load_result(out)
    assert r.metadata["parameters"]["defocus_nm"] == pytest.approx(-1e6)
    assert pearson_accuracy(r.phase, s.phase_m, 4) > 0.9
    assert 0.7 < slope(r.phase, s.phase_m) < 1.2
    assert 0.7 < slope(r.by, s.by) < 1.2


def test_tie_cli_step_units_and_size(tmp_path):
    from napari_phase.ltem.forward import Microscope, simulate_image

    y, x = np.mgrid[:64, :64]
    phase = 2 * np.exp(-((x - 32) ** 2 + (y - 30) ** 2) / 80.0)
    paths = []
    for dz, name in ((-2e5, "under"), (0.0, "in"), (2e5, "over")):
        img = simulate_image(phase, pixel_size_nm=5.0, microscope=Microscope(defocus_nm=dz, cs_mm=0, divergence_mrad=0, defocus_spread_nm=0))
        path = tmp_path / f"{name}.npy"
        np.save(path, img)
        paths.append(str(path))
    out = tmp_path / "tie.h5"
    assert main(["tie", *paths, "--pixel-size-nm", "5", "--defocus-step-mm", "0.2", "--qc-per-nm", "0", "--out", str(out), "--quiet"]) == 0
    r = load_result(out)
    assert slope(r.phase, phase) == pytest.approx(1.0, abs=0.05)
    params = r.metadata["parameters"]
    assert params["series_registration"] is None  # no --align: nothing registered
    aligned = tmp_path / "tie_aligned.h5"
    assert main(["tie", *paths, "--pixel-size-nm", "5", "--defocus-step-mm", "0.2", "--qc-per-nm", "0", "--align",
                 "--registration", "cross-correlation", "--out", str(aligned), "--quiet"]) == 0
    r2 = load_result(aligned)
    assert r2.metadata["parameters"]["series_registration"] == "cross-correlation"
    assert slope(r2.phase, phase) == pytest.approx(1.0, abs=0.05)  # no drift: nothing moved
