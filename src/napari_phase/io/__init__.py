"""Data in and out: readers (TEM / 4D-STEM formats -> calibrated arrays and layers), writers
(layers and results -> TIFF / HDF5 / NPZ) and the bundled sample data. No Qt here; napari is only
imported where a layer needs it."""

from .readers import (
    CALIBRATION_KEYS,
    LAZY_THRESHOLD_BYTES,
    SUPPORTED_EXTENSIONS,
    Dataset,
    get_reader,
    load,
    load_all,
    read,
)
from .magnetization import Magnetization, read_magnetization
from .sample_data import list_samples, load_sample_npz
from .writer import (
    load_result,
    result_to_layer_data,
    save_result,
    write_layers,
    write_single_image,
)

__all__ = [
    "CALIBRATION_KEYS",
    "LAZY_THRESHOLD_BYTES",
    "Magnetization",
    "SUPPORTED_EXTENSIONS",
    "Dataset",
    "get_reader",
    "list_samples",
    "load",
    "load_all",
    "load_result",
    "load_sample_npz",
    "read",
    "read_magnetization",
    "result_to_layer_data",
    "save_result",
    "write_layers",
    "write_single_image",
]
