"""Training FlowTIE: loss, validation by structure, the run and the model card.

Loss per sample on the network grid (edge band of 4 px left out, means removed):

    L = N(φ, φ_t)  +  ½(1 − xc(φ, φ_t))  +  0.3 N(g, ∇φ_t)  +  0.05 ‖curl g‖²/(‖g‖² + ‖∇φ_t‖²)
        + 0.02 N(∇·(I0∇φ), −(π²/(16κ))(I+ − I−)),     N(a, b) = ‖a − b‖²/(‖a‖² + ‖b‖²)

(phase error to the ground truth σV band-limited to the aperture; flow error; flow plausibility:
curl; the continuity (TIE) residual of the integrated phase, lightly weighted because in thick
crystals σV does not satisfy the TIE — that is the point). Data: :mod:`.data` (exit-wave bank of
the "train" split; validation on the "val" split, fixed samples). Loop, schedule, checkpoints:
:func:`napari_phase.training.train_job`. Saving: :func:`napari_phase.models.save_model`.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..jobs import InputError, Progress, resolve_device
from . import evaluate as _evaluate  # imported now: a long run must not pick up later edits of it
from .data import APERTURE_MRAD, DOSE_E_PER_A2, DZ_NM, NOISE_FREE_FRACTION, THICKNESS_NM, VOLTAGES_KEV, ExitWaveBank
from .flow import curl_t, divergence_t, gradient_t
from .network import FlowTIENet
from .solve import forward_t

CROP = 4
#: the same training on a GPU, longer and wider (one command)
GPU_RECIPE = ("napari-phase train flowtie --device cuda --steps 40000 --batch-size 32 --patch 64 --base 32 "
              "--bank-runs 4 --bank-thicknesses 8 --lr 0.001 --out-dir src/napari_phase/models")
WEIGHTS = {"phase": 1.0, "xc": 0.5, "flow": 0.3, "curl": 0.05, "continuity": 0.02}


def _centered(a):
    a = a[..., CROP:-CROP, CROP:-CROP]
    return a - a.mean(dim=(-2, -1), keepdim=True)


def loss_terms(model, batch):
    """(loss, parts, phase) for a batch dict (tri, tie, kappa, target) on the model's device."""
    tri, tie, kappa, target = batch["tri"], batch["tie"], batch["kappa"], batch["target"]
    flow, phase = forward_t(model, tri, tie, kappa)
    p, t = _centered(phase), _centered(target)
    # symmetric normalisation ‖a − b‖²/(‖a‖² + ‖b‖²) ∈ [0, 2]: bounded, so a sample whose classical-TIE
    # input blew up (low dose, tiny κ) cannot dominate a batch
    l_phase = (((p - t) ** 2).mean(dim=(-2, -1)) / ((t**2).mean(dim=(-2, -1)) + (p**2).mean(dim=(-2, -1)) + 1e-6)).mean()
    xc = (p * t).sum(dim=(-2, -1)) / torch.sqrt((p**2).sum(dim=(-2, -1)) * (t**2).sum(dim=(-2, -1)) + 1e-12)
    l_xc = (1 - xc).mean()
    gt = gradient_t(target.double(), 1.0).float()
    fc, gc = flow[..., CROP:-CROP, CROP:-CROP], gt[..., CROP:-CROP, CROP:-CROP]
    g2 = (gc**2).mean(dim=(-3, -2, -1)) + (fc**2).mean(dim=(-3, -2, -1)) + 1e-6
    l_flow = (((fc - gc) ** 2).mean(dim=(-3, -2, -1)) / g2).mean()
    curl = curl_t(flow.double(), 1.0).float()[..., CROP:-CROP, CROP:-CROP]
    l_curl = ((curl**2).mean(dim=(-2, -1)) / g2).mean()
    src = -(math.pi**2 / (16 * kappa.reshape(-1, 1, 1))) * (tri[:, 2] - tri[:, 0])
    div = divergence_t(gradient_t(phase.double(), 1.0) * tri[:, 1:2].double(), 1.0).float()
    d, sc = div[..., CROP:-CROP, CROP:-CROP], src[..., CROP:-CROP, CROP:-CROP]
    l_cont = (((d - sc) ** 2).mean(dim=(-2, -1)) / ((sc**2).mean(dim=(-2, -1)) + (d**2).mean(dim=(-2, -1)) + 1e-8)).mean()
    parts = {"phase": l_phase, "xc": l_xc, "flow": l_flow, "curl": l_curl, "continuity": l_cont}
    loss = sum(WEIGHTS[k] * v for k, v in parts.items())
    return loss, {k: float(v.detach()) for k, v in parts.items()}, phase, xc


