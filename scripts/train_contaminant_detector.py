"""Train the contaminant detector (napari_phase.ltem.detect): two small MLP stages ("auto-context")
on the project's own LTEM simulations; pick the decision thresholds on validation simulations;
measure the held-out IoU; write weights + card.

Reproduce: ``.venv/bin/python scripts/train_contaminant_detector.py [OUT.json]`` (1 torch thread;
17.5 min wall, 7.3 min CPU, on the shared 2-core CPU at load average ≈ 8, 2026-11-25; the card
records the wall time). Writes ``src/napari_phase/models/contaminant_detector.json``.

Seeds (``simulate(seed=…)``), kept apart:
- training 1000–1299 (0–9 particles) and 2000–2299 (3–12 particles);
- validation 500–599 (−1 mm, 6 particles, 30/50 % noise) and 600–699 (varied): thresholds only;
- held-out, reported in the card and never used for a choice: the benchmark's 10–14 and the
  bundled sample (seed 1). The tests use 20–25.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from napari_phase.ltem.detect import (
    FORMAT,
    TRAIN_PIXEL_SIZE_NM,
    WEIGHTS,
    context_features,
    features,
    iou,
    mask_from_probability,
    mlp_probability,
)
from napari_phase.ltem.simulate import simulate

TEXTURES = ("skyrmions", "stripes", "bubbles")
HIDDEN = (64, 64)
MIN_SIZE_PX = int(np.pi * (15.0 / TRAIN_PIXEL_SIZE_NM) ** 2)  # the detector's default at 5 nm/px


def make_images(n_per_texture: int, seed0: int, rng: np.random.Generator, particles=(0, 9), bench_like=False):
    """[(image, mask, description)] from simulate(): random noise 5–60 %, defocus −0.6…−1.6 mm and
    particle count in ``particles`` — or the benchmark's conditions (−1 mm, 6 particles, 30/50 %)."""
    out = []
    for ti, tex in enumerate(TEXTURES):
        for k in range(n_per_texture):
            seed = seed0 + 100 * ti + k
            if bench_like:
                noise, defocus, n_c = float(rng.choice([0.3, 0.5])), -1.0e6, 6
            else:
                noise = float(rng.uniform(0.05, 0.6))
                defocus = float(-rng.uniform(0.6, 1.6) * 1e6)
                n_c = int(rng.integers(particles[0], particles[1] + 1))
            s = simulate(tex, noise=noise, n_contaminants=n_c, seed=seed, defocus_nm=defocus, pixel_size_nm=TRAIN_PIXEL_SIZE_NM)
            out.append((s.image, s.mask, f"{tex} noise {noise:.2f} defocus {defocus / 1e6:.2f} mm {n_c} particles seed {seed}"))
    return out


def stage_input(image: np.ndarray, stages: list[dict]) -> np.ndarray:
    """Features for the next stage: stage-1 features, plus context of the last stage's probability."""
    f = features(image)
    prob = None
    for st in stages:
        prob = mlp_probability(f if prob is None else np.concatenate([f, context_features(prob)]), st)
    return f if prob is None else np.concatenate([f, context_features(prob)])


def sample_rows(images, stages, rng, n_far=4000, band_px=8):
    """All particle pixels, all film pixels within ``band_px`` of a particle (where the edge is
    decided), and ``n_far`` random film pixels further out, weighted by how many each stands for."""
    xs, ys, ws = [], [], []
    for img, mask, _ in images:
        f = stage_input(img, stages).reshape(-1, img.size).T
        m = mask.ravel()
        near = (ndimage.binary_dilation(mask, iterations=band_px) & ~mask).ravel() if mask.any() else np.zeros_like(m)
        fg, nb, far = np.flatnonzero(m), np.flatnonzero(near), np.flatnonzero(~m & ~near)
        pick = rng.choice(far, size=min(n_far, far.size), replace=False)
        idx = np.concatenate([fg, nb, pick])
        xs.append(f[idx])
        ys.append(m[idx].astype(np.float32))
        ws.append(np.concatenate([np.ones(fg.size + nb.size), np.full(pick.size, far.size / max(pick.size, 1))]).astype(np.float32))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def train_stage(x, y, w, steps: int, seed: int, batch: int = 4096, lr: float = 3e-3) -> tuple[dict, float]:
    """Weighted binary cross-entropy, Adam + cosine LR; returns the stage (numpy) and the last loss."""
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.tensor((x - mean) / std, dtype=torch.float32)
    yt, wt = torch.tensor(y), torch.tensor(w / w.mean())
    layers, d = [], x.shape[1]
    for h in HIDDEN:
        layers += [torch.nn.Linear(d, h), torch.nn.SiLU()]
        d = h
    net = torch.nn.Sequential(*layers, torch.nn.Linear(d, 1))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, xt.shape[0], (batch,), generator=gen)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt[idx]).squeeze(1), yt[idx], weight=wt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 2000 == 0:
            print(f"  step {step} loss {float(loss.detach()):.4f}", flush=True)
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    stage = {"mean": mean.astype(np.float32), "std": std.astype(np.float32),
             "layers": [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in lin]}
    return stage, float(loss.detach())


