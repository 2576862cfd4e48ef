"""Demo part: SITIE, the pixel-wise solver and SIPRAD (with a painted and a threshold mask where the
sample has contaminants) on the two bundled LTEM images, scored by the LTEM bench's ``_scores``:
Pearson accuracy of the magnetic phase and SSIM (8-px edge crop), B accuracy over (Bx·t, By·t)."""

from __future__ import annotations

from types import SimpleNamespace

from ._report import SampleReport, timed
from .samples import load_sample

SAMPLES = ("ltem_skyrmions", "ltem_stripes")
COLUMNS = [("phase_acc", "phase accuracy", 4), ("ssim", "SSIM", 3), ("b_acc", "B accuracy", 4)]


def _methods(image, meta, truth, quick: bool, device: str):
    from ..ltem import siprad, sitie
    from ..ltem.mask import suggest_threshold, threshold_mask
    from ..ltem.pixelwise import pixelwise

    common = dict(pixel_size_nm=meta["pixel_size_nm"], defocus_nm=meta["defocus_nm"], voltage_kv=meta["voltage_kv"])
    extra = dict(cs_mm=meta.get("cs_mm", 1.0))
    iters = {"iterations": 150} if quick else {}
    yield "SITIE", lambda: sitie(image, **common)
    yield "Pixel-wise", lambda: pixelwise(image, **common, **extra, device=device, **iters)
    yield "SIPRAD", lambda: siprad(image, **common, **extra, device=device, **iters)
    if truth.get("mask_true") is not None and truth["mask_true"].any():
        # The true particle mask stands in for one a user painted; the bare threshold is shown too.
        painted = truth["mask_true"]
        thresholded = threshold_mask(image, suggest_threshold(image, below=True), below=True)
        yield "SIPRAD + painted mask", lambda: siprad(image, **common, **extra, amplitude=painted, device=device, **iters)
        yield "SIPRAD + threshold mask", lambda: siprad(image, **common, **extra, amplitude=thresholded, device=device, **iters)


def reports(quick: bool, device: str):
    from ..bench.ltem import _scores
    from ..physics import color_wheel_image, induction_from_phase

    for name in SAMPLES:
        image, truth, meta = load_sample(name)
        bx_t, by_t = induction_from_phase(truth["phase_true"], meta["pixel_size_nm"])
        rep = SampleReport(name, f"{name}: {image.shape[1]}x{image.shape[0]} px, {meta['pixel_size_nm']:g} nm/px, "
                                 f"defocus {meta['defocus_nm'] / 1e6:g} mm, noise {meta.get('noise', 0):g}",
                           COLUMNS, ("phase_acc", "Pearson vs true φm"))
        rep.tiles += [("image", image), ("true phase", truth["phase_true"]), ("true B", color_wheel_image(bx_t, by_t))]
        sample = SimpleNamespace(phase_m=truth["phase_true"], bx=bx_t, by=by_t)
        for method, run in _methods(image, meta, truth, quick, device):
            result, dt = timed(run)
            rep.add(method, dt, _scores(result, sample))
            rep.tiles += [(f"{method} phase", result.phase), (f"{method} B", color_wheel_image(result.bx, result.by))]
            rep.arrays[method] = result
        yield rep
