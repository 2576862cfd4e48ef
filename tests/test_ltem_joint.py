"""SIPRAD's joint mode (ltem/joint.py): the detector's particles, their levels solved with the phase.

Issue 8 §3/§5: the joint mode must find the particles (IoU with the truth, marked area, level) and
keep the phase/B of the right size. The size-pinned test on skyrmions is in test_ltem_magnitudes.py;
here a second texture and seed, the model's pieces, series, cancel and bad input.
"""

from __future__ import annotations

import numpy as np
import pytest

from job_helpers import run_cancelling_after
from napari_phase.physics.metrics import magnitude_slope
from napari_phase.jobs import CancelToken, InputError, run_job
from napari_phase.ltem.detect import iou, suggest_contaminant_mask
from napari_phase.ltem.joint import JointAmplitude, start_level
from napari_phase.ltem.simulate import simulate
from napari_phase.ltem.siprad import make_problem, siprad, siprad_job

PX, DF = 5.0, -1.0e6
FAST = dict(project_every=30, iterations=80, pretrain_iterations=60, device="cpu", num_threads=1)
TRUE_A = float(np.exp(-0.7))  # the simulation's particles: 7 nm thick, ξ = 10 nm


def _slope(result, truth, crop=6):
    return magnitude_slope(result, truth, crop)


@pytest.fixture(scope="module")
def bubbles():
    """Bubble domains, 128², −1 mm, 30 % noise, 4 particles of radius 20–50 nm (the detector's range)."""
    return simulate("bubbles", (128, 128), pixel_size_nm=PX, defocus_nm=DF, noise=0.3, n_contaminants=4, seed=3,
                    contaminant_radius_nm=(20.0, 50.0))


@pytest.fixture(scope="module")
def bubbles_joint(bubbles):
    return siprad(bubbles.image, pixel_size_nm=PX, defocus_nm=DF, amplitude="joint", smoothing_px=0, **FAST)


def test_joint_finds_the_particles_on_bubbles(bubbles, bubbles_joint):
    s, r = bubbles, bubbles_joint
    marked = r.amplitude < 1
    det = suggest_contaminant_mask(s.image, pixel_size_nm=PX, defocus_nm=DF)
    # the particles: as well as the detector alone (measured 0.683 here), at most 1.5x the true area
    assert iou(marked, s.mask) >= 0.6 and iou(marked, s.mask) >= iou(det, s.mask) - 1e-9, (iou(marked, s.mask), iou(det, s.mask))
    assert marked.sum() <= 1.5 * s.mask.sum(), (int(marked.sum()), int(s.mask.sum()))
    # two levels; the particles' level is the simulated one (A = 0.497) within 0.1 (an all-ones amplitude fails)
    assert len(np.unique(r.amplitude)) == 2 and r.amplitude.max() == 1.0
    assert r.metadata["contaminant_amplitude"] == pytest.approx(TRUE_A, abs=0.1)
    # φe = σ V0 ξ (−ln A) on the particles (σ = 7.288e-3 rad/(V·nm) at 200 kV, V0 = 20 V, ξ = 10 nm)
    pe = r["phase_electrostatic"]
    np.testing.assert_allclose(pe[marked], 7.288e-3 * 20 * 10 * -np.log(r.metadata["contaminant_amplitude"]), rtol=0.01)
    assert np.all(pe[~marked] == 0)
    info = r.metadata["joint"]
    assert info["joint_seed_pixels"] == int(det.sum()) and info["joint_marked_pixels"] == int(marked.sum())


