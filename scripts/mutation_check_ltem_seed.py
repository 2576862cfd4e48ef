"""Mutation check for SIPRAD's seed choice (issue 8 regressions): the seed rung with room to fit, the
SITIE seed on periodic tiles and at large defocus, a start that already fits to the noise level. Each one-line mutation in a COPY of src/
(PYTHONPATH), only the relevant tests; prints CAUGHT/survived per mutation and the count.

    python scripts/mutation_check_ltem_seed.py [index ...]
"""
from mutation_runner import main

SP = "src/napari_phase/ltem/siprad.py"
ROOM = ["tests/test_siprad.py", "-k", "room"]
FAR = ["tests/test_siprad.py", "-k", "small_defocus"]
FITS = ["tests/test_siprad.py", "-k", "noise_level_is_returned"]
MUT = [
    ("seed from the discrepancy rung again (no room)", SP,
     '    roomy = [i for i, st in enumerate(stages) if st["residual"] >= room]\n',
     '    roomy = [i for i, st in enumerate(stages) if st["residual"] > 0.98]\n', ROOM),
    ("seed from the strongest roomy rung instead of the weakest", SP,
     '        return min(roomy, key=lambda i: stages[i]["weight"])\n',
     '        return max(roomy, key=lambda i: stages[i]["weight"])\n', ROOM),
    ("no rung roomy: the weakest rung instead of the largest residual", SP,
     '    return max(range(len(stages)), key=lambda i: stages[i]["residual"])\n',
     '    return len(stages) - 1\n', ROOM),
    ("the seed is not the rule's rung (always the strongest)", SP,
     '    k = seed_rung(solver.stages)\n', '    k = 0\n', ROOM),
    ("periodic tiles get the TV seed again", SP,
     '                         and problem.boundary == "extend"  #',
     '                         and problem.boundary != "reflect"  #', ROOM),
    ("seed room halved", SP, "SEED_ROOM = 1.1\n", "SEED_ROOM = 0.55\n", ROOM),
    ("no defocus bound on the TV seed", SP,
     "abs(problem.microscope.defocus_nm) <= AUTO_SEED_MAX_LAMBDA_DEFOCUS_NM2)",
     "abs(problem.microscope.defocus_nm) <= float('inf'))", FAR),
    ("defocus bound in mm instead of nm (λ|Δf| 1e6 too small)", SP,
     "abs(problem.microscope.defocus_nm) <= AUTO_SEED_MAX_LAMBDA_DEFOCUS_NM2)",
     "abs(problem.microscope.defocus_nm) * 1e-6 <= AUTO_SEED_MAX_LAMBDA_DEFOCUS_NM2)", FAR),
    ("a start at the noise level is fitted anyway", SP, "SEED_FIT_SIGMAS: float | None = 3.0\n",
     "SEED_FIT_SIGMAS: float | None = None\n", FITS),
    ("seed-fit band √(2/N) → 2/N (never fires)", SP, "(1 + SEED_FIT_SIGMAS * math.sqrt(2.0 / y.numel()))",
     "(1 + SEED_FIT_SIGMAS * (2.0 / y.numel()))", FITS),
    ("seed-fit test inverted", SP, "state.best_loss <= noise_var * (1 + SEED_FIT", "state.best_loss >= noise_var * (1 + SEED_FIT", FITS),
]


if __name__ == "__main__":
    raise SystemExit(main(MUT, tag="mut_seed"))
