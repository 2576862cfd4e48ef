"""Strong-phase specimens (magnetic nanowires, rods, particles) imaged as a flipped through-focus
series, for tests and benchmarks (numpy out; issue 17 §2).

The project's other simulations are thin films with weak contaminants (φe ≈ 1 rad). A measured
specimen — two magnetic nanowires seen by electron holography — has tens of radians across the
field, absorption that follows the electrostatic phase, and a magnetisation that is not uniform.
This module builds that class from solid bodies:

* every body is a spherocylinder (a segment P0–P1 of radius r, round ends: a wire, a rod, or a
  sphere when P0 = P1); projected thickness t(r) = 2√(r² − d²), d the distance to the segment;
  bodies that overlap in projection add their thicknesses;
* one material per case: φe = σ·V0·t (σ at the voltage, V0 the mean inner potential) and
  A = exp(−t/ξ) (ξ an absorption length), so −ln A = φe/k with k = σV0ξ;
* magnetisation in the plane, unit vector m(r) inside each body, B0 its saturation induction; the
  phase depends only on the projected induction B0·Σ t_body·m_body, φm by Mansuripur's formula
  (:func:`napari_phase.physics.induction.phase_from_induction`, exact for in-plane m);
* uneven magnetisation: wires and rods carry a head-to-head domain wall at a random place and a
  tilt of m off the axis that varies along them; particles carry a vortex (the core's
  out-of-plane part adds no phase) or, one in three, a single domain of random direction;
* everything is computed on a canvas larger by half the view on each side (wires end there, not
  in the view; the magnetic phase on a further zero-padded canvas, so the periodic FFT does not
  wrap stray field back) and the images are formed on the whole canvas and cropped: the view is a
  window of a larger specimen;
* the edges of the bodies are smoothed by a Gaussian of ``edge_smoothing_px`` (a holographic phase
  is band-limited too; an unsmoothed 100 nm wire at 2.57 nm px changes phase by more than π in
  one pixel and aliases);
* the flipped series images φe − φm with the same A, mirrored about ``flip_axis`` and then
  rotated/shifted by (``flip_rotation_deg``, ``flip_shift_px``) — by default not at all (the
  exact geometry of issue 17's measured case).

The defaults are the issue's measured case: 224² px of 2.57 nm, 300 kV, −0.4, 0, +0.4 mm per side,
5 % Gaussian noise (σ = 0.05 × each image's mean, independent draws). The electrostatic phase
spans 5–30 rad across the view (V0 is rescaled into that range when the drawn bodies fall
outside it). Returns a :class:`~napari_phase.ltem.simulate_series.SeriesSample`; ``params``
lists the bodies, materials and the range of φe.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..physics.induction import induction_from_phase, phase_from_induction
from ..physics.optics import interaction_constant
from .align import Rigid
from .forward import Microscope
from .simulate_series import SeriesSample, image_both_sides

#: the kinds of :func:`strong_phase_case` (the bench runs each over a few seeds)
STRONG_PHASE_CASES = ("wires", "rods", "particles")
#: range of φe across the view (rad, max − min) that every case is brought into
PHASE_E_RANGE_RAD = (5.0, 30.0)
#: the issue's measured case
DEFAULT_PIXEL_NM = 2.57
DEFAULT_DEFOCUS_NM = (-4e5, 0.0, 4e5)


def _segment_distance(y, x, p0, p1):
    """(distance to the segment p0–p1, position along it in [0, 1]) for pixel grids y, x (px)."""
    d = np.subtract(p1, p0, dtype=np.float64)
    ll = float(d @ d)
    s = np.zeros_like(y) if ll == 0 else np.clip(((y - p0[0]) * d[0] + (x - p0[1]) * d[1]) / ll, 0.0, 1.0)
    return np.hypot(y - (p0[0] + s * d[0]), x - (p0[1] + s * d[1])), s


def _bodies(kind: str, canvas: tuple[int, int], view: tuple[int, int], px: float, rng) -> list[dict]:
    """Bodies (px units on the canvas): p0, p1, radius, and how each is magnetised."""
    cy, cx = canvas[0] / 2.0, canvas[1] / 2.0
    half = 0.5 * min(view)
    out = []
    if kind == "wires":  # two long wires across the view, diameters 50–120 nm
        for _ in range(2):
            ang = rng.uniform(0, np.pi)
            off = rng.uniform(-0.45, 0.45) * half * 2
            c = np.array([cy, cx]) + off * np.array([np.cos(ang), -np.sin(ang)])
            u = np.array([np.sin(ang), np.cos(ang)])
            length = rng.uniform(0.75, 0.95) * min(canvas)
            out.append({"p0": c - u * length / 2, "p1": c + u * length / 2, "radius": rng.uniform(25.0, 60.0) / px,
                        "magnetisation": "axial, domain wall", "wall_at": rng.uniform(0.3, 0.7),
                        "tilt_rad": rng.uniform(0.2, 0.6), "tilt_periods": rng.uniform(0.5, 2.0)})
    elif kind == "rods":  # 3–5 rods 150–300 nm long, diameters 50–100 nm, inside the view
        for _ in range(rng.integers(3, 6)):
            ang = rng.uniform(0, np.pi)
            u = np.array([np.sin(ang), np.cos(ang)])
            length = rng.uniform(100.0, 250.0) / px
            c = np.array([cy, cx]) + rng.uniform(-0.6, 0.6, 2) * half
            out.append({"p0": c - u * length / 2, "p1": c + u * length / 2, "radius": rng.uniform(25.0, 50.0) / px,
                        "magnetisation": "axial, domain wall", "wall_at": rng.uniform(0.25, 0.75),
                        "tilt_rad": rng.uniform(0.2, 0.6), "tilt_periods": rng.uniform(0.5, 1.5)})
    elif kind == "particles":  # 4–7 spheres of 50–150 nm diameter
        for i in range(rng.integers(4, 8)):
            c = np.array([cy, cx]) + rng.uniform(-0.8, 0.8, 2) * half
            out.append({"p0": c, "p1": c, "radius": rng.uniform(25.0, 75.0) / px,
                        "magnetisation": "single domain" if i % 3 == 2 else "vortex",
                        "direction_rad": rng.uniform(0, 2 * np.pi), "chirality": float(rng.choice([-1, 1]))})
    else:
        raise ValueError(f"kind must be one of {STRONG_PHASE_CASES}, got {kind!r}")
    return out


def _body_maps(body: dict, y, x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thickness in px, mx, my) of one body: t = 2√(r² − d²) inside, m a unit in-plane vector."""
    p0, p1, r = np.asarray(body["p0"]), np.asarray(body["p1"]), float(body["radius"])
    d, s = _segment_distance(y, x, p0, p1)
    t = 2.0 * np.sqrt(np.clip(r * r - d * d, 0.0, None))
    if body["magnetisation"] == "vortex":
        ry, rx = y - p0[0], x - p0[1]
        rho = np.hypot(ry, rx)
        core = 1.0 - np.exp(-((rho / (0.15 * r)) ** 2))  # the core turns out of the plane
        ch = body["chirality"]
        safe = np.where(rho > 0, rho, 1.0)
        return t, ch * -ry / safe * core, ch * rx / safe * core
    if body["magnetisation"] == "single domain":
        a = body["direction_rad"]
        return t, np.full_like(t, np.cos(a)), np.full_like(t, np.sin(a))
    u = np.subtract(p1, p0, dtype=np.float64)
    u /= np.hypot(*u)
    length_px = float(np.hypot(*np.subtract(p1, p0)))
    wall = np.tanh((s - body["wall_at"]) * length_px / (2.0 * r))  # head-to-head wall ~ r wide
    theta = body["tilt_rad"] * np.sin(2 * np.pi * body["tilt_periods"] * s)
    along = -wall  # +u before the wall, −u after
    my = along * (u[0] * np.cos(theta) - u[1] * np.sin(theta))
    mx = along * (u[1] * np.cos(theta) + u[0] * np.sin(theta))
    return t, mx, my


