"""Issue 8 regressions: SIPRAD (defaults, one thread, seed 0) on chosen 256² cells, with the seed it
used. Ad-hoc measurement behind docs/benchmarks_ltem_windows.md "Run 4".

    python scripts/ltem_seed_cells.py CELLS_JSON [OPTIONS_JSON [SEED_ROOMS]]

CELLS_JSON: a list of [texture, defocus_mm, noise, simulate boundary ("mirror" = the former grid,
"window", "periodic"), simulation seed]; OPTIONS_JSON: extra siprad keywords (e.g. {"init": "sitie"}).
One JSON line per cell: accuracy (phase, plane-free phase, B), fit steps, stop reason, the seed
used and, for the pixel-wise seed, its ladder weight and residual (units of σ̂²). SEED_ROOMS: a
comma-separated list of values for ``siprad.SEED_ROOM``; each cell is solved once per value (Run 7).
Also behind Run 6 (``OPTIONS_JSON = {"network_binning": 2}``).
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(cells, options, rooms=(None,)) -> None:
    import importlib

    import torch

    torch.set_num_threads(1)
    from napari_phase.bench.ltem import PIXEL_NM, _scores
    from napari_phase.ltem.simulate import simulate

    sp = importlib.import_module("napari_phase.ltem.siprad")  # the module (the package exports the function)
    for (tex, df, noise, sim_boundary, seed), room in ((c, r) for c in cells for r in rooms):
        if room is not None:
            sp.SEED_ROOM = room
        s = simulate(tex, (256, 256), pixel_size_nm=PIXEL_NM, defocus_nm=df * 1e6, noise=noise, seed=seed, boundary=sim_boundary)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        r = sp.siprad(s.image, pixel_size_nm=PIXEL_NM, defocus_nm=df * 1e6, device="cpu", num_threads=1, seed=0, **options)
        sc, m = _scores(r, s), r.metadata
        res = m.get("seed_data_residual")
        print(json.dumps(dict(tex=tex, df=df, noise=noise, simb=sim_boundary, seed=seed, options=options, room=sp.SEED_ROOM,
                              t=round(time.perf_counter() - t0, 1), load_average=round(load, 1), its=m["iterations_run"],
                              pre=m["pretrain_iterations_run"],
                              stop=m["stop_reason"], init=m["init_used"], boundary=m["parameters"]["boundary"],
                              seed_w=m.get("seed_smoothness"), seed_res=None if res is None else round(res, 3),
                              phase=round(sc["phase_acc"], 4), pf=round(sc["phase_acc_plane_free"], 4), b=round(sc["b_acc"], 4))),
              flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(json.loads(sys.argv[1]), json.loads(sys.argv[2]) if len(sys.argv) > 2 else {},
         tuple(float(r) for r in sys.argv[3].split(",")) if len(sys.argv) > 3 else (None,))
