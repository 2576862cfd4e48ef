"""FlowTIE: phase and phase-gradient flow from defocus triplets, with classical-TIE and
gradient-descent baselines (DESIGN.md §7; docs/methods.md states this project's reading).

Public API (numpy in, PhaseResult out; each also as a ``*_job`` generator for progress/cancel):
``tie_classical``, ``tie_gradient_descent``, ``flowtie``. Triplets are (3, H, W) intensities
ordered (−dz, 0, +dz) — a defocus is a propagation by that distance, negative = under-focus —
or three 4D-STEM scans reduced by a virtual axial bright-field detector.
"""

from .baselines import tie_classical, tie_classical_job, tie_gradient_descent, tie_gradient_descent_job
from .flow import integrate_flow, phase_gradient
from .solve import flowtie, flowtie_job
from .triplet import prepare_triplet, simulate_triplet

__all__ = [
    "flowtie",
    "flowtie_job",
    "integrate_flow",
    "phase_gradient",
    "prepare_triplet",
    "simulate_triplet",
    "tie_classical",
    "tie_classical_job",
    "tie_gradient_descent",
    "tie_gradient_descent_job",
]
