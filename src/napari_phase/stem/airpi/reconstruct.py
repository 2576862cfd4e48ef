"""CNN reconstruction of a 4D-STEM scan: batched inference over 3x3 kernels, stitching, streaming.

Pipeline per block of scan rows (the block plus a one-row halo is read, nothing else):

1. every pattern is resampled to the 64² window (BF disc radius 16 px, rotation/transpose to the
   scan frame, optical axis at ``center``; preprocess.resample_patterns);
2. each position's 3x3 kernel (scan edges padded by *reflection*: row −1 reads row 1) is
   standardised (I^0.1) and weighted by neighbour distance, the probe channels appended;
3. the network predicts the exit wave of the centre position, in batches of ``batch_size``;
4. patches ψout·conj(ψin) are summed into the object grid (stitch.py): pixel = scan step /
   ``oversample``, pixel (0, 0) at the first scan position, positions placed with sub-pixel accuracy.
   Non-square steps (step_y, step_x): pixel = min(step) / ``oversample``, positions at
   (row·step_y, col·step_x), kernel weights by each neighbour's real distance; the network saw only
   square scans in training, so the metadata lists "non-square scan step" as outside its ranges.

On the CPU, torch's thread count is measured while the scan runs (threads.ThreadTuner: the first
batch runs in pieces of PROBE_BATCH patterns that try 1 … min(cores, 4) threads, the fastest per
pattern is kept, re-probed every 200 batches or on a 2× slowdown; the choice is remembered for the
process, so the next run with the same device, precision and model starts from it without probing;
``threads=`` fixes it); the choice is in ``metadata["thread_tuning"]``. Probing on whole batches of
256 cost the default ``cnn()`` 0.78–0.87 of the network alone on this 2-core CPU (2 threads ran
3 of 16 batches at half speed under load).

The accumulators hold only the object (complex) and its weight, so memory is bounded by the block
and the object grid, whatever the dataset size (numpy, np.memmap or dask input). With a
``dask.distributed`` client, blocks of rows (each with its one-row halo) are reconstructed on the
cluster and their partial objects summed here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ...jobs import InputError, JobCancelled, Progress, Stopwatch, resolve_device, run_job, with_cpu_fallback
from ...result import PhaseResult
from ...threads import ThreadTuner, torch_threads
from ...uncertainty import check_flag, not_computed, run_sub
from ...validate import integer
from .._data import check_4d, read_rows, rows_per_block, shape_of
from .._grid import is_square
from ..calibration import Calibration
from ..descan import measure_or_skip
from ..descan import check_model as check_descan
from . import lowfreq
from .inference import PRECISIONS, inference_network, resolve_precision
from .model import IN_CHANNELS, build
from .preprocess import (
    BF_RADIUS_PX,
    WINDOW_PX,
    edge_defocus_phase,
    kernel_indices,
    neighbour_weights,
    pattern_sums,
    powered,
    probe_channels,
    probe_window,
    resample_patterns,
    standardise_kernels,
    window_pixel_a,
)
from .stitch import ObjectAccumulator, stitch

DEFAULT_MODEL = "airpi_default"
#: scan steps (window px) the reconstruction accepts; outside, patches would not overlap
STEP_PX_LIMITS = (0.05, 12.0)
#: the low-frequency source the CNN uses unless told otherwise (see lowfreq.py and cnn_job)
LOW_FREQUENCY_DEFAULT: str | None = "icom"
#: seconds between live previews while the CNN runs (the first block and the last always give one):
#: building a preview stitches the whole object, ~0.6 s at 1024² with unwrapping
PARTIAL_EVERY_S = 1.0
#: patterns per timed step while the thread tuner probes (a batch is split into such pieces then)
PROBE_BATCH = 16
ALL_ZERO = "every diffraction pattern is zero: nothing to reconstruct (wrong file or dark reference?)"


def _model_name(model: str | None) -> str:
    return DEFAULT_MODEL if model in (None, "", "default") else str(model)


def fast_network(model: str | None, device, precision: str = "auto"):
    """The network ready for inference (inference.py: conv+BN folded, channels-last, inference
    mode, bfloat16 on an AMX CPU for ``precision="auto"``), cached per (model, device, precision)."""
    net, _ = load_network(model, device)
    return inference_network(net, (_model_name(model), id(net)), device, precision)


def load_network(model: str | None = "default", device="cpu"):
    """The trained network (cached per (model, device)) and its card."""
    from ... import models

    name = _model_name(model)
    try:
        card = models.model_card(name)
    except KeyError as exc:
        raise InputError(str(exc).strip("'\"")) from None
    return models.load_model(name, build, device), card


class _Setup:
    """Everything a block needs, picklable (sent to dask workers)."""

    def __init__(self, cal: Calibration, shape, oversample: int, model: str, batch_size: int, edge: str,
                 precision: str = "auto", descan=None):
        self.cal = cal
        self.precision = precision
        self.descan = descan  # a DescanFit (stem/descan.py) or None: the beam centre per position
        self.shape = tuple(int(s) for s in shape)
        self.oversample = int(oversample)
        self.model = model
        self.batch_size = int(batch_size)
        self.edge = edge
        e, a = cal.energy_kev, cal.semiangle_mrad
        self.dx_a = window_pixel_a(e, a)
        self.step_yx_a = cal.step_yx_a  # non-square steps: kernels weighted per axis, patches placed per axis
        self.step_a = self.step_yx_a[1]
        self.step_px = self.step_a / self.dx_a
        self.step_yx_px = (self.step_yx_a[0] / self.dx_a, self.step_px)
        self.square = is_square(*self.step_yx_a)
        self.pixel_a = min(self.step_yx_a) / self.oversample
        # object px per scan step along y and x (= oversample for a square scan)
        self.pos_scale = (self.oversample, self.oversample) if self.square else \
            (self.step_yx_a[0] / self.pixel_a, self.step_yx_a[1] / self.pixel_a)
        self.chi_edge = edge_defocus_phase(cal.defocus_a, e, a)
        cs_a = cal.cs_mm * 1e7
        lam = cal.wavelength_a
        self.cs_edge = 0.5 * math.pi * cs_a * (a * 1e-3) ** 4 / lam
        probe = torch.as_tensor(probe_window(self.chi_edge, self.cs_edge))
        self.probe = probe / probe.abs().max()
        self.weights = neighbour_weights(self.step_px if self.square else self.step_yx_px)
        self.center = cal.center_for(self.shape[2:])
        self.grid_shape = (int(round(self.shape[0] * self.pos_scale[0])), int(round(self.shape[1] * self.pos_scale[1])))

    def resample(self, block: np.ndarray, device, row0: int = 0) -> torch.Tensor:
        """Scan rows ``row0 …`` of patterns on the 64² window, each read around its fitted beam centre."""
        x = torch.as_tensor(np.require(block, np.float32, ["W"]), device=device)
        offsets = None
        if self.descan is not None and self.descan.model != "off":
            rows, cols = np.meshgrid(np.arange(row0, row0 + block.shape[0]), np.arange(block.shape[1]), indexing="ij")
            offsets = np.stack(self.descan.shift_px(rows, cols), axis=-1)
        return resample_patterns(x, detector_mrad_per_px=self.cal.detector_mrad_per_px,
                                 semiangle_mrad=self.cal.semiangle_mrad, center=self.center,
                                 rotation_deg=self.cal.rotation_deg, transpose=self.cal.transpose, offsets_px=offsets)


def _reconstruct_rows(setup: _Setup, rows_data: np.ndarray, row0: int, r0: int, r1: int, device, net=None,
                      tuner: ThreadTuner | None = None):
    """Object accumulator of scan rows [r0, r1) given ``rows_data`` = scan rows starting at
    ``row0`` that cover the halo (r0 − 1 … r1, clipped). The accumulator covers the object rows
    the patches of these positions reach; returns (accumulator, its first object row).
    ``tuner``: each batch's network call is one timed step of the thread tuner. On the CPU the work
    around the network (resampling, kernels, stitching) runs on one torch thread while the tuner
    probes (threads.torch_threads: on a busy CPU such steps ran ~15× slower on two), then on the
    count it chose for the network (a busy CPU makes it choose one)."""
    import contextlib

    step = tuner.step if tuner is not None else contextlib.nullcontext
    on_cpu = torch.device(device).type == "cpu"

    def bulk():
        """Threads for the large memory-bound steps (resampling, kernel assembly): the network's
        count once the tuner has chosen it (on an idle 2-core CPU two threads take the step 15 %
        faster end to end), else one."""
        if not on_cpu:
            return contextlib.nullcontext()
        settled = tuner is not None and tuner.enabled and not tuner.probing and tuner.threads
        return torch_threads(int(tuner.threads) if settled else 1)

    if net is None:
        net = fast_network(setup.model, device, setup.precision)
    # a bfloat16 network's input is assembled in bfloat16 (autocast would convert it at the first layer)
    in_dtype = torch.bfloat16 if getattr(net, "precision", None) == "bfloat16" else torch.float32
    ny, nx = setup.shape[:2]
    psy, psx = setup.pos_scale
    r = setup.pixel_a / setup.dx_a  # window px per object px
    from .stitch import patch_half_width

    with bulk():
        windows = powered(setup.resample(rows_data, device, row0))  # (R, nx, N, N), I^0.1 once per pattern
        sums = pattern_sums(windows)
        half = patch_half_width(setup.probe, r)
        top = max(0, int(math.floor(r0 * psy)) - half - 1)
        bottom = min(setup.grid_shape[0], int(math.ceil((r1 - 1) * psy)) + half + 2)
        acc = ObjectAccumulator((bottom - top, setup.grid_shape[1]), device=device)
        rows = np.repeat(np.arange(r0, r1), nx)
        cols = np.tile(np.arange(nx), r1 - r0)
        idx = kernel_indices(rows, cols, (ny, nx), setup.edge)  # (P,9,2) global
        probe = setup.probe.to(device)
        pch = probe_channels(probe, 1).to(device)
        w = torch.as_tensor(setup.weights, device=device)
    for b0 in range(0, len(rows), setup.batch_size):
        sl = slice(b0, b0 + setup.batch_size)
        with bulk():
            ky = torch.as_tensor(idx[sl, :, 0] - row0, device=device)
            kx = torch.as_tensor(idx[sl, :, 1], device=device)
            # the network input, built in place in channels-last layout: standardise(windows[ky, kx]) | probe
            x = torch.empty((len(ky), IN_CHANNELS, *windows.shape[-2:]), device=device, dtype=in_dtype,
                            memory_format=torch.channels_last)
            standardise_kernels(windows, ky, kx, sums, w, out=x[:, :9])
            x[:, 9:] = pch
        if tuner is not None and tuner.probing:
            # while the tuner probes, the batch runs in short pieces, one timed step each (per pattern):
            # a thread count that loses costs PROBE_BATCH patterns, not a whole batch
            parts = []
            for s0 in range(0, len(x), PROBE_BATCH):
                piece = x[s0:s0 + PROBE_BATCH]
                with tuner.step(work=len(piece)):
                    parts.append(net(piece))
            amp, phase = (torch.cat([p[k] for p in parts]) for k in (0, 1))
        else:
            with step(work=len(x)) if tuner is not None else step():
                amp, phase = net(x)
        with bulk():
            psi = torch.polar(amp, phase)
            pos = torch.as_tensor(np.stack([rows[sl] * psy, cols[sl] * psx], -1), dtype=torch.float64)
            stitch(acc, psi, probe, pos, r, origin=(top, 0))
    return acc, top


def _validate(data, *, energy_kev, semiangle_mrad, scan_step_a, detector_mrad_per_px, oversample, rotation_deg,
              transpose, center, defocus_a, cs_mm, batch_size):
    shape = check_4d(data)
    cal = Calibration(energy_kev=energy_kev, semiangle_mrad=semiangle_mrad, scan_step_a=scan_step_a,
                      detector_mrad_per_px=detector_mrad_per_px, rotation_deg=float(rotation_deg or 0.0),
                      transpose=bool(transpose), center_px=center, defocus_a=float(defocus_a or 0.0),
                      cs_mm=float(cs_mm or 0.0))
    cal.validate(shape[2:], needs=("energy_kev", "semiangle_mrad", "scan_step_a", "detector_mrad_per_px"))
    sy, sx = cal.step_yx_a
    oversample = integer(oversample, "oversample", 1, 8)
    integer(batch_size, "batch_size", 1)
    for step in {sy, sx}:
        step_px = step / window_pixel_a(cal.energy_kev, cal.semiangle_mrad)
        if not STEP_PX_LIMITS[0] <= step_px <= STEP_PX_LIMITS[1]:
            raise InputError(
                f"scan step {step:g} Å is {step_px:.2f} probe-window pixels at {cal.energy_kev:g} kV, {cal.semiangle_mrad:g} mrad; "
                f"the CNN needs {STEP_PX_LIMITS[0]}–{STEP_PX_LIMITS[1]} (overlapping probes): check the scan step")
    return shape, cal, oversample


def cnn_job(
    data: Any,
    *,
    energy_kev: float | None,
    semiangle_mrad: float | None,
    scan_step_a: float | tuple | None,
    detector_mrad_per_px: float | None,
    oversample: int = 2,
    model: str = "default",
    device: str = "auto",
    client=None,
    center: tuple[float, float] | None = None,
    batch_size: int = 256,
    rotation_deg: float = 0.0,
    transpose: bool = False,
    defocus_a: float = 0.0,
    cs_mm: float = 0.0,
    block_rows: int | None = None,
    edge: str = "reflect",
    threads: int | None = None,
    low_frequency: str | None = LOW_FREQUENCY_DEFAULT,
    low_frequency_cutoff: float = lowfreq.DEFAULT_CUTOFF,
    low_frequency_epsilon: float | None = lowfreq.DEFAULT_EPSILON,
    precision: str = "auto",
    descan="plane",
    uncertainty: bool = False,
):
    """The CNN reconstruction as a job (progress with the growing phase after every block of rows;
    cancel returns the rows done so far). Returns a PhaseResult: ``phase`` (rad) and ``amplitude``
    on the object grid (pixel = scan step / oversample, Å; origin at the first scan position).
    ``threads``: torch CPU threads; None = measured per batch (threads.ThreadTuner).
    ``low_frequency``: "icom", "ssb" or None — after the CNN pass, a second (cheap) pass over the
    data computes iCoM or SSB and takes the phase's low spatial frequencies from it, below a smooth
    crossover at ``low_frequency_cutoff`` · α/λ, weighted down where the CoM field's signal-to-noise
    ratio is low (``low_frequency_epsilon``: the CNN's error power relative to the signal's; None =
    the crossover alone; lowfreq.com_confidence). The partial results while the CNN runs are the
    plain CNN. ``precision``: "auto" (bfloat16 convolutions on a CPU with AMX tiles, float32
    elsewhere), "float32" or "bfloat16" (inference.py). ``descan``: "plane" (default), "constant",
    "off" or a DescanFit — a first pass measures the BF-disc centre of every pattern, fits it over
    the scan and the network reads every pattern around its fitted beam centre
    (preprocess.resample_patterns ``offsets_px``); the low-frequency source (iCoM, SSB) removes
    the same fit (stem/descan.py). ``metadata["descan"]``. ``uncertainty``: add ``phase_sigma``
    (rad): the CNN's spread under a 180° rotation of scan and detector with Poisson re-sampled
    counts, scaled by a factor fitted on validation structures (uncertainty.py; one more run, ~2×)."""
    want_sigma = check_flag(uncertainty)
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if low_frequency is not None and low_frequency not in lowfreq.SOURCES:
        raise InputError(f"low_frequency must be 'icom', 'ssb' or None, got {low_frequency!r}")
    try:
        low_frequency_cutoff = float(low_frequency_cutoff)
    except (TypeError, ValueError):
        raise InputError(f"low_frequency_cutoff must be a number (fraction of α/λ), got {low_frequency_cutoff!r}") from None
    if not 0.0 < low_frequency_cutoff <= 1.3:
        raise InputError(f"low_frequency_cutoff is a fraction of α/λ in (0, 1.3], got {low_frequency_cutoff:g}")
    if low_frequency_epsilon is not None:
        try:
            low_frequency_epsilon = float(low_frequency_epsilon)
        except (TypeError, ValueError):
            raise InputError(f"low_frequency_epsilon must be a positive number or None, got {low_frequency_epsilon!r}") from None
        if not 0.0 < low_frequency_epsilon < math.inf:
            raise InputError(f"low_frequency_epsilon must be a positive number or None, got {low_frequency_epsilon:g}")
    shape, cal, oversample = _validate(
        data, energy_kev=energy_kev, semiangle_mrad=semiangle_mrad, scan_step_a=scan_step_a,
        detector_mrad_per_px=detector_mrad_per_px, oversample=oversample, rotation_deg=rotation_deg,
        transpose=transpose, center=center, defocus_a=defocus_a, cs_mm=cs_mm, batch_size=batch_size)
    if edge not in ("reflect", "replicate"):
        raise InputError(f"edge must be 'reflect' or 'replicate', got {edge!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1):
        raise InputError(f"threads must be a positive integer or None (measured), got {threads!r}")
    name = _model_name(model)
    _, card = load_network(name, "cpu")  # clear error for an unknown model before any work
    check_descan(descan)
    fit, skipped = yield from measure_or_skip(data, descan, center=cal.center_for(shape[2:]), block_rows=block_rows,
                                              label="CNN")
    desc = {"descan": fit.to_metadata(cal.detector_mrad_per_px) if fit else None,
            **({"descan_skipped": skipped} if skipped else {})}

    def make(dev):
        try:  # on a cluster each worker resolves "auto" for its own CPU
            prec = precision if client is not None else resolve_precision(precision, dev)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        return _run(data, shape, cal, oversample, name, card, dev, client, int(batch_size), block_rows, edge, threads,
                    prec, fit)

    result = yield from with_cpu_fallback(make, device)
    result.metadata.update(desc)
    if low_frequency is None or result.metadata.get("cancelled"):
        result.metadata["low_frequency"] = None
    else:
        result = yield from _low_frequency_pass(result, data, cal, low_frequency, low_frequency_cutoff,
                                                low_frequency_epsilon, block_rows, descan if fit is None else fit)
    if not want_sigma:
        return result
    if result.metadata.get("cancelled"):
        return not_computed(result, "cancelled: no σ")
    from .uncertainty import cnn_sigma_job

    def rerun(other, other_center):  # the same CNN job on a re-sampled, rotated scan (no σ of its own)
        return cnn_job(other, energy_kev=energy_kev, semiangle_mrad=semiangle_mrad, scan_step_a=scan_step_a,
                       detector_mrad_per_px=detector_mrad_per_px, oversample=oversample, model=model, device=device,
                       client=client, center=other_center, batch_size=batch_size, rotation_deg=rotation_deg,
                       transpose=transpose, defocus_a=defocus_a, cs_mm=cs_mm, block_rows=block_rows, edge=edge,
                       threads=threads, low_frequency=low_frequency, low_frequency_cutoff=low_frequency_cutoff,
                       low_frequency_epsilon=low_frequency_epsilon, precision=precision,
                       descan=descan.model if hasattr(descan, "model") else descan)

    pos = (cal.step_yx_a[0] / result.pixel_size, cal.step_yx_a[1] / result.pixel_size)
    return (yield from cnn_sigma_job(result, data, rerun, center=cal.center_for(shape[2:]), pos_scale=pos))


def _forward(sub, label: str):
    """Drive a sub-job under ``label`` (:func:`~napari_phase.uncertainty.run_sub`)."""
    return run_sub(sub, lambda p: f"{label}: {p.message}")


def _low_frequency_pass(result: PhaseResult, data, cal: Calibration, source: str, cutoff: float,
                        epsilon: float | None, block_rows: int | None = None, descan="plane"):
    """Second pass: iCoM (always: its CoM maps give the noise-adaptive weight) and, for
    ``source="ssb"``, SSB of the whole scan; their low frequencies go into the CNN phase
    (lowfreq.combine). Cancel during this pass returns the plain CNN result; a source that cannot
    run on this scan (e.g. SSB on a scan too small for its band) leaves the CNN phase as it was and
    says so in ``metadata["low_frequency_skipped"]``."""
    from ..com import icom_job
    from ..ssb import ssb_job

    step = cal.step_yx_a if not is_square(*cal.step_yx_a) else cal.step_yx_a[1]
    kw = dict(energy_kev=cal.energy_kev, scan_step_a=step, detector_mrad_per_px=cal.detector_mrad_per_px,
              rotation_deg=cal.rotation_deg, transpose=cal.transpose, center=cal.center_px,
              block_rows=block_rows)  # the CNN pass's blocks: the same bounded memory
    label = f"CNN low frequencies from {source}"
    meta = result.metadata
    try:
        ic = yield from _forward(icom_job(data, descan=descan, **kw), label)
        src = ic
        if source == "ssb":
            src = yield from _forward(ssb_job(data, semiangle_mrad=cal.semiangle_mrad, defocus_a=cal.defocus_a,
                                              cs_mm=cal.cs_mm, descan=descan, **kw), label)
    except JobCancelled:
        meta.update(low_frequency=None, low_frequency_skipped=f"{source} pass cancelled: plain CNN phase")
        return result
    except InputError as exc:
        meta.update(low_frequency=None, low_frequency_skipped=f"{source} could not run: {exc}")
        return result
    transfer = None
    if source == "icom":
        def transfer(q):
            return lowfreq.icom_transfer(q, energy_kev=cal.energy_kev, semiangle_mrad=cal.semiangle_mrad,
                                         defocus_a=cal.defocus_a, cs_mm=cal.cs_mm)
    confidence = None
    if epsilon is not None:
        confidence = lowfreq.com_confidence(ic.arrays["com_y"], ic.arrays["com_x"], ic.pixel_size, epsilon=epsilon)
    q_c = cutoff * cal.semiangle_mrad * 1e-3 / cal.wavelength_a
    known = result.arrays["amplitude"] > 0  # 0 where no patch reached (ObjectAccumulator.amplitude)
    result.arrays["phase"] = lowfreq.combine(result.phase, result.pixel_size, src.phase, src.pixel_size,
                                             cutoff_inv_a=q_c, width=lowfreq.DEFAULT_WIDTH, transfer=transfer,
                                             confidence=confidence, known=known)
    meta.update(low_frequency=source, low_frequency_cutoff=cutoff, low_frequency_cutoff_inv_a=q_c,
                low_frequency_width=lowfreq.DEFAULT_WIDTH, low_frequency_epsilon=epsilon,
                low_frequency_transfer=(f"iCoM's probe-intensity transfer divided out (T >= {lowfreq.T_MIN})"
                                        if transfer else "1 (SSB)"),
                runtime_s=meta.get("runtime_s", 0.0) + float(ic.metadata.get("runtime_s", 0.0))
                + (float(src.metadata.get("runtime_s", 0.0)) if src is not ic else 0.0))
    if confidence is not None:
        meta["low_frequency_com_noise"] = confidence.noise
    return result


def unwrap_object_phase(phase: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The stitched phase arg(Σ o_n) lies in (−π, π]; heavy columns of thicker crystals pass π
    (LaAlO3 2 nm at 300 kV: 3.1 rad), where a wrap would put a −2π spike. 2-D unwrapping
    (skimage, reliability-sorted) over the reconstructed pixels ``known``, then the multiple of
    2π that keeps the median where it was. A phase with no jump > π is returned as it was."""
    from skimage.restoration import unwrap_phase

    if known.sum() < 4 or min(phase.shape) < 2:
        return phase
    if not np.isfinite(phase[known]).all():  # skimage's C loop never returns on NaN: refuse instead
        raise InputError("the CNN's stitched phase has NaN/inf values: check the calibration and that the patterns hold counts")
    un = unwrap_phase(np.ma.masked_array(phase.astype(np.float64), mask=~known))
    un = np.ma.filled(un, 0.0)
    k = np.round(np.median(un[known] - phase[known]) / (2 * np.pi))
    out = np.where(known, un - 2 * np.pi * k, 0.0)
    return out.astype(np.float32)


