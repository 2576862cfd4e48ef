"""Lorentz-TEM phase retrieval: SITIE and TIE baselines, SIPRAD, simulation, forward model."""

from .forward import Microscope, simulate_image
from .sitie import sitie, sitie_job
from .tie import tie, tie_job
from .siprad import siprad, siprad_job

__all__ = ["Microscope", "simulate_image", "sitie", "sitie_job", "tie", "tie_job", "siprad", "siprad_job"]
