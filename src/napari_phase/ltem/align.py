"""Registration and clean-up of LTEM through-focus series before TIE (numpy/scipy/scikit-image).

- :func:`register`: rigid registration (rotation about the image centre, then a sub-pixel shift)
  of one image onto another. The shift comes from scikit-image's
  ``phase_cross_correlation`` (plain cross-correlation with sub-pixel upsampling); the rotation
  from a search over angles that maximises the normalised correlation peak |CC|max (coarse grid,
  then a bounded scalar refinement). The peak is taken in absolute value, so images whose
  contrast is inverted (a flipped specimen's magnetic contrast, an under- vs over-focus pair)
  register as well. ``quality`` = |CC|max / (‖a‖ ‖b‖) in [0, 1].
- :func:`warp_rigid`: apply a :class:`Rigid` (bilinear; pixels that come from outside the image
  take the nearest edge value and are flagged in :func:`valid_mask`).
- :func:`align_series`: every image of a series onto the in-focus (middle) one.
- :func:`unmirror` / :func:`align_flipped`: a flipped series brought into the unflipped frame
  (mirror about the named axis, then a rigid registration on what the flip does not change — the
  in-focus amplitude when it shows contrast, else the series mean; magnetic contrast, which the
  flip reverses, only for a specimen with neither), and :func:`check_flip_axis` which
  refuses a flip axis that the data contradict.
- :func:`remove_outliers`: hot/dead pixels (|I − median₃ₓ₃| > k·σ_MAD) replaced by the median.
- :func:`crop_roi`: a region of interest (y0, y1, x0, x1) in pixels.

Conventions: axis order (..., y, x); angles in degrees, positive = counter-clockwise on screen
(rows pointing down), about the centre ((ny−1)/2, (nx−1)/2); shifts (dy, dx) in pixels, the
amount the (rotated) moving image is moved to land on the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize

from ..jobs import InputError

FLIP_AXES = ("x", "y")
#: registrations with a normalised peak below this are treated as "no common contrast"
MIN_QUALITY = 0.15
#: within a series, images at different defoci differ in contrast; a match must be this good to
#: move an image (measured: an in-focus vs ±Δf pair with no drift matched at 0.37 with a spurious
#: 1.5 px shift; neighbouring defocused images match at > 0.9)
SERIES_MIN_QUALITY = 0.6
#: within a series, a registered shift smaller than this (px) is not applied: cross-correlating
#: images at different defoci is biased by their different contrast (measured on drift-free
#: simulated 5-image series, ±0.2/±0.4 mm, skyrmions + contaminants, 10 % noise: spurious shifts up
#: to 1.6 px, e.g. (−1.45, −0.45) and (−1.6, −0.6) px for the over-focus images of seed 1), and
#: applying such a shift corrupts ∂I/∂z (φe accuracy 0.85–0.86 instead of 0.92 on seeds 1 and 2).
#: This cross-correlation is now only the coarse step of ``tie(..., align=True)``: the sub-2-px
#: drift is found by registering each image onto its simulation at its own defocus
#: (:mod:`.series_register`, which starts from these shifts).
SERIES_MIN_SHIFT_PX = 2.0


@dataclass(frozen=True)
class Rigid:
    """Rotation (degrees, about the image centre) followed by a shift (dy, dx) in pixels."""

    angle_deg: float = 0.0
    shift_yx: tuple[float, float] = (0.0, 0.0)
    quality: float = 1.0

    def as_dict(self) -> dict:
        return {"angle_deg": float(self.angle_deg), "shift_yx_px": [float(s) for s in self.shift_yx], "quality": float(self.quality)}


IDENTITY = Rigid()


def _matrix(angle_deg: float) -> np.ndarray:
    """Rotation in (y, x) array coordinates, counter-clockwise on screen for positive angles."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    # screen CCW with rows down: (x, y_up) -> rotate; in (row, col) = (-y_up, x) form:
    return np.array([[c, -s], [s, c]])


def warp_rigid(image: np.ndarray, rigid: Rigid, order: int = 1) -> np.ndarray:
    """The image rotated by ``rigid.angle_deg`` about its centre and shifted by ``rigid.shift_yx``
    (output(r) = input(R⁻¹(r − c − s) + c)); float32, edges extended with the nearest value."""
    img = np.asarray(image, dtype=np.float64)
    if rigid.angle_deg == 0 and rigid.shift_yx == (0.0, 0.0):
        return img.astype(np.float32)
    c = (np.array(img.shape[-2:], dtype=np.float64) - 1) / 2
    rinv = _matrix(rigid.angle_deg).T
    s = np.asarray(rigid.shift_yx, dtype=np.float64)
    offset = c - rinv @ (c + s)
    return ndimage.affine_transform(img, rinv, offset=offset, order=order, mode="nearest").astype(np.float32)


