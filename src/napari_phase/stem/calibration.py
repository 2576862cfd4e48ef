"""4D-STEM calibration: beam energy, probe semi-angle, scan step, detector sampling, scan rotation.

Conventions (every 4D-STEM function of the package follows them):

* data are ``(scan_y, scan_x, ky, kx)``; the optical axis sits at the detector centre
  ``(ny // 2, nx // 2)`` (where ``fftshift`` puts k = 0) unless a ``center_px`` is given;
* detector sampling ``detector_mrad_per_px`` (scattering angle per pixel). In reciprocal units
  Δk [1/Å] = Δθ [rad] / λ [Å];
* scan rotation/flip: a centre-of-mass (or any detector) vector m = (mx, my) becomes a scan-frame
  vector g = R(θ) · F(m), F swapping (mx, my) -> (my, mx) when ``transpose`` and
  R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]] acting on (x, y) with θ = ``rotation_deg``. A detector
  frame is therefore k_det = F(R(−θ) k_scan).

A value missing from the file is never guessed: :meth:`Calibration.require` raises an
:class:`~napari_phase.jobs.InputError` naming what to enter.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Mapping

import numpy as np

from .. import validate as _v
from ..jobs import InputError
from ..physics.optics import electron_wavelength_a

#: what each field is called in messages (panel label / CLI option)
FIELD_HELP = {
    "energy_kev": "beam energy (kV) [--energy-kev]",
    "semiangle_mrad": "probe convergence semi-angle (mrad) [--semiangle-mrad]",
    "scan_step_a": "scan step (Å) [--scan-step-a]",
    "detector_mrad_per_px": "detector sampling (mrad/px) [--detector-mrad-per-px]",
}


def detector_center(shape: Iterable[int]) -> tuple[float, float]:
    """The optical axis by convention: (ny // 2, nx // 2) of the last two axes (k = 0 after fftshift)."""
    shape = tuple(shape)
    return float(shape[-2] // 2), float(shape[-1] // 2)


def mrad_per_px_from_inv_a(inv_a_per_px: float, energy_kev: float) -> float:
    """Detector sampling in mrad/px from reciprocal sampling in 1/Å per px: θ = λ k (×1000)."""
    return float(inv_a_per_px) * electron_wavelength_a(energy_kev) * 1e3


def inv_a_per_px_from_mrad(mrad_per_px: float, energy_kev: float) -> float:
    """Reciprocal sampling in 1/Å per px from mrad/px: k = θ / λ."""
    return float(mrad_per_px) * 1e-3 / electron_wavelength_a(energy_kev)


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _positive(value: Any, label: str, field: str, unit: str) -> float:
    """A finite number > 0; the message names the quantity and the argument."""
    v = _v.finite(value, f"{label} ({field})")
    if not v > 0:
        raise InputError(f"{label} must be positive ({field}), got {v:g} {unit}")
    return v


@dataclasses.dataclass
class Calibration:
    """Everything 4D-STEM phase retrieval needs to know about the experiment (units in the names).

    ``scan_step_a`` may be a scalar or (step_y, step_x). ``center_px`` is (cy, cx) in detector
    pixels or None (detector centre). ``defocus_a``: probe defocus (negative = under-focus, the
    DESIGN §3 sign); ``cs_mm``: spherical aberration.
    """

    energy_kev: float | None = None
    semiangle_mrad: float | None = None
    scan_step_a: float | tuple[float, float] | None = None
    detector_mrad_per_px: float | None = None
    rotation_deg: float = 0.0
    transpose: bool = False
    defocus_a: float = 0.0
    cs_mm: float = 0.0
    center_px: tuple[float, float] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None, **overrides: Any) -> "Calibration":
        """From the calibration keys the readers put in layer metadata (``voltage_kv``,
        ``scan_step_a``/``scan_step_y_a``, ``detector_mrad_per_px`` or ``detector_inv_a_per_px`` /
        ``detector_inv_nm_per_px`` (converted with λ once the energy is known), ``semiangle_mrad``,
        ``cs_mm``, ``defocus_nm``/``defocus_a``, ``rotation_deg``, ``transpose``, ``center_px``).
        Keyword ``overrides`` that are not None win."""
        md = dict(metadata or {})
        energy = _num(md.get("energy_kev")) or _num(md.get("voltage_kv"))
        step_x = _num(md.get("scan_step_a"))
        step_y = _num(md.get("scan_step_y_a"))
        step: Any = None
        if step_x is not None:
            step = (step_y, step_x) if step_y is not None and not math.isclose(step_y, step_x, rel_tol=1e-6) else step_x
        det = _num(md.get("detector_mrad_per_px"))
        inv_a = _num(md.get("detector_inv_a_per_px"))
        if inv_a is None and _num(md.get("detector_inv_nm_per_px")) is not None:
            inv_a = _num(md.get("detector_inv_nm_per_px")) / 10.0
        e_for_conv = _num(overrides.get("energy_kev")) or energy
        if det is None and inv_a is not None and e_for_conv:
            det = mrad_per_px_from_inv_a(inv_a, e_for_conv)
        defocus = _num(md.get("defocus_a"))
        if defocus is None and _num(md.get("defocus_nm")) is not None:
            defocus = _num(md.get("defocus_nm")) * 10.0
        center = md.get("center_px")
        if center is not None:
            try:
                center = (float(center[0]), float(center[1]))
            except (TypeError, ValueError, IndexError):
                center = None
        cal = cls(
            energy_kev=energy,
            semiangle_mrad=_num(md.get("semiangle_mrad")),
            scan_step_a=step,
            detector_mrad_per_px=det,
            rotation_deg=_num(md.get("rotation_deg")) or 0.0,
            transpose=bool(md.get("transpose", False)),
            defocus_a=defocus or 0.0,
            cs_mm=_num(md.get("cs_mm")) or 0.0,
            center_px=center,
        )
        return cal.replace(**{k: v for k, v in overrides.items() if v is not None})

    def replace(self, **changes: Any) -> "Calibration":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if isinstance(self.scan_step_a, tuple):
            d["scan_step_a"] = list(self.scan_step_a)
        if self.center_px is not None:
            d["center_px"] = [float(c) for c in self.center_px]
        return d

    # ------------------------------------------------------------------ derived values
    @property
    def wavelength_a(self) -> float:
        self.require("energy_kev")
        return electron_wavelength_a(self.energy_kev)

    @property
    def step_yx_a(self) -> tuple[float, float]:
        """(step_y, step_x) in Å."""
        self.require("scan_step_a")
        s = self.scan_step_a
        if isinstance(s, (tuple, list, np.ndarray)):
            return float(s[0]), float(s[1])
        return float(s), float(s)

    @property
    def detector_inv_a_per_px(self) -> float:
        self.require("energy_kev", "detector_mrad_per_px")
        return inv_a_per_px_from_mrad(self.detector_mrad_per_px, self.energy_kev)

    @property
    def aperture_radius_px(self) -> float:
        """Bright-field disc radius on the detector: α / (mrad per px)."""
        self.require("semiangle_mrad", "detector_mrad_per_px")
        return self.semiangle_mrad / self.detector_mrad_per_px

    @property
    def aperture_inv_a(self) -> float:
        """Probe-forming aperture radius in 1/Å: α / λ."""
        self.require("semiangle_mrad", "energy_kev")
        return self.semiangle_mrad * 1e-3 / self.wavelength_a

    def center_for(self, shape: Iterable[int]) -> tuple[float, float]:
        return tuple(float(c) for c in self.center_px) if self.center_px is not None else detector_center(shape)

    # ------------------------------------------------------------------ checks
    def missing(self, *fields: str) -> list[str]:
        return [f for f in fields if getattr(self, f) is None]

    def require(self, *fields: str) -> "Calibration":
        """Raise InputError naming every missing field (never guess a calibration)."""
        missing = self.missing(*fields)
        if missing:
            names = "; ".join(FIELD_HELP.get(f, f) for f in missing)
            raise InputError(f"missing calibration: {names}. It is not in the file: please enter it")
        return self

    def _normalise(self, detector_shape) -> None:
        """Every value through the shared checks (:mod:`napari_phase.validate`), in place: numbers
        (not strings), finite, positive where they must be, the energy in kV (1–5000), the scan
        step one value or (y, x), the centre (y, x) on the detector."""
        if self.energy_kev is not None:
            self.energy_kev = _v.energy_kv(self.energy_kev, "beam energy (energy_kev)")
        if self.scan_step_a is not None:
            s = self.scan_step_a
            if np.ndim(s) == 0:
                self.scan_step_a = _positive(s, "scan step", "scan_step_a", "Å")
            else:
                sy, sx = _v.pair(s, "scan step (scan_step_a)", "one step in Å or (step_y, step_x)")
                self.scan_step_a = (_positive(sy, "scan step", "scan_step_a", "Å"), _positive(sx, "scan step", "scan_step_a", "Å"))
        if self.detector_mrad_per_px is not None:
            self.detector_mrad_per_px = _positive(self.detector_mrad_per_px, "detector sampling", "detector_mrad_per_px", "mrad/px")
        if self.semiangle_mrad is not None:
            self.semiangle_mrad = _positive(self.semiangle_mrad, "convergence semi-angle", "semiangle_mrad", "mrad")
        for name in ("rotation_deg", "defocus_a", "cs_mm"):
            setattr(self, name, _v.finite(getattr(self, name), name))
        if self.center_px is not None:
            if isinstance(self.center_px, str):
                raise InputError(f"center must be (y, x) in detector pixels or None (the detector centre), got "
                                 f"{self.center_px!r}; for the bright-field disc's centre use stem.disc.detect_disc(mean "
                                 "pattern).center_px (the CLI's --center disc)")
            self.center_px = (_v.point_on_grid(self.center_px, "center", detector_shape) if detector_shape is not None
                              else _v.pair(self.center_px, "center", "(y, x) in detector pixels"))

    def validate(self, detector_shape: Iterable[int] | None = None, *, needs: Iterable[str] = ()) -> "Calibration":
        """Check required fields are present and every value is physical; with ``detector_shape``
        also that the bright-field disc fits on the detector."""
        needs = tuple(needs)
        self.require(*needs)
        self._normalise(detector_shape)
        if detector_shape is not None and self.semiangle_mrad is not None and self.detector_mrad_per_px is not None:
            shape = tuple(detector_shape)
            cy, cx = self.center_for(shape)
            room = min(cy, cx, shape[-2] - 1 - cy, shape[-1] - 1 - cx)
            r = self.aperture_radius_px
            if r > room + 0.5:
                raise InputError(
                    f"the bright-field disc ({self.semiangle_mrad:g} mrad = {r:.1f} px at "
                    f"{self.detector_mrad_per_px:g} mrad/px) is larger than the detector allows around its centre "
                    f"({room:.0f} px): check the semi-angle and the detector sampling")
            if r < 1.0:
                raise InputError(
                    f"the bright-field disc would be {r:.2f} px across its radius ({self.semiangle_mrad:g} mrad at "
                    f"{self.detector_mrad_per_px:g} mrad/px): check the detector sampling")
        return self
