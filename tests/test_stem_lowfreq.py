"""The CNN's low spatial frequencies from iCoM or SSB (stem/airpi/lowfreq.py, cnn(low_frequency=...)):
the crossover, the iCoM transfer (the CoM theorem), the combination's magnitude against a known
phase, and the option through the reconstruction (plumbing with an untrained network; accuracy
with the shipped model on a simulated weak phase object)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_phase import stem
from napari_phase.jobs import CancelToken, InputError, Progress, forward_job, run_job
from napari_phase.physics.metrics import magnitude_slope, xc
from napari_phase.physics.optics import electron_wavelength_a
from napari_phase.stem.airpi import data as airpi_data, lowfreq, model
from napari_phase.stem.airpi.reconstruct import cnn, cnn_job
from test_stem_sim import blurred_truth, probe, smooth_phase

torch.set_num_threads(1)
E, ALPHA = 300.0, 20.0
AOL = ALPHA * 1e-3 / electron_wavelength_a(E)  # α/λ, 1/Å


def _slope(a, b):
    return magnitude_slope(a, b)


# ----------------------------------------------------------------------------- the pieces


def test_crossover_shape():
    q = np.array([0.0, 0.3, 0.5, 0.75, 1.0, 1.125, 1.2, 3.0])
    low = lowfreq.crossover(q, 0.75, width=0.5)  # 1 up to 0.375, 0.5 at 0.75, 0 from 1.125
    assert low[0] == low[1] == 1.0
    assert low[3] == pytest.approx(0.5)
    assert 0.5 < low[2] < 1.0 and 0.0 < low[4] < 0.5
    assert low[5] == low[6] == low[7] == 0.0
    assert (lowfreq.crossover(q, 0.0) == 0).all()


def test_icom_transfer_is_the_aperture_autocorrelation():
    """No aberrations: T(q) = (2/π)(acos x − x√(1 − x²)), x = q/(2α/λ) (overlap of two discs)."""
    q = np.array([0.0, 0.25, 0.5, 1.0, 1.5, 1.9, 2.2]) * AOL
    x = np.clip(q / (2 * AOL), 0, 1)
    expect = (2 / math.pi) * (np.arccos(x) - x * np.sqrt(1 - x**2))
    got = lowfreq.icom_transfer(q, energy_kev=E, semiangle_mrad=ALPHA)
    np.testing.assert_allclose(got, expect, atol=0.01)
    # a defocused probe is wider: its intensity transfers less at the same q
    df = lowfreq.icom_transfer(q, energy_kev=E, semiangle_mrad=ALPHA, defocus_a=-50.0)
    assert df[0] == pytest.approx(1.0) and df[2] < got[2] - 0.1


def test_transfer_matches_the_com_theorem_of_the_simulator():
    """The simulator's probe blur (blurred_truth = φ ⊛ |ψ_in|²) has exactly the transfer icom_transfer gives."""
    m, dx = 128, 0.1
    phi = smooth_phase(m, dx, qmax=2.0, rms=0.1, seed=3)
    blur = blurred_truth(phi, probe(m, dx), 1)
    q = np.hypot(np.fft.fftfreq(m, dx)[:, None], np.fft.fftfreq(m, dx)[None, :])
    band = (q > 0.1) & (q < 1.5)
    ratio = np.real(np.fft.fft2(blur)[band] / np.fft.fft2(phi)[band])
    t = lowfreq.icom_transfer(q[band], energy_kev=E, semiangle_mrad=ALPHA)
    np.testing.assert_allclose(ratio, t, atol=0.03)


