"""Issue 17 §2: where φm's gap to two plain TIEs comes from on a strong-phase case (docs/benchmarks.md):
``tie(..., align=True)`` on rods seed 0 (224², the flipped side only mirrored) with each series left
where it is (free boundary, as ``align`` selects), and with the registration within each series on
(zero-flux boundary, then the defaults); prints φm accuracy and the series' shifts. About 4 minutes.

    PYTHONPATH=src python scripts/flip_registration_attribution.py
"""
from unittest import mock

import torch

from napari_phase.bench.ltem_flip_register import CROP_PX, _series_left_in_place
from napari_phase.ltem import series as S
from napari_phase.ltem import tie
from napari_phase.ltem.simulate_strong import strong_phase_case
from napari_phase.physics.metrics import pearson_accuracy


def main() -> None:
    torch.set_num_threads(1)
    s = strong_phase_case("rods", 0)
    kw = dict(pixel_size_nm=s.pixel_size_nm, defocus_nm=s.defocus_nm, voltage_kv=300.0, flipped=s.flipped, flip_axis="x",
              align=True)

    def score(r):
        y0, y1, x0, x1 = r.metadata["crop_yx"]
        return round(pearson_accuracy(r.phase, s.phase_m[y0:y1, x0:x1], CROP_PX), 3)

    with mock.patch.object(S, "_register_series", _series_left_in_place):
        print("each series left where it is, boundary auto (free):", score(tie(s.series, **kw)), flush=True)
    r = tie(s.series, boundary="mirror", **kw)
    print("series registered, zero-flux boundary:", score(r), [t["shift_yx_px"] for t in r.metadata["series_transforms"]], flush=True)
    r = tie(s.series, **kw)
    print("defaults:", score(r), [t["shift_yx_px"] for t in r.metadata["series_transforms"]], flush=True)


if __name__ == "__main__":
    main()
