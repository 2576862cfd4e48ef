"""One sample's part of the demo: its methods' scores against the truth, runtimes and montage tiles,
and the markdown that shows them."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class SampleReport:
    """``rows``: one dict per method ({"method", "runtime_s", score keys...}); ``columns``: (key,
    header, decimals) of the sample's table; ``headline``: (key, what it is) for the summary table;
    ``tiles``: (title, image) of the montage; ``arrays``: what is saved beside it (name -> array)."""

    name: str
    title: str
    columns: list[tuple[str, str, int]]
    headline: tuple[str, str]
    rows: list[dict] = field(default_factory=list)
    tiles: list[tuple[str, np.ndarray]] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    note: str = ""

    def add(self, method: str, runtime_s: float, scores: dict) -> dict:
        row = {"method": method, "runtime_s": float(runtime_s), **{k: float(v) for k, v in scores.items()}}
        self.rows.append(row)
        print(f"[demo] {self.name}: {method}: " + ", ".join(f"{h} {_fmt(row.get(k), d)}" for k, h, d in self.columns)
              + f", {row['runtime_s']:.1f} s", flush=True)
        return row

    def table(self) -> list[str]:
        head = ["method", *(h for _, h, _ in self.columns), "runtime (s)"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = [r["method"], *(_fmt(r.get(k), d) for k, _, d in self.columns), f"{r['runtime_s']:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
        return lines


def timed(fn, *args, **kwargs):
    """(fn's result, wall seconds)."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def _fmt(v, decimals: int) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{decimals}f}"


def summary_table(reports: list[SampleReport]) -> list[str]:
    """One row per (sample, method): its headline score against the truth, and runtime."""
    lines = ["| sample | method | score against the truth | metric | runtime (s) |", "|---|---|---|---|---|"]
    for rep in reports:
        key, what = rep.headline
        for r in rep.rows:
            lines.append(f"| {rep.name} | {r['method']} | {_fmt(r.get(key), 3)} | {what} | {r['runtime_s']:.1f} |")
    return lines
