"""4D-STEM CNN (stem/airpi): preprocessing, loss, network, stitching oracle, reconstruction
pipeline (streaming, partial results, dask, bad input). Accuracy of the shipped model:
tests/test_stem_cnn_model.py."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import torch

from job_helpers import run_cancelling_after
from napari_phase.jobs import InputError, JobCancelled, Progress, forward_job
from napari_phase.physics.metrics import xc
from napari_phase.stem.airpi import data, loss, model, preprocess as pp, stitch
from napari_phase.stem.airpi.reconstruct import cnn, cnn_job

torch.set_num_threads(1)
E, ALPHA, STEP = 300.0, 20.0, 0.2


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small untrained network saved with a card: exercises the pipeline, not accuracy."""
    from napari_phase.models import save_model

    torch.manual_seed(0)
    net = model.AirpiNet(width=4, depth=2)
    folder = tmp_path_factory.mktemp("models")
    return str(save_model(net, {"network": net.config(), "training_ranges": data.Ranges().as_dict()}, folder, "tiny"))


@pytest.fixture(scope="module")
def scan():
    return data.simulate_scan(data.SmoothRandomSource(2, seed=5), scan_shape=(9, 8), seed=1)


def _calib(s):
    return dict(energy_kev=s.energy_kev, semiangle_mrad=s.semiangle_mrad, scan_step_a=s.scan_step_a,
                detector_mrad_per_px=s.detector_mrad_per_px)


# ----------------------------------------------------------------------------- preprocessing


def test_window_pixel_and_probe_size():
    dx = pp.window_pixel_a(300.0, 20.0)
    assert dx == pytest.approx(0.019687 * 16 / (64 * 0.020), rel=1e-3)  # 0.246 Å
    probe = pp.probe_window()
    assert np.sum(np.abs(probe) ** 2) == pytest.approx(1.0, rel=1e-5)
    i = np.abs(probe) ** 2
    assert np.unravel_index(np.argmax(i), i.shape) == (32, 32)
    # Airy first zero at 0.61 λ/α = 0.61·64/16 = 2.44 window px: intensity there ≪ peak
    assert i[32, 34] < 0.2 * i[32, 32] < i[32, 33]


def test_probe_pattern_is_the_bf_disc_of_radius_16():
    pat = data.diffraction(torch.as_tensor(pp.probe_window()))
    yy, xx = np.mgrid[:64, :64] - 32
    r = np.hypot(yy, xx)
    p = pat.numpy()
    assert p[r <= 15].min() > 0.5 * p.max()
    assert p[r >= 17.5].max() < 1e-3 * p.max()


def test_resample_puts_disc_at_16px_and_keeps_counts():
    # detector: 96 px, 0.8 mrad/px, α = 20 mrad -> disc radius 25 px around (48, 48)
    yy, xx = np.mgrid[:96, :96]
    det = ((yy - 48) ** 2 + (xx - 48) ** 2 <= 25**2).astype(np.float32) * 3.0
    out = pp.resample_patterns(torch.as_tensor(det)[None], detector_mrad_per_px=0.8, semiangle_mrad=20.0)[0].numpy()
    assert out.shape == (64, 64)
    assert out.sum() == pytest.approx(det.sum(), rel=0.02)
    r = np.hypot(*(np.mgrid[:64, :64] - 32))
    assert out[r < 14].min() > 0.9 * out.max()
    assert out[r > 18].max() < 0.05 * out.max()
    # a coarse detector (2 mrad/px: radius 10 px) is magnified to the same disc
    yy, xx = np.mgrid[:40, :40]
    det2 = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 10**2).astype(np.float32)
    out2 = pp.resample_patterns(torch.as_tensor(det2)[None], detector_mrad_per_px=2.0, semiangle_mrad=20.0)[0].numpy()
    assert out2[r < 13].min() > 0.8 * out2.max() and out2[r > 19].max() < 0.05 * out2.max()


