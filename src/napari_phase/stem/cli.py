"""`napari-phase icom|ssb|cnn FILE --out res.h5`: 4D-STEM phase retrieval from the command line.

Calibration comes from the file where it has it (voltage, scan step, detector sampling,
semi-angle); options override it; a value that is neither in the file nor given is asked for
(one line, exit 2), never guessed. ``--detector-from-disc`` measures the detector sampling from
the bright-field disc of the mean pattern and the given semi-angle; ``--center disc`` puts the
optical axis at the disc's centre; ``--descan plane|constant|off`` fits the beam centre over the
scan and removes it (stem/descan.py); ``cnn --precision auto|float32|bfloat16`` picks the network's
arithmetic (stem/airpi/inference.py). ``napari-phase train cnn`` comes from ``stem/airpi/cli.py``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from importlib.util import find_spec

from ..io.output import add_output_args
from ..jobs import DEVICE_CHOICES, InputError

EXAMPLES = """\
examples:
  napari-phase icom scan.mib --energy-kev 300 --scan-step-a 0.4 --detector-mrad-per-px 0.6 --out icom.h5
  napari-phase ssb scan.h5 --semiangle-mrad 20 --detector-from-disc --center disc --out ssb.h5
  napari-phase icom scan.h5 --rotation-deg auto --out icom.h5
  napari-phase cnn scan.emd --oversample 2 --out cnn.h5
