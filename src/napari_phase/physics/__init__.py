"""Physics shared by every method: constants, electron optics, induction, metrics (numpy)."""

from .constants import HBAR_OVER_E_T_NM2
from .induction import (
    color_wheel_image,
    color_wheel_legend,
    induction_from_phase,
    phase_from_induction,
    phase_from_magnetization,
)
from .metrics import compare, induction_accuracy, pearson_accuracy, psnr, ssim, xc
from .optics import (
    chi,
    electron_wavelength_a,
    electron_wavelength_nm,
    fft_frequencies,
    fresnel_propagator,
    interaction_constant,
    lens_transfer,
    temporal_envelope,
    spatial_envelope,
)

__all__ = [
    "HBAR_OVER_E_T_NM2",
    "chi",
    "color_wheel_image",
    "color_wheel_legend",
    "compare",
    "electron_wavelength_a",
    "electron_wavelength_nm",
    "fft_frequencies",
    "fresnel_propagator",
    "induction_from_phase",
    "induction_accuracy",
    "interaction_constant",
    "lens_transfer",
    "pearson_accuracy",
    "phase_from_induction",
    "phase_from_magnetization",
    "psnr",
    "spatial_envelope",
    "ssim",
    "temporal_envelope",
    "xc",
]
