"""Nothing lost, nothing silent, nothing hangs (issue 20): one table of bad and unusual inputs.

API cases: the named error (InputError, a ValueError) with a message naming the argument.
CLI cases: exit 2 and exactly one line on stderr. Writer faults: the old file intact, no partial
or temporary file left. Ctrl-C on a running CLI job: it stops within seconds and keeps its result.
Small synthetic data throughout (a 16x16 scan of 32x32 patterns, 64x64 images).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from napari_phase import flowtie, ltem, stem
from napari_phase.cli import main
from napari_phase.jobs import InputError, Progress
from napari_phase.result import PhaseResult

import napari_phase

SRC = str(Path(napari_phase.__file__).resolve().parents[1])  # the package under test, also in subprocesses
M, DX, STEP = 32, 0.25, 2  # 32² object px of 0.25 Å, scan step 0.5 Å -> 16x16 scan, 32² detector


@pytest.fixture(scope="module")
def scan():
    from test_stem_sim import atoms_phase, simulate

    data, _, det, step_a = simulate(0.1 * atoms_phase(M, DX), DX, STEP)
    cal = dict(energy_kev=300.0, scan_step_a=step_a, detector_mrad_per_px=det)
    return {"data": data.astype(np.float32), "cal": cal, "alpha": 20.0}


@pytest.fixture(scope="module")
def series():
    """(3, 64, 64) under/in/over intensities (a smooth phase object's TIE contrast), mean 1."""
    y, x = np.mgrid[:64, :64] / 64.0
    lap = np.cos(2 * np.pi * 3 * x) * np.sin(2 * np.pi * 2 * y)
    rng = np.random.default_rng(0)
    base = 1.0 + 0.01 * rng.standard_normal((64, 64))
    return np.stack([base - 0.1 * lap, base, base + 0.1 * lap]).astype(np.float32)


def _icom(d, cal, **kw):
    return stem.icom(d, **{**cal, **kw})


def _ssb(d, cal, **kw):
    return stem.ssb(d, **{**cal, "semiangle_mrad": 20.0, **kw})


def _cnn(d, cal, **kw):
    return stem.cnn(d, **{**cal, "semiangle_mrad": 20.0, "device": "cpu", "threads": 1, **kw})


# (id, function of (data, cal), expected message) — every case from issue 20 and a few more
STEM_API = [
    ("icom sums <= 0", lambda d, c: _icom(-d, c), "negative total"),
    ("icom offset below zero", lambda d, c: _icom(d - 2 * d.mean(axis=(-2, -1), keepdims=True), c), "negative total"),
    ("cnn sums <= 0", lambda d, c: _cnn(-d, c), "negative total"),
    ("icom detector inf", lambda d, c: _icom(d, c, detector_mrad_per_px=float("inf")), "detector_mrad_per_px.* finite"),
    ("icom centre nan", lambda d, c: _icom(d, c, center=(float("nan"), float("nan"))), "center must be finite"),
    ("icom centre off detector", lambda d, c: _icom(d, c, center=(100, 100)), "center .* off the 32x32 px detector"),
    ("icom centre negative", lambda d, c: _icom(d, c, center=(-5, -5)), "center .* off the 32x32 px detector"),
    ("ssb centre nan", lambda d, c: _ssb(d, c, center=(float("nan"), 16.0)), "center must be finite"),
    ("cnn centre nan (hung)", lambda d, c: _cnn(d, c, center=(float("nan"), float("nan"))), "center must be finite"),
    ("cnn oversample 1.5", lambda d, c: _cnn(d, c, oversample=1.5), "oversample must be a whole number"),
    ("icom energy in volts", lambda d, c: _icom(d, c, energy_kev=2e5), "looks like volts"),
    ("icom energy string", lambda d, c: _icom(d, c, energy_kev="300"), "energy_kev.* must be a number"),
    ("icom energy 0.5 kV", lambda d, c: _icom(d, c, energy_kev=0.5), r"kV \(1–5000\)"),
    ("icom 1-tuple step", lambda d, c: _icom(d, c, scan_step_a=(0.5,)), "scan_step_a.* one step in Å or"),
    ("icom 1-value centre", lambda d, c: _icom(d, c, center=(16.0,)), r"center must be \(y, x\)"),
    ("icom ragged list", lambda d, c: _icom([[d[0, 0]], [d[0, 0], d[0, 1]]], c), "ragged"),
    ("ssb center='disc'", lambda d, c: _ssb(d, c, center="disc"), "center must be .*detect_disc"),
    ("ssb semiangle nan", lambda d, c: stem.ssb(d, **c, semiangle_mrad=float("nan")), "semiangle_mrad.* finite"),
    ("icom rotation nan", lambda d, c: _icom(d, c, rotation_deg=float("nan")), "rotation_deg must be finite"),
]


@pytest.mark.parametrize("fn, message", [c[1:] for c in STEM_API], ids=[c[0] for c in STEM_API])
def test_stem_api_bad_input_named(scan, fn, message):
    with pytest.raises(InputError, match=message):
        fn(scan["data"], dict(scan["cal"]))


def _negative_part(s):
    s = s.copy()
    s[:, 10:30, 10:30] -= 3.0  # an offset over a region: intensities far below zero
    return s


LTEM_API = [
    ("tie voltage in volts", lambda s: ltem.tie(s, pixel_size_nm=5, defocus_step_nm=1e5, voltage_kv=2e5), "voltage_kv .*looks like volts"),
    ("tie negative intensities", lambda s: ltem.tie(_negative_part(s), pixel_size_nm=5, defocus_step_nm=1e5), "negative intensities beyond noise"),
    ("tie string defoci", lambda s: ltem.tie(s, pixel_size_nm=5, defocus_nm=["a", "0", "1e5"]), "defocus_nm"),
    ("tie voltage nan", lambda s: ltem.tie(s, pixel_size_nm=5, defocus_step_nm=1e5, voltage_kv=float("nan")), "voltage_kv must be finite"),
    ("sitie voltage in volts", lambda s: ltem.sitie(s[0], pixel_size_nm=5, defocus_nm=-1e6, voltage_kv=2e5), "looks like volts"),
    ("sitie negative intensities", lambda s: ltem.sitie(_negative_part(s)[0], pixel_size_nm=5, defocus_nm=-1e6), "negative intensities"),
    ("flowtie tie energy in volts", lambda s: flowtie.tie_classical(s, defocus_step_nm=2, pixel_size_a=0.2, energy_kev=2e5), "energy_kev .*looks like volts"),
    ("flowtie gd energy in volts", lambda s: flowtie.tie_gradient_descent(s, defocus_step_nm=2, pixel_size_a=0.2, energy_kev=2e5, steps=2), "looks like volts"),
    ("flowtie energy in volts (said crop)", lambda s: flowtie.flowtie(s, defocus_step_nm=2, pixel_size_a=0.2, energy_kev=2e5, device="cpu"), "looks like volts"),
]


@pytest.mark.parametrize("fn, message", [c[1:] for c in LTEM_API], ids=[c[0] for c in LTEM_API])
def test_ltem_flowtie_api_bad_input_named(series, fn, message):
    with pytest.raises(InputError, match=message):
        fn(series)


def test_no_result_leaves_a_job_with_nan():
    from napari_phase.jobs import run_job

    def job():
        yield Progress(1, 1)
        return PhaseResult({"phase": np.full((4, 4), np.nan, np.float32)}, 1.0, metadata={"method": "broken"})

    with pytest.raises(InputError, match="broken produced 16 NaN/inf value.*'phase'"):
        run_job(job())


def test_valid_input_still_runs(scan, series):
    """The checks refuse nothing valid: the same data with a good calibration reconstructs."""
    assert np.isfinite(_icom(scan["data"], dict(scan["cal"]), center=(16.0, 16.0)).phase).all()
    assert np.isfinite(ltem.tie(series, pixel_size_nm=5, defocus_step_nm=1e5).phase).all()
    noisy = series * (1 + 0.5 * np.random.default_rng(1).standard_normal(series.shape)).astype(np.float32)
    assert noisy.min() < 0  # Gaussian noise of σ = half the mean dips below zero: that is noise, not an offset
    assert np.isfinite(ltem.tie(noisy, pixel_size_nm=5, defocus_step_nm=1e5).phase).all()


# ------------------------------------------------------------------------------------- CLI


@pytest.fixture
def files(scan, series, tmp_path):
    meta = {"voltage_kv": 300.0, "scan_step_a": scan["cal"]["scan_step_a"],
            "detector_mrad_per_px": scan["cal"]["detector_mrad_per_px"], "semiangle_mrad": 20.0}
    f = {"scan": tmp_path / "scan.npz", "series": tmp_path / "series.npy", "image": tmp_path / "image.npy"}
    np.savez(f["scan"], data=scan["data"], metadata_json=json.dumps(meta))
    np.save(f["series"], series)
    np.save(f["image"], series[0])
    np.save(tmp_path / "complex.npy", series[0].astype(np.complex64))
    np.save(tmp_path / "bool.npy", series[0] > 1)
    np.save(tmp_path / "scan5d.npy", np.stack([scan["data"]] * 2))
    (tmp_path / "folder.npy").mkdir()
    (tmp_path / "junk.pt").write_bytes(b"not a pickle at all" * 10)
    card = json.loads((Path(stem.__file__).parent.parent / "models" / "airpi_default.json").read_text())
    (tmp_path / "junk.json").write_text(json.dumps(card))
    return f


LTEM = ["--pixel-size-nm", "5", "--defocus-mm", "-1"]
CLI = [
    ("out is the input", lambda f, t: ["icom", f["scan"], "--out", f["scan"]], "is the input file"),
    ("out is the input, --overwrite", lambda f, t: ["icom", f["scan"], "--out", f["scan"], "--overwrite"], "is the input file"),
    ("out is a symlink to the input", lambda f, t: ["icom", f["scan"], "--out", _link(t / "ln.npz", f["scan"], os.symlink)], "is the input file"),
    ("out is a hard link to the input", lambda f, t: ["icom", f["scan"], "--out", _link(t / "hard.npz", f["scan"], os.link), "--overwrite"], "is the input file"),
    ("tif out names the input", lambda f, t: ["sitie", _copy(f["image"], t / "res_phase.tif"), *LTEM, "--out", t / "res.tif", "--overwrite"], "is the input file"),
    ("out exists", lambda f, t: ["sitie", f["image"], *LTEM, "--out", _touch(t / "old.h5")], "exists: give --overwrite"),
    ("out folder missing", lambda f, t: ["sitie", f["image"], *LTEM, "--out", t / "nowhere" / "r.h5"], "folder .*nowhere does not exist"),
    ("out is a folder", lambda f, t: ["sitie", f["image"], *LTEM, "--out", _mkdir(t / "dir.h5")], "it is a folder"),
    ("out suffix .png", lambda f, t: ["icom", f["scan"], "--out", t / "r.png"], "cannot write .png; use .h5"),
    ("cnn centre nan", lambda f, t: ["cnn", f["scan"], "--center", "nan,nan", "--out", t / "c.h5", "--device", "cpu"], "center must be finite"),
    ("icom centre off detector", lambda f, t: ["icom", f["scan"], "--center", "100,100", "--out", t / "c.h5"], "off the 32x32 px detector"),
    ("cnn oversample 1.5", lambda f, t: ["cnn", f["scan"], "--oversample", "1.5", "--out", t / "c.h5"], "--oversample: invalid int value"),
    ("complex .npy", lambda f, t: ["sitie", t / "complex.npy", *LTEM, "--out", t / "c.h5"], "complex values"),
    ("bool .npy", lambda f, t: ["sitie", t / "bool.npy", *LTEM, "--out", t / "c.h5"], "true/false values"),
    ("folder named .npy", lambda f, t: ["sitie", t / "folder.npy", *LTEM, "--out", t / "c.h5"], "it is a folder, not a file"),
    ("--depth on a 4-D file", lambda f, t: ["icom", f["scan"], "--depth", "0", "--out", t / "c.h5"], "only applies to a depth series .* is 4-D"),
    ("--qc-per-nm abc", lambda f, t: ["tie", f["series"], "--defocus-step-mm", "0.1", "--pixel-size-nm", "5", "--qc-per-nm", "abc", "--out", t / "c.h5"], "must be a number in cycles/nm or 'auto'"),
    ("tie voltage in volts", lambda f, t: ["tie", f["series"], "--defocus-step-mm", "0.1", "--pixel-size-nm", "5", "--voltage-kv", "2e5", "--out", t / "c.h5"], "looks like volts"),
    ("flowtie energy in volts", lambda f, t: ["flowtie", f["series"], "--defocus-step-nm", "2", "--pixel-size-a", "0.2", "--energy-kev", "2e5", "--method", "tie", "--out", t / "c.h5"], "looks like volts"),
    ("cnn model not a weights file", lambda f, t: ["cnn", f["scan"], "--model", t / "junk.pt", "--device", "cpu", "--out", t / "c.h5"], "junk.pt is not a weights file"),
]


def _link(link, target, how):
    how(target, link)
    return link


def _copy(src, dst):
    dst.write_bytes(Path(src).read_bytes())
    return dst


def _touch(p):
    p.write_bytes(b"old")
    return p


def _mkdir(p):
    p.mkdir()
    return p


@pytest.mark.parametrize("make, message", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_cli_bad_input_one_line_exit_2(files, tmp_path, capsys, make, message):
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    argv = [str(a) for a in make(files, tmp_path)]
    before.update({p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p not in before})
    try:
        rc = main([*argv, "--quiet"])
    except SystemExit as exc:  # argparse: one line too
        rc = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1, err
    assert re_search(message, err[0]), err
    for p, content in before.items():  # nothing already there was touched
        assert p.read_bytes() == content, p
    assert not [p for p in tmp_path.rglob("*") if ".part" in p.name]
    assert not (tmp_path / "nowhere").exists()


def re_search(pattern, text):
    import re

    return re.search(pattern, text) is not None


def test_cli_depth_on_a_5d_npy(files, tmp_path, capsys):
    out = tmp_path / "d.h5"
    assert main(["icom", str(tmp_path / "scan5d.npy"), "--depth", "0", "--energy-kev", "300", "--scan-step-a", "0.5",
                 "--detector-mrad-per-px", "1", "--out", str(out), "--quiet"]) == 0
    assert "depth 0 of 2" in capsys.readouterr().err and out.is_file()


def test_cli_fifo_input_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    p = subprocess.run([sys.executable, "-m", "napari_phase.cli", "sitie", str(fifo), *LTEM, "--out", str(tmp_path / "o.h5")],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": SRC})
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "napari-phase: error: Cannot read pipe.npy: not a regular file (a pipe, socket or device); give a data file"]


def test_cli_overwrite_replaces_an_existing_output(files, tmp_path):
    out = _touch(tmp_path / "old.h5")
    assert main(["sitie", str(files["image"]), *LTEM, "--out", str(out), "--overwrite", "--quiet"]) == 0
    from napari_phase.io.writer import load_result

    assert load_result(out).phase.shape == (64, 64)
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # a normal file, not the temp file's private mode


# ------------------------------------------------------------------------------ writer faults


def _result():
    return PhaseResult({"phase": np.arange(64 * 64, dtype=np.float32).reshape(64, 64),
                        "bx": np.ones((64, 64), np.float32)}, 5.0, metadata={"method": "test"})


@pytest.mark.parametrize("suffix", [".h5", ".npz", ".tif"])
def test_failing_write_keeps_the_old_file(tmp_path, suffix, monkeypatch):
    """A write that fails part-way (an OSError after some bytes) leaves the old file(s) as they
    were and no partial or temporary file."""
    import builtins

    import tifffile

    from napari_phase.io import writer

    out = tmp_path / f"res{suffix}"
    olds = [out] if suffix != ".tif" else [tmp_path / "res_phase.tif", tmp_path / "res_bx.tif"]
    for p in olds:
        p.write_bytes(b"old data")
    real_open, real_imwrite = builtins.open, tifffile.imwrite
    calls = {"n": 0}

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, b):
            self.fh.write(bytes(b)[:100])
            raise OSError(28, "No space left on device")

        def __getattr__(self, k):
            return getattr(self.fh, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

    def full_open(file, mode="r", *a, **k):
        fh = real_open(file, mode, *a, **k)
        return Full(fh) if "w" in mode and ".part" in str(file) else fh

    def second_fails(path, *a, **k):  # .tif: the first array written, the second fails
        calls["n"] += 1
        if calls["n"] == 2:
            Path(path).write_bytes(b"half")
            raise OSError(28, "No space left on device")
        return real_imwrite(path, *a, **k)

    if suffix == ".tif":
        monkeypatch.setattr(tifffile, "imwrite", second_fails)
    elif suffix == ".h5":
        monkeypatch.setattr(builtins, "open", full_open)
    else:
        def half_npz(path, **arrays):
            Path(path).write_bytes(b"PK half a zip")
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(np, "savez_compressed", half_npz)
    with pytest.raises(InputError, match="No space left on device; nothing was replaced"):
        writer.save_result(_result(), out)
    monkeypatch.undo()
    for p in olds:
        assert p.read_bytes() == b"old data"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in olds)


@pytest.mark.parametrize("suffix", [".h5", ".npz", ".tif"])
def test_disk_full_in_a_subprocess_one_line_no_crash(tmp_path, suffix):
    """RLIMIT_FSIZE (a full disk, SIGXFSZ ignored): one line, exit 2 (HDF5 used to segfault, exit
    139), the old file intact, no partial file."""
    import resource

    src = tmp_path / "in.npy"
    np.save(src, 1 + 0.1 * np.random.default_rng(0).random((128, 128)).astype(np.float32))
    out = tmp_path / f"res{suffix}"
    old = out if suffix != ".tif" else tmp_path / "res_phase.tif"
    old.write_bytes(b"old data")

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))

    p = subprocess.run([sys.executable, "-m", "napari_phase.cli", "sitie", str(src), *LTEM, "--out", str(out), "--overwrite",
                        "--quiet"], capture_output=True, text=True, timeout=120, preexec_fn=limit,
                       env={**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 2, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    first = out if suffix != ".tif" else tmp_path / "res_phase.tif"
    assert len(lines) == 1 and lines[0].startswith(f"napari-phase: error: cannot write {first}")
    assert lines[0].endswith("; nothing was replaced") and ("File too large" in lines[0] or suffix == ".tif")
    assert old.read_bytes() == b"old data"
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted({"in.npy", old.name})


def test_napari_writers_refuse_missing_folder_and_keep_old_file(tmp_path, monkeypatch):
    from napari_phase.io import writer

    with pytest.raises(InputError, match="does not exist"):
        writer.write_single_image(str(tmp_path / "no" / "x.tif"), np.ones((8, 8), np.float32), {})
    assert not (tmp_path / "no").exists()
    old = tmp_path / "layers.h5"
    old.write_bytes(b"old data")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "_create", boom)
    with pytest.raises(InputError, match="nothing was replaced"):
        writer.write_layers(str(old), [(np.ones((8, 8)), {"name": "a"}, "image")])
    assert old.read_bytes() == b"old data" and [p.name for p in tmp_path.iterdir()] == ["layers.h5"]


# ----------------------------------------------------------------------------- Ctrl-C, security


def test_ctrl_c_stops_a_running_cli_job_and_keeps_its_result(files, tmp_path):
    """Gradient descent with a million steps (no early stop): Ctrl-C once it runs."""
    out = tmp_path / "gd.h5"
    p = subprocess.Popen([sys.executable, "-m", "napari_phase.cli", "flowtie", str(files["series"]), "--method", "gd",
                          "--steps", "1000000", "--defocus-step-nm", "2", "--pixel-size-a", "0.2", "--energy-kev", "300",
                          "--device", "cpu", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"})
    seen = ""
    deadline = time.time() + 120
    while "gradient descent" not in seen and time.time() < deadline:  # the progress bar: the job is running
        seen += p.stderr.read(1)
    time.sleep(1.0)
    t0 = time.time()
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert time.time() - t0 < 20  # a hang would run the million steps (minutes); 20 s leaves room for a loaded machine
    assert p.returncode == 130, (seen[-300:], err[-1500:])
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("napari-phase")]
    assert lines == ["napari-phase: cancelled; writing the result so far"]
    from napari_phase.io.writer import load_result

    res = load_result(out)
    assert res.metadata.get("cancelled") and np.isfinite(res.phase).all()


def test_ctrl_c_interrupts_a_step_that_never_yields(monkeypatch):
    """A job stuck inside one step (no yield): after the grace time Ctrl-C interrupts it where it
    runs and the latest preview is kept, marked cancelled."""
    from napari_phase import jobs

    monkeypatch.setattr(jobs, "INTERRUPT_GRACE_S", 0.5)
    preview = PhaseResult({"phase": np.zeros((4, 4), np.float32)}, 1.0, metadata={"method": "slow"})

    def stuck():
        yield Progress(1, 2, "first step", preview)
        end = time.time() + 10
        while time.time() < end:  # a long step that never yields
            time.sleep(0.01)
        return PhaseResult({"phase": np.ones((4, 4), np.float32)}, 1.0, metadata={"method": "never interrupted"})

    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    t0 = time.time()
    res = jobs.run_with_tqdm(stuck(), disable=True)
    assert time.time() - t0 < 5
    assert res is preview and res.cancelled and "interrupted" in res.metadata


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch EVIL_RAN",))


def test_resume_refuses_a_checkpoint_that_would_run_code(tmp_path, monkeypatch):
    import torch

    from napari_phase.training import load_checkpoint

    monkeypatch.chdir(tmp_path)
    ck = tmp_path / "bad.ckpt"
    torch.save({"model": {}, "optimiser": {}, "step": 0, "payload": _Evil()}, ck)
    with pytest.raises(InputError, match="cannot load the checkpoint bad.ckpt safely"):
        load_checkpoint(ck)
    assert not (tmp_path / "EVIL_RAN").exists()
    ok = tmp_path / "ok.ckpt"
    torch.save({"model": {"w": torch.ones(2)}, "optimiser": {"state": {}}, "step": 3, "history": [{"a": 1.0}]}, ok)
    assert load_checkpoint(ok)["step"] == 3


def test_shared_check_bounds_are_pinned():
    """The allowances' sizes: a pattern total down to −5 % of the largest is noise, below is an
    offset; an image's 5×5 local mean may sit up to 5 noise σ/5 below zero, not further;
    energies 1–5000 kV inclusive."""
    from napari_phase import validate

    validate.pattern_sums([100.0, 50.0, -4.9])
    with pytest.raises(InputError, match="1 diffraction pattern"):
        validate.pattern_sums([100.0, 50.0, -5.1])
    with pytest.raises(InputError, match="sums to zero or less"):
        validate.pattern_sums([0.0, 0.0])
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((96, 96)).astype(np.float32)
    sigma = validate.noise_sigma(noise)
    assert sigma == pytest.approx(1.0, rel=0.05)
    img = 2.0 + noise
    img[40:60, 40:60] = -2.0 * sigma / 5 + noise[40:60, 40:60]  # a region 2 σ/5 below zero: noise
    validate.intensities(img)
    img[40:60, 40:60] = -8.0 * sigma / 5 + noise[40:60, 40:60]  # 8 σ/5 below zero: an offset
    with pytest.raises(InputError, match="negative intensities beyond noise"):
        validate.intensities(img)
    assert validate.energy_kv(1) == 1.0 and validate.energy_kv(5000) == 5000.0
    for bad in (0.99, 5001, float("inf"), "300", True, (300,)):
        with pytest.raises(InputError, match="voltage_kv"):
            validate.energy_kv(bad)
    assert validate.integer(2.0, "n") == 2
    with pytest.raises(InputError, match="n must be a whole number 1–8, got 9"):
        validate.integer(9, "n", 1, 8)