def valid_mask(shape, rigid: Rigid) -> np.ndarray:
    """True where the warped image has data from inside the original field of view."""
    ones = np.ones(shape, np.float64)
    c = (np.array(shape, dtype=np.float64) - 1) / 2
    rinv = _matrix(rigid.angle_deg).T
    offset = c - rinv @ (c + np.asarray(rigid.shift_yx, dtype=np.float64))
    return ndimage.affine_transform(ones, rinv, offset=offset, order=0, mode="constant", cval=0.0) > 0.5


def _prepare(image: np.ndarray, smooth_px: float) -> np.ndarray:
    """Mean-removed, lightly smoothed image times a Tukey-like window (edges do not correlate)."""
    a = np.asarray(image, dtype=np.float64)
    if smooth_px > 0:
        a = ndimage.gaussian_filter(a, smooth_px)
    a = a - a.mean()
    wy = np.hanning(a.shape[0] + 2)[1:-1] ** 0.5
    wx = np.hanning(a.shape[1] + 2)[1:-1] ** 0.5
    return a * wy[:, None] * wx[None, :]


def _shift_and_quality(reference: np.ndarray, moving: np.ndarray, upsample: int) -> tuple[tuple[float, float], float]:
    from skimage.registration import phase_cross_correlation

    norm = float(np.sqrt((reference**2).sum() * (moving**2).sum()))
    if norm == 0:
        return (0.0, 0.0), 0.0
    shift, error, _ = phase_cross_correlation(reference, moving, upsample_factor=max(1, int(upsample)), normalization=None)
    quality = float(np.sqrt(max(0.0, 1.0 - float(error) ** 2)))
    return (float(shift[0]), float(shift[1])), quality


def register(
    moving: np.ndarray,
    reference: np.ndarray,
    *,
    rotation: bool = False,
    max_rotation_deg: float = 10.0,
    smooth_px: float = 1.0,
    upsample: int = 20,
) -> Rigid:
    """Rigid transform that brings ``moving`` onto ``reference`` (both (Y, X), same shape):
    rotation (if ``rotation``, searched in ±``max_rotation_deg``) then a sub-pixel shift."""
    ref = _prepare(reference, smooth_px)
    if not rotation or max_rotation_deg <= 0:
        shift, q = _shift_and_quality(ref, _prepare(moving, smooth_px), upsample)
        return Rigid(0.0, shift, q)

    raw = np.asarray(moving, dtype=np.float64)

    def quality_at(angle: float, up: int = 1) -> tuple[float, tuple[float, float]]:
        rotated = warp_rigid(raw, Rigid(angle)) if angle else raw
        shift, q = _shift_and_quality(ref, _prepare(rotated, smooth_px), up)
        return q, shift

    step = 1.0
    angles = np.arange(-max_rotation_deg, max_rotation_deg + step / 2, step)
    scores = [quality_at(float(a))[0] for a in angles]
    best = float(angles[int(np.argmax(scores))])
    res = optimize.minimize_scalar(
        lambda a: -quality_at(float(a), 4)[0], bounds=(best - step, best + step), method="bounded", options={"xatol": 0.02}
    )
    angle = float(res.x) if -res.fun >= max(scores) else best
    q, shift = quality_at(angle, upsample)
    return Rigid(angle, shift, q)


#: the images of a series that the flip registration compares, in this order (N ≥ 3):
#: "in-focus" I(0) = |A|² (the amplitude: exactly what the flip does not change); "mean" over the
#: series (magnetic contrast is odd in defocus to first order and cancels; with a strong φe the
#: second-order φe·φm cross term does not, and reverses with the flip); "outer difference"
#: I(+z) − I(−z) (magnetic contrast, reversed by the flip) and its magnitude (unchanged by
#: φm → −φm) — the last two for a specimen with no electrostatic contrast at all.
REGISTRATION_IMAGES = ("in-focus", "mean", "outer difference", "|outer difference|")


