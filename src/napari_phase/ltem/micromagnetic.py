"""LTEM images of a micromagnetic state (OOMMF / mumax3 magnetisation), with ground truth.

Pipeline: M (A/m, simulator frame) → optional specimen tilt → projection along the beam,
B·t = μ0 Σ M⊥ Δs (T·nm; the in-plane components seen by the beam, summed over the cells along
it, Δs = cell length / (cos α cos β) for tilts α, β) → embedding in a larger field (vacuum or the
film continuing) → magnetic phase by Mansuripur's formula with e/ħ
(:func:`napari_phase.physics.phase_from_induction`) → image with the forward model
(:func:`napari_phase.ltem.forward.simulate_image`) → noise. Returns an
:class:`~napari_phase.ltem.simulate.LTEMSample` like :func:`napari_phase.ltem.simulate.simulate`.

Orientation (decided here, pinned by tests). OOMMF and mumax3 use right-handed x, y, z and plot
the film with +x right, +y up, seen from +z. The electron beam travels along −z (it enters the
film's +z face, as a film lying on the holder with its top side towards the gun).
The Aharonov–Bohm phase of an electron moving along −z is φ = +(e/ħ)∫A_z dz, so
∂φ/∂y = (e/ħ) Bx·t and ∂φ/∂x = −(e/ħ) By·t. The project's convention
(physics/induction.py: Bx·t = (ħ/e) ∂φ/∂row, By·t = −(ħ/e) ∂φ/∂col) is exactly that with
**image rows = +y and columns = +x**: cell (y_j, x_i) is pixel [j, i] and (Bx, By) keep their
signs. napari draws row 0 at the top, so the image is the film as seen from below (from the
detector, looking back along the beam) — the simulators' top view mirrored up-down. Check: a
Bloch skyrmion whose in-plane m circulates counter-clockwise seen from +z has its phase maximum
at the core, so its core is dark under-focus (Δf < 0) and bright over-focus.

``thickness_axis`` "x" or "y" images a cross-section: the beam runs along −axis and the image
axes are the next two in cyclic order (axis x: columns = y, rows = z; axis y: columns = z,
rows = x), which keeps the same handedness. Tilt: the specimen is rotated by ``tilt_x_deg`` about
the image's column axis, then by ``tilt_y_deg`` about its row axis (right-hand rule); the tilted
geometry is not foreshortened (thin-film approximation, fine for tilts of a few tens of degrees).
A Néel texture has a curl-free in-plane m and shows no contrast untilted; tilting projects mz
into the plane and makes it visible.
"""

from __future__ import annotations

import math

import numpy as np

from ..jobs import InputError
from ..physics.induction import induction_from_phase, phase_from_induction
from ..validate import finite, positive
from .forward import Microscope, simulate_image
from .simulate import LTEMSample, add_noise

MU0 = 4e-7 * math.pi  # T·m/A
AXES = ("z", "y", "x")
#: (columns, rows, beam) component indices into (mx, my, mz) for each thickness axis (cyclic)
_FRAME = {"z": (0, 1, 2), "x": (1, 2, 0), "y": (2, 0, 1)}


