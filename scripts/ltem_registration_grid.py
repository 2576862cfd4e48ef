"""Issue 17 §1: series registration on the full grid — every bench texture, with and without
particles + thickness variation, mirror-tile and window fields, undrifted and with known drifts of
1, 3 and 5 px per image in random directions (the in-focus image not drifted).

    PYTHONPATH=src python scripts/ltem_registration_grid.py [seed]     (about 4 min on 2 busy cores)

Per case: the largest error of the recovered shifts (px; undrifted: the largest shift applied),
split into the part common to all defocused images (what only the in-focus image can fix), the
part proportional to the defocus (s_k = z_k·w, an exact symmetry of the images: a uniform
deflection moves the image at z by z·w; quoted at the largest |z|) and the rest; the registration's
note; for undrifted cases also the total-phase accuracy with align=False / True (free boundary).
"""
import sys

import numpy as np
import torch

from napari_phase.ltem import tie
from napari_phase.ltem.simulate_series import simulate_flipped_series
from napari_phase.physics.metrics import pearson_accuracy

torch.set_num_threads(1)
SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 0
Z = np.array([-4e5, -2e5, 0, 2e5, 4e5])
ZO = Z / np.abs(Z).max()
OUTER = [0, 1, 3, 4]


def drifts(size_px: float, rng) -> np.ndarray:
    ang = rng.uniform(0, 2 * np.pi, 5)
    d = size_px * np.stack([np.sin(ang), np.cos(ang)], 1)
    d[2] = 0.0
    return d


def split(err: np.ndarray):
    """(common (2,), defocus-proportional w at the largest |z| (2,), largest rest) of errors (5, 2)."""
    common = err[OUTER].mean(axis=0)
    w = (ZO[OUTER, None] * err[OUTER]).sum(axis=0) / (ZO[OUTER] ** 2).sum()
    rest = err - common - ZO[:, None] * w
    rest[2] = 0.0
    return common, w, float(np.abs(rest).max())


def accuracy(r, truth):
    y0, y1, x0, x1 = r.metadata["crop_yx"]
    return pearson_accuracy(r.phase, truth[y0:y1, x0:x1], 8)


rng = np.random.default_rng(SEED)
print(f"seed {SEED}")
print("| texture | particles + thickness | field | drift (px) | largest error (px) | common | ∝ defocus | rest | acc. False / True | note |")
print("|---|---|---|---|---|---|---|---|---|---|")
worst = {}
for tex in ("stripes", "skyrmions", "bubbles"):
    for nc, th in ((2, 30.0), (0, 0.0)):
        for field in ("window", "mirror"):
            for size in (0.0, 1.0, 3.0, 5.0):
                d = drifts(size, rng) if size else None
                s = simulate_flipped_series(tex, (128, 128), defocus_nm=Z, noise=0.1, n_contaminants=nc, thickness_variation_nm=th,
                                            field=field, flip_rotation_deg=0, flip_shift_px=(0, 0), seed=SEED, series_drift_px=d)
                r = tie(s.series, pixel_size_nm=5.0, defocus_nm=Z, align=True, boundary="free")
                got = np.array([t["shift_yx_px"] for t in r.metadata["series_transforms"]])
                err = got if d is None else got + d
                common, w, rest = split(err)
                biggest = float(np.hypot(*err.T).max())
                worst[size] = max(worst.get(size, 0.0), biggest)
                acc = ""
                if d is None:
                    plain = tie(s.series, pixel_size_nm=5.0, defocus_nm=Z, align=False, boundary="free")
                    truth = s.phase_m + s.phase_e
                    acc = f"{accuracy(plain, truth):.3f} / {accuracy(r, truth):.3f}"
                info = r.metadata["series_registration"]
                note = "; ".join(str(info[k]) for k in ("fallback", "in_focus", "start") if info.get(k))
                print(f"| {tex} | {'yes' if nc else 'no'} | {field} | {size:g} | {biggest:.2f} | {np.hypot(*common):.2f} | "
                      f"{np.hypot(*w):.2f} | {rest:.2f} | {acc} | {note} |", flush=True)
print("largest error per drift size:", {k: round(v, 2) for k, v in worst.items()})