def test_com_confidence_follows_the_signal_to_noise_ratio():
    """A curl-free CoM field (the gradient of a smooth phase) is trusted where its power stands above
    the noise that the transverse (curl) part measures: ≈ 1 noise-free, lower with noise, ≈ 0 for a
    field that is all noise; the noise estimate scales with the noise power."""
    m, px = 48, 0.2
    phi = smooth_phase(m, px, qmax=1.0, rms=0.1, seed=5)
    gy, gx = np.gradient(phi, px)
    rng = np.random.default_rng(1)
    q = np.array([0.3, 0.6, 0.9])
    clean = lowfreq.com_confidence(gy, gx, px, epsilon=0.3)
    assert (clean(q) > 0.95).all()
    sigma = gy.std()
    noisy = lowfreq.com_confidence(gy + sigma * rng.normal(size=gy.shape), gx + sigma * rng.normal(size=gy.shape), px,
                                   epsilon=0.3)
    assert (noisy(q) < clean(q) - 0.05).all() and (noisy(q) > 0.4).all()
    assert noisy.noise == pytest.approx(sigma**2 * (2 * m) ** 2, rel=0.3)  # |FFT|² of white noise: σ²·N
    louder = lowfreq.com_confidence(gy + 3 * sigma * rng.normal(size=gy.shape),
                                    gx + 3 * sigma * rng.normal(size=gy.shape), px, epsilon=0.3)
    assert louder.noise == pytest.approx(9 * noisy.noise, rel=0.3) and (louder(q) < noisy(q)).all()
    pure = lowfreq.com_confidence(rng.normal(size=gy.shape), rng.normal(size=gy.shape), px, epsilon=0.3)
    assert (pure(q) < 0.25).all()
    # ε is the CNN's error power relative to the signal: a better CNN (smaller ε) keeps more of its own
    assert (lowfreq.com_confidence(gy + sigma * rng.normal(size=gy.shape), gx, px, epsilon=0.03)(q) < noisy(q)).all()


@pytest.fixture(scope="module")
def weak_truth():
    """A weak smooth phase on a 0.1 Å grid (the CNN grid, oversample 2 of a 0.2 Å scan) and what
    iCoM measures of it on the scan grid (φ ⊛ |ψ_in|², the CoM theorem)."""
    m, dx = 128, 0.1
    phi = smooth_phase(m, dx, qmax=0.35, rms=0.05, seed=2)  # inside the flat part of L (q < 0.38 1/Å)
    return phi, blurred_truth(phi, probe(m, dx), 2), dx


def _icom_transfer(q):
    return lowfreq.icom_transfer(q, energy_kev=E, semiangle_mrad=ALPHA)


def test_combine_restores_a_shrunk_cnn_from_the_icom_measurement(weak_truth):
    """CNN = 0.5·φ (a shrunk weak object, as measured at 1e5 e/Å²) plus fine detail it adds; iCoM =
    φ ⊛ |ψ|² on the scan grid. The combination has the right magnitude (slope within 5 %) and xc."""
    phi, icom_scan, dx = weak_truth
    rng = np.random.default_rng(0)
    detail = smooth_phase(phi.shape[0], dx, qmax=4.0, rms=0.005, seed=9) * (rng.random() + 1)
    cnn_phase = 0.5 * phi + detail
    crop = 8
    inner = (slice(crop, -crop), slice(crop, -crop))
    out = lowfreq.combine(cnn_phase, dx, icom_scan, 2 * dx, cutoff_inv_a=lowfreq.DEFAULT_CUTOFF * AOL,
                          transfer=_icom_transfer)
    s_cnn, s_out = _slope(cnn_phase[inner], phi[inner]), _slope(out[inner], phi[inner])
    assert s_cnn == pytest.approx(0.5, abs=0.03)
    assert s_out == pytest.approx(1.0, abs=0.05), s_out
    assert xc(out, phi, crop) > max(0.98, xc(cnn_phase, phi, crop))
    # without dividing out the probe transfer, the magnitude is short: T matters
    no_t = lowfreq.combine(cnn_phase, dx, icom_scan, 2 * dx, cutoff_inv_a=lowfreq.DEFAULT_CUTOFF * AOL)
    assert _slope(no_t[inner], phi[inner]) < s_out - 0.05
    # a CNN that is already right and an exact source give it back unchanged (no edge or grid artefacts)
    same = lowfreq.combine(phi, dx, phi[::2, ::2], 2 * dx, cutoff_inv_a=lowfreq.DEFAULT_CUTOFF * AOL)
    np.testing.assert_allclose(same[inner], phi[inner], atol=0.02 * phi.std())


def test_combine_keeps_unreached_pixels_at_zero_and_is_float32(weak_truth):
    phi, icom_scan, dx = weak_truth
    known = np.ones(phi.shape, bool)
    known[-3:] = False
    out = lowfreq.combine(np.where(known, phi, 0.0), dx, icom_scan, 2 * dx, cutoff_inv_a=0.8, known=known)
    assert out.dtype == np.float32 and (out[-3:] == 0).all() and np.isfinite(out).all()


# ----------------------------------------------------------------------------- through the reconstruction


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small untrained network: its phase is not the object, so the option's effect is visible."""
    from napari_phase.models import save_model

    torch.manual_seed(0)
    net = model.AirpiNet(width=4, depth=2)
    folder = tmp_path_factory.mktemp("models_lf")
    return str(save_model(net, {"network": net.config(), "training_ranges": airpi_data.Ranges().as_dict()},
                          folder, "tiny_lf"))


