"""Transport of intensity (TIE): the public entry points ``tie`` / ``tie_job`` / ``tie_phase``.

The science is in :mod:`.series` (least-squares ∂I/∂z over a through-focus series of any odd
length, flipped series, SITIE with a flipped pair) and :mod:`.align` (registration, outliers,
region of interest). The classic triplet is the case N = 3: stack (under, in, over) at defocus
(−dz, 0, +dz), ∂I/∂z = (I₊ − I₋)/(2 dz), solved with the in-focus image in the divergence term.
Sign convention (DESIGN.md §3): defocus = propagation distance, negative = under-focus
(PyLorentz's defocus values have the opposite sign).
"""

from __future__ import annotations

from ..jobs import run_job
from .series import tie_series_job


#: TIE as a job (yields :class:`~napari_phase.jobs.Progress`, returns a PhaseResult); the same
#: arguments as :func:`tie`. Cancellation propagates JobCancelled (nothing to return).
tie_job = tie_series_job


def tie(
    stack,
    *,
    pixel_size_nm: float,
    defocus_step_nm: float | None = None,
    defocus_nm=None,
    flipped=None,
    flip_axis: str = "x",
    align: bool = False,
    voltage_kv: float = 200.0,
    qc_per_nm: float | str | None = None,
    pad: bool = True,
    uncertainty: bool = False,
    **options,
):
    """TIE from a through-focus series: :class:`~napari_phase.result.PhaseResult`.

    ``stack``: (N, Y, X) or a list of N images, N odd, ordered from most under- to most
    over-focused, the in-focus image in the middle (N = 3: under, in, over). N = 1 is SITIE.
    Defocus: ``defocus_step_nm`` (symmetric: −n·dz … 0 … +n·dz) or ``defocus_nm`` (one value per
    image, nm, negative = under-focus; −1 mm = −1e6 nm).
    ``flipped``: the same series recorded with the specimen turned over, as recorded (mirrored
    about ``flip_axis``: "x" = left-right, the specimen rotated 180° about the image's y axis;
    "y" = up-down). ``align``: register the series (translation) and the flipped series onto it
    (mirror, rotation within ±``max_rotation_deg``, sub-pixel shift) before solving.
    ``qc_per_nm``: Tikhonov cut-off of the (magnetic or total) phase (None → 0.5/FOV for a series,
    2/FOV for one image; 0 → none; "auto" → no cut-off and ∂I/∂z Wiener-filtered with the noise
    the images show, ``metadata["auto_regularisation"]``); ``pad``: False → periodic solve.
    ``boundary`` ("auto", default: "free" when alignment or a ``roi`` makes the field a window of a
    larger specimen — phase continued with least gradient energy, i.e. constant just outside —
    else "mirror": zero flux at the edges).
    ``qc_e_per_nm``: cut-off of the electrostatic phase (None → 2/FOV); ``derivative_e``
    ("spectral", default: per-frequency fit of the weak-object defocus response; "least_squares")
    its ∂I/∂z; ``phase_e_prior`` ("auto", default: φe's Tikhonov-shrunk lowest frequencies from
    k·(−ln A) of the in-focus intensity, k fitted, one material — :mod:`.phase_e_prior`; "none");
    ``phase_e_check`` ("auto", default: those refinements are kept only when the data say they help —
    agreement with the absorption, else the fit of the simulated series — else φe is the plain
    algebra (φ + φflip)/2, :mod:`.phase_e_check`, ``metadata["phase_e_check"]``; "off": always refined).
    ``series_registration`` ("model", default: coarse cross-correlation for shifts ≥ 2 px, then
    every image onto its simulation at its own defocus, :mod:`.series_register`;
    "cross-correlation": the coarse step only).
    Options: ``align_rotation`` (True), ``max_rotation_deg`` (10), ``hot_pixel_sigma`` (None:
    off; e.g. 6: replace pixels > 6σ from their 3×3 median), ``roi`` ((y0, y1, x0, x1) px),
    ``keep_aligned`` (default: when aligning, return the aligned stacks as ``aligned`` /
    ``aligned_flipped``).

    ``uncertainty``: also ``phase_sigma`` (rad), ``bx_sigma``, ``by_sigma`` (T·nm): the images'
    noise propagated by repeating the solve on re-sampled noise (noise part only).

    Result: ``.phase`` = the magnetic phase φm = (φ − φflip)/2 when ``flipped`` is given, the
    total phase otherwise (rad, zero mean); ``.arrays["phase_e"]`` = the electrostatic phase
    (φ + φflip)/2 (with ``flipped``); ``.bx``, ``.by`` = B·t (T·nm) from ``.phase``.
    """
    return run_job(
        tie_series_job(
            stack,
            pixel_size_nm=pixel_size_nm,
            defocus_step_nm=defocus_step_nm,
            defocus_nm=defocus_nm,
            flipped=flipped,
            flip_axis=flip_axis,
            align=align,
            voltage_kv=voltage_kv,
            qc_per_nm=qc_per_nm,
            pad=pad,
            uncertainty=uncertainty,
            **options,
        )
    )


def tie_phase(stack, *, pixel_size_nm: float, defocus_step_nm: float | None = None, defocus_nm=None, voltage_kv: float = 200.0,
              qc_per_nm: float | None = None, pad: bool = True):
    """TIE phase only (rad, float32, zero mean) of a series, plain numpy (see :func:`tie`)."""
    return tie(stack, pixel_size_nm=pixel_size_nm, defocus_step_nm=defocus_step_nm, defocus_nm=defocus_nm,
               voltage_kv=voltage_kv, qc_per_nm=qc_per_nm, pad=pad).phase
