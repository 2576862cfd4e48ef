"""`napari-phase flowtie FILE... --out res.h5` and `napari-phase train flowtie`.

The triplet: one file holding (3, H, W) images (or (3, Sy, Sx, Ky, Kx) 4D-STEM scans), or three
files ordered (−dz, 0, +dz). ``--method`` picks FlowTIE (default), FlowTIE + refine, the classical
TIE or gradient descent.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from ..io.output import add_output_args
from ..jobs import DEVICE_CHOICES, InputError

EXAMPLES = """\
examples:
  napari-phase flowtie triplet.npy --defocus-step-nm 1 --pixel-size-a 0.1 --energy-kev 300 --semiangle-mrad 20 --out ft.h5
  napari-phase flowtie under.tif focus.tif over.tif --defocus-step-nm 2 --pixel-size-a 0.2 --energy-kev 200 --method tie --out tie.h5
  napari-phase train flowtie --time-budget-min 35 --threads 1 --out src/napari_phase/models/flowtie_default.pt
"""

METHODS = ("flowtie", "refine", "tie", "gd")


def add_commands(sub, train_sub) -> None:
    """Add ``napari-phase flowtie`` and ``napari-phase train flowtie``."""
    s = sub.add_parser("flowtie", help="defocus triplet: FlowTIE (network), classical TIE or gradient descent",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("files", nargs="+", help="one file with the (3, H, W) triplet, or three files ordered -dz, 0, +dz")
    s.add_argument("--defocus-step-nm", type=float, required=True, help="dz in nm (images at -dz, 0, +dz; negative = under-focus)")
    s.add_argument("--pixel-size-a", type=float, default=None, help="pixel size in Å (default: from the file)")
    s.add_argument("--energy-kev", type=float, default=None, help="beam energy in keV (default: from the file)")
    s.add_argument("--semiangle-mrad", type=float, default=None, help="objective (probe) aperture semi-angle in mrad")
    s.add_argument("--method", choices=METHODS, default="flowtie",
                   help="flowtie (network), refine (network + per-dataset refinement), tie (classical), gd (gradient descent)")
    s.add_argument("--refine-steps", type=int, default=100, help="refinement steps for --method refine")
    s.add_argument("--steps", type=int, default=300, help="gradient-descent steps for --method gd")
    s.add_argument("--detector-mrad", type=float, default=None, help="4D-STEM input: virtual axial BF detector radius in mrad")
    s.add_argument("--detector-mrad-per-px", type=float, default=None, help="4D-STEM input: detector sampling in mrad/px")
    s.add_argument("--register", action="store_true", help="register the -dz and +dz images onto the in-focus one")
    s.add_argument("--model", default="default", help="shipped model name or a .pt path")
    s.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    s.add_argument("--uncertainty", action="store_true",
                   help="--method tie, gd or flowtie: also write phase_sigma (rad): tie, the images' noise propagated (noise "
                        "part only); gd, two re-fits on re-sampled noise (~3x the time); flowtie, the network's 8-symmetry "
                        "spread of a noise re-sampling, scaled on the validation split")
    add_output_args(s)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_flowtie)

    t = train_sub.add_parser("flowtie", help="train the FlowTIE network on multislice exit waves (writes <name>.pt + .json card)")
    t.add_argument("--out", default=None,
                   help="weights file (.pt, card .json and checkpoint .ckpt beside it), as `train cnn --out`; "
                        "default ./flowtie_default.pt")
    t.add_argument("--out-dir", default=None, help="(older form of --out) folder for <name>.pt and its card")
    t.add_argument("--name", default=None, help="(older form of --out) model name, default flowtie_default")
    t.add_argument("--steps", type=int, default=4000)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--patch", type=int, default=48, help="training patch in network pixels")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--base", type=int, default=16, help="U-Net width of the first level")
    t.add_argument("--time-budget-min", type=float, default=None, help="stop training after this many minutes (validated, saved)")
    t.add_argument("--bank-runs", type=int, default=2, help="multislice runs (voltage, rotation) per structure and zone axis")
    t.add_argument("--bank-thicknesses", type=int, default=6, help="exit-wave thicknesses kept per run (2-40 nm)")
    t.add_argument("--val-every", type=int, default=100)
    t.add_argument("--checkpoint", default=None,
                   help="checkpoint file (resumable with --resume); default with --out: beside it (.ckpt)")
    t.add_argument("--resume", action="store_true")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--bank-seed", type=int, default=None,
                   help="seed of the training exit-wave bank and its batches (default: --seed); a resumed stage with a "
                        "new bank seed trains on new multislice runs while validation stays the same")
    t.add_argument("--init-from", default=None,
                   help="continue from a trained model (shipped name, e.g. flowtie_default, or a .pt) when its checkpoint "
                        "is gone: its weights, step count and command chain; a new optimiser, warmed up again")
    t.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    t.add_argument("--no-heldout", action="store_true", help="skip the held-out evaluation written into the card")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train_flowtie)


def _load_triplet(files):
    import numpy as np

    from ..io.readers import load

    if len(files) == 1:
        ds = load(files[0], intensities=True)
        return np.asarray(ds.data), dict(ds.calibration or {})
    if len(files) != 3:
        raise InputError(f"give one file with the triplet or exactly three files (-dz, 0, +dz), got {len(files)}")
    loaded = [load(f, intensities=True) for f in files]
    return [np.asarray(d.data) for d in loaded], dict(loaded[1].calibration or {})


def _value(arg, calib, keys, name):
    if arg is not None:
        return float(arg)
    for k in keys:
        if calib.get(k) is not None:
            return float(calib[k])
    raise InputError(f"{name} is not in the file's calibration: give it on the command line")


def cmd_flowtie(args) -> int:
    from ..io.output import write_result
    from ..jobs import run_with_tqdm
    from .baselines import tie_classical_job, tie_gradient_descent_job
    from .solve import flowtie_job

    data, calib = _load_triplet(args.files)
    px = _value(args.pixel_size_a, calib, ("pixel_size_a", "scan_step_a"), "--pixel-size-a")
    if args.pixel_size_a is None and "pixel_size_a" not in calib and calib.get("pixel_size_nm") is not None:
        px = float(calib["pixel_size_nm"]) * 10
    kev = _value(args.energy_kev, calib, ("energy_kev", "voltage_kv"), "--energy-kev")
    common = dict(defocus_step_nm=args.defocus_step_nm, pixel_size_a=px, energy_kev=kev, register=args.register,
                  detector_mrad=args.detector_mrad, detector_mrad_per_px=args.detector_mrad_per_px)
    if args.uncertainty and args.method not in ("tie", "gd", "flowtie"):
        raise InputError(f"--uncertainty is available for --method tie, gd and flowtie only (not for {args.method})")
    if args.method == "tie":
        job, label = tie_classical_job(data, uncertainty=bool(args.uncertainty), **common), "classical TIE"
    elif args.method == "gd":
        job, label = tie_gradient_descent_job(data, semiangle_mrad=args.semiangle_mrad, steps=args.steps, device=args.device,
                                              uncertainty=bool(args.uncertainty), **common), "gradient descent"
    else:
        refine = args.refine_steps if args.method == "refine" else 0
        job, label = flowtie_job(data, semiangle_mrad=args.semiangle_mrad, model=args.model, refine_steps=refine,
                                 device=args.device, uncertainty=bool(args.uncertainty), **common), "FlowTIE"
    result = run_with_tqdm(job, label, disable=args.quiet)
    for msg in result.metadata.get("messages", []):
        print(f"napari-phase: {msg}", file=sys.stderr)
    return write_result(result, args.out)


def train_output(args) -> tuple[str, str, str | None]:
    """(folder, name, checkpoint) of ``train flowtie`` from ``--out FILE.pt`` or the older
    ``--out-dir DIR --name N`` (either form, not both). Like ``train cnn --out``, a name without
    ``.pt`` gets it, and the checkpoint defaults to FILE.ckpt beside the weights."""
    from pathlib import Path

    if args.out is not None:
        if args.out_dir is not None or args.name is not None:
            raise InputError("give --out FILE.pt, or the older --out-dir/--name, not both")
        out = Path(args.out)
        if not out.name or out.name in (".", "..") or str(args.out).endswith(("/", "\\")):
            raise InputError(f"--out must name a file (FILE.pt), got {args.out!r}")
        out = out.with_suffix(".pt")
        checkpoint = args.checkpoint if args.checkpoint is not None else str(out.with_suffix(".ckpt"))
        return str(out.parent), out.stem, checkpoint
    return args.out_dir or ".", args.name or "flowtie_default", args.checkpoint


def cmd_train_flowtie(args) -> int:
    from ..jobs import run_with_tqdm
    from .train import train_flowtie_job

    out_folder, name, checkpoint = train_output(args)
    command = "napari-phase " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv and "train" in sys.argv else ""
    job = train_flowtie_job(
        out_folder=out_folder, name=name, steps=args.steps, batch_size=args.batch_size, patch=args.patch, lr=args.lr,
        time_budget_s=None if args.time_budget_min is None else 60.0 * args.time_budget_min, seed=args.seed, device=args.device,
        threads=args.threads, base=args.base, bank_runs=args.bank_runs, bank_thicknesses=args.bank_thicknesses,
        val_every=args.val_every, checkpoint=checkpoint, resume=args.resume, command=command,
        evaluate_heldout=not args.no_heldout, bank_seed=args.bank_seed, init_from=args.init_from,
    )
    report = run_with_tqdm(job, "train FlowTIE", disable=args.quiet)
    best = report.best
    print(f"trained {report.steps} steps ({report.samples} samples) in {report.elapsed_s:.0f} s on {report.device}, "
          f"stopped by {report.stopped_by}; best val_loss {best.get('val_loss', float('nan')):.4g}, "
          f"val xc {best.get('val_xc', float('nan')):.3f}")
    print(f"wrote {report.path}")
    return 0
