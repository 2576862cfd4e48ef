"""Sample data contribution: simulated LTEM images with their ground truth.

The files live in the package (``napari_phase/sample_data/*.npz``), written by
``sample_data/make_samples.py``. Each holds ``image`` (LTEM intensity, float32), ``phase_true``
(magnetic phase, rad), optionally ``mask_true`` (contaminant pixels) and ``metadata_json`` (a JSON
dict: pixel_size_nm, defocus_nm, voltage_kv, cs_mm, divergence_mrad, defocus_spread_nm, noise,
texture, seed, ...). The image layer's metadata carries that dict flat, so panels prefill their
parameters from it.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..jobs import InputError

#: Sample key -> (file name, display name).
SAMPLES = {
    "ltem_skyrmions": ("ltem_skyrmions.npz", "LTEM skyrmion lattice"),
    "ltem_stripes": ("ltem_stripes.npz", "LTEM stripe domains"),
    "stem_srtio3": ("stem_srtio3.npz", "4D-STEM SrTiO3 [001]"),
    "flowtie_srtio3": ("flowtie_srtio3.npz", "FlowTIE SrTiO3 triplet"),
}


def list_samples() -> list[str]:
    """Names of the samples shipped with the package (those whose file is present)."""
    return [key for key, (fname, _) in SAMPLES.items() if _packaged(fname).is_file()]


def sample_path(key: str) -> Path:
    """Path of a packaged sample file (raises InputError if missing)."""
    if key not in SAMPLES:
        raise InputError(f"unknown sample {key!r}; available: {', '.join(SAMPLES)}")
    p = _packaged(SAMPLES[key][0])
    if not p.is_file():
        raise InputError(f"sample file {p.name} is missing from the installation; "
                         "regenerate it with `python sample_data/make_samples.py`")
    return p


def skyrmion_lattice_ltem() -> list[tuple]:
    """Simulated LTEM image of a skyrmion lattice with contaminants (-1 mm, noisy) + true phase."""
    return load_sample_npz(sample_path("ltem_skyrmions"), name=SAMPLES["ltem_skyrmions"][1])


def stripe_domains_ltem() -> list[tuple]:
    """Simulated LTEM image of stripe domains (-0.5 mm) + true phase."""
    return load_sample_npz(sample_path("ltem_stripes"), name=SAMPLES["ltem_stripes"][1])


def load_sample_npz(path: str | Path, name: str | None = None) -> list[tuple]:
    """napari LayerData for a sample .npz: the image (scale in nm, calibration metadata), the true
    phase (hidden, rad) and, if present, the true contaminant mask (hidden Labels)."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as npz:
            if "image" not in npz.files:
                raise InputError(f"Cannot read sample {p.name}: it has no 'image' array")
            image = np.asarray(npz["image"], dtype=np.float32)
            phase = np.asarray(npz["phase_true"], dtype=np.float32) if "phase_true" in npz.files else None
            mask = np.asarray(npz["mask_true"]) if "mask_true" in npz.files else None
            meta = _meta(npz, p)
    except InputError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"Cannot read sample {p.name}: {exc}") from exc
    name = name or p.stem
    px = meta.get("pixel_size_nm")
    spatial: dict[str, Any] = {}
    if isinstance(px, (int, float)) and px > 0:
        spatial = {"scale": [float(px), float(px)], "units": ["nm", "nm"]}
    base = {**meta, "source_path": str(p), "sample": meta.get("sample", p.stem)}
    layers: list[tuple] = [
        (image, {"name": name, "colormap": "gray", **spatial,
                 "metadata": {**base, "kind": "image", "array_name": "image", "unit": ""}}, "image"),
    ]
    if phase is not None:
        layers.append((phase, {"name": f"{name} true phase", "colormap": "gray", "visible": False, **spatial,
                               "metadata": {**base, "kind": "ground_truth", "array_name": "phase_true",
                                            "unit": "rad"}}, "image"))
    if mask is not None and mask.shape == image.shape:
        layers.append((mask.astype(np.uint8), {"name": f"{name} true mask", "visible": False, **spatial,
                                               "metadata": {**base, "kind": "ground_truth", "array_name": "mask_true"}},
                       "labels"))
    return layers


def _meta(npz: Any, p: Path) -> dict:
    if "metadata_json" not in npz.files:
        return {}
    raw = np.asarray(npz["metadata_json"]).item()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        meta = json.loads(str(raw))
    except ValueError as exc:
        raise InputError(f"Cannot read sample {p.name}: its metadata_json is not valid JSON") from exc
    return meta if isinstance(meta, dict) else {}


def _packaged(fname: str) -> Path:
    return Path(str(resources.files("napari_phase").joinpath("sample_data", fname)))


def flowtie_srtio3_triplet() -> list[tuple]:
    """Defocus triplet (−2, 0, +2 nm) of 20 nm SrTiO3 [001] (300 kV, 20 mrad, 1e5 e/Å²) + true σV and exit-wave phase."""
    return load_triplet_sample_npz(sample_path("flowtie_srtio3"), name=SAMPLES["flowtie_srtio3"][1])


