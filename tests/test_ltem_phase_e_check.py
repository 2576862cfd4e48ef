"""φe never loses to the plain algebra (φ + φflip)/2 (issue 17 §2): the refined φe (its own cut-off,
per-frequency ∂I/∂z, amplitude prior) is kept only when it fits the recorded series better and
agrees with the absorption no worse (ltem/phase_e_check.py)."""

import numpy as np
import pytest

from napari_phase.jobs import InputError
from napari_phase.ltem import tie
from napari_phase.ltem.align import unmirror
from napari_phase.ltem.phase_e_check import amplitude_agreement, flipped_misfit
from napari_phase.ltem.simulate_series import simulate_flipped_series
from napari_phase.ltem.simulate_strong import strong_phase_case
from napari_phase.physics.metrics import pearson_accuracy

KV = 300.0


def _plain_and_default(s):
    """(φe, φm) of two plain TIEs combined by hand on the exact geometry, and the default result."""
    kw = dict(pixel_size_nm=s.pixel_size_nm, defocus_nm=s.defocus_nm, voltage_kv=KV, align=False)
    a = tie(s.series, **kw).phase
    b = tie(unmirror(s.flipped, "x"), **kw).phase
    return (a + b) / 2, (a - b) / 2, tie(s.series, flipped=s.flipped, flip_axis="x", **kw)


@pytest.mark.parametrize("kind, seed", [("wires", 1), ("rods", 2)])
def test_strong_phase_e_never_loses_to_the_plain_algebra(kind, seed):
    """128² strong-phase cases where the refinements damage φe (measured with them forced on: wires 1
    0.567, rods 2 0.173, against the plain algebra's 0.895 and 0.816): the default falls back."""
    s = strong_phase_case(kind, seed, shape=(128, 128))
    pe, pm, r = _plain_and_default(s)
    acc_plain = pearson_accuracy(pe, s.phase_e, 8)
    assert pearson_accuracy(r.arrays["phase_e"], s.phase_e, 8) >= acc_plain - 0.01
    assert abs(pearson_accuracy(r.phase, s.phase_m, 8) - pearson_accuracy(pm, s.phase_m, 8)) <= 0.02
    check = r.metadata["phase_e_check"]
    assert check["kept"].startswith("plain algebra")
    assert check["tried"][:2] == ["φe cut-off 0.00608/nm", "spectral ∂I/∂z"]
    assert check["misfit_plain"] is None and check["misfit_refined"] is None  # the amplitude decided
    assert check["amplitude_witness"] and check["amplitude_agreement_refined"] < check["amplitude_agreement_plain"] - 0.1
    # what the default returns is the plain algebra itself (zero mean), not a mixture
    np.testing.assert_allclose(r.arrays["phase_e"], pe - pe.mean(), atol=1e-4)


def test_refined_phase_e_is_kept_where_it_fits_better():
    """A strong-phase case where the refinements help (128² particles, seed 1: refined 0.954, plain
    0.947): kept, and not worse than the plain algebra."""
    s = strong_phase_case("particles", 1, shape=(128, 128))
    pe, _, r = _plain_and_default(s)
    check = r.metadata["phase_e_check"]
    assert check["kept"] == "refined" and check["decided_by"] == "amplitude agreement"
    assert "amplitude prior" in check["tried"]
    assert pearson_accuracy(r.arrays["phase_e"], s.phase_e, 8) > pearson_accuracy(pe, s.phase_e, 8)


def test_no_check_when_nothing_was_refined():
    s = strong_phase_case("rods", 0, shape=(96, 96))
    qc = 0.5 / (96 * s.pixel_size_nm)
    r = tie(s.series, pixel_size_nm=s.pixel_size_nm, defocus_nm=s.defocus_nm, voltage_kv=KV, flipped=s.flipped,
            qc_e_per_nm=qc, derivative_e="least_squares", phase_e_prior="none")
    assert "phase_e_check" not in r.metadata


