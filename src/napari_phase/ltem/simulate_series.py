"""Synthetic through-focus series with a flipped twin, for tests and benchmarks (numpy out).

The specimen (magnetic phase φm, contaminants with amplitude A and electrostatic phase φe, from
:func:`napari_phase.ltem.simulate.simulate`) is imaged at each defocus with the forward model.
The flipped series images the turned-over specimen: φm → −φm, φe and A unchanged, then the
recorded image is mirrored about ``flip_axis`` and rotated by ``flip_rotation_deg`` and shifted by
``flip_shift_px`` (a rigid misplacement, as when the holder is re-inserted). Everything is
computed on a field larger by ``margin_px`` on each side and the centre is cropped, so rotated
and shifted views show specimen at their edges, not padding.

``field``: what lies beyond the field of view. ``"mirror"`` (default, the convention of
:func:`~napari_phase.ltem.simulate.simulate`, whose images are formed with mirror padding): the
specimen is the even (mirrored) extension of the (Y, X) field — consistent with the zero-flux
boundary of the TIE solver. ``"window"``: the field of view is a window of a larger film (the
texture continues); then flux crossing the edges adds a smooth (harmonic) phase that no TIE with
data only inside the window can recover, which limits the *phase* accuracy (not B·t) — the
benchmark reports both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .align import Rigid, warp_rigid
from .forward import Microscope, simulate_image
from .simulate import add_noise, simulate


@dataclass
class SeriesSample:
    """Series (N, Y, X), flipped series (N, Y, X) as recorded, defoci (nm), the truth
    (``phase_m``, ``phase_e``, ``bx``, ``by`` in the unflipped frame) and parameters."""

    series: np.ndarray
    flipped: np.ndarray
    defocus_nm: np.ndarray
    phase_m: np.ndarray
    phase_e: np.ndarray
    amplitude: np.ndarray
    bx: np.ndarray
    by: np.ndarray
    pixel_size_nm: float
    params: dict = field(default_factory=dict)


def image_both_sides(phase_m: np.ndarray, phase_e: np.ndarray, amplitude: np.ndarray, defocus_nm, pixel_size_nm: float,
                     microscope: Microscope, crop, *, flip_axis: str = "x", rigid: Rigid | None = None, drift_px=None,
                     noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(series, flipped) float32 (N, Y, X): the wave A·e^{i(φe ± φm)} (rad, on a canvas) imaged at each
    defocus (nm; ``microscope`` otherwise, mirror padding of a quarter of the view), the flipped side
    (φe − φm) mirrored about ``flip_axis`` and moved by ``rigid``, image k of the series moved by
    ``drift_px[k]`` (cubic), both cropped to ``crop`` (slices of the canvas) and given Gaussian noise
    σ = ``noise`` × each image's mean (seeds seed + 100 + k and seed + 200 + k)."""
    pad = max(crop[0].stop - crop[0].start, crop[1].stop - crop[1].start) // 4
    series, flipped = [], []
    for k, z in enumerate(np.asarray(defocus_nm, dtype=np.float64)):
        mic = Microscope(**{**microscope.as_dict(), "defocus_nm": float(z)})
        img = simulate_image(phase_m + phase_e, amplitude, pixel_size_nm=pixel_size_nm, microscope=mic, pad_px=pad)
        if drift_px is not None and np.any(drift_px[k]):
            img = warp_rigid(img, Rigid(0.0, (float(drift_px[k][0]), float(drift_px[k][1]))), order=3)
        imf = simulate_image(-phase_m + phase_e, amplitude, pixel_size_nm=pixel_size_nm, microscope=mic, pad_px=pad)
        imf = warp_rigid(np.flip(imf, axis=-1 if flip_axis == "x" else -2), rigid or Rigid(), order=3)
        img, imf = img[crop], imf[crop]
        if noise:
            img = add_noise(img, noise, seed=seed + 100 + k)
            imf = add_noise(imf, noise, seed=seed + 200 + k)
        series.append(img)
        flipped.append(imf)
    return np.stack(series).astype(np.float32), np.stack(flipped).astype(np.float32)


