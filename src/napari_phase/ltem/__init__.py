"""Lorentz-TEM phase retrieval: SITIE and TIE baselines, SIPRAD, pixel-wise solver, simulation.

Public API: ``sitie``, ``tie``, ``siprad``, ``pixelwise`` (each returns a PhaseResult) and their
``*_job`` generators for progress/cancel. Imported lazily so that ``ltem.simulate`` stays light.
"""

from importlib import import_module

_EXPORTS = {
    "Microscope": "forward",
    "simulate_image": "forward",
    "sitie": "sitie",
    "sitie_job": "sitie",
    "tie": "tie",
    "tie_job": "tie",
    "siprad": "siprad",
    "siprad_job": "siprad",
    "pixelwise": "pixelwise",
    "pixelwise_job": "pixelwise",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
