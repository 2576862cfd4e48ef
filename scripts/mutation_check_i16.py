"""Mutation check for issue 16 §2 and §4: SSB's Wiener weight and sampling warning, and the CNN's
inference path (folding, kernel standardisation, stitching by sub-pixel fraction, thread scoping).
Each one-line mutation in a COPY of src/ (PYTHONPATH), only the listed tests (no GUI); prints
CAUGHT/survived per mutation and the count.

    python scripts/mutation_check_i16.py [index ...]
"""
from mutation_runner import main

SSB = "src/napari_phase/stem/ssb.py"
WI = "src/napari_phase/stem/ssb_wiener.py"
INF = "src/napari_phase/stem/airpi/inference.py"
PRE = "src/napari_phase/stem/airpi/preprocess.py"
REC = "src/napari_phase/stem/airpi/reconstruct.py"
STI = "src/napari_phase/stem/airpi/stitch.py"
THR = "src/napari_phase/threads.py"
T_SSB = ["tests/test_ssb_wiener.py", "tests/test_stem_baselines.py", "-k", "ssb or wiener or undersampl or weighting"]
T_CNN = ["tests/test_stem_cnn_inference.py", "tests/test_stem_cnn.py"]
T_TUNE = ["tests/test_threads.py", "tests/test_stem_cnn.py", "-k", "thread or Thread or picks or recheck or remember or per_unit"]
T_CLI = ["tests/test_stem_cli.py", "-k", "threads_option"]
CLI = "src/napari_phase/stem/cli.py"
PANEL = "src/napari_phase/widgets/stem_panel.py"
MUT = [
    ("Wiener gain not applied", SSB, "                phi = phi * gain\n", "                phi = phi * 1.0\n", T_SSB),
    ("σ² halved", WI, "return float(np.sum(np.abs(nu) ** 2) / total)", "return float(np.sum(np.abs(nu) ** 2) / (2 * total))", T_SSB),
    ("σ² not in bright-field-level units", SSB, "pixel_noise_variance(acc[n_sel:] / level,", "pixel_noise_variance(acc[n_sel:],", T_SSB),
    ("noise per Q not divided by the trotter size", WI, "var = sigma2 / np.maximum(n_trotter, 1)",
     "var = sigma2 + 0 * n_trotter", T_SSB),
    ("no signal-power floor (no fall-back to trotter area)", WI, "    s = np.maximum(s, floor)\n", "    s = s + 0 * floor\n", T_SSB),
    ("measured rings ignored (fit only)", WI, "good = e > SIGNIFICANT * se", "good = e > np.inf", T_SSB),
    ("noise region overlaps the shifted discs", WI,
     "free = inner & ((ky_px - qy_px[j]) ** 2 + (kx_px - qx_px[j]) ** 2 > outer2)",
     "free = inner & ((ky_px - qy_px[j]) ** 2 + (kx_px - qx_px[j]) ** 2 > 0 * outer2)", T_SSB),
    ("undersampling bound λ/(2α)", SSB, "limit_a = wavelength_a / (4 * semiangle_mrad * 1e-3)",
     "limit_a = wavelength_a / (2 * semiangle_mrad * 1e-3)", T_SSB),
    ("warning not raised", SSB, "        warnings.warn(warning, UserWarning, stacklevel=2)\n", "        pass\n", T_SSB),
    ("kernel mean from the centre pattern only", PRE, "k1 = s1[ky, kx].sum(dim=1)", "k1 = 9 * s1[ky, kx][:, 4]", T_CNN),
    ("neighbour weights dropped", PRE, "device=xp.device).view(1, 9)", "device=xp.device).view(1, 9) * 0 + 1", T_CNN),
    ("conv+BN not folded", INF, "self.module = fuse(plain)", "self.module = plain", T_CNN),
    ("probe channels left unset", REC, "            x[:, 9:] = pch\n", "            x[:, 9:] = 0\n", T_CNN),
    ("stitch: sub-pixel fraction with the wrong sign", STI, "uy = n / 2 + (offs[None] - frac[:, 0:1]) * r",
     "uy = n / 2 + (offs[None] + frac[:, 0:1]) * r", T_CNN),
    ("stitch: first fraction's matrices for every patch", STI, "        patch = ey[inv] @ spec @ ex[inv].transpose(-2, -1) / (n * n)",
     "        patch = ey[0] @ spec @ ex[0].transpose(-2, -1) / (n * n)", T_CNN),
    ("torch_threads does not restore", THR, "        if _torch_get() != before:\n            _torch_set(before)",
     "        pass", T_CNN),
    ("auto precision ignores AMX", INF, 'return "bfloat16" if dev.type == "cpu" and cpu_has_amx_bf16() else "float32"',
     'return "float32"', T_CNN),
    # the thread probe on short pieces, remembered per process; --precision on the CLI and the panel
    ("probe on whole batches (pieces skipped)", REC, "        if tuner is not None and tuner.probing:",
     "        if False:", T_TUNE),
    ("tuner: choice not remembered", THR, "            _REMEMBERED[self.remember] = (best, self._best_time)",
     "            pass", T_TUNE),
    ("tuner: remembered choice ignored", THR, "self.remembered = bool(known and known[0] in self.candidates)",
     "self.remembered = False", T_TUNE),
    ("tuner: step time not divided by its work", THR, "dt = (self._clock() - t0) / max(float(work), 1e-12)",
     "dt = self._clock() - t0", T_TUNE),
    ("CLI: --precision not passed on", CLI, "threads=args.threads, precision=args.precision,", "threads=args.threads,",
     T_CLI),
    ("CLI: --precision not checked before reading", CLI, "        if args.precision not in PRECISIONS:", "        if False:",
     T_CLI),
    ("tuner: no drop after a far slower warm-up", THR, "WARMUP_DROP = 2.0", "WARMUP_DROP = 1e9", T_TUNE),
    ("panel: precision choice not passed on", PANEL, "model=model, precision=self.precision.currentData(),", "model=model,",
     ["GUI", "tests/test_stem_panel.py", "-k", "precision"]),
]


if __name__ == "__main__":
    raise SystemExit(main(MUT, tag="mut_i16"))
