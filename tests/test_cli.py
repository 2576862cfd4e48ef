"""The `napari-phase` command line: real runs on simulated data, and one-line errors."""

import subprocess
import sys

import numpy as np
import pytest

from napari_phase.cli import main


def test_help_mentions_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for cmd in ("sitie", "siprad", "tie", "simulate", "demo", "bench", "info", "gui"):
        assert cmd in text


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "napari-phase" in out and "cpu" in out and "ltem_skyrmions" in out


def test_simulate_then_sitie_recovers_phase(tmp_path, capsys):
    sim = tmp_path / "sim.npz"
    assert main(["simulate", "--texture", "skyrmions", "--size", "96", "--defocus-mm", "-0.1", "--out", str(sim)]) == 0
    out = tmp_path / "res.h5"
    assert main(["sitie", str(sim), "--out", str(out), "--quiet"]) == 0
    from napari_phase.io.writer import load_result
    from napari_phase.physics import pearson_accuracy

    res = load_result(out)
    truth = np.load(sim)["phase_true"]
    assert res.metadata["method"] == "SITIE"
    assert res.phase.shape == (96, 96)
    assert pearson_accuracy(res.phase, truth, crop=4) > 0.95  # default Tikhonov cut-off 2/FOV costs ~0.03 here


def test_siprad_cli_short_run(tmp_path):
    sim = tmp_path / "sim.npz"
    main(["simulate", "--texture", "stripes", "--size", "48", "--defocus-mm", "-0.5", "--noise", "0.1", "--out", str(sim)])
    out = tmp_path / "res.npz"
    assert main(["siprad", str(sim), "--iterations", "20", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    assert out.exists()


def test_tie_cli_from_three_files(tmp_path):
    from napari_phase.ltem.forward import Microscope, simulate_image

    y, x = np.mgrid[:64, :64]
    phase = 2 * np.exp(-((x - 32) ** 2 + (y - 30) ** 2) / 80.0)
    paths = []
    for dz, name in ((-2e5, "under"), (0.0, "in"), (2e5, "over")):
        img = simulate_image(phase, pixel_size_nm=5.0, microscope=Microscope(defocus_nm=dz, cs_mm=0,
                             divergence_mrad=0, defocus_spread_nm=0))
        p = tmp_path / f"{name}.npy"
        np.save(p, img)
        paths.append(str(p))
    out = tmp_path / "tie.h5"
    assert main(["tie", *paths, "--pixel-size-nm", "5", "--defocus-step-mm", "0.2", "--out", str(out), "--quiet"]) == 0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["sitie", "does_not_exist.tif", "--pixel-size-nm", "5", "--defocus-mm", "-1", "--out", "x.h5"], "does_not_exist"),
        (["sitie", "{nan}", "--pixel-size-nm", "5", "--defocus-mm", "-1", "--out", "x.h5"], "NaN"),
        (["sitie", "{good}", "--pixel-size-nm", "5", "--defocus-mm", "0", "--out", "x.h5"], "zero"),
        (["sitie", "{good}", "--defocus-mm", "-1", "--out", "x.h5"], "pixel-size"),
        (["siprad", "{good}", "--pixel-size-nm", "5", "--defocus-mm", "-1", "--amplitude", "nofile.tif", "--out", "x.h5"], "amplitude"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, args, fragment):
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).random((32, 32)).astype(np.float32))
    nan = tmp_path / "nan.npy"
    a = np.ones((32, 32), np.float32)
    a[3, 3] = np.nan
    np.save(nan, a)
    args = [s.format(good=good, nan=nan) for s in args]
    args = [str(tmp_path / s) if s == "x.h5" else s for s in args]
    proc = subprocess.run([sys.executable, "-m", "napari_phase.cli", *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("napari-phase: error:"), proc.stderr
    assert fragment.lower() in lines[0].lower()