def strong_phase_maps(kind: str, view_shape, pixel_size_nm: float, seed: int, voltage_kv: float = 300.0,
                      edge_smoothing_px: float = 2.0) -> dict:
    """Canvas maps (rad, float64) of one strong-phase specimen: ``phase_m``, ``phase_e``,
    ``amplitude``, the canvas ``margin_px`` around the view and ``params`` (module docstring)."""
    ny, nx = (int(v) for v in view_shape)
    px = float(pixel_size_nm)
    rng = np.random.default_rng(seed)
    m = max(ny, nx) // 2
    canvas = (ny + 2 * m, nx + 2 * m)
    y, x = np.mgrid[0 : canvas[0], 0 : canvas[1]].astype(np.float64)
    bodies = _bodies(kind, canvas, (ny, nx), px, rng)
    t = np.zeros(canvas)
    mxt, myt = np.zeros(canvas), np.zeros(canvas)
    for b in bodies:
        tb, mx, my = _body_maps(b, y, x)
        t += tb
        mxt += tb * mx
        myt += tb * my
    if edge_smoothing_px:
        t, mxt, myt = (ndimage.gaussian_filter(a, float(edge_smoothing_px)) for a in (t, mxt, myt))
    t_nm = t * px
    sigma = interaction_constant(voltage_kv, "nm")
    v0 = rng.uniform(15.0, 25.0)
    view = (slice(m, m + ny), slice(m, m + nx))
    span = sigma * v0 * float(np.ptp(t_nm[view]))
    lo, hi = PHASE_E_RANGE_RAD
    if span > 0 and not lo <= span <= hi:
        v0 *= float(np.clip(span, lo, hi)) / span
    xi = rng.uniform(100.0, 250.0)
    b0 = rng.uniform(0.4, 1.2)
    phase_e = sigma * v0 * t_nm
    amplitude = np.exp(-t_nm / xi)
    big = np.pad(np.stack([mxt, myt]) * px * b0, ((0, 0), (m, m), (m, m)))  # B0·t·m (T·nm), zero beyond
    phase_m = phase_from_induction(big[0], big[1], px)[m:-m, m:-m].astype(np.float64)
    params = {"kind": kind, "seed": int(seed), "mean_inner_potential_v": float(v0), "absorption_length_nm": float(xi),
              "saturation_induction_t": float(b0), "k_rad": float(sigma * v0 * xi),
              "phase_e_range_rad": float(np.ptp(phase_e[view])), "phase_m_range_rad": float(np.ptp(phase_m[view])),
              "edge_smoothing_px": float(edge_smoothing_px),
              "bodies": [{k: (np.asarray(v) * 1.0).tolist() if k in ("p0", "p1") else v for k, v in b.items()} for b in bodies]}
    return {"phase_m": phase_m, "phase_e": phase_e, "amplitude": amplitude, "margin_px": m, "params": params}