def _registration_images(stack: np.ndarray) -> list[np.ndarray]:
    """The images of :data:`REGISTRATION_IMAGES` for a series (N, Y, X); one image: itself."""
    if stack.shape[0] == 1:
        return [stack[0]]
    diff = ndimage.gaussian_filter(stack[-1].astype(np.float64) - stack[0], 1.0)
    return [stack[stack.shape[0] // 2], stack.mean(axis=0), diff, np.abs(diff)]


def unmirror(stack: np.ndarray, flip_axis: str) -> np.ndarray:
    """Undo the mirror of a flipped specimen: "x" mirrors left-right, "y" up-down (last two axes)."""
    if flip_axis not in FLIP_AXES:
        raise InputError(f"flip_axis must be 'x' (flipped left-right) or 'y' (up-down), got {flip_axis!r}")
    return np.flip(np.asarray(stack), axis=-1 if flip_axis == "x" else -2)


#: the flip-invariant mean image is trusted for registration when it matches at least this well
#: (and so is the in-focus image, when it also passes :data:`MIN_IN_FOCUS_CONTRAST`)
TRUST_MEAN_QUALITY = 0.5
#: the in-focus images are registered on when both show at least this amplitude contrast
#: (:func:`in_focus_contrast`, std/mean above the noise). Measured (``scripts/flip_registration_check.py``):
#: a magnetic film with no particles < 1e-4 at any noise (its in-focus contrast — from Cs and the
#: focal spread — is magnetic, tiny, and reverses with the flip); the bench's contaminant particles
#: 0.08–0.11; the strong-phase class (:mod:`.simulate_strong`) 0.14–0.54, its wires re-imaged with
#: absorption as weak as A = exp(−0.005 φe) 0.06.
MIN_IN_FOCUS_CONTRAST = 0.01


#: how far (°, px) :func:`refine_rigid` may move a registration on the in-focus images (elsewhere
#: 1°, 2 px): the windowed cross-correlation pulls the shift toward zero where the contrast is
#: weak along one direction (measured: two near-parallel nanowires, truth (1.5°, (−2.45, −2.06)
#: px), found (1.09°, (−0.25, −1.35)); the refinement reaches (1.50°, (−2.35, −2.04)) but moves
#: 2.1 px), and an amplitude image with contrast above the noise has no false optimum that near
IN_FOCUS_REFINE_LIMITS = (2.0, 5.0)


#: :func:`in_focus_contrast` looks at scales beyond this Gaussian σ (px): the noise's share of the
#: variance drops to 1/(4πσ²) of its own (measured on 128² px of white noise, 5 draws: at 10 %
#: noise up to 0.004, 0.014 unsmoothed; at 30 % up to 0.015 — noise that strong makes the in-focus
#: images match at ≈ 0.1, and :data:`TRUST_MEAN_QUALITY` refuses them)
CONTRAST_SMOOTH_PX = 2.0


def in_focus_contrast(image: np.ndarray, smooth_px: float = CONTRAST_SMOOTH_PX) -> float:
    """Amplitude contrast of an in-focus image at scales beyond ``smooth_px``:
    √(var(G∗I) − σ̂²/(4π s²))/mean(I), G a Gaussian of σ = s px, σ̂ the white-noise σ of I
    (:func:`.regularise.noise_sigma`; G∗ keeps 1/(4πs²) of white noise's variance); 0 for a
    pure phase object whatever the noise, and for an image of non-positive mean."""
    from .regularise import noise_sigma

    a = np.asarray(image, dtype=np.float64)
    m = float(a.mean())
    if m <= 0:
        return 0.0
    noise_var = noise_sigma(a) ** 2 / (4 * np.pi * smooth_px**2)
    g = ndimage.gaussian_filter(a, smooth_px)
    return float(np.sqrt(max(float(g.var()) - noise_var, 0.0)) / m)


def _candidate_registrations(moving_stack, reference_stack, *, rotation, max_rotation_deg) -> list[Rigid]:
    return [
        register(mov, ref, rotation=rotation, max_rotation_deg=max_rotation_deg)
        for mov, ref in zip(_registration_images(moving_stack), _registration_images(reference_stack))
    ]


def _pick(candidates: list[Rigid], contrast: float = 0.0) -> tuple[Rigid, str]:
    """(registration, the name of the images it came from). The flip changes φm → −φm, so
    register on electrostatic contrast: the in-focus images when they show amplitude contrast
    (``contrast`` ≥ :data:`MIN_IN_FOCUS_CONTRAST`) and match well; else the mean images when they
    match well (a weak-phase specimen: they are the same for a flipped specimen and cannot lock
    onto an inverted, lattice-shifted copy of a periodic magnetic texture); else the best of the
    others (magnetic contrast)."""
    if len(candidates) == 1:
        return candidates[0], "the single image"
    if contrast >= MIN_IN_FOCUS_CONTRAST and candidates[0].quality >= TRUST_MEAN_QUALITY:
        return candidates[0], REGISTRATION_IMAGES[0]
    if candidates[1].quality >= TRUST_MEAN_QUALITY:
        return candidates[1], REGISTRATION_IMAGES[1]
    k = max(range(1, len(candidates)), key=lambda j: candidates[j].quality)
    return candidates[k], REGISTRATION_IMAGES[k]


def flip_contrast(stack: np.ndarray, moving_stack: np.ndarray) -> float:
    """The smaller :func:`in_focus_contrast` of the two series' in-focus (middle) images; 0 for one image."""
    if stack.shape[0] == 1:
        return 0.0
    mid = stack.shape[0] // 2
    return min(in_focus_contrast(stack[mid]), in_focus_contrast(moving_stack[mid]))


def _aligned_qualities(moving_stack, reference_stack) -> list[float]:
    """|correlation| of each pair of registration images without any transform (already aligned)."""
    out = []
    for mov, ref in zip(_registration_images(moving_stack), _registration_images(reference_stack)):
        a, b = _prepare(mov, 1.0).ravel(), _prepare(ref, 1.0).ravel()
        den = float(np.sqrt((a * a).sum() * (b * b).sum()))
        out.append(abs(float((a * b).sum())) / den if den > 0 else 0.0)
    return out


def _clearly_better(a: float, b: float) -> bool:
    return a > max(1.5 * b, b + 0.15) and a > 0.3


def check_flip_axis(stack: np.ndarray, flipped: np.ndarray, flip_axis: str, *, align: bool, max_rotation_deg: float = 10.0) -> dict:
    """Refuse a flip axis the data contradict: on some registration image (:data:`REGISTRATION_IMAGES`)
    the flipped series un-mirrored about the *other* axis matches the unflipped one
    clearly better than about the named axis, and on none the named axis is clearly better
    (a periodic texture can match both ways; the flip-invariant contrast decides).
    Returns the match qualities per registration image."""
    other = "y" if flip_axis == "x" else "x"
    named_stack, other_stack = unmirror(flipped, flip_axis), unmirror(flipped, other)
    named_candidates = None
    if align:
        kw = dict(rotation=True, max_rotation_deg=max_rotation_deg)
        named_candidates = _candidate_registrations(named_stack, stack, **kw)
        qn = [r.quality for r in named_candidates]
        qo = [r.quality for r in _candidate_registrations(other_stack, stack, **kw)]
    else:
        qn, qo = _aligned_qualities(named_stack, stack), _aligned_qualities(other_stack, stack)
    q_named, q_other = max(qn), max(qo)
    against = any(_clearly_better(o, n) for n, o in zip(qn, qo))
    for_named = any(_clearly_better(n, o) for n, o in zip(qn, qo))
    if against and not for_named:
        i = max(range(len(qn)), key=lambda j: qo[j] - qn[j])
        q_named, q_other = qn[i], qo[i]
        word = {"x": "left-right (flip_axis='x')", "y": "up-down (flip_axis='y')"}
        raise InputError(
            f"flip_axis={flip_axis!r} does not match the data: the flipped images look mirrored {word[other]} "
            f"(match {q_other:.2f} vs {q_named:.2f}); set flip_axis={other!r}"
        )
    return {"match_named_axis": [float(v) for v in qn], "match_other_axis": [float(v) for v in qo],
            "_named_candidates": named_candidates}


def refine_rigid(moving: np.ndarray, reference: np.ndarray, start: Rigid, *, smooth_px: float = 1.0, margin_px: int = 4,
                 max_turn_deg: float = 1.0, max_move_px: float = 2.0) -> Rigid:
    """Least-squares refinement of a rigid registration: the (angle, dy, dx) that maximise the
    Pearson correlation between the warped ``moving`` (cubic interpolation) and ``reference`` over
    the pixels the warped image covers (minus ``margin_px``), from ``start`` (Powell search); a
    result that turned more than ``max_turn_deg`` or moved more than ``max_move_px`` from the
    start is taken to have wandered off (``start`` is kept).

    The cross-correlation peak of :func:`register` is computed on windowed images, which biases a
    large shift toward zero (measured: a (4, −6) px shift with 3° rotation found as (3.65, 6.15)
    after un-mirroring); the direct fit has no window and no such bias."""
    mov = ndimage.gaussian_filter(np.asarray(moving, dtype=np.float64), smooth_px)
    ref = ndimage.gaussian_filter(np.asarray(reference, dtype=np.float64), smooth_px)
    inner = np.zeros(ref.shape, bool)
    inner[margin_px:-margin_px, margin_px:-margin_px] = True

    def cost(p):
        r = Rigid(float(p[0]), (float(p[1]), float(p[2])))
        w = warp_rigid(mov, r, order=3)
        m = valid_mask(ref.shape, r) & inner
        if m.sum() < 64:
            return 1.0
        a, b = w[m] - w[m].mean(), ref[m] - ref[m].mean()
        den = float(np.sqrt((a * a).sum() * (b * b).sum()))
        return 1.0 - float((a * b).sum()) / den if den > 0 else 1.0

    x0 = np.array([start.angle_deg, *start.shift_yx], dtype=np.float64)
    res = optimize.minimize(cost, x0, method="Powell", options={"xtol": 1e-3, "ftol": 1e-9, "maxfev": 400})
    if not res.success and res.fun >= cost(x0):
        return start
    angle, dy, dx = (float(v) for v in res.x)
    if (res.fun > cost(x0) or abs(angle - start.angle_deg) > max_turn_deg
            or max(abs(dy - start.shift_yx[0]), abs(dx - start.shift_yx[1])) > max_move_px):
        return start  # the refinement wandered off: keep the cross-correlation result
    return Rigid(angle, (dy, dx), start.quality)


def align_flipped(stack: np.ndarray, flipped: np.ndarray, flip_axis: str, *, rotation: bool = True, max_rotation_deg: float = 10.0,
                  candidates: list[Rigid] | None = None, refine: bool = True, report: dict | None = None):
    """Flipped series (as recorded, mirrored) → the unflipped frame: un-mirror, then one rigid
    transform found on the series' registration images (:func:`_pick`: electrostatic contrast
    first) and applied to every image (``candidates``: registrations already computed by
    :func:`check_flip_axis`, reused), refined by :func:`refine_rigid` on the same images (the mean
    images for magnetic contrast) when ``refine`` (series of 3 or more). ``report`` (a dict, if
    given) receives what was used: ``registered_on`` and ``in_focus_contrast``.
    Returns (aligned (N, Y, X) float32, Rigid)."""
    un = unmirror(flipped, flip_axis).astype(np.float32)
    ref = np.asarray(stack)
    if candidates is None or not rotation:
        candidates = _candidate_registrations(un, ref, rotation=rotation, max_rotation_deg=max_rotation_deg)
    contrast = flip_contrast(ref, un)
    rigid, used = _pick(candidates, contrast)
    if rigid.quality < MIN_QUALITY:
        raise InputError(
            f"could not register the flipped series onto the unflipped one (match {rigid.quality:.2f}): "
            "check that both show the same area, or align them beforehand and use align=False"
        )
    if refine and ref.shape[0] > 1:
        mid = ref.shape[0] // 2
        if used == REGISTRATION_IMAGES[0]:
            rigid = refine_rigid(un[mid], ref[mid], rigid, max_turn_deg=IN_FOCUS_REFINE_LIMITS[0], max_move_px=IN_FOCUS_REFINE_LIMITS[1])
        else:
            rigid = refine_rigid(un.mean(axis=0), ref.mean(axis=0), rigid)
    if report is not None:
        report.update(registered_on=used, in_focus_contrast=float(contrast))
    return np.stack([warp_rigid(f, rigid) for f in un]), rigid


def align_series(stack: np.ndarray, *, rotation: bool = False, max_rotation_deg: float = 5.0, max_shift_fraction: float = 0.15,
                 min_shift_px: float = SERIES_MIN_SHIFT_PX):
    """Register every image of a series (N, Y, X) onto the middle (in-focus) one.

    Images are taken from the middle outwards, each registered onto its aligned neighbour towards
    the middle (neighbouring defoci look alike; registering onto a far image of a periodic texture
    can lock onto a shift by one lattice period). A registration below :data:`SERIES_MIN_QUALITY`
    (e.g. against a featureless in-focus image of a pure phase object), with a shift larger than
    ``max_shift_fraction`` of the image (drift between the images of one series is small) or
    smaller than ``min_shift_px`` (:data:`SERIES_MIN_SHIFT_PX`: below the bias of registering
    images of different defocus) leaves the image where it is (its Rigid has zero shift and the
    match quality). Returns (aligned float32 stack, list of Rigid per image)."""
    arr = np.asarray(stack, dtype=np.float32)
    n = arr.shape[0]
    mid = n // 2
    out = arr.copy()
    transforms: list[Rigid] = [IDENTITY] * n
    limit = float(max_shift_fraction) * min(arr.shape[-2:])
    order = [k for d in range(1, mid + 1) for k in (mid - d, mid + d) if 0 <= k < n]
    for k in order:
        j = k + 1 if k < mid else k - 1
        r = register(arr[k], out[j], rotation=rotation, max_rotation_deg=max_rotation_deg)
        if r.quality >= SERIES_MIN_QUALITY and min_shift_px <= float(np.hypot(*r.shift_yx)) <= limit:
            transforms[k] = r
            out[k] = warp_rigid(arr[k], r)
        else:
            transforms[k] = Rigid(0.0, (0.0, 0.0), r.quality)
    return out, transforms


def valid_box(valid: np.ndarray) -> tuple[int, int, int, int]:
    """An axis-aligned box (y0, y1, x0, x1) inside which every pixel is valid: edge rows or
    columns are peeled off, the one with most invalid pixels first (greedy)."""
    v = np.asarray(valid, bool)
    y0, y1, x0, x1 = 0, v.shape[0], 0, v.shape[1]
    while y1 > y0 and x1 > x0:
        sub = v[y0:y1, x0:x1]
        if sub.all():
            break
        bad = [(~sub[0]).sum(), (~sub[-1]).sum(), (~sub[:, 0]).sum(), (~sub[:, -1]).sum()]
        k = int(np.argmax(bad))
        if k == 0:
            y0 += 1
        elif k == 1:
            y1 -= 1
        elif k == 2:
            x0 += 1
        else:
            x1 -= 1
    return y0, y1, x0, x1


def remove_outliers(image: np.ndarray, threshold_sigma: float = 6.0) -> tuple[np.ndarray, int]:
    """Replace hot/dead pixels by the 3×3 median. A pixel is an outlier when it stands above the
    largest (or below the smallest) of its 8 neighbours by more than k·σ, σ = 1.4826·MAD of
    (I − median₃ₓ₃) over the image — an isolated spike, not a fringe or an edge (whose extremes
    have neighbours of similar value). Works on (Y, X) or per frame of (N, Y, X).
    Returns (clean, count)."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 3:
        parts = [remove_outliers(f, threshold_sigma) for f in arr]
        return np.stack([p[0] for p in parts]), int(sum(p[1] for p in parts))
    med = ndimage.median_filter(arr, size=3, mode="reflect")
    resid = arr - med
    sigma = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    if sigma <= 0:
        sigma = float(resid.std())
    if sigma <= 0:
        return arr.copy(), 0
    ring = np.ones((3, 3), bool)
    ring[1, 1] = False
    nb_max = ndimage.maximum_filter(arr, footprint=ring, mode="reflect")
    nb_min = ndimage.minimum_filter(arr, footprint=ring, mode="reflect")
    k = float(threshold_sigma) * sigma
    bad = (arr - nb_max > k) | (nb_min - arr > k)
    out = arr.copy()
    out[bad] = med[bad]
    return out, int(bad.sum())


def check_roi(roi, shape) -> tuple[int, int, int, int]:
    """``roi`` = (y0, y1, x0, x1) in pixels as ints, inside an image of ``shape`` (..., Y, X)."""
    try:
        y0, y1, x0, x1 = (int(v) for v in roi)
    except (TypeError, ValueError):
        raise InputError(f"roi must be four integers (y0, y1, x0, x1) in pixels, got {roi!r}") from None
    ny, nx = tuple(shape)[-2:]
    if not (0 <= y0 < y1 <= ny and 0 <= x0 < x1 <= nx):
        raise InputError(f"roi (y0, y1, x0, x1) = {(y0, y1, x0, x1)} is outside the {ny}x{nx} px image or empty")
    return y0, y1, x0, x1


def crop_roi(array: np.ndarray, roi) -> np.ndarray:
    """``array[..., y0:y1, x0:x1]`` for ``roi`` = (y0, y1, x0, x1) in pixels, checked."""
    y0, y1, x0, x1 = check_roi(roi, np.shape(array))
    return np.asarray(array)[..., y0:y1, x0:x1]
