"""Turn a :class:`~napari_phase.result.PhaseResult` into napari layers, and add or update them.

``result_to_layers`` is pure (no viewer needed): it returns napari ``LayerDataTuple`` s, one per
output, each with scale, translate and units from the result (and the source layer), the result's
metadata, and a name that carries the unit, e.g. ``"SIPRAD phase [rad]"``. ``add_or_update``
puts them in a viewer, replacing the data of a layer of the same name in place (live previews and
reruns) instead of stacking duplicates.

Layer metadata (read by the writer and by scripts): ``{"napari_phase": result.metadata,
"unit": <array unit>, "array_name": <key in result.arrays>, "pixel_size": ..., "pixel_unit": ...}``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..physics.induction import color_wheel_image, color_wheel_legend
from ..result import PhaseResult

LayerDataTuple = tuple  # (data, kwargs, layer_type)

#: pint spelling of units napari may not parse in their display form
_PINT_UNITS = {"Å": "angstrom", "A": "angstrom", "px": "pixel", "": "pixel", "µm": "micrometer", "um": "micrometer"}

#: display names of well-known arrays (the unit is appended in brackets)
_DISPLAY = {
    "phase": "phase",
    "phase_electrostatic": "φe electrostatic",
    "bx": "Bx·t",
    "by": "By·t",
    "b_magnitude": "|B|·t",
    "amplitude": "amplitude",
    "color_b": "B colour map",
    "flow_y": "flow y",
    "flow_x": "flow x",
}

#: how many arrows across the longer image side in the B vectors layer
VECTORS_ACROSS = 24
LEGEND_NAME_SUFFIX = "B colour wheel (legend)"


def layer_name(base_name: str, array_name: str, unit: str = "", suffix: str = "") -> str:
    """``"SIPRAD phase [rad]"``; ``suffix`` (e.g. ``" (cancelled)"``) is appended."""
    label = _DISPLAY.get(array_name, array_name)
    name = f"{base_name} {label}".strip()
    if unit and unit != "RGB":
        name += f" [{unit}]"
    return name + suffix


def pint_unit(unit: str) -> str:
    """A unit string napari's pint registry understands (Å -> angstrom, '' -> pixel)."""
    return _PINT_UNITS.get(unit, unit)


