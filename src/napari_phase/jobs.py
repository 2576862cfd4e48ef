"""One job mechanism for every method: progress, cancellation, device choice. No Qt here.

A *job* is a generator that yields :class:`Progress` items ``(step, total, message, partial)``
between steps and returns a :class:`~napari_phase.result.PhaseResult`. Cancellation is
cooperative: the driver throws :class:`JobCancelled` into the generator at a yield; a method that
can return its best iterate so far catches it and returns a result with
``metadata["cancelled"] = True``; one that cannot lets it propagate.

The CLI drives jobs with :func:`run_job` (tqdm bar); panels drive the same generators through
:func:`forward_job` inside napari's ``thread_worker`` (see ``widgets/_runner.py``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterator

from .result import PhaseResult

Job = Generator["Progress", None, PhaseResult]


class JobCancelled(Exception):
    """Raised inside a job when the user asked it to stop."""


class InputError(ValueError):
    """Bad input from the user: the message is shown as is (panel notification, CLI line)."""


@dataclass
class Progress:
    """One progress report: ``step`` of ``total`` done, a short message, optionally a partial
    result (e.g. the current phase) for live display."""

    step: int
    total: int
    message: str = ""
    partial: PhaseResult | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0


class CancelToken:
    """Thread-safe flag the UI sets and the job driver reads."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def reset(self) -> None:
        self._event.clear()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def __bool__(self) -> bool:  # `if token:` reads as "cancelled?"
        return self.cancelled


def forward_job(job: Job, cancel: CancelToken | None = None) -> Job:
    """Re-yield the job's progress; once ``cancel`` is set, throw JobCancelled into it.

    Returns whatever the job returns (its result, possibly marked cancelled).
    """
    try:
        item = next(job)
        while True:
            yield item
            if cancel is not None and cancel.cancelled:
                item = job.throw(JobCancelled("cancelled by user"))
            else:
                item = next(job)
    except StopIteration as stop:
        check_finite(stop.value)
        return stop.value


def check_finite(result: Any) -> None:
    """No result leaves a method with NaN/inf in it unnoticed: raise InputError naming the array
    and the method (every driver, CLI and panel alike, returns through :func:`forward_job`)."""
    import numpy as np

    arrays = getattr(result, "arrays", None)
    if not isinstance(result, PhaseResult) or not isinstance(arrays, dict):
        return
    for key, arr in arrays.items():
        a = np.asarray(arr)
        if a.dtype.kind in "fc" and a.size and not np.isfinite(a).all():
            bad = int((~np.isfinite(a)).sum())
            method = (result.metadata or {}).get("method", "the method")
            raise InputError(f"{method} produced {bad} NaN/inf value(s) in {key!r}: check the input and its calibration")


def run_job(
    job: Job,
    *,
    on_progress: Callable[[Progress], Any] | None = None,
    cancel: CancelToken | None = None,
) -> PhaseResult:
    """Drive a job to its end synchronously and return its result."""
    gen = forward_job(job, cancel)
    try:
        while True:
            item = next(gen)
            if on_progress is not None:
                on_progress(item)
    except StopIteration as stop:
        return stop.value


def run_with_tqdm(job: Job, description: str = "", *, disable: bool = False) -> PhaseResult:
    """Drive a job with a tqdm progress bar on stderr (the CLI's way); Ctrl-C cancels cleanly."""
    from tqdm import tqdm

    cancel = CancelToken()
    bar = None  # created at the first progress report, so input errors print no empty bar

    def show(p: Progress) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=p.total or 1, desc=description, disable=disable, leave=False, dynamic_ncols=True)
        if bar.total != p.total and p.total:
            bar.total = p.total
        bar.n = p.step
        if p.message:
            bar.set_postfix_str(p.message, refresh=False)
        bar.refresh()

    last: list[PhaseResult] = []
    gen = forward_job(job, cancel)
    try:
        with interrupt_cancels(cancel):
            while True:
                item = next(gen)
                if item.partial is not None:
                    last[:] = [item.partial]
                show(item)
    except StopIteration as stop:
        return stop.value
    except KeyboardInterrupt:
        if not last:  # nothing computed that could be kept
            raise
        kept = last[0]  # stopped mid-step: keep the latest partial result the job showed
        kept.metadata.update(cancelled=True, interrupted="stopped mid-step: the latest preview is kept")
        check_finite(kept)
        return kept
    finally:
        if bar is not None:
            bar.close()


#: seconds a job gets after Ctrl-C to stop at its next step before it is interrupted where it is
INTERRUPT_GRACE_S = 4.0


@contextlib.contextmanager
def interrupt_cancels(cancel: CancelToken, grace_s: float | None = None):
    """While active (main thread only), the first Ctrl-C (SIGINT) sets ``cancel`` (the job stops at
    its next step and returns its best result, as Cancel does in a panel); if it has not stopped
    ``grace_s`` later, or at a second Ctrl-C, KeyboardInterrupt is raised where it runs."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    grace = INTERRUPT_GRACE_S if grace_s is None else grace_s
    done = threading.Event()

    def watchdog() -> None:
        if not done.wait(grace):
            import _thread

            _thread.interrupt_main()

    def handler(signum, frame) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        threading.Thread(target=watchdog, daemon=True).start()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        done.set()
        signal.signal(signal.SIGINT, previous)


class Stopwatch:
    """Wall-clock timer for the ``runtime_s`` metadata field."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start


# --------------------------------------------------------------------------- device choice

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """Devices this machine can run on, best first (always ends with 'cpu')."""
    import torch

    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def resolve_device(device: str | Any = "auto"):
    """'auto' -> CUDA, then MPS, then CPU; an explicit name is checked and returned as torch.device."""
    import torch

    if isinstance(device, torch.device):
        return device
    name = str(device or "auto").lower()
    if name == "auto":
        return torch.device(available_devices()[0])
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but no CUDA GPU is available; use 'auto' or 'cpu'")
    if name == "mps" and "mps" not in available_devices():
        raise InputError("device 'mps' was requested but Apple MPS is not available; use 'auto' or 'cpu'")
    if name.split(":")[0] not in DEVICE_CHOICES:
        raise InputError(f"unknown device {device!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    return torch.device(name)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS out-of-memory errors (torch raises several kinds)."""
    import torch

    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def with_cpu_fallback(make_job: Callable[[Any], Job], device: str | Any = "auto") -> Job:
    """Run ``make_job(torch_device)``; on a GPU out-of-memory error, say so and rerun on the CPU."""
    import torch

    dev = resolve_device(device)
    try:
        return (yield from make_job(dev))
    except Exception as exc:  # noqa: BLE001 - filtered just below
        if dev.type == "cpu" or not is_out_of_memory(exc):
            raise
    with contextlib.suppress(Exception):
        torch.cuda.empty_cache()
    yield Progress(0, 1, f"{dev.type.upper()} out of memory: retrying on the CPU (slower)")
    result = yield from make_job(torch.device("cpu"))
    result.metadata["device_fallback"] = f"{dev.type} out of memory, ran on cpu"
    return result


def iterate(job: Job) -> Iterator[Progress]:
    """Plain iteration over a job's progress (the result is lost; for tests and previews)."""
    yield from forward_job(job)
