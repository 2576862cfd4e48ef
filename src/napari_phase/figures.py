"""Plain PNG figures without matplotlib: labelled tiles of images (for the demo and benchmarks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def to_uint8(image: np.ndarray, percentile: float = 0.5, symmetric: bool = False) -> np.ndarray:
    """Grey (2-D) or RGB (H, W, 3 in 0..1) image -> uint8 RGB, robustly contrast-stretched."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        return (np.clip(a[..., :3], 0, 1) * 255).astype(np.uint8)
    a = np.nan_to_num(a)
    if symmetric:
        hi = np.percentile(np.abs(a), 100 - percentile) or 1.0
        lo = -hi
    else:
        lo, hi = np.percentile(a, [percentile, 100 - percentile])
        if hi <= lo:
            hi = lo + 1.0
    g = (np.clip((a - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    return np.dstack([g, g, g])


def montage(tiles: list[tuple[str, np.ndarray]], path: str | Path, columns: int = 4, tile_px: int = 256) -> Path:
    """Save labelled tiles (title, image) in a grid as a PNG, each fitted into ``tile_px`` (shrunk,
    or enlarged by a whole factor); titles are drawn in PIL's default font (ASCII); returns the path."""
    from PIL import Image, ImageDraw

    rows = (len(tiles) + columns - 1) // columns
    label_h = 18
    canvas = Image.new("RGB", (columns * tile_px, rows * (tile_px + label_h)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (title, img) in enumerate(tiles):
        r, c = divmod(i, columns)
        tile = Image.fromarray(to_uint8(img) if img.dtype != np.uint8 else img)
        up = tile_px // max(tile.size)  # a small map is enlarged by a whole factor (pixels kept square)
        if up > 1:
            tile = tile.resize((tile.width * up, tile.height * up), Image.NEAREST)
        tile.thumbnail((tile_px, tile_px))
        x0, y0 = c * tile_px, r * (tile_px + label_h)
        canvas.paste(tile, (x0, y0 + label_h))
        draw.text((x0 + 3, y0 + 3), title, fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
