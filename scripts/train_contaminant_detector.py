"""Train the contaminant detector's small MLP (napari_phase.ltem.detect) on the project's simulations.

Reproduce: ``.venv/bin/python scripts/train_contaminant_detector.py`` (1 torch thread, ~3 min on a
shared CPU). Writes ``src/napari_phase/models/contaminant_detector.json`` (weights, feature
standardisation, training card). Training seeds 1000+ (never the test/benchmark seeds 0-99 or the
bundled sample's seed 1 with its own texture draw).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_phase.ltem.detect import TRAIN_PIXEL_SIZE_NM, WEIGHTS, features
from napari_phase.ltem.simulate import simulate

TEXTURES = ("skyrmions", "stripes", "bubbles")


def make_set(n_per_texture: int, seed0: int, rng: np.random.Generator, bg_per_image: int = 6000):
    xs, ys, ws = [], [], []
    for ti, tex in enumerate(TEXTURES):
        for k in range(n_per_texture):
            seed = seed0 + 100 * ti + k
            noise = float(rng.uniform(0.05, 0.6))
            defocus = float(-rng.uniform(0.6, 1.6) * 1e6)
            n_c = int(rng.integers(0, 10))
            s = simulate(tex, noise=noise, n_contaminants=n_c, seed=seed, defocus_nm=defocus, pixel_size_nm=TRAIN_PIXEL_SIZE_NM)
            f = features(s.image).reshape(-1, s.image.size).T
            m = s.mask.ravel()
            # all particle pixels + a random sample of film pixels
            fg = np.flatnonzero(m)
            bg = np.flatnonzero(~m)
            pick = rng.choice(bg, size=min(bg_per_image, bg.size), replace=False)
            idx = np.concatenate([fg, pick])
            xs.append(f[idx])
            ys.append(m[idx].astype(np.float32))
            # film pixels weighted by how many each sampled one stands for: the true class prior
            ws.append(np.concatenate([np.ones(fg.size), np.full(pick.size, bg.size / max(pick.size, 1))]).astype(np.float32))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def main(out: Path = WEIGHTS, n_per_texture: int = 100, steps: int = 12000, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    x, y, w = make_set(n_per_texture, 1000, rng)
    print(f"data {x.shape} fg {y.mean():.3f} in {time.time() - t0:.0f} s", flush=True)
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.tensor((x - mean) / std, dtype=torch.float32)
    yt = torch.tensor(y)
    wt = torch.tensor(w / w.mean())
    hidden = 48
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, 1))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, xt.shape[0], (4096,), generator=gen)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt[idx]).squeeze(1), yt[idx], weight=wt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0:
            print(step, float(loss.detach()), flush=True)
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    params = {
        "mean": mean.tolist(),
        "std": std.tolist(),
        "w1": lin[0].weight.detach().numpy().tolist(),
        "b1": lin[0].bias.detach().numpy().tolist(),
        "w2": lin[1].weight.detach().numpy().tolist(),
        "b2": lin[1].bias.detach().numpy().tolist(),
        "w3": lin[2].weight.detach().numpy().tolist(),
        "b3": lin[2].bias.detach().numpy().tolist(),
        "card": {
            "what": "per-pixel contaminant probability from multi-scale image features (napari_phase.ltem.detect.features)",
            "made_by": "scripts/train_contaminant_detector.py",
            "training_data": f"simulate(): {', '.join(TEXTURES)}; {n_per_texture} images each, seeds 1000+; noise 5-60 %; defocus -0.6 to -1.6 mm; 200 kV; 5 nm/px; 0-9 particles r 20-50 nm",
            "samples": int(x.shape[0]),
            "steps": steps,
            "final_loss": float(loss.detach()),
        },
    }
    out.write_text(json.dumps(params))
    print(f"wrote {out} in {time.time() - t0:.0f} s")
    return params


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else WEIGHTS)