@pytest.fixture(scope="module")
def weak_scan():
    """A weak smooth phase object (0.05 rad rms, q < 0.8 1/Å) scanned 16x16 at 0.2 Å, noise-free."""
    dx = 0.2461  # the CNN window pixel at 300 kV, 20 mrad
    phi = smooth_phase(128, dx, qmax=0.8, rms=0.05, seed=4)
    return airpi_data.simulate_scan(phi, scan_shape=(16, 16), seed=0)


def _cal(s):
    return dict(energy_kev=s.energy_kev, semiangle_mrad=s.semiangle_mrad, scan_step_a=s.scan_step_a,
                detector_mrad_per_px=s.detector_mrad_per_px)


def test_option_metadata_and_the_second_pass(weak_scan, tiny_model):
    plain = cnn(weak_scan.data, **_cal(weak_scan), model=tiny_model, device="cpu", low_frequency=None)
    assert plain.metadata["low_frequency"] is None
    msgs = []
    job = cnn_job(weak_scan.data, **_cal(weak_scan), model=tiny_model, device="cpu", low_frequency="icom",
                  low_frequency_cutoff=0.6, block_rows=8)
    res = run_job(job, on_progress=lambda p: msgs.append(p.message))
    md = res.metadata
    assert md["low_frequency"] == "icom" and md["low_frequency_cutoff"] == 0.6
    assert md["low_frequency_cutoff_inv_a"] == pytest.approx(0.6 * AOL, rel=1e-3)
    assert any("low frequencies from icom" in m for m in msgs)
    assert res.phase.shape == plain.phase.shape and res.phase.dtype == np.float32
    np.testing.assert_allclose(res.amplitude, plain.amplitude, atol=1e-5)  # the amplitude is the CNN's
    assert not np.allclose(res.phase, plain.phase)
    ssb = cnn(weak_scan.data, **_cal(weak_scan), model=tiny_model, device="cpu", low_frequency="ssb")
    assert ssb.metadata["low_frequency"] == "ssb" and np.isfinite(ssb.phase).all()


def test_untrained_network_gets_the_objects_low_frequencies(weak_scan, tiny_model):
    """Even an untrained network's phase carries the weak object's low frequencies once iCoM's are put
    in: xc against the truth rises from ~0 to > 0.8, with the magnitude within 20 % (the rest of the
    phase is the untrained network's)."""
    truth_of = weak_scan.truth_on_grid
    plain = cnn(weak_scan.data, **_cal(weak_scan), model=tiny_model, device="cpu", low_frequency=None)
    res = cnn(weak_scan.data, **_cal(weak_scan), model=tiny_model, device="cpu", low_frequency="icom",
              low_frequency_cutoff=1.0)
    truth = truth_of(res.phase.shape, res.pixel_size)
    assert xc(plain.phase, truth, 4) < 0.5
    assert xc(res.phase, truth, 4) > 0.8
    inner = (slice(4, -4), slice(4, -4))
    assert _slope(res.phase[inner], truth[inner]) == pytest.approx(1.0, abs=0.2)


def test_cancel_in_the_second_pass_returns_the_plain_cnn(weak_scan, tiny_model):
    token = CancelToken()

    def on_progress(p: Progress):
        if "low frequencies" in p.message:
            token.cancel()

    res = run_job(cnn_job(weak_scan.data, **_cal(weak_scan), model=tiny_model, device="cpu", low_frequency="icom",
                          block_rows=8), on_progress=on_progress, cancel=token)
    plain = cnn(weak_scan.data, **_cal(weak_scan), model=tiny_model, device="cpu", low_frequency=None)
    assert res.metadata["low_frequency"] is None and "cancelled" in res.metadata["low_frequency_skipped"]
    np.testing.assert_allclose(res.phase, plain.phase, atol=1e-5)


def test_partial_results_during_the_cnn_pass_are_the_plain_cnn(weak_scan, tiny_model):
    parts = [p.partial for p in forward_job(cnn_job(weak_scan.data, **_cal(weak_scan), model=tiny_model, device="cpu",
                                                    low_frequency="icom", block_rows=8)) if p.partial is not None]
    assert [int(p.metadata["rows_done"]) for p in parts] == [8, 16]
    assert all("low_frequency" not in p.metadata for p in parts)


