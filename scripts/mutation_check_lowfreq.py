"""Mutation check for the CNN's low-frequency correction (issue 6): stem/airpi/lowfreq.py and its
call in reconstruct.py. Each one-line mutation in a COPY of src/ (PYTHONPATH), only the relevant
tests; prints CAUGHT/survived per mutation and the count.

    python scripts/mutation_check_lowfreq.py [index ...]
"""
from mutation_runner import main

LF = "src/napari_phase/stem/airpi/lowfreq.py"
RC = "src/napari_phase/stem/airpi/reconstruct.py"
FAST = ["tests/test_stem_lowfreq.py", "-k", "not shipped"]
MUT = [
    ("crossover at 0 (the source never used)", LF,
     "    low = crossover(q, cutoff_inv_a, width)\n", "    low = crossover(q, 0.0, width)\n", FAST),
    ("iCoM sign flipped inside combine", LF,
     "    spec = low_src * np.fft.fft2(_mirror(src))", "    spec = -low_src * np.fft.fft2(_mirror(src))", FAST),
    ("iCoM sign flipped at the call in reconstruct", RC,
     "    result.arrays[\"phase\"] = lowfreq.combine(result.phase, result.pixel_size, src.phase,",
     "    result.arrays[\"phase\"] = lowfreq.combine(result.phase, result.pixel_size, -src.phase,", FAST),
    ("probe transfer not divided out", LF,
     "        low_src = low / np.maximum(t, T_MIN)", "        low_src = low", FAST),
    ("aperture radius doubled in the transfer", LF,
     "    k_ap = semiangle_mrad * 1e-3 / lam", "    k_ap = 2 * semiangle_mrad * 1e-3 / lam", FAST),
    ("CNN's own low frequencies not removed (doubled)", LF,
     " - low * np.fft.fft2(_mirror(cnn))", "", FAST),
    ("source grid scale inverted", LF,
     "* (pixel_cnn_a / pixel_src_a)", "* (pixel_src_a / pixel_cnn_a)", FAST),
    ("signal and noise parts of the CoM field swapped", LF,
     "    noise = max(float(perp[nz].mean())", "    noise = max(float(par[nz].mean())", FAST),
    ("ε ignored in the confidence", LF,
     "    conf = epsilon * snr / (1.0 + epsilon * snr)", "    conf = snr / (1.0 + snr)", FAST),
    ("cutoff in units of 2α/λ instead of α/λ", RC,
     "    q_c = cutoff * cal.semiangle_mrad * 1e-3 / cal.wavelength_a",
     "    q_c = 2 * cutoff * cal.semiangle_mrad * 1e-3 / cal.wavelength_a", FAST),
    ("source phase doubled at the call", RC,
     "    result.arrays[\"phase\"] = lowfreq.combine(result.phase, result.pixel_size, src.phase,",
     "    result.arrays[\"phase\"] = lowfreq.combine(result.phase, result.pixel_size, 2 * src.phase,", FAST),
    ("second pass skipped", RC,
     "    if low_frequency is None or result.metadata.get(\"cancelled\"):",
     "    if True or result.metadata.get(\"cancelled\"):", FAST),
]


if __name__ == "__main__":
    raise SystemExit(main(MUT, tag="mut_lowfreq"))
