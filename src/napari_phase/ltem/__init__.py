"""Lorentz-TEM phase retrieval: SITIE and TIE baselines, SIPRAD, pixel-wise solver, simulation.

Public API: ``sitie``, ``tie``, ``siprad``, ``pixelwise`` (each returns a PhaseResult) and their
``*_job`` generators for progress/cancel; ``tie`` takes any odd through-focus series and a flipped
series (modules ``series``, ``align``); ``simulate_from_magnetization`` images a micromagnetic state. The functions are bound here eagerly so that
``ltem.sitie`` is the function, never the submodule of the same name.
"""

from .forward import Microscope, simulate_image
from .micromagnetic import simulate_from_magnetization
from .pixelwise import pixelwise, pixelwise_job
from .siprad import siprad, siprad_job
from .sitie import sitie, sitie_job
from .tie import tie, tie_job

__all__ = [
    "Microscope",
    "pixelwise",
    "pixelwise_job",
    "simulate_from_magnetization",
    "simulate_image",
    "siprad",
    "siprad_job",
    "sitie",
    "sitie_job",
    "tie",
    "tie_job",
]
