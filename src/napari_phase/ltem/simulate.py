"""Synthetic Lorentz-TEM data: magnetic textures, contaminants, noise, images (numpy in and out).

Pipeline (DESIGN.md §5): unit magnetisation m(r) → magnetic phase φm by Mansuripur's Fourier
formula with e/ħ (:func:`magnetic_phase`) → optional contaminant particles of thickness t(r) with
amplitude A = exp(−t/ξ) and electrostatic phase φe = σ V0 t (:func:`contaminant_wave`) → image
I = |F⁻¹[F[A e^{i(φm+φe)}] T]|² (:func:`napari_phase.ltem.forward.simulate_image`, mirror padded)
→ noise (:func:`add_noise`). Lengths in nm, defocus in nm (−1 mm = −1e6 nm, negative = under-focus).

Textures (all return float32 unit vectors (mx, my, mz) of shape (ny, nx)):

- :func:`stripe_domains`: ``kind="bloch"`` (default) — perpendicularly magnetised up/down domains
  (mz = ±1) separated by Bloch walls whose in-plane moment lies along the wall and alternates in
  sign from wall to wall (a helical/DMI stripe phase). Only the walls carry in-plane m, so the
  phase is a step-like profile changing by ≈ (e/ħ)·B0·t·π·w at each wall.
  ``kind="inplane"`` — in-plane domains magnetised ±along the stripes, rotating out of plane
  through 180° walls; the phase is a triangle wave of slope (e/ħ)·B0·t (the most LTEM-friendly
  texture, and the one with an exactly known uniform B·t inside the domains).
- :func:`skyrmion_lattice`: hexagonal lattice, θ(r) = 2·atan(exp((R − r)/w)) (core down,
  surroundings up). Bloch skyrmions (m azimuthal in the wall) give strong LTEM contrast; Néel
  skyrmions (m radial) have a curl-free in-plane m and give **no** magnetic phase at normal
  incidence (a tilt would be needed; not modelled) — their phase is ~0 by design.
- :func:`bubble_lattice`: larger Bloch bubbles at random, non-overlapping positions with random
  radii and random chirality (type-I bubbles in a PMA film).

Conventions: axis order (y, x); angles measured from +x towards +y (down the rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..physics.induction import induction_from_phase, phase_from_magnetization
from ..physics.optics import interaction_constant
from .forward import Microscope, simulate_image

# Default feature sizes in nm (converted to pixels by :func:`simulate`).
DEFAULT_PIXEL_SIZE_NM = 5.0
DEFAULTS_NM = {
    "skyrmions": {"spacing_nm": 150.0, "radius_nm": 45.0, "wall_width_nm": 15.0},
    "stripes": {"period_nm": 200.0, "wall_width_nm": 15.0},
    "bubbles": {"radius_nm": (60.0, 110.0), "wall_width_nm": 15.0, "spacing_nm": 260.0},
}
TEXTURES = tuple(DEFAULTS_NM)


def _shape2(shape) -> tuple[int, int]:
    ny, nx = (int(s) for s in shape)
    if ny < 1 or nx < 1:
        raise ValueError(f"shape must be two positive integers, got {shape!r}")
    return ny, nx


def _grid(shape: tuple[int, int], origin_px=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    return y + float(origin_px[0]), x + float(origin_px[1])


def _wall_theta(r: np.ndarray, radius: float, width: float) -> np.ndarray:
    """Polar angle θ(r) = 2 atan(exp((R − r)/w)): ≈ π at the core, π/2 at r = R, → 0 outside."""
    w = max(float(width), 1e-6)
    return 2.0 * np.arctan(np.exp(np.clip((radius - r) / w, -60.0, 60.0)))


def stripe_domains(
    shape,
    period_px: float,
    wall_width_px: float = 3.0,
    angle_deg: float = 0.0,
    *,
    kind: str = "bloch",
    wall_offset_px: float = 0.0,
    origin_px: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stripe domains with two walls per ``period_px``; unit (mx, my, mz), float32.

    The modulation runs along u = x cos a + y sin a (a = ``angle_deg``); walls are lines of
    constant u at u = ``wall_offset_px`` + k·period/2 and lie along t̂ = (−sin a, cos a).
    θ(u) rises by π across each wall (tanh-like profile 2·atan(exp(·/w))).
    ``kind="bloch"``: m = sin θ t̂ + cos θ ẑ (up/down domains, in-plane m only in the walls,
    alternating along ±t̂). ``kind="inplane"``: m = cos θ t̂ + sin θ ẑ (domains along ±t̂).
    ``origin_px``: (y, x) coordinates of pixel [0, 0] (to cut windows out of a larger texture).
    """
    ny, nx = _shape2(shape)
    period = float(period_px)
    if period <= 0:
        raise ValueError("period_px must be positive")
    a = math.radians(angle_deg)
    y, x = _grid((ny, nx), origin_px)
    u = x * math.cos(a) + y * math.sin(a)
    s = np.mod(u - wall_offset_px + period / 4, period)  # walls at s = P/4 and 3P/4
    w = max(float(wall_width_px), 1e-6)
    theta = 2 * np.arctan(np.exp(np.clip((s - period / 4) / w, -60, 60))) + 2 * np.arctan(
        np.exp(np.clip((s - 3 * period / 4) / w, -60, 60))
    )
    # Make θ continuous across the cell boundary s = 0 ≡ P (θ ≈ 0 there ≡ 2π): the tails of the
    # neighbouring cells' walls are added so the profile is smooth for any wall width.
    theta = theta + 2 * np.arctan(np.exp(np.clip((s - 5 * period / 4) / w, -60, 60))) - 2 * np.arctan(
        np.exp(np.clip((-period / 4 - s) / w, -60, 60))
    )
    tx, ty = -math.sin(a), math.cos(a)
    if kind == "bloch":
        inplane, mz = np.sin(theta), np.cos(theta)
    elif kind == "inplane":
        inplane, mz = np.cos(theta), np.sin(theta)
    else:
        raise ValueError(f"kind must be 'bloch' or 'inplane', got {kind!r}")
    return (
        (inplane * tx).astype(np.float32),
        (inplane * ty).astype(np.float32),
        mz.astype(np.float32),
    )


