"""The CNN's inference path (issue 16 §2, stem/airpi/inference.py): conv+BN folded, channels-last,
inference mode, bfloat16 on AMX CPUs — the same phase as the plain module, and the helpers it uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_phase.jobs import InputError
from napari_phase.physics.metrics import xc
from napari_phase.stem import cnn
from napari_phase.stem.airpi import data as airpi_data
from napari_phase.stem.airpi import inference, reconstruct
from napari_phase.stem.airpi.preprocess import neighbour_weights, pattern_sums, powered, standardise, standardise_kernels
from napari_phase.threads import torch_threads
from test_stem_sim import smooth_phase


@pytest.fixture(scope="module")
def scan():
    """A 12x12 scan of a smooth phase object (0.3 rad rms) at 300 kV, 20 mrad, noise-free."""
    phi = smooth_phase(96, 0.2461, qmax=1.0, rms=0.3, seed=2)
    return airpi_data.simulate_scan(phi, scan_shape=(12, 12), seed=0)


def _cal(s):
    return dict(energy_kev=s.energy_kev, semiangle_mrad=s.semiangle_mrad, scan_step_a=s.scan_step_a,
                detector_mrad_per_px=s.detector_mrad_per_px, device="cpu", low_frequency=None, threads=1)


def _plain(monkeypatch):
    """Make cnn() run the shipped module as before: eval mode, no_grad, float32, no folding."""
    def plain_network(model, device, precision="auto"):
        net, _ = reconstruct.load_network(model, device)

        def run(x):
            with torch.no_grad():
                return net(x.contiguous())
        return run
    monkeypatch.setattr(reconstruct, "fast_network", plain_network)


def test_optimised_path_gives_the_plain_modules_phase(scan, monkeypatch):
    fast32 = cnn(scan.data, **_cal(scan), precision="float32")
    assert fast32.metadata["inference"] == {"conv_bn_fused": True, "memory_format": "channels_last",
                                            "precision": "float32", "inference_mode": True}
    with monkeypatch.context() as m:
        _plain(m)
        plain = cnn(scan.data, **_cal(scan))
    known = plain.arrays["amplitude"] > 0
    assert np.std(plain.phase[known]) > 0.1  # a real phase, not a flat map
    # float32 folding reorders sums only: float noise
    np.testing.assert_allclose(fast32.phase, plain.phase, atol=1e-5)  # measured 4e-7 rad
    np.testing.assert_allclose(fast32.arrays["amplitude"], plain.arrays["amplitude"], rtol=1e-3, atol=1e-4)
    # bfloat16 convolutions (float32 accumulation): measured max |Δφ| 0.002 rad, xc 0.999997
    bf16 = cnn(scan.data, **_cal(scan), precision="bfloat16")
    assert bf16.metadata["inference"]["precision"] == "bfloat16"
    assert xc(bf16.phase, plain.phase) > 0.9999
    assert np.abs(bf16.phase - plain.phase)[known].max() < 0.02
    assert np.std(bf16.phase[known]) == pytest.approx(np.std(plain.phase[known]), rel=0.01)


def test_folded_network_equals_the_module_on_random_weights():
    from napari_phase.stem.airpi.model import AirpiNet

    torch.manual_seed(1)
    net = AirpiNet(width=4, depth=2).eval()
    for m in net.modules():  # non-trivial BN statistics, so a missing or wrong fold shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(3, 11, 64, 64)
    with torch.no_grad():
        a_ref, p_ref = net(x)
    fast = inference.InferenceNet(net, "cpu", "float32")
    assert fast.fused == sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) > 0
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.module.modules())
    a, p = fast(x)
    assert a.dtype == torch.float32 and p.dtype == torch.float32
    torch.testing.assert_close(a, a_ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(p, p_ref, atol=1e-5, rtol=1e-4)
    # the original module is untouched (still has its BN layers, still trainable)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_kernels_standardised_from_pattern_sums_equal_standardise():
    torch.manual_seed(0)
    win = torch.rand(5, 7, 64, 64) ** 4 * 50
    ky, kx = torch.randint(0, 5, (33, 9)), torch.randint(0, 7, (33, 9))
    w = neighbour_weights(1.3)
    ref = standardise(win[ky, kx], w)
    xp = powered(win)
    got = standardise_kernels(xp, ky, kx, pattern_sums(xp), w)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    assert float(ref.std()) > 0.3  # not a degenerate case


def test_precision_choice_and_bad_values(scan):
    assert inference.resolve_precision("float32", "cpu") == "float32"
    auto = inference.resolve_precision("auto", "cpu")
    assert auto == ("bfloat16" if inference.cpu_has_amx_bf16() else "float32")
    assert inference.resolve_precision("auto", "cuda") == "float32"
    with pytest.raises(ValueError, match="precision must be one of"):
        inference.resolve_precision("fp8", "cpu")
    with pytest.raises(InputError, match="precision must be one of auto, float32, bfloat16"):
        cnn(scan.data, **_cal(scan), precision="half")


def test_torch_threads_restores_the_count():
    outer = torch.get_num_threads()
    torch.set_num_threads(2)  # not 1, so a missing restore shows
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    torch.set_num_threads(outer)


def test_flops_per_pattern_of_the_shipped_network():
    net, _ = reconstruct.load_network("default", "cpu")
    # 0.35 GFLOP per pattern (docs/benchmarks.md); the count follows the architecture
    assert inference.flops_per_pattern(net) == pytest.approx(0.3509e9, rel=0.01)


def test_speed_bench_table_reports_medians_and_spread():
    from napari_phase.bench import cnn_speed

    assert cnn_speed.matmul_gflops(n=128, repeats=1) > 0
    label = cnn_speed.FOLDED["float32"]
    result = {"gflop_per_pattern": 0.35, "scan": 8, "repeats": 3, "threads": (2,), "default_precision": "float32",
              "matmul": {2: [100.0, 50.0, 80.0]},
              "variants": {(label, 2): [{"pps": p, "gflops": p * 0.35, "ratio_mm": r}
                                        for p, r in ((100, 0.35), (120, 0.6), (90, 0.4))]},
              "e2e": [{"pps": 80, "ratio_net": 0.8}, {"pps": 90, "ratio_net": 0.9}, {"pps": 70, "ratio_net": 0.7}],
              "e2e_threads": [2, 1, 2]}
    text = cnn_speed.markdown(result)
    assert f"| network alone: {label} | 2 | 100 (90–120) | 35.0 (31.5–42.0) | 80 (50–100) | 0.40 (0.35–0.60) | |" in text
    assert "| tuned: 1/2 | 80 (70–90) | 28.0 (24.5–31.5) | | | 0.80 (0.70–0.90) |" in text
    with pytest.raises(SystemExit):
        cnn_speed.main(["--threads", "0"])


def test_network_input_equals_the_plain_construction(scan, monkeypatch):
    """The batch the network sees (built in place, channels-last) is torch.cat([standardise(windows[ky, kx]),
    probe channels]) of the resampled patterns, as before the in-place build."""
    from napari_phase.stem.airpi.preprocess import kernel_indices, probe_channels
    from napari_phase.stem.calibration import Calibration

    seen = []

    def recording(model, device, precision="auto"):
        net, _ = reconstruct.load_network(model, device)

        def run(x):
            seen.append(x.clone())
            with torch.no_grad():
                return net(x.contiguous())
        return run
    monkeypatch.setattr(reconstruct, "fast_network", recording)
    cnn(scan.data, descan="off", **_cal(scan))  # the plain construction reads patterns at the raw centre
    cal = Calibration(energy_kev=scan.energy_kev, semiangle_mrad=scan.semiangle_mrad, scan_step_a=scan.scan_step_a,
                      detector_mrad_per_px=scan.detector_mrad_per_px)
    setup = reconstruct._Setup(cal, scan.data.shape, 2, "airpi_default", 256, "reflect")
    ny, nx = scan.data.shape[:2]
    windows = setup.resample(scan.data, "cpu")
    rows, cols = np.repeat(np.arange(ny), nx), np.tile(np.arange(nx), ny)
    idx = kernel_indices(rows, cols, (ny, nx), "reflect")
    kern = standardise(windows[torch.as_tensor(idx[..., 0]), torch.as_tensor(idx[..., 1])], setup.weights)
    expected = torch.cat([kern, probe_channels(setup.probe, 1).expand(len(rows), -1, -1, -1)], dim=1)
    assert len(seen) == 1 and seen[0].shape == expected.shape == (ny * nx, 11, 64, 64)
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(seen[0], expected, atol=2e-5, rtol=1e-5)


def test_stitch_places_sub_pixel_positions_and_mixes_fractions():
    from napari_phase.stem.airpi.preprocess import probe_window
    from napari_phase.stem.airpi.stitch import ObjectAccumulator, stitch

    probe = torch.as_tensor(probe_window(0.0, 0.0))
    probe = probe / probe.abs().max()
    psi = probe[None].clone()  # ψout = ψin: the patch is |ψin|², symmetric about the window centre
    r = 0.5  # window px per object px
    positions = torch.tensor([[20.5, 17.25], [21.0, 43.75]], dtype=torch.float64)
    yy, xx = np.indices((64, 64))
    for p in positions:
        acc = ObjectAccumulator((64, 64))
        stitch(acc, psi, probe, p[None], r)
        w = acc.obj.real.numpy()
        cy, cx = (w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()
        assert (cy, cx) == (pytest.approx(float(p[0]), abs=0.05), pytest.approx(float(p[1]), abs=0.05))
    # two fractions in one batch = each on its own (each patch keeps its own DFT matrices and weight)
    both = ObjectAccumulator((64, 64))
    stitch(both, psi.expand(2, -1, -1).clone(), probe, positions, r)
    one = ObjectAccumulator((64, 64))
    for p in positions:
        stitch(one, psi, probe, p[None], r)
    torch.testing.assert_close(both.obj, one.obj, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both.weight, one.weight, atol=1e-5, rtol=1e-5)


def test_the_gpu_path_builds_without_a_gpu_and_says_clearly_when_there_is_none(scan, monkeypatch):
    """No GPU here: the CUDA path's pieces are built on torch's "meta" device (shapes and dtypes, no
    arithmetic), and asking for CUDA without one is one clear InputError, not a crash."""
    import napari_phase.jobs as jobs
    from napari_phase.stem.airpi import model as airpi_model
    from napari_phase.threads import ThreadTuner

    torch.manual_seed(0)
    net = airpi_model.AirpiNet(width=4, depth=2)
    gpu = inference.InferenceNet(net, "meta", "auto")
    assert gpu.precision == "float32"  # "auto" is bfloat16 only on an AMX CPU
    assert all(p.device.type == "meta" for p in gpu.module.parameters())
    amp, phase = gpu(torch.empty(3, 11, 64, 64, device="meta"))
    ref_amp, ref_phase = net.eval()(torch.zeros(3, 11, 64, 64))
    assert amp.shape == ref_amp.shape and phase.shape == ref_phase.shape and amp.dtype == torch.float32
    assert ThreadTuner.for_device(torch.device("meta")).summary() == {"threads": None, "tuned": False}
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU is available; use 'auto' or 'cpu'"):
            cnn(scan.data, **{**_cal(scan), "device": "cuda"})
    # bfloat16 asked for on a GPU: one clear message (the job's device is the "meta" stand-in)
    monkeypatch.setattr(jobs, "resolve_device", lambda d: torch.device("meta"))
    with pytest.raises(InputError, match="bfloat16' is for the CPU path"):
        cnn(scan.data, **{**_cal(scan), "device": "cuda"}, precision="bfloat16")
