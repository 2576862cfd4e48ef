"""Dock panels (Qt). One module per panel, plus shared helpers:

- ``_runner.JobRunner``: Run / Cancel / progress for any job of :mod:`napari_phase.jobs`, in
  napari's thread worker, with live partial results and errors as notifications; ``LayerCombo``,
  a layer chooser kept in sync with the viewer.
- ``_layers.result_to_layers`` / ``add_or_update``: a PhaseResult as calibrated napari layers.
- ``siprad_panel.SipradPanel``: the "SIPRAD (LTEM)" panel; ``mask_tool.MaskTool``: the contaminant
  threshold + brush tool it embeds.

Nothing here is imported by the package at start-up; napari imports the panels when they open.
"""