@pytest.mark.parametrize("kwargs, message", [
    ({"low_frequency": "wdd"}, "low_frequency must be"),
    ({"low_frequency": "icom", "low_frequency_cutoff": 0.0}, "fraction of α/λ"),
    ({"low_frequency": "icom", "low_frequency_cutoff": float("nan")}, "fraction of α/λ"),
    ({"low_frequency": "icom", "low_frequency_cutoff": "half"}, "must be a number"),
    ({"low_frequency": "icom", "low_frequency_cutoff": 5.0}, "fraction of α/λ"),
])
def test_bad_low_frequency_options(weak_scan, tiny_model, kwargs, message):
    with pytest.raises(InputError, match=message):
        cnn(weak_scan.data, **_cal(weak_scan), model=tiny_model, device="cpu", **kwargs)


def test_bad_data_still_raises_with_the_option(weak_scan, tiny_model):
    bad = weak_scan.data.copy()
    bad[3, 4, 10, 10] = np.nan
    with pytest.raises(InputError, match="NaN"):
        cnn(bad, **_cal(weak_scan), model=tiny_model, device="cpu", low_frequency="icom")
    with pytest.raises(InputError, match="zero"):
        cnn(np.zeros_like(weak_scan.data), **_cal(weak_scan), model=tiny_model, device="cpu", low_frequency="icom")


# ----------------------------------------------------------------------------- the shipped model


def test_shipped_model_weak_object_low_frequencies_at_least_as_good():
    """The shipped CNN on a simulated weak phase object with a known phase (0.08 rad rms, q < 0.9 1/Å,
    20x20 scan): with iCoM's low frequencies the xc is at least the plain CNN's, and the magnitude
    (least-squares slope against the truth) is right: within 5 % noise-free; at 1e5 e/Å² the plain
    CNN shrinks the object to a slope of ~0.27 and the combination restores ~0.94 (the noise-adaptive
    weight keeps a little of the CNN where the CoM field's SNR is finite), pinned at ≥ 0.9."""
    from napari_phase import models

    if "airpi_default" not in models.list_models():
        pytest.skip("no shipped CNN model")
    dx = 0.2461
    phi = smooth_phase(128, dx, qmax=0.9, rms=0.08, seed=6)
    for dose, slope_tol in ((None, 0.05), (1e5, 0.1)):
        s = airpi_data.simulate_scan(phi, scan_shape=(20, 20), dose_e_per_a2=dose, seed=1)
        plain = cnn(s.data, **_cal(s), device="cpu", threads=1, low_frequency=None)
        comb = cnn(s.data, **_cal(s), device="cpu", threads=1, low_frequency="icom")
        truth = s.truth_on_grid(comb.phase.shape, comb.pixel_size)
        crop = 4
        inner = (slice(crop, -crop), slice(crop, -crop))
        x_plain, x_comb = xc(plain.phase, truth, crop), xc(comb.phase, truth, crop)
        slope_plain, slope_comb = _slope(plain.phase[inner], truth[inner]), _slope(comb.phase[inner], truth[inner])
        assert x_comb >= x_plain - 0.002 and x_comb > 0.95, (dose, x_plain, x_comb)
        assert slope_comb == pytest.approx(1.0, abs=slope_tol), (dose, slope_plain, slope_comb)
        assert abs(slope_comb - 1) <= abs(slope_plain - 1) + 0.01, (dose, slope_plain, slope_comb)


def test_non_square_steps_and_a_defocused_probe(weak_scan, tiny_model):
    """Every second row (steps 0.4 × 0.2 Å): the iCoM map (resampled to square pixels) lands on the
    CNN grid; a strongly defocused probe (T(q) turns negative) fades the source out instead of
    dividing by it: finite results, and the low frequencies still follow the truth."""
    cal = _cal(weak_scan)
    res = cnn(weak_scan.data[::2], **{**cal, "scan_step_a": (2 * cal["scan_step_a"], cal["scan_step_a"])},
              model=tiny_model, device="cpu", low_frequency="icom", low_frequency_cutoff=1.0)
    assert res.metadata["low_frequency"] == "icom" and np.isfinite(res.phase).all()
    truth = weak_scan.truth_on_grid(res.phase.shape, res.pixel_size)
    assert xc(res.phase, truth, 4) > 0.7
    t = lowfreq.icom_transfer(np.linspace(0, 2 * AOL, 50), energy_kev=E, semiangle_mrad=ALPHA, defocus_a=-200.0)
    assert t.min() < 0  # the case the fade-out exists for
    df = cnn(weak_scan.data, **cal, model=tiny_model, device="cpu", low_frequency="icom", defocus_a=-200.0)
    assert np.isfinite(df.phase).all() and np.abs(df.phase).max() < 10