def _texture_from_centres(
    shape: tuple[int, int],
    centres: np.ndarray,
    radii: np.ndarray,
    wall_width_px: float,
    kind: str,
    chirality: np.ndarray,
    origin_px=(0.0, 0.0),
    n_neighbours: int = 12,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Superpose the in-plane moments sin θ(r_i) d̂_i of the ``n_neighbours`` nearest centres
    (d̂ azimuthal for Bloch, radial for Néel); mz = ±sqrt(1 − |m∥|²) with the sign of cos θ of
    the nearest centre. Superposing (rather than cutting cells at the Voronoi boundaries) keeps
    m smooth between particles and keeps a Néel texture curl-free (no phase) up to where the
    in-plane sum had to be clipped to unit length."""
    from scipy.spatial import cKDTree

    if kind not in ("bloch", "neel"):
        raise ValueError(f"kind must be 'bloch' or 'neel', got {kind!r}")
    y, x = _grid(shape, origin_px)
    pts = np.column_stack([y.ravel(), x.ravel()])
    if len(centres) == 0:
        z = np.zeros(shape, np.float32)
        return z, z.copy(), np.ones(shape, np.float32)
    k = int(min(n_neighbours, len(centres)))
    _, idx = cKDTree(centres).query(pts, k=k)
    idx = idx.reshape(len(pts), k)
    mx = np.zeros(len(pts))
    my = np.zeros(len(pts))
    mz_sign = None
    for j in range(k):
        i = idx[:, j]
        dy = pts[:, 0] - centres[i, 0]
        dx = pts[:, 1] - centres[i, 1]
        r = np.hypot(dx, dy)
        theta = _wall_theta(r, radii[i], wall_width_px)
        rr = np.where(r > 0, r, 1.0)
        ux, uy = dx / rr, dy / rr
        c = chirality[i]
        if kind == "bloch":  # azimuthal: (−sin α, cos α)
            dirx, diry = -uy * c, ux * c
        else:  # radial
            dirx, diry = ux * c, uy * c
        st = np.sin(theta)
        mx += st * dirx
        my += st * diry
        if j == 0:
            mz_sign = np.where(np.cos(theta) >= 0, 1.0, -1.0)
    norm = np.hypot(mx, my)
    over = norm > 1.0
    mx[over] /= norm[over]
    my[over] /= norm[over]
    mz = mz_sign * np.sqrt(np.clip(1.0 - mx**2 - my**2, 0.0, 1.0))
    return (
        mx.reshape(shape).astype(np.float32),
        my.reshape(shape).astype(np.float32),
        mz.reshape(shape).astype(np.float32),
    )


def skyrmion_lattice(
    shape,
    spacing_px: float,
    radius_px: float,
    wall_width_px: float = 3.0,
    *,
    kind: str = "bloch",
    chirality: int = 1,
    jitter_px: float = 0.0,
    seed: int = 0,
    origin_px: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hexagonal skyrmion lattice (rows along x, spacing ``spacing_px``), unit (mx, my, mz).

    Profile θ(r) = 2 atan(exp((R − r)/w)) around the nearest lattice site; mz = cos θ (−1 in
    the cores, +1 between). ``kind="bloch"``: in-plane m azimuthal along (−sin α, cos α) for
    ``chirality=+1`` (α the angle from +x towards +y; on screen, with y pointing down, that is
    clockwise); ``"neel"``: radial (outwards for +1) — no phase at normal incidence. ``jitter_px``: Gaussian rms displacement of the sites.
    ``origin_px``: (y, x) coordinates of pixel [0, 0]; the lattice is fixed in those coordinates.
    """
    ny, nx = _shape2(shape)
    a = float(spacing_px)
    if a <= 0 or radius_px <= 0:
        raise ValueError("spacing_px and radius_px must be positive")
    rng = np.random.default_rng(seed)
    row_h = a * math.sqrt(3) / 2
    y0, x0 = float(origin_px[0]), float(origin_px[1])
    j0, i0 = int(math.floor(y0 / row_h)) - 1, int(math.floor(x0 / a)) - 1
    centres = []
    for j in range(j0, j0 + int(math.ceil(ny / row_h)) + 3):
        off = (a / 2) * (j % 2)
        for i in range(i0, i0 + int(math.ceil(nx / a)) + 3):
            centres.append((j * row_h + row_h / 2, i * a + off + a / 4))
    centres = np.asarray(centres, dtype=np.float64)
    if jitter_px:
        centres = centres + rng.normal(0.0, float(jitter_px), centres.shape)
    radii = np.full(len(centres), float(radius_px))
    chir = np.full(len(centres), 1.0 if chirality >= 0 else -1.0)
    return _texture_from_centres((ny, nx), centres, radii, wall_width_px, kind, chir, origin_px)


def bubble_lattice(
    shape,
    radius_px: tuple[float, float] = (12.0, 22.0),
    wall_width_px: float = 3.0,
    *,
    spacing_px: float | None = None,
    kind: str = "bloch",
    random_chirality: bool = True,
    seed: int = 0,
    origin_px: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnetic bubbles at random, non-overlapping positions with random radii in ``radius_px``
    (min, max); Bloch walls with random (``random_chirality``) or uniform (+1) chirality.
    ``spacing_px``: minimum centre distance (default 2.4 × max radius). ``origin_px``: (y, x)
    coordinates of pixel [0, 0] (positions are drawn over the shifted field)."""
    ny, nx = _shape2(shape)
    rmin, rmax = (float(radius_px), float(radius_px)) if np.isscalar(radius_px) else (float(radius_px[0]), float(radius_px[1]))
    if rmin <= 0 or rmax < rmin:
        raise ValueError("radius_px must be positive with min <= max")
    dmin = float(spacing_px) if spacing_px else 2.4 * rmax
    rng = np.random.default_rng(seed)
    n_try = int(20 * (ny + 2 * rmax) * (nx + 2 * rmax) / dmin**2) + 20
    y0, x0 = float(origin_px[0]), float(origin_px[1])
    cand = np.column_stack([rng.uniform(y0 - rmax, y0 + ny + rmax, n_try), rng.uniform(x0 - rmax, x0 + nx + rmax, n_try)])
    cen = np.empty((0, 2))
    for c in cand:  # random sequential addition
        if len(cen) == 0 or np.min(np.sum((cen - c) ** 2, axis=1)) >= dmin**2:
            cen = np.vstack([cen, c])
    radii = rng.uniform(rmin, rmax, len(cen))
    chir = rng.choice([-1.0, 1.0], len(cen)) if random_chirality else np.ones(len(cen))
    return _texture_from_centres((ny, nx), cen, radii, wall_width_px, kind, chir, origin_px)


def magnetic_phase(
    mx: np.ndarray,
    my: np.ndarray,
    pixel_size_nm: float,
    saturation_induction_t: float = 1.0,
    thickness_nm: float = 50.0,
) -> np.ndarray:
    """Magnetic phase (rad, float32) by Mansuripur's formula with e/ħ (periodic FFT, zero mean):
    φ̂(q) = (e/ħ) B0 t · i (qx m̂y − qy m̂x) / (2π |q|²)."""
    return phase_from_magnetization(mx, my, pixel_size_nm, saturation_induction_t, thickness_nm)


def contaminants(
    shape,
    n: int,
    radius_px: tuple[float, float] = (4.0, 10.0),
    *,
    thickness_nm: float = 7.0,
    seed: int = 0,
) -> np.ndarray:
    """Thickness map t(r) in nm (float32) of ``n`` round-ish flat particles.

    Each is an ellipse (axis ratio 0.75–1, random orientation) with radius drawn from
    ``radius_px`` (min, max), uniform thickness ``thickness_nm`` and a one-pixel soft edge;
    overlapping particles do not stack (max). Default 7 nm gives A = exp(−7/10) ≈ 0.50.
    """
    ny, nx = _shape2(shape)
    rng = np.random.default_rng(seed)
    t = np.zeros((ny, nx), np.float64)
    rmin, rmax = (float(radius_px), float(radius_px)) if np.isscalar(radius_px) else (float(radius_px[0]), float(radius_px[1]))
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    for _ in range(int(n)):
        cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
        r = rng.uniform(rmin, rmax)
        ratio = rng.uniform(0.75, 1.0)
        ang = rng.uniform(0, np.pi)
        ca, sa = math.cos(ang), math.sin(ang)
        u = (x - cx) * ca + (y - cy) * sa
        v = (-(x - cx) * sa + (y - cy) * ca) / ratio
        rho = np.hypot(u, v)
        t = np.maximum(t, np.clip(r + 0.5 - rho, 0.0, 1.0) * float(thickness_nm))
    return t.astype(np.float32)


def contaminant_wave(
    thickness_nm: np.ndarray,
    voltage_kv: float = 200.0,
    mean_inner_potential_v: float = 20.0,
    extinction_length_nm: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(amplitude, electrostatic phase) of particles of thickness t (nm):
    A = exp(−t/ξ), φe = σ V0 t (σ in rad/(V·nm) at ``voltage_kv``), both float32."""
    t = np.asarray(thickness_nm, dtype=np.float64)
    sigma = interaction_constant(voltage_kv, "nm")
    amp = np.exp(-t / float(extinction_length_nm))
    phase_e = sigma * float(mean_inner_potential_v) * t
    return amp.astype(np.float32), phase_e.astype(np.float32)


def add_noise(
    image: np.ndarray,
    gaussian_fraction: float = 0.0,
    dose_e_per_px: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Noisy copy of ``image`` (float32).

    Poisson (shot) noise first, if ``dose_e_per_px`` is given: the image is scaled so its mean is
    that many electrons per pixel, drawn, and scaled back (mean preserved). Then additive Gaussian
    noise with standard deviation σ = ``gaussian_fraction`` × mean(image) — the SIPRAD paper's
    definition: 0.5 means "50 %" noise, 3.0 means 300 %. Values may go negative (not clipped).
    """
    img = np.asarray(image, dtype=np.float64)
    rng = np.random.default_rng(seed)
    mean = float(img.mean())
    out = img.copy()
    if dose_e_per_px is not None:
        dose = float(dose_e_per_px)
        if dose <= 0:
            raise ValueError("dose_e_per_px must be positive")
        scale = dose / mean if mean > 0 else 1.0
        out = rng.poisson(np.clip(out * scale, 0, None)).astype(np.float64) / scale
    if gaussian_fraction:
        out = out + rng.normal(0.0, float(gaussian_fraction) * mean, out.shape)
    return out.astype(np.float32)


@dataclass
class LTEMSample:
    """A simulated LTEM image with its ground truth.

    ``image`` (noisy if asked), ``image_clean``; ``phase_m`` magnetic phase (rad), ``phase_e``
    electrostatic phase of contaminants (rad), ``amplitude`` (1 outside particles); ``bx``, ``by``
    the true integrated induction B·t (T·nm) from ``phase_m``; ``mask`` contaminant pixels;
    ``magnetization`` (mx, my, mz); ``microscope`` the imaging parameters (defocus inside).
    """

    image: np.ndarray
    image_clean: np.ndarray
    phase_m: np.ndarray
    phase_e: np.ndarray
    amplitude: np.ndarray
    bx: np.ndarray
    by: np.ndarray
    mask: np.ndarray
    magnetization: tuple[np.ndarray, np.ndarray, np.ndarray]
    pixel_size_nm: float
    microscope: Microscope
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def defocus_nm(self) -> float:
        return self.microscope.defocus_nm

    @property
    def voltage_kv(self) -> float:
        return self.microscope.voltage_kv

    @property
    def phase(self) -> np.ndarray:
        """Total phase φm + φe (rad)."""
        return self.phase_m + self.phase_e


def make_texture(
    texture: str, shape, pixel_size_nm: float, seed: int = 0, origin_px: tuple[float, float] = (0.0, 0.0), **params
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texture by name with feature sizes in nm (defaults in :data:`DEFAULTS_NM`).

    skyrmions: spacing_nm, radius_nm, wall_width_nm, kind ('bloch'/'neel'), chirality, jitter_nm.
    stripes: period_nm, wall_width_nm, angle_deg, kind ('bloch'/'inplane'), wall_offset_nm.
    bubbles: radius_nm (min, max), wall_width_nm, spacing_nm, random_chirality.
    """
    if texture not in DEFAULTS_NM:
        raise ValueError(f"texture must be one of {', '.join(TEXTURES)}, got {texture!r}")
    p = dict(DEFAULTS_NM[texture])
    p.update(params)
    px = float(pixel_size_nm)
    if texture == "skyrmions":
        return skyrmion_lattice(
            shape,
            p["spacing_nm"] / px,
            p["radius_nm"] / px,
            p["wall_width_nm"] / px,
            kind=p.get("kind", "bloch"),
            chirality=p.get("chirality", 1),
            jitter_px=p.get("jitter_nm", 0.0) / px,
            seed=seed,
            origin_px=origin_px,
        )
    if texture == "stripes":
        return stripe_domains(
            shape,
            p["period_nm"] / px,
            p["wall_width_nm"] / px,
            p.get("angle_deg", 0.0),
            kind=p.get("kind", "bloch"),
            wall_offset_px=p.get("wall_offset_nm", 0.0) / px,
            origin_px=origin_px,
        )
    r = p["radius_nm"]
    r_px = (r / px, r / px) if np.isscalar(r) else (r[0] / px, r[1] / px)
    return bubble_lattice(
        shape,
        r_px,
        p["wall_width_nm"] / px,
        spacing_px=p["spacing_nm"] / px if p.get("spacing_nm") else None,
        random_chirality=p.get("random_chirality", True),
        seed=seed,
        origin_px=origin_px,
    )


def simulate(
    texture: str = "skyrmions",
    shape=(256, 256),
    pixel_size_nm: float = DEFAULT_PIXEL_SIZE_NM,
    defocus_nm: float = -1.0e6,
    noise: float = 0.0,
    n_contaminants: int = 0,
    seed: int = 0,
    *,
    saturation_induction_t: float = 1.0,
    thickness_nm: float = 50.0,
    dose_e_per_px: float | None = None,
    contaminant_radius_nm: tuple[float, float] = (20.0, 50.0),
    contaminant_thickness_nm: float = 7.0,
    mean_inner_potential_v: float = 20.0,
    extinction_length_nm: float = 10.0,
    pad_px: int | None = None,
    field_margin_px: int | None = None,
    boundary: str = "mirror",
    microscope: Microscope | None = None,
    texture_params: dict | None = None,
    **microscope_kwargs,
) -> LTEMSample:
    """Simulate one LTEM image with ground truth (see module docstring for the pipeline).

    Defaults: 256² px of 5 nm, Bloch skyrmions (spacing 150 nm, radius 45 nm, wall 15 nm),
    B0 = 1 T, t = 50 nm (B0·t = 50 T·nm; phase range a few rad), 200 kV, Δf = −1 mm, the
    paper's Cs/θc/Δ (:class:`Microscope`). ``noise``: Gaussian σ as a fraction of the mean
    intensity (0.5 = 50 %); ``dose_e_per_px``: optional Poisson noise. ``microscope_kwargs``
    (voltage_kv, cs_mm, divergence_mrad, defocus_spread_nm, ...) build the :class:`Microscope`
    unless ``microscope`` is given (its defocus is then replaced by ``defocus_nm``).
    ``pad_px``: mirror padding for the image formation (default: a quarter of the larger side).
    ``field_margin_px``: the texture and its Mansuripur phase are computed on a field larger by
    this margin on each side (default a quarter of the larger side) and cropped, so the image is a
    window of a larger film rather than one periodic cell (no wrap-around seams in the view).
    ``boundary``: how the image at the window's edge is formed. ``"mirror"`` (default, as before):
    the window's wave is mirror padded by ``pad_px`` (the outside mirrors the inside);
    ``"window"``: the image is formed on the whole larger field (periodic FFT there, the field's own
    seam ``field_margin_px`` away from the view) and cropped — a real micrograph, a window of a
    larger specimen whose edge pixels see the specimen beyond the edge; ``"periodic"``: one
    periodic tile (no margin, no padding), as a simulation made with FFTs.
    """
    ny, nx = _shape2(shape)
    px = float(pixel_size_nm)
    if px <= 0:
        raise ValueError("pixel_size_nm must be positive")
    if microscope is None:
        mic = Microscope(defocus_nm=float(defocus_nm), **microscope_kwargs)
    else:
        if microscope_kwargs:
            raise TypeError("give either microscope= or microscope keyword arguments, not both")
        mic = Microscope(**{**microscope.as_dict(), "defocus_nm": float(defocus_nm)})
    tparams = dict(texture_params or {})
    boundary = str(boundary).strip().lower()
    if boundary not in ("mirror", "window", "periodic"):
        raise ValueError(f"boundary must be 'mirror', 'window' or 'periodic', got {boundary!r}")
    m = max(ny, nx) // 4 if field_margin_px is None else max(0, int(field_margin_px))
    if boundary == "periodic":
        m = 0
    mx, my, mz = make_texture(texture, (ny + 2 * m, nx + 2 * m), px, seed=seed, origin_px=(-m, -m), **tparams)
    big_phase = magnetic_phase(mx, my, px, saturation_induction_t, thickness_nm)
    crop = (slice(m, m + ny), slice(m, m + nx))
    big_phase = big_phase - big_phase[crop].mean()
    phase_m = big_phase[crop]
    mx, my, mz = mx[crop], my[crop], mz[crop]
    if n_contaminants:
        r_nm = contaminant_radius_nm
        t_map = contaminants(
            (ny, nx), n_contaminants, (r_nm[0] / px, r_nm[1] / px), thickness_nm=contaminant_thickness_nm, seed=seed + 1
        )
    else:
        t_map = np.zeros((ny, nx), np.float32)
    amplitude, phase_e = contaminant_wave(t_map, mic.voltage_kv, mean_inner_potential_v, extinction_length_nm)
    mask = t_map > 0.5 * contaminant_thickness_nm
    pad = max(ny, nx) // 4 if pad_px is None else int(pad_px)
    if boundary == "window":  # image of the whole field (periodic FFT there), then the view
        pad = 0
        big_pe = np.pad(phase_e, m)
        big_amp = np.pad(amplitude, m, constant_values=1.0)
        clean = simulate_image(big_phase + big_pe, big_amp, pixel_size_nm=px, microscope=mic, pad_px=0)[crop]
    else:
        if boundary == "periodic":
            pad = 0
        clean = simulate_image(phase_m + phase_e, amplitude, pixel_size_nm=px, microscope=mic, pad_px=pad)
    image = add_noise(clean, noise, dose_e_per_px, seed=seed + 2) if (noise or dose_e_per_px) else clean.copy()
    bx, by = induction_from_phase(phase_m, px)
    params = {
        "texture": texture,
        "texture_params": tparams,
        "shape": (ny, nx),
        "pixel_size_nm": px,
        "defocus_nm": float(defocus_nm),
        "noise": float(noise),
        "noise_definition": "Gaussian sigma = noise x mean(image)",
        "dose_e_per_px": dose_e_per_px,
        "n_contaminants": int(n_contaminants),
        "seed": int(seed),
        "saturation_induction_t": float(saturation_induction_t),
        "thickness_nm": float(thickness_nm),
        "contaminant_radius_nm": tuple(contaminant_radius_nm),
        "contaminant_thickness_nm": float(contaminant_thickness_nm),
        "mean_inner_potential_v": float(mean_inner_potential_v),
        "extinction_length_nm": float(extinction_length_nm),
        "pad_px": pad,
        "field_margin_px": m,
        "boundary": boundary,
        "microscope": mic.as_dict(),
    }
    return LTEMSample(
        image=image,
        image_clean=clean,
        phase_m=phase_m.astype(np.float32),
        phase_e=phase_e,
        amplitude=amplitude,
        bx=bx,
        by=by,
        mask=mask,
        magnetization=(mx, my, mz),
        pixel_size_nm=px,
        microscope=mic,
        params=params,
    )
