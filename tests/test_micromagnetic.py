"""Micromagnetic input: OVF/OMF reading (real OOMMF and mumax3 files), orientation and handedness,
B·t magnitude, LTEM simulation and reconstruction, bad input, CLI."""

import math
from pathlib import Path

import numpy as np
import pytest

from napari_phase.jobs import InputError
from napari_phase.ltem import sitie
from napari_phase.ltem.micromagnetic import projected_induction, simulate_from_magnetization
from napari_phase.physics.metrics import induction_accuracy

df = pytest.importorskip("discretisedfield")
from napari_phase.io import read_magnetization  # noqa: E402

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real-files" / "micromagnetic"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real-files/micromagnetic not present")
MU0 = 4e-7 * math.pi


@needs_real
@pytest.mark.parametrize(
    "name, shape, cell, unit",
    [
        ("skyrmion.omf", (3, 1, 20, 20), (5.0, 5.0, 5.0), "A/m"),
        ("skyrmion-disk.omf", (3, 2, 20, 20), (5.0, 5.0, 5.0), "A/m"),
        ("oommf-ovf2-bin8.omf", (3, 5, 5, 5), (1.0, 1.0, 1.0), "A/m"),
        ("mumax-bin4-linux.ovf", (3, 1, 32, 128), (3.0, 3.90625, 3.90625), ""),
        ("mumax-txt-linux.ovf", (3, 4, 12, 24), (2.5, 2.5, 2.5), "A/m"),
    ],
)
def test_reads_real_files(name, shape, cell, unit):
    mag = read_magnetization(REAL / name)
    assert mag.m.shape == shape and mag.m.dtype == np.float32
    assert mag.cell_nm == pytest.approx(cell)
    assert mag.unit == unit


@needs_real
def test_axis_order_matches_the_file():
    """First data line of skyrmion.omf is the cell (x0, y0, z0) = (-298.25, -298.25, -1.1e6) A/m;
    the second is (x1, y0, z0); the 21st is (x0, y1, z0) (OVF: x fastest, then y, then z)."""
    m = read_magnetization(REAL / "skyrmion.omf").m
    assert m[:, 0, 0, 0] == pytest.approx([-298.253549234324, -298.253548945368, -1099999.91913165], rel=1e-6)
    assert m[:, 0, 0, 1] == pytest.approx([-967.934036771182, -469.344794648148, -1099999.47400859], rel=1e-6)
    lines = [ln for ln in (REAL / "skyrmion.omf").read_text().splitlines() if ln and not ln.startswith("#")]
    assert m[:, 0, 1, 0] == pytest.approx([float(v) for v in lines[20].split()], rel=1e-6)
    assert read_magnetization(REAL / "skyrmion.omf").ms_a_per_m == pytest.approx(1.1e6, rel=1e-6)


def test_projected_induction_magnitude_and_tilt():
    """B·t = μ0 Ms t for in-plane m; tilting m = +z by α about x gives By·t = −μ0 Ms sin α · t / cos α."""
    ms, nz, dz = 8e5, 2, 2.5
    m = np.zeros((3, nz, 8, 10))
    m[0] = ms
    bx, by, info = projected_induction(m, cell_nm=(dz, 1.0, 1.0))
    assert np.allclose(bx, MU0 * ms * nz * dz) and np.allclose(by, 0)
    assert bx[0, 0] == pytest.approx(5.0265, rel=1e-4)
    mz = np.zeros((3, 1, 8, 10))
    mz[2] = ms
    _, by, _ = projected_induction(mz, cell_nm=(5.0, 1.0, 1.0), tilt_x_deg=30)
    assert np.allclose(by, -MU0 * ms * math.sin(math.radians(30)) * 5.0 / math.cos(math.radians(30)))
    # unit vectors need Ms; with it they scale to it
    bx_u, _, _ = projected_induction(m / ms, cell_nm=(dz, 1, 1), unit="", ms_a_per_m=ms)
    assert np.allclose(bx_u, bx)
    # a cross-section along x: columns = y, rows = z, the beam along −x sees (my, mz)
    my = np.zeros((3, 4, 6, 5))
    my[1] = ms
    bcol, brow, info = projected_induction(my, cell_nm=(1, 1, 2), thickness_axis="x")
    assert bcol.shape == (4, 6) and np.allclose(bcol, MU0 * ms * 5 * 2) and np.allclose(brow, 0)


