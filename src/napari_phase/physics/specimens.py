"""A bank of ASE-built crystals, zone-axis cells, supercells and a fast bank of potential maps.

- :data:`STRUCTURES`: name -> :class:`Structure` (builder, zone axes, split). The split is by
  STRUCTURE and fixed in this file (deterministic, no hashing): "train", "val", "heldout".
  Held-out: a twisted MoS2 bilayer (6.0°), a twisted graphene bilayer (6.0°), and the oxides
  CeO2 and LaAlO3 that no training structure shares. GaAs and SrTiO3 are in "train".
- :func:`oriented_cell`: a periodic cell of a structure with the zone axis [uvw] along +z, two
  in-plane cell vectors perpendicular to it (first one along +x).
- :func:`supercell`: atoms filling a box of lateral extent (Å) and thickness (Å) along a zone axis,
  optionally rotated in-plane (random with a seed); periodic only when unrotated and rectangular.
- :class:`PotentialBank`: projected-potential slices of each (structure, zone axis) cell computed
  once at fine sampling (Kirkland, :mod:`.potentials`), then random crops / in-plane rotations /
  small rescales per batch with torch ``grid_sample`` (periodic wrap): phase-object training data
  at high throughput, and per-cell slices for multislice of thick crystals.

Lattice constants are room-temperature literature values (Å), rounded; positions (x, y, z) in Å.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from ..jobs import InputError

SPLITS = ("train", "val", "heldout")
#: Default rms thermal displacement per axis (Å); room-temperature B ≈ 0.5 Å² gives u ≈ 0.08 Å.
DEFAULT_RMS_A = 0.08


# --------------------------------------------------------------------------- builders


def _bulk(formula, kind, a, **kw):
    def build():
        from ase.build import bulk

        return bulk(formula, kind, a=a, cubic=kind not in ("wurtzite", "hcp"), **kw)

    return build


def _spacegroup(symbols, basis, sg, cellpar, setting=1):
    def build():
        from ase.spacegroup import crystal

        return crystal(symbols, basis=basis, spacegroup=sg, cellpar=cellpar, setting=setting)

    return build


def _perovskite(a_site, b_site, a):
    return _spacegroup([a_site, b_site, "O"], [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], 221, [a, a, a, 90, 90, 90])


def _fluorite(cation, anion, a):
    return _spacegroup([cation, anion], [(0, 0, 0), (0.25, 0.25, 0.25)], 225, [a, a, a, 90, 90, 90])


def _layer_2d(atoms, interlayer_a: float):
    """Give a 2-D layer a z period (its thickness + gap) with atoms inside [0, c)."""
    z = atoms.positions[:, 2]
    atoms.positions[:, 2] -= z.min() - 0.5 * (interlayer_a - (z.max() - z.min()))
    cell = atoms.cell.array.copy()
    cell[2] = [0, 0, interlayer_a]
    atoms.set_cell(cell)
    atoms.pbc = True
    return atoms


def _mx2(formula, a, thickness, interlayer):
    def build():
        from ase.build import mx2

        return _layer_2d(mx2(formula, kind="2H", a=a, thickness=thickness, vacuum=None), interlayer)

    return build


def _graphene_like(formula, a):
    def build():
        from ase.build import graphene

        return _layer_2d(graphene(formula=formula, a=a, vacuum=None), 3.35)

    return build


def _twisted_bilayer(layer_builder: Callable, m: int, interlayer_a: float):
    """Commensurate twisted bilayer of a hexagonal layer: cos θ = (3m²+3m+½)/(3m²+3m+1)
    (m=5: 6.01°). Layer 2 is layer 1 rotated by θ about z and lifted by ``interlayer_a``."""

    def build():
        from ase import Atoms
        from ase.build import make_supercell

        layer = layer_builder()
        c_layer = layer.cell[2, 2]
        p1 = np.array([[2 * m + 1, m + 1, 0], [m, 2 * m + 1, 0], [0, 0, 1]])
        p2 = np.array([[2 * m + 1, m, 0], [m + 1, 2 * m + 1, 0], [0, 0, 1]])
        s1 = make_supercell(layer, p1)
        s2 = make_supercell(layer, p2)
        t1, t1b = s1.cell[0, :2], s2.cell[0, :2]
        theta = math.atan2(t1b[0] * t1[1] - t1b[1] * t1[0], t1b @ t1)
        rot = np.array([[math.cos(theta), -math.sin(theta), 0], [math.sin(theta), math.cos(theta), 0], [0, 0, 1]])
        pos2 = s2.positions @ rot.T + [0, 0, interlayer_a]
        cell = s1.cell.array.copy()
        cell[2] = [0, 0, c_layer + interlayer_a]
        both = Atoms(
            symbols=list(s1.get_chemical_symbols()) + list(s2.get_chemical_symbols()),
            positions=np.vstack([s1.positions, pos2]),
            cell=cell,
            pbc=True,
        )
        both.wrap()
        both.info["twist_deg"] = math.degrees(theta)
        return both

    return build


CUBIC = ((0, 0, 1), (1, 1, 0), (1, 1, 1))
HEX = ((0, 0, 1), (1, 0, 0), (1, -1, 0))
TETRA = ((0, 0, 1), (1, 0, 0), (1, 1, 0))
LAYER = ((0, 0, 1),)


@dataclass(frozen=True)
class Structure:
    """One crystal of the bank: a builder of its conventional cell (ase.Atoms), the zone axes
    to use (direct-lattice indices of that cell), its split, and whether it is a 2-D layer
    (its thickness is then fixed by the layer, not chosen)."""

    name: str
    build: Callable = field(repr=False)
    zone_axes: tuple = CUBIC
    split: str = "train"
    layer_2d: bool = False


def _s(name, build, zones=CUBIC, split="train", layer_2d=False):
    return name, Structure(name, build, zones, split, layer_2d)


STRUCTURES: dict[str, Structure] = dict(
    [
        # --- train
        _s("Si", _bulk("Si", "diamond", 5.431)),
        _s("Ge", _bulk("Ge", "diamond", 5.658)),
        _s("GaAs", _bulk("GaAs", "zincblende", 5.653)),
        _s("SiC-3C", _bulk("SiC", "zincblende", 4.360)),
        _s("CdTe", _bulk("CdTe", "zincblende", 6.481)),
        _s("GaP", _bulk("GaP", "zincblende", 5.451)),
        _s("MgO", _bulk("MgO", "rocksalt", 4.212)),
        _s("NaCl", _bulk("NaCl", "rocksalt", 5.640)),
        _s("Cu", _bulk("Cu", "fcc", 3.615)),
        _s("Au", _bulk("Au", "fcc", 4.078)),
        _s("Al", _bulk("Al", "fcc", 4.050)),
        _s("Ag", _bulk("Ag", "fcc", 4.086)),
        _s("Fe", _bulk("Fe", "bcc", 2.8665)),
        _s("W", _bulk("W", "bcc", 3.165)),
        _s("Nb", _bulk("Nb", "bcc", 3.301)),
        _s("SrTiO3", _perovskite("Sr", "Ti", 3.905)),
        _s("BaTiO3", _perovskite("Ba", "Ti", 4.000)),
        _s("PbTiO3", _perovskite("Pb", "Ti", 3.970)),
        _s("ZrO2-cubic", _fluorite("Zr", "O", 5.070)),
        _s("CaF2", _fluorite("Ca", "F", 5.463)),
        _s("GaN", _bulk("GaN", "wurtzite", 3.189, c=5.185, u=0.377), HEX),
        _s("AlN", _bulk("AlN", "wurtzite", 3.112, c=4.982, u=0.382), HEX),
        _s("TiO2-rutile", _spacegroup(["Ti", "O"], [(0, 0, 0), (0.3048, 0.3048, 0)], 136, [4.594, 4.594, 2.959, 90, 90, 90]), TETRA),
        _s("TiO2-anatase", _spacegroup(["Ti", "O"], [(0, 0, 0), (0, 0, 0.2081)], 141, [3.785, 3.785, 9.514, 90, 90, 90]), TETRA[:2]),
        _s("Al2O3", _spacegroup(["Al", "O"], [(0, 0, 0.35216), (0.30624, 0, 0.25)], 167, [4.759, 4.759, 12.991, 90, 90, 120]), HEX[:2]),
        _s("MoS2", _mx2("MoS2", 3.160, 3.172, 6.15), LAYER, layer_2d=True),
        _s("graphene", _graphene_like("C2", 2.46), LAYER, layer_2d=True),
        _s("hBN", _graphene_like("BN", 2.504), LAYER, layer_2d=True),
        # --- val
        _s("InP", _bulk("InP", "zincblende", 5.869), split="val"),
        _s("Pt", _bulk("Pt", "fcc", 3.924), split="val"),
        _s("Mo", _bulk("Mo", "bcc", 3.147), split="val"),
        _s("ZnO", _bulk("ZnO", "wurtzite", 3.250, c=5.207, u=0.382), HEX, split="val"),
        _s("WS2", _mx2("WS2", 3.153, 3.14, 6.16), LAYER, split="val", layer_2d=True),
        # --- heldout (never in training)
        _s("CeO2", _fluorite("Ce", "O", 5.411), split="heldout"),
        _s("LaAlO3", _perovskite("La", "Al", 3.790), split="heldout"),
        _s("MoS2-twisted-bilayer", _twisted_bilayer(_mx2("MoS2", 3.160, 3.172, 6.15), 5, 6.15), LAYER, "heldout", True),
        _s("graphene-twisted-bilayer", _twisted_bilayer(_graphene_like("C2", 2.46), 5, 3.35), LAYER, "heldout", True),
    ]
)


def structures(split: str | None = None) -> list[str]:
    """Names of the bank's structures, all or those of one split ("train", "val", "heldout")."""
    if split is not None and split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return [n for n, s in STRUCTURES.items() if split is None or s.split == split]