def test_resample_rotation_and_transpose_follow_the_calibration_convention():
    # a spot at scan-frame k = (ky, kx) = (0, +8 px) appears on the detector at
    # k_det = F(R(−θ) k_scan) (calibration.py); resampling must bring it back to (32, 40)
    for rot, tr in [(0.0, False), (90.0, False), (30.0, True)]:
        t = math.radians(rot)
        kx, ky = 8.0, 0.0
        dxv, dyv = math.cos(t) * kx + math.sin(t) * ky, -math.sin(t) * kx + math.cos(t) * ky
        if tr:
            dxv, dyv = dyv, dxv
        det = np.zeros((64, 64), np.float32)
        yy, xx = np.mgrid[:64, :64]
        det += np.exp(-((yy - 32 - dyv) ** 2 + (xx - 32 - dxv) ** 2) / 2.0)
        out = pp.resample_patterns(torch.as_tensor(det)[None], detector_mrad_per_px=20.0 / 16, semiangle_mrad=20.0,
                                   rotation_deg=rot, transpose=tr)[0].numpy()
        peak = np.unravel_index(np.argmax(out), out.shape)
        assert peak == (32, 40), (rot, tr, peak)


def test_kernel_indices_reflect_at_edges():
    idx = pp.kernel_indices(np.array([0]), np.array([4]), (5, 5))
    assert idx[0, 0].tolist() == [1, 3]  # (-1, 3) reflected to (1, 3)
    assert idx[0, 8].tolist() == [1, 3]  # (1, 5) -> (1, 3)
    assert idx[0, 4].tolist() == [0, 4]
    rep = pp.kernel_indices(np.array([0]), np.array([4]), (5, 5), edge="replicate")
    assert rep[0, 0].tolist() == [0, 3]


def test_neighbour_weights_fall_with_step():
    w_small, w_big = pp.neighbour_weights(0.5), pp.neighbour_weights(3.0)
    assert w_small[4] == w_big[4] == 1.0
    assert w_big[1] == pytest.approx(math.exp(-9 / 32), rel=1e-5)
    assert w_big[0] < w_big[1] < w_small[1] < 1.0


def test_standardise_is_per_sample_and_power_01():
    x = torch.rand(2, 9, 64, 64) * 100
    s = pp.standardise(x)
    assert torch.allclose(s.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-4)
    assert torch.allclose(s.std(dim=(1, 2, 3)), torch.ones(2), atol=1e-3)
    # scaling the counts does not change the input (dose-independent)
    assert torch.allclose(pp.standardise(x * 1000), s, atol=1e-3)


# ----------------------------------------------------------------------------- network and loss


def test_network_is_a_residual_on_the_probe():
    net = model.AirpiNet(width=4, depth=2).eval()
    with torch.no_grad():
        net.head.weight.zero_()
        x = torch.randn(3, 11, 64, 64)
        x[:, 9] = torch.rand(64, 64)
        amp, phase = net(x)
    assert amp.shape == phase.shape == (3, 64, 64)
    assert torch.allclose(amp, x[:, 9]) and torch.allclose(phase, x[:, 10])
    assert float(net.amp_scale.detach()) == pytest.approx(0.1) and float(net.phase_scale.detach()) == pytest.approx(0.1)


def test_loss_is_zero_at_the_truth_and_grows_with_error():
    gen = torch.Generator().manual_seed(0)
    b = data.make_batch(data.SmoothRandomSource(2), 4, gen, data.Ranges(vacuum_fraction=0.0))
    amp, ph = b["psi"].abs(), torch.angle(b["psi"])
    l0, parts = loss.airpi_loss(amp, ph, b)
    assert l0.item() < 1e-4 and parts["xc"] == pytest.approx(1.0, abs=1e-4)
    # the probe alone (no object) and a doubled object phase both cost clearly more
    l_probe, p_probe = loss.airpi_loss(b["probe"].abs(), torch.angle(b["probe"]), b)
    l_double, p_double = loss.airpi_loss(amp, ph + b["obj_phase"], b)
    assert l_probe.item() > 0.05 and l_double.item() > 0.05
    assert p_double["obj"] > 0.01