def test_film_thickness_stretches_the_cells_along_the_beam():
    """B·t = μ0 Ms t with t the film thickness when given (default the file's cells × cell size),
    the pattern unchanged; the tilted path length follows it; the image contrast grows with it."""
    ms = 8e5
    m = np.zeros((3, 2, 8, 10))
    m[0] = ms
    bx, _, info = projected_induction(m, cell_nm=(2.5, 1.0, 1.0))
    assert info["thickness_nm"] == pytest.approx(5.0) and info["thickness_source"] == "the file's cells"
    bx50, by50, info50 = projected_induction(m, cell_nm=(2.5, 1.0, 1.0), film_thickness_nm=50.0)
    assert np.allclose(bx50, MU0 * ms * 50.0) and np.allclose(bx50, 10 * bx) and np.allclose(by50, 0)
    assert info50["thickness_nm"] == 50.0 and info50["file_thickness_nm"] == pytest.approx(5.0)
    mz = np.zeros((3, 1, 8, 10))
    mz[2] = ms
    _, by_t, _ = projected_induction(mz, cell_nm=(5.0, 1.0, 1.0), tilt_x_deg=30, film_thickness_nm=40.0)
    assert np.allclose(by_t, -MU0 * ms * math.sin(math.radians(30)) * 40.0 / math.cos(math.radians(30)))
    wavy = np.zeros((3, 1, 32, 32))
    wavy[0] = ms * np.cos(np.linspace(0, 4 * np.pi, 32))[None, :, None]
    wavy[1] = ms * np.sin(np.linspace(0, 4 * np.pi, 32))[None, :, None]
    thin = simulate_from_magnetization(wavy, cell_nm=(5, 2, 2), defocus_nm=-1e5)
    thick = simulate_from_magnetization(wavy, cell_nm=(5, 2, 2), defocus_nm=-1e5, film_thickness_nm=50.0)
    assert np.allclose(thick.bx, 10 * thin.bx, atol=1e-5) and thick.params["thickness_nm"] == 50.0
    assert thick.image_clean.std() > 5 * thin.image_clean.std()
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="film_thickness_nm"):
            projected_induction(m, cell_nm=(2.5, 1.0, 1.0), film_thickness_nm=bad)


def _bloch_skyrmion_file(path, ccw=True, n=48, cell=4e-9, radius=40e-9, width=12e-9):
    """An OVF written by discretisedfield: a Bloch skyrmion, core down, its in-plane m circulating
    counter-clockwise seen from +z (m∥ = (−sin α, cos α) sin θ, α from +x towards +y)."""
    half = n * cell / 2
    mesh = df.Mesh(p1=(-half, -half, 0), p2=(half, half, 10e-9), cell=(cell, cell, 10e-9))
    sign = 1.0 if ccw else -1.0

    def value(p):
        x, y, _ = p
        r, a = math.hypot(x, y), math.atan2(y, x)
        theta = 2 * math.atan(math.exp((radius - r) / width))  # π at the core
        return (-sign * math.sin(a) * math.sin(theta), sign * math.cos(a) * math.sin(theta), math.cos(theta))

    field = df.Field(mesh, nvdim=3, value=value, norm=8e5, unit="A/m")
    field.to_file(str(path), representation="txt")
    return path