def simulate_flipped_series(
    texture: str = "skyrmions",
    shape=(128, 128),
    *,
    pixel_size_nm: float = 5.0,
    defocus_nm=(-4e5, -2e5, 0.0, 2e5, 4e5),
    noise: float = 0.1,
    n_contaminants: int = 6,
    flip_axis: str = "x",
    flip_rotation_deg: float = 3.0,
    flip_shift_px: tuple[float, float] = (4.0, -6.0),
    margin_px: int = 16,
    field: str = "mirror",
    thickness_variation_nm: float = 0.0,
    thickness_variation_scale_nm: float = 150.0,
    film_mean_inner_potential_v: float = 20.0,
    series_drift_px=None,
    seed: int = 0,
    microscope: Microscope | None = None,
    **simulate_kwargs,
) -> SeriesSample:
    """A flipped through-focus series with known φm, φe (see module docstring). ``noise``:
    Gaussian σ as a fraction of each image's mean (independent draws per image).
    ``thickness_variation_nm``: peak-to-peak of a smooth random film-thickness variation Δt(r)
    (Gaussian-filtered white noise, correlation length ``thickness_variation_scale_nm``) that adds
    φe = σ V0 Δt (V0 = ``film_mean_inner_potential_v``) to the contaminants' φe; the film's
    amplitude and its magnetic phase are not changed by it (B0·t stays nominal).
    ``series_drift_px``: one (dy, dx) per image (px): the unflipped image k is moved by it (specimen
    drift during the series, cubic interpolation on the margin field before cropping); the truth
    stays in the undrifted frame, so the drift a registration should report for image k is −drift_k."""
    ny, nx = (int(s) for s in shape)
    m = int(margin_px)
    if field == "window":
        big = simulate(texture, (ny + 2 * m, nx + 2 * m), pixel_size_nm=pixel_size_nm, defocus_nm=0.0,
                       n_contaminants=n_contaminants, seed=seed, **simulate_kwargs)
        phase_m, phase_e, amp = big.phase_m, big.phase_e, big.amplitude
    elif field == "mirror":
        big = simulate(texture, (ny, nx), pixel_size_nm=pixel_size_nm, defocus_nm=0.0,
                       n_contaminants=n_contaminants, seed=seed, **simulate_kwargs)
        phase_m, phase_e, amp = (np.pad(a, m, mode="reflect") for a in (big.phase_m, big.phase_e, big.amplitude))
    else:
        raise ValueError(f"field must be 'mirror' or 'window', got {field!r}")
    mic0 = microscope or big.microscope
    if thickness_variation_nm:
        from scipy import ndimage

        from ..physics.optics import interaction_constant

        rng = np.random.default_rng(seed + 7)
        dt = ndimage.gaussian_filter(rng.standard_normal(phase_m.shape), thickness_variation_scale_nm / pixel_size_nm, mode="wrap")
        dt = (dt - dt.min()) / np.ptp(dt) * float(thickness_variation_nm)
        phase_e = phase_e + (interaction_constant(mic0.voltage_kv, "nm") * film_mean_inner_potential_v * dt).astype(np.float32)
    crop = (slice(m, m + ny), slice(m, m + nx))
    rigid = Rigid(float(flip_rotation_deg), (float(flip_shift_px[0]), float(flip_shift_px[1])))
    zs = np.asarray(defocus_nm, dtype=np.float64)
    drift = np.zeros((zs.size, 2)) if series_drift_px is None else np.asarray(series_drift_px, dtype=np.float64).reshape(-1, 2)
    if drift.shape[0] != zs.size:
        raise ValueError(f"series_drift_px needs one (dy, dx) per image ({zs.size}), got {drift.shape[0]}")
    series, flipped = image_both_sides(phase_m, phase_e, amp, zs, pixel_size_nm, mic0, crop, flip_axis=flip_axis,
                                       rigid=rigid, drift_px=drift, noise=noise, seed=seed)
    pm = phase_m[crop]
    from ..physics.induction import induction_from_phase

    bx, by = induction_from_phase(pm - pm.mean(), pixel_size_nm)
    return SeriesSample(
        series=series,
        flipped=flipped,
        defocus_nm=np.asarray(defocus_nm, dtype=np.float64),
        phase_m=(pm - pm.mean()).astype(np.float32),
        phase_e=(phase_e[crop] - phase_e[crop].mean()).astype(np.float32),
        amplitude=amp[crop],
        bx=bx,
        by=by,
        pixel_size_nm=float(pixel_size_nm),
        params={"texture": texture, "shape": (ny, nx), "noise": float(noise), "n_contaminants": int(n_contaminants),
                "flip_axis": flip_axis, "flip_rotation_deg": float(flip_rotation_deg),
                "flip_shift_px": [float(s) for s in flip_shift_px], "margin_px": m, "field": field, "seed": int(seed),
                "thickness_variation_nm": float(thickness_variation_nm),
                "thickness_variation_scale_nm": float(thickness_variation_scale_nm),
                "film_mean_inner_potential_v": float(film_mean_inner_potential_v), "microscope": mic0.as_dict(),
                "series_drift_px": drift.tolist()},
    )