def test_batch_physics():
    """Patterns carry the dose: counts per pattern = dose·step² (step in Å); vacuum has flat phase."""
    gen = torch.Generator().manual_seed(1)
    r = data.Ranges(noise_free_fraction=1.0, vacuum_fraction=0.0, dose_e_per_a2=(1e4, 1e4), step_px=(1.0, 1.0),
                    energy_kev=(300, 300), semiangle_mrad=(20, 20))
    b = data.make_batch(data.SmoothRandomSource(2), 3, gen, r)
    assert b["x"].shape == (3, 11, 64, 64)
    assert torch.isfinite(b["x"]).all()
    assert torch.allclose(b["psi"].abs(), b["probe"].abs(), atol=1e-5)  # phase object: |t| = 1
    from napari_phase.physics.optics import interaction_constant

    assert 0.005 < float(b["obj_phase"].std()) and float(b["obj_phase"].max()) <= interaction_constant(300) * 300 * 1.001
    # magnitude: a flat 100 V·Å potential gives φ = σ(E)·100 rad at each sample's energy
    flat = data.SmoothRandomSource(1)
    flat.maps = [torch.full((64, 64), 100.0)]
    f = data.make_batch(flat, 4, gen, data.Ranges(vacuum_fraction=0.0, weak_object_fraction=0.0))
    for ph, e in zip(f["obj_phase"], f["energy_kev"]):
        assert float(ph.mean()) == pytest.approx(interaction_constant(float(e)) * 100.0, rel=1e-4)
    v = data.make_batch(data.SmoothRandomSource(2), 2, gen, data.Ranges(vacuum_fraction=1.0))
    assert bool(v["vacuum"].all()) and float(v["obj_phase"].abs().max()) == 0.0


# ----------------------------------------------------------------------------- stitching oracle


def _oracle(step_scale: float = 1.0, phase_scale: float = 1.0, oversample: int = 2, corr_a: float = 0.3):
    """True exit waves of a simulated scan through the stitching; returns (phase, truth)."""
    src = data.SmoothRandomSource(1, seed=3, peak_v_a=3000.0, corr_a=corr_a)
    s = data.simulate_scan(src, scan_shape=(16, 16), seed=2)
    dx = pp.window_pixel_a(E, ALPHA)
    t = np.exp(1j * s.phase_map * phase_scale)
    margin = int(round(-s.map_origin_a / dx))
    probe_n = torch.as_tensor(pp.probe_window())
    probe_n = probe_n / probe_n.abs().max()
    psis, pos = [], []
    for i in range(16):
        for j in range(16):
            p = np.array([i, j]) * STEP / dx + margin - 32
            c = np.floor(p).astype(int)
            f = p - c
            pr = data.probes_batch(torch.zeros(1, dtype=torch.float64), torch.as_tensor(f)[None, None])[0, 0]
            psis.append(pr.numpy() * t[c[0]:c[0] + 64, c[1]:c[1] + 64])
            pos.append((i * oversample * step_scale, j * oversample * step_scale))
    acc = stitch.ObjectAccumulator((16 * oversample, 16 * oversample))
    # each ψout sits at the window centre + its sub-pixel offset: stitch against the shifted probe
    # by passing the sub-pixel part through the position instead (probe at the centre)
    psis_c, pos_c = [], []
    for (i, j), psi in zip([(i, j) for i in range(16) for j in range(16)], psis):
        p = np.array([i, j]) * STEP / dx + margin - 32
        f = p - np.floor(p)
        # undo the sub-pixel probe shift by a Fourier shift of the whole window (object moves too)
        k = np.fft.fftfreq(64)
        ramp = np.exp(2j * np.pi * (k[:, None] * f[0] + k[None, :] * f[1]))
        psis_c.append(np.fft.ifft2(np.fft.fft2(psi) * ramp))
        pos_c.append((i * oversample * step_scale, j * oversample * step_scale))
    stitch.stitch(acc, torch.as_tensor(np.array(psis_c), dtype=torch.complex64), probe_n,
                  torch.as_tensor(pos_c, dtype=torch.float64), (STEP / oversample) / dx)
    phase = acc.phase().numpy()
    truth = s.truth_on_grid(phase.shape, STEP / oversample)
    return phase, truth


def test_oracle_true_exit_waves_give_the_phase_object_back():
    phase, truth = _oracle()
    assert truth.std() > 0.2  # a real signal (rad)
    c = 3
    assert xc(phase, truth, crop=c) >= 0.99
    # size, not only shape: slope of estimate vs truth is 1 (a doubled or halved phase fails)
    a, b = (m[c:-c, c:-c].ravel() for m in (phase, truth))
    slope = np.polyfit(b - b.mean(), a - a.mean(), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.03)
    assert np.sqrt(np.mean(((a - a.mean()) - (b - b.mean())) ** 2)) < 0.05 * np.ptp(b)


