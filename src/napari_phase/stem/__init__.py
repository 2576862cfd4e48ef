"""4D-STEM phase retrieval: calibration, bright-field disc, virtual detectors, CoM/iCoM, SSB, the CNN.

Public API (data as (scan_y, scan_x, ky, kx): numpy, memmap or dask; optical axis at the detector
centre (ny // 2, nx // 2) unless ``center=``):

* ``icom(data, *, energy_kev, scan_step_a, detector_mrad_per_px, rotation_deg=0.0, transpose=False, center=None)``
* ``ssb(data, *, energy_kev, semiangle_mrad, scan_step_a, detector_mrad_per_px, rotation_deg=0.0, transpose=False, center=None)``
* ``cnn(data, *, energy_kev, semiangle_mrad, scan_step_a, detector_mrad_per_px, oversample=2, model="default", device="auto", client=None, ...)``
  (the network lives in :mod:`napari_phase.stem.airpi`, imported on first call)

each with ``descan="plane"|"constant"|"off"`` (the beam centre fitted over the scan and removed:
:mod:`napari_phase.stem.descan`; the fit in ``metadata["descan"]``), each returning a
:class:`~napari_phase.result.PhaseResult` (``.phase`` in rad, ``.pixel_size_a``,
``.metadata``), with ``*_job`` generators for progress and cancel. Also :class:`Calibration`,
:func:`detect_disc`, :func:`virtual_image`, :func:`com_maps`, :func:`guess_rotation`.
"""

from __future__ import annotations

from typing import Any

from ._data import mean_pattern, mean_pattern_job
from .calibration import Calibration, detector_center, inv_a_per_px_from_mrad, mrad_per_px_from_inv_a
from .com import ComMaps, com_maps, guess_rotation, icom, icom_job, integrate_gradient, rotation_guess_job
from .descan import DescanFit, fit_descan
from .detectors import (annular_bright_field, annular_dark_field, annulus_mask, bright_field, virtual_image,
                        virtual_image_job)
from .disc import DiscFit, detect_disc, disc_job
from .ssb import ssb, ssb_job


def cnn(data: Any, *, energy_kev: float | None, semiangle_mrad: float | None, scan_step_a: float | tuple | None,
        detector_mrad_per_px: float | None, oversample: int = 2, model: str = "default", device: str = "auto",
        client=None, **kwargs: Any):
    """The 4D-STEM CNN (airpi): exit waves from 3x3 kernels of patterns, stitched into the phase
    object (rad) on a grid of scan_step/oversample Å whose origin is the first scan position.
    ``model``: "default" (shipped) or a fine-tuned ``.pt`` path; ``client``: a dask.distributed
    client to reconstruct row blocks on a cluster; ``low_frequency``: "icom", "ssb" or None, where the
    phase's low spatial frequencies come from (stem/airpi/lowfreq.py). Other options:
    :func:`napari_phase.stem.airpi.cnn` (imported on first use: torch loads only when the CNN runs)."""
    from .airpi import cnn as _cnn

    return _cnn(data, energy_kev=energy_kev, semiangle_mrad=semiangle_mrad, scan_step_a=scan_step_a,
                detector_mrad_per_px=detector_mrad_per_px, oversample=oversample, model=model,
                device=device, client=client, **kwargs)


def cnn_job(data: Any, **kwargs: Any):
    """The CNN as a job (progress, cancel, partial results row by row); see :mod:`napari_phase.stem.airpi`."""
    from .airpi import cnn_job as _cnn_job

    return _cnn_job(data, **kwargs)


__all__ = [
    "Calibration",
    "ComMaps",
    "DescanFit",
    "DiscFit",
    "annular_bright_field",
    "annular_dark_field",
    "annulus_mask",
    "bright_field",
    "cnn",
    "cnn_job",
    "com_maps",
    "detect_disc",
    "disc_job",
    "fit_descan",
    "detector_center",
    "guess_rotation",
    "icom",
    "icom_job",
    "integrate_gradient",
    "inv_a_per_px_from_mrad",
    "mean_pattern",
    "mean_pattern_job",
    "mrad_per_px_from_inv_a",
    "rotation_guess_job",
    "ssb",
    "ssb_job",
    "virtual_image",
    "virtual_image_job",
]