def strong_phase_case(
    kind: str = "wires",
    seed: int = 0,
    *,
    shape=(224, 224),
    pixel_size_nm: float = DEFAULT_PIXEL_NM,
    defocus_nm=DEFAULT_DEFOCUS_NM,
    noise: float = 0.05,
    voltage_kv: float = 300.0,
    flip_axis: str = "x",
    flip_rotation_deg: float = 0.0,
    flip_shift_px: tuple[float, float] = (0.0, 0.0),
    edge_smoothing_px: float = 2.0,
    microscope: Microscope | None = None,
) -> SeriesSample:
    """A flipped through-focus series of a strong-phase specimen with its truth (module docstring).
    ``kind``: one of :data:`STRONG_PHASE_CASES`; ``noise``: Gaussian σ as a fraction of each image's
    mean; ``microscope``: imaging parameters (its voltage and defocus are replaced)."""
    if kind not in STRONG_PHASE_CASES:
        raise ValueError(f"kind must be one of {STRONG_PHASE_CASES}, got {kind!r}")
    if flip_axis not in ("x", "y"):
        raise ValueError(f"flip_axis must be 'x' or 'y', got {flip_axis!r}")
    ny, nx = (int(v) for v in shape)
    maps = strong_phase_maps(kind, (ny, nx), pixel_size_nm, seed, voltage_kv, edge_smoothing_px)
    m = maps["margin_px"]
    pm, pe, amp = maps["phase_m"], maps["phase_e"], maps["amplitude"]
    mic0 = Microscope(**{**(microscope or Microscope()).as_dict(), "voltage_kv": float(voltage_kv)})
    crop = (slice(m, m + ny), slice(m, m + nx))
    rigid = Rigid(float(flip_rotation_deg), (float(flip_shift_px[0]), float(flip_shift_px[1])))
    zs = np.asarray(defocus_nm, dtype=np.float64)
    series, flipped = image_both_sides(pm, pe, amp, zs, pixel_size_nm, mic0, crop, flip_axis=flip_axis, rigid=rigid,
                                       noise=noise, seed=seed)
    tm, te = pm[crop], pe[crop]
    tm, te = tm - tm.mean(), te - te.mean()
    bx, by = induction_from_phase(tm, pixel_size_nm)
    return SeriesSample(
        series=series,
        flipped=flipped,
        defocus_nm=zs,
        phase_m=tm.astype(np.float32),
        phase_e=te.astype(np.float32),
        amplitude=amp[crop].astype(np.float32),
        bx=bx,
        by=by,
        pixel_size_nm=float(pixel_size_nm),
        params={**maps["params"], "shape": (ny, nx), "noise": float(noise), "flip_axis": flip_axis,
                "flip_rotation_deg": float(flip_rotation_deg), "flip_shift_px": [float(s) for s in flip_shift_px],
                "margin_px": m, "field": "window", "microscope": mic0.as_dict(), "defocus_nm": zs.tolist()},
    )
