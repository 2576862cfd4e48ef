"""4D-STEM input checks and streaming over scan rows (numpy, np.memmap or dask in; float32 blocks out).

Everything that reads a 4D-STEM dataset walks it in blocks of scan rows, so a memory-mapped or
dask dataset larger than memory is read once, block by block, and never whole.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..jobs import InputError
from ..validate import pattern_sums

#: bytes of float32 patterns one block holds at most
BLOCK_BYTES = 64 * 2**20
MIN_SCAN = 3
MIN_DETECTOR = 8


def shape_of(data: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in np.shape(data)) if not hasattr(data, "shape") else tuple(int(s) for s in data.shape)


def check_4d(data: Any, name: str = "4D-STEM data") -> tuple[int, int, int, int]:
    """Shape checks that need no pass over the data: 4-D, numeric, ≥3 scan rows/cols, a square
    detector of at least 8 px. Returns the shape."""
    if data is None:
        raise InputError(f"no {name} given")
    try:
        shape = shape_of(data)
    except ValueError:  # a ragged nested list
        raise InputError(f"the {name} must be a 4-D array (scan_y, scan_x, ky, kx); got a ragged list") from None
    if len(shape) != 4:
        raise InputError(f"the {name} must be 4-D (scan_y, scan_x, ky, kx), got {len(shape)}-D with shape {shape}")
    if 0 in shape:
        raise InputError(f"the {name} is empty (shape {shape})")
    dtype = np.dtype(getattr(data, "dtype", np.float32))
    if dtype.kind == "c":
        raise InputError(f"the {name} is complex; give diffraction intensities (real counts)")
    if dtype.kind not in "biuf" or dtype == np.bool_:
        raise InputError(f"the {name} must be numeric intensities, got dtype {dtype}")
    sy, sx, ky, kx = shape
    if sy < MIN_SCAN or sx < MIN_SCAN:
        raise InputError(f"the scan is only {sy}x{sx} positions; need at least {MIN_SCAN} rows and {MIN_SCAN} columns")
    if ky != kx:
        raise InputError(f"the detector is not square ({ky}x{kx} px); crop or bin the patterns to a square first")
    if ky < MIN_DETECTOR:
        raise InputError(f"the detector has only {ky}x{kx} px; need at least {MIN_DETECTOR}x{MIN_DETECTOR}")
    return shape  # type: ignore[return-value]


def rows_per_block(shape: tuple[int, ...], block_bytes: int | None = None) -> int:
    """Scan rows per block so that one float32 block holds at most ``block_bytes`` (default BLOCK_BYTES)."""
    block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
    per_row = int(np.prod(shape[1:])) * 4
    return int(max(1, min(shape[0], block_bytes // max(per_row, 1))))


def read_rows(data: Any, r0: int, r1: int, name: str = "4D-STEM data") -> np.ndarray:
    """Rows r0:r1 as float32 numpy, checked for NaN/inf."""
    block = data[r0:r1]
    if hasattr(block, "compute"):
        block = block.compute()
    block = np.asarray(block, dtype=np.float32)
    if not np.isfinite(block).all():
        bad = int((~np.isfinite(block)).sum())
        raise InputError(f"the {name} has {bad} NaN/inf value(s) in scan rows {r0}-{r1 - 1}; fix or crop them first")
    pattern_sums(block.sum(axis=(-2, -1), dtype=np.float64), name, require_positive=False)
    return block



class RowView:
    """A 4D scan (float32) computed row block by row block from ``data``: what the streaming readers
    here ask of a scan (``shape``, ``dtype``, ``ndim``, ``len``, ``view[r0:r1]``). Subclasses give
    :meth:`rows`; only row slices are supported."""

    def __init__(self, data: Any):
        self.data = data
        self.shape = shape_of(data)
        self.dtype = np.dtype(np.float32)
        self.ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError(f"a {type(self).__name__} scan is read by row slices only")
        r0, r1, _ = key.indices(self.shape[0])
        return self.rows(r0, r1)

    def rows(self, r0: int, r1: int) -> np.ndarray:
        raise NotImplementedError


def iter_rows(data: Any, block_rows: int | None = None, name: str = "4D-STEM data") -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (r0, r1, float32 block) over the scan rows."""
    shape = shape_of(data)
    n = block_rows or rows_per_block(shape)
    for r0 in range(0, shape[0], n):
        r1 = min(shape[0], r0 + n)
        yield r0, r1, read_rows(data, r0, r1, name)


def mean_pattern_job(data: Any, block_rows: int | None = None):
    """The mean pattern as a job: Progress after every block of scan rows (cancellable between
    blocks, so a panel can run it off the main thread on a multi-GB lazy scan); returns the array."""
    from ..jobs import Progress

    shape = check_4d(data)
    acc = np.zeros(shape[2:], np.float64)
    n = block_rows or rows_per_block(shape)
    total = -(-shape[0] // n)
    for i, (_, r1, block) in enumerate(iter_rows(data, n)):
        acc += block.sum(axis=(0, 1), dtype=np.float64)
        yield Progress(i + 1, total, f"mean pattern: scan row {r1}/{shape[0]}")
    acc /= shape[0] * shape[1]
    if not acc.any():
        raise InputError("every diffraction pattern is zero: nothing to reconstruct (wrong file or dark reference?)")
    if float(acc.min()) < 0 and float(acc.max()) <= 0:
        raise InputError("the diffraction patterns have no positive counts")
    return acc.astype(np.float32)


def mean_pattern(data: Any, block_rows: int | None = None) -> np.ndarray:
    """Mean diffraction pattern (float64 accumulation), streaming over rows; checks NaN and all-zero."""
    from ..jobs import run_job

    return run_job(mean_pattern_job(data, block_rows))


def check_total_counts(block_sum: float) -> None:
    if not block_sum > 0:
        raise InputError("every diffraction pattern is zero: nothing to reconstruct (wrong file or dark reference?)")
