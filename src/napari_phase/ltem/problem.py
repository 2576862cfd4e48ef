"""The set-up shared by the single-image solvers SIPRAD (:mod:`.siprad`) and pixel-wise
(:mod:`.pixelwise`): the validated :class:`Problem`, the differentiable Fresnel
:class:`ForwardModel` (torch), the noise estimate, the SITIE start and the result builder.
Both solvers import it; it imports neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from ..jobs import InputError
from ..physics.induction import induction_from_phase
from ..physics.optics import interaction_constant
from ..result import PhaseResult
from ..validate import MIN_SIZE_PX, as_image, energy_kv, intensities, nonzero, positive
from ..validate import finite as _finite
from ..validate import non_negative as _non_negative



AMPLITUDE_MODES = ("uniform", "joint")


@dataclass
class Problem:
    """Validated input of one call: the data, the microscope, the amplitude mode and its mask."""

    data: np.ndarray  # (Y, X) or (T, Y, X) float32
    pixel_size_nm: float
    microscope: object  # forward.Microscope
    amplitude_mode: str  # "uniform" | "mask" | "joint"
    mask: np.ndarray | None  # (Y, X) bool for mode "mask"
    pad_px: int
    params: dict = field(default_factory=dict)
    boundary: str = "reflect"  # "extend" | "periodic" | "reflect" (see .boundary)

    @property
    def is_series(self) -> bool:
        return self.data.ndim == 3

    @property
    def frames(self) -> np.ndarray:
        return self.data if self.is_series else self.data[None]


def check_amplitude(amplitude, image_shape) -> tuple[str, np.ndarray | None]:
    """('uniform' | 'joint' | 'mask', mask or None) from the ``amplitude`` argument."""
    if isinstance(amplitude, str):
        mode = amplitude.strip().lower()
        if mode not in AMPLITUDE_MODES:
            raise InputError(f"amplitude must be 'uniform', 'joint' or a 2-D contaminant mask, got {amplitude!r}")
        return mode, None
    if amplitude is None:
        return "uniform", None
    from .mask import check_mask

    m = np.asarray(amplitude)
    if m.ndim != 2:
        raise InputError(f"the contaminant mask must be a 2-D array (Y, X), got shape {m.shape}")
    mask = check_mask(m, image_shape)
    if mask.all():
        raise InputError("the contaminant mask covers the whole image: nothing is left as background")
    return "mask", mask


def default_pad_px(shape, pixel_size_nm: float, mic) -> int:
    """Reflect padding for the forward model: 1.5 × the lateral reach λ|Δf|q_max of the transfer
    function (q_max where the spatial envelope falls below e⁻³, or Nyquist), at least 8 px, at
    most half the larger side and below the smaller side (what reflect padding allows)."""
    reach_px = mic.reach_px(pixel_size_nm)
    ny, nx = int(shape[-2]), int(shape[-1])
    pad = max(8, int(math.ceil(1.5 * reach_px)))
    return int(max(1, min(pad, max(ny, nx) // 2, min(ny, nx) - 1)))


def make_problem(
    image,
    *,
    pixel_size_nm,
    defocus_nm,
    voltage_kv=200.0,
    cs_mm=1.0,
    divergence_mrad=0.01,
    defocus_spread_nm=100.0,
    amplitude="uniform",
    pad_px=None,
    boundary="auto",
    min_size_px: int = MIN_SIZE_PX,
) -> Problem:
    """Validate everything the LTEM fitting solvers share; raise InputError with a plain message."""
    from .forward import Microscope

    data = as_image(image, name="image", ndim=(2, 3), min_size_px=min_size_px)
    if data.ndim == 3:
        for t, frame in enumerate(data):
            if float(frame.max()) == float(frame.min()):
                raise InputError(f"frame {t} of the series is constant (no contrast): nothing to reconstruct")
    means = data.reshape(-1, data.shape[-2] * data.shape[-1]).mean(axis=1)
    if (means <= 0).any():
        raise InputError("the image has a non-positive mean intensity; give intensities (counts), not a difference image")
    intensities(data, "image")
    px = positive(pixel_size_nm, "pixel_size_nm", "nm")
    df = nonzero(defocus_nm, "defocus_nm", "nm")
    kv = energy_kv(voltage_kv, "voltage_kv")
    cs = _finite(cs_mm, "cs_mm")
    div = _non_negative(divergence_mrad, "divergence_mrad")
    spread = _non_negative(defocus_spread_nm, "defocus_spread_nm")
    mic = Microscope(voltage_kv=kv, defocus_nm=df, cs_mm=cs, divergence_mrad=div, defocus_spread_nm=spread)
    mode, mask = check_amplitude(amplitude, data.shape)
    from .boundary import BOUNDARIES, looks_periodic

    requested = str(boundary).strip().lower() if isinstance(boundary, str) else boundary
    if requested not in BOUNDARIES:
        raise InputError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")
    kind = requested
    if kind == "auto":
        kind = "periodic" if looks_periodic(data) else "extend"
    if kind == "periodic":
        pad_px = 0
    if pad_px is None:
        pad = default_pad_px(data.shape, px, mic)
    else:
        try:
            pad = int(pad_px)
        except (TypeError, ValueError):
            raise InputError(f"pad_px must be an integer or None, got {pad_px!r}") from None
        if pad < 0:
            raise InputError(f"pad_px must be >= 0, got {pad}")
        if kind == "reflect":
            pad = min(pad, min(data.shape[-2:]) - 1)
    params = {
        "pixel_size_nm": px,
        "defocus_nm": df,
        "voltage_kv": kv,
        "cs_mm": cs,
        "divergence_mrad": div,
        "defocus_spread_nm": spread,
        "amplitude": mode,
        "pad_px": pad,
        "boundary": kind,
        "boundary_requested": requested,
        "input_shape": tuple(int(s) for s in data.shape),
    }
    if mask is not None:
        params["mask_pixels"] = int(mask.sum())
    return Problem(data, px, mic, mode, mask, pad, params, kind)


def _int_at_least(value, name: str, low: int) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be an integer, got {value!r}") from None
    if v < low or v != float(value):
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    return v


def sitie_init(frame: np.ndarray, problem: Problem, qc_per_nm) -> np.ndarray:
    """SITIE phase of one frame; contaminant pixels (mask mode) are first set to the mean of the
    background so that the particles do not imprint a spurious phase on the start."""
    from .sitie import sitie_phase

    img = np.asarray(frame, dtype=np.float32)
    if problem.mask is not None and problem.mask.any():
        img = img.copy()
        img[problem.mask] = float(img[~problem.mask].mean())
    mic = problem.microscope
    return sitie_phase(img, pixel_size_nm=problem.pixel_size_nm, defocus_nm=mic.defocus_nm, voltage_kv=mic.voltage_kv, qc_per_nm=qc_per_nm)


class ForwardModel:
    """Torch forward model of one problem on one device: normalised target, transfer, amplitude."""

    def __init__(self, problem: Problem, device, mean_inner_potential_v: float, extinction_length_nm: float) -> None:
        import torch

        from .boundary import canvas_margins

        self.torch = torch
        self.device = device
        self.problem_microscope = problem.microscope
        self.pixel_size_nm = problem.pixel_size_nm
        ny, nx = problem.data.shape[-2:]
        self.window_shape = (int(ny), int(nx))
        self.boundary = problem.boundary
        #: margins of the canvas the phase lives on ("extend": free ring; else none)
        self.margins = canvas_margins((ny, nx), problem.pad_px) if self.boundary == "extend" else ((0, 0), (0, 0))
        (t, b), (l, r) = self.margins
        self.canvas_shape = (ny + t + b, nx + l + r)
        self.pad = problem.pad_px if self.boundary == "reflect" else 0  # reflect padding inside image_from_wave
        cy, cx = self.canvas_shape
        transfer = problem.microscope.transfer((cy + 2 * self.pad, cx + 2 * self.pad), problem.pixel_size_nm)
        self.transfer = torch.as_tensor(transfer.astype(np.complex64), device=device)
        #: φe per unit of −ln A: σ V0 ξ (rad).
        self.phase_per_log_amp = interaction_constant(problem.microscope.voltage_kv, "nm") * float(mean_inner_potential_v) * float(
            extinction_length_nm
        )
        self.mask = None if problem.mask is None else torch.as_tensor(problem.mask, device=device)

    def target(self, frame: np.ndarray):
        y = np.asarray(frame, dtype=np.float64)
        return self.torch.as_tensor((y / y.mean()).astype(np.float32), device=self.device)

    @property
    def extended(self) -> bool:
        return self.canvas_shape != self.window_shape

    def crop(self, x):
        """The image window of a canvas map (identity without a ring)."""
        if not self.extended:
            return x
        (t, _), (l, _) = self.margins
        ny, nx = self.window_shape
        return x[..., t : t + ny, l : l + nx]

    def to_canvas(self, a: np.ndarray) -> np.ndarray:
        """Start values on the canvas (the window's map mirrored into the ring)."""
        from .boundary import extend_reflect

        return extend_reflect(a, self.margins) if self.extended else np.asarray(a, dtype=np.float32)

    def image(self, phase_m, neg_log_amp=None):
        """Simulated image (unscaled, window only) of φm on the canvas and an optional −ln A map of
        the window (zero, i.e. A = 1, in the ring)."""
        from .forward import image_from_wave

        if neg_log_amp is None:
            return self.crop(image_from_wave(phase_m, 1.0, self.transfer, self.pad))
        if self.extended:
            (t, b), (l, r) = self.margins
            neg_log_amp = self.torch.nn.functional.pad(neg_log_amp, (l, r, t, b))
        phase = phase_m + self.phase_per_log_amp * neg_log_amp
        return self.crop(image_from_wave(phase, self.torch.exp(-neg_log_amp), self.transfer, self.pad))

    def loss(self, sim, y):
        """MSE after the closed-form intensity scale; returns (loss, scale)."""
        scale = ((sim * y).sum() / (sim * sim).sum().clamp_min(1e-12)).detach()
        return ((scale * sim - y) ** 2).mean(), scale


def noise_variance(y: np.ndarray) -> float:
    """Gaussian noise variance of an image from its finest scale: the diagonal Haar detail
    d = (a − b − c + e)/2 of each 2×2 block has the noise's variance for white noise and almost no
    signal when the image is smooth on the pixel scale; σ = median(|d|)/0.6745 (robust MAD)."""
    a = np.asarray(y, dtype=np.float64)
    ny, nx = (a.shape[-2] // 2) * 2, (a.shape[-1] // 2) * 2
    a = a[..., :ny, :nx]
    d = (a[..., 0::2, 0::2] - a[..., 1::2, 0::2] - a[..., 0::2, 1::2] + a[..., 1::2, 1::2]) / 2
    return float(np.median(np.abs(d)) / 0.6745) ** 2


def smooth(phase: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing of the last two axes (σ in px; 0 = none), edges mirrored."""
    if not sigma_px:
        return np.asarray(phase, dtype=np.float32)
    from scipy.ndimage import gaussian_filter

    sig = (0,) * (np.ndim(phase) - 2) + (float(sigma_px), float(sigma_px))
    return gaussian_filter(np.asarray(phase, dtype=np.float32), sig, mode="reflect")


def build_result(
    method: str,
    problem: Problem,
    phases: list[np.ndarray],
    amplitudes: list[np.ndarray | None],
    phase_per_log_amp: float,
    smoothing_px: float,
    metadata: dict,
) -> PhaseResult:
    """PhaseResult of the frames solved so far (each frame complete), series-shaped if the input was."""
    phase = np.stack([smooth(p - p.mean(), smoothing_px) for p in phases])
    bx, by = induction_from_phase(phase, problem.pixel_size_nm)
    arrays: dict[str, np.ndarray] = {"phase": phase, "bx": bx, "by": by}
    if problem.amplitude_mode != "uniform" and all(a is not None for a in amplitudes):
        amp = np.stack([np.asarray(a, dtype=np.float32) for a in amplitudes])
        arrays["amplitude"] = amp
        arrays["phase_electrostatic"] = (phase_per_log_amp * -np.log(np.clip(amp, 1e-6, None))).astype(np.float32)
    if not problem.is_series:
        arrays = {k: v[0] for k, v in arrays.items()}
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
    meta = {
        "method": method,
        "version": __version__,
        "sign_convention": "defocus = propagation distance along the beam, negative = under-focus (opposite to PyLorentz)",
    }
    meta.update(metadata)
    result = PhaseResult(arrays=arrays, pixel_size=problem.pixel_size_nm, pixel_unit="nm", metadata=meta)
    from .fit_check import attach_fit_check  # does the result explain the image it came from?

    frames = problem.frames[: len(phases)]
    amps = arrays.get("amplitude")
    # how far each image is from the weak-phase regime: what its own SITIE phase leaves unexplained
    from .sitie import sitie_phase

    mic = problem.microscope
    linear = np.stack([sitie_phase(np.asarray(f, dtype=np.float32), pixel_size_nm=problem.pixel_size_nm, defocus_nm=mic.defocus_nm,
                                   voltage_kv=mic.voltage_kv) for f in frames])
    return attach_fit_check(result, frames[0] if not problem.is_series else frames, pixel_size_nm=problem.pixel_size_nm,
                            defocus_nm=problem.microscope.defocus_nm, microscope=problem.microscope, amplitudes=None if amps is None else
                            (amps[None] if not problem.is_series else amps), linear_phases=linear[0] if not problem.is_series else linear)


def preview(phases: list[np.ndarray], problem: Problem, smoothing_px: float, method: str, frame: int) -> PhaseResult:
    """Cheap partial result (phase only) for live display."""
    ph = np.stack([smooth(p - p.mean(), smoothing_px) for p in phases])
    if not problem.is_series:
        ph = ph[0]
    return PhaseResult(arrays={"phase": ph}, pixel_size=problem.pixel_size_nm, metadata={"method": method, "partial": True, "frame": frame})


def seeded(make, seed: int):
    """Build a module with torch's global RNG seeded, without disturbing the caller's RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return make()


def _jsonable(v):
    if isinstance(v, tuple):
        return list(v)
    return v