def _result(setup: _Setup, acc: ObjectAccumulator, card: dict, dev, watch, extra: dict, rows_done: int,
            unwrap: bool = True) -> PhaseResult:
    phase = acc.phase().cpu().numpy()
    if unwrap:
        phase = unwrap_object_phase(phase, (acc.weight > 0).cpu().numpy())
    amp = acc.amplitude().cpu().numpy().astype(np.float32)
    cal = setup.cal
    meta = {
        "method": "cnn", "model": card.get("name", setup.model), "model_sha256": card.get("sha256", ""),
        "energy_kev": cal.energy_kev, "semiangle_mrad": cal.semiangle_mrad, "scan_step_a": setup.step_a,
        "detector_mrad_per_px": cal.detector_mrad_per_px, "rotation_deg": cal.rotation_deg,
        "transpose": cal.transpose, "center_px": list(setup.center), "defocus_a": cal.defocus_a, "cs_mm": cal.cs_mm,
        "oversample": setup.oversample, "window_pixel_a": setup.dx_a, "step_window_px": setup.step_px,
        "edge_padding": setup.edge, "batch_size": setup.batch_size, "input_shape": list(setup.shape),
        "origin": "first scan position", "rows_done": rows_done, "device": str(dev),
        "runtime_s": watch.elapsed_s, "patterns_per_s": rows_done * setup.shape[1] / max(watch.elapsed_s, 1e-9),
        "threads": torch.get_num_threads(),  # _run replaces it with the tuner's choice and record
        "inference": {"conv_bn_fused": True, "memory_format": "channels_last", "precision": setup.precision,
                      "inference_mode": True},
    }
    tr = card.get("training_ranges", {})
    if tr:
        e_lo, e_hi = tr.get("energy_kev", (0, 1e9))
        a_lo, a_hi = tr.get("semiangle_mrad", (0, 1e9))
        s_lo, s_hi = tr.get("step_px", (0, 1e9))
        out = []
        if not e_lo <= cal.energy_kev <= e_hi:
            out.append("energy")
        if not a_lo <= cal.semiangle_mrad <= a_hi:
            out.append("semi-angle")
        if not all(s_lo <= s <= s_hi for s in setup.step_yx_px):
            out.append("scan step")
        if not setup.square:  # the network was trained on square scans (isotropic 3x3 kernels)
            out.append("non-square scan step")
        if out:
            meta["outside_training_ranges"] = out
    if not setup.square:
        meta["scan_step_y_a"] = setup.step_yx_a[0]
    meta.update(extra)
    return PhaseResult({"phase": phase, "amplitude": amp}, pixel_size=setup.pixel_a, pixel_unit="Å", metadata=meta)