def test_handedness_ccw_bloch_skyrmion(tmp_path):
    """Beam along −z, image rows = +y: a counter-clockwise (seen from +z) Bloch skyrmion has its phase
    maximum at the core → dark core under-focus, bright over-focus; the reconstruction points B
    along +y (down the rows) right of the core and along −x below it (row > centre)."""
    mag = read_magnetization(_bloch_skyrmion_file(tmp_path / "sk.ovf"))
    under = simulate_from_magnetization(mag, defocus_nm=-1e5, embed="film")
    over = simulate_from_magnetization(mag, defocus_nm=1e5, embed="film")
    c = under.image.shape[0] // 2
    core = (slice(c - 2, c + 2), slice(c - 2, c + 2))
    assert under.image_clean[core].mean() < under.image_clean.mean() < over.image_clean[core].mean()
    assert under.phase_m[c, c] > np.percentile(under.phase_m, 95)
    r = sitie(under.image, pixel_size_nm=under.pixel_size_nm, defocus_nm=-1e5, qc_per_nm=0)
    assert induction_accuracy(r.bx, r.by, under.bx, under.by, crop=4) >= 0.95
    k = 10  # 40 nm = the wall radius
    assert r.by[c, c + k] > 0 and r.by[c, c - k] < 0
    assert r.bx[c + k, c] < 0 and r.bx[c - k, c] > 0
    # the file's own B·t at the wall (μ0 Ms t = 10.05 T·nm for a full in-plane moment)
    assert under.params["ms_a_per_m"] == pytest.approx(8e5, rel=1e-5)
    # the other chirality inverts the contrast
    cw = simulate_from_magnetization(read_magnetization(_bloch_skyrmion_file(tmp_path / "cw.ovf", ccw=False)),
                                     defocus_nm=-1e5, embed="film")
    assert cw.image_clean[core].mean() > cw.image_clean.mean()


@needs_real
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("skyrmion.omf", {"tilt_x_deg": 30}),
        ("skyrmion-disk.omf", {"tilt_x_deg": 30, "thickness_axis": "z"}),
        ("mumax-bin4-linux.ovf", {"ms_a_per_m": 8e5}),
    ],
)
def test_real_files_imaged_and_reconstructed(name, kwargs):
    """SITIE at −0.1 mm: noise-free B·t correlation ≥ 0.95 with the file's B·t (orientation
    included). Measured with 10 % noise: 0.43 (skyrmion), 0.61 (disk), 0.24 (mumax) — the files'
    phases are only 0.2–0.5 rad, the image contrast 0.2–2 % (see docs/benchmarks.md)."""
    mag = read_magnetization(REAL / name)
    px = None if name.startswith("mumax") else 2.0
    s = simulate_from_magnetization(mag, defocus_nm=-1e5, pixel_size_nm=px, **kwargs)
    r = sitie(s.image, pixel_size_nm=s.pixel_size_nm, defocus_nm=-1e5, qc_per_nm=0)
    assert induction_accuracy(r.bx, r.by, s.bx, s.by, crop=2) >= 0.95
    if "tilt_x_deg" in kwargs:  # a wrong orientation (up-down mirrored, rows = −y) is caught (the S-state is symmetric)
        flipped = np.flip(s.bx, 0), -np.flip(s.by, 0)
        assert induction_accuracy(r.bx, r.by, *flipped, crop=2) < 0.8


@needs_real
def test_neel_skyrmion_needs_a_tilt():
    mag = read_magnetization(REAL / "skyrmion.omf")
    flat = simulate_from_magnetization(mag, defocus_nm=-1e5, embed="film")
    tilted = simulate_from_magnetization(mag, defocus_nm=-1e5, embed="film", tilt_x_deg=30)
    assert np.ptp(flat.phase_m) < 0.1 * np.ptp(tilted.phase_m)


