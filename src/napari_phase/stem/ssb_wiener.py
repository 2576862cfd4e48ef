"""SSB at low dose: a Wiener weight per scan spatial frequency Q (numpy only).

SSB's estimate Φ̂(Q) averages N(Q) trotter pixels of G(k, Q) (ssb.py), so with σ² the noise
variance of one pixel of G (in the units of Φ̂: G / bright-field level)

    Φ̂(Q) = Φ(Q) + n(Q),    var n(Q) = σ² / N(Q).

Near Q → 0 and Q → 2α/λ the trotters shrink (N → 0) and the plain average is mostly noise.
The Wiener (minimum mean-square error) estimate is

    Φ_W(Q) = Φ̂(Q) · S(|Q|) / (S(|Q|) + σ² / N(Q))

with S the object's power spectrum. Both are measured from the data:

- σ²: bright-field pixels where neither k − Q nor k + Q lies in the aperture carry no linear
  signal at Q, only noise with the same statistics as the trotter pixels. For a subset of the Q in
  the band, ν(Q) = Σ_{k in that region} s_k G(k, Q) over its M(Q) pixels, s_k = ±1 fixed random
  signs (they cancel what coherent second-order signal a strong object puts there; independent
  pixel noise adds up whatever the signs) gives σ² = Σ |ν|² / Σ M.
- S: the ring-averaged excess power <|Φ̂|²> − <σ²/N> is fitted by S(q) = A exp(−q / q₀) (weighted
  least squares, the weight of a ring its excess power's variance <|Φ̂|²>² / n_ring, q₀ from a grid);
  S is floored at ``FLOOR`` · min σ²/N, so where no signal is measurable the weight falls back to
  ∝ N(Q), the trotter area (py4DSTEM's SSB sums the trotter rather than averaging it).

Noise-free data (σ² → 0) keep the plain average: the gain → 1.
"""

from __future__ import annotations

import numpy as np

#: the signal-power floor, as a fraction of the smallest noise variance σ²/N over the band
FLOOR = 0.1
#: q₀ candidates of S(q) = A exp(-q/q₀), in units of the band limit 2α/λ (the last: flat)
Q0_GRID = (0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 2.0, np.inf)
#: pixels this far inside the aperture edge (and this far outside the shifted ones) count as noise-only
EDGE_MARGIN_PX = 1.0
#: a ring's own excess power is used where it exceeds this many of its standard errors
SIGNIFICANT = 3.0
#: at most this many Q (spread over the band) estimate σ²: enough for ~6 % precision, cheap
NOISE_Q_MAX = 256


def noise_region(ky_px: np.ndarray, kx_px: np.ndarray, aperture_px: float, qy_px: np.ndarray, qx_px: np.ndarray):
    """Sparse 0/1 matrix (n_disc × n_Q) of the noise-only pixels per Q and their counts M(Q).

    ``ky_px, kx_px``: bright-field pixels relative to the disc centre; ``qy_px, qx_px``: the Q
    (detector px) for which σ² is measured. A pixel counts when |k| < R − margin and
    |k ± Q| > R + margin."""
    import scipy.sparse as sp

    inner = ky_px**2 + kx_px**2 < (aperture_px - EDGE_MARGIN_PX) ** 2
    outer2 = (aperture_px + EDGE_MARGIN_PX) ** 2
    rows, cols = [], []
    counts = np.zeros(len(qy_px), np.int64)
    for j in range(len(qy_px)):
        free = inner & ((ky_px - qy_px[j]) ** 2 + (kx_px - qx_px[j]) ** 2 > outer2) \
            & ((ky_px + qy_px[j]) ** 2 + (kx_px + qx_px[j]) ** 2 > outer2)
        r = np.flatnonzero(free)
        rows.append(r)
        cols.append(np.full(len(r), j))
        counts[j] = len(r)
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    signs = np.random.default_rng(0).choice(np.array([-1.0, 1.0], np.float32), size=len(ky_px))
    m = sp.csc_matrix((signs[rows].astype(np.complex64), (rows, cols)), shape=(len(ky_px), len(qy_px)))
    return m, counts


def noise_q_subset(q_abs: np.ndarray, n_max: int = NOISE_Q_MAX) -> np.ndarray:
    """Indices of at most ``n_max`` Q spread evenly over the list (sorted by |Q|), deterministic."""
    order = np.argsort(q_abs, kind="stable")
    if len(order) <= n_max:
        return order
    return order[np.linspace(0, len(order) - 1, n_max).round().astype(int)]


def pixel_noise_variance(nu: np.ndarray, counts: np.ndarray) -> float | None:
    """σ² = Σ |ν(Q)|² / Σ M(Q) (None when no pixel was noise-only)."""
    total = int(np.sum(counts))
    if total == 0:
        return None
    return float(np.sum(np.abs(nu) ** 2) / total)


def signal_power(phi: np.ndarray, var: np.ndarray, q_abs: np.ndarray, dq: float, band: float):
    """S(q) = A exp(−q/q₀) fitted to the ring-averaged excess power (module doc). Returns (S per Q, A, q₀)."""
    rings = np.floor(q_abs / dq).astype(np.int64)
    p = np.abs(phi) ** 2
    excess, weight, q_ring = [], [], []
    for r in np.unique(rings):
        m = rings == r
        pm = p[m].mean()
        excess.append(pm - var[m].mean())
        weight.append(m.sum() / max(pm, 1e-300) ** 2)  # 1 / variance of the ring's mean power
        q_ring.append(q_abs[m].mean())
    e, w, qr = np.asarray(excess), np.asarray(weight), np.asarray(q_ring)
    best = (np.inf, 0.0, np.inf)
    for q0 in Q0_GRID:
        g = np.exp(-qr / (q0 * band))
        a = max(0.0, float((w * g * e).sum() / (w * g * g).sum()))
        chi2 = float((w * (e - a * g) ** 2).sum())
        if chi2 < best[0]:
            best = (chi2, a, q0 * band)
    _, a, q0 = best
    s = a * np.exp(-q_abs / q0)
    # rings whose excess power is measured well (> SIGNIFICANT standard errors) keep it as it is
    se = np.sqrt(1.0 / w)
    good = e > SIGNIFICANT * se
    ring_index = np.searchsorted(np.unique(rings), rings)
    s = np.where(good[ring_index], e[ring_index], s)
    return s, a, q0


def wiener_gain(phi: np.ndarray, n_trotter: np.ndarray, sigma2: float, q_abs: np.ndarray, dq: float,
                band: float) -> tuple[np.ndarray, dict]:
    """Gain S/(S + σ²/N) per Q (module doc) and what was measured (for the metadata)."""
    var = sigma2 / np.maximum(n_trotter, 1)
    s, a, q0 = signal_power(phi, var, q_abs, dq, band)
    floor = FLOOR * float(var.min())
    s = np.maximum(s, floor)
    gain = s / (s + var) if sigma2 > 0 else np.ones_like(var)
    info = {"noise_variance_per_pixel": sigma2, "signal_power_a": a,
            "signal_power_q0_inv_a": None if not np.isfinite(q0) else q0, "signal_power_floor": floor,
            "gain_min": float(gain.min()), "gain_max": float(gain.max())}
    return gain, info
