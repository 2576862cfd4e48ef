"""Mutation check for issue 20 (nothing lost, nothing silent, nothing hangs): the shared input
checks, the atomic writer and the CLI output rules, Ctrl-C, the reader's file-kind check, the
CLI's dtype rule and the safe checkpoint load. Each one-line mutation in a COPY of src/
(PYTHONPATH), only tests/test_bad_input.py; prints CAUGHT/survived per mutation and the count.

    python scripts/mutation_check_bad_input.py [index ...]
"""
from mutation_runner import main

V = "src/napari_phase/validate.py"
CAL = "src/napari_phase/stem/calibration.py"
JOBS = "src/napari_phase/jobs.py"
AT = "src/napari_phase/io/_atomic.py"
OUT = "src/napari_phase/io/output.py"
RD = "src/napari_phase/io/readers.py"
WR = "src/napari_phase/io/writer.py"
TR = "src/napari_phase/training.py"
T = ["tests/test_bad_input.py"]
MUT = [
    ("energy: upper bound (volts) dropped", V, "    if not lo <= v <= hi:\n", "    if not lo <= v:\n", T),
    ("intensities: negative local means ignored", V, "    bad = int((local < floor).sum())", "    bad = 0", T),
    ("pattern sums: negative totals ignored", V, "    if neg:\n", "    if False:\n", T),
    ("centre: only the lower edge checked", V, "    if not (0 <= y <= ny - 1 and 0 <= x <= nx - 1):",
     "    if not (0 <= y and 0 <= x):", T),
    ("calibration: centre not checked on the detector", CAL,
     'point_on_grid(self.center_px, "center", detector_shape) if detector_shape is not None',
     'point_on_grid(self.center_px, "center", detector_shape) if False', T),
    ("whole numbers: 1.5 truncated", V, "    if v != int(v):\n", "    if False:\n", T),
    ("jobs: results with NaN pass", JOBS, "        check_finite(stop.value)\n        return stop.value",
     "        return stop.value", T),
    ("atomic: partial temp file left on failure", AT, "    except OSError as exc:\n        _remove(temps)",
     "    except OSError as exc:\n        pass", T),
    ("output: links to the input not recognised", OUT, "        return os.path.samefile(a, b)", "        return False", T),
    ("output: existing file overwritten silently", OUT, "    if not overwrite:\n", "    if False:\n", T),
    ("atomic: missing folder not refused", AT, "    if not folder.is_dir():", "    if False:", T),
    ("Ctrl-C: the first press does not cancel", JOBS, "            raise KeyboardInterrupt\n        cancel.cancel()",
     "            raise KeyboardInterrupt\n        pass", T),
    ("reader: FIFO opened", RD, "    if not stat.S_ISREG(mode):", "    if False:", T),
    ("CLI: complex/bool data used", RD, "        return _intensities(datasets[0], path) if intensities else datasets[0]",
     "        return datasets[0]", T),
    ("resume: checkpoint unpickled with code", TR, "map_location=device, weights_only=True)",
     "map_location=device, weights_only=False)", T),
    ("HDF5 written by the library straight to disk", WR, 'f = h5py.File(buffer, "w", track_order=True)',
     'f = h5py.File(path, "w", track_order=True)', T),
    ("intensities: no noise allowance (noisy dark regions refused)", V,
     "    floor = -INTENSITY_NOISE_SIGMAS * noise_sigma(a) / box_px", "    floor = 0.0", T),
    ("pattern sums: the 5 % noise allowance 100 times larger", V,
     "(s < -NEGATIVE_SUM_FRACTION * scale)", "(s < -100 * NEGATIVE_SUM_FRACTION * scale)", T),
]


if __name__ == "__main__":
    raise SystemExit(main(MUT, tag="mut_bad_input"))