def _to(batch, device):
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


def psnr_t(p, t):
    """PSNR (dB) per sample of mean-removed maps, range = the truth's peak-to-peak (as metrics.psnr)."""
    rng = t.amax(dim=(-2, -1)) - t.amin(dim=(-2, -1))
    mse = ((p - t) ** 2).mean(dim=(-2, -1))
    return 10 * torch.log10(rng**2 / mse.clamp_min(1e-12))


def make_validation(bank: ExitWaveBank, n_batches: int, batch_size: int, patch: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [bank.batch(rng, batch_size, patch, crops=1, augment=False) for _ in range(n_batches)]


def validation_metrics(model, batches, device) -> dict:
    """val_loss, xc and PSNR vs σV (all, thin < 8 nm, thick ≥ 15 nm) of the model and of the
    classical TIE (its input) on fixed validation batches."""
    rows = {"loss": [], "xc": [], "psnr": [], "tie_xc": [], "tie_psnr": [], "thick": []}
    for batch in batches:
        b = _to(batch, device)
        loss, _, phase, _ = loss_terms(model, b)
        p, t, tie = _centered(phase), _centered(b["target"]), _centered(b["tie"])
        for est, kx, kp in ((p, "xc", "psnr"), (tie, "tie_xc", "tie_psnr")):
            xc = (est * t).sum(dim=(-2, -1)) / torch.sqrt((est**2).sum(dim=(-2, -1)) * (t**2).sum(dim=(-2, -1)) + 1e-12)
            rows[kx] += xc.cpu().tolist()
            rows[kp] += psnr_t(est, t).cpu().tolist()
        rows["loss"].append(float(loss))
        rows["thick"] += [i["thickness_nm"] for i in batch["info"]]
    th = np.array(rows["thick"])
    out = {"val_loss": float(np.mean(rows["loss"]))}
    for name, sel in (("", np.ones_like(th, bool)), ("_thin", th < 8), ("_thick", th >= 15)):
        if sel.any():
            for k in ("xc", "psnr", "tie_xc", "tie_psnr"):
                out[f"val_{k}{name}"] = float(np.mean(np.array(rows[k])[sel]))
    return out


def train_flowtie_job(
    *,
    out_folder: str | Path,
    name: str = "flowtie_default",
    steps: int = 4000,
    batch_size: int = 8,
    patch: int = 48,
    lr: float = 1e-3,
    time_budget_s: float | None = None,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    base: int = 16,
    bank_runs: int = 2,
    bank_thicknesses: int = 6,
    bank_gpts: int = 256,
    val_every: int = 100,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    command: str = "",
    evaluate_heldout: bool = True,
    train_structures=None,
    val_structures=None,
    bank_seed: int | None = None,
    init_from: str | None = None,
):
    """Build the exit-wave banks, train, validate, save ``<out_folder>/<name>.pt`` + card. A job:
    yields Progress (bank building, then training steps); returns the TrainReport (with ``.card``
    and ``.path``). ``train_structures``/``val_structures``: subsets of the splits (tests). ``bank_seed``
    (default ``seed``) seeds the training bank and its batches only: a resumed stage with a new one sees new
    multislice runs (voltages, rotations) against the same validation samples. ``init_from``: a trained
    model (shipped name or ``.pt``) to continue from when its checkpoint is gone (see
    :func:`napari_phase.training.init_from_model`)."""
    from .. import models
    from ..training import TrainConfig, init_from_model, train_job

    t_start = time.perf_counter()
    init = init_from_model(init_from) if init_from else None  # before the banks: a wrong name fails at once
    if init is not None and init["card"].get("method") != "FlowTIE":
        raise InputError(f"cannot continue FlowTIE training from {init_from!r}: its card says method "
                         f"{init['card'].get('method')!r}")
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    bank_seed = seed if bank_seed is None else int(bank_seed)
    train_bank = ExitWaveBank("train", gpts=bank_gpts, runs=bank_runs, n_thick=bank_thicknesses, seed=bank_seed, names=train_structures)
    val_bank = ExitWaveBank("val", gpts=bank_gpts, runs=bank_runs, n_thick=bank_thicknesses, seed=seed + 1, names=val_structures)
    for label, bank in (("train", train_bank), ("val", val_bank)):
        for done, total in bank.build():
            yield Progress(done, total, f"FlowTIE: multislice exit-wave bank ({label}) {done}/{total}")
    val_batches = make_validation(val_bank, 6, batch_size, patch, seed + 1000)
    model = FlowTIENet(base=base)
    def make_batch(step, generator, dev_):
        # seeded by (seed, step): a resumed run continues with the same samples it would have drawn
        return _to(train_bank.batch(np.random.default_rng([bank_seed, step]), batch_size, patch), dev_)

    def loss_fn(m, batch):
        loss, parts, _, _ = loss_terms(m, batch)
        return loss, parts

    def validate(m, dev_):
        return validation_metrics(m, val_batches, dev_)

    cfg = TrainConfig(steps=int(steps), batch_size=int(batch_size), lr=float(lr), lr_final=float(lr) * 0.02, warmup_steps=100,
                      val_every=int(val_every), checkpoint_every=max(50, int(val_every)), time_budget_s=time_budget_s,
                      seed=int(seed), device=str(dev), threads=threads)
    report = yield from train_job(model, make_batch=make_batch, loss_fn=loss_fn, validate=validate, config=cfg,
                                  checkpoint_path=checkpoint, resume=resume, select="val_loss", command=command or None,
                                  init=init)
    card = {
        "method": "FlowTIE",
        "architecture_config": model.config(),
        "trained_on": "multislice exit waves (napari_phase.physics.multislice) of the 'train' split of physics.specimens",
        "training_ranges": {"thickness_nm": THICKNESS_NM, "voltage_kev": VOLTAGES_KEV, "aperture_mrad": APERTURE_MRAD,
                            "dz_nm": DZ_NM, "dose_e_per_a2": DOSE_E_PER_A2, "noise_free_fraction": NOISE_FREE_FRACTION,
                            "in_plane_rotation": "uniform 0-360° per bank run", "flips_transposes": True},
        "data": {"train_bank": train_bank.describe(), "val_bank": val_bank.describe(),
                 "note": "exit waves precomputed once at the start of training (in memory, seeded), not stored on disk; "
                         "triplets, apertures, dz, dose, crops drawn per batch in torch"},
        "network_grid": "pixel = 1/(4·q_ap), q_ap = semiangle/λ; input resampled to it inside flowtie()",
        "patch_px": patch,
        "loss_weights": WEIGHTS,
        "steps": report.steps,
        "samples_seen": report.samples,
        "stopped_by": report.stopped_by,
        "best_validation": report.best,
        "validation_history": report.history[-50:],
        "config": report.config,
        "device": report.device,
        "device_name": platform.processor() or platform.machine(),
        "threads": report.threads,
        "train_wall_time_s": round(report.elapsed_s, 1),
        "total_wall_time_s": round(time.perf_counter() - t_start, 1),
        "command": command or " ".join(sys.argv),
        "torch": torch.__version__,
        "gpu_recipe": GPU_RECIPE,
        "budget_note": ("CPU run: the step count, batch size (8), patch (48 px), network width (16) and bank size were "
                        "chosen to fit the time budget on a shared CPU; a GPU run trains the same data path longer")
        if dev.type == "cpu" else "",
    }
    if evaluate_heldout:
        yield Progress(report.steps, report.steps, "FlowTIE: held-out evaluation")
        try:
            card["heldout"] = _evaluate.heldout_table(model.eval(), device=dev, quick=True)
        except Exception as exc:  # noqa: BLE001 - the weights are still worth saving; say what failed
            card["heldout_error"] = repr(exc)
        card["total_wall_time_s"] = round(time.perf_counter() - t_start, 1)
    path = models.save_model(model, card, out_folder, name)
    report.card = card
    report.path = str(path)
    return report
