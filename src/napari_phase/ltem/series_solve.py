"""The TIE of one through-focus series (numpy in and out): ∂I/∂z by least squares over all
images or per spatial frequency, the free-boundary (window) solve, the noise-chosen Wiener filter
and the default cut-off. Shared by :mod:`.series` (the job) and :mod:`.series_register` (the
model each image is registered onto); it imports neither. Equations: :mod:`.series`.
"""

from __future__ import annotations

import numpy as np

from ..physics.optics import electron_wavelength_nm
from ..physics.poisson import inverse_laplacian_kernel, mirror_pad, solve_tie
from .sitie import auto_filter

#: relative ridge ε of :func:`didz_spectral` (the option ``derivative="spectral"``). Measured on
#: the benchmark's noise-free 5-image series (128² px of 5 nm, ±0.2/±0.4 mm, full frame, mirror
#: boundary, qc = 0): φe accuracy 0.937 with the plain slope, 0.768 with ε = 0, 0.967 with
#: ε = 0.01, 0.955 with ε = 0.1 (which also shrinks B·t by 7 %). It is not the default: on the
#: tests' clean flipped series it lowers the contaminants' φe plateau to 0.88 of σV0t (plain
#: slope 0.96), and on the aligned 10 % noise benchmark it gains only 0.875 → 0.896 in φe accuracy.
DIDZ_RIDGE = 0.01

#: Default Tikhonov cut-off of the series TIE, in units of 1/FOV (smaller than SITIE's 2/FOV: a
#: series' ∂I/∂z is far less noisy, and a cut-off shrinks B·t, see :func:`default_series_qc_per_nm`)
DEFAULT_SERIES_QC_FOV_UNITS = 0.5


def default_series_qc_per_nm(shape, pixel_size_nm: float) -> float:
    """Default Tikhonov cut-off (cycles/nm) of the series TIE for an image of ``shape``."""
    return DEFAULT_SERIES_QC_FOV_UNITS / (max(int(shape[-2]), int(shape[-1])) * float(pixel_size_nm))


def didz_least_squares(stack: np.ndarray, z: np.ndarray) -> np.ndarray:
    """∂I/∂z (intensity per nm, float64) as the least-squares slope Σ z_k I_k / Σ z_k² of a series
    with symmetric defoci ``z`` (nm)."""
    s = np.asarray(stack, dtype=np.float64)
    zz = np.asarray(z, dtype=np.float64)
    return np.tensordot(zz, s, axes=(0, 0)) / float(np.sum(zz**2))


def didz_spectral(stack: np.ndarray, z: np.ndarray, px: float, wavelength_nm: float, eps: float = None) -> np.ndarray:
    """∂I/∂z (intensity per nm, float64) as a least-squares fit per spatial frequency q of the
    odd part of the series to its weak-object defocus response (the linear regime of the TIE
    holds only while πλ|z|q² ≪ 1, which a ±0.4 mm series at 5 nm pixels violates above
    ~0.01 nm⁻¹):

        Î_k(q) ≈ Î₀(q) + s_k(q)·Ĝ(q) + (even in z),   s_k(q) = sin(πλ z_k q²)/(πλ q²),
        Ĝ = Σ_k s_k Î_k / (Σ_k s_k² + ε Σ_k z_k²)

    (s_k → z_k as q → 0, where Ĝ is the plain slope of :func:`didz_least_squares`; ε, the
    relative ridge :data:`DIDZ_RIDGE`, stops the division where every s_k is near a zero of the
    sine). Computed on the mirror-padded grid of the Poisson solver and cropped back."""
    s = np.asarray(stack, dtype=np.float64)
    zz = np.asarray(z, dtype=np.float64)
    e = DIDZ_RIDGE if eps is None else float(eps)
    ny, nx = s.shape[-2:]
    g = mirror_pad(s)
    qy = np.fft.fftfreq(g.shape[-2], d=px)[:, None]
    qx = np.fft.fftfreq(g.shape[-1], d=px)[None, :]
    a = np.pi * wavelength_nm * (qy**2 + qx**2)
    safe = np.where(a > 0, a, 1.0)
    sk = np.stack([np.where(a > 0, np.sin(a * zk) / safe, zk) for zk in zz])
    w = sk / ((sk**2).sum(axis=0) + e * float(np.sum(zz**2)))
    out = np.real(np.fft.ifft2((np.fft.fft2(g) * w).sum(axis=0)))
    return out[..., :ny, :nx]


def _odd_extension(a: np.ndarray, sign: float = -1.0) -> np.ndarray:
    """(…, Y, X) → (…, 2Y+2, 2X+2): the map, a zero line, its mirror image times ``sign``, a zero
    line (per axis). sign = −1: an odd, periodic extension, zero on the two added lines (the
    Dirichlet condition φ = 0 just outside the field); sign = +1: even, the lines repeat the edge."""
    ny, nx = a.shape[-2:]
    g = np.zeros(a.shape[:-2] + (2 * ny + 2, 2 * nx + 2))
    g[..., :ny, :nx] = a
    g[..., ny + 1 : 2 * ny + 1, :nx] = sign * a[..., ::-1, :]
    g[..., :ny, nx + 1 : 2 * nx + 1] = sign * a[..., :, ::-1]
    g[..., ny + 1 : 2 * ny + 1, nx + 1 : 2 * nx + 1] = a[..., ::-1, ::-1]
    if sign > 0:
        g[..., ny, :], g[..., 2 * ny + 1, :] = g[..., ny - 1, :], g[..., 0, :]
        g[..., :, nx], g[..., :, 2 * nx + 1] = g[..., :, nx - 1], g[..., :, 0]
    return g