def test_joint_phase_and_b_match_siprad_with_the_true_mask(bubbles, bubbles_joint):
    from napari_phase.physics import pearson_accuracy
    from napari_phase.physics.metrics import induction_accuracy

    s, r = bubbles, bubbles_joint
    t = siprad(s.image, pixel_size_nm=PX, defocus_nm=DF, amplitude=s.mask, smoothing_px=0, **FAST)
    # signed B·t: the sign and the size (SIPRAD's TV-seeded bubbles keep ~0.75 of B·t, with any mask) ...
    for a, b in ((r.bx, s.bx), (r.by, s.by), (r.phase, s.phase_m)):
        assert _slope(a, b) > 0.6, _slope(a, b)
    # ... and the same as with the true particles: slopes within 0.05, accuracies within 0.02
    for a, b, c in ((r.bx, t.bx, s.bx), (r.by, t.by, s.by), (r.phase, t.phase, s.phase_m)):
        assert _slope(a, c) == pytest.approx(_slope(b, c), abs=0.05), (_slope(a, c), _slope(b, c))
    assert pearson_accuracy(r.phase, s.phase_m, 6) >= pearson_accuracy(t.phase, s.phase_m, 6) - 0.02
    assert induction_accuracy(r.bx, r.by, s.bx, s.by, 6) >= induction_accuracy(t.bx, t.by, s.bx, s.by, 6) - 0.02


# ----------------------------------------------------------------------------- the model's pieces


def _two_disks(n=64):
    y, x = np.mgrid[:n, :n]
    a = (y - 20) ** 2 + (x - 20) ** 2 <= 25
    b = (y - 44) ** 2 + (x - 40) ** 2 <= 36
    return a, b


def test_start_level_is_the_root_of_the_flux_ratio():
    a, b = _two_disks()
    frame = np.where(a | b, 0.25, 1.0)
    assert start_level(frame, a | b) == pytest.approx(0.5, abs=1e-6)
    assert start_level(frame, np.zeros_like(a)) == 0.98


def test_joint_amplitude_levels_projection_and_two_level_result():
    import torch

    a, b = _two_disks()
    frame = np.where(a | b, 0.36, 1.0)
    ja = JointAmplitude(frame, pixel_size_nm=PX, defocus_nm=DF, voltage_kv=200.0, device="cpu", seed_mask=a | b)
    assert ja.n_particles == 2
    nla = ja.neg_log_amp().detach().numpy()
    np.testing.assert_allclose(nla[a | b], -np.log(0.6), rtol=1e-4)  # a0 = √0.36
    assert np.all(nla[~(a | b)] == 0)
    # gradients reach the levels
    (ja.neg_log_amp().sum()).backward()
    assert ja.z.grad is not None and float(ja.z.grad[1:].abs().min()) > 0
    # particle b shows no absorption (a = 0.97 > 1 − 0.05): the projection drops it
    with torch.no_grad():
        ja.z[2] = float(np.log(np.expm1(-np.log(0.97))))
        ja.z[1] = float(np.log(np.expm1(-np.log(0.4))))
    ja.project()
    nla = ja.neg_log_amp().detach().numpy()
    assert np.all(nla[b] == 0) and np.allclose(nla[a], -np.log(0.4), rtol=1e-4)
    out = ja.final_amplitude()
    assert len(np.unique(out)) == 2 and np.allclose(out[a], 0.4, atol=1e-5) and np.all(out[~a] == 1)
    assert ja.info(out)["joint_particles_dropped"] == 1


def test_joint_amplitude_without_detections():
    frame = np.random.default_rng(0).normal(1, 0.1, (64, 64))
    ja = JointAmplitude(frame, pixel_size_nm=PX, defocus_nm=DF, voltage_kv=200.0, device="cpu", seed_mask=np.zeros((64, 64), bool))
    assert ja.n_particles == 0 and np.all(ja.neg_log_amp().detach().numpy() == 0)
    assert np.all(ja.final_amplitude() == 1)
    problem = make_problem(frame + 1, pixel_size_nm=PX, defocus_nm=DF)
    assert ja.seed_problem(problem) is problem


