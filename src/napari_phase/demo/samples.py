"""The bundled sample files as arrays for the demo (napari layers are built by io.sample_data)."""

from __future__ import annotations

import json

import numpy as np


def load_sample(name: str) -> tuple[np.ndarray, dict, dict]:
    """(image or data, truth arrays, metadata) of a bundled sample .npz: the first of ``image``,
    ``data`` (4D-STEM) or ``triplet`` (FlowTIE) is the input, every other array a truth."""
    from ..io.sample_data import sample_path

    with np.load(sample_path(name)) as z:
        meta = json.loads(str(z["metadata_json"]))
        key = next(k for k in ("image", "data", "triplet") if k in z.files)
        truth = {k: np.array(z[k]) for k in z.files if k not in (key, "metadata_json")}
        return np.array(z[key]), truth, meta
