"""Physics package: wavelength, interaction constant, transfer functions, induction, colour, metrics."""

import math

import numpy as np
import pytest

from napari_phase.physics import (
    HBAR_OVER_E_T_NM2,
    color_wheel_image,
    color_wheel_legend,
    compare,
    electron_wavelength_a,
    electron_wavelength_nm,
    fresnel_propagator,
    induction_from_phase,
    interaction_constant,
    lens_transfer,
    pearson_accuracy,
    phase_from_induction,
    phase_from_magnetization,
    psnr,
    ssim,
)

# ħ/e written out here on purpose (not imported): 1.054571817e-34 J s / 1.602176634e-19 C in T·nm².
HBAR_OVER_E = 658.2119569


# --------------------------------------------------------------------------- optics


@pytest.mark.parametrize("kv, pm", [(200.0, 2.5079), (300.0, 1.9687), (80.0, 4.1757)])
def test_wavelength(kv, pm):
    assert electron_wavelength_nm(kv) * 1e3 == pytest.approx(pm, abs=5e-4)
    assert electron_wavelength_a(kv) == pytest.approx(10 * electron_wavelength_nm(kv), rel=1e-12)


@pytest.mark.parametrize("kv, sigma", [(200.0, 7.29e-4), (300.0, 6.53e-4)])
def test_interaction_constant(kv, sigma):
    assert interaction_constant(kv) == pytest.approx(sigma, rel=3e-3)
    assert interaction_constant(kv, "nm") == pytest.approx(10 * interaction_constant(kv, "A"), rel=1e-12)


def test_bad_voltage_and_unit():
    with pytest.raises(ValueError):
        electron_wavelength_nm(0)
    with pytest.raises(ValueError):
        interaction_constant(200, "pm")


def test_fresnel_propagator_composes_and_is_unitary():
    lam, px = electron_wavelength_nm(200), 5.0
    p1 = fresnel_propagator((33, 40), px, lam, -3e4)
    p2 = fresnel_propagator((33, 40), px, lam, 7e4)
    p12 = fresnel_propagator((33, 40), px, lam, 4e4)
    np.testing.assert_allclose(p1 * p2, p12, atol=1e-9)
    np.testing.assert_allclose(np.abs(p1), 1.0, atol=1e-12)
    np.testing.assert_allclose(p1 * fresnel_propagator((33, 40), px, lam, 3e4), 1.0, atol=1e-9)
    assert p1.shape == (33, 40)


