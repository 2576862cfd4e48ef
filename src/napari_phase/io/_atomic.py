"""Atomic file writes: nothing half-written ever takes the place of a file.

Each target is written to a temporary file beside it (same folder, so the rename stays on one
file system), flushed to disk (fsync), and only when *every* target of the call is complete
renamed into place with ``os.replace``. On any failure the temporary files are removed and the
old files stay as they were. The caller's write function must have closed its handles (h5py,
tifffile) before it returns or raises: :func:`atomic_paths` never renames an open file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from ..jobs import InputError


def _temp_beside(target: Path) -> Path:
    """A fresh, empty, hidden file in the target's folder that keeps the target's suffix
    (np.savez appends .npz to a name without it)."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{target.suffix}", dir=target.parent)
    try:  # mkstemp makes it 0600: give it the mode a plain open() would (the old file's, or 0666 less the umask)
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_umask()
        os.fchmod(fd, mode)
    except OSError:
        pass
    finally:
        os.close(fd)
    return Path(name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # some systems cannot open a folder: the rename is still atomic
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def check_folder(target: Path) -> None:
    """The target's folder must exist and be a folder (never created silently); the target must
    not be a folder."""
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {target}: the folder {folder} does not exist (create it first)")
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a folder; name a file")


@contextlib.contextmanager
def atomic_paths(targets: Sequence[Path | str]) -> Iterator[list[Path]]:
    """Yield one temporary path per target; on a clean exit fsync them and rename each onto its
    target; on any exception remove them all (the targets are untouched) and re-raise.
    OSError (disk full, file too large, permission) becomes one InputError line."""
    targets = [Path(t) for t in targets]
    for t in targets:
        check_folder(t)
    temps: list[Path] = []
    try:
        for t in targets:
            temps.append(_temp_beside(t))
        yield temps
        for tmp in temps:
            _fsync(tmp)
        for tmp, t in zip(temps, targets):
            os.replace(tmp, t)
        for folder in {t.parent for t in targets}:
            _fsync(folder, directory=True)
    except OSError as exc:
        _remove(temps)
        reason = " ".join(str(exc.strerror or exc).split())
        more = f" (and {len(targets) - 1} more)" if len(targets) > 1 else ""
        raise InputError(f"cannot write {targets[0]}{more}: {reason}; nothing was replaced") from exc
    except BaseException:
        _remove(temps)
        raise


def _remove(paths: Sequence[Path]) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            p.unlink()