"""


def add_commands(sub, train_sub) -> None:
    """Add ``icom``, ``ssb``, ``cnn`` to ``napari-phase`` and (from stem.airpi.cli) ``train cnn``."""
    helps = {
        "icom": "4D-STEM: integrated centre of mass (iCoM), with automatic scan-rotation guess",
        "ssb": "4D-STEM: single side-band ptychography (SSB)",
        "cnn": "4D-STEM: phase object by the trained CNN (airpi), stitched and super-resolved",
    }
    for name, text in helps.items():
        s = sub.add_parser(name, help=text, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
        s.add_argument("file", help="4D-STEM file (scan_y, scan_x, ky, kx): .mib, .h5 (Arina, py4DSTEM), .emd, .blo, .npy, ...")
        s.add_argument("--energy-kev", type=float, default=None, help="beam energy in kV (default: from the file)")
        s.add_argument("--scan-step-a", type=float, default=None, help="scan step in Å (default: from the file)")
        s.add_argument("--detector-mrad-per-px", type=float, default=None,
                       help="detector sampling in mrad/px (default: from the file)")
        s.add_argument("--detector-from-disc", action="store_true",
                       help="measure the detector sampling from the bright-field disc and --semiangle-mrad")
        s.add_argument("--semiangle-mrad", type=float, default=None,
                       help="probe convergence semi-angle in mrad (default: from the file)")
        s.add_argument("--rotation-deg", default="0",
                       help="scan rotation in degrees, or 'auto' (curl minimisation; iCoM only) (default 0)")
        s.add_argument("--transpose", action="store_true", help="detector axes transposed against the scan axes")
        s.add_argument("--center", default="detector",
                       help="optical axis: 'detector' (its centre, default), 'disc' (the BF disc's centre) or Y,X in px")
        s.add_argument("--descan", default="plane", choices=("plane", "constant", "off"),
                       help="fit the beam centre (BF disc) over the scan with this model and remove it: centre "
                            "offset and descan (default plane; 'off' = the raw patterns)")
        s.add_argument("--depth", type=int, default=None,
                       help="for a depth series (5-D, e.g. Prismatic): which depth index (default: the last)")
        if name in ("ssb", "cnn"):
            s.add_argument("--defocus-a", type=float, default=None, help="probe defocus in Å, negative = under-focus")
            s.add_argument("--cs-mm", type=float, default=None, help="spherical aberration in mm")
        if name == "cnn":
            s.add_argument("--oversample", type=int, default=2, help="object pixels per scan step (default 2)")
            s.add_argument("--model", default="default", help="shipped model name or a fine-tuned .pt path")
            s.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
            s.add_argument("--batch-size", type=int, default=256)
            s.add_argument("--precision", default="auto",
                           help="network arithmetic: auto (bfloat16 on a CPU with AMX tiles, else float32), "
                                "float32 or bfloat16 (CPU only)")
            s.add_argument("--threads", type=int, default=None,
                           help="CPU threads for torch (default: measured while it runs)")
            s.add_argument("--low-frequency", default="icom", choices=("icom", "ssb", "none"),
                           help="take the phase's low spatial frequencies (below ~1.2 alpha/lambda) from iCoM "
                                "(default), SSB, or 'none' (the network alone)")
        if name in ("icom", "ssb", "cnn"):
            s.add_argument("--uncertainty", action="store_true",
                           help="also write phase_sigma (rad): " + ("the CNN's spread under a grid symmetry and Poisson "
                                "re-sampling, scaled (one more run)" if name == "cnn" else
                                "Poisson counts propagated (noise part only)"))
        add_output_args(s)
        s.add_argument("--quiet", action="store_true", help="no progress bar")
        s.set_defaults(func=cmd_stem, method=name)
    if find_spec("napari_phase.stem.airpi.cli") is not None:
        from .airpi.cli import add_train_command

        add_train_command(train_sub)


def _parse_center(text: str, mean_pattern_fn):
    t = str(text).strip().lower()
    if t in ("", "detector", "none"):
        return None, "detector centre"
    if t == "disc":
        from .disc import detect_disc

        fit = detect_disc(mean_pattern_fn())
        return fit.center_px, f"BF disc centre ({fit.center_y_px:.2f}, {fit.center_x_px:.2f}) px"
    try:
        y, x = (float(v) for v in t.split(","))
    except ValueError:
        raise InputError(f"--center must be 'detector', 'disc' or Y,X in pixels, got {text!r}") from None
    return (y, x), f"({y:g}, {x:g}) px"


def load_4d(path: str, depth: int | None = None):
    """(data (4-D, lazy if the file is large), calibration dict, note) from any 4D-STEM file we read."""
    from ..io.readers import load

    ds = load(path, intensities=True)
    data = ds.data
    note = ""
    if ds.ndim == 5 and (ds.kind == "4dstem" or depth is not None):
        n = ds.shape[0]
        i = n - 1 if depth is None else int(depth)
        if not -n <= i < n:
            raise InputError(f"--depth {depth} is outside the file's {n} depths (0..{n - 1})")
        data = data[i]
        note = f"depth {i % n} of {n} ({ds.axis_names[0]})"
    elif depth is not None:
        raise InputError(f"--depth only applies to a depth series (a 5-D file); {path} is {ds.ndim}-D {tuple(ds.shape)}")
    return data, dict(ds.calibration), note


def cmd_stem(args) -> int:
    from ..io.output import write_result
    from ..jobs import run_with_tqdm
    from ._data import check_4d, mean_pattern
    from .calibration import Calibration

    if args.method == "cnn":
        from .airpi.inference import PRECISIONS

        if args.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {args.precision!r}")
    data, file_cal, note = load_4d(args.file, args.depth)
    check_4d(data)
    if note:
        print(f"napari-phase: using {note}", file=sys.stderr)
    cal = Calibration.from_metadata(file_cal, energy_kev=args.energy_kev, scan_step_a=args.scan_step_a,
                                    detector_mrad_per_px=args.detector_mrad_per_px, semiangle_mrad=args.semiangle_mrad,
                                    defocus_a=getattr(args, "defocus_a", None), cs_mm=getattr(args, "cs_mm", None))
    cache: dict = {}

    def mean():
        if "mean" not in cache:
            cache["mean"] = mean_pattern(data)
        return cache["mean"]

    center, where = _parse_center(args.center, mean)
    if args.detector_from_disc:
        from .disc import detect_disc

        if cal.semiangle_mrad is None:
            raise InputError("--detector-from-disc needs the semi-angle: give --semiangle-mrad")
        fit = detect_disc(mean())
        cal = cal.replace(detector_mrad_per_px=fit.detector_mrad_per_px(cal.semiangle_mrad))
        print(f"napari-phase: BF disc radius {fit.radius_px:.2f} px -> detector {cal.detector_mrad_per_px:.4g} mrad/px",
              file=sys.stderr)
    rot_text = str(args.rotation_deg).strip().lower()
    auto = rot_text == "auto"
    if auto and args.method != "icom":
        raise InputError("--rotation-deg auto is available for icom; run `napari-phase icom --rotation-deg auto` "
                         "first and pass the angle it reports")
    try:
        rotation = None if auto else float(rot_text)
    except ValueError:
        raise InputError(f"--rotation-deg must be a number or 'auto', got {args.rotation_deg!r}") from None
    common = dict(energy_kev=cal.energy_kev, scan_step_a=cal.scan_step_a, detector_mrad_per_px=cal.detector_mrad_per_px,
                  transpose=bool(args.transpose), center=center, descan=args.descan)
    if args.method == "icom":
        from .com import icom_job

        cal.require("energy_kev", "scan_step_a", "detector_mrad_per_px")
        job = icom_job(data, rotation_deg=rotation, uncertainty=bool(args.uncertainty), **common)
        label = "iCoM"
    elif args.method == "ssb":
        from .ssb import ssb_job

        cal.require("energy_kev", "semiangle_mrad", "scan_step_a", "detector_mrad_per_px")
        job = ssb_job(data, semiangle_mrad=cal.semiangle_mrad, rotation_deg=rotation, defocus_a=cal.defocus_a,
                      cs_mm=cal.cs_mm, uncertainty=bool(args.uncertainty), **common)
        label = "SSB"
    else:
        from . import cnn_job

        cal.require("energy_kev", "semiangle_mrad", "scan_step_a", "detector_mrad_per_px")
        job = cnn_job(data, semiangle_mrad=cal.semiangle_mrad, rotation_deg=rotation, defocus_a=cal.defocus_a,
                      cs_mm=cal.cs_mm, oversample=args.oversample, model=args.model, device=args.device,
                      batch_size=args.batch_size, threads=args.threads, precision=args.precision,
                      low_frequency=None if args.low_frequency == "none" else args.low_frequency,
                      uncertainty=bool(args.uncertainty), **common)
        label = "CNN"
    with warnings.catch_warnings():  # a method's advisory warning becomes one line below
        warnings.simplefilter("ignore", UserWarning)
        result = run_with_tqdm(job, label, disable=args.quiet)
    if result.metadata.get("warning"):
        print(f"napari-phase: warning: {result.metadata['warning']}", file=sys.stderr)
    result.metadata.setdefault("source_file", str(args.file))
    result.metadata["center"] = where
    if note:
        result.metadata["depth"] = note
    if result.metadata.get("descan"):
        print(f"napari-phase: {result.metadata['descan']['summary']}", file=sys.stderr)
    if result.metadata.get("descan_skipped"):
        print(f"napari-phase: {result.metadata['descan_skipped']}", file=sys.stderr)
    if "rotation_guess" in result.metadata:
        g = result.metadata["rotation_guess"]
        print(f"napari-phase: scan rotation guess {g['rotation_deg']:.1f} deg, transpose {g['transpose']}",
              file=sys.stderr)
    return write_result(result, args.out)
