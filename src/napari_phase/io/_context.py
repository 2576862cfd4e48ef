"""What every format loader gets: the read context (path, lazy policy), the layer limit and the
one-line error text used in :class:`~napari_phase.jobs.InputError` messages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Most layers one file produces (a py4DSTEM file can hold many small arrays).
MAX_LAYERS = 32


@dataclass
class _Ctx:
    path: Path
    threshold: int
    lazy: bool | None

    def want_lazy(self, nbytes: float) -> bool:
        if self.lazy is not None:
            return bool(self.lazy)
        return nbytes > self.threshold


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    if not msg:
        msg = type(exc).__name__
    elif type(exc).__name__ not in ("InputError", "ValueError", "OSError"):
        msg = f"{msg} ({type(exc).__name__})"
    return msg[:300]