def _robust_limits(arr: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> tuple[float, float]:
    finite = np.asarray(arr)[np.isfinite(arr)]
    if finite.size == 0:
        return 0.0, 1.0
    a, b = (float(v) for v in np.percentile(finite, (lo, hi)))
    if not b > a:
        a, b = float(finite.min()), float(finite.max())
    if not b > a:
        b = a + 1.0
    return a, b


def _symmetric_limits(arr: np.ndarray, hi: float = 99.5) -> tuple[float, float]:
    finite = np.abs(np.asarray(arr)[np.isfinite(arr)])
    top = float(np.percentile(finite, hi)) if finite.size else 0.0
    if not top > 0:
        top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return -top, top


def _geometry(result: PhaseResult, ndim: int, source_layer=None) -> dict[str, Any]:
    """scale / translate / units for an array with ``ndim`` spatial+leading axes (last two y, x)."""
    p = float(result.pixel_size)
    unit = pint_unit(result.pixel_unit)
    scale = [1.0] * (ndim - 2) + [p, p]
    translate = [0.0] * ndim
    units: list[str] = ["pixel"] * (ndim - 2) + [unit, unit]
    if source_layer is not None:
        src_ndim = source_layer.ndim
        n = min(ndim, src_ndim)
        src_translate = list(np.asarray(source_layer.translate, dtype=float))
        translate[ndim - n:] = src_translate[src_ndim - n:]
        # leading (e.g. time) axes keep the source layer's scale and units
        lead = min(ndim - 2, src_ndim - 2)
        if lead > 0:
            src_scale = list(np.asarray(source_layer.scale, dtype=float))
            src_units = [str(u) for u in getattr(source_layer, "units", ["pixel"] * src_ndim)]
            for k in range(1, lead + 1):
                scale[ndim - 2 - k] = src_scale[src_ndim - 2 - k]
                units[ndim - 2 - k] = src_units[src_ndim - 2 - k]
        # if the source layer is calibrated in a length unit, express our translate in our unit
        # (e.g. source in µm, result in nm); an uncalibrated (pixel) source keeps its numbers.
        try:
            src_unit = str(getattr(source_layer, "units", ["pixel"])[-1])
            if src_unit not in ("pixel", "dimensionless") and unit != "pixel":
                import pint

                factor = pint.Quantity(1.0, src_unit).to(unit).magnitude
                translate[-2:] = [t * factor for t in translate[-2:]]
        except Exception:  # noqa: BLE001 - unknown unit: keep the numbers as they are
            pass
    return {"scale": scale, "translate": translate, "units": units}


def _metadata(result: PhaseResult, array_name: str, unit: str) -> dict[str, Any]:
    return {
        "napari_phase": dict(result.metadata),
        "unit": unit,
        "array_name": array_name,
        "pixel_size": float(result.pixel_size),
        "pixel_unit": result.pixel_unit,
    }


def _image(result, name, data, geom, *, colormap="gray", limits=None, visible=True, rgb=False, unit=None, array_name=None):
    unit = result.unit_of(array_name) if unit is None else unit
    kwargs: dict[str, Any] = {
        "name": name,
        "metadata": _metadata(result, array_name, unit),
        "visible": visible,
        **geom,
    }
    if rgb:
        kwargs["rgb"] = True
        kwargs["scale"] = geom["scale"]
    else:
        kwargs["colormap"] = colormap
        kwargs["contrast_limits"] = limits if limits is not None else _robust_limits(data)
    return (data, kwargs, "image")


def vectors_data(bx: np.ndarray, by: np.ndarray, *, across: int = VECTORS_ACROSS,
                 sigma: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Subsampled arrows of (Bx, By) as napari Vectors data in (..., y, x) order, plus RGBA
    colours by direction (the colour wheel's hues) and the subsampling step in pixels.
    ``sigma`` = (σ_Bx, σ_By): each arrow's opacity follows its confidence z = |B| / √(σx² + σy²),
    α = clip((z − 1)/2, 0.2, 1) (an arrow within 1σ of zero is faint, one beyond 3σ opaque).

    Arrow length is scaled so the strongest arrow is ~0.9 step long (visible at any B scale).
    A time series (T, Y, X) gives arrows for every frame with the frame index as first coordinate.
    """
    bx = np.nan_to_num(np.asarray(bx, dtype=np.float32))
    by = np.nan_to_num(np.asarray(by, dtype=np.float32))
    h, w = bx.shape[-2:]
    step = max(1, int(round(max(h, w) / across)))
    ys = np.arange(step // 2, h, step)
    xs = np.arange(step // 2, w, step)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    lead_shape = bx.shape[:-2]
    bxs = bx[..., yy, xx]
    bys = by[..., yy, xx]
    mag = np.hypot(bxs, bys)
    top = float(np.percentile(mag, 99)) if mag.size else 0.0
    top = top if top > 0 else 1.0
    factor = 0.9 * step / top
    lead_idx = np.indices(lead_shape).reshape(len(lead_shape), -1).T if lead_shape else np.zeros((1, 0))
    n_per = yy.size
    rows = []
    for k, idx in enumerate(lead_idx):
        sl = tuple(int(i) for i in idx)
        pos = np.column_stack([np.broadcast_to(np.asarray(sl, dtype=np.float32), (n_per, len(sl))), yy.ravel(), xx.ravel()])
        proj = np.column_stack([np.zeros((n_per, len(sl)), np.float32), bys[sl].ravel() * factor, bxs[sl].ravel() * factor])
        rows.append(np.stack([pos, proj], axis=1))
    data = np.concatenate(rows, axis=0).astype(np.float32)
    # colour by direction, full brightness (the same hue mapping as the colour-wheel image)
    angle_dx = data[:, 1, -1]
    angle_dy = data[:, 1, -2]
    norm = np.hypot(angle_dx, angle_dy)
    norm[norm == 0] = 1.0
    rgb = color_wheel_image(angle_dx / norm, angle_dy / norm, saturate_percentile=100.0)
    alpha = np.ones(len(data), np.float32)
    if sigma is not None:
        sb = np.hypot(np.asarray(sigma[0], np.float32)[..., yy, xx], np.asarray(sigma[1], np.float32)[..., yy, xx])
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(sb > 0, mag / sb, np.inf).reshape(-1)
        alpha = np.clip((z - 1.0) / 2.0, 0.2, 1.0).astype(np.float32)
    colors = np.column_stack([rgb.reshape(-1, 3), alpha])
    # drop arrows too short to see (they clutter the field with dots)
    keep = np.hypot(data[:, 1, -1], data[:, 1, -2]) > 0.15 * step
    if keep.any():
        data, colors = data[keep], colors[keep]
    return data, colors, step


def result_to_layers(
    result: PhaseResult,
    base_name: str,
    *,
    source_layer=None,
    suffix: str = "",
    include_legend: bool = True,
) -> list[LayerDataTuple]:
    """Layer data tuples for every output of ``result`` (see module docstring).

    Order = stacking order in the viewer (last on top): amplitude, φe, Bx·t, By·t, |B|·t, phase,
    colour-wheel B image, B vectors, colour-wheel legend. The phase with the B arrows (coloured by
    direction, as the legend) and the legend are visible when first added; the colour-wheel image
    and the others are one click away (arrows coloured by direction vanish on the colour image).
    """
    arrays = result.arrays
    layers: list[LayerDataTuple] = []

    def name_of(key: str, unit: str | None = None) -> str:
        return layer_name(base_name, key, result.unit_of(key) if unit is None else unit, suffix)

    for key in ("amplitude", "phase_electrostatic"):
        if key in arrays:
            data = np.asarray(arrays[key], dtype=np.float32)
            layers.append(_image(result, name_of(key), data, _geometry(result, data.ndim, source_layer), visible=False, array_name=key))

    bx = arrays.get("bx")
    by = arrays.get("by")
    has_b = bx is not None and by is not None
    if has_b:
        bx = np.asarray(bx, dtype=np.float32)
        by = np.asarray(by, dtype=np.float32)
        geom = _geometry(result, bx.ndim, source_layer)
        lim = _symmetric_limits(np.concatenate([bx.ravel(), by.ravel()]))
        layers.append(_image(result, name_of("bx"), bx, geom, colormap="bwr", limits=lim, visible=False, array_name="bx"))
        layers.append(_image(result, name_of("by"), by, geom, colormap="bwr", limits=lim, visible=False, array_name="by"))
        mag = arrays.get("b_magnitude")
        mag = np.hypot(bx, by).astype(np.float32) if mag is None else np.asarray(mag, dtype=np.float32)
        unit_b = result.unit_of("bx") or "T·nm"
        top = _robust_limits(mag, 0.0, 99.5)[1]
        layers.append(
            _image(result, name_of("b_magnitude", unit_b), mag, geom, colormap="inferno", limits=(0.0, top), visible=False, unit=unit_b, array_name="b_magnitude")
        )

    other = [k for k in arrays if k not in ("amplitude", "phase_electrostatic", "bx", "by", "b_magnitude", "phase", "color_b")]
    for key in other:
        data = np.asarray(arrays[key])
        if data.ndim < 2 or not np.issubdtype(data.dtype, np.number):
            continue
        layers.append(_image(result, name_of(key), data.astype(np.float32), _geometry(result, data.ndim, source_layer), visible=False, array_name=key))

    if "phase" in arrays:
        phase = np.asarray(arrays["phase"], dtype=np.float32)
        wrapped = bool(result.metadata.get("phase_wrapped", False))
        cmap = "twilight" if wrapped else "gray"
        lim = (-np.pi, np.pi) if wrapped else _robust_limits(phase)
        layers.append(_image(result, name_of("phase"), phase, _geometry(result, phase.ndim, source_layer), colormap=cmap, limits=lim, array_name="phase"))

    if has_b:
        color = arrays.get("color_b")
        color = color_wheel_image(bx, by) if color is None else np.asarray(color, dtype=np.float32)
        geom = _geometry(result, bx.ndim, source_layer)
        layers.append(_image(result, name_of("color_b", "RGB"), color.astype(np.float32), geom, rgb=True, unit="RGB", array_name="color_b", visible=False))

        sig_b = (arrays["bx_sigma"], arrays["by_sigma"]) if "bx_sigma" in arrays and "by_sigma" in arrays else None
        vdata, vcolors, step = vectors_data(bx, by, sigma=sig_b)  # opacity follows σ when there is one
        vkwargs = {
            "name": layer_name(base_name, "B vectors", "", suffix),
            "edge_color": vcolors,
            "edge_width": max(1.0, 0.12 * step),
            "length": 1.0,
            "vector_style": "arrow",
            "opacity": 0.9,
            "metadata": {**_metadata(result, "bx,by", unit_b), "arrow_step_px": step},
            **geom,
        }
        layers.append((vdata, vkwargs, "vectors"))

        if include_legend:
            layers.append(legend_layer(result, base_name, bx.shape[-2:], geom, suffix=suffix))
    return layers


def legend_layer(result: PhaseResult, base_name: str, shape_yx: Sequence[int], geom: dict, *, suffix: str = "", size: int = 128) -> LayerDataTuple:
    """The colour wheel as a small RGBA image placed just right of the image's top-right corner.

    Hue = direction of B·t (+x red, +y i.e. down the rows yellow-green), brightness = |B·t|.
    """
    h, w = (int(s) for s in shape_yx)
    p = geom["scale"][-1]
    ty, tx = geom["translate"][-2], geom["translate"][-1]
    side_world = 0.22 * min(h, w) * p
    s = side_world / size
    kwargs = {
        "name": f"{base_name} {LEGEND_NAME_SUFFIX}{suffix}",
        "rgb": True,
        "scale": [s, s],
        "translate": [ty, tx + w * p + 0.04 * w * p],
        "units": geom["units"][-2:],
        "metadata": {
            "napari_phase": dict(result.metadata),
            "unit": "RGB",
            "array_name": "legend",
            "legend": "hue = direction of B·t (+x red, +y = down yellow-green, -x cyan, -y = up blue/violet); brightness = |B·t|",
        },
    }
    return (color_wheel_legend(size), kwargs, "image")


def add_or_update(viewer, layer_data: Sequence[LayerDataTuple]) -> list:
    """Add each layer, or update the layer of the same name in place (data, geometry, metadata,
    contrast, colours). A layer whose type, dimensionality or RGB-ness differs is replaced at the
    same position. Returns the layers, in the order given."""
    out = []
    for data, kwargs, layer_type in layer_data:
        name = kwargs["name"]
        existing = viewer.layers[name] if name in viewer.layers else None
        if existing is not None and _compatible(existing, data, kwargs, layer_type):
            _update(existing, data, kwargs, layer_type)
            out.append(existing)
            continue
        index = None
        if existing is not None:
            index = viewer.layers.index(existing)
            viewer.layers.remove(existing)
        add = getattr(viewer, f"add_{layer_type}")
        layer = add(data, **kwargs)
        if index is not None:
            viewer.layers.move(viewer.layers.index(layer), index)
        out.append(layer)
    return out


def _compatible(layer, data, kwargs, layer_type: str) -> bool:
    import napari.layers

    cls = getattr(napari.layers, layer_type.capitalize(), None)
    if cls is None or not isinstance(layer, cls):  # isinstance sees through napari's plugin proxies
        return False
    if layer_type == "image":
        if bool(getattr(layer, "rgb", False)) != bool(kwargs.get("rgb", False)):
            return False
        return np.ndim(data) == np.ndim(layer.data)
    if layer_type == "vectors":
        return np.asarray(data).shape[-1] == layer.data.shape[-1]
    return np.ndim(data) == np.ndim(layer.data)


def _update(layer, data, kwargs, layer_type: str) -> None:
    """In-place update; the user's visibility, opacity and blending are left alone."""
    if layer_type == "vectors":
        layer.data = data
        if "edge_color" in kwargs:
            layer.edge_color = kwargs["edge_color"]
        if "edge_width" in kwargs:
            layer.edge_width = kwargs["edge_width"]
    else:
        layer.data = data
    for key in ("scale", "translate", "units"):
        if key in kwargs:
            setattr(layer, key, kwargs[key])
    layer.metadata = kwargs.get("metadata", {})
    if layer_type == "image" and not kwargs.get("rgb", False) and "contrast_limits" in kwargs:
        lo, hi = kwargs["contrast_limits"]
        layer.contrast_limits_range = (lo, hi)
        layer.contrast_limits = (lo, hi)