def _structure(name: str) -> Structure:
    if name not in STRUCTURES:
        raise InputError(f"unknown structure {name!r}; the bank has: {', '.join(STRUCTURES)}")
    return STRUCTURES[name]


def build(name: str):
    """The conventional cell of a bank structure as ase.Atoms (a fresh copy)."""
    return _cached_build(name).copy()


@lru_cache(maxsize=None)
def _cached_build(name: str):
    return _structure(name).build()


# --------------------------------------------------------------------------- zone-axis cells


def _zone(zone_axis) -> tuple[int, int, int]:
    try:
        uvw = tuple(int(round(float(v))) for v in zone_axis)
    except (TypeError, ValueError):
        raise InputError(f"zone axis must be three integers [u, v, w], got {zone_axis!r}") from None
    if len(uvw) != 3 or uvw == (0, 0, 0):
        raise InputError(f"zone axis must be three integers, not all zero, got {zone_axis!r}")
    g = math.gcd(math.gcd(abs(uvw[0]), abs(uvw[1])), abs(uvw[2]))
    return tuple(v // g for v in uvw)


def oriented_cell(structure, zone_axis=(0, 0, 1), search: int = 4):
    """Periodic cell with [uvw] along +z: rows v1 (along +x), v2 (in the xy plane), c (along +z).

    ``structure``: a bank name or an ase.Atoms. The in-plane vectors are the reduced (shortest,
    minimal-area) basis of lattice vectors perpendicular to [uvw]; c is the shortest lattice
    vector along it. Raises InputError when no such cell has indices within ``search``.
    """
    from ase import Atoms
    from ase.build import make_supercell

    atoms = build(structure) if isinstance(structure, str) else structure.copy()
    uvw = np.array(_zone(zone_axis))
    cellm = atoms.cell.array
    c = uvw @ cellm
    rng = np.arange(-search, search + 1)
    n = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), -1).reshape(-1, 3)
    n = n[np.any(n != 0, axis=1)]
    v = n @ cellm
    length = np.linalg.norm(v, axis=1)
    perp = np.abs(v @ c) < 1e-6 * length * np.linalg.norm(c)
    n, v, length = n[perp], v[perp], length[perp]
    if len(n) < 2:
        raise InputError(f"no periodic cell found for zone axis {tuple(uvw)}")
    order = np.lexsort((n[:, 2], n[:, 1], n[:, 0], np.round(length, 6)))
    n, v, length = n[order], v[order], length[order]
    n1, v1 = n[0], v[0]
    area = np.linalg.norm(np.cross(v1, v), axis=1)
    ok = area > 1e-6
    best = np.min(area[ok])
    cand = np.flatnonzero(ok & (area < best * (1 + 1e-6)))
    cosang = np.abs(v[cand] @ v1) / (length[cand] * length[0])
    j = cand[np.lexsort((length[cand], np.round(cosang, 6)))[0]]
    n2 = n[j]
    p = np.stack([n1, n2, uvw])
    if np.linalg.det(p) < 0:
        n2 = -n2
        p = np.stack([n1, n2, uvw])
    sc = make_supercell(atoms, p, wrap=True)
    v1, v2, c = sc.cell.array
    ez = c / np.linalg.norm(c)
    ex = v1 / np.linalg.norm(v1)
    ey = np.cross(ez, ex)
    rot = np.stack([ex, ey, ez])  # rows: new axes in old coordinates
    new = Atoms(
        symbols=sc.get_chemical_symbols(),
        positions=sc.positions @ rot.T,
        cell=sc.cell.array @ rot.T,
        pbc=True,
    )
    cellnew = new.cell.array
    cellnew[np.abs(cellnew) < 1e-9] = 0.0
    new.set_cell(cellnew)
    new.wrap()
    new.info.update(structure=structure if isinstance(structure, str) else atoms.get_chemical_formula(), zone_axis=tuple(int(x) for x in uvw))
    return new