def _run(data, shape, cal, oversample, name, card, dev, client, batch_size, block_rows, edge, threads=None,
         precision="float32", descan=None):
    """The job on one device; on the CPU inside a ThreadTuner (restores the caller's thread count)."""
    if client is not None:
        return (yield from _run_body(data, shape, cal, oversample, name, card, dev, client, batch_size, block_rows,
                                     edge, None, precision, descan))
    # probed on pieces of PROBE_BATCH patterns (one warm-up and two timed per candidate); the
    # choice is remembered for this process (device, precision, model), so a second run does not probe
    with ThreadTuner.for_device(torch.device(dev), threads, probe_steps=2, warmup_steps=1,
                                remember=f"cnn:{torch.device(dev)}:{precision}:{name}") as tuner:
        return (yield from _run_body(data, shape, cal, oversample, name, card, dev, client, batch_size, block_rows,
                                     edge, tuner, precision, descan))


def _tuned(result: PhaseResult, tuner: ThreadTuner | None) -> PhaseResult:
    if tuner is not None:
        result.metadata["threads"] = tuner.threads
        result.metadata["thread_tuning"] = tuner.summary()
    return result


def _run_body(data, shape, cal, oversample, name, card, dev, client, batch_size, block_rows, edge, tuner,
              precision="float32", descan=None):
    watch = Stopwatch()
    setup = _Setup(cal, shape, oversample, name, batch_size, edge, precision, descan)
    ny = shape[0]
    if block_rows is None:
        block_rows = max(1, min(ny, rows_per_block(shape, 32 * 2**20)))
    blocks = [(r0, min(ny, r0 + block_rows)) for r0 in range(0, ny, block_rows)]
    acc = ObjectAccumulator(setup.grid_shape, device="cpu")
    total = len(blocks)
    if client is not None:
        yield from _run_distributed(client, data, setup, blocks, acc, total)
        yield Progress(total, total, "CNN: stitched", None)
        return _result(setup, acc, card, "dask.distributed", watch, {"distributed": True, "blocks": total, "threads": None}, ny)
    net = fast_network(name, dev, precision)
    rows_done = 0
    signal = False
    last_preview = None
    try:
        for i, (r0, r1) in enumerate(blocks):
            h0, h1 = max(0, r0 - 1), min(ny, r1 + 1)
            rows_data = read_rows(data, h0, h1)
            signal = signal or bool(np.abs(rows_data).max() > 0)
            part, top = _reconstruct_rows(setup, rows_data, h0, r0, r1, dev, net, tuner)
            acc.add(ObjectAccumulator_cpu(part), (top, 0))
            rows_done = r1
            partial = None
            if last_preview is None or r1 == ny or watch.elapsed_s - last_preview >= PARTIAL_EVERY_S:
                # a preview: not unwrapped (the final result is), at most one per PARTIAL_EVERY_S
                partial = _tuned(_result(setup, acc, card, dev, watch, {"partial": True, "unwrapped": False}, rows_done,
                                         unwrap=False), tuner)
                last_preview = watch.elapsed_s
            yield Progress(i + 1, total, f"CNN: scan row {r1}/{ny}", partial)
    except JobCancelled:
        if rows_done == 0:
            raise
        return _tuned(_result(setup, acc, card, dev, watch, {"cancelled": True}, rows_done), tuner)
    if not signal:
        raise InputError(ALL_ZERO)
    return _tuned(_result(setup, acc, card, dev, watch, {}, ny), tuner)


