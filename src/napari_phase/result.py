"""The one result type every method returns.

A :class:`PhaseResult` holds named arrays (phase in rad, induction in T·nm, ...), the pixel size
and its unit, the unit of each array, and a metadata dict (method, version, every parameter, seed,
device, runtime). Panels turn it into layers, the writer saves it, the CLI writes it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

#: Unit of each well-known array name; anything else defaults to "" (dimensionless).
DEFAULT_ARRAY_UNITS = {
    "phase": "rad",
    "phase_electrostatic": "rad",
    "bx": "T·nm",
    "by": "T·nm",
    "b_magnitude": "T·nm",
    "amplitude": "",
    "color_b": "RGB",
    "flow_y": "rad/px",
    "flow_x": "rad/px",
    "flow": "rad/Å",
    "phase_sigma": "rad",
    "bx_sigma": "T·nm",
    "by_sigma": "T·nm",
}


@dataclasses.dataclass
class PhaseResult:
    """Arrays of one reconstruction with their calibration and provenance.

    ``arrays``: name -> numpy array, axis order (..., y, x). ``pixel_size`` is the sampling of the
    last two axes in ``pixel_unit`` ("nm" for LTEM, "Å" for 4D-STEM). ``array_units`` gives the
    unit of each array ("rad", "T·nm", ...). ``metadata`` holds method, version, parameters, seed,
    device, runtime_s and anything else that makes the result reproducible.
    """

    arrays: dict[str, np.ndarray]
    pixel_size: float
    pixel_unit: str = "nm"
    array_units: dict[str, str] = dataclasses.field(default_factory=dict)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.arrays = {k: np.asarray(v) for k, v in self.arrays.items() if v is not None}
        for name in self.arrays:
            self.array_units.setdefault(name, DEFAULT_ARRAY_UNITS.get(name, ""))

    # The common arrays, by name; None where the method did not produce them.
    @property
    def phase(self) -> np.ndarray | None:
        return self.arrays.get("phase")

    @property
    def bx(self) -> np.ndarray | None:
        return self.arrays.get("bx")

    @property
    def by(self) -> np.ndarray | None:
        return self.arrays.get("by")

    @property
    def amplitude(self) -> np.ndarray | None:
        return self.arrays.get("amplitude")

    @property
    def flow(self) -> np.ndarray | None:
        """Phase-gradient flow (2, ..., y, x) = (∂φ/∂y, ∂φ/∂x), unit in ``unit_of("flow")`` (FlowTIE: rad/Å)."""
        return self.arrays.get("flow")

    @property
    def pixel_size_a(self) -> float:
        """Pixel size in Å whatever ``pixel_unit`` is (Å, nm, pm, µm)."""
        factor = {"Å": 1.0, "A": 1.0, "angstrom": 1.0, "nm": 10.0, "pm": 0.01, "µm": 1e4, "um": 1e4}.get(self.pixel_unit)
        if factor is None:
            raise ValueError(f"pixel unit {self.pixel_unit!r} is not a length")
        return float(self.pixel_size) * factor

    @property
    def cancelled(self) -> bool:
        return bool(self.metadata.get("cancelled", False))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    def unit_of(self, name: str) -> str:
        return self.array_units.get(name, "")

    def metadata_json(self) -> str:
        """Metadata as JSON (numpy values converted), for writers and layer metadata."""
        return json.dumps(self.metadata, default=_to_jsonable, sort_keys=True)

    def summary(self) -> str:
        parts = [f"{self.metadata.get('method', '?')} result, pixel {self.pixel_size:g} {self.pixel_unit}"]
        for name, arr in self.arrays.items():
            unit = self.unit_of(name)
            parts.append(f"  {name}: shape {arr.shape}, {arr.dtype}" + (f", {unit}" if unit else ""))
        if "runtime_s" in self.metadata:
            parts.append(f"  runtime {self.metadata['runtime_s']:.2f} s on {self.metadata.get('device', '?')}")
        return "\n".join(parts)


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.size > 64:
            return f"<array shape={value.shape} dtype={value.dtype}>"
        return value.tolist()
    return str(value)
