"""One training loop for every trained method (4D-STEM CNN, FlowTIE): schedule, checkpoints, resume.

A method supplies three callables and a model:

- ``make_batch(step, generator, device)`` -> a batch (anything ``loss_fn`` understands), made on the
  fly (no dataset on disk);
- ``loss_fn(model, batch)`` -> ``(loss_tensor, {name: float})``;
- ``validate(model, device)`` -> ``{name: float}`` on a held-out split (must contain the selection
  metric, ``val_loss`` by default).

:func:`train_job` is a job in the :mod:`napari_phase.jobs` protocol: it yields
:class:`~napari_phase.jobs.Progress` every step, stops cleanly on cancel (keeping the best
weights), and returns a :class:`TrainReport`. Learning rate: linear warm-up, then cosine decay from
``lr`` to ``lr_final`` over ``steps``. A ``time_budget_s`` ends the run early (validated and
checkpointed), which is how CPU runs are bounded. Checkpoints hold model, optimiser, step, history,
best weights and the RNG state, so ``resume=True`` continues where a run stopped.

Provenance: every run is one *stage* of a command chain (:func:`invocation`: the command line
that started it, or ``command=``; its config, first/last step, samples, wall time, device,
threads, how it stopped). The chain lives in the checkpoint, a resumed run appends its stage, and
the report (``TrainReport.chain``) and the trained model (attribute ``training_chain``, which
:func:`napari_phase.models.save_model` writes into the card as ``command_chain``) carry all of it,
so a card lists every command that produced its weights.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .jobs import InputError, JobCancelled, Progress, resolve_device
from .threads import ThreadTuner


@dataclasses.dataclass
class TrainConfig:
    """Hyper-parameters of one training run (all land in the model card)."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    lr_final: float = 1e-5
    warmup_steps: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    val_every: int = 100
    checkpoint_every: int = 200
    time_budget_s: float | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # None: measured at run time (threads.ThreadTuner) on the CPU

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class TrainReport:
    """What a run did: best validation figures, history, samples seen, time, device."""

    model: Any
    history: list[dict[str, float]]
    best: dict[str, float]
    steps: int
    samples: int
    elapsed_s: float
    device: str
    threads: int
    stopped_by: str  # "steps", "time budget" or "cancelled"
    config: dict[str, Any]
    thread_tuning: dict[str, Any] = dataclasses.field(default_factory=dict)
    chain: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # one entry per invocation (stage)


#: the stage that stands for a resumed checkpoint written before chains were recorded
UNRECORDED = "not recorded (checkpoint written before training recorded its commands)"


def invocation(argv: list[str] | None = None) -> str:
    """The command line of this process as a user would type it (default ``sys.argv``).

    ``napari-phase …`` for the console script, ``python -m napari_phase.x.y …`` when a module of
    the package was run with ``-m``, ``python -c …`` / ``python (interactive)`` otherwise the
    program's file name and its arguments, shell-quoted.
    """
    argv = list(sys.argv if argv is None else argv)
    if not argv or argv[0] == "":
        return "python (interactive)"
    head, rest = argv[0], [shlex.quote(a) for a in argv[1:]]
    if head == "-c":
        return " ".join(["python -c <code>", *rest])
    path = Path(head)
    if path.name == "napari-phase":
        prog = "napari-phase"
    elif path.suffix == ".py" and "napari_phase" in path.parts:
        parts = list(path.with_suffix("").parts)
        mod = parts[len(parts) - 1 - parts[::-1].index("napari_phase"):]
        if mod[-1] == "__main__":
            mod = mod[:-1]
        prog = "python -m " + ".".join(mod)
    elif path.name == "__main__.py":
        prog = "python -m " + path.parent.name
    else:
        prog = shlex.quote(path.name if path.suffix != ".py" else head)
    return " ".join([prog, *rest])


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``lr_final`` at ``cfg.steps``."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1.0 + math.cos(math.pi * t))


