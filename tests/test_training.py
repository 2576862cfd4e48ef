"""The shared training loop and model saving/loading (tiny models, a few steps, no real training)."""

import json

import numpy as np
import pytest
import torch

from job_helpers import run_cancelling_after
from napari_phase import models
from napari_phase.jobs import run_job
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
    cfg = TrainConfig(steps=10_000, lr=0.05, val_every=10, device="cpu")
    # train_job yields one item per step (steps 1, 2, ...), so 30 items = cancel at step 30
    report = run_cancelling_after(train_job(model, make_batch=make_batch, loss_fn=loss_fn, validate=validate, config=cfg),
                                  30)
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


# ----------------------------------------------------------------------------- the command chain


def test_resumed_run_appends_its_stage_to_the_chain(tmp_path, monkeypatch):
    from napari_phase.training import invocation

    model, make_batch, loss_fn, validate = _problem()
    ck = tmp_path / "ck.pt"
    cfg = TrainConfig(steps=40, batch_size=16, lr=0.05, val_every=20, checkpoint_every=20, device="cpu", threads=1)
    first = run_job(train_job(model, make_batch=make_batch, loss_fn=loss_fn, validate=validate, config=cfg,
                              checkpoint_path=ck, command="stage one"))
    assert [(s["command"], s["start_step"], s["end_step"]) for s in first.chain] == [("stage one", 0, 40)]
    monkeypatch.setattr("sys.argv", ["/usr/bin/napari-phase", "train", "thing", "--steps", "100", "--resume"])
    model2, *_ = _problem()
    cfg2 = TrainConfig(steps=100, batch_size=8, lr=0.05, val_every=20, checkpoint_every=20, device="cpu", threads=1)
    report = run_job(train_job(model2, make_batch=make_batch, loss_fn=loss_fn, validate=validate, config=cfg2,
                               checkpoint_path=ck, resume=True))
    one, two = report.chain
    assert two["command"] == "napari-phase train thing --steps 100 --resume" == invocation()
    assert (one["stage"], one["start_step"], one["end_step"], one["steps"], one["samples"]) == (1, 0, 40, 40, 640)
    assert (two["stage"], two["start_step"], two["end_step"], two["steps"], two["samples"]) == (2, 40, 100, 60, 480)
    assert not one["resumed"] and two["resumed"] and one["stopped_by"] == two["stopped_by"] == "steps"
    assert one["config"]["steps"] == 40 and two["config"]["steps"] == 100 and two["threads"] == 1
    assert 0 < one["wall_s"] < 60 and 0 < two["wall_s"] < 60
    # the checkpoint holds the same chain, and the card of the trained model lists every stage
    assert torch.load(ck, weights_only=False)["chain"] == report.chain
    path = models.save_model(report.model, {"command": "last"}, tmp_path, "chained")
    card = json.loads(path.with_suffix(".json").read_text())
    assert [s["command"] for s in card["command_chain"]] == ["stage one", two["command"]]
    assert sum(s["steps"] for s in card["command_chain"]) == report.steps == 100


def test_resuming_an_old_checkpoint_marks_the_unrecorded_stage(tmp_path):
    from napari_phase.training import UNRECORDED

    model, make_batch, loss_fn, validate = _problem()
    ck = tmp_path / "old.pt"
    cfg = TrainConfig(steps=20, batch_size=4, lr=0.05, val_every=10, checkpoint_every=10, device="cpu", threads=1)
    run_job(train_job(model, make_batch=make_batch, loss_fn=loss_fn, validate=validate, config=cfg, checkpoint_path=ck))
    state = torch.load(ck, weights_only=False)
    del state["chain"]  # as written before chains existed
    torch.save(state, ck)
    cfg2 = TrainConfig(steps=30, batch_size=4, lr=0.05, val_every=10, checkpoint_every=10, device="cpu", threads=1)
    report = run_job(train_job(model, make_batch=make_batch, loss_fn=loss_fn, validate=validate, config=cfg2,
                               checkpoint_path=ck, resume=True, command="again"))
    assert [(s["command"], s["steps"]) for s in report.chain] == [(UNRECORDED, 20), ("again", 10)]
    assert report.chain[0]["samples"] == 80


