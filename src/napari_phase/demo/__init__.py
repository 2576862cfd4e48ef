"""`napari-phase demo`: every method on the bundled samples (and a simulated flipped LTEM series),
scored against their ground truth with the benchmarks' own scoring code.

Parts (``SECTIONS``): ``ltem`` (SITIE, pixel-wise, SIPRAD on the two LTEM images), ``stem`` (CNN
default and network only, iCoM, SSB on the 4D-STEM sample), ``flowtie`` (FlowTIE, classical TIE,
gradient descent on the triplet sample), ``series`` (TIE on a flipped through-focus series made by
the project's simulator). Writes, per sample, a PNG montage (input, truth, each method's phase) and
the results (LTEM: one .h5 per method; others: one .npz of the phases), plus summary.md /
summary.json: one summary table (each method's headline score against its truth and its wall-clock
runtime) and a table per sample with all its scores.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from ._report import SampleReport, summary_table
from .samples import load_sample

SECTIONS = ("ltem", "stem", "flowtie", "series")
__all__ = ["SECTIONS", "load_sample", "run_demo"]


def _section(name: str):
    from importlib import import_module

    return import_module(f"{__name__}.{name}")


def _save(rep: SampleReport, out: Path) -> None:
    from ..io.writer import save_result
    from ..result import PhaseResult

    plain = {}
    for method, value in rep.arrays.items():
        if isinstance(value, PhaseResult):
            save_result(value, out / f"{rep.name}_{method.replace(' ', '_').replace('+', 'and')}.h5")
        else:
            plain[method] = np.asarray(value, np.float32)
    if plain:
        np.savez_compressed(out / f"{rep.name}_phases.npz", **plain)


def run_demo(out: Path, quick: bool = False, device: str = "auto", sections=SECTIONS) -> dict:
    """Run the demo parts ``sections`` into folder ``out``; returns what summary.json holds."""
    from ..bench import machine_description
    from ..figures import montage

    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"sections: unknown {unknown}; expected some of {list(SECTIONS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    reports: list[SampleReport] = []
    for sec in sections:
        for rep in _section(sec).reports(quick, device):
            png = montage(rep.tiles, out / f"{rep.name}.png", columns=5)
            _save(rep, out)
            reports.append(rep)
            print(f"[demo] {rep.name}: wrote {png}", flush=True)
    total_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    lines = ["# napari-phase demo", "",
             f"{'Quick run' if quick else 'Full run'} (`napari-phase demo{' --quick' if quick else ''}`) on "
             f"{machine_description()}: {total_s:.0f} s wall clock, {cpu_s:.0f} s of CPU time, load average "
             f"{load:.1f} at the start (runtimes grow with other work on the machine). Every score is computed against the sample's "
             "simulated ground truth by the benchmark code (napari_phase.bench); runtimes are wall-clock seconds "
             "of each method call. The headline score of each method:", "",
             *summary_table(reports), ""]
    for rep in reports:
        lines += [f"## {rep.title}", "", *rep.table(), ""]
        if rep.note:
            lines += [rep.note, ""]
        lines += [f"![{rep.name}]({rep.name}.png)", ""]
    summary = {"machine": machine_description(), "platform": f"{platform.machine()}, {platform.system()}",
               "quick": quick, "total_s": total_s, "cpu_s": cpu_s,
               "load_average_at_start": load, "sections": list(sections),
               "samples": {r.name: {"title": r.title, "headline": r.headline[0],
                                    "scores": {row["method"]: row for row in r.rows}} for r in reports}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"[demo] wrote {out}/summary.md, {len(reports)} montages and the results ({total_s:.0f} s)")
    return summary
