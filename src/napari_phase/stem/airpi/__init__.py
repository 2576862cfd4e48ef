"""The 4D-STEM CNN after the public airpi design (Friedrich, Yu, Verbeeck, Van Aert, Microsc.
Microanal. 2023): a U-Net retrieves the exit wave of each probe position from the 3x3 kernel of
neighbouring diffraction patterns; patches of the phase object are stitched by complex summation.

Modules: ``preprocess`` (dimensionless window, probe, resampling, I^0.1), ``model`` (U-Net),
``loss``, ``data`` (on-the-fly training batches), ``train`` (training, fine-tuning, model card),
``stitch``, ``reconstruct`` (:func:`cnn`, :func:`cnn_job`), ``cli`` (``napari-phase train cnn``).
"""

from __future__ import annotations

from .reconstruct import cnn, cnn_job, load_network
from .train import finetune_job, train_cnn, train_cnn_job

__all__ = ["cnn", "cnn_job", "finetune_job", "load_network", "train_cnn", "train_cnn_job"]