def test_oracle_fails_with_a_misscaled_scan_step():
    phase, truth = _oracle(step_scale=1.15)
    assert xc(phase, truth, crop=3) < 0.9


def test_stitch_drops_pixels_outside_the_grid():
    acc = stitch.ObjectAccumulator((4, 4))
    probe = torch.as_tensor(pp.probe_window())
    stitch.stitch(acc, probe[None].clone(), probe, torch.tensor([[-30.0, -30.0]], dtype=torch.float64), 0.5)
    assert float(acc.weight.sum()) == 0.0


# ----------------------------------------------------------------------------- reconstruction pipeline


def test_cnn_result_geometry_and_metadata(scan, tiny_model):
    res = cnn(scan.data, **_calib(scan), model=tiny_model, device="cpu", oversample=3, block_rows=4)
    assert res.phase.shape == (27, 24) and res.amplitude.shape == (27, 24)
    assert res.pixel_size == pytest.approx(STEP / 3) and res.pixel_unit == "Å"
    md = res.metadata
    assert md["model"] == "tiny" and len(md["model_sha256"]) == 64
    assert md["origin"] == "first scan position" and md["edge_padding"] == "reflect"
    assert md["step_window_px"] == pytest.approx(STEP / pp.window_pixel_a(E, ALPHA))
    assert np.isfinite(res.phase).all() and np.abs(res.phase).max() <= math.pi + 1e-5


def test_partial_results_grow_row_by_row_and_cancel_keeps_them(scan, tiny_model, monkeypatch):
    from napari_phase.stem.airpi import reconstruct

    monkeypatch.setattr(reconstruct, "PARTIAL_EVERY_S", 0.0)
    job = cnn_job(scan.data, **_calib(scan), model=tiny_model, device="cpu", block_rows=3)
    rows = []
    for p in forward_job(job):
        assert isinstance(p, Progress)
        if p.partial is not None:
            rows.append(int(p.partial.metadata["rows_done"]))
            assert p.partial.metadata["unwrapped"] is False
    assert rows == [3, 6, 9]
    # previews are rate-limited: with a long interval only the first block and the last give one,
    # while every block still reports progress (so Cancel is seen between blocks)
    monkeypatch.setattr(reconstruct, "PARTIAL_EVERY_S", 1e9)
    reports = list(forward_job(cnn_job(scan.data, **_calib(scan), model=tiny_model, device="cpu", block_rows=3)))
    assert [int(p.partial.metadata["rows_done"]) for p in reports if p.partial is not None] == [3, 9]
    assert len([p for p in reports if p.message.startswith("CNN: scan row")]) == 3
    # the descan pass (3 blocks) comes first; a cancel after the CNN's first block keeps its rows
    res = run_cancelling_after(cnn_job(scan.data, **_calib(scan), model=tiny_model, device="cpu", block_rows=3), 4)
    assert res.cancelled and res.metadata["rows_done"] == 3
    assert res.phase.shape == (18, 16)
    res = run_cancelling_after(cnn_job(scan.data, **_calib(scan), model=tiny_model, device="cpu", block_rows=3,
                                       descan="off"), 1)
    assert res.cancelled and res.metadata["rows_done"] == 3


def test_numpy_memmap_and_dask_inputs_agree(scan, tiny_model, tmp_path):
    import dask.array as da

    ref = cnn(scan.data, **_calib(scan), model=tiny_model, device="cpu", block_rows=4).phase
    mm = np.lib.format.open_memmap(tmp_path / "scan.npy", mode="w+", dtype=np.float32, shape=scan.data.shape)
    mm[:] = scan.data
    mm.flush()
    mm = np.load(tmp_path / "scan.npy", mmap_mode="r")
    a = cnn(mm, **_calib(scan), model=tiny_model, device="cpu", block_rows=2).phase
    b = cnn(da.from_array(scan.data, chunks=(3, 8, 64, 64)), **_calib(scan), model=tiny_model, device="cpu").phase
    np.testing.assert_allclose(a, ref, atol=1e-4)
    np.testing.assert_allclose(b, ref, atol=1e-4)