def test_seed_problem_carries_the_detector_mask_only():
    a, b = _two_disks()
    frame = np.where(a | b, 0.36, 1.0)
    problem = make_problem(frame, pixel_size_nm=PX, defocus_nm=DF, amplitude="joint")
    ja = JointAmplitude(frame, pixel_size_nm=PX, defocus_nm=DF, voltage_kv=200.0, device="cpu", seed_mask=a)
    sp = ja.seed_problem(problem)
    assert np.array_equal(sp.mask, a) and problem.mask is None and sp.amplitude_mode == "joint"


# ----------------------------------------------------------------------------- through SIPRAD


@pytest.fixture(scope="module")
def clean_texture():
    """No particles at all: joint mode must not invent any."""
    return simulate("skyrmions", (64, 64), pixel_size_nm=PX, defocus_nm=DF, noise=0.1, seed=2)


def test_joint_without_particles_marks_nothing(clean_texture):
    s = clean_texture
    assert not suggest_contaminant_mask(s.image, pixel_size_nm=PX, defocus_nm=DF).any()
    r = siprad(s.image, pixel_size_nm=PX, defocus_nm=DF, amplitude="joint", **{**FAST, "iterations": 30})
    assert np.all(r.amplitude == 1) and np.all(r["phase_electrostatic"] == 0)
    assert r.metadata["contaminant_fraction"] == 0 and r.metadata["joint"]["joint_particles_seeded"] == 0


def test_joint_series_and_odd_sizes():
    frames = [simulate("skyrmions", (72, 67), pixel_size_nm=PX, defocus_nm=DF, noise=0.1, n_contaminants=2, seed=k,
                       contaminant_radius_nm=(20.0, 35.0)) for k in (7, 8)]
    stack = np.stack([f.image for f in frames])
    r = siprad(stack, pixel_size_nm=PX, defocus_nm=DF, amplitude="joint", **{**FAST, "iterations": 20, "pretrain_iterations": 20})
    assert r.amplitude.shape == (2, 72, 67) and r.phase.shape == (2, 72, 67) and np.isfinite(r.phase).all()
    assert isinstance(r.metadata["joint"], list) and len(r.metadata["joint"]) == 2
    for k, f in enumerate(frames):  # each frame has its own detection
        det = suggest_contaminant_mask(f.image, pixel_size_nm=PX, defocus_nm=DF)
        assert r.metadata["joint"][k]["joint_seed_pixels"] == int(det.sum())
        assert np.all((r.amplitude[k] < 1) <= det)  # joint mode keeps or drops the detector's particles, never adds


def test_joint_cancel_returns_a_two_level_amplitude(bubbles):
    r = run_cancelling_after(siprad_job(bubbles.image[:64, :64], pixel_size_nm=PX, defocus_nm=DF, amplitude="joint",
                                        iterations=500, pretrain_iterations=20, discrepancy=0, patience=10_000,
                                        device="cpu", num_threads=1), 40)
    assert r.cancelled and r.amplitude.shape == (64, 64) and len(np.unique(r.amplitude)) <= 2
    # cancelled before anything ran: SITIE start, amplitude all ones
    token = CancelToken()
    token.cancel()
    r = run_job(siprad_job(bubbles.image, pixel_size_nm=PX, defocus_nm=DF, amplitude="joint", device="cpu"), cancel=token)
    assert r.cancelled and np.all(r.amplitude == 1) and np.isfinite(r.phase).all()


@pytest.mark.parametrize(
    "image, match",
    [
        (np.full((64, 64), 1.0), "constant"),
        (np.where(np.eye(64, dtype=bool), np.nan, 1.0) + np.random.default_rng(0).random((64, 64)), "NaN"),
        (np.random.default_rng(1).random((24, 24)) + 1, "too small for contaminant detection"),
        (np.random.default_rng(2).random((64,)) + 1, "2-D|dimension|shape"),
        (np.zeros((0, 64)), "empty|small|shape"),
    ],
)
def test_joint_bad_input_raises_input_error(image, match):
    with pytest.raises(InputError, match=match):
        siprad(image, pixel_size_nm=PX, defocus_nm=DF, amplitude="joint", iterations=2, pretrain_iterations=1, device="cpu")