@pytest.mark.parametrize("strong", [False, True])
def test_misfit_is_lowest_at_the_true_phases(strong):
    """Noise-free, exact geometry: the true (φe, φm) fit both series better than φe halved, doubled,
    sign-flipped, or φm's sign swapped between the sides."""
    if strong:
        s, kv = strong_phase_case("wires", 0, shape=(96, 96), noise=0.0), KV
    else:
        s, kv = simulate_flipped_series("skyrmions", (96, 96), defocus_nm=(-2e5, 0.0, 2e5), noise=0.0, n_contaminants=4,
                                        flip_rotation_deg=0.0, flip_shift_px=(0.0, 0.0), seed=0), 200.0
    fl = unmirror(s.flipped, "x")

    def mis(pe, pm):
        return flipped_misfit(s.series, fl, pm, pe, s.defocus_nm, s.pixel_size_nm, kv)

    best = mis(s.phase_e, s.phase_m)
    if strong:  # the model's I0 is each side's in-focus image (measured 0.0056; with the series' mean, 0.025)
        assert best < 0.012
    for pe, pm in ((0.5 * s.phase_e, s.phase_m), (2.0 * s.phase_e, s.phase_m), (-s.phase_e, s.phase_m), (s.phase_e, -s.phase_m)):
        assert mis(pe, pm) > 1.5 * best


def test_amplitude_agreement_size_and_sign():
    s = strong_phase_case("rods", 1, shape=(96, 96), noise=0.0)
    i0 = s.amplitude**2 * 700.0
    assert amplitude_agreement(s.phase_e, i0) > 0.99
    assert amplitude_agreement(-s.phase_e, i0) < -0.99
    assert amplitude_agreement(s.phase_e, np.full_like(i0, 700.0)) == 0.0


def test_bad_flipped_input_is_one_message():
    s = strong_phase_case("rods", 0, shape=(64, 64))
    kw = dict(pixel_size_nm=s.pixel_size_nm, defocus_nm=s.defocus_nm, voltage_kv=KV)
    with pytest.raises(InputError, match="flipped series must all have the same shape"):
        tie(s.series, flipped=[s.flipped[0], s.flipped[1], s.flipped[2][:, :60]], **kw)
    with pytest.raises(InputError, match="flipped series has shape"):
        tie(s.series, flipped=s.flipped[:, :, :60], **kw)
    with pytest.raises(InputError, match="flipped series has shape"):
        tie(s.series, flipped=np.concatenate([s.flipped, s.flipped[:2]]), **kw)
    with pytest.raises(InputError, match="symmetric"):
        tie(s.series, flipped=s.flipped, **{**kw, "defocus_nm": [-4e5, 0.0, 3e5]})
    with pytest.raises(InputError, match="duplicated"):
        tie(s.series, flipped=s.flipped, **{**kw, "defocus_nm": [-4e5, -4e5, 4e5]})
    assert issubclass(InputError, ValueError)


def test_all_noise_series_does_not_crash():
    """Pure noise on both sides: a result, finite, with the check's decision in the metadata."""
    rng = np.random.default_rng(0)
    noise = lambda: (100.0 + 10.0 * rng.standard_normal((3, 64, 64))).astype(np.float32)  # noqa: E731
    r = tie(noise(), flipped=noise(), pixel_size_nm=2.57, defocus_nm=[-4e5, 0.0, 4e5], voltage_kv=KV)
    assert np.isfinite(r.phase).all() and np.isfinite(r.arrays["phase_e"]).all()
    check = r.metadata.get("phase_e_check")
    assert check is None or check["decided_by"] == "amplitude agreement" or np.isfinite([check["misfit_plain"], check["misfit_refined"]]).all()


def test_bench_table_has_the_issue_columns():
    from napari_phase.bench.ltem_strong import strong_markdown, strong_rows

    rows = strong_rows(seeds=(1,), shape=(96, 96))
    assert [r["kind"] for r in rows] == ["wires", "rods", "particles"]
    for r in rows:
        assert r["phie_default"] >= r["phie_plain"] - 0.01 and abs(r["phim_default"] - r["phim_plain"]) <= 0.02
    text = "\n".join(strong_markdown(rows))
    assert "φe plain algebra" in text and "φm two plain TIEs" in text and "worst" in text