@pytest.mark.parametrize("argv, expected", [
    (["/x/bin/napari-phase", "train", "cnn", "--out", "a b.pt"], "napari-phase train cnn --out 'a b.pt'"),
    (["/src/napari_phase/stem/airpi/cli.py", "train", "cnn"], "python -m napari_phase.stem.airpi.cli train cnn"),
    (["/src/napari_phase/bench/__main__.py", "--quick"], "python -m napari_phase.bench --quick"),
    (["-c", "--steps"], "python -c <code> --steps"),
    ([""], "python (interactive)"),
    (["/home/me/train_it.py", "--x"], "/home/me/train_it.py --x"),
])
def test_invocation_is_the_command_a_user_types(argv, expected):
    from napari_phase.training import invocation

    assert invocation(argv) == expected


def test_train_cnn_cli_two_stages_card_lists_both_commands(tmp_path, monkeypatch):
    """`napari-phase train cnn` then `... --resume`: the card's command_chain has both, with their steps."""
    from napari_phase.cli import main
    from napari_phase.stem.airpi import data as airpi_data, train as airpi_train

    import dataclasses

    monkeypatch.setattr(airpi_train, "specimen_banks",
                        lambda: {"train": airpi_data.SmoothRandomSource(2, seed=1), "val": airpi_data.SmoothRandomSource(1, seed=2)})
    recipe = airpi_train.Recipe
    monkeypatch.setattr(airpi_train, "Recipe", lambda: dataclasses.replace(recipe(), val_samples=8))  # a fast smoke
    out = tmp_path / "net.pt"
    args1 = ["train", "cnn", "--steps", "2", "--batch-size", "2", "--width", "4", "--depth", "2", "--device", "cpu",
             "--out", str(out)]
    monkeypatch.setattr("sys.argv", ["napari-phase", *args1])
    assert main(args1) == 0
    args2 = [*args1[:3], "4", *args1[4:], "--resume"]
    monkeypatch.setattr("sys.argv", ["napari-phase", *args2])
    assert main(args2) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    chain = card["command_chain"]
    assert [s["command"] for s in chain] == ["napari-phase " + " ".join(args1), "napari-phase " + " ".join(args2)]
    assert [(s["start_step"], s["end_step"]) for s in chain] == [(0, 2), (2, 4)] and card["steps"] == 4
    assert [s["samples"] for s in chain] == [4, 4] and all(s["wall_s"] > 0 for s in chain)


# ----------------------------------------------------------------------------- `train ... --out FILE.pt`


def _fake_flowtie_job(seen):
    from types import SimpleNamespace

    def job(**kw):
        seen.update(kw)
        return SimpleNamespace(steps=1, samples=1, elapsed_s=0.0, device="cpu", stopped_by="steps", best={},
                               path=f"{kw['out_folder']}/{kw['name']}.pt")
        yield  # a generator, as the real job

    return job


