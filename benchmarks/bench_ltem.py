"""LTEM benchmark (SIPRAD vs pixel-wise vs SITIE); the code lives in napari_phase.bench.ltem.

    python benchmarks/bench_ltem.py [--quick] [--out docs/benchmarks_ltem.md] [--only grid,contaminants,speed]
"""

from napari_phase.bench.ltem import main

if __name__ == "__main__":
    raise SystemExit(main())