def test_choose_rule_misfit_without_witness_amplitude_with_one():
    """The rule itself on noise-free weak-phase series. A pure phase object (a film of varying
    thickness, no particles: nothing absorbs, no witness): the misfit decides — the true φe against φe halved, the true one wins as
    'refined' and as 'plain'. With particles (absorption follows φe): the agreement with −ln A
    decides — a refined φe shifted off the particles is refused."""
    from napari_phase.ltem.phase_e_check import choose_phase_e

    def case(n_particles):
        s = simulate_flipped_series("skyrmions", (96, 96), defocus_nm=(-2e5, 0.0, 2e5), noise=0.0, n_contaminants=n_particles,
                                    flip_rotation_deg=0.0, flip_shift_px=(0.0, 0.0), seed=0,
                                    thickness_variation_nm=0.0 if n_particles else 20.0)  # a film of varying thickness: φe, no absorption
        return s, (s.phase_m, s.series, unmirror(s.flipped, "x"), s.defocus_nm, s.pixel_size_nm, 200.0, ["test"])

    s, args = case(0)
    out, info = choose_phase_e(0.5 * s.phase_e, s.phase_e, *args)
    assert not info["amplitude_witness"] and info["decided_by"] == "misfit"
    assert info["kept"] == "refined" and out is s.phase_e
    out, info = choose_phase_e(s.phase_e, 0.5 * s.phase_e, *args)
    assert info["kept"].startswith("plain") and out is s.phase_e and "fits the images worse" in info["reason"]
    s, args = case(4)
    moved = np.roll(s.phase_e, 9, axis=1)
    out, info = choose_phase_e(s.phase_e, moved, *args)
    assert info["amplitude_witness"] and info["decided_by"] == "amplitude agreement"
    assert out is s.phase_e and "less than" in info["reason"]
    out, info = choose_phase_e(moved, s.phase_e, *args)  # a plain φe off the particles is no witness: the misfit decides
    assert not info["amplitude_witness"] and info["kept"] == "refined" and out is s.phase_e


def test_cli_bad_flipped_input_is_one_line(tmp_path, capsys):
    from napari_phase.cli import main

    s = strong_phase_case("rods", 0, shape=(64, 64))
    paths, fpaths = [], []
    for k in range(3):
        paths.append(str(tmp_path / f"s{k}.npy"))
        fpaths.append(str(tmp_path / f"f{k}.npy"))
        np.save(paths[-1], s.series[k])
        np.save(fpaths[-1], s.flipped[k][:, :60] if k == 2 else s.flipped[k])
    base = ["tie", *paths, "--pixel-size-nm", "2.57", "--out", str(tmp_path / "bad.h5")]
    for extra, word in ((["--defocus-step-mm", "0.4", "--flip", *fpaths], "differ in shape"),
                        (["--defocus-mm", "-0.4", "-0.4", "0.4", "--flip", *fpaths[:2], paths[2]], "duplicated")):
        capsys.readouterr()
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and word in err[0]
    assert not (tmp_path / "bad.h5").exists()


def test_check_off_returns_the_refined_phase_e_and_bad_value_is_refused():
    s = strong_phase_case("wires", 1, shape=(128, 128))
    kw = dict(pixel_size_nm=s.pixel_size_nm, defocus_nm=s.defocus_nm, voltage_kv=KV, flipped=s.flipped)
    off = tie(s.series, phase_e_check="off", **kw)
    assert "phase_e_check" not in off.metadata and off.metadata["parameters"]["phase_e_check"] == "off"
    assert pearson_accuracy(off.arrays["phase_e"], s.phase_e, 8) < 0.7  # measured 0.567: the refinements' damage
    with pytest.raises(InputError, match="phase_e_check must be one of"):
        tie(s.series, phase_e_check="never", **kw)
