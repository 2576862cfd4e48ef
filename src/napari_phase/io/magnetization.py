"""Micromagnetic magnetisation files (OOMMF .omf/.ovf, mumax3 .ovf; OVF 1.0/2.0, text or binary)
read with discretisedfield (the Ubermag project's maintained OVF parser; extra ``[micromagnetic]``).

:func:`read_magnetization` returns a :class:`Magnetization` with ``m`` of shape (3, Z, Y, X):
components (mx, my, mz) in the simulator's frame, cells indexed [k, j, i] = (z_k, y_j, x_i) with
the index increasing along +z, +y, +x exactly as the file stores them (OOMMF and mumax3: x, y, z
right-handed; their plots put +y up). ``unit`` is "A/m" or "" (unit vectors, e.g. mumax3's ``m``)
as the file says; ``cell_nm`` (z, y, x) in nm. How the frame maps onto an image is decided in
:mod:`napari_phase.ltem.micromagnetic`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..jobs import InputError

OVF_SUFFIXES = (".ovf", ".omf", ".ohf", ".oef")
_UNIT_VECTOR_UNITS = ("", "1", "none")
_LENGTH_TO_NM = {"m": 1e9, "nm": 1.0}


@dataclass
class Magnetization:
    """Magnetisation on a regular grid: ``m`` (3, Z, Y, X) float32, ``cell_nm`` (z, y, x),
    ``unit`` ("A/m" or "" for unit vectors), ``origin_nm`` (z, y, x) of the first cell's corner."""

    m: np.ndarray
    cell_nm: tuple[float, float, float]
    unit: str = "A/m"
    origin_nm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    path: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.m.shape[1:])

    @property
    def ms_a_per_m(self) -> float | None:
        """Largest |M| in A/m (the saturation magnetisation of a saturated film), None for unit vectors."""
        if self.unit != "A/m":
            return None
        return float(np.sqrt((self.m.astype(np.float64) ** 2).sum(axis=0)).max())


def _discretisedfield():
    try:
        import discretisedfield
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError(
            "reading OVF/OMF files needs discretisedfield: pip install 'napari-phase[micromagnetic]'"
        ) from None
    return discretisedfield


def read_magnetization(path) -> Magnetization:
    """Read an OOMMF/mumax3 vector-field file into a :class:`Magnetization` (see module docstring).
    Raises InputError for a missing file, a scalar field, or units other than A/m / unit vectors."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    if p.is_dir():
        raise InputError(f"{p} is a folder; give an .ovf/.omf file")
    if p.suffix.lower() not in OVF_SUFFIXES:
        raise InputError(f"{p.name}: not an OVF/OMF magnetisation file (expected one of {', '.join(OVF_SUFFIXES)})")
    df = _discretisedfield()
    try:
        fld = df.Field.from_file(str(p))
    except Exception as exc:  # noqa: BLE001 - the parser's own errors are varied; one clear line
        raise InputError(f"{p.name}: could not read it as OVF ({type(exc).__name__}: {exc})") from None
    nvdim = int(getattr(fld, "nvdim", 0) or 0)
    if nvdim != 3:
        raise InputError(f"{p.name}: a magnetisation needs 3 components (mx, my, mz), the file has {nvdim}")
    unit = str(getattr(fld, "unit", "") or "").strip()
    if unit.lower() in _UNIT_VECTOR_UNITS:
        unit = ""
    elif unit.replace(" ", "") != "A/m":
        raise InputError(f"{p.name}: the values are in {unit!r}; expected a magnetisation in A/m or unit vectors")
    region = fld.mesh.region
    units = {str(u) for u in getattr(region, "units", ("m", "m", "m"))}
    if len(units) != 1 or next(iter(units)) not in _LENGTH_TO_NM:
        raise InputError(f"{p.name}: mesh length unit {sorted(units)} is not supported (expected m or nm)")
    to_nm = _LENGTH_TO_NM[next(iter(units))]
    arr = np.asarray(fld.array, dtype=np.float64)  # (nx, ny, nz, 3)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise InputError(f"{p.name}: expected a 3-D grid of 3-vectors, got array shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{p.name}: the magnetisation has NaN/inf values")
    m = np.transpose(arr, (3, 2, 1, 0)).astype(np.float32)  # (3, Z, Y, X)
    cell = tuple(float(c) * to_nm for c in fld.mesh.cell)  # (x, y, z)
    pmin = tuple(float(c) * to_nm for c in region.pmin)
    return Magnetization(
        m=np.ascontiguousarray(m),
        cell_nm=(cell[2], cell[1], cell[0]),
        unit=unit,
        origin_nm=(pmin[2], pmin[1], pmin[0]),
        path=str(p),
        metadata={"reader": f"discretisedfield {getattr(df, '__version__', '?')}", "file_unit": unit or "unit vectors",
                  "shape_xyz": [int(n) for n in fld.mesh.n]},
    )