def cell_yx(atoms) -> np.ndarray:
    """The in-plane cell of an oriented cell as (2, 2) rows (y, x) in Å: row 0 = v2, row 1 = v1."""
    v1, v2 = atoms.cell.array[0], atoms.cell.array[1]
    return np.array([[v2[1], v2[0]], [v1[1], v1[0]]], dtype=np.float64)


def supercell(
    structure,
    zone_axis=(0, 0, 1),
    *,
    extent_a=(20.0, 20.0),
    thickness_a: float = 10.0,
    rotation_deg: float | None = 0.0,
    seed: int | None = None,
):
    """Atoms of a bank structure filling a box (extent_y, extent_x) × thickness along [uvw].

    The thickness is rounded to a whole number of periods along the zone axis (≥ 1; a 2-D layer
    keeps its own). ``rotation_deg=None`` draws a uniform in-plane rotation from ``seed``.
    Unrotated rectangular cells give an exactly periodic box (extent rounded to whole cells);
    otherwise atoms are cut from a rotated tiling (box edges are not periodic). ``atoms.info``
    records structure, zone axis, rotation, thickness, whether periodic, and the seed.
    """
    from ase import Atoms

    ey, ex = (float(e) for e in np.broadcast_to(np.asarray(extent_a, dtype=np.float64), (2,)))
    if not (math.isfinite(ey) and math.isfinite(ex)) or ey <= 0 or ex <= 0:
        raise InputError(f"extent_a must be positive (Å), got {extent_a!r}")
    t = float(thickness_a)
    if not math.isfinite(t) or t <= 0:
        raise InputError(f"thickness_a must be positive (Å), got {thickness_a!r}")
    name = structure if isinstance(structure, str) else None
    is2d = name is not None and _structure(name).layer_2d
    cell = oriented_cell(structure, zone_axis)
    c_len = cell.cell[2, 2]
    nz = 1 if is2d else max(1, int(round(t / c_len)))
    if rotation_deg is None:
        rotation_deg = float(np.random.default_rng(seed).uniform(0.0, 360.0))
    rotation_deg = float(rotation_deg)
    cyx = cell_yx(cell)
    rectangular = abs(cyx[0, 1]) < 1e-9
    if rotation_deg % 360.0 == 0.0 and rectangular:
        ny = max(1, int(round(ey / cyx[0, 0])))
        nx = max(1, int(round(ex / cyx[1, 1])))
        sc = cell.repeat((nx, ny, nz))
        box = np.diag([nx * cyx[1, 1], ny * cyx[0, 0], nz * c_len])
        out = Atoms(symbols=sc.get_chemical_symbols(), positions=sc.positions, cell=box, pbc=(True, True, False))
        periodic = True
    else:
        radius = 0.5 * math.hypot(ex, ey) + 2 * max(np.linalg.norm(cyx, axis=1))
        # lattice translations covering the circle around the box centre
        inv = np.linalg.inv(cyx)
        span = np.ceil(np.abs(np.array([radius, radius]) @ np.abs(inv)).max()) + 1
        ij = np.arange(-span, span + 1)
        ia, ib = np.meshgrid(ij, ij, indexing="ij")
        trans_yx = ia.reshape(-1, 1) * cyx[0] + ib.reshape(-1, 1) * cyx[1]
        base = cell.repeat((1, 1, nz))
        pos = base.positions
        syms = np.array(base.get_chemical_symbols())
        allpos = (pos[None, :, :] + np.stack([trans_yx[:, 1], trans_yx[:, 0], np.zeros(len(trans_yx))], -1)[:, None, :]).reshape(-1, 3)
        allsym = np.tile(syms, len(trans_yx))
        th = math.radians(rotation_deg)
        rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        xy = allpos[:, :2] @ rot.T + [ex / 2, ey / 2]
        keep = (xy[:, 0] >= 0) & (xy[:, 0] < ex) & (xy[:, 1] >= 0) & (xy[:, 1] < ey)
        out = Atoms(
            symbols=list(allsym[keep]),
            positions=np.column_stack([xy[keep], allpos[keep, 2]]),
            cell=np.diag([ex, ey, nz * c_len]),
            pbc=(False, False, False),
        )
        periodic = False
    out.info.update(
        structure=cell.info.get("structure"),
        zone_axis=cell.info.get("zone_axis"),
        rotation_deg=rotation_deg,
        thickness_a=float(nz * c_len),
        period_z_a=float(c_len),
        periodic=periodic,
        seed=seed,
    )
    return out


