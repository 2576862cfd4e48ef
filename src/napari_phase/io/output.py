"""The command line's output rules, shared by every CLI (``napari-phase sitie|tie|icom|flowtie|...``).

Checked before any work starts (:func:`check_output`): the suffix is one the writer knows, the
folder exists (never created silently), the output is not a folder, is none of the inputs (same
file also through a symbolic or hard link: same device and inode), and does not exist unless
``--overwrite`` is given. Written by :func:`write_result` atomically (temporary file beside the
target, renamed into place when complete; see :mod:`._atomic`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..jobs import InputError
from ._atomic import check_folder


def add_output_args(s, help_text: str = "result file: .h5, .npz or .tif (one TIFF per array)",
                    suffixes: tuple[str, ...] | str = "result") -> None:
    """``--out`` (checked before any work: suffix, existing folder, not an input) and ``--overwrite``."""
    s.add_argument("--out", required=True, help=help_text)
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists (default: refuse)")
    s.set_defaults(output_suffixes=suffixes)


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name one file (a symlink or hard link included: same st_dev and st_ino)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(out: str | Path, inputs: Iterable[str | Path] = (), *, overwrite: bool = False,
                 suffixes: Iterable[str] | None = None, option: str = "--out") -> Path:
    """``out`` checked as a CLI output before any work; returns it as a Path. Raises InputError
    (one line) for an unsupported suffix, a missing folder, a folder as output, an output that
    is an input, or an existing file without ``overwrite``. A .tif result is one file per array
    (``out_phase.tif``, ...): those names are checked against the inputs and existing files too."""
    from .writer import RESULT_SUFFIXES

    p = Path(out)
    allowed = tuple(suffixes) if suffixes is not None else RESULT_SUFFIXES
    if p.suffix.lower() not in allowed:
        raise InputError(f"{option} {out}: cannot write {p.suffix or 'a file without a suffix'}; "
                         f"use {', '.join(allowed)}")
    check_folder(p)
    candidates = [p]
    if p.suffix.lower() in (".tif", ".tiff"):
        candidates += sorted(p.parent.glob(f"{_glob_escape(p.stem)}_*{p.suffix}"))
    for src in inputs:
        for c in candidates:
            if same_file(c, src) or (c == p and Path(src).resolve() == p.resolve()):
                raise InputError(f"{option} {c} is the input file {src}: choose another output name "
                                 "(the raw data would be replaced)")
    if not overwrite:
        existing = [c for c in candidates if c.exists()]
        if existing:
            raise InputError(f"{option} {existing[0]} exists: give --overwrite to replace it, or choose another name")
    return p


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def write_result(result, out: str | Path) -> int:
    """Save ``result`` atomically, print its summary and one ``wrote PATH`` line per file; returns
    the exit status: 0, or 130 for a result cancelled by Ctrl-C (kept, but not complete)."""
    import sys

    from .writer import save_result

    if result.cancelled:
        print("napari-phase: cancelled; writing the result so far", file=sys.stderr)
    written = save_result(result, out)
    print(result.summary())
    unc = result.metadata.get("uncertainty")
    if unc:  # the per-pixel σ: say what it is worth (docs/methods.md §6)
        state = ("calibrated" if unc.get("calibrated") else "NOT calibrated against the truth") if unc.get("computed") else "not computed"
        print(f"napari-phase: uncertainty {state}: {unc.get('note', '')}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return 130 if result.cancelled else 0