def _as_m(m, cell_nm, unit):
    """(3, Z, Y, X) float64 array, cell (z, y, x) nm, unit; from an array or a Magnetization."""
    source = {}
    if hasattr(m, "m") and hasattr(m, "cell_nm"):
        source = {"path": getattr(m, "path", ""), **getattr(m, "metadata", {})}
        cell_nm = m.cell_nm if cell_nm is None else cell_nm
        unit = m.unit if unit is None else unit
        m = m.m
    if m is None:
        raise InputError("no magnetisation given")
    arr = np.asarray(m)
    if arr.ndim == 3 and arr.shape[0] == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[0] != 3:
        raise InputError(f"the magnetisation must have shape (3, Z, Y, X) (components mx, my, mz first), got {arr.shape}")
    if arr.size == 0 or min(arr.shape[1:]) < 1:
        raise InputError("the magnetisation is empty")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(f"the magnetisation must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputError("the magnetisation has NaN/inf values")
    if cell_nm is None:
        raise InputError("give cell_nm = (z, y, x) cell size in nm")
    try:
        cz, cy, cx = (positive(c, "cell_nm", "nm") for c in cell_nm)
    except TypeError:
        raise InputError(f"cell_nm must be three sizes (z, y, x) in nm, got {cell_nm!r}") from None
    unit = "A/m" if unit is None else str(unit)
    if unit not in ("A/m", ""):
        raise InputError(f"unit must be 'A/m' or '' (unit vectors), got {unit!r}")
    return arr, (cz, cy, cx), unit, source


def _thickness_axis(axis, shape_zyx) -> str:
    if axis is None:
        single = [a for a, n in zip(AXES, shape_zyx) if n == 1]
        if len(single) == 1:
            return single[0]
        nz, ny, nx = shape_zyx
        raise InputError(
            f"the magnetisation is 3-D ({nx}x{ny}x{nz} cells, x*y*z) with no single-cell axis: say along which axis "
            "the beam goes (thickness_axis, on the command line --axis: 'z', 'y' or 'x')"
        )
    if axis not in AXES:
        raise InputError(f"thickness_axis must be 'z', 'y' or 'x' (the beam direction), got {axis!r}")
    return axis


def _rotation(tilt_x_deg: float, tilt_y_deg: float) -> np.ndarray:
    """R = R_rows(β) · R_cols(α) acting on (m_col, m_row, m_beam) vectors (right-handed frame)."""
    a, b = math.radians(tilt_x_deg), math.radians(tilt_y_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    return ry @ rx


def projected_induction(
    m,
    *,
    cell_nm=None,
    thickness_axis: str | None = "z",
    tilt_x_deg: float = 0.0,
    tilt_y_deg: float = 0.0,
    ms_a_per_m: float | None = None,
    unit: str | None = None,
    film_thickness_nm: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(Bx·t, By·t) in T·nm on the image grid (rows, columns as in the module docstring), and
    a dict with the pixel sizes (row, col) in nm, the beam component of μ0 M t
    (``beam_component_t_nm``) and what was used.

    ``film_thickness_nm``: the film's thickness along the beam (default: the file's cells × cell
    size). A micromagnetic run with one cell (or a few) through the film often stands for a
    thicker film; given, the cells along the beam are stretched to it, so B·t = μ0 M t scales by
    film / (cells × cell size) and the magnetisation pattern is unchanged."""
    arr, cell, unit, source = _as_m(m, cell_nm, unit)
    axis = _thickness_axis(thickness_axis, arr.shape[1:])
    mag = np.sqrt((arr**2).sum(axis=0))
    if unit == "":
        if ms_a_per_m is None:
            raise InputError("the magnetisation is given as unit vectors: give ms_a_per_m (saturation magnetisation, A/m)")
        arr = arr * positive(ms_a_per_m, "ms_a_per_m", "A/m")
    elif ms_a_per_m is not None:
        top = float(mag.max())
        if top <= 0:
            raise InputError("the magnetisation is zero everywhere: nothing to image")
        arr = arr * (positive(ms_a_per_m, "ms_a_per_m", "A/m") / top)
    if float(np.abs(arr).max()) == 0:
        raise InputError("the magnetisation is zero everywhere: nothing to image")
    ta, tb = finite(tilt_x_deg, "tilt_x_deg"), finite(tilt_y_deg, "tilt_y_deg")
    if abs(ta) >= 80 or abs(tb) >= 80:
        raise InputError(f"tilts must be within ±80° (thin-film projection), got {ta:g}°, {tb:g}°")
    ic, ir, ib = _FRAME[axis]
    # grid axes of (Z, Y, X) -> (beam, rows, cols)
    grid_axis = {"z": 1, "y": 2, "x": 3}
    letter = ("x", "y", "z")  # component index -> axis name
    g = np.moveaxis(arr, [grid_axis[letter[ib]], grid_axis[letter[ir]], grid_axis[letter[ic]]], [1, 2, 3])
    comps = np.stack([g[ic], g[ir], g[ib]])  # (m_col, m_row, m_beam) on (beam, rows, cols)
    cell_by = {"z": cell[0], "y": cell[1], "x": cell[2]}
    file_thickness = cell_by[letter[ib]] * g.shape[1]
    thickness = file_thickness if film_thickness_nm is None else positive(film_thickness_nm, "film_thickness_nm", "nm")
    ds = cell_by[letter[ib]] * (thickness / file_thickness) / (math.cos(math.radians(ta)) * math.cos(math.radians(tb)))
    rot = _rotation(ta, tb)
    rotated = np.tensordot(rot, comps, axes=(1, 0))
    bt = MU0 * rotated.sum(axis=1) * ds  # T·m/A · A/m · nm = T·nm; (col, row, beam)
    info = {
        "beam_component_t_nm": bt[2],
        "thickness_axis": axis,
        "pixel_nm_rows_cols": (cell_by[letter[ir]], cell_by[letter[ic]]),
        "thickness_nm": thickness,
        "thickness_source": "the file's cells" if film_thickness_nm is None else "film_thickness_nm",
        "file_thickness_nm": file_thickness,
        "unit": unit or "unit vectors",
        "ms_a_per_m": float(np.sqrt((arr**2).sum(axis=0)).max()),
        "tilt_x_deg": ta,
        "tilt_y_deg": tb,
        "source": source,
    }
    return bt[0].astype(np.float64), bt[1].astype(np.float64), info


def simulate_from_magnetization(
    m,
    *,
    cell_nm=None,
    thickness_axis: str | None = "z",
    defocus_nm: float = -1.0e6,
    tilt_x_deg: float = 0.0,
    tilt_y_deg: float = 0.0,
    ms_a_per_m: float | None = None,
    unit: str | None = None,
    pixel_size_nm: float | None = None,
    field_px: int | None = None,
    embed: str = "vacuum",
    film_thickness_nm: float | None = None,
    noise: float = 0.0,
    dose_e_per_px: float | None = None,
    seed: int = 0,
    microscope: Microscope | None = None,
    **microscope_kwargs,
) -> LTEMSample:
    """LTEM image of a micromagnetic state with its truth (an :class:`LTEMSample`).

    ``m``: (3, Z, Y, X) magnetisation (A/m, or unit vectors with ``unit=""`` and ``ms_a_per_m``)
    or a :class:`napari_phase.io.magnetization.Magnetization` (then ``cell_nm``/``unit`` come from
    it). ``cell_nm`` (z, y, x). ``thickness_axis``: the beam direction ('z', 'y', 'x'; None → the
    one axis with a single cell). ``ms_a_per_m``: required for unit vectors; for A/m data it
    rescales |M|max to this value. ``pixel_size_nm``: resample (bilinear) to this pixel size
    (default: the cell size; non-square cells are resampled to the smaller side).
    ``field_px``: the simulated field (square, default max(64, 2 × the sample's larger side, the
    sample + 2 × the transfer's lateral reach :meth:`Microscope.reach_px`: room for the Fresnel
    fringes at large defocus, e.g. 166 px for a 50 px sample at −1 mm and 2 nm pixels) with the
    sample in its centre; ``embed``: "vacuum" (zero outside the simulated cells) or
    "film" (edge cells continued). ``film_thickness_nm``: the film's thickness along the beam
    (default: the file's; see :func:`projected_induction`). Defocus in nm (negative = under-focus); ``noise``: Gaussian σ
    as a fraction of the mean intensity. Tilt and orientation: see the module docstring.
    """
    from scipy import ndimage

    bx, by, info = projected_induction(
        m, cell_nm=cell_nm, thickness_axis=thickness_axis, tilt_x_deg=tilt_x_deg, tilt_y_deg=tilt_y_deg,
        ms_a_per_m=ms_a_per_m, unit=unit, film_thickness_nm=film_thickness_nm,
    )
    prow, pcol = info["pixel_nm_rows_cols"]
    px = positive(pixel_size_nm, "pixel_size_nm", "nm") if pixel_size_nm is not None else min(prow, pcol)
    bz = info.pop("beam_component_t_nm")
    if abs(prow / px - 1) > 1e-6 or abs(pcol / px - 1) > 1e-6:
        zoom = (prow / px, pcol / px)
        bx, by, bz = (ndimage.zoom(b, zoom, order=1) for b in (bx, by, bz))
    ny, nx = bx.shape
    if microscope is None:
        mic = Microscope(defocus_nm=float(defocus_nm), **microscope_kwargs)
    else:
        if microscope_kwargs:
            raise TypeError("give either microscope= or microscope keyword arguments, not both")
        mic = Microscope(**{**microscope.as_dict(), "defocus_nm": float(defocus_nm)})
    if not math.isfinite(mic.defocus_nm) or mic.defocus_nm == 0:
        raise InputError(f"defocus_nm must be a finite non-zero number, got {defocus_nm!r}")
    # default field: the sample, its Fresnel fringes (the transfer's reach on each side) and at
    # least as much vacuum as sample — an isolated specimen's micrograph, not its mirrored neighbours
    reach = int(math.ceil(mic.reach_px(px)))
    n = max(64, 2 * max(ny, nx), max(ny, nx) + 2 * reach) if field_px is None else int(field_px)
    if n < max(ny, nx) or n < 16:
        raise InputError(f"field_px={n} is smaller than the sample ({ny}x{nx} px) or below 16")
    if embed not in ("vacuum", "film"):
        raise InputError(f"embed must be 'vacuum' or 'film', got {embed!r}")
    y0, x0 = (n - ny) // 2, (n - nx) // 2
    widths = ((y0, n - ny - y0), (x0, n - nx - x0))
    mode = "constant" if embed == "vacuum" else "edge"
    bx_f, by_f, bz_f = (np.pad(b, widths, mode=mode) for b in (bx, by, bz))
    margin = n // 4  # the phase of a window of a larger (mirrored) field: no periodic seams
    big_x, big_y = np.pad(bx_f, margin, mode="reflect"), np.pad(by_f, margin, mode="reflect")
    phase = phase_from_induction(big_x, big_y, px)[margin:margin + n, margin:margin + n]
    phase = (phase - phase.mean()).astype(np.float32)

    pad = n // 4
    clean = simulate_image(phase, 1.0, pixel_size_nm=px, microscope=mic, pad_px=pad)
    image = add_noise(clean, noise, dose_e_per_px, seed=seed) if (noise or dose_e_per_px) else clean.copy()
    tbx, tby = induction_from_phase(phase, px)
    params = {
        **{k: v for k, v in info.items() if k != "source"},
        "source": info["source"],
        "pixel_size_nm": float(px),
        "field_px": n,
        "sample_box_yx": [int(y0), int(y0 + ny), int(x0), int(x0 + nx)],
        "embed": embed,
        "defocus_nm": float(mic.defocus_nm),
        "noise": float(noise),
        "noise_definition": "Gaussian sigma = noise x mean(image)",
        "dose_e_per_px": dose_e_per_px,
        "seed": int(seed),
        "orientation": "rows = +y, columns = +x of the simulator (beam along -z); see ltem/micromagnetic.py",
        "microscope": mic.as_dict(),
    }
    b0t = float(np.sqrt(bx_f**2 + by_f**2 + bz_f**2).max()) or 1.0
    zeros = np.zeros((n, n), np.float32)
    return LTEMSample(
        image=image,
        image_clean=clean,
        phase_m=phase,
        phase_e=zeros,
        amplitude=np.ones((n, n), np.float32),
        bx=tbx,
        by=tby,
        mask=np.zeros((n, n), bool),
        magnetization=tuple((b / b0t).astype(np.float32) for b in (bx_f, by_f, bz_f)),
        pixel_size_nm=float(px),
        microscope=mic,
        params=params,
    )