def probabilities(images, stages):
    return [mlp_probability(stage_input(img, stages[:-1]), stages[-1]) for img, _, _ in images]


def pick_thresholds(probs, images):
    """(threshold, grow_threshold, mean IoU): the pair with the best mean IoU on validation images
    that have particles."""
    best = (0.5, 0.5, -1.0)
    for th in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
        for grow in (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
            if grow > th:
                continue
            v = np.mean([iou(mask_from_probability(p, th, grow, MIN_SIZE_PX), m) for p, (_, m, _) in zip(probs, images) if m.any()])
            if v > best[2]:
                best = (th, grow, float(v))
    return best


def main(out: Path = WEIGHTS, steps: int = 12000, seed: int = 0, n_train: int = 100, n_train_busy: int = 60) -> dict:
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    train = make_images(n_train, 1000, rng) + make_images(n_train_busy, 2000, rng, particles=(3, 12))
    val = make_images(10, 500, rng, bench_like=True) + make_images(10, 600, rng, particles=(1, 9))
    print(f"{len(train)} training, {len(val)} validation images in {time.time() - t0:.0f} s", flush=True)
    stages, history = [], []
    for k in range(2):
        x, y, w = sample_rows(train, stages, np.random.default_rng(seed + k))
        print(f"stage {k + 1}: {x.shape[0]} pixels × {x.shape[1]} features (particle fraction {y.mean():.3f})", flush=True)
        stage, loss = train_stage(x, y, w, steps, seed + k)
        stages.append(stage)
        th, grow, v = pick_thresholds(probabilities(val, stages), val)
        history.append({"stage": k + 1, "final_loss": loss, "val_iou": round(v, 4), "threshold": th, "grow_threshold": grow})
        print(f"stage {k + 1}: loss {loss:.4f}, validation IoU {v:.3f} at threshold {th} / grow {grow} ({time.time() - t0:.0f} s)", flush=True)
    train_s = time.time() - t0
    th, grow = history[-1]["threshold"], history[-1]["grow_threshold"]
    heldout = heldout_iou(stages, th, grow)
    print("held-out IoU", heldout, flush=True)
    params = {
        "format": FORMAT,
        "stages": [{"mean": s["mean"].tolist(), "std": s["std"].tolist(),
                    "layers": [{"w": w.tolist(), "b": b.tolist()} for w, b in s["layers"]]} for s in stages],
        "threshold": th,
        "grow_threshold": grow,
        "card": {
            "what": "per-pixel contaminant probability, two MLP stages (napari_phase.ltem.detect.features, context_features)",
            "made_by": "scripts/train_contaminant_detector.py",
            "command": ".venv/bin/python scripts/train_contaminant_detector.py",
            "training_data": f"simulate(): {', '.join(TEXTURES)}; {n_train} images each with 0-9 particles (seeds 1000+) and "
                             f"{n_train_busy} each with 3-12 (seeds 2000+); noise 5-60 %; defocus -0.6 to -1.6 mm; 200 kV; "
                             "5 nm/px; particles r 20-50 nm, 7 nm thick",
            "validation": "thresholds picked on 60 images: seeds 500+ (-1 mm, 6 particles, 30/50 % noise) and 600+ (varied)",
            "hidden": list(HIDDEN),
            "steps_per_stage": steps,
            "seed": seed,
            "stages": history,
            "heldout_iou": heldout,
            "train_seconds": round(train_s, 1),
            "machine": _machine(),
        },
    }
    out.write_text(json.dumps(params))
    print(f"wrote {out} in {time.time() - t0:.0f} s")
    return params


def heldout_iou(stages, th, grow) -> dict:
    """Mean IoU per texture × noise on the benchmark's images (−1 mm, 6 particles, seeds 10–14) and
    on the bundled sample. Reported only: nothing is chosen on these."""
    import napari_phase

    out = {}
    for tex in ("stripes", "skyrmions", "bubbles"):
        for noise in (0.3, 0.5):
            v = []
            for seed in (10, 11, 12, 13, 14):
                s = simulate(tex, noise=noise, n_contaminants=6, seed=seed, defocus_nm=-1.0e6, pixel_size_nm=5.0)
                p = mlp_probability(stage_input(s.image, stages[:-1]), stages[-1])
                v.append(iou(mask_from_probability(p, th, grow, MIN_SIZE_PX), s.mask))
            out[f"{tex} {noise:.0%}"] = round(float(np.mean(v)), 3)
    d = np.load(Path(napari_phase.__file__).parent / "sample_data" / "ltem_skyrmions.npz")
    p = mlp_probability(stage_input(d["image"], stages[:-1]), stages[-1])
    out["bundled sample"] = round(iou(mask_from_probability(p, th, grow, MIN_SIZE_PX), d["mask_true"]), 3)
    return out


def _machine() -> str:
    try:
        from napari_phase.bench import machine_description

        return machine_description()
    except Exception:  # noqa: BLE001 - the card is still written
        import platform

        return platform.platform()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else WEIGHTS)
