"""Issue 17 §2: what the flip registration can rest on, measured (docs/methods.md, align.py).

For each case: the in-focus amplitude contrast of both sides (``align.in_focus_contrast``; the
gate is ``align.MIN_IN_FOCUS_CONTRAST``), the images the default registration used, and the
registration error (°, px) of the default and of each candidate (registered, then refined as the
default would refine it) against the true transform. Cases: the weak-phase bench textures with and without
contaminant particles (128², 5 images, 3°, (4, −6) px) at 0 and 10 % noise; the strong-phase class
(128², identity and 1.5°, (2.5, −2) px); strong-phase wires with weak (A = exp(−0.005 φe)) and no
absorption. About 3 minutes on 2 cores.

    PYTHONPATH=src python scripts/flip_registration_check.py
"""
from __future__ import annotations

import numpy as np
import torch

from napari_phase.bench.ltem_flip_register import expected_flip_transform, registration_error
from napari_phase.ltem import align as A
from napari_phase.ltem.forward import Microscope, simulate_image
from napari_phase.ltem.simulate import add_noise
from napari_phase.ltem.simulate_series import SeriesSample, simulate_flipped_series
from napari_phase.ltem.simulate_strong import strong_phase_case, strong_phase_maps

Z5 = np.arange(-2, 3) * 2e5


def wires_with_absorption(k_per_rad: float, shape=(128, 128), seed=0, noise=0.05) -> SeriesSample:
    """Strong-phase wires of :func:`strong_phase_maps` re-imaged with A = exp(−k·φe)."""
    maps = strong_phase_maps("wires", shape, 2.57, seed)
    m, (ny, nx) = maps["margin_px"], shape
    pm, pe = maps["phase_m"], maps["phase_e"]
    amp = np.exp(-k_per_rad * (pe - pe.min()))
    crop = (slice(m, m + ny), slice(m, m + nx))
    ser, fl = [], []
    for k, z in enumerate((-4e5, 0.0, 4e5)):
        mic = Microscope(voltage_kv=300.0, defocus_nm=z)
        a = simulate_image(pm + pe, amp, pixel_size_nm=2.57, microscope=mic, pad_px=ny // 4)[crop]
        b = np.flip(simulate_image(-pm + pe, amp, pixel_size_nm=2.57, microscope=mic, pad_px=ny // 4), -1)[crop]
        ser.append(add_noise(a, noise, seed=100 + k))
        fl.append(add_noise(b, noise, seed=200 + k))
    z = np.array([-4e5, 0.0, 4e5])
    return SeriesSample(np.stack(ser), np.stack(fl), z, pm[crop], pe[crop], amp[crop], pm[crop], pm[crop], 2.57)


def report(label: str, s, rot: float, shift) -> None:
    truth = expected_flip_transform(rot, shift)
    check = A.check_flip_axis(s.series, s.flipped, "x", align=True)
    cands = check["_named_candidates"]
    info: dict = {}
    _, rigid = A.align_flipped(s.series, s.flipped, "x", candidates=cands, report=info)
    un = A.unmirror(s.flipped, "x").astype(np.float32)
    mid = s.series.shape[0] // 2
    own = {0: (un[mid], s.series[mid]), 1: (un.mean(0), s.series.mean(0))}
    parts = []
    for k, name in enumerate(A.REGISTRATION_IMAGES):
        mov, ref = own.get(k, own[1])  # the magnetic candidates are refined on the mean images, as the default does
        limits = dict(max_turn_deg=A.IN_FOCUS_REFINE_LIMITS[0], max_move_px=A.IN_FOCUS_REFINE_LIMITS[1]) if k == 0 else {}
        c = A.refine_rigid(mov, ref, cands[k], **limits)
        da, ds = registration_error(c.as_dict(), truth)
        parts.append(f"{name} {da:.2f}°/{ds:.2f}px (q {cands[k].quality:.2f})")
    da, ds = registration_error(rigid.as_dict(), truth)
    print(f"{label}: contrast {info['in_focus_contrast']:.4f}, used {info['registered_on']}: {da:.3f}°, {ds:.3f} px | "
          + "; ".join(parts), flush=True)


def main() -> None:
    torch.set_num_threads(2)
    for tex, n_cont in (("skyrmions", 6), ("skyrmions", 0), ("stripes", 0), ("bubbles", 3)):
        for noise in (0.0, 0.1):
            s = simulate_flipped_series(tex, (128, 128), defocus_nm=Z5, noise=noise, n_contaminants=n_cont,
                                        flip_rotation_deg=3.0, flip_shift_px=(4.0, -6.0), seed=0)
            report(f"{tex}, {n_cont} particles, noise {noise:.0%}", s, 3.0, (4.0, -6.0))
    for kind in ("wires", "rods", "particles"):
        for seed in (0, 1):
            for rot, shift in ((0.0, (0.0, 0.0)), (1.5, (2.5, -2.0))):
                s = strong_phase_case(kind, seed, shape=(128, 128), flip_rotation_deg=rot, flip_shift_px=shift)
                report(f"strong {kind} seed {seed}, {rot}°, {shift} px", s, rot, shift)
    for k in (0.005, 0.0):
        report(f"strong wires, A = exp(-{k} φe)", wires_with_absorption(k), 0.0, (0.0, 0.0))


if __name__ == "__main__":
    main()
