"""Mutation check for issue 17 §2 (the flip registration on what the flip does not change): each
one-line mutation in a COPY of src/ (PYTHONPATH), only tests/test_ltem_flip_register.py; prints
CAUGHT/survived per mutation and the count.

    python scripts/mutation_check_flip_register.py [index ...]
"""
from mutation_runner import main

AL = "src/napari_phase/ltem/align.py"
SE = "src/napari_phase/ltem/series.py"
T = ["tests/test_ltem_flip_register.py"]
MUT = [
    ("registers on magnetic contrast (the in-focus branch skipped)", AL,
     "    if contrast >= MIN_IN_FOCUS_CONTRAST and candidates[0].quality >= TRUST_MEAN_QUALITY:",
     "    if False:", T),
    ("registration reference swapped (in-focus refinement)", AL,
     "rigid = refine_rigid(un[mid], ref[mid], rigid,", "rigid = refine_rigid(ref[mid], un[mid], rigid,", T),
    ("'in-focus' image is the most under-focused one", AL,
     "    return [stack[stack.shape[0] // 2], stack.mean(axis=0), diff, np.abs(diff)]",
     "    return [stack[0], stack.mean(axis=0), diff, np.abs(diff)]", T),
    ("amplitude-contrast gate skipped", AL,
     "    if contrast >= MIN_IN_FOCUS_CONTRAST and candidates[0].quality", "    if candidates[0].quality", T),
    ("contrast: the noise not subtracted", AL,
     "    noise_var = noise_sigma(a) ** 2 / (4 * np.pi * smooth_px**2)", "    noise_var = 0.0", T),
    ("contrast halved", AL,
     "    return float(np.sqrt(max(float(g.var()) - noise_var, 0.0)) / m)",
     "    return float(np.sqrt(max(float(g.var()) - noise_var, 0.0)) / (2 * m))", T),
    ("in-focus registration refined on the mean images", AL,
     "rigid = refine_rigid(un[mid], ref[mid], rigid,", "rigid = refine_rigid(un.mean(axis=0), ref.mean(axis=0), rigid,", T),
    ("in-focus refinement limited to 1°, 2 px again", AL,
     "IN_FOCUS_REFINE_LIMITS = (2.0, 5.0)", "IN_FOCUS_REFINE_LIMITS = (1.0, 2.0)", T),
    ("mean fall-back skipped (magnetic contrast next)", AL,
     "    if candidates[1].quality >= TRUST_MEAN_QUALITY:", "    if False:", T),
    ("what was used not recorded in metadata", SE,
     'extra["flipped_transform"] = {**rigid.as_dict(), **used}', 'extra["flipped_transform"] = rigid.as_dict()', T),
]


if __name__ == "__main__":
    raise SystemExit(main(MUT, tag="mut_flip_register"))