@needs_real
def test_bad_input(tmp_path):
    with pytest.raises(InputError, match="unit vectors: give ms_a_per_m"):
        simulate_from_magnetization(read_magnetization(REAL / "mumax-bin4-linux.ovf"))
    with pytest.raises(InputError, match="no single-cell axis"):
        simulate_from_magnetization(read_magnetization(REAL / "skyrmion-disk.omf"), thickness_axis=None)
    with pytest.raises(InputError, match="thickness_axis"):
        simulate_from_magnetization(read_magnetization(REAL / "skyrmion.omf"), thickness_axis="w")
    mesh = df.Mesh(p1=(0, 0, 0), p2=(40e-9, 40e-9, 5e-9), cell=(5e-9, 5e-9, 5e-9))
    df.Field(mesh, nvdim=1, value=1.0).to_file(str(tmp_path / "scalar.omf"))
    with pytest.raises(InputError, match="3 components"):
        read_magnetization(tmp_path / "scalar.omf")
    df.Field(mesh, nvdim=3, value=(0, 0, 1), unit="T").to_file(str(tmp_path / "tesla.omf"))
    with pytest.raises(InputError, match="A/m or unit vectors"):
        read_magnetization(tmp_path / "tesla.omf")
    (tmp_path / "junk.ovf").write_text("not an ovf file\n")
    with pytest.raises(InputError, match="could not read"):
        read_magnetization(tmp_path / "junk.ovf")
    with pytest.raises(InputError, match="not an OVF"):
        read_magnetization(REAL / "../README.md")
    with pytest.raises(FileNotFoundError):
        read_magnetization(tmp_path / "missing.ovf")
    m = np.zeros((3, 1, 8, 8))
    with pytest.raises(InputError, match=r"\(3, Z, Y, X\)"):
        simulate_from_magnetization(np.zeros((2, 1, 8, 8)), cell_nm=(1, 1, 1))
    with pytest.raises(InputError, match="zero everywhere"):
        simulate_from_magnetization(m, cell_nm=(1, 1, 1))
    with pytest.raises(InputError, match="NaN"):
        simulate_from_magnetization(np.full((3, 1, 8, 8), np.nan), cell_nm=(1, 1, 1))
    m[0] = 1e5
    with pytest.raises(InputError, match="±80"):
        simulate_from_magnetization(m, cell_nm=(1, 1, 1), tilt_x_deg=85)
    with pytest.raises(InputError, match="cell_nm"):
        simulate_from_magnetization(m, cell_nm=(1, -1, 1))