def test_streaming_memory_is_bounded_on_a_large_memmap(tiny_model, tmp_path):
    """A memmap ~8x larger than one block: traced (numpy) memory stays near the block size."""
    shape = (32, 12, 64, 64)  # 6.3 MB of float32
    mm = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=shape)
    rng = np.random.default_rng(0)
    for r in range(shape[0]):
        mm[r] = rng.poisson(2.0, shape[1:]).astype(np.float32)
    mm.flush()
    del mm
    data_mm = np.load(tmp_path / "big.npy", mmap_mode="r")
    nbytes = int(np.prod(shape)) * 4
    block = 2 * 12 * 64 * 64 * 4  # 2 rows
    tracemalloc.start()
    try:
        res = cnn(data_mm, energy_kev=E, semiangle_mrad=ALPHA, scan_step_a=STEP, detector_mrad_per_px=ALPHA / 16,
                  model=tiny_model, device="cpu", block_rows=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.phase.shape == (64, 24)
    assert peak < 3 * block + 2 * 2**20, f"peak traced {peak / 2**20:.1f} MiB for a {nbytes / 2**20:.1f} MiB dataset"
    assert peak < nbytes / 2


def test_dask_distributed_client_matches_single_machine(scan, tiny_model):
    distributed = pytest.importorskip("distributed")
    ref = cnn(scan.data, **_calib(scan), model=tiny_model, device="cpu", block_rows=3)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        res = cnn(scan.data, **_calib(scan), model=tiny_model, device="cpu", block_rows=3, client=client)
    assert res.metadata["distributed"] is True and res.metadata["blocks"] == 3
    np.testing.assert_allclose(res.phase, ref.phase, atol=1e-4)
    np.testing.assert_allclose(res.amplitude, ref.amplitude, atol=1e-4)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "make, kwargs, message",
    [
        (lambda d: d[0], {}, "4-D"),
        (lambda d: d[:, :, :, :60], {}, "not square"),
        (lambda d: d[:2], {}, "3 rows"),
        (lambda d: np.where(np.arange(d.shape[1])[None, :, None, None] == 2, np.nan, d), {}, "NaN"),
        (lambda d: np.zeros_like(d), {}, "zero"),
        (lambda d: d, {"scan_step_a": 0.0}, "scan step must be positive"),
        (lambda d: d, {"scan_step_a": None}, "missing calibration"),
        (lambda d: d, {"semiangle_mrad": None}, "missing calibration"),
        (lambda d: d, {"detector_mrad_per_px": 0.5}, "larger than the detector"),
        (lambda d: d, {"scan_step_a": 50.0}, "check the scan step"),
        (lambda d: d, {"oversample": 0}, "oversample"),
        (lambda d: d, {"model": "no_such_model"}, "no_such_model"),
        (lambda d: d, {"device": "cuda:0" if not torch.cuda.is_available() else "nonsense"}, "device"),
    ],
)
def test_bad_input_raises_input_error(scan, tiny_model, make, kwargs, message):
    args = {**_calib(scan), "model": tiny_model, "device": "cpu", **kwargs}
    with pytest.raises(InputError, match=message):
        cnn(make(scan.data.copy()), **args)


def test_cancel_at_the_first_progress_keeps_the_first_block(scan, tiny_model):
    job = cnn_job(scan.data, **_calib(scan), model=tiny_model, device="cpu", block_rows=3, descan="off")
    next(job)
    with pytest.raises(StopIteration) as stop:
        job.throw(JobCancelled("x"))
    assert stop.value.value.cancelled  # the first block was done: its rows are kept
    job = cnn_job(scan.data, **_calib(scan), model=tiny_model, device="cpu", block_rows=3)  # descan pass first
    next(job)
    with pytest.raises(JobCancelled):  # nothing reconstructed yet: the cancel cancels
        job.throw(JobCancelled("x"))


# ----------------------------------------------------------------------------- CPU threads


