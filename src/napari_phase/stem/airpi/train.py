"""Training and fine-tuning of the airpi CNN through the shared loop (napari_phase.training).

Default recipe (the shipped model): ``napari-phase train cnn`` = AirpiNet(width 16, depth 4),
batches of 32 made on the fly from the specimen bank's *train* split (data.py), AdamW 2e-3 with
warm-up and cosine decay, validation on the *val* split (by structure). The GPU recipe is the same
command with ``--device cuda --steps 200000 --batch-size 128``.

Fine-tuning (``--finetune``): start from a model (default: the shipped one), restrict the data to
one instrument configuration (energy, semi-angle, optionally the scan step) and model the user's
detector sampling (patterns go down to the detector's pixel size and back through the same
resampling reconstruction uses), a short run at a lower learning rate, saved as a user model.
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ... import validate as V
from ...jobs import InputError, Progress, run_job
from ...training import TrainConfig, train_job
from .data import Ranges, SpecimenSource, make_batch, smooth_random_bank
from .loss import airpi_loss
from .model import build
from .preprocess import window_pixel_a

DEFAULT_NAME = "airpi_default"
DEFAULT_NETWORK = {"width": 16, "depth": 4, "max_width": 256}
GPU_RECIPE = "napari-phase train cnn --device cuda --steps 200000 --batch-size 128 --out airpi_gpu.pt"


@dataclasses.dataclass
class Recipe:
    steps: int = 20000
    batch_size: int = 32
    lr: float = 2e-3  # decays to lr / 100
    warmup_steps: int = 100
    val_every: int = 250
    checkpoint_every: int = 250
    val_samples: int = 96


def loss_fn(model, batch):
    amp, phase = model(batch["x"])
    return airpi_loss(amp, phase, batch)


def validation_fn(bank: SpecimenSource, ranges: Ranges, n: int = 96, seed: int = 12345, batch: int = 32,
                  detector_zoom: float | None = None):
    """``validate(model, device)`` on a fixed, seeded set of ``n`` samples from ``bank``: mean
    loss, object-phase xc, and xc of the noise-free/high-dose (≥ 1e5 e/Å²) part."""
    gen = torch.Generator().manual_seed(seed)
    batches = [make_batch(bank, batch, gen, ranges, detector_zoom=detector_zoom) for _ in range(max(1, n // batch))]

    def _validate(model, device) -> dict[str, float]:
        losses, xcs, xcs_hi = [], [], []
        for b in batches:
            b = {k: v.to(device) for k, v in b.items()}
            amp, phase = model(b["x"])
            loss, parts = airpi_loss(amp, phase, b)
            losses.append(parts["loss"])
            from .loss import masked_xc
            delta = phase - torch.angle(b["probe"]) - b["obj_phase"]
            est = b["obj_phase"] + torch.atan2(torch.sin(delta), torch.cos(delta))
            xc = masked_xc(est, b["obj_phase"], b["mask"])
            ok = ~b["vacuum"]
            xcs += xc[ok].tolist()
            xcs_hi += xc[ok & (b["dose"] >= 1e5)].tolist()
        return {"val_loss": sum(losses) / len(losses), "val_xc": sum(xcs) / max(1, len(xcs)),
                "val_xc_high_dose": sum(xcs_hi) / max(1, len(xcs_hi))}

    return _validate


def specimen_banks(splits=("train", "val"), **kwargs) -> dict[str, SpecimenSource]:
    """Potential sources of the specimen bank's splits (physics.specimens), by structure."""
    return {s: SpecimenSource(s, **kwargs) for s in splits}


def _command_line() -> str:
    argv = sys.argv[:]
    if argv and argv[0].endswith(("napari-phase", "__main__.py", "cli.py")):
        argv[0] = "napari-phase"
    return " ".join(argv)