@needs_real
def test_cli_simulate_ovf_reads_back(tmp_path, capsys):
    import json

    from napari_phase.cli import main

    out = tmp_path / "sim.npz"
    assert main(["simulate", "--ovf", str(REAL / "skyrmion.omf"), "--tilt-x-deg", "30", "--defocus-mm", "-0.1",
                 "--out", str(out)]) == 0
    with np.load(out) as z:
        meta = json.loads(str(z["metadata_json"]))
        bx, by, image = z["bx_true"], z["by_true"], z["image"]
    assert image.shape == (64, 64) and meta["pixel_size_nm"] == 5.0 and meta["tilt_x_deg"] == 30.0
    direct = simulate_from_magnetization(read_magnetization(REAL / "skyrmion.omf"), defocus_nm=-1e5, tilt_x_deg=30)
    assert np.allclose(bx, direct.bx) and np.allclose(by, direct.by)
    # the tilted uniform background (μ0 Ms sin30° t / cos30° = 4.0 T·nm) sets the scale of B·t
    assert 0.5 * 3.99 < float(np.percentile(np.hypot(bx, by), 99)) < 3 * 3.99
    capsys.readouterr()
    assert main(["simulate", "--ovf", str(REAL / "skyrmion-disk.omf"), "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "thickness_axis" in err[0]
    assert main(["simulate", "--ovf", str(REAL / "mumax-bin4-linux.ovf"), "--out", str(out), "--overwrite"]) == 2
    assert main(["simulate", "--ovf", str(REAL / "skyrmion-disk.omf"), "--axis", "z", "--tilt-x-deg", "20", "--out", str(out), "--overwrite"]) == 0
    # a 5 nm file imaged as a 50 nm film: B·t ten times the file's, read back from the output
    assert main(["simulate", "--ovf", str(REAL / "skyrmion.omf"), "--tilt-x-deg", "30", "--defocus-mm", "-0.1",
                 "--film-thickness-nm", "50", "--out", str(out), "--overwrite"]) == 0
    with np.load(out) as z:
        meta = json.loads(str(z["metadata_json"]))
        assert np.allclose(z["bx_true"], 10 * direct.bx, atol=1e-4) and np.allclose(z["by_true"], 10 * direct.by, atol=1e-4)
    assert meta["thickness_nm"] == 50.0
    capsys.readouterr()
    assert main(["simulate", "--ovf", str(REAL / "skyrmion.omf"), "--film-thickness-nm", "-1", "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "film_thickness_nm" in err[0]


@needs_real
def test_siprad_on_micromagnetic_image_beats_sitie():
    """SIPRAD at −1 mm with 10 % noise on the OOMMF skyrmion disk (tilted 30°) as a 50 nm film, a
    short run, in the default field (room for the −1 mm Fresnel fringes: 166² px).
    Measured: SIPRAD 0.924, SITIE 0.765 (B·t correlation); SIPRAD's B·t size 0.745 of the truth (150 steps)."""
    from napari_phase.physics.metrics import magnitude_slope
    from napari_phase.ltem import siprad

    s = simulate_from_magnetization(read_magnetization(REAL / "skyrmion-disk.omf"), thickness_axis="z", tilt_x_deg=30,
                                    defocus_nm=-1e6, noise=0.1, pixel_size_nm=2.0, seed=0, film_thickness_nm=50.0)
    assert s.image.shape == (166, 166)  # 50 px of sample + 2 × 58 px of reach
    r = siprad(s.image, pixel_size_nm=s.pixel_size_nm, defocus_nm=-1e6, iterations=150, pretrain_iterations=100, device="cpu", seed=0)
    base = sitie(s.image, pixel_size_nm=s.pixel_size_nm, defocus_nm=-1e6, qc_per_nm=0)
    acc = induction_accuracy(r.bx, r.by, s.bx, s.by, crop=2)
    acc_sitie = induction_accuracy(base.bx, base.by, s.bx, s.by, crop=2)
    assert acc >= 0.9 and acc > acc_sitie + 0.05, (acc, acc_sitie)
    slope = magnitude_slope(np.stack([r.bx, r.by]), np.stack([s.bx, s.by]), 2)
    assert 0.6 <= slope <= 1.15, slope  # a halved or doubled B·t fails


@needs_real
def test_auto_regularisation_on_a_real_file():
    """qc "auto" on the OOMMF skyrmion disk (tilted 30°, SITIE −0.1 mm, 2 nm pixels). Measured
    (seed 0): noise 3 % → 0.938 (qc 0: 0.920, default 2/FOV: 0.813); 10 % → 0.659 (0.613, 0.427):
    the issue's 0.9 at 10 % is out of reach at this dose (docs/benchmarks.md)."""
    mag = read_magnetization(REAL / "skyrmion-disk.omf")
    got = {}
    for noise in (0.03, 0.1):
        s = simulate_from_magnetization(mag, defocus_nm=-1e5, noise=noise, pixel_size_nm=2.0, seed=0, tilt_x_deg=30.0)
        r = sitie(s.image, pixel_size_nm=2.0, defocus_nm=-1e5, qc_per_nm="auto")
        assert r.metadata["auto_regularisation"]["noise_sigma_over_mean"] == pytest.approx(noise, rel=0.05)
        d = sitie(s.image, pixel_size_nm=2.0, defocus_nm=-1e5)
        got[noise] = (induction_accuracy(r.bx, r.by, s.bx, s.by, 2), induction_accuracy(d.bx, d.by, s.bx, s.by, 2),
                      r.metadata["auto_regularisation"]["wiener_half_per_nm"])
    assert got[0.03][0] >= 0.92 and got[0.03][0] >= got[0.03][1] + 0.08
    assert got[0.1][0] >= got[0.1][1] + 0.15
    assert got[0.1][2] < got[0.03][2]  # more noise: the filter keeps less detail
