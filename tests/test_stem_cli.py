"""`napari-phase icom|ssb|cnn`: numbers read back from the output file; one line + exit 2 on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_phase.cli import main
from napari_phase.io.writer import load_result
from napari_phase.physics.metrics import xc
from test_stem_sim import atoms_phase, blurred_truth, simulate

M, DX, STEP = 64, 0.2, 2


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    phi = 0.1 * atoms_phase(M, DX)
    data, p, det, step_a = simulate(phi, DX, STEP)
    folder = tmp_path_factory.mktemp("stemcli")
    calibrated = folder / "scan.npz"
    meta = {"voltage_kv": 300.0, "scan_step_a": step_a, "detector_mrad_per_px": det, "semiangle_mrad": 20.0}
    np.savez(calibrated, data=data, metadata_json=json.dumps(meta))
    bare = folder / "bare.npy"
    np.save(bare, data)
    return {"phi": phi, "p": p, "det": det, "step": step_a, "calibrated": calibrated, "bare": bare, "data": data}


def test_icom_cli_reads_calibration_from_file_and_writes_the_phase(scan, tmp_path):
    out = tmp_path / "icom.h5"
    assert main(["icom", str(scan["calibrated"]), "--out", str(out), "--quiet"]) == 0
    res = load_result(out)
    truth = blurred_truth(scan["phi"], scan["p"], STEP)
    assert xc(res.phase, truth) > 0.999
    assert np.std(res.phase) == pytest.approx(np.std(truth), rel=0.03)
    assert res.pixel_size_a == pytest.approx(scan["step"])
    assert res.metadata["method"] == "icom"


def test_icom_cli_options_override_and_auto_rotation(scan, tmp_path, capsys):
    out = tmp_path / "icom2.npz"
    assert main(["icom", str(scan["bare"]), "--energy-kev", "300", "--scan-step-a", str(scan["step"] / 2),
                 "--detector-mrad-per-px", str(scan["det"]), "--rotation-deg", "auto", "--out", str(out), "--quiet"]) == 0
    res = load_result(out)
    truth = blurred_truth(scan["phi"], scan["p"], STEP)
    assert xc(res.phase, truth) > 0.99
    # half the step: half the phase (the step enters the integration)
    assert np.std(res.phase) == pytest.approx(0.5 * np.std(truth), rel=0.05)
    assert "rotation guess" in capsys.readouterr().err


def test_ssb_cli_with_detector_from_disc(scan, tmp_path, capsys):
    out = tmp_path / "ssb.h5"
    assert main(["ssb", str(scan["bare"]), "--energy-kev", "300", "--scan-step-a", str(scan["step"]),
                 "--semiangle-mrad", "20", "--detector-from-disc", "--center", "disc", "--out", str(out), "--quiet"]) == 0
    res = load_result(out)
    truth = scan["phi"][::STEP, ::STEP]
    assert xc(res.phase, truth) > 0.98
    assert np.std(res.phase) == pytest.approx(np.std(truth), rel=0.1)
    # the 0.4 Å step undersamples SSB's band (λ/(4α) = 0.246 Å): one warning line, no Python warning text
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "undersamples SSB" in ln]
    assert len(lines) == 1 and lines[0].startswith("napari-phase: warning: scan step 0.4 Å") and "UserWarning" not in err


@pytest.mark.parametrize("case, message", [
    ("missing", "missing calibration"),
    ("not4d", "must be 4-D"),
    ("nan", "NaN"),
    ("zero", "zero"),
    ("nonsquare", "not square"),
    ("tworows", "at least 3 rows"),
    ("zerostep", "scan step must be positive"),
    ("bigdisc", "larger than the detector"),
    ("badrot", "rotation-deg"),
])
def test_cli_bad_input_one_line_exit_2(scan, tmp_path, capsys, case, message):
    data = scan["data"]
    opts = ["--energy-kev", "300", "--scan-step-a", str(scan["step"]), "--detector-mrad-per-px", str(scan["det"]),
            "--semiangle-mrad", "20"]
    arrays = {"not4d": data[0], "nan": np.where(np.indices(data.shape)[0] == 2, np.nan, data),
              "zero": np.zeros_like(data), "nonsquare": data[..., :50], "tworows": data[:2]}
    path = tmp_path / "in.npy"
    np.save(path, arrays.get(case, data))
    if case == "missing":
        opts = ["--energy-kev", "300"]
    if case == "zerostep":
        opts[3] = "0"
    if case == "bigdisc":
        opts[-1] = "60"
    if case == "badrot":
        opts += ["--rotation-deg", "sideways"]
    method = "ssb" if case == "bigdisc" else "icom"
    assert main([method, str(path), *opts, "--out", str(tmp_path / "o.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("napari-phase: error:")
    assert not (tmp_path / "o.h5").exists()


def test_cli_real_prismatic_depth_series(tmp_path):
    from pathlib import Path

    real = Path(__file__).resolve().parents[2] / "shared" / "real-files" / "Si100_4D.emd"
    if not real.is_file():
        pytest.skip("real-file folder absent")
    out = tmp_path / "p.h5"
    assert main(["icom", str(real), "--depth", "0", "--out", str(out), "--quiet"]) == 0
    res = load_result(out)
    assert res.phase.shape == (11, 11) and res.pixel_size_a == pytest.approx(0.5)
    assert main(["icom", str(real), "--depth", "5", "--out", str(out), "--quiet"]) == 2


def test_cnn_cli_without_a_shipped_model_says_so(scan, tmp_path, capsys):
    from napari_phase.models import list_models

    if any(n.startswith("airpi") for n in list_models()):
        pytest.skip("a CNN model is shipped: the no-model message does not apply")
    assert main(["cnn", str(scan["calibrated"]), "--out", str(tmp_path / "c.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model" in err[0]


def test_cnn_cli_threads_option(scan, tmp_path, capsys):
    import torch

    from napari_phase.models import save_model
    from napari_phase.stem.airpi import data as airpi_data, model as airpi_model

    torch.manual_seed(0)
    net = airpi_model.AirpiNet(width=4, depth=2)
    tiny = save_model(net, {"network": net.config(), "training_ranges": airpi_data.Ranges().as_dict()}, tmp_path, "tiny")
    small = tmp_path / "small.npz"
    meta = {"voltage_kv": 300.0, "scan_step_a": scan["step"], "detector_mrad_per_px": scan["det"], "semiangle_mrad": 20.0}
    np.savez(small, data=scan["data"][:6, :5], metadata_json=json.dumps(meta))
    out = tmp_path / "cnn.h5"
    assert main(["cnn", str(small), "--model", str(tiny), "--device", "cpu", "--threads", "1", "--out", str(out),
                 "--quiet"]) == 0
    res = load_result(out)
    md = res.metadata
    assert md["threads"] == 1 and md["thread_tuning"]["tuned"] is False
    assert md["low_frequency"] == "icom"  # the default: low spatial frequencies from iCoM
    plain = tmp_path / "plain.h5"
    assert main(["cnn", str(small), "--model", str(tiny), "--device", "cpu", "--threads", "1", "--low-frequency", "none",
                 "--out", str(plain), "--quiet"]) == 0
    res_plain = load_result(plain)
    assert res_plain.metadata["low_frequency"] is None
    assert not np.allclose(res_plain.phase, res.phase)  # the flag reaches the reconstruction
    assert main(["cnn", str(small), "--model", str(tiny), "--threads", "0", "--out", str(out), "--overwrite", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "threads must be a positive integer" in err[-1]
    assert md["inference"]["precision"] in ("float32", "bfloat16")  # "auto", resolved for this CPU
    f32 = tmp_path / "f32.h5"
    assert main(["cnn", str(small), "--model", str(tiny), "--device", "cpu", "--threads", "1", "--precision", "float32",
                 "--out", str(f32), "--quiet"]) == 0
    assert load_result(f32).metadata["inference"]["precision"] == "float32"  # the option reaches the network
    capsys.readouterr()
    bad = tmp_path / "bad.h5"
    assert main(["cnn", str(small), "--model", str(tiny), "--precision", "half", "--out", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("napari-phase: error: --precision must be one of auto, float32, bfloat16")
    assert not bad.exists()


def test_descan_option_reaches_the_method_and_is_reported(scan, tmp_path, capsys):
    from scipy import ndimage

    moved = np.stack([np.stack([ndimage.shift(p, (0.8, -0.5), order=1) for p in row]) for row in scan["data"]])
    path = tmp_path / "moved.npy"
    np.save(path, moved.astype(np.float32))
    kw = ["--energy-kev", "300", "--scan-step-a", str(scan["step"]), "--detector-mrad-per-px", str(scan["det"]), "--quiet"]
    truth = blurred_truth(scan["phi"], scan["p"], STEP)
    assert main(["icom", str(path), "--out", str(tmp_path / "on.h5"), *kw]) == 0
    assert "descan (plane, from BF disc): offset (+0.80, -0.50) px" in capsys.readouterr().err
    on = load_result(tmp_path / "on.h5")
    assert on.metadata["descan"]["coef_y_px"][0] == pytest.approx(0.8, abs=0.01)
    assert on.metadata["descan"]["coef_x_px"][0] == pytest.approx(-0.5, abs=0.01)
    assert main(["icom", str(path), "--descan", "off", "--out", str(tmp_path / "off.h5"), *kw]) == 0
    off = load_result(tmp_path / "off.h5")
    assert off.metadata["descan"]["model"] == "off"
    # this phase is weak (0.04 rad): 0.005 px left by the disc fit is a visible ramp (xc 0.41; the
    # thresholded centroid left 0.003 px: 0.62); read linearly across the edge it leaves < 0.001 px (0.97)
    assert xc(on.phase, truth) > 0.9 and xc(off.phase, truth) < 0.5
    with pytest.raises(SystemExit) as exc:
        main(["icom", str(path), "--descan", "sideways", "--out", str(tmp_path / "x.h5"), *kw])
    assert exc.value.code == 2