def init_from_model(name: str) -> dict[str, Any]:
    """What :func:`train_job` needs to continue from a trained model (shipped name or ``.pt`` path)
    when its checkpoint is gone: weights (float32), the step it reached, its validation history and
    command chain, from its card."""
    from . import models
    from .jobs import InputError

    try:
        card = models.model_card(name)
    except KeyError as exc:
        raise InputError(f"cannot continue from {name!r}: {exc.args[0]}") from None
    state = {k: v.clone() for k, v in models.load_state_dict(str(name), "cpu").items()}
    return {"card": card, "state": state, "step": int(card.get("steps", 0)), "history": list(card.get("validation_history", [])),
            "chain": list(card.get("command_chain", [])), "source": f"{name} (sha256 {card.get('sha256', '?')[:12]})"}


def load_checkpoint(path: str | Path, device: Any = "cpu") -> dict:
    """A training checkpoint loaded safely (``weights_only=True``: tensors, numbers, strings, lists
    and dicts only; a file that would need code to unpickle is refused, never run)."""
    import pickle

    import torch

    try:
        state = torch.load(Path(path), map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = " ".join(str(exc).split())[:160]
        raise InputError(f"--resume: cannot load the checkpoint {Path(path).name} safely (not a napari-phase "
                         f"checkpoint, or it holds more than weights and numbers): {first}") from None
    if not isinstance(state, dict) or not {"model", "optimiser", "step"} <= set(state):
        raise InputError(f"--resume: {Path(path).name} is not a napari-phase training checkpoint "
                         "(no model, optimiser and step in it)")
    return state


def train_job(
    model,
    *,
    make_batch: Callable[[int, Any, Any], Any],
    loss_fn: Callable[[Any, Any], tuple[Any, dict[str, float]]],
    validate: Callable[[Any, Any], dict[str, float]] | None,
    config: TrainConfig,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    select: str = "val_loss",
    on_validation: Callable[[int, dict[str, float]], None] | None = None,
    command: str | None = None,
    init: dict[str, Any] | None = None,
):
    """Train ``model`` (job protocol); returns a :class:`TrainReport` with the best weights loaded.

    ``init`` (from :func:`init_from_model`): start from a trained model's weights when there is no
    checkpoint to resume, continuing its step count, history and command chain; the optimiser is new,
    so its learning rate is warmed up again, and the starting weights are validated first and stay
    the best iterate unless this stage beats them.

    The best iterate is chosen by the smallest ``select`` among validation results (or the
    training loss when there is no ``validate``). ``command``: how this stage was invoked, for the
    chain (default :func:`invocation`, the process's command line).
    """
    import torch

    cfg = config
    device = resolve_device(cfg.device)
    tuner = ThreadTuner.for_device(device, cfg.threads)
    model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator(device="cpu").manual_seed(int(cfg.seed))
    history: list[dict[str, float]] = []
    best: dict[str, float] = {}
    best_state = None
    start_step = 0
    ckpt = Path(checkpoint_path) if checkpoint_path else None
    chain: list[dict[str, Any]] = []

    if resume and ckpt is not None and ckpt.is_file():
        state = load_checkpoint(ckpt, device)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        generator.set_state(state["rng"])
        start_step, history, best = state["step"], state["history"], state["best"]
        best_state = state.get("best_model")
        chain = [dict(c) for c in state.get("chain", [])]
        if not chain and start_step > 0:  # a checkpoint from before chains were recorded
            chain = [{"stage": 1, "command": UNRECORDED, "start_step": 0, "end_step": start_step,
                      "steps": start_step, "samples": start_step * int(state.get("config", {}).get("batch_size", cfg.batch_size)),
                      "wall_s": history[-1]["elapsed_s"] if history else None, "config": state.get("config", {})}]
    used_init = init is not None and start_step == 0  # a checkpoint to resume wins over init
    if used_init:
        model.load_state_dict(init["state"])
        start_step = int(init.get("step", 0))
        history = [dict(h) for h in init.get("history", [])]
        chain = [dict(c) for c in init.get("chain", [])]
    started = time.time()
    stage: dict[str, Any] = {
        "stage": len(chain) + 1, "command": command or invocation(), "resumed": bool(chain),
        "start_step": start_step, "end_step": start_step, "steps": 0, "samples": 0, "wall_s": 0.0,
        "started_utc": _utc(started), "ended_utc": _utc(started), "stopped_by": None, "device": str(device),
        "threads": None, "config": cfg.as_dict(),
    }
    if used_init:
        stage["initialised_from"] = init.get("source", "")
    chain.append(stage)

    def update_stage(step: int, stopped_by: str | None = None) -> None:
        now = time.time()
        stage.update(end_step=step, steps=step - start_step, samples=(step - start_step) * cfg.batch_size,
                     wall_s=round(now - started, 2), ended_utc=_utc(now), threads=tuner.threads)
        if stopped_by is not None:
            stage["stopped_by"] = stopped_by

    def save_checkpoint(step: int) -> None:
        if ckpt is None:
            return
        update_stage(step)
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_suffix(ckpt.suffix + ".tmp")
        torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                    "rng": generator.get_state(), "step": step, "history": history, "best": best,
                    "best_model": best_state, "config": cfg.as_dict(), "chain": chain}, tmp)
        tmp.replace(ckpt)

    def run_validation(step: int, train_loss: float) -> None:
        nonlocal best, best_state
        model.eval()
        with torch.no_grad():
            metrics = dict(validate(model, device)) if validate is not None else {"val_loss": train_loss}
        model.train()
        metrics = {k: float(v) for k, v in metrics.items()}
        row = {"step": step, "train_loss": train_loss, "lr": learning_rate(step, cfg),
               "elapsed_s": elapsed_before + time.perf_counter() - t0, **metrics}
        history.append(row)
        if on_validation is not None:
            on_validation(step, row)
        score = metrics.get(select, train_loss)
        if not best or score < best.get(select, math.inf):
            best = {"step": step, **metrics}
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})

    elapsed_before = float(history[-1].get("elapsed_s", 0.0)) if history else 0.0
    t0 = time.perf_counter()
    if used_init:
        run_validation(start_step, None)  # the starting weights are the iterate to beat
    stopped_by = "steps"
    step = start_step
    running = math.nan
    model.train()
    try:
        while step < cfg.steps:
            lr_now = learning_rate(step, cfg)
            if used_init and step - start_step < cfg.warmup_steps:  # a new optimiser: warm up again
                lr_now *= (step - start_step + 1) / cfg.warmup_steps
            for group in optimiser.param_groups:
                group["lr"] = lr_now
            with tuner.step():
                batch = make_batch(step, generator, device)
                loss, parts = loss_fn(model, batch)
                if not torch.isfinite(loss):
                    raise RuntimeError(f"training loss became {loss.item()} at step {step}: lower the learning rate")
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimiser.step()
            value = float(loss.detach())
            running = value if math.isnan(running) else 0.95 * running + 0.05 * value
            step += 1
            if step % cfg.val_every == 0 or step == cfg.steps:
                run_validation(step, running)
            if step % cfg.checkpoint_every == 0:
                save_checkpoint(step)
            budget_spent = cfg.time_budget_s is not None and time.perf_counter() - t0 > cfg.time_budget_s
            msg = f"loss {running:.4g}" + (f", best {select} {best[select]:.4g}" if select in best else "")
            yield Progress(step, cfg.steps, msg)
            if budget_spent:
                stopped_by = "time budget"
                break
    except JobCancelled:
        stopped_by = "cancelled"
    finally:
        tuner.close()

    if not history or history[-1]["step"] != step:
        if step > start_step:
            run_validation(step, running)
    update_stage(step, stopped_by)
    save_checkpoint(step)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    model.training_chain = copy.deepcopy(chain)  # save_model writes it into the card (command_chain)
    return TrainReport(
        model=model, history=history, best=best, steps=step,
        samples=step * cfg.batch_size, elapsed_s=elapsed_before + time.perf_counter() - t0,
        device=str(device), threads=int(tuner.threads or torch.get_num_threads()), stopped_by=stopped_by,
        config=cfg.as_dict(), thread_tuning=tuner.summary(), chain=copy.deepcopy(chain),
    )