def solve_tie_free(didz: np.ndarray, wavelength_nm: float, px: float, intensity, qc: float = 0.0) -> np.ndarray:
    """φ (rad, zero mean) solving ∇·(I0∇φ) = −(2π/λ) ∂I/∂z inside the field of view, with the
    field treated as a window of a larger specimen (boundary ``"free"``).

    Outside the window the source (∂I/∂z) is unknown: a free ring around the field. Among all
    solutions, the one with the least ∫|∇φ|² over the extended canvas is the one whose phase is
    constant on the ring (stationarity of Σ|ĝ|²/q² in the ring's source values), i.e. the
    Dirichlet condition φ = const just outside the field. Solved exactly by an odd periodic
    extension (sine transform) for both solves of the full equation (I0 extended evenly); the
    Tikhonov cut-off ``qc`` acts in the first. Compared with the zero-flux (mirror) condition, the
    error is confined near the edges for a texture whose phase fluctuates about its mean along the
    border, instead of a field-wide bowl whenever net flux crosses the border (measured on the
    benchmark's 128² window of a skyrmion lattice at 10 % noise, qc = 0: phase accuracy 0.986
    against 0.578)."""
    d = np.asarray(didz, dtype=np.float64)
    ny, nx = d.shape[-2:]
    i0 = np.broadcast_to(np.asarray(intensity, dtype=np.float64), d.shape)
    i0 = np.maximum(i0, 0.01 * float(np.mean(i0)))
    g = _odd_extension(-(2 * np.pi / wavelength_nm) * d)
    i0p = _odd_extension(i0, 1.0)
    shape = g.shape[-2:]
    kern = inverse_laplacian_kernel(shape, px, qc)
    kern_plain = inverse_laplacian_kernel(shape, px, 0.0) if qc else kern
    qy = np.fft.fftfreq(shape[0], d=px)[:, None]
    qx = np.fft.fftfreq(shape[1], d=px)[None, :]
    dy, dx = 2j * np.pi * qy, 2j * np.pi * qx  # canvas sides are even: Nyquist of an odd field is 0
    psi_hat = np.fft.fft2(g) * kern
    gy = np.real(np.fft.ifft2(psi_hat * dy)) / i0p
    gx = np.real(np.fft.ifft2(psi_hat * dx)) / i0p
    phi = np.real(np.fft.ifft2((np.fft.fft2(gy) * dy + np.fft.fft2(gx) * dx) * kern_plain))[..., :ny, :nx]
    return phi - phi.mean(axis=(-2, -1), keepdims=True)


def auto_filter_didz(didz: np.ndarray, stack: np.ndarray, z: np.ndarray, scale: float, px: float) -> tuple[np.ndarray, dict]:
    """``qc_per_nm="auto"`` for a series: ∂I/∂z (normalised by ``scale``) Wiener-filtered with
    the noise of the least-squares slope, σ_D = σ_I / (scale·√Σz_k²) (σ_I by Immerkær's
    estimator over the images, :mod:`.regularise`); the filter's rings come from the slope's power."""
    from .regularise import noise_sigma, wiener_filter

    sigma_i = noise_sigma(stack)
    sigma_d = sigma_i / scale / float(np.sqrt(np.sum(np.asarray(z, np.float64) ** 2)))
    plain = didz_least_squares(stack, z) / scale
    out, q_half = wiener_filter(plain, sigma_d, px, apply_to=didz)
    return out, {"noise_sigma_over_mean": sigma_i / scale, "wiener_half_per_nm": q_half}


def series_phase(stack: np.ndarray, z: np.ndarray, px: float, kv: float, qc: float, pad: bool, boundary: str = "free",
                 derivative: str = "least_squares", auto: bool = False, chosen: list | None = None) -> np.ndarray:
    """Phase (rad, float32, zero mean) of a checked series: TIE (N ≥ 3, ∂I/∂z from
    :func:`didz_least_squares` or, ``derivative="spectral"``, :func:`didz_spectral`) or SITIE
    (N = 1). ``boundary``: "free" (:func:`solve_tie_free`) or "mirror" (zero flux,
    :func:`napari_phase.physics.poisson.solve_tie`; ``pad`` False: periodic). ``auto``: ∂I/∂z Wiener-filtered from
    the measured noise (:func:`auto_filter_didz`; what was chosen is appended to ``chosen``)."""
    lam = electron_wavelength_nm(kv)
    if stack.shape[0] == 1:
        img = stack[0].astype(np.float64)
        i0 = float(img.mean())
        if auto:
            img, info = auto_filter(img, px, pad)
            if chosen is not None:
                chosen.append(info)
        if boundary == "free":
            return solve_tie_free((img - i0) / z[0] / i0, lam, px, 1.0, qc).astype(np.float32)
        return solve_tie((img - i0) / z[0], lam, px, intensity=i0, qc=qc, pad=pad).astype(np.float32)
    i0 = stack.mean(axis=0, dtype=np.float64)
    scale = float(i0.mean())
    didz = (didz_spectral(stack, z, px, lam) if derivative == "spectral" else didz_least_squares(stack, z)) / scale
    if auto:
        didz, info = auto_filter_didz(didz, stack, z, scale, px)
        if chosen is not None:
            chosen.append(info)
    if boundary == "free":
        return solve_tie_free(didz, lam, px, i0 / scale, qc).astype(np.float32)
    return solve_tie(didz, lam, px, intensity=i0 / scale, qc=qc, pad=pad).astype(np.float32)
