"""FlowTIE network path: API on any grid, units, the shipped model's accuracy on a held-out crystal,
refinement and cancel, a few-step smoke training that writes a loadable model with its card."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from napari_phase.flowtie import flowtie, flowtie_job, integrate_flow, simulate_triplet
from napari_phase.flowtie.network import FlowTIENet
from napari_phase.flowtie.solve import available
from napari_phase.jobs import CancelToken, InputError, run_job
from napari_phase.physics.metrics import psnr, xc

torch.set_num_threads(1)

needs_model = pytest.mark.skipif(not available(), reason="no shipped FlowTIE model in this tree")


def lattice_phase(shape, px, a=3.9, amp=0.4, sigma=0.35):
    y, x = np.mgrid[: shape[0], : shape[1]] * px
    ph = np.zeros(shape)
    for oy, ox, s in ((0, 0, 1.0), (a / 2, a / 2, 0.5)):
        dy = ((y - oy) / a + 0.5) % 1 - 0.5
        dx = ((x - ox) / a + 0.5) % 1 - 0.5
        ph += s * amp * np.exp(-((dy * a) ** 2 + (dx * a) ** 2) / (2 * sigma**2))
    return ph - ph.mean()


@pytest.fixture(scope="module")
def heldout_thin():
    """A thin held-out crystal (CeO2 [001], ~3 nm, 300 kV, 20 mrad, dz 1 nm, noise-free) at 0.1 Å."""
    from napari_phase.flowtie import evaluate as ev

    bank = ev.heldout_bank(thicknesses_nm=(3.0,), names=("CeO2",), zone_axes=((0, 0, 1),))
    return ev.cases(bank, doses=(math.inf,))[0]


def test_untrained_network_equals_classical_tie_on_its_grid():
    """A zero-initialised head adds nothing: FlowTIE is then the classical TIE on the network grid
    (a check of resampling, κ and units end to end), on an odd, non-square field."""
    px, kev, alpha = 0.1, 300.0, 20.0
    ph = lattice_phase((117, 156), px, a=3.9)  # 3 x 4 cells: periodic
    tri = simulate_triplet(np.exp(1j * ph), defocus_step_nm=1.0, pixel_size_a=px, energy_kev=kev, semiangle_mrad=alpha)
    from napari_phase.flowtie.triplet import aperture_q_per_a, band_limit

    truth = band_limit(ph, px, aperture_q_per_a(alpha, kev))
    r = flowtie(tri, defocus_step_nm=1.0, pixel_size_a=px, energy_kev=kev, semiangle_mrad=alpha, model=FlowTIENet(), device="cpu")
    assert r.phase.shape == (117, 156) and r.flow.shape == (2, 117, 156)
    assert xc(r.phase, truth, 8) > 0.95
    ratio = np.std(r.phase[8:-8, 8:-8]) / np.std(truth[8:-8, 8:-8])
    assert 0.6 < ratio < 1.3
    # the flow is in rad/Å: integrating it with the input's pixel size gives the phase back
    back = integrate_flow(r.flow, px)
    assert xc(back, r.phase, 8) > 0.95
    assert 0.8 < np.std(back[8:-8, 8:-8]) / np.std(r.phase[8:-8, 8:-8]) < 1.25
    assert r.metadata["method"] == "FlowTIE" and r.unit_of("flow") == "rad/Å"
    assert r.metadata["net_shape"] == [round(117 * px * 4 * aperture_q_per_a(alpha, kev)), round(156 * px * 4 * aperture_q_per_a(alpha, kev))]
    # the same specimen sampled twice as coarsely gives the same phase map (resampled inside)
    tri2 = simulate_triplet(np.exp(1j * ph[::2, ::2]), defocus_step_nm=1.0, pixel_size_a=2 * px, energy_kev=kev, semiangle_mrad=alpha)
    r2 = flowtie(tri2, defocus_step_nm=1.0, pixel_size_a=2 * px, energy_kev=kev, semiangle_mrad=alpha, model=FlowTIENet(), device="cpu")
    assert xc(r2.phase, r.phase[::2, ::2], 4) > 0.9


def test_flowtie_bad_input():
    tri = simulate_triplet(np.exp(1j * lattice_phase((40, 40), 0.1)), defocus_step_nm=1.0, pixel_size_a=0.1, energy_kev=300)
    net = FlowTIENet()
    with pytest.raises(InputError, match="too small"):  # 40 px of 0.1 Å at 10 mrad is 9 px on the network grid
        flowtie(tri, defocus_step_nm=1.0, pixel_size_a=0.1, energy_kev=300, semiangle_mrad=10, model=net, device="cpu")
    with pytest.raises(InputError, match="zero"):
        flowtie(tri, defocus_step_nm=0, pixel_size_a=0.1, energy_kev=300, semiangle_mrad=20, model=net)
    with pytest.raises(InputError, match="refine_steps"):
        flowtie(tri, defocus_step_nm=1, pixel_size_a=0.1, energy_kev=300, semiangle_mrad=20, model=net, refine_steps=-1)
    with pytest.raises(InputError, match="not found"):
        flowtie(tri, defocus_step_nm=1, pixel_size_a=0.1, energy_kev=300, semiangle_mrad=20, model="/nonexistent/model.pt")
    with pytest.raises(InputError, match="NaN"):
        bad = tri.copy()
        bad[2, 0, 0] = np.inf
        flowtie(bad, defocus_step_nm=1, pixel_size_a=0.1, energy_kev=300, semiangle_mrad=20, model=net)


def test_refine_and_cancel():
    px, kev, alpha = 0.1, 300.0, 20.0
    ph = lattice_phase((78, 78), px, a=3.9)
    tri = simulate_triplet(np.exp(1j * ph), defocus_step_nm=1.0, pixel_size_a=px, energy_kev=kev, semiangle_mrad=alpha)
    token = CancelToken()
    seen = []

    def on_progress(p):
        seen.append(p.step)
        if p.step >= 8:
            token.cancel()

    job = flowtie_job(tri, defocus_step_nm=1.0, pixel_size_a=px, energy_kev=kev, semiangle_mrad=alpha, model=FlowTIENet(),
                      refine_steps=400, device="cpu")
    r = run_job(job, on_progress=on_progress, cancel=token)
    assert r.cancelled and r.metadata["method"] == "FlowTIE + refine" and max(seen) < 400
    assert np.isfinite(r.phase).all() and r.phase.shape == ph.shape


@needs_model
def test_shipped_model_thin_heldout(heldout_thin):
    """Thin held-out crystal (CeO2 [001] ~3 nm): pinned at what the shipped model reaches (see the card)."""
    s = heldout_thin
    kw = dict(defocus_step_nm=s["dz_nm"], pixel_size_a=s["pixel_size_a"], energy_kev=s["energy_kev"], semiangle_mrad=s["alpha_mrad"])
    r = flowtie(s["tri"], device="cpu", **kw)
    got = xc(r.phase, s["target"], 8)
    assert got >= THIN_XC_PIN
    ratio = np.std(r.phase[8:-8, 8:-8]) / np.std(s["target"][8:-8, 8:-8])
    assert RATIO_PIN[0] < ratio < RATIO_PIN[1]
    good = psnr(r.phase, s["target"], 8)
    assert good > PSNR_PIN
    # mutations the network path must notice: the triplet order flipped (a sign error), half the dz
    flipped = flowtie(s["tri"][::-1].copy(), device="cpu", **kw)
    assert psnr(flipped.phase, s["target"], 8) < good - 6
    half = flowtie(s["tri"], device="cpu", **{**kw, "defocus_step_nm": 0.5 * s["dz_nm"]})
    assert psnr(half.phase, s["target"], 8) < good - 3
    double = flowtie(s["tri"], device="cpu", **{**kw, "defocus_step_nm": 2 * s["dz_nm"]})
    assert psnr(double.phase, s["target"], 8) < good - 3


@needs_model
def test_shipped_model_card():
    from napari_phase import models

    card = models.model_card("flowtie_default")
    assert card["size_bytes"] <= 20 * 2**20
    for key in ("training_ranges", "samples_seen", "steps", "best_validation", "command", "device", "threads",
                "train_wall_time_s", "git_commit", "heldout"):
        assert key in card, key
    assert "train flowtie" in card["command"]
    json.dumps(card)


def test_smoke_training_writes_loadable_model(tmp_path):
    from napari_phase.flowtie.train import train_flowtie_job

    job = train_flowtie_job(out_folder=tmp_path, name="tiny", steps=3, batch_size=2, patch=32, base=8, val_every=3,
                            bank_runs=1, bank_thicknesses=2, bank_gpts=128, device="cpu", threads=1, evaluate_heldout=False,
                            train_structures=["SrTiO3"], val_structures=["InP"], command="test", bank_seed=5)
    report = run_job(job)
    assert report.steps == 3 and report.samples == 6
    card = json.loads((tmp_path / "tiny.json").read_text())
    assert (card["data"]["train_bank"]["seed"], card["data"]["val_bank"]["seed"]) == (5, 1)  # validation keeps seed + 1
    assert card["steps"] == 3 and card["architecture_config"]["base"] == 8 and "val_xc" in card["best_validation"]
    tri = simulate_triplet(np.exp(1j * lattice_phase((64, 64), 0.1)), defocus_step_nm=1.0, pixel_size_a=0.1, energy_kev=300,
                           semiangle_mrad=20)
    r = flowtie(tri, defocus_step_nm=1.0, pixel_size_a=0.1, energy_kev=300, semiangle_mrad=20, model=str(tmp_path / "tiny.pt"),
                device="cpu")
    assert r.phase.shape == (64, 64) and np.isfinite(r.phase).all()
    assert r.metadata["model"].endswith("tiny.pt")
    # a second stage from the written model (its checkpoint set aside): steps and chain go on
    more = run_job(train_flowtie_job(out_folder=tmp_path, name="more", steps=5, batch_size=2, patch=32, base=8, val_every=2,
                                     bank_runs=1, bank_thicknesses=2, bank_gpts=128, device="cpu", threads=1,
                                     evaluate_heldout=False, train_structures=["SrTiO3"], val_structures=["InP"],
                                     command="test 2", bank_seed=6, init_from=str(tmp_path / "tiny.pt")))
    card2 = json.loads((tmp_path / "more.json").read_text())
    assert more.steps == 5 and [c["command"] for c in card2["command_chain"]] == ["test", "test 2"]
    assert card2["command_chain"][-1]["start_step"] == 3 and "tiny.pt" in card2["command_chain"][-1]["initialised_from"]


#: what the shipped model reaches on the thin held-out crystal (CeO2 [001] 3 nm, noise-free), pinned a
#: little below the measured value; see the report and the model card
THIN_XC_PIN = 0.97  # measured 0.988 (model of commit 75bc4b4)
PSNR_PIN = 28.0  # measured 31.0 dB
RATIO_PIN = (0.8, 1.15)  # measured std ratio 0.954


def test_symmetrize_brings_every_frame_back():
    """The 8 grid symmetries: a scalar map and its gradient, taken into a frame and back, are
    unchanged (a wrong sign or a missing component swap fails here)."""
    from napari_phase.flowtie.flow import gradient_t
    from napari_phase.flowtie.solve import DIHEDRAL, _flow_from_frame, _from_frame, _to_frame

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:20, 0:26]
    phi = torch.as_tensor(np.sin(0.3 * yy + 0.1 * xx) + 0.02 * yy * xx + 0.1 * rng.standard_normal((20, 26)))[None]
    g = gradient_t(phi, 1.0)
    assert len(set(DIHEDRAL)) == 8
    for t in DIHEDRAL:
        assert torch.equal(_from_frame(_to_frame(phi, *t), *t), phi)
        g_frame = gradient_t(_to_frame(phi, *t), 1.0)
        assert torch.allclose(_flow_from_frame(g_frame, *t), g, atol=1e-9), t


def test_symmetrized_flowtie_agrees_with_single_pass(heldout_thin):
    """Averaging over the symmetries changes the answer by a small correction, not its scale."""
    s = heldout_thin
    kw = dict(defocus_step_nm=s["dz_nm"], pixel_size_a=s["pixel_size_a"], energy_kev=s["energy_kev"],
              semiangle_mrad=s["alpha_mrad"], device="cpu")
    one = flowtie(s["tri"], symmetrize=False, **kw)
    avg = flowtie(s["tri"], **kw)
    assert avg.metadata["symmetrize"] is True and one.metadata["symmetrize"] is False
    assert xc(one.phase, avg.phase, 8) > 0.97
    assert 0.85 < np.std(avg.phase) / np.std(one.phase) < 1.1