def test_inference_thread_count_is_measured_and_restored(scan, tiny_model):
    from napari_phase.threads import default_candidates, forget

    forget()  # a choice remembered from an earlier test would skip the probe
    before = torch.get_num_threads()
    res = cnn(scan.data, **_calib(scan), model=tiny_model, device="cpu", batch_size=4, block_rows=3)
    tuning = res.metadata["thread_tuning"]
    assert res.metadata["threads"] in default_candidates()
    assert tuning["steps"] == 18  # 72 positions in batches of 4 (per block of 3 rows × 8): one step each
    if len(default_candidates()) > 1:
        assert tuning["tuned"] and tuning["probes"]
        assert set(tuning["probes"][0]["step_ms"]) == {str(c) for c in default_candidates()}
    assert torch.get_num_threads() == before
    fixed = cnn(scan.data, **_calib(scan), model=tiny_model, device="cpu", batch_size=4, block_rows=3, threads=1)
    assert fixed.metadata["threads"] == 1 and fixed.metadata["thread_tuning"]["tuned"] is False
    np.testing.assert_allclose(fixed.phase, res.phase, atol=1e-4)  # the thread count never changes the result
    assert torch.get_num_threads() == before


def test_threads_are_probed_on_short_pieces_and_remembered(scan, tiny_model, monkeypatch):
    from napari_phase.stem.airpi import reconstruct
    from napari_phase.threads import forget

    forget()
    monkeypatch.setattr(reconstruct, "PROBE_BATCH", 4)
    kw = dict(**_calib(scan), model=tiny_model, device="cpu", batch_size=24, block_rows=3)
    from napari_phase import threads as thr

    made = thr.ThreadTuner.for_device

    def tuner(device, num_threads=None, **kwargs):  # candidates 1 and 2; no timing-dependent shortcuts
        return made(device, num_threads, **{**kwargs, "slowdown": 1e9})

    monkeypatch.setattr(thr, "default_candidates", lambda cores=None, most=4: (1, 2))
    monkeypatch.setattr(reconstruct.ThreadTuner, "for_device", staticmethod(tuner))
    first = cnn(scan.data, **kw)
    tuning = first.metadata["thread_tuning"]
    # 72 positions, 3 blocks of 24 = one batch each: the first batch runs as 6 pieces of 4 (the
    # probe: warm-up + 2 timed for each of 1 and 2 threads), the other two as one step each
    assert tuning["probes"] and tuning["steps"] == 6 + 2, tuning
    assert not tuning["remembered"]
    second = cnn(scan.data, **kw)
    t2 = second.metadata["thread_tuning"]
    assert t2["remembered"] and t2["probes"] == [] and t2["steps"] == 3  # no probe: one step per batch
    assert t2["threads"] == tuning["threads"]
    np.testing.assert_allclose(second.phase, first.phase, atol=1e-4)  # pieces or not, the same result
    forget()


def test_bulk_steps_run_on_the_networks_thread_count_once_chosen(scan, tiny_model, monkeypatch):
    """Kernel assembly (and resampling, stitching) run on the network's thread count once the tuner
    has chosen it (idle 2 cores: end to end 0.66 -> 0.74 of the network alone), on one thread while
    it probes (a busy CPU runs such steps far slower on two)."""
    from napari_phase.stem.airpi import reconstruct
    from napari_phase.threads import forget

    seen = []
    real = reconstruct.standardise_kernels

    dtypes = []

    def spy(*a, **k):
        seen.append(torch.get_num_threads())
        dtypes.append(k["out"].dtype)
        return real(*a, **k)

    monkeypatch.setattr(reconstruct, "standardise_kernels", spy)
    kw = dict(**_calib(scan), model=tiny_model, device="cpu", batch_size=24, block_rows=3)
    for n in (2, 1):
        seen.clear()
        cnn(scan.data, **kw, threads=n)
        assert seen and set(seen) == {n}, (n, seen)
    from napari_phase import threads as thr

    made = thr.ThreadTuner.for_device
    monkeypatch.setattr(thr, "default_candidates", lambda cores=None, most=4: (1, 2))
    monkeypatch.setattr(reconstruct.ThreadTuner, "for_device",
                        staticmethod(lambda device, num_threads=None, **k: made(device, num_threads, **{**k, "slowdown": 1e9})))
    monkeypatch.setattr(reconstruct, "PROBE_BATCH", 4)  # the probe fits in the first batch (6 pieces of 4)
    forget()
    seen.clear()
    res = cnn(scan.data, **kw)
    assert len(seen) == 3 and seen[0] == 1 and set(seen[1:]) == {res.metadata["threads"]}, seen  # first batch: probing
    # a bfloat16 network's input is assembled in bfloat16 (autocast would convert it anyway)
    from napari_phase.stem.airpi.inference import resolve_precision

    want = torch.bfloat16 if resolve_precision("auto", "cpu") == "bfloat16" else torch.float32
    assert set(dtypes) == {want}, dtypes
    dtypes.clear()
    cnn(scan.data, **kw, threads=1, precision="float32")
    assert set(dtypes) == {torch.float32}, dtypes
    forget()


