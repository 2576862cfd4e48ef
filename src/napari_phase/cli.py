"""`napari-phase` command line: batch phase retrieval, demo, benchmarks, info.

Every sub-command reads a file (anything the napari-phase reader opens), runs one method through
the shared job mechanism with a progress bar, and writes a result file (.h5, .npz or .tif).
Bad input ends with one line on stderr and exit status 2; Ctrl-C cancels and keeps the best
result so far where the method has one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .io.output import add_output_args
from .jobs import DEVICE_CHOICES, InputError, JobCancelled

EXAMPLES = """\
examples:
  napari-phase sitie lorentz.dm4 --defocus-mm -1 --out phase.h5
  napari-phase siprad lorentz.tif --pixel-size-nm 5 --defocus-mm -1 --amplitude mask.tif --out res.h5
  napari-phase tie under.tif in.tif over.tif --pixel-size-nm 5 --defocus-step-mm 0.5 --out tie.h5
  napari-phase tie s0.tif s1.tif s2.tif s3.tif s4.tif --defocus-step-mm 0.2 --flip f0.tif f1.tif f2.tif f3.tif f4.tif --align --out tie.h5
  napari-phase simulate --texture skyrmions --defocus-mm -1 --noise 0.5 --out sim.npz
  napari-phase simulate --ovf skyrmion.omf --tilt-x-deg 30 --defocus-mm -0.1 --out sim.npz
  napari-phase demo --out demo_output
  napari-phase gui
