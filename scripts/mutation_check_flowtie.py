"""Mutation check for FlowTIE (issue 7): the triplet, the classical-TIE and gradient-descent baselines,
and the network's inference path. Each one-line mutation in a COPY of src/ (PYTHONPATH), only the
FlowTIE tests (no GUI); prints CAUGHT/survived per mutation and the count.

    python scripts/mutation_check_flowtie.py [index ...]
"""
from mutation_runner import main

TRI = "src/napari_phase/flowtie/triplet.py"
BL = "src/napari_phase/flowtie/baselines.py"
SOL = "src/napari_phase/flowtie/solve.py"
TESTS = ["tests/test_flowtie.py", "tests/test_flowtie_model.py"]
MUT = [
    ("dI/dz sign flipped (defocus sign)", TRI,
     "(self.images[2].astype(np.float64) - self.images[0].astype(np.float64))",
     "(self.images[0].astype(np.float64) - self.images[2].astype(np.float64))", TESTS),
    ("dI/dz halved", TRI, "/ (2 * self.dz_a)", "/ (4 * self.dz_a)", TESTS),
    ("dz nm -> Å off by 10 in the checked triplet", TRI,
     "\n    return Triplet(imgs, dz_nm * 10.0,", "\n    return Triplet(imgs, dz_nm * 1.0,", TESTS),
    ("simulated triplet propagated the other way", TRI,
     "electron_wavelength_a(kev), dz_nm * 10.0, aperture_q_per_a(alpha, kev))",
     "electron_wavelength_a(kev), -dz_nm * 10.0, aperture_q_per_a(alpha, kev))", TESTS),
    ("classical TIE with a constant I0", BL, "intensity=i0, qc=qc", "intensity=None, qc=qc", TESTS),
    ("gradient descent: continuity source sign", BL,
     "src = -k_wave * torch.as_tensor(tri.didz", "src = k_wave * torch.as_tensor(tri.didz", TESTS),
    ("network correction dropped (FlowTIE = classical TIE)", SOL,
     "flow = gradient_t(tie.double(), 1.0).to(corr.dtype) + corr", "flow = gradient_t(tie.double(), 1.0).to(corr.dtype) + 0 * corr",
     TESTS),
    ("FlowTIE phase doubled", SOL, "    phase = phase - phase.mean()\n", "    phase = 2 * (phase - phase.mean())\n", TESTS),
    ("flow in rad·Å instead of rad/Å", SOL, "flow_n[0] / py, flow_n[1] / px_", "flow_n[0] * py, flow_n[1] * px_", TESTS),
    ("network told a doubled κ (defocus scale)", SOL,
     "kappa = math.pi * tri.wavelength_a * tri.dz_a", "kappa = 2 * math.pi * tri.wavelength_a * tri.dz_a", TESTS),
]


if __name__ == "__main__":
    raise SystemExit(main(MUT, tag="mut_flowtie"))