@pytest.mark.parametrize("bad", [0, -2, 1.5, "two", True])
def test_bad_thread_count_is_an_input_error(scan, tiny_model, bad):
    with pytest.raises(InputError, match="threads must be a positive integer"):
        cnn(scan.data, **_calib(scan), model=tiny_model, device="cpu", threads=bad)


def test_non_square_steps_geometry_and_kernel_weights(scan, tiny_model):
    from napari_phase.stem.airpi.preprocess import neighbour_weights

    # weights: a (s, s) pair equals the isotropic weights; (2s, s) weights the y neighbours less
    np.testing.assert_allclose(neighbour_weights((1.5, 1.5)), neighbour_weights(1.5))
    w = neighbour_weights((3.0, 1.5)).reshape(3, 3)
    assert w[1, 1] == 1 and w[0, 1] < w[1, 0] and w[0, 1] == pytest.approx(neighbour_weights(3.0).reshape(3, 3)[0, 1])
    kw = {**_calib(scan), "scan_step_a": (2 * scan.scan_step_a, scan.scan_step_a)}
    res = cnn(scan.data, **kw, model=tiny_model, device="cpu", oversample=2, block_rows=4)
    # 9 rows of 2·step and 8 columns of step at pixel step/2: 36 x 16 object px
    assert res.phase.shape == (36, 16) and res.pixel_size == pytest.approx(scan.scan_step_a / 2)
    assert res.metadata["scan_step_y_a"] == pytest.approx(2 * scan.scan_step_a)
    # an absurd anisotropy (a y step outside the overlap limits) is still refused with a clear message
    with pytest.raises(InputError, match="scan step"):
        cnn(scan.data, **{**kw, "scan_step_a": (40 * scan.scan_step_a, scan.scan_step_a)}, model=tiny_model, device="cpu")


def test_unwrap_object_phase_restores_columns_above_pi():
    """A column of 3.6 rad wraps to −2.7 in arg(Σ o_n); the stitched result unwraps it (a
    missing unwrap, or a wrong multiple of 2π, fails the size check)."""
    from napari_phase.stem.airpi.reconstruct import unwrap_object_phase

    yy, xx = np.mgrid[0:40, 0:48]
    truth = 3.6 * np.exp(-((yy - 20.0) ** 2 + (xx - 17.0) ** 2) / 18.0) + 0.3 * np.sin(xx / 5.0)
    wrapped = np.angle(np.exp(1j * truth))
    known = np.ones(truth.shape, bool)
    known[30:] = False  # rows not reconstructed yet (a partial result)
    out = unwrap_object_phase(wrapped, known)
    assert np.allclose(out[known], truth[known], atol=1e-5)
    assert np.all(out[~known] == 0)
    small = 0.5 * np.sin(xx / 4.0) * np.cos(yy / 6.0)
    assert np.allclose(unwrap_object_phase(small, np.ones_like(known)), small, atol=1e-6)


def test_oracle_with_columns_above_pi_needs_the_unwrap():
    """A strong object (peaks > π): the stitched arg wraps; the unwrap the reconstruction applies
    gives the object back (xc ≥ 0.99, slope 1), the raw arg does not."""
    from napari_phase.stem.airpi.reconstruct import unwrap_object_phase

    phase, truth = _oracle(phase_scale=4.0)
    truth = 4.0 * truth  # _oracle's truth is the unscaled object's
    assert np.ptp(truth) > 2 * math.pi * 0.6
    un = unwrap_object_phase(phase, np.ones(phase.shape, bool))
    c = 3
    assert xc(phase, truth, crop=c) < 0.97
    assert xc(un, truth, crop=c) >= 0.99
    a, b = (m[c:-c, c:-c].ravel() for m in (un, truth))
    assert np.polyfit(b - b.mean(), a - a.mean(), 1)[0] == pytest.approx(1.0, abs=0.03)
