"""The shared training loop and model saving/loading (tiny models, a few steps, no real training)."""

import json

import numpy as np
import pytest
import torch

from napari_phase import models
from napari_phase.jobs import CancelToken, run_job
from napari_phase.training import TrainConfig, learning_rate, train_job

SLOPE = 2.5


def _problem():
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)

    def make_batch(step, gen, device):
        x = torch.rand(16, 1, generator=gen).to(device)
        return x, SLOPE * x - 1.0

    def loss_fn(m, batch):
        x, y = batch
        loss = torch.mean((m(x) - y) ** 2)
        return loss, {"mse": float(loss.detach())}

    xv = torch.linspace(0, 1, 32)[:, None]

    def validate(m, device):
        return {"val_loss": float(torch.mean((m(xv) - (SLOPE * xv - 1.0)) ** 2))}

    return model, make_batch, loss_fn, validate


def test_training_fits_and_reports(tmp_path):
    model, make_batch, loss_fn, validate = _problem()
    cfg = TrainConfig(steps=300, batch_size=16, lr=0.05, lr_final=1e-3, warmup_steps=10, val_every=50,
                      checkpoint_every=100, device="cpu")
    report = run_job(train_job(model, make_batch=make_batch, loss_fn=loss_fn, validate=validate,
                               config=cfg, checkpoint_path=tmp_path / "ck.pt"))
    assert report.steps == 300 and report.samples == 300 * 16
    assert report.stopped_by == "steps"
    assert report.best["val_loss"] < 1e-3
    # the fitted slope is the true one (a scale, not only a trend)
    assert model.weight.item() == pytest.approx(SLOPE, rel=0.05)
    assert [row["step"] for row in report.history] == [50, 100, 150, 200, 250, 300]
    assert (tmp_path / "ck.pt").is_file()


def test_resume_continues_from_checkpoint(tmp_path):
    model, make_batch, loss_fn, validate = _problem()
    ck = tmp_path / "ck.pt"
    cfg = TrainConfig(steps=100, lr=0.05, val_every=50, checkpoint_every=50, device="cpu")
    run_job(train_job(model, make_batch=make_batch, loss_fn=loss_fn, validate=validate, config=cfg,
                      checkpoint_path=ck))
    model2, *_ = _problem()
    cfg2 = TrainConfig(steps=200, lr=0.05, val_every=50, checkpoint_every=50, device="cpu")
    report = run_job(train_job(model2, make_batch=make_batch, loss_fn=loss_fn, validate=validate,
                               config=cfg2, checkpoint_path=ck, resume=True))
    assert report.steps == 200
    assert [row["step"] for row in report.history] == [50, 100, 150, 200]


def test_time_budget_and_cancel_keep_best(tmp_path):
    model, make_batch, loss_fn, validate = _problem()
    cfg = TrainConfig(steps=10_000, lr=0.05, val_every=20, device="cpu", time_budget_s=0.0)
    report = run_job(train_job(model, make_batch=make_batch, loss_fn=loss_fn, validate=validate, config=cfg))
    assert report.stopped_by == "time budget" and report.steps == 1 and report.history

    model, make_batch, loss_fn, validate = _problem()
    token = CancelToken()

    def cancel_at_30(p):
        if p.step >= 30:
            token.cancel()

    cfg = TrainConfig(steps=10_000, lr=0.05, val_every=10, device="cpu")
    report = run_job(train_job(model, make_batch=make_batch, loss_fn=loss_fn, validate=validate, config=cfg),
                     on_progress=cancel_at_30, cancel=token)
    assert report.stopped_by == "cancelled" and 30 <= report.steps < 40


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=1000, lr=1e-3, lr_final=1e-5, warmup_steps=100)
    assert learning_rate(0, cfg) == pytest.approx(1e-5)
    assert learning_rate(99, cfg) == pytest.approx(1e-3)
    assert learning_rate(1000, cfg) == pytest.approx(1e-5)
    assert 1e-5 < learning_rate(550, cfg) < 1e-3


def test_nan_loss_stops_with_message():
    model, make_batch, _, validate = _problem()

    def bad_loss(m, batch):
        return m(batch[0]).sum() * float("nan"), {}

    with pytest.raises(RuntimeError, match="learning rate"):
        run_job(train_job(model, make_batch=make_batch, loss_fn=bad_loss, validate=validate,
                          config=TrainConfig(steps=5, device="cpu")))


def test_save_and_load_model_roundtrip(tmp_path):
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    path = models.save_model(net, {"ranges": {"x": [0, 1]}, "width": 8}, tmp_path, "tiny")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["dtype"] == "float16" and card["parameters"] == 4 * 8 + 8 + 8 * 2 + 2
    assert card["size_bytes"] == path.stat().st_size and len(card["sha256"]) == 64

    def build(c):
        return torch.nn.Sequential(torch.nn.Linear(4, c["width"]), torch.nn.Linear(c["width"], 2))

    loaded = models.load_model(str(path), build, "cpu")
    assert loaded is models.load_model(str(path), build, "cpu")  # cached
    x = torch.randn(3, 4)
    np.testing.assert_allclose(loaded(x).detach(), net(x).detach(), atol=2e-2)
    assert next(loaded.parameters()).dtype == torch.float32
    with pytest.raises(KeyError, match="no model named"):
        models.model_card("does-not-exist")