def ObjectAccumulator_cpu(acc: ObjectAccumulator) -> ObjectAccumulator:  # noqa: N802 - tiny helper
    if acc.obj.device.type == "cpu":
        return acc
    out = ObjectAccumulator(acc.shape)
    out.obj, out.weight = acc.obj.cpu(), acc.weight.cpu()
    return out


def _block_task(setup: _Setup, rows_data: np.ndarray, row0: int, r0: int, r1: int):
    """One dask task: reconstruct rows [r0, r1) on the worker's CPU; returns numpy (obj, weight, top)."""
    rows_data = np.asarray(rows_data, dtype=np.float32)
    if not np.isfinite(rows_data).all():
        raise InputError(f"the 4D-STEM data has NaN/inf values in scan rows {row0}-{row0 + len(rows_data) - 1}")
    acc, top = _reconstruct_rows(setup, rows_data, row0, r0, r1, torch.device("cpu"))
    return acc.obj.numpy(), acc.weight.numpy(), top, bool(np.abs(rows_data).max() > 0)


def _run_distributed(client, data, setup: _Setup, blocks, acc: ObjectAccumulator, total: int):
    """Submit one task per row block (with its one-row halo) and sum the partial objects as they come."""
    from dask.distributed import as_completed

    ny = setup.shape[0]
    futures = []
    for r0, r1 in blocks:
        h0, h1 = max(0, r0 - 1), min(ny, r1 + 1)
        rows = data[h0:h1]
        if hasattr(rows, "compute"):
            rows = client.compute(rows)  # read on the cluster, not here
        else:
            rows = client.scatter(np.asarray(rows, dtype=np.float32))
        futures.append(client.submit(_block_task, setup, rows, h0, r0, r1, pure=False))
    done = 0
    signal = False
    try:
        for fut in as_completed(futures):
            obj, weight, top, has = fut.result()
            signal = signal or has
            part = ObjectAccumulator(obj.shape)
            part.obj, part.weight = torch.as_tensor(obj), torch.as_tensor(weight)
            acc.add(part, (top, 0))
            done += 1
            yield Progress(done, total, f"CNN: block {done}/{total} from the cluster", None)
    except JobCancelled:
        for f in futures:
            f.cancel()
        raise
    if not signal:
        raise InputError(ALL_ZERO)


def cnn(data: Any, *, energy_kev: float | None, semiangle_mrad: float | None, scan_step_a: float | tuple | None,
        detector_mrad_per_px: float | None, oversample: int = 2, model: str = "default", device: str = "auto",
        client=None, center=None, batch_size: int = 256, rotation_deg: float = 0.0, transpose: bool = False,
        **kwargs: Any) -> PhaseResult:
    """Phase object of a 4D-STEM scan (scan_y, scan_x, ky, kx) by the airpi CNN (see module doc).

    Returns a PhaseResult: ``.phase`` (rad) and ``amplitude`` on a grid of pixel scan_step/oversample
    (Å, ``.pixel_size_a``) whose pixel (0, 0) is the first scan position; metadata with the model
    card's name and sha256, every parameter, device and patterns/s.
    """
    return run_job(cnn_job(data, energy_kev=energy_kev, semiangle_mrad=semiangle_mrad, scan_step_a=scan_step_a,
                           detector_mrad_per_px=detector_mrad_per_px, oversample=oversample, model=model,
                           device=device, client=client, center=center, batch_size=batch_size,
                           rotation_deg=rotation_deg, transpose=transpose, **kwargs))
