"""FFT Poisson solver shared by SITIE, TIE (ltem) and FlowTIE (numpy, float64 inside).

Transport of intensity (DESIGN.md §5), with the project's sign convention (Δf = propagation
distance along the beam, Fresnel factor exp(-iπλz q²)):

    ∇·(I0 ∇φ) = -(2π/λ) ∂I/∂z

Derivation of the sign for a weak phase object (ψ ≈ 1 + iφ): propagating by z multiplies φ̂ by
exp(-iπλz q²) ≈ 1 - iπλz q², so the intensity gains 2πλz q² φ̂ in Fourier space, i.e.
I - 1 = -(λz/2π) ∇²φ and ∂I/∂z = -(λ/2π) ∇²φ — the equation above with I0 = 1. The tests pin it
with a simulate-then-reconstruct round trip at negative and positive defocus.

Inverse Laplacian in Fourier space (q in cycles per length): ∇² ↔ -4π²|q|², so
∇⁻² f ↔ -f̂ · R(q) / (4π²), with R(q) = 1/|q|² regularised (Tikhonov) to |q|²/(|q|²+qc²)²
(qc = 0: the plain inverse; R(0) = 0 always, the mean phase is undefined and set to zero).

Boundary handling: the data are mirrored to (almost) twice their size, n → 2n − 2 along each axis,
reflecting about the edge pixels without repeating them (numpy's "reflect" mode, the same
convention as the forward model's torch reflect padding). The extension is periodic and continuous
(an even, DCT-I-like extension), which is the Neumann (zero-flux) boundary condition, so the FFT
sees no jump at the edges; the solution is cropped back to the input's shape. Works for any (odd,
non-square) size. Using the edge-repeating ("symmetric") mirror instead would count an edge line
twice and, on data made with the forward model's padding, add a large spurious low-frequency term.
"""

from __future__ import annotations

import numpy as np


def mirror_pad(a: np.ndarray) -> np.ndarray:
    """Even periodic extension of the last two axes, n → 2n − 2 (reflect about the edge pixels,
    which are not repeated); the input sits at [..., :ny, :nx]."""
    ny, nx = a.shape[-2:]
    widths = [(0, 0)] * (a.ndim - 2) + [(0, max(ny - 2, 0)), (0, max(nx - 2, 0))]
    return np.pad(a, widths, mode="reflect")


def _q_grids(shape: tuple[int, int], pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    qy = np.fft.fftfreq(shape[0], d=pixel_size)[:, None]
    qx = np.fft.fftfreq(shape[1], d=pixel_size)[None, :]
    return qy, qx


def inverse_laplacian_kernel(shape: tuple[int, int], pixel_size: float, qc: float = 0.0) -> np.ndarray:
    """K(q) with ∇⁻² f = F⁻¹[K · F f]: K = -R(q)/(4π²), R = |q|²/(|q|²+qc²)², K(0) = 0."""
    qy, qx = _q_grids(shape, pixel_size)
    q2 = qy**2 + qx**2
    q2[0, 0] = 1.0
    reg = q2 / (q2 + float(qc) ** 2) ** 2
    reg[0, 0] = 0.0
    return -reg / (4 * np.pi**2)


def inverse_laplacian(f: np.ndarray, pixel_size: float, qc: float = 0.0, pad: bool = True) -> np.ndarray:
    """Regularised ∇⁻² f over the last two axes (lengths in the unit of ``pixel_size``)."""
    f = np.asarray(f, dtype=np.float64)
    ny, nx = f.shape[-2:]
    g = mirror_pad(f) if pad else f
    k = inverse_laplacian_kernel(g.shape[-2:], pixel_size, qc)
    out = np.real(np.fft.ifft2(np.fft.fft2(g) * k))
    return out[..., :ny, :nx]


def solve_tie(
    dIdz: np.ndarray,
    wavelength: float,
    pixel_size: float,
    *,
    intensity: np.ndarray | float | None = None,
    qc: float = 0.0,
    pad: bool = True,
    floor_fraction: float = 0.01,
) -> np.ndarray:
    """Phase φ (rad) solving ∇·(I0∇φ) = -(2π/λ) ∂I/∂z over the last two axes.

    ``dIdz``: ∂I/∂z in intensity per length unit; ``wavelength`` and ``pixel_size`` in that unit.
    ``intensity`` (I0): None or a scalar → uniform I0 (one Poisson solve, φ = -(2π/λ)∇⁻²(∂I/∂z)/I0);
    an array → the full equation by the two-solve method: ψ = ∇⁻²(-(2π/λ) ∂I/∂z) with I0∇φ = ∇ψ,
    then φ = ∇⁻² ∇·(∇ψ / I0). The Tikhonov cut-off ``qc`` is applied in the first solve only, so
    that for uniform I0 the result equals the one-solve form (filtering twice would square the
    low-frequency damping). I0 is floored at ``floor_fraction`` × its mean to avoid dividing
    by zero in dark regions. Gradients are spectral (on the mirrored grid), so the two solves are
    consistent with the single-solve form when I0 is uniform. Mean of φ is zero (undefined).
    """
    d = np.asarray(dIdz, dtype=np.float64)
    k_wave = 2 * np.pi / wavelength
    ny, nx = d.shape[-2:]
    if intensity is None or np.ndim(intensity) == 0:
        i0 = 1.0 if intensity is None else float(intensity)
        phi = inverse_laplacian(-k_wave * d / i0, pixel_size, qc, pad)
        return phi - phi.mean(axis=(-2, -1), keepdims=True)

    i0 = np.broadcast_to(np.asarray(intensity, dtype=np.float64), d.shape)
    floor = floor_fraction * np.mean(i0, axis=(-2, -1), keepdims=True)
    i0 = np.maximum(i0, floor)
    g = mirror_pad(-k_wave * d) if pad else -k_wave * d
    i0p = mirror_pad(i0) if pad else i0
    shape = g.shape[-2:]
    kern = inverse_laplacian_kernel(shape, pixel_size, qc)
    kern_plain = inverse_laplacian_kernel(shape, pixel_size, 0.0) if qc else kern
    qy, qx = _q_grids(shape, pixel_size)
    # Nyquist frequencies of even-sized grids have no well-defined odd derivative: drop them.
    dy = 2j * np.pi * qy * (np.abs(qy) < 0.5 / pixel_size - 1e-12 / pixel_size)
    dx = 2j * np.pi * qx * (np.abs(qx) < 0.5 / pixel_size - 1e-12 / pixel_size)
    psi_hat = np.fft.fft2(g) * kern
    gy = np.real(np.fft.ifft2(psi_hat * dy)) / i0p
    gx = np.real(np.fft.ifft2(psi_hat * dx)) / i0p
    div_hat = np.fft.fft2(gy) * dy + np.fft.fft2(gx) * dx
    phi = np.real(np.fft.ifft2(div_hat * kern_plain))[..., :ny, :nx]
    return phi - phi.mean(axis=(-2, -1), keepdims=True)
