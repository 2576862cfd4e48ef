"""SSB at low dose (issue 16 §4): the Wiener weight per spatial frequency (stem/ssb_wiener.py), its
measured noise, and the warning when the scan step undersamples the SSB band."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_phase import stem
from napari_phase.jobs import InputError
from napari_phase.physics.metrics import xc
from napari_phase.stem import ssb_wiener
from test_stem_sim import atoms_phase, simulate

M, DX = 48, 0.2  # 48² object px of 0.2 Å, scan step 1 px = 0.2 Å (< λ/(4α) = 0.246 Å at 300 kV, 20 mrad)


@pytest.fixture(scope="module")
def clean():
    phi = 0.5 * atoms_phase(M, DX, spacing_a=2.4)
    data, _, det, step_a = simulate(phi, DX, 1)
    return phi, data, det, step_a


def _dose(data, dose, step_a, seed=1):
    return np.random.default_rng(seed).poisson(data * dose * step_a**2).astype(np.float32)


def _ssb(data, det, step_a, **kw):
    return stem.ssb(data, energy_kev=300, semiangle_mrad=20, scan_step_a=step_a, detector_mrad_per_px=det, **kw)


def _std_ratio(a, b):
    return float(np.std(a) / np.std(b))


def test_wiener_lifts_low_dose_and_keeps_noise_free(clean):
    phi, data, det, step_a = clean
    # measured: noise-free plain 1.000 (std 0.999), Wiener 0.992 (0.991)
    w0 = _ssb(data, det, step_a)
    assert w0.metadata["ssb_filter"]["weighting"] == "wiener"
    # noise-free: the noise-only pixels hold only second-order leakage (measured σ² = 4.9e-4 in units
    # of the bright-field level; the trotters' own signal there would be ~10⁴× more)
    assert w0.metadata["ssb_filter"]["noise_variance_per_pixel"] < 0.01
    assert xc(w0.phase, phi) > 0.985 and _std_ratio(w0.phase, phi) == pytest.approx(1.0, abs=0.03)
    # measured at 2e3 e/Å²: plain 0.14 (std ratio 7.3: mostly noise), Wiener 0.745 (0.84)
    noisy = _dose(data, 2e3, step_a)
    plain = _ssb(noisy, det, step_a, weighting="none")
    wiener = _ssb(noisy, det, step_a)
    assert plain.metadata["ssb_filter"] == {"weighting": "none"}
    assert xc(plain.phase, phi) < 0.3 and _std_ratio(plain.phase, phi) > 4
    assert xc(wiener.phase, phi) > 0.68
    assert 0.65 < _std_ratio(wiener.phase, phi) < 1.0


def test_noise_is_measured_from_the_data_not_assumed(clean):
    phi, data, det, step_a = clean
    noisy = _dose(data, 2e3, step_a)
    res = _ssb(noisy, det, step_a)
    # Poisson counts: one pixel of G(k, Q) has variance Σ_p I(k; r_p) = positions × level (counts),
    # i.e. positions / level in units of the bright-field level
    yy, xx = np.indices((M, M))
    disc = (yy - M // 2) ** 2 + (xx - M // 2) ** 2 < (20.0 / det) ** 2
    level = float(noisy[:, :, disc].mean())
    sigma2 = res.metadata["ssb_filter"]["noise_variance_per_pixel"]
    assert sigma2 == pytest.approx(M * M / level, rel=0.08)  # measured 8430 vs 8441
    # at a high dose the trotters' signal dwarfs the noise: the noise-only region must still see only noise
    # (measured: σ² / Poisson = 1.02 at 1e6 e/Å²)
    rich = _dose(data, 1e6, step_a)
    level_rich = float(rich[:, :, disc].mean())
    assert _ssb(rich, det, step_a).metadata["ssb_filter"]["noise_variance_per_pixel"] == pytest.approx(
        M * M / level_rich, rel=0.25)
    # the same data in other units (not counts any more): the same phase, the same σ² in level units
    scaled = _ssb(noisy * 3.7, det, step_a)
    np.testing.assert_allclose(scaled.phase, res.phase, atol=1e-4 * np.abs(res.phase).max())
    assert scaled.metadata["ssb_filter"]["noise_variance_per_pixel"] == pytest.approx(sigma2, rel=1e-4)
    # streamed block by block: the same numbers as the one-pass FFT
    acc = _ssb(noisy, det, step_a, mode="accumulate", block_rows=7)
    assert acc.metadata["mode"] == "accumulate" and res.metadata["mode"] == "fft"
    np.testing.assert_allclose(acc.phase, res.phase, atol=1e-4 * np.abs(res.phase).max())


def test_signal_power_fit_and_gain_limits():
    rng = np.random.default_rng(0)
    band, dq = 2.0, 0.05
    q = rng.uniform(0.02, band, 4000)
    n = np.full(q.shape, 100.0)
    sigma2 = 50.0  # var per Q = 0.5
    s_true = 4.0 * np.exp(-q / 0.5)
    phi = (rng.normal(size=q.shape) + 1j * rng.normal(size=q.shape)) * np.sqrt((s_true + sigma2 / n) / 2)
    s, a, q0 = ssb_wiener.signal_power(phi, sigma2 / n, q, dq, band)
    assert q0 == pytest.approx(0.5, rel=0.25) and a == pytest.approx(4.0, rel=0.25)
    gain, info = ssb_wiener.wiener_gain(phi, n, sigma2, q, dq, band)
    expect = s_true / (s_true + sigma2 / n)
    assert np.corrcoef(gain, expect)[0, 1] > 0.95 and np.abs(gain - expect).max() < 0.2
    # no noise: the plain average (gain 1); no measurable signal: the floor, so gain ∝ N (trotter area)
    assert np.all(ssb_wiener.wiener_gain(phi, n, 0.0, q, dq, band)[0] == 1.0)
    noise = (rng.normal(size=q.shape) + 1j * rng.normal(size=q.shape)) * np.sqrt(0.25)
    n_var = rng.integers(10, 200, q.shape).astype(float)
    g, info = ssb_wiener.wiener_gain(noise * np.sqrt(100.0 / n_var), n_var, 50.0, q, dq, band)
    assert info["signal_power_a"] < 0.05 * info["signal_power_floor"] / ssb_wiener.FLOOR
    ratio = g / n_var
    assert ratio.max() / ratio.min() < 1.12  # ∝ N within the floor's own saturation
    assert g.max() == pytest.approx(ssb_wiener.FLOOR / (1 + ssb_wiener.FLOOR), rel=0.05)


def test_undersampling_warns_once_in_one_line(clean):
    phi, data, det, step_a = clean
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = _ssb(data, det, step_a)  # 0.2 Å ≤ λ/(4α) = 0.246 Å: silent
    assert "warning" not in res.metadata
    with pytest.warns(UserWarning, match="undersamples SSB") as seen:
        coarse = _ssb(data, det, 0.3)
    assert len(seen) == 1
    msg = coarse.metadata["warning"]
    assert "\n" not in msg and "0.246 Å" in msg and "2.03 1/Å" in msg and "1.67 1/Å" in msg
    # the bound itself: λ/(4α), per axis (a non-square step warns on its coarse axis)
    lam = 0.019687
    from napari_phase.stem.ssb import undersampling_message

    assert undersampling_message((0.24, 0.24), lam, 20.0) is None
    assert undersampling_message((0.2, 0.25), lam, 20.0) is not None
    assert undersampling_message((0.339, 0.339), lam, 14.5) is None  # λ/(4·14.5 mrad) = 0.3394 Å
    assert undersampling_message((0.341, 0.341), lam, 14.5) is not None


def test_bad_weighting_is_a_clear_error(clean):
    _, data, det, step_a = clean
    with pytest.raises(InputError, match="weighting must be 'wiener' or 'none'"):
        _ssb(data, det, step_a, weighting="area")
