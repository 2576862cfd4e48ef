"""Mutation check for issue 17 §2 (part A): the strong-phase case class (ltem/simulate_strong.py)
and the φe fall-back (ltem/phase_e_check.py, its call in ltem/series.py). Each one-line mutation in
a COPY of src/; prints CAUGHT/survived per mutation and the count.

    python scripts/mutation_check_phase_e_check.py [index ...]
"""
from mutation_runner import main

CHK = "src/napari_phase/ltem/phase_e_check.py"
SER = "src/napari_phase/ltem/series.py"
SIM = "src/napari_phase/ltem/simulate_strong.py"
SS = "src/napari_phase/ltem/simulate_series.py"
T = ["tests/test_ltem_phase_e_check.py",
     "tests/test_ltem_series.py::test_target_case_with_the_defaults_meets_phim_and_b_magnitude"]
TS = ["tests/test_ltem_simulate_strong.py"]
MUT = [
    ("φe refinement forced on (refined always returned)", CHK, "    return (refined if keep else plain), info", "    return refined, info", T),
    ("fall-back test skipped", SER, "        if tried and phase_e_check == \"auto\":\n", "        if False:\n", T),
    ("refinement never kept", CHK, "    return (refined if keep else plain), info", "    return plain, info", T),
    ("misfit test dropped (no witness: refined kept)", CHK, "        keep = m_refined < m_plain\n", "        keep = True\n", T),
    ("misfit comparison reversed", CHK, "        keep = m_refined < m_plain\n", "        keep = m_refined > m_plain\n", T),
    ("amplitude witness never used (misfit only)", CHK, "    witness = bool(a_plain >= MIN_AMPLITUDE_AGREEMENT)\n", "    witness = False\n", T),
    ("amplitude witness always used", CHK, "    witness = bool(a_plain >= MIN_AMPLITUDE_AGREEMENT)\n", "    witness = n > 1\n", T),
    ("agreement comparison reversed", CHK, "keep = a_refined >= a_plain - AGREEMENT_TOLERANCE", "keep = a_refined <= a_plain + AGREEMENT_TOLERANCE", T),
    ("agreement tolerance 100x", CHK, "keep = a_refined >= a_plain - AGREEMENT_TOLERANCE", "keep = a_refined >= a_plain - 100 * AGREEMENT_TOLERANCE", T),
    ("agreement: sign of −ln A flipped", CHK, "    a = -0.5 * np.log(", "    a = 0.5 * np.log(", T),
    ("option: phase_e_check defaults to 'off'", SER, '    phase_e_check: str = "auto",\n', '    phase_e_check: str = "off",\n', T),
    ("misfit: flipped side imaged with +φm", CHK, "(flipped, phase_e - phase_m)", "(flipped, phase_e + phase_m)", T),
    ("misfit: I0 = series mean instead of the in-focus image", CHK, "i0 = st[n // 2] if n > 1", "i0 = st.mean(axis=0) if n > 1", T),
    ("prior: −ln A from the series mean again", SER, "i0_e = (series[crop][n // 2] + fl[crop][n // 2]) / 2 if n > 1",
     "i0_e = np.concatenate([series[crop], fl[crop]]).mean(axis=0) if n > 1", T),
    ("simulator: flipped side keeps +φm", SS, "imf = simulate_image(-phase_m + phase_e,", "imf = simulate_image(phase_m + phase_e,", TS),
    ("simulator: flipped side not mirrored", SS, "warp_rigid(np.flip(imf, axis=-1 if flip_axis == \"x\" else -2), rigid", "warp_rigid(imf, rigid", TS),
    ("simulator: absorption doubled", SIM, "amplitude = np.exp(-t_nm / xi)", "amplitude = np.exp(-2 * t_nm / xi)", TS),
    ("simulator: absorption sign flipped", SIM, "amplitude = np.exp(-t_nm / xi)", "amplitude = np.exp(t_nm / xi) / np.exp(t_nm.max() / xi)", TS),
    ("simulator: φe range not enforced", SIM, "    if span > 0 and not lo <= span <= hi:\n", "    if False:\n", TS),
    ("simulator: no domain wall (uniform along the axis)", SIM, "    along = -wall  #", "    along = 1.0 + 0 * wall  #", TS),
    ("simulator: vortex replaced by a single domain", SIM, '    if body["magnetisation"] == "vortex":\n', '    if False:\n', TS),
    ("simulator: noise not per image (same seed)", SS, "img = add_noise(img, noise, seed=seed + 100 + k)", "img = add_noise(img, noise, seed=seed)", TS),
]


if __name__ == "__main__":
    raise SystemExit(main(MUT, tag="mut_phase_e"))