def test_train_flowtie_takes_out_file_like_train_cnn(tmp_path, monkeypatch, capsys):
    from napari_phase.cli import main
    from napari_phase.flowtie import train as flowtie_train

    seen = {}
    monkeypatch.setattr(flowtie_train, "train_flowtie_job", _fake_flowtie_job(seen))
    assert main(["train", "flowtie", "--out", str(tmp_path / "mine.pt"), "--steps", "1", "--quiet"]) == 0
    assert (seen["out_folder"], seen["name"], seen["checkpoint"]) == (str(tmp_path), "mine", str(tmp_path / "mine.ckpt"))
    assert f"wrote {tmp_path / 'mine.pt'}" in capsys.readouterr().out
    # no .pt suffix: it gets one (as train cnn); an explicit --checkpoint wins
    seen.clear()
    assert main(["train", "flowtie", "--out", str(tmp_path / "other"), "--checkpoint", str(tmp_path / "c.ck"), "--quiet"]) == 0
    assert (seen["name"], seen["checkpoint"]) == ("other", str(tmp_path / "c.ck"))
    # the older form still works, and its defaults are unchanged
    seen.clear()
    assert main(["train", "flowtie", "--out-dir", str(tmp_path), "--name", "legacy", "--quiet"]) == 0
    assert (seen["out_folder"], seen["name"], seen["checkpoint"]) == (str(tmp_path), "legacy", None)
    seen.clear()
    assert main(["train", "flowtie", "--quiet"]) == 0
    assert (seen["out_folder"], seen["name"]) == (".", "flowtie_default")
    assert seen["bank_seed"] is None  # the training bank follows --seed unless told
    seen.clear()
    assert main(["train", "flowtie", "--seed", "0", "--bank-seed", "3", "--quiet"]) == 0
    assert (seen["seed"], seen["bank_seed"]) == (0, 3)
    assert seen["init_from"] is None
    seen.clear()
    assert main(["train", "flowtie", "--init-from", "flowtie_default", "--quiet"]) == 0
    assert seen["init_from"] == "flowtie_default"
    # both forms at once, or a folder as --out: one line, exit 2, nothing trained
    seen.clear()
    assert main(["train", "flowtie", "--out", "a.pt", "--name", "b", "--quiet"]) == 2
    assert main(["train", "flowtie", "--out", str(tmp_path) + "/", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "not both" in err[0] and "must name a file" in err[1] and not seen


def test_init_from_a_saved_model_continues_its_steps_chain_and_best(tmp_path):
    """A model whose checkpoint is gone: `init` continues its step count and chain, validates the
    starting weights first, and keeps them when this stage does not beat them (lr 0 here)."""
    from napari_phase.training import init_from_model

    model, make_batch, loss_fn, validate = _problem()
    cfg = TrainConfig(steps=200, lr=0.05, lr_final=1e-3, val_every=50, checkpoint_every=100, device="cpu")
    first = run_job(train_job(model, make_batch=make_batch, loss_fn=loss_fn, validate=validate, config=cfg,
                              command="stage one"))
    card = {"steps": first.steps, "validation_history": first.history, "best_validation": first.best}
    path = models.save_model(first.model, card, tmp_path, "lin", dtype=torch.float32)
    init = init_from_model(str(path))
    assert init["step"] == 200 and [c["command"] for c in init["chain"]] == ["stage one"]

    fresh, *_ = _problem()  # random weights: the init must replace them
    frozen = TrainConfig(steps=260, lr=0.0, lr_final=0.0, warmup_steps=10, val_every=30, device="cpu")
    report = run_job(train_job(fresh, make_batch=make_batch, loss_fn=loss_fn, validate=validate, config=frozen,
                               command="stage two", init=init))
    assert report.steps == 260 and report.samples == 260 * frozen.batch_size
    assert [c["command"] for c in report.chain] == ["stage one", "stage two"]
    two = report.chain[-1]
    assert two["start_step"] == 200 and two["end_step"] == 260 and "lin" in two["initialised_from"]
    assert [r["step"] for r in report.history][-4:] == [200, 210, 240, 260]
    assert report.best["step"] == 200  # nothing beat the starting weights
    assert fresh.weight.item() == pytest.approx(first.model.weight.item(), abs=1e-6)
    assert fresh.weight.item() == pytest.approx(SLOPE, rel=0.05)


def test_a_checkpoint_to_resume_wins_over_init(tmp_path):
    from napari_phase.training import init_from_model

    model, make_batch, loss_fn, validate = _problem()
    ck = tmp_path / "ck.pt"
    cfg = TrainConfig(steps=100, lr=0.05, val_every=50, checkpoint_every=50, device="cpu")
    first = run_job(train_job(model, make_batch=make_batch, loss_fn=loss_fn, validate=validate, config=cfg,
                              checkpoint_path=ck, command="one"))
    path = models.save_model(first.model, {"steps": 7, "command_chain": [{"command": "elsewhere"}]}, tmp_path, "m",
                             dtype=torch.float32)
    again, *_ = _problem()
    cfg2 = TrainConfig(steps=150, lr=0.05, val_every=50, checkpoint_every=50, device="cpu")
    report = run_job(train_job(again, make_batch=make_batch, loss_fn=loss_fn, validate=validate, config=cfg2,
                               checkpoint_path=ck, resume=True, command="two", init=init_from_model(str(path))))
    assert [c["command"] for c in report.chain] == ["one", "two"]
    assert report.chain[-1]["start_step"] == 100 and "initialised_from" not in report.chain[-1]


def test_train_flowtie_init_from_bad_model_is_one_line_before_any_work(capsys):
    """An unknown model, or a model of another method, is refused at once (before the multislice banks)."""
    from napari_phase.cli import main

    assert main(["train", "flowtie", "--init-from", "nosuch", "--steps", "1", "--quiet"]) == 2
    assert main(["train", "flowtie", "--init-from", "airpi_default", "--steps", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no model named 'nosuch'" in err[0] and "its card says method" in err[1]
