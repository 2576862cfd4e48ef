"""CPU thread count chosen from measured step times, for every iterative torch job. No Qt here.

Why: on a shared CPU (napari drawing, other processes, a laptop's background load) torch's OpenMP
threads wait for each other, and the fastest thread count is not predictable from the image size
(measured on a 2-core machine with two busy processes: SIPRAD 256² took 287.6 s with 2 threads and
22.3 s with 1, the same ~465 steps). So the count is *measured*: :class:`ThreadTuner` runs a few
steps with each candidate count, keeps the fastest (lowest median step time; a candidate slower than ``slowdown`` × the best so far is dropped after
one timed step, or after its warm-up when that is slower than WARMUP_DROP × ``slowdown`` × the best), and re-probes every
``recheck_every`` steps, or sooner when the steps slow down by more than ``slowdown`` × the probed
time (the load changed). The caller's torch thread count is restored by :meth:`ThreadTuner.close`
(or leaving the ``with`` block).

Use::

    with ThreadTuner.for_device(device, num_threads) as tuner:
        for i in range(n):
            with tuner.step():
                ...one optimisation step...
        result.metadata["threads"] = tuner.summary()

Only the time spent *inside* ``tuner.step()`` counts, so keep the job's ``yield`` (where the GUI
may run) outside it. ``tuner.step(work=n)`` times n units of work (e.g. patterns): steps of
different sizes are compared per unit, so a job may probe on short steps (:attr:`ThreadTuner.probing`)
and run long ones. ``remember="key"``: the choice (and its time per unit) is kept for the process
under that key, and the next tuner with the same key starts from it without probing; it still
re-probes on a ``slowdown`` or after ``recheck_every`` steps. :func:`forget` clears it.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from typing import Callable, Iterable

__all__ = ["ThreadTuner", "available_cores", "default_candidates", "forget", "torch_threads"]

#: a candidate whose warm-up step is slower than this × ``slowdown`` × the best timed one is
#: dropped without a timed step (the warm-up also pays the switch, hence the extra factor)
WARMUP_DROP = 2.0

#: key -> (thread count, seconds per unit of work) of the last probe under that key, this process
_REMEMBERED: dict[str, tuple[int, float]] = {}


def forget(key: str | None = None) -> None:
    """Drop the remembered choice under ``key`` (None: every key)."""
    if key is None:
        _REMEMBERED.clear()
    else:
        _REMEMBERED.pop(key, None)


def available_cores() -> int:
    """CPU cores this process may run on (affinity-aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_candidates(cores: int | None = None, most: int = 4) -> tuple[int, ...]:
    """Thread counts worth probing: 1 … min(cores, ``most``)."""
    n = available_cores() if cores is None else max(1, int(cores))
    return tuple(range(1, min(n, int(most)) + 1))


def _torch_get() -> int:
    import torch

    return int(torch.get_num_threads())


def _torch_set(n: int) -> None:
    import torch

    torch.set_num_threads(int(n))


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the ``with`` body with ``n`` torch CPU threads (None: unchanged), then restore the count.

    For the many small element-wise steps around a network (gathers, FFTs of single patches,
    scatter-adds): on a busy CPU each parallel region waits for every thread to be scheduled, so
    such steps ran ~15× slower on 2 threads than on 1 (stitching 256 patches: 0.67 s vs 0.04 s,
    load average 7 on 2 cores)."""
    if n is None:
        yield
        return
    before = _torch_get()
    if before != n:
        _torch_set(n)
    try:
        yield
    finally:
        if _torch_get() != before:
            _torch_set(before)


class ThreadTuner:
    """Pick torch's intra-op CPU thread count from measured step times (see the module doc).

    ``candidates``: thread counts to try (default 1 … min(cores, 4)); one candidate = fixed, no
    probing. ``probe_steps``: timed steps per candidate per probe (after ``warmup_steps`` untimed
    steps that absorb the switch). ``recheck_every``: steps between probes. ``slowdown``: re-probe
    early when the median of the last ``probe_steps`` steps exceeds this × the chosen count's
    probed time. ``enabled=False`` (e.g. a GPU run) makes every call a no-op. ``clock``,
    ``get_threads``, ``set_threads`` are injectable for tests.
    """

    def __init__(
        self,
        candidates: Iterable[int] | None = None,
        probe_steps: int = 3,
        recheck_every: int = 200,
        *,
        warmup_steps: int = 1,
        slowdown: float = 2.0,
        enabled: bool = True,
        remember: str | None = None,
        clock: Callable[[], float] = time.perf_counter,
        get_threads: Callable[[], int] = _torch_get,
        set_threads: Callable[[int], None] = _torch_set,
    ) -> None:
        cands = default_candidates() if candidates is None else tuple(int(c) for c in candidates)
        if not cands or min(cands) < 1:
            raise ValueError(f"thread candidates must be positive integers, got {candidates!r}")
        self.candidates = tuple(dict.fromkeys(cands))  # unique, order kept
        self.probe_steps = max(1, int(probe_steps))
        self.warmup_steps = max(0, int(warmup_steps))
        self.recheck_every = max(1, int(recheck_every))
        self.slowdown = float(slowdown)
        self.enabled = bool(enabled)
        self._clock, self._get, self._set = clock, get_threads, set_threads
        self._original = self._get() if self.enabled else None
        self._closed = False
        self.steps = 0
        self.probes: list[dict] = []  # one entry per completed probe
        self._best_time: float | None = None
        self._recent: list[float] = []
        self._since_probe = 0
        self._plan: list[int] = []  # thread count of each remaining probe step (-k = warm-up of k)
        self._probe_times: dict[int, list[float]] = {}
        self._probe_start = 0
        self.remember = remember if self.enabled and len(self.candidates) > 1 else None
        known = _REMEMBERED.get(self.remember) if self.remember else None
        self.remembered = bool(known and known[0] in self.candidates)
        if not self.enabled:
            self.threads = None
        elif len(self.candidates) == 1:
            self.threads = self.candidates[0]
            self._apply(self.threads)
        elif self.remembered:
            self.threads, self._best_time = known
            self._apply(self.threads)
        else:
            self.threads = self.candidates[0]
            self._start_probe()

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def for_device(cls, device, num_threads: int | None = None, **kwargs) -> "ThreadTuner":
        """Tuner for a torch device: disabled off the CPU; fixed at ``num_threads`` if given."""
        kind = getattr(device, "type", str(device))
        if kind != "cpu":
            return cls(candidates=(1,), enabled=False, **kwargs)
        if num_threads is not None:
            return cls(candidates=(int(num_threads),), **kwargs)
        return cls(**kwargs)

    # ------------------------------------------------------------------ state
    @property
    def probing(self) -> bool:
        return bool(self._plan)

    def _apply(self, n: int) -> None:
        if self.enabled and self._get() != n:
            self._set(n)

    def _start_probe(self) -> None:
        self._plan = []
        for c in self.candidates:
            self._plan += [-c] * self.warmup_steps + [c] * self.probe_steps
        self._probe_times = {c: [] for c in self.candidates}
        self._probe_start = self.steps

    def _finish_probe(self) -> None:
        medians = {c: statistics.median(t) for c, t in self._probe_times.items() if t}
        best = min(medians, key=lambda c: (medians[c], c))  # ties: fewer threads
        self.threads = best
        self._best_time = medians[best]
        self._recent = []
        self._since_probe = 0
        self.probes.append({"at_step": self._probe_start, "step_ms": {str(c): round(1e3 * m, 3) for c, m in medians.items()},
                            "chosen": best})
        if self.remember:
            _REMEMBERED[self.remember] = (best, self._best_time)
        self._apply(best)

    # ------------------------------------------------------------------ the step
    @contextlib.contextmanager
    def step(self, work: float = 1.0):
        """Time one step (the body of the ``with``) of ``work`` units and pick the thread count for
        the next; times are compared per unit of work."""
        if not self.enabled or self._closed:
            yield
            return
        current = self._plan[0] if self._plan else self.threads
        self._apply(abs(current))
        t0 = self._clock()
        yield  # an exception propagates from here: the step is not counted
        dt = (self._clock() - t0) / max(float(work), 1e-12)
        self.steps += 1
        if self._plan:
            self._plan.pop(0)
            done = [statistics.median(t) for c, t in self._probe_times.items() if t and c != abs(current)]
            if current < 0 and done and dt > WARMUP_DROP * self.slowdown * min(done):
                # even its warm-up (the thread switch included) is far slower than the best: dropped
                # before a timed step (on a busy 2-core CPU 2 threads ran 18x slower than 1)
                self._plan = [c for c in self._plan if abs(c) != -current]
                self._probe_times[-current].append(dt)  # its only time: recorded, never the best
            if current > 0:
                self._probe_times[current].append(dt)
                # a candidate far slower than the best one probed so far is dropped at once
                # (under contention one step with too many threads can cost 10× a good one)
                done = [statistics.median(t) for c, t in self._probe_times.items() if t and c != current]
                if done and dt > self.slowdown * min(done):
                    self._plan = [c for c in self._plan if abs(c) != current]
            if not self._plan:
                self._finish_probe()
            return
        if len(self.candidates) == 1:
            return
        self._since_probe += 1
        self._recent = (self._recent + [dt])[-self.probe_steps :]
        slow = (
            self._best_time is not None
            and len(self._recent) == self.probe_steps
            and statistics.median(self._recent) > self.slowdown * self._best_time
        )
        if self._since_probe >= self.recheck_every or slow:
            self._start_probe()

    # ------------------------------------------------------------------ report / restore
    def summary(self) -> dict:
        """JSON-able record for a result's metadata: the chosen count and every probe."""
        if not self.enabled:
            return {"threads": None, "tuned": False}
        return {
            "threads": self.threads,
            "tuned": len(self.candidates) > 1,
            "candidates": list(self.candidates),
            "steps": self.steps,
            "probes": list(self.probes),
            "remembered": self.remembered,
        }

    def close(self) -> None:
        """Give the caller's torch thread count back (idempotent)."""
        if self.enabled and not self._closed and self._original is not None:
            self._apply(self._original)
        self._closed = True

    def __enter__(self) -> "ThreadTuner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