def test_fresnel_sign_positive_phase_bump_focuses_downstream():
    """exp(-iπλz q²): a positive phase bump is a converging lens, so the centre brightens for z > 0
    and darkens for z < 0 (the TIE's ∂I/∂z = -(λ/2π)∇²φ with ∇²φ < 0 at the peak)."""
    lam, px, n = electron_wavelength_nm(200), 5.0, 64
    y, x = np.mgrid[0:n, 0:n] - n / 2
    phi = 0.3 * np.exp(-(x**2 + y**2) / (2 * 6.0**2))
    wave = np.exp(1j * phi)
    centre = {}
    for z in (-2e4, 2e4):
        out = np.fft.ifft2(np.fft.fft2(wave) * fresnel_propagator((n, n), px, lam, z))
        centre[z] = abs(out[n // 2, n // 2]) ** 2
    lap_centre = -0.3 * 2 / (6.0 * px) ** 2  # ∇²φ at the peak, rad/nm²
    expected = -lam * 2e4 / (2 * np.pi) * lap_centre  # ≈ +0.0053
    assert centre[2e4] - 1 == pytest.approx(expected, rel=0.05)
    assert centre[-2e4] - 1 == pytest.approx(-expected, rel=0.05)


def test_lens_transfer_bounded_and_trivial_in_focus():
    lam = electron_wavelength_nm(200)
    t = lens_transfer((48, 64), 2.0, lam, -1e6, cs=1e6, divergence_rad=1e-5, defocus_spread=100.0, aperture_q=0.2)
    assert t.shape == (48, 64)
    assert np.all(np.abs(t) <= 1 + 1e-12)
    assert abs(t[0, 0] - 1) < 1e-12  # q = 0 passes unchanged
    assert np.any(np.abs(t) < 0.5)  # envelopes / aperture do damp something
    t0 = lens_transfer((16, 16), 2.0, lam, 0.0)
    np.testing.assert_allclose(t0, 1.0, atol=1e-12)
    # pure defocus equals Fresnel propagation by Δf
    np.testing.assert_allclose(lens_transfer((20, 24), 3.0, lam, 5e4), fresnel_propagator((20, 24), 3.0, lam, 5e4), atol=1e-12)


# --------------------------------------------------------------------------- induction


def test_hbar_over_e_constant():
    assert HBAR_OVER_E_T_NM2 == pytest.approx(HBAR_OVER_E, rel=1e-8)


def test_linear_phase_gives_exact_induction():
    """φ = (e/ħ)(Bx·t · y − By·t · x) ⇒ Bx·t, By·t back exactly (a 2π/φ0 slip would double them)."""
    px = 4.0
    bxt, byt = 37.0, -12.5  # T·nm
    y, x = np.mgrid[0:32, 0:40] * px
    phi = (bxt * y - byt * x) / HBAR_OVER_E
    bx, by = induction_from_phase(phi, px)
    np.testing.assert_allclose(bx, bxt, rtol=1e-5)
    np.testing.assert_allclose(by, byt, rtol=1e-5)
    assert bx.dtype == np.float32 and bx.shape == phi.shape


def test_phase_from_induction_amplitude():
    """Divergence-free By·t = B sin(2πx/L): φ = (e/ħ) B L/(2π) cos(2πx/L) exactly."""
    px, nx, ny, period_px = 5.0, 96, 16, 24
    length = period_px * px
    x = np.arange(nx) * px
    b = 50.0
    by = np.broadcast_to(b * np.sin(2 * np.pi * x / length), (ny, nx))
    phi = phase_from_induction(np.zeros((ny, nx)), by, px)
    expected = b * length / (2 * np.pi) / HBAR_OVER_E * np.cos(2 * np.pi * x / length)
    np.testing.assert_allclose(phi[0], expected, atol=1e-4 * np.abs(expected).max())
    # the Mansuripur form with B0 t = 50 T·nm and m = (0, sin) is the same thing
    phi_m = phase_from_magnetization(np.zeros((ny, nx)), by / b, px, 1.0, 50.0)
    np.testing.assert_allclose(phi_m, phi, atol=1e-6)


def test_induction_round_trip():
    """phase_from_induction ∘ induction_from_phase ≈ identity for a smooth periodic phase, and the
    other way round for a divergence-free field."""
    px, n = 5.0, 64
    y, x = np.mgrid[0:n, 0:n]
    phi = np.sin(2 * np.pi * 2 * x / n) * np.cos(2 * np.pi * 3 * y / n) + 0.5 * np.cos(2 * np.pi * (x + y) / n)
    bx, by = induction_from_phase(phi, px)
    back = phase_from_induction(bx, by, px)
    assert pearson_accuracy(back, phi) > 0.999
    # central differences shrink the amplitude slightly at these frequencies (sinc ≈ 0.99)
    assert np.std(back) / np.std(phi) == pytest.approx(1.0, abs=0.02)
    bx2, by2 = induction_from_phase(back, px)
    assert pearson_accuracy(bx2, bx) > 0.999 and pearson_accuracy(by2, by) > 0.999


# --------------------------------------------------------------------------- colour wheel


def test_color_wheel_image():
    rng = np.random.default_rng(1)
    bx, by = rng.normal(size=(2, 20, 30))
    rgb = color_wheel_image(bx, by)
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.float32
    assert rgb.min() >= 0 and rgb.max() <= 1
    # +x is red, zero field is black
    red = color_wheel_image(np.array([[1.0, 0.0]]), np.array([[0.0, 0.0]]), saturate_percentile=100)
    np.testing.assert_allclose(red[0, 0], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(red[0, 1], [0, 0, 0], atol=1e-6)
    # opposite directions give different colours
    opp = color_wheel_image(np.array([[1.0, -1.0]]), np.array([[0.0, 0.0]]), saturate_percentile=100)
    assert np.abs(opp[0, 0] - opp[0, 1]).sum() > 1


def test_color_wheel_legend():
    leg = color_wheel_legend(65)
    assert leg.shape == (65, 65, 4)
    assert leg[0, 0, 3] == 0 and leg[32, 32, 3] == 1
    assert 0 <= leg.min() and leg.max() <= 1


# --------------------------------------------------------------------------- metrics


def test_metrics():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(32, 32))
    assert pearson_accuracy(a, a) == pytest.approx(1.0)
    assert pearson_accuracy(-a, a) == pytest.approx(-1.0)
    assert pearson_accuracy(a + 5.0, a) == pytest.approx(1.0)  # mean removed
    assert psnr(a, a) == math.inf
    assert ssim(a, a) == pytest.approx(1.0)
    noisy = a + 0.1 * rng.normal(size=a.shape)
    assert 0.95 < pearson_accuracy(noisy, a) < 1.0
    assert 20 < psnr(noisy, a) < 40
    c = compare(noisy, a, crop=2)
    assert set(c) == {"accuracy", "ssim", "psnr_db"}
    assert pearson_accuracy(np.ones((8, 8)), a[:8, :8]) == 0.0
    with pytest.raises(ValueError):
        pearson_accuracy(a, a[:10])