"""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        check_outputs(args)
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"napari-phase: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unreadable input, permission, disk: one line, never a traceback
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"napari-phase: error:{where} {exc.strerror or exc}", file=sys.stderr)
        return 2
    except JobCancelled:
        print("napari-phase: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("napari-phase: interrupted", file=sys.stderr)
        return 130


#: argparse destinations that hold input files (checked against --out)
INPUT_ARGS = ("image", "images", "file", "files", "flip", "amplitude", "ovf")


def check_outputs(args) -> None:
    """Before any work: a command that writes a result (``output_suffixes`` set by its parser)
    gets its --out checked by :func:`napari_phase.io.output.check_output` (suffix, folder, not an
    input, not existing without --overwrite)."""
    suffixes = getattr(args, "output_suffixes", None)
    if suffixes is None or getattr(args, "out", None) is None:
        return
    from .io.output import check_output

    inputs = []
    for name in INPUT_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, str):
            inputs.append(value)
        elif isinstance(value, (list, tuple)):
            inputs += [v for v in value if isinstance(v, str)]
    check_output(args.out, inputs, overwrite=bool(getattr(args, "overwrite", False)),
                 suffixes=None if suffixes == "result" else suffixes)


class OneLineParser(argparse.ArgumentParser):
    """An argument error is one line on stderr (not the whole usage), exit status 2; the
    sub-command parsers inherit it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="napari-phase",
        description="Recover the phase of the electron wave from TEM data: Lorentz TEM (SIPRAD, SITIE, TIE), 4D-STEM (CNN, iCoM, SSB) and defocus triplets (FlowTIE).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"napari-phase {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    s = sub.add_parser("info", help="version, compute devices, shipped models and samples")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("demo", help="run every method on the bundled sample data and write figures + numbers")
    s.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    s.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    s.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    s.add_argument("--parts", default=None,
                   help="comma-separated parts to run (default all: ltem,stem,flowtie,series)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("bench", help="accuracy / speed benchmarks against ground truth -> markdown")
    s.add_argument("--out", default="docs/benchmarks.md", help="markdown file to write")
    s.add_argument("--quick", action="store_true", help="a small grid (minutes instead of an hour)")
    s.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("gui", help="open napari with the panels docked and a sample loaded")
    s.set_defaults(func=cmd_gui)

    s = sub.add_parser("simulate", help="simulate a Lorentz-TEM image with known phase (ground truth)")
    s.add_argument("--texture", default="skyrmions", choices=["skyrmions", "stripes", "bubbles"])
    s.add_argument("--size", type=int, default=256, help="image size in px (square)")
    s.add_argument("--pixel-size-nm", type=float, default=None, help="default: the simulator's")
    s.add_argument("--defocus-mm", type=float, default=-1.0, help="negative = under-focus (default -1)")
    s.add_argument("--noise", type=float, default=0.0, help="Gaussian noise σ as a fraction of the mean intensity (0.5 = 50 %%)")
    s.add_argument("--contaminants", type=int, default=0, help="number of contaminant particles")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--ovf", default=None, metavar="FILE",
                   help="image a micromagnetic state (OOMMF/mumax3 .ovf/.omf) instead of a texture; needs discretisedfield")
    s.add_argument("--axis", default=None, choices=["z", "y", "x"],
                   help="with --ovf: the beam direction (default: the file's single-cell axis; required for a 3-D file)")
    s.add_argument("--tilt-x-deg", type=float, default=0.0, help="with --ovf: specimen tilt about the image x axis (Néel textures need one)")
    s.add_argument("--tilt-y-deg", type=float, default=0.0, help="with --ovf: specimen tilt about the image y axis")
    s.add_argument("--ms-a-per-m", type=float, default=None,
                   help="with --ovf: saturation magnetisation in A/m (required for unit-vector files such as mumax3's m)")
    s.add_argument("--embed", default="vacuum", choices=["vacuum", "film"],
                   help="with --ovf: what surrounds the simulated cells (default vacuum)")
    s.add_argument("--film-thickness-nm", type=float, default=None,
                   help="with --ovf: the film's thickness along the beam in nm (default: the file's cells; a run with one "
                        "cell through the film often stands for a thicker film: B·t scales with it)")
    add_output_args(s, "output .npz (image, phase_true, ...) or .tif (image only)", (".npz", ".tif", ".tiff"))
    s.set_defaults(func=cmd_simulate)

    for name, helptext in (
        ("sitie", "single-image TIE: instant phase and B from one defocused LTEM image"),
        ("siprad", "SIPRAD: deep-image-prior phase from one defocused LTEM image (or a time series)"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("image", help="LTEM image file (2-D, or 3-D time series)")
        _ltem_args(s)
        if name == "siprad":
            s.add_argument("--solver", default="dip", choices=["dip", "pixelwise"],
                           help="dip = deep image prior (SIPRAD); pixelwise = faster, no network")
            s.add_argument("--amplitude", default="uniform",
                           help="uniform | joint | path to a contaminant mask image (non-zero = contaminant)")
            s.add_argument("--iterations", type=int, default=None, help="maximum iterations (default: the method's)")
            s.add_argument("--seed", type=int, default=0)
            s.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
        s.add_argument("--uncertainty", action="store_true",
                       help="also write phase_sigma (rad), bx_sigma, by_sigma (T·nm): " + (
                           "image noise propagated (noise part only)" if name == "sitie" else
                           "the spread of one re-fit of the result's model image with re-sampled noise (about 2x the time)"))
        s.set_defaults(func=cmd_sitie if name == "sitie" else cmd_siprad)

    s = sub.add_parser("tie", help="TIE from a through-focus series (any odd number of images), optionally with a flipped series")
    s.add_argument("images", nargs="+",
                   help="the series, most under-focused first: N files (N odd, in-focus in the middle) or one file with an (N, Y, X) stack")
    s.add_argument("--defocus-step-mm", type=float, default=None, help="|Δf| between neighbouring images, in mm (symmetric series)")
    s.add_argument("--defocus-mm", dest="series_defocus_mm", type=float, nargs="+", default=None,
                   help="one defocus per image in mm, negative = under-focus (instead of --defocus-step-mm)")
    s.add_argument("--flip", nargs="+", default=None, metavar="FILE",
                   help="the same series recorded with the specimen turned over (files or one stack): separates φm and φe")
    s.add_argument("--flip-axis", default="x", choices=["x", "y"],
                   help="how the flipped images are mirrored: x = left-right (default), y = up-down")
    s.add_argument("--align", action="store_true", help="register the series and the flipped series before solving")
    s.add_argument("--registration", default="model", choices=["model", "cross-correlation"],
                   help="with --align, how the series' images are registered: 'model' (default: each image onto its "
                        "simulation at its own defocus, sub-pixel) or 'cross-correlation' (shifts of 2 px or more only)")
    s.add_argument("--phase-e-derivative", default="spectral", choices=["spectral", "least_squares"],
                   help="with --flip, the dI/dz used for the electrostatic phase (default spectral)")
    s.add_argument("--hot-pixel-sigma", type=float, default=None, help="replace pixels this many σ from their 3x3 median")
    s.add_argument("--roi", type=int, nargs=4, default=None, metavar=("Y0", "Y1", "X0", "X1"), help="region of interest in px")
    s.add_argument("--qc-per-nm", type=_qc_value, default=None,
                   help="Tikhonov cut-off in cycles/nm (default 0.5/FOV for a series, 2/FOV for one image; 0 = none; "
                        "auto = no cut-off, dI/dz Wiener-filtered with the noise measured in the images)")
    s.add_argument("--boundary", default="auto", choices=["auto", "free", "mirror"],
                   help="image edges: free = a window of a larger specimen, mirror = zero flux; auto = free when aligned or cropped")
    s.add_argument("--uncertainty", action="store_true",
                   help="also write phase_sigma (rad), bx_sigma, by_sigma (T·nm): the images' noise propagated (noise part only)")
    _ltem_args(s, defocus=False)
    s.set_defaults(func=cmd_tie)

    train = sub.add_parser("train", help="train (or fine-tune) a shipped model: see `napari-phase train -h`")
    train_sub = train.add_subparsers(title="models", metavar="MODEL")
    _add_method_commands(sub, train_sub)
    return p


def _qc_value(text: str):
    """--qc-per-nm: a number (cycles/nm) or 'auto'."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in cycles/nm or 'auto', got {text!r}") from None


#: Method packages that contribute sub-commands through ``add_commands(sub, train_sub)``.
METHOD_CLI_MODULES = ("napari_phase.stem.cli", "napari_phase.flowtie.cli")


def _add_method_commands(sub, train_sub) -> None:
    """Let each method package add its own commands (``napari-phase X``, ``napari-phase train X``)."""
    from importlib import import_module
    from importlib.util import find_spec

    for name in METHOD_CLI_MODULES:
        if find_spec(name) is not None:
            import_module(name).add_commands(sub, train_sub)


def _ltem_args(s: argparse.ArgumentParser, defocus: bool = True) -> None:
    s.add_argument("--pixel-size-nm", type=float, default=None, help="default: from the file's calibration")
    if defocus:
        s.add_argument("--defocus-mm", type=float, default=None,
                       help="defocus in mm, negative = under-focus (default: from the file)")
    s.add_argument("--voltage-kv", type=float, default=None, help="accelerating voltage (default: file or 200)")
    s.add_argument("--cs-mm", type=float, default=1.0, help="spherical aberration in mm (SIPRAD forward model)")
    add_output_args(s)
    s.add_argument("--quiet", action="store_true", help="no progress bar")


# ----------------------------------------------------------------------------------- commands


def cmd_info(args) -> int:
    import platform

    import torch

    from .jobs import available_devices
    from .models import list_models

    print(f"napari-phase {__version__}")
    print(f"python {platform.python_version()} on {platform.machine()}, torch {torch.__version__}")
    print(f"devices: {', '.join(available_devices())} (auto = {available_devices()[0]})")
    models = list_models()
    print("models: " + (", ".join(models) if models else "none shipped yet (SIPRAD needs none: it fits per image)"))
    from .io.sample_data import list_samples

    print("samples: " + ", ".join(list_samples()))
    return 0


def _load_image(path: str):
    from .io.readers import load

    ds = load(path, intensities=True)
    return ds.data, ds.calibration


def _calibrated(args, calib: dict, key: str, arg_value, name: str, scale: float = 1.0, default=None):
    if arg_value is not None:
        return arg_value * scale
    if key in calib and calib[key] is not None:
        return float(calib[key])
    if default is not None:
        return default
    raise InputError(f"{name} is not in the file's calibration: give it on the command line")


def _ltem_params(args, calib: dict) -> dict:
    params = {
        "pixel_size_nm": _calibrated(args, calib, "pixel_size_nm", args.pixel_size_nm, "--pixel-size-nm"),
        "voltage_kv": _calibrated(args, calib, "voltage_kv", args.voltage_kv, "--voltage-kv", default=200.0),
    }
    if hasattr(args, "defocus_mm"):
        params["defocus_nm"] = _calibrated(args, calib, "defocus_nm", args.defocus_mm, "--defocus-mm", scale=1e6)
    return params


def _save(result, out) -> int:
    from .io.output import write_result

    status = write_result(result, out)
    if result.metadata.get("fit_warning"):  # a single-image result that does not explain its image
        print(f"napari-phase: warning: {result.metadata['fit_warning']}", file=sys.stderr)
    return status


def cmd_sitie(args) -> int:
    import numpy as np

    from .jobs import run_with_tqdm
    from .ltem import sitie_job

    data, calib = _load_image(args.image)
    result = run_with_tqdm(sitie_job(np.asarray(data), **_ltem_params(args, calib), uncertainty=bool(args.uncertainty)),
                           "SITIE", disable=args.quiet)
    return _save(result, args.out)


def cmd_siprad(args) -> int:
    import numpy as np

    from .jobs import run_with_tqdm
    from .ltem import siprad_job

    data, calib = _load_image(args.image)
    params = _ltem_params(args, calib)
    params["cs_mm"] = args.cs_mm
    kwargs = dict(seed=args.seed, device=args.device, uncertainty=bool(args.uncertainty))
    if args.iterations is not None:
        kwargs["iterations"] = args.iterations
    if args.solver == "pixelwise":
        from .ltem.pixelwise import pixelwise_job

        job = pixelwise_job(np.asarray(data), **params, **kwargs)
    else:
        amplitude = args.amplitude
        if amplitude not in ("uniform", "joint"):
            if not Path(amplitude).exists():
                raise InputError(f"--amplitude must be 'uniform', 'joint' or an existing mask file, got {amplitude!r}")
            from .io.readers import load

            amplitude = np.asarray(load(amplitude).data) != 0  # a mask: bool or numbers, non-zero = contaminant
        job = siprad_job(np.asarray(data), **params, amplitude=amplitude, **kwargs)
    result = run_with_tqdm(job, "SIPRAD" if args.solver == "dip" else "pixel-wise", disable=args.quiet)
    return _save(result, args.out)


def _load_series(paths: list[str], what: str):
    import numpy as np

    if len(paths) == 1:
        stack, calib = _load_image(paths[0])
        stack = np.asarray(stack)
        if stack.ndim == 2:
            stack = stack[None]
        return stack, calib
    loaded = [_load_image(p) for p in paths]
    shapes = {np.shape(d) for d, _ in loaded}
    if len(shapes) != 1:
        raise InputError(f"the {len(paths)} {what} images differ in shape: {sorted(shapes)}")
    return np.stack([np.asarray(d) for d, _ in loaded]), loaded[len(loaded) // 2][1]


def cmd_tie(args) -> int:
    from .jobs import run_with_tqdm
    from .ltem import tie_job

    stack, calib = _load_series(args.images, "series")
    if (args.defocus_step_mm is None) == (args.series_defocus_mm is None):
        raise InputError("give either --defocus-step-mm (symmetric series) or --defocus-mm with one value per image")
    flipped = _load_series(args.flip, "flipped")[0] if args.flip else None
    params = _ltem_params(args, calib)
    kwargs = dict(flipped=flipped, flip_axis=args.flip_axis, align=args.align, hot_pixel_sigma=args.hot_pixel_sigma,
                  roi=args.roi, qc_per_nm=args.qc_per_nm, boundary=args.boundary,
                  series_registration=args.registration, derivative_e=args.phase_e_derivative,
                  uncertainty=bool(args.uncertainty))
    if args.defocus_step_mm is not None:
        kwargs["defocus_step_nm"] = args.defocus_step_mm * 1e6
    else:
        kwargs["defocus_nm"] = [d * 1e6 for d in args.series_defocus_mm]
    result = run_with_tqdm(tie_job(stack, **params, **kwargs), "TIE", disable=args.quiet)
    return _save(result, args.out)


def cmd_simulate(args) -> int:
    import json

    import numpy as np

    from .io._atomic import atomic_paths
    from .ltem.simulate import simulate

    if args.ovf:
        from .io.magnetization import read_magnetization
        from .ltem.micromagnetic import simulate_from_magnetization

        sample = simulate_from_magnetization(
            read_magnetization(args.ovf), thickness_axis=args.axis, defocus_nm=args.defocus_mm * 1e6, tilt_x_deg=args.tilt_x_deg,
            tilt_y_deg=args.tilt_y_deg, ms_a_per_m=args.ms_a_per_m, pixel_size_nm=args.pixel_size_nm, embed=args.embed,
            film_thickness_nm=args.film_thickness_nm, noise=args.noise, seed=args.seed)
        args.texture, args.size = Path(args.ovf).name, "x".join(str(n) for n in sample.image.shape)
    else:
        kwargs = dict(texture=args.texture, shape=(args.size, args.size), defocus_nm=args.defocus_mm * 1e6,
                      noise=args.noise, n_contaminants=args.contaminants, seed=args.seed)
        if args.pixel_size_nm is not None:
            kwargs["pixel_size_nm"] = args.pixel_size_nm
        sample = simulate(**kwargs)
        args.size = f"{args.size}x{args.size}"
    out = Path(args.out)
    meta = {"pixel_size_nm": sample.pixel_size_nm, "defocus_nm": sample.microscope.defocus_nm,
            "voltage_kv": sample.microscope.voltage_kv, **sample.params}
    with atomic_paths([out]) as (tmp,):
        if out.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(tmp, sample.image.astype(np.float32), description=json.dumps(meta, default=str))
        else:
            np.savez_compressed(tmp, image=sample.image, phase_true=sample.phase_m, bx_true=sample.bx, by_true=sample.by,
                                mask_true=sample.mask, metadata_json=json.dumps(meta, default=str))
    print(f"wrote {out} ({args.texture}, {args.size} px, {sample.pixel_size_nm:g} nm/px, "
          f"defocus {args.defocus_mm:g} mm, noise {args.noise:g})")
    return 0


def cmd_demo(args) -> int:
    from .demo import SECTIONS, run_demo

    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip()) if args.parts else SECTIONS
    bad = [p for p in parts if p not in SECTIONS]
    if bad or not parts:
        print(f"napari-phase demo: error: --parts: unknown {', '.join(bad) or '(none given)'}; "
              f"expected some of {','.join(SECTIONS)}", file=sys.stderr)
        return 2
    run_demo(Path(args.out), quick=args.quick, device=args.device, sections=parts)
    return 0


def cmd_bench(args) -> int:
    from .bench import run_benchmarks

    run_benchmarks(Path(args.out), quick=args.quick, device=args.device)
    return 0


def cmd_gui(args) -> int:
    import napari

    viewer = napari.Viewer(title="napari-phase")
    viewer.open_sample("napari-phase", "ltem_skyrmions")
    viewer.window.add_plugin_dock_widget("napari-phase", "SIPRAD (LTEM)")
    napari.run()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
