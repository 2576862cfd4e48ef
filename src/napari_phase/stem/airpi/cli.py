"""`napari-phase train cnn`: train the airpi CNN, or fine-tune it to one instrument configuration.

``add_train_command(train_sub)`` adds the sub-command to the ``napari-phase train`` parser
(napari_phase.stem.cli calls it). ``python -m napari_phase.stem.airpi.cli train cnn ...`` runs the
same command without the rest of the CLI.
"""

from __future__ import annotations

import argparse
import sys

from ...jobs import DEVICE_CHOICES, InputError


def add_train_command(train_sub) -> argparse.ArgumentParser:
    s = train_sub.add_parser("cnn", help="train the 4D-STEM CNN (airpi) on simulated data, or --finetune it")
    s.add_argument("--steps", type=int, default=None, help="optimiser steps (default 20000; fine-tune 300)")
    s.add_argument("--batch-size", type=int, default=None, help="samples per step (default 32; fine-tune 16)")
    s.add_argument("--time-budget-min", type=float, default=None, help="stop (validated, saved) after this many minutes")
    s.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    s.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    s.add_argument("--out", default=None, help="weights file (.pt, card .json beside it); default: the shipped model's place")
    s.add_argument("--resume", action="store_true", help="continue from the checkpoint beside --out")
    s.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3; fine-tune 3e-4)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--width", type=int, default=None, help="U-Net channels at full resolution (default 16)")
    s.add_argument("--depth", type=int, default=None, help="U-Net stride-2 levels (default 4)")
    s.add_argument("--finetune", action="store_true", help="fine-tune --base to one configuration (needs the three below)")
    s.add_argument("--base", default="default", help="model to fine-tune: 'default' or a .pt path")
    s.add_argument("--energy-kev", type=float, default=None)
    s.add_argument("--semiangle-mrad", type=float, default=None)
    s.add_argument("--detector-mrad-per-px", type=float, default=None)
    s.add_argument("--scan-step-a", type=float, default=None, help="fine-tune: restrict the scan step too (Å)")
    s.set_defaults(func=cmd_train_cnn)
    return s


def _command(args) -> str:
    return "napari-phase train cnn " + " ".join(sys.argv[sys.argv.index("cnn") + 1:]) if "cnn" in sys.argv else "napari-phase train cnn"


def cmd_train_cnn(args) -> int:
    from ...jobs import run_with_tqdm
    from .train import finetune_job, train_cnn_job

    budget = args.time_budget_min * 60 if args.time_budget_min else None
    network = {k: v for k, v in (("width", args.width), ("depth", args.depth)) if v}
    if args.finetune:
        missing = [n for n in ("energy_kev", "semiangle_mrad", "detector_mrad_per_px") if getattr(args, n) is None]
        if missing:
            raise InputError("--finetune needs " + ", ".join("--" + m.replace("_", "-") for m in missing))
        if not args.out:
            raise InputError("--finetune needs --out PATH.pt (the fine-tuned model is a user model, not the shipped one)")
        job = finetune_job(energy_kev=args.energy_kev, semiangle_mrad=args.semiangle_mrad,
                           detector_mrad_per_px=args.detector_mrad_per_px, scan_step_a=args.scan_step_a,
                           base=args.base, out=args.out, steps=args.steps or 300, batch_size=args.batch_size or 16,
                           lr=args.lr or 3e-4, time_budget_s=budget, device=args.device, threads=args.threads,
                           seed=args.seed, command=_command(args))
    else:
        job = train_cnn_job(steps=args.steps, batch_size=args.batch_size, time_budget_s=budget, device=args.device,
                            threads=args.threads, out=args.out, resume=args.resume, lr=args.lr, seed=args.seed,
                            network=network or None, command=_command(args))
    report, path = run_with_tqdm(job, "train cnn")
    best = report.best
    print(f"saved {path} ({report.steps} steps, {report.samples} samples, {report.elapsed_s / 60:.1f} min, "
          f"stopped by {report.stopped_by}); best val_loss {best.get('val_loss', float('nan')):.4g}, "
          f"val_xc {best.get('val_xc', float('nan')):.3f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="napari-phase")
    sub = p.add_subparsers(dest="command")
    train = sub.add_parser("train")
    add_train_command(train.add_subparsers(dest="model"))
    args = p.parse_args(argv)
    if not hasattr(args, "func"):
        p.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
