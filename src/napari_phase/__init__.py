"""napari-phase: phase retrieval for transmission electron microscopy, in napari and from Python."""

__version__ = "0.1.0"

from .result import PhaseResult  # noqa: E402

__all__ = ["PhaseResult", "__version__"]