# --------------------------------------------------------------------------- potential bank


def _taper(q2, sampling_a: float):
    """Smooth (raised-cosine) low-pass reaching 0 at the Nyquist frequency 1/(2·sampling)."""
    import torch

    qc = 0.5 / float(sampling_a)
    x = torch.clamp((qc - torch.sqrt(q2)) / (0.15 * qc), 0, 1)
    return 0.5 - 0.5 * torch.cos(math.pi * x)


@dataclass
class BankEntry:
    """Projected-potential slices of one oriented cell: ``slices`` (S, n_a, n_b) V·Å (torch),
    ``cell_yx`` (2, 2) Å, ``period_z_a`` (cell length along the beam), ``slice_thickness_a``."""

    structure: str
    zone_axis: tuple
    slices: object
    cell_yx: np.ndarray
    period_z_a: float
    slice_thickness_a: float
    layer_2d: bool

    @property
    def projected(self):
        return self.slices.sum(0)


class PotentialBank:
    """Per (structure, zone axis): the cell's potential slices at fine sampling, computed once.

    ``sampling_a``: the finest output sampling the bank will serve (Å/px); maps are stored at
    ``sampling_a / oversample`` and band-limited with a smooth taper to the Nyquist frequency of
    ``sampling_a`` so that resampling does not alias. ``dw_rms_a``: Debye–Waller rms displacement
    (Å per axis) folded into the static potential (thermal smearing; 0 for none).
    ``slice_target_a``: slices per cell are chosen ≈ this thick.
    """

    def __init__(
        self,
        names: Sequence[str] | str | None = "train",
        *,
        sampling_a: float = 0.1,
        oversample: int = 3,
        dw_rms_a: float = DEFAULT_RMS_A,
        slice_target_a: float = 2.0,
        zone_axes: Sequence | None = None,
        device="cpu",
    ):
        from ..jobs import resolve_device

        if isinstance(names, str) and names in SPLITS:
            names = structures(names)
        elif isinstance(names, str):
            names = [names]
        elif names is None:
            names = structures()
        self.names = list(names)
        if not self.names:
            raise InputError("no structures given for the potential bank")
        if not (math.isfinite(sampling_a) and sampling_a > 0):
            raise InputError(f"sampling_a must be positive, got {sampling_a!r}")
        self.sampling_a = float(sampling_a)
        self.fine_a = self.sampling_a / int(oversample)
        self.dw_rms_a = float(dw_rms_a)
        self.slice_target_a = float(slice_target_a)
        self.device = resolve_device(device)
        self.entries: list[BankEntry] = []
        self._cache: dict = {}
        for name in self.names:
            st = _structure(name)
            for zone in zone_axes or st.zone_axes:
                self.entries.append(self._make_entry(name, zone))

    def _make_entry(self, name: str, zone) -> BankEntry:
        import torch

        from .potentials import form_factors_t, reciprocal_grid_t, slice_potentials_t

        cell = oriented_cell(name, zone)
        cyx = cell_yx(cell)
        la, lb = np.linalg.norm(cyx, axis=1)
        gpts = (max(8, 2 * int(math.ceil(la / self.fine_a / 2))), max(8, 2 * int(math.ceil(lb / self.fine_a / 2))))
        c_len = float(cell.cell[2, 2])
        n_slices = max(1, int(round(c_len / self.slice_target_a)))
        dz = c_len / n_slices
        syms = cell.get_chemical_symbols()
        uniq = sorted(set(syms))
        eidx = torch.tensor([uniq.index(s) for s in syms])
        z = cell.positions[:, 2] % c_len
        sidx = torch.as_tensor(np.clip(np.floor(z / dz).astype(np.int64), 0, n_slices - 1))
        frac = np.linalg.solve(cyx.T, cell.positions[:, [1, 0]].T).T  # r_yx = f_a v_a + f_b v_b
        h, k, q2 = reciprocal_grid_t(cyx, gpts, device=self.device, dtype=torch.float32)
        ff = form_factors_t(uniq, q2, [self.dw_rms_a] * len(uniq) if self.dw_rms_a else None)
        taper = _taper(q2, self.sampling_a)
        slices = slice_potentials_t(
            torch.as_tensor(frac)[None], eidx, sidx, n_slices, ff, h, k, gpts, float(abs(np.linalg.det(cyx))), band_limit=taper
        )[0].to(torch.float32)
        return BankEntry(name, tuple(cell.info["zone_axis"]), slices, cyx, c_len, dz, _structure(name).layer_2d)

    def __len__(self) -> int:
        return len(self.entries)

    # -- sampling

    def _grid(self, gpts, sampling_a, rotation_rad, scale, shift_frac, inv_cell, sizes, canvas, col_offset=None):
        """grid_sample coordinates (B, H, W, 2) into padded maps on a common canvas.

        Output pixel (i, j) sits at r = ((i − H/2)·s, (j − W/2)·s) Å; the specimen point shown there
        is R(θ)·r / scale, in fractional cell coordinates plus ``shift_frac``, wrapped into the cell
        (periodic), then in pixels of each sample's own map (``sizes`` (B, 2): n_a, n_b)."""
        import torch

        dev = self.device
        H, W = gpts
        f32 = torch.float32
        yy = (torch.arange(H, device=dev, dtype=f32) - H / 2) * sampling_a
        xx = (torch.arange(W, device=dev, dtype=f32) - W / 2) * sampling_a
        c = (torch.cos(rotation_rad) / scale).to(f32)[:, None, None]
        s = (torch.sin(rotation_rad) / scale).to(f32)[:, None, None]
        Y, X = yy[None, :, None], xx[None, None, :]
        ys = c * Y + s * X  # specimen coordinates = R(θ)·r / scale
        xs = -s * Y + c * X
        inv = inv_cell.to(f32)
        sh = shift_frac.to(f32)
        fa = ys * inv[:, 0, 0, None, None] + xs * inv[:, 1, 0, None, None] + sh[:, 0, None, None]
        fb = ys * inv[:, 0, 1, None, None] + xs * inv[:, 1, 1, None, None] + sh[:, 1, None, None]
        sz = sizes.to(f32)
        pa = torch.remainder(fa, 1.0) * sz[:, 0, None, None]  # map pixels in [0, n_a]; row n_a = row 0
        pb = torch.remainder(fb, 1.0) * sz[:, 1, None, None]
        if col_offset is not None:
            pb = pb + col_offset.to(f32)[:, None, None]
        return torch.stack([pb / (canvas[1] - 1) * 2 - 1, pa / (canvas[0] - 1) * 2 - 1], -1)

    def _atlas(self, sampling_a: float):
        """All entries' padded projected maps (per cell) side by side in one image (1, 1, Ha, Wa),
        with each one's size (E, 2), column offset (E,) and inverse cell (E, 2, 2); cached."""
        import torch

        key = ("atlas", round(float(sampling_a), 4))
        if key in self._cache:
            return self._cache[key]
        maps = [self._padded(e, sampling_a).sum(0) for e in range(len(self.entries))]
        ha = max(m.shape[0] for m in maps)
        offsets = np.cumsum([0] + [m.shape[1] + 1 for m in maps])
        atlas = torch.zeros((1, 1, ha, int(offsets[-1])), device=self.device, dtype=torch.float32)
        for e, m in enumerate(maps):
            atlas[0, 0, : m.shape[0], offsets[e] : offsets[e] + m.shape[1]] = m
        sizes = torch.tensor([[m.shape[0] - 1, m.shape[1] - 1] for m in maps], device=self.device)
        inv = torch.as_tensor(np.stack([np.linalg.inv(en.cell_yx) for en in self.entries]), device=self.device)
        self._cache[key] = (atlas, sizes, torch.as_tensor(offsets[:-1], device=self.device), inv)
        return self._cache[key]

    def _padded(self, e: int, sampling_a: float):
        """The entry's slices band-limited to the Nyquist of ``sampling_a`` (smooth taper, cached
        per sampling), with one wrapped row and column appended for periodic interpolation."""
        import torch

        from .potentials import reciprocal_grid_t

        key = (int(e), round(float(sampling_a), 4))
        if key in self._cache:
            return self._cache[key]
        entry = self.entries[e]
        m = entry.slices
        if sampling_a > self.sampling_a * 1.01:
            na, nb = m.shape[-2:]
            _, _, q2 = reciprocal_grid_t(entry.cell_yx, (na, nb), device=m.device, dtype=torch.float32)
            m = torch.fft.irfft2(torch.fft.rfft2(m) * _taper(q2, sampling_a), s=(na, nb))
        m = torch.cat([m, m[:, :1]], 1)
        m = torch.cat([m, m[:, :, :1]], 2)
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[key] = m
        return m

    def _draw(self, rng, n, rotate, scale_range):
        import torch

        rot = rng.uniform(0, 2 * math.pi, n) if rotate else np.zeros(n)
        scale = rng.uniform(1 - scale_range, 1 + scale_range, n) if scale_range else np.ones(n)
        shift = rng.uniform(0, 1, (n, 2))
        t = lambda a: torch.as_tensor(a, device=self.device, dtype=torch.float64)  # noqa: E731
        return t(rot), t(scale), t(shift)

    def sample_projected(
        self,
        batch: int,
        gpts,
        sampling_a: float,
        *,
        thickness_a=(5.0, 30.0),
        rotate: bool = True,
        scale_range: float = 0.03,
        seed: int = 0,
        entries: Sequence[int] | None = None,
    ):
        """A batch of projected potentials (B, H, W) float32 torch (V·Å) and per-sample info.

        Each sample: a random bank entry (or from ``entries``), a random thickness in
        ``thickness_a`` (rounded to whole cells; 2-D layers keep theirs), a uniform in-plane
        rotation, a lattice rescale in 1 ± ``scale_range``, and a random origin. Seeded.
        """
        import torch

        if sampling_a < self.sampling_a * 0.999:
            raise InputError(f"sampling {sampling_a} Å is finer than the bank's {self.sampling_a} Å; build the bank finer")
        H, W = (int(g) for g in gpts)
        rng = np.random.default_rng(seed)
        pool = list(entries) if entries is not None else list(range(len(self.entries)))
        which = rng.choice(pool, size=batch)
        tmin, tmax = (float(thickness_a), float(thickness_a)) if np.isscalar(thickness_a) else map(float, thickness_a)
        rot, scale, shift = self._draw(rng, batch, rotate, scale_range)
        atlas, sizes, offsets, inv = self._atlas(sampling_a)
        w = torch.as_tensor(which, device=self.device)
        grid = self._grid((H, W), sampling_a, rot, scale, shift, inv[w], sizes[w], atlas.shape[-2:], offsets[w])
        maps = torch.nn.functional.grid_sample(atlas, grid.reshape(1, batch * H, W, 2), mode="bilinear", align_corners=True)
        maps = maps.reshape(batch, H, W)
        period = np.array([self.entries[e].period_z_a for e in which])
        is2d = np.array([self.entries[e].layer_2d for e in which])
        ncell = np.where(is2d, 1, np.maximum(1, np.round(rng.uniform(tmin, tmax, batch) / period))).astype(np.int64)
        out = maps * torch.as_tensor(ncell, device=self.device, dtype=torch.float32)[:, None, None]
        rot_deg = np.degrees(rot.cpu().numpy())
        sc = scale.cpu().numpy()
        info = [
            dict(structure=self.entries[e].structure, zone_axis=self.entries[e].zone_axis, thickness_a=float(ncell[i] * period[i]),
                 rotation_deg=float(rot_deg[i]), scale=float(sc[i]))
            for i, e in enumerate(which)
        ]
        return out, info

    def sample_slices(
        self,
        entry: int,
        batch: int,
        gpts,
        sampling_a: float,
        *,
        rotate: bool = True,
        scale_range: float = 0.0,
        seed: int = 0,
    ):
        """One cell's potential slices for a batch of random rotations/origins: (B, S, H, W)
        float32 torch (V·Å) and the slice thickness (Å). Repeat the S slices n times for a crystal
        n periods thick (``multislice.multislice(..., repeats=n)`` does so without copies)."""
        import torch

        if sampling_a < self.sampling_a * 0.999:
            raise InputError(f"sampling {sampling_a} Å is finer than the bank's {self.sampling_a} Å; build the bank finer")
        H, W = (int(g) for g in gpts)
        ent = self.entries[int(entry)]
        rng = np.random.default_rng(seed)
        rot, scale, shift = self._draw(rng, batch, rotate, scale_range)
        m = self._padded(int(entry), sampling_a)
        sizes = torch.tensor([[m.shape[-2] - 1, m.shape[-1] - 1]], device=self.device).expand(batch, 2)
        inv = torch.as_tensor(np.linalg.inv(ent.cell_yx), device=self.device)[None].expand(batch, 2, 2)
        grid = self._grid((H, W), sampling_a, rot, scale, shift, inv, sizes, m.shape[-2:])
        m = m[None].expand(batch, -1, -1, -1)
        return torch.nn.functional.grid_sample(m, grid, mode="bilinear", align_corners=True), ent.slice_thickness_a