def train_cnn_job(
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    time_budget_s: float | None = None,
    device: str = "auto",
    threads: int | None = 1,
    out: str | Path | None = None,
    name: str | None = None,
    resume: bool = False,
    lr: float | None = None,
    seed: int = 0,
    network: dict | None = None,
    ranges: Ranges | None = None,
    init_from: str | None = None,
    detector_zoom: float | None = None,
    banks: dict[str, SpecimenSource] | None = None,
    data_source: str = "specimens",
    command: str | None = None,
    extra_card: dict | None = None,
    val_samples: int | None = None,
    val_every: int | None = None,
):
    """Train (job protocol) and save the model + card; returns (TrainReport, path of the .pt).

    ``out``: path of the ``.pt`` to write (its card beside it); default: the shipped model's
    location when ``name`` is the default name. ``init_from``: a model to start from (fine-tuning).
    ``data_source``: "specimens" (the physics.specimens bank) or "smooth" (random smooth potentials,
    for tests only; such a model's card says so).
    """
    rec = Recipe()
    steps = int(steps or rec.steps)
    batch_size = int(batch_size or rec.batch_size)
    if steps < 1 or batch_size < 2:
        raise InputError(f"steps must be >= 1 and batch size >= 2, got {steps} and {batch_size}")
    ranges = ranges or Ranges()
    if banks is None:
        if data_source == "smooth":
            banks = {"train": smooth_random_bank(6, seed=seed), "val": smooth_random_bank(2, seed=seed + 1000)}
        else:
            banks = specimen_banks()
    net_cfg = dict(DEFAULT_NETWORK)
    base_card: dict[str, Any] = {}
    if init_from is not None:
        from ...models import load_state_dict, model_card

        base_card = model_card(init_from)
        net_cfg.update(base_card.get("network", {}))
    net_cfg.update(network or {})
    model = build({"network": net_cfg})
    if init_from is not None:
        model.load_state_dict(load_state_dict(str(init_from), "cpu"))

    config = TrainConfig(
        steps=steps, batch_size=batch_size, lr=float(lr or rec.lr), lr_final=float(lr or rec.lr) / 100,
        warmup_steps=min(rec.warmup_steps, max(1, steps // 10)),
        val_every=int(val_every or min(rec.val_every, max(1, steps // 4))),
        checkpoint_every=rec.checkpoint_every, time_budget_s=time_budget_s, seed=seed, device=device,
        threads=threads,
    )
    if out is None:
        from ...models import _folder

        out = Path(str(_folder())) / f"{name or DEFAULT_NAME}.pt"
    out = Path(out)
    if out.suffix != ".pt":
        out = out.with_suffix(".pt")
    ckpt = out.with_suffix(".ckpt")

    def _make(step: int, gen: torch.Generator, dev) -> dict:
        return make_batch(banks["train"], batch_size, gen, ranges, dev, detector_zoom=detector_zoom)

    validate = validation_fn(banks["val"], ranges, n=int(val_samples or rec.val_samples), seed=seed + 777,
                             detector_zoom=detector_zoom)
    t0 = time.time()
    report = yield from train_job(model, make_batch=_make, loss_fn=loss_fn, validate=validate, config=config,
                                  checkpoint_path=ckpt, resume=resume, select="val_loss", command=command or None)
    first_val = report.history[0] if report.history else {}
    card = {
        "method": "airpi-style 4D-STEM CNN (Friedrich, Yu, Verbeeck, Van Aert, Microsc. Microanal. 2023)",
        "network": {**model.config(), **net_cfg},
        "input": {"window_px": 64, "bf_radius_px": 16, "intensity_power": 0.1,
                  "neighbour_weight": "exp(-(d*step_px)^2/(2*4^2))", "probe_channels": ["amplitude", "phase"]},
        "training_ranges": ranges.as_dict(),
        "data": {
            "source": data_source if banks is not None else "specimens",
            "train_structures": banks["train"].names,
            "val_structures": banks["val"].names,
            "exit_waves": "phase-object approximation t = exp(i sigma V), V projected (Kirkland) through <= 3 nm",
        },
        "steps": report.steps, "samples": report.samples, "batch_size": batch_size,
        "stopped_by": report.stopped_by,
        "validation": {"best": report.best, "first": first_val, "history": report.history},
        "device": report.device, "threads": report.threads, "wall_time_s": round(report.elapsed_s, 1),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "command": command or _command_line(),
        "gpu_recipe": GPU_RECIPE,
        "seed": seed,
        "train_config": config.as_dict(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
    }
    if init_from is not None:
        card["finetuned_from"] = {"model": str(init_from), "sha256": base_card.get("sha256", "")}
    if detector_zoom is not None:
        card["detector_zoom"] = detector_zoom
    card.update(extra_card or {})
    from ...models import save_model

    path = save_model(report.model, card, out.parent, out.stem)
    yield Progress(report.steps, max(report.steps, 1), f"saved {path}")
    return report, path


def train_cnn(**kwargs):
    """Train a model synchronously (see :func:`train_cnn_job`); returns (TrainReport, path)."""
    return run_job(train_cnn_job(**kwargs))


def finetune_job(
    *,
    energy_kev: float,
    semiangle_mrad: float,
    detector_mrad_per_px: float,
    scan_step_a: float | None = None,
    base: str = "default",
    out: str | Path,
    steps: int = 300,
    batch_size: int = 16,
    lr: float = 3e-4,
    time_budget_s: float | None = None,
    device: str = "auto",
    threads: int | None = 1,
    seed: int = 0,
    banks: dict[str, SpecimenSource] | None = None,
    data_source: str = "specimens",
    command: str | None = None,
):
    """Fine-tune ``base`` to one instrument configuration; saves a user model at ``out``."""
    e = V.energy_kv(energy_kev, "energy_kev")
    a = V.positive(semiangle_mrad, "semiangle_mrad", "mrad")
    d = V.positive(detector_mrad_per_px, "detector_mrad_per_px", "mrad/px")
    if not 1.0 <= a <= 200.0:
        raise InputError(f"semiangle_mrad {a:g} is outside 1–200 mrad")
    base_name = DEFAULT_NAME if base in (None, "default") else str(base)
    dx = window_pixel_a(e, a)
    step_px = None
    if scan_step_a is not None:
        step_px = V.positive(scan_step_a, "scan_step_a", "Å") / dx
    ranges = Ranges().fixed(energy_kev=e, semiangle_mrad=a, step_px=step_px)
    zoom = (a / 16.0) / d  # detector px per window px
    return (yield from train_cnn_job(
        steps=steps, batch_size=batch_size, time_budget_s=time_budget_s, device=device, threads=threads,
        out=out, lr=lr, seed=seed, ranges=ranges, init_from=base_name, detector_zoom=zoom, banks=banks,
        data_source=data_source, command=command, val_samples=32,
        extra_card={"finetune": {"energy_kev": e, "semiangle_mrad": a, "detector_mrad_per_px": d,
                                 "scan_step_a": scan_step_a}},
    ))
