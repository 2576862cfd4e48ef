"""Mutation check for the descan step (issue 16 §1) and the first-run layout (§3). Each one-line
mutation in a COPY of src/ (PYTHONPATH), only the descan tests (and the first-run panel test,
under xvfb); prints CAUGHT/survived per mutation and the count.

    python scripts/mutation_check_descan.py [index ...]
"""
from mutation_runner import main

DS = "src/napari_phase/stem/descan.py"
COM = "src/napari_phase/stem/com.py"
REC = "src/napari_phase/stem/airpi/reconstruct.py"
PRE = "src/napari_phase/stem/airpi/preprocess.py"
PANEL = "src/napari_phase/widgets/stem_panel.py"
T = ["tests/test_stem_descan.py"]
T_CLI = ["tests/test_stem_descan.py", "tests/test_stem_cli.py", "-k", "descan"]
T_EST = ["tests/test_stem_descan.py", "tests/test_stem_cli.py", "-k", "descan or disc or specimen"]
T_GUI = ["GUI", "tests/test_stem_panel.py", "-k", "first_run or mrad"]
MUT = [
    ("iCoM: descan added instead of removed (sign)", COM, "return my - dy, mx - dx, {", "return my + dy, mx + dx, {", T),
    ("iCoM: fit made but not removed (skipped)", COM, "return my - dy, mx - dx, {", "return my, mx, {", T),
    ("fit: model columns swapped (rows <-> columns)", DS, "a = np.stack([np.ones(shape), rows, cols], axis=-1)",
     "a = np.stack([np.ones(shape), cols, rows], axis=-1)", T),
    ("evaluated on the wrong axes (row slope on columns)", DS, "return cy[0] + cy[1] * r + cy[2] * c, cx[0] + cx[1] * r + cx[2] * c",
     "return cy[0] + cy[1] * c + cy[2] * r, cx[0] + cx[1] * c + cx[2] * r", T),
    ("disc centre: y read along x", DS, "dy = np.where(good, u.sum(axis=-1, dtype=np.float64) @ yy / area,",
     "dy = np.where(good, u.sum(axis=-2, dtype=np.float64) @ yy / area,", T),
    ("disc centre: level = all pixels (not the disc's)", DS, "u = np.clip(2.0 * b / safe, 0.0, 1.0)",
     "u = np.clip(0.2 * b / safe, 0.0, 1.0)", T),
    ("outliers never rejected", DS, "OUTLIER_SIGMA = 6.0", "OUTLIER_SIGMA = 1e9", T),
    ("noise-level terms kept (no significance rule)", DS, "SIGNIFICANCE = 3.0", "SIGNIFICANCE = 0.0", T),
    ("1 x N scan: no fallback to a constant", DS, "if np.linalg.matrix_rank(design) < 3:", "if np.linalg.matrix_rank(design) < 0:", T),
    ("SSB: patterns moved the wrong way", DS, "return shift_patterns(block, -dy, -dx)", "return shift_patterns(block, dy, dx)", T),
    ("SSB: every block re-centred as if it were the first rows", DS,
     "rows, cols = np.meshgrid(np.arange(r0, r1), np.arange(self.shape[1]), indexing=\"ij\")",
     "rows, cols = np.meshgrid(np.arange(0, r1 - r0), np.arange(self.shape[1]), indexing=\"ij\")", T),
    ("CNN: offsets with the wrong sign", REC, "offsets = np.stack(self.descan.shift_px(rows, cols), axis=-1)",
     "offsets = -np.stack(self.descan.shift_px(rows, cols), axis=-1)", T),
    ("CNN: offsets y/x swapped", PRE, "oy, ox = off[:, 0].view(-1, 1, 1), off[:, 1].view(-1, 1, 1)",
     "oy, ox = off[:, 1].view(-1, 1, 1), off[:, 0].view(-1, 1, 1)", T),
    ("CNN: descan measured but not used", REC, "        if self.descan is not None and self.descan.model != \"off\":",
     "        if False:", T),
    ("CLI: --descan not passed on", "src/napari_phase/stem/cli.py", "center=center, descan=args.descan)", "center=center)", T_CLI),
    ("panel: the 4-D layer not moved beside the result", PANEL,
     "        self._ensure_geometry()\n        self._place_source()\n        layers = add_or_update(self.viewer, result_to_layers(result",
     "        self._ensure_geometry()\n        layers = add_or_update(self.viewer, result_to_layers(result", T_GUI),
    ("panel: camera not framed on the result", PANEL, "            self.frame_layer(phase[0])", "            pass", T_GUI),
    ("sample: detector axes in mrad again", "src/napari_phase/io/sample_data.py",
     "\"units\": [\"angstrom\", \"angstrom\", *beside[\"units\"]]", "\"units\": [\"angstrom\", \"angstrom\", \"mrad\", \"mrad\"]", T_GUI),
    # the disc centre read linearly across the edge, the specimen's share taken out (issue 16, last step)
    ("disc centre: second stage skipped (thresholded centroid only)", DS,
     "    u[inner] = 1.0\n    u[outer] = 0.0\n", "    u = np.clip(2.0 * b / np.where(good, level, 1.0)[..., None, None], 0.0, 1.0)\n", T),
    ("disc centre: edge band measured from x as y", DS,
     "r = np.sqrt((yy.astype(np.float32)[:, None] - y0[..., None, None].astype(np.float32)) ** 2",
     "r = np.sqrt((yy.astype(np.float32)[:, None] - x0[..., None, None].astype(np.float32)) ** 2", T),
    ("disc centre: edge band too narrow (0.8 px)", DS, "EDGE_BAND_PX = 1.5", "EDGE_BAND_PX = 0.8", T_EST),
    ("specimen share added, not taken out (sign)", DS, "out.append((disc - k * com) / (1.0 - k))",
     "out.append((disc + k * com) / (1.0 + k))", T),
    ("specimen share: CoM of the other axis", DS, "for disc, com in ((dy, cy), (dx, cx)):",
     "for disc, com in ((dy, cx), (dx, cy)):", T),
    ("iCoM: specimen share not taken out", COM,
     "ey, ex, leak = _descan.without_specimen_leak(disc_y[:rows], disc_x[:rows], my, mx, valid)",
     "ey, ex, leak = disc_y[:rows], disc_x[:rows], (0.0, 0.0)", T),
    ("disc centre: every chunk reads the first chunk's patterns", DS,
     "out[:, i:i + CHUNK_PATTERNS] = _disc_centres(flat[i:i + CHUNK_PATTERNS], cy, cx)",
     "out[:, i:i + CHUNK_PATTERNS] = _disc_centres(flat[:CHUNK_PATTERNS][:len(flat[i:i + CHUNK_PATTERNS])], cy, cx)", T),
    ("CNN/SSB: specimen share not taken out", DS, "    dy, dx, leak = without_specimen_leak(dy, dx, my, mx)\n",
     "    leak = (0.0, 0.0)\n", T),
]


if __name__ == "__main__":
    raise SystemExit(main(MUT, tag="mut_descan"))
