"""Mutation check for the LTEM prior (issue 8 §1): the TV prior, its data-chosen weight and SIPRAD's
pixel-wise seed. Each one-line mutation in a COPY of src/ (PYTHONPATH), only the relevant tests;
prints CAUGHT/survived per mutation and the count.

    python scripts/mutation_check_ltem_prior.py [index ...]
"""
from mutation_runner import main

PW = "src/napari_phase/ltem/pixelwise.py"
SP = "src/napari_phase/ltem/siprad.py"
PRIOR = ["tests/test_ltem_prior.py"]
MUT = [
    ("prior weight doubled inside the objective", PW,
     "        w = weight * self.sigma2\n", "        w = 2 * weight * self.sigma2\n", PRIOR),
    ("discrepancy test inverted (walks the wrong way)", PW,
     "        if self.residual > target:  # too strong", "        if self.residual < target:  # too strong", PRIOR),
    ("noise floor ignored (bare estimate)", PW,
     '        self.sigma2 = max(self.sigma2_estimated, opts["noise_floor"] ** 2, 1e-12)',
     "        self.sigma2 = max(self.sigma2_estimated, 1e-12)", PRIOR + ["-k", "clean"]),
    ("TV replaced by the squared gradient", PW,
     "        return (gx * gx + gy * gy + tv_epsilon**2).sqrt().mean()",
     "        return (gx * gx + gy * gy).mean()", PRIOR),
    ("debiasing scale dropped", PW,
     "        self.debias_scale = alpha\n", "        self.debias_scale = alpha = 1.0\n", PRIOR + ["-k", "size"]),
    ("debiasing scale doubled", PW,
     "        return (mean + alpha * (phi - mean)).cpu().numpy()", "        return (mean + 2 * alpha * (phi - mean)).cpu().numpy()", PRIOR),
    ("preconditioner off for TV", PW,
     '        if self.prior == "tv":\n            pre =', '        if False:\n            pre =', PRIOR),
    ("low-contrast fallback never taken", PW,
     "            low = self.cnr < LOW_CNR or", "            low = False and", PRIOR + ["-k", "low_contrast or clean"]),
    ("SIPRAD seeds from the kept rung (no room to fit)", SP,
     '    k = seed_rung(solver.stages)',
     "    k = solver.kept", PRIOR + ["-k", "siprad"]),
    ("SIPRAD auto never seeds with the pixel-wise solution", SP,
     '                init_kind = "pixelwise" if heavy else "sitie"', '                init_kind = "sitie"', PRIOR + ["-k", "siprad"]),
    # (a flipped defocus sign inside the preconditioner is an equivalent mutant: P uses Im T² only;
    # the sign of the solve itself is pinned by test_pixelwise_phase_size_and_sign_on_a_bubble_window)
    ("discrepancy target doubled", PW,
     '        target = self.opts["discrepancy"]\n', '        target = 2 * self.opts["discrepancy"]\n', PRIOR),
    ("defocus sign flipped in the solvers' microscope", SP,
     "    mic = Microscope(voltage_kv=kv, defocus_nm=df,", "    mic = Microscope(voltage_kv=kv, defocus_nm=-df,", PRIOR),
]


if __name__ == "__main__":
    raise SystemExit(main(MUT, tag="mut_prior"))