def load_triplet_sample_npz(path: str | Path, name: str = "FlowTIE SrTiO3 triplet") -> list[tuple]:
    """napari LayerData for a FlowTIE sample .npz (``triplet`` (3, H, W) ordered (−dz, 0, +dz),
    ``sigma_v`` and ``exit_wave_phase`` in rad, ``metadata_json`` with ``pixel_size_a``): the stacked
    triplet with its calibration flat in the metadata, and the two truths (hidden), all scaled in Å.
    (The file is written by ``napari_phase.flowtie.sample``; reading it needs no method.)"""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as npz:
            tri = np.asarray(npz["triplet"], np.float32)
            sv = np.asarray(npz["sigma_v"], np.float32)
            ew = np.asarray(npz["exit_wave_phase"], np.float32)
            meta = _meta(npz, p)
        px = float(meta["pixel_size_a"])
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputError(f"Cannot read the FlowTIE sample {p}: {exc}") from exc
    spatial = {"scale": [px, px], "units": ["angstrom", "angstrom"]}
    base = {**meta, "source_path": str(p)}
    return [
        (tri, {"name": name, "colormap": "gray", "scale": [1.0, px, px], "units": ["pixel", "angstrom", "angstrom"],
               "metadata": {**base, "array_name": "triplet", "unit": ""}}, "image"),
        (sv, {"name": f"{name} true σV [rad]", "colormap": "gray", "visible": False, **spatial,
              "metadata": {**base, "kind": "ground_truth", "array_name": "sigma_v", "unit": "rad"}}, "image"),
        (ew, {"name": f"{name} true exit-wave phase [rad]", "colormap": "gray", "visible": False, **spatial,
              "metadata": {**base, "kind": "ground_truth", "array_name": "exit_wave_phase", "unit": "rad"}}, "image"),
    ]


def srtio3_4dstem() -> list[tuple]:
    """Simulated 4D-STEM of SrTiO3 [001] (300 kV, 20 mrad, 64² detector, 1e5 e/Å²) + true phase."""
    return load_stem_sample_npz(sample_path("stem_srtio3"), name=SAMPLES["stem_srtio3"][1])


#: napari renders units only when every layer agrees on each displayed axis: 4D-STEM patterns are
#: therefore drawn in the scan's length unit, beside the scan images (not in mrad over them)
DISPLAY_UNIT = "angstrom"


def detector_beside_scan(scan_shape, steps_yx_a, det_shape) -> dict:
    """Display geometry of detector-pixel images (patterns, the 4-D layer's detector axes): as tall
    as the scan (sy·step_y Å), translated right of it by 1.1 × its width, in DISPLAY_UNIT.
    Returns {"scale": [s, s], "translate": [0, x0], "units": [unit, unit]} for the last two axes;
    the patterns' own sampling stays in the metadata (``detector_mrad_per_px``)."""
    sy, sx = (int(v) for v in scan_shape)
    step_y, step_x = (float(v) for v in steps_yx_a)
    s = sy * step_y / int(det_shape[0])
    return {"scale": [s, s], "translate": [0.0, 1.1 * sx * step_x], "units": [DISPLAY_UNIT, DISPLAY_UNIT]}


def load_stem_sample_npz(path: str | Path, name: str | None = None) -> list[tuple]:
    """napari LayerData for a 4D-STEM sample .npz (``data`` counts (scan_y, scan_x, ky, kx),
    ``phase_true`` σV in rad, ``metadata_json``): the 4-D layer with scan axes in Å and detector
    axes in mrad, its calibration flat in the metadata (the 4D-STEM panel prefills from it), and
    the true phase object (hidden) on its own finer grid, origin at the first scan position. The
    detector axes are displayed beside the scan (:func:`detector_beside_scan`): one unit (Å) on
    every displayed axis, so napari raises no "Inconsistent units" warning and a result drawn
    on the scan grid is not covered by the patterns."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as npz:
            if "data" not in npz.files:
                raise InputError(f"Cannot read sample {p.name}: it has no 'data' array")
            data = np.asarray(npz["data"])
            phase = np.asarray(npz["phase_true"], dtype=np.float32) if "phase_true" in npz.files else None
            meta = _meta(npz, p)
    except InputError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"Cannot read sample {p.name}: {exc}") from exc
    if data.ndim != 4:
        raise InputError(f"Cannot read sample {p.name}: 'data' is {data.ndim}-D, not 4-D")
    name = name or p.stem
    step = float(meta.get("scan_step_a", 1.0))
    det = float(meta.get("detector_mrad_per_px", 1.0))
    base = {**meta, "source_path": str(p), "sample": meta.get("sample", p.stem)}
    beside = detector_beside_scan(data.shape[:2], (step, step), data.shape[2:])
    layers: list[tuple] = [
        (data, {"name": name, "colormap": "gray", "scale": [step, step, *beside["scale"]],
                "translate": [0.0, 0.0, *beside["translate"]],
                "units": ["angstrom", "angstrom", *beside["units"]], "axis_labels": ["scan_y", "scan_x", "ky", "kx"],
                "metadata": {**base, "kind": "4dstem", "array_name": "data", "unit": "counts",
                             "axis_names": ["scan_y", "scan_x", "ky", "kx"]}}, "image"),
    ]
    if phase is not None:
        px = float(meta.get("phase_pixel_size_a", step))
        layers.append((phase, {"name": f"{name} true phase", "colormap": "gray", "visible": False,
                               "scale": [px, px], "units": ["angstrom", "angstrom"],
                               "metadata": {**base, "kind": "ground_truth", "array_name": "phase_true",
                                            "unit": "rad", "pixel_size_a": px}}, "image"))
    return layers
