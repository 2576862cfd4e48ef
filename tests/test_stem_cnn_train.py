"""4D-STEM CNN training: a smoke training lowers the loss, fine-tuning writes a loadable user model,
the `train cnn` command checks its arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_phase.jobs import InputError, run_job
from napari_phase.models import save_model
from napari_phase.stem.airpi import data, model
from napari_phase.stem.airpi.reconstruct import cnn
from napari_phase.stem.airpi.train import finetune_job, loss_fn, validation_fn
from napari_phase.training import TrainConfig, train_job

torch.set_num_threads(1)


def test_smoke_training_lowers_the_validation_loss():
    torch.manual_seed(0)
    net = model.AirpiNet(width=8, depth=2)
    src, val_src = data.SmoothRandomSource(3, seed=0), data.SmoothRandomSource(2, seed=9)
    ranges = data.Ranges(noise_free_fraction=0.5, dose_e_per_a2=(1e4, 1e6))
    validate = validation_fn(val_src, ranges, n=16, batch=16)
    net.eval()
    with torch.no_grad():
        before = validate(net, torch.device("cpu"))
    net.train()

    def make(step, gen, dev):
        return data.make_batch(src, 8, gen, ranges, dev)

    report = run_job(train_job(net, make_batch=make, loss_fn=loss_fn, validate=validate,
                               config=TrainConfig(steps=30, batch_size=8, lr=3e-3, warmup_steps=3, val_every=15,
                                                  checkpoint_every=1000, device="cpu", threads=1)))
    after = report.best
    assert report.steps == 30 and report.samples == 240
    assert after["val_loss"] < 0.9 * before["val_loss"], (before, after)


def test_finetune_writes_a_user_model_that_cnn_loads(tmp_path):
    torch.manual_seed(0)
    base_net = model.AirpiNet(width=4, depth=2)
    base = save_model(base_net, {"network": base_net.config(), "training_ranges": data.Ranges().as_dict()},
                      tmp_path, "base")
    banks = {"train": data.SmoothRandomSource(2, seed=1), "val": data.SmoothRandomSource(1, seed=2)}
    report, path = run_job(finetune_job(energy_kev=200.0, semiangle_mrad=25.0, detector_mrad_per_px=2.5,
                                        scan_step_a=0.3, base=str(base), out=tmp_path / "mine.pt", steps=3,
                                        batch_size=4, banks=banks, data_source="smooth", device="cpu"))
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["finetune"]["energy_kev"] == 200.0 and card["finetune"]["detector_mrad_per_px"] == 2.5
    assert card["finetuned_from"]["sha256"] == json.loads(base.with_suffix(".json").read_text())["sha256"]
    assert card["training_ranges"]["energy_kev"] == [200.0, 200.0]
    assert card["detector_zoom"] == pytest.approx((25.0 / 16) / 2.5)
    assert card["steps"] == 3 and card["network"]["width"] == 4
    # the fine-tuned weights differ from the base and reconstruct a scan
    sd_base = torch.load(base, weights_only=True)
    sd_new = torch.load(path, weights_only=True)
    assert any(not torch.equal(sd_base[k], sd_new[k]) for k in sd_base if sd_base[k].is_floating_point())
    scan = data.simulate_scan(data.SmoothRandomSource(1, seed=4), scan_shape=(4, 4), energy_kev=200.0,
                              semiangle_mrad=25.0, scan_step_a=0.3)
    res = cnn(scan.data, energy_kev=200.0, semiangle_mrad=25.0, scan_step_a=0.3,
              detector_mrad_per_px=scan.detector_mrad_per_px, model=str(path), device="cpu")
    assert res.metadata["model"] == "mine" and np.isfinite(res.phase).all()


def test_detector_roundtrip_blurs_only_coarse_detectors():
    x = torch.zeros(1, 9, 64, 64)
    x[..., 32, 32] = 1.0
    assert torch.equal(data.detector_roundtrip(x, 1.5), x)
    y = data.detector_roundtrip(x, 0.5)
    assert float(y[..., 32, 32].max()) < 0.5 and float(y.sum()) == pytest.approx(9 * 0.25 * 4, rel=0.3)


def test_train_cnn_command_checks_arguments(capsys):
    from napari_phase.stem.airpi.cli import main

    assert main(["train", "cnn", "--finetune", "--energy-kev", "300", "--out", "x.pt"]) == 2
    err = capsys.readouterr().err
    assert "--semiangle-mrad" in err and "--detector-mrad-per-px" in err
    assert main(["train", "cnn", "--finetune", "--energy-kev", "300", "--semiangle-mrad", "20",
                 "--detector-mrad-per-px", "1"]) == 2
    assert "--out" in capsys.readouterr().err
    with pytest.raises(InputError, match="semiangle"):
        run_job(finetune_job(energy_kev=300, semiangle_mrad=-1, detector_mrad_per_px=1, out="x.pt"))
