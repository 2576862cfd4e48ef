"""LTEM results pinned in SIZE and SIGN, not only in shape or correlation (issue 8 §5).

Correlation-based accuracy is blind to a halved B·t, a doubled phase or a doubled interaction
constant; these tests compare magnitudes with the simulated truth (regression slope of the result
on the truth, which is also negative for a flipped sign) and with constants computed here.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_phase.physics.metrics import magnitude_slope
from napari_phase.ltem.forward import Microscope, simulate_image
from napari_phase.ltem.pixelwise import pixelwise
from napari_phase.ltem.simulate import simulate
from napari_phase.ltem.siprad import siprad
from napari_phase.ltem.sitie import sitie
from napari_phase.ltem.tie import tie

PX = 5.0
DF = -1.0e6
C = 6  # edge crop (px)


def slope(result, truth, crop=C):
    return magnitude_slope(result, truth, crop)


@pytest.fixture(scope="module")
def sky():
    """Skyrmion lattice, 64², −1 mm, 50 % noise (B0·t = 50 T·nm)."""
    return simulate("skyrmions", (64, 64), pixel_size_nm=PX, defocus_nm=DF, noise=0.5, seed=3)


@pytest.mark.parametrize("method", ["siprad", "pixelwise"])
def test_phase_and_signed_bt_have_the_true_size(sky, method):
    # smoothing_px=0: the solver's own scale (the default 2-px smoothing lowers peaks by ~14 % at 64²)
    if method == "siprad":
        r = siprad(sky.image, pixel_size_nm=PX, defocus_nm=DF, iterations=80, pretrain_iterations=60, smoothing_px=0,
                   device="cpu", num_threads=1)
    else:
        r = pixelwise(sky.image, pixel_size_nm=PX, defocus_nm=DF, iterations=60, smoothing_px=0, device="cpu", num_threads=1)
    assert 0.9 <= slope(r.phase, sky.phase_m) <= 1.1, slope(r.phase, sky.phase_m)
    assert 0.9 <= slope(r.bx, sky.bx) <= 1.1, slope(r.bx, sky.bx)
    assert 0.9 <= slope(r.by, sky.by) <= 1.1, slope(r.by, sky.by)
    # the peak B·t in T·nm, signed, within 10 % of the truth's (the film's B0·t = 50 T·nm)
    peak = np.unravel_index(np.argmax(np.abs(sky.by[C:-C, C:-C])), sky.by[C:-C, C:-C].shape)
    yy, xx = peak[0] + C, peak[1] + C
    win = (slice(yy - 1, yy + 2), slice(xx - 1, xx + 2))
    assert float(r.by[win].mean()) == pytest.approx(float(sky.by[win].mean()), rel=0.1)


def test_interaction_constant_at_200kv():
    from napari_phase.physics.optics import interaction_constant

    # σ = 2π/(λV) · (mc² + eV)/(2mc² + eV) = 7.29e-3 rad/(V·nm) at 200 kV (textbook value)
    assert interaction_constant(200.0, "nm") == pytest.approx(7.288e-3, rel=2e-3)


@pytest.fixture(scope="module")
def particles():
    return simulate("skyrmions", (64, 64), pixel_size_nm=PX, defocus_nm=DF, noise=0.1, n_contaminants=3, seed=5,
                    contaminant_radius_nm=(15.0, 25.0))


def test_electrostatic_phase_is_sigma_v0_t_inside_the_mask(particles):
    s = particles
    v0, xi = 20.0, 10.0  # the simulation's V0 (V) and ξ (nm)
    r = siprad(s.image, pixel_size_nm=PX, defocus_nm=DF, amplitude=s.mask, iterations=80, pretrain_iterations=60,
               mean_inner_potential_v=v0, extinction_length_nm=xi, device="cpu", num_threads=1)
    a = r.metadata["contaminant_amplitude"]
    sigma = 7.288e-3  # rad/(V·nm) at 200 kV, independent of the package
    pe = r["phase_electrostatic"]
    # φe = σ V0 t with t = −ξ ln A: the result's own φe follows the fitted A with the right constant
    np.testing.assert_allclose(pe[s.mask], sigma * v0 * xi * -np.log(a), rtol=0.01)
    assert np.all(pe[~s.mask] == 0)
    # ... and A and φe are those of the simulated particles (A = exp(−7/10) = 0.50, φe = σ·20·7 = 1.02 rad)
    assert a == pytest.approx(float(np.median(s.amplitude[s.mask])), abs=0.08)
    assert float(np.median(pe[s.mask])) == pytest.approx(float(np.median(s.phase_e[s.mask])), rel=0.15)


def _triplet(phase, dz_nm):
    mic = dict(cs_mm=0.0, divergence_mrad=0.0, defocus_spread_nm=0.0)
    return [simulate_image(phase, pixel_size_nm=PX, microscope=Microscope(defocus_nm=d, **mic)) for d in (-dz_nm, 0.0, dz_nm)]


def _bump(n=64, height_rad=2.0):
    y, x = np.mgrid[:n, :n]
    return (height_rad * np.exp(-((x - n / 2) ** 2 + (y - n / 2 + 2) ** 2) / 80.0)).astype(np.float32)


def test_tie_phase_has_the_true_size_and_sign():
    phase = _bump()
    r = tie(np.stack(_triplet(phase, 2e5)), pixel_size_nm=PX, defocus_step_nm=2e5, qc_per_nm=0)
    assert slope(r.phase, phase) == pytest.approx(1.0, abs=0.05)


def test_sitie_phase_has_the_true_size_and_sign():
    phase = _bump(height_rad=0.5)
    img = simulate_image(phase, pixel_size_nm=PX, microscope=Microscope(defocus_nm=-2e5, cs_mm=0.0, divergence_mrad=0.0,
                                                                           defocus_spread_nm=0.0))
    r = sitie(img, pixel_size_nm=PX, defocus_nm=-2e5, qc_per_nm=0)
    assert slope(r.phase, phase) == pytest.approx(1.0, abs=0.1)


@pytest.fixture(scope="module")
def particles_128():
    """Skyrmions, 128², −1 mm, 10 % noise, 4 particles of radius 20–50 nm (the detector's training range)."""
    return simulate("skyrmions", (128, 128), pixel_size_nm=PX, defocus_nm=DF, noise=0.1, n_contaminants=4, seed=5,
                    contaminant_radius_nm=(20.0, 50.0))


def _joint(s):
    return siprad(s.image, pixel_size_nm=PX, defocus_nm=DF, amplitude="joint", project_every=30, iterations=80,
                  pretrain_iterations=60, smoothing_px=0, device="cpu", num_threads=1)


def _assert_finds_the_particles(r, s):
    marked = r.amplitude < 1
    iou = (marked & s.mask).sum() / max(1, (marked | s.mask).sum())
    assert iou >= 0.5 and marked.sum() <= 2 * s.mask.sum(), (iou, int(marked.sum()), int(s.mask.sum()))
    assert float(r.amplitude[s.mask].mean()) < 0.8  # an all-ones amplitude must fail


def test_joint_mode_finds_the_particles(particles_128):
    s = particles_128
    r = _joint(s)
    _assert_finds_the_particles(r, s)
    # the particles' level is the simulated one (A = exp(−0.7) = 0.497) within 0.1, and B·t has its size and sign
    assert r.metadata["contaminant_amplitude"] == pytest.approx(float(np.median(s.amplitude[s.mask])), abs=0.1)
    assert 0.9 <= slope(r.bx, s.bx) <= 1.1 and 0.9 <= slope(r.by, s.by) <= 1.1, (slope(r.bx, s.bx), slope(r.by, s.by))


@pytest.mark.xfail(strict=True, reason="64² with particles of radius 15–25 nm (3–5 px, below the detector's 20–50 nm "
                                       "training range): the detector finds 2 of 3 (the third sits on the top edge) and "
                                       "adds a blob on the right edge, IoU 0.44; joint mode keeps its particles (0.44). "
                                       "The image fit cannot tell: pixel-wise residuals with and without that blob "
                                       "differ by < 0.3 %")
def test_joint_mode_finds_small_particles_at_64px(particles):
    _assert_finds_the_particles(_joint(particles), particles)
