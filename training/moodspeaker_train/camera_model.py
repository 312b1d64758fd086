"""The fixed parts of the camera model that training augmentation applies (`distill.camera`).

What a living-room camera does to a face, in the order it happens: optics (defocus, or motion blur while the
head moves), little light (low gain), distance (a face a few dozen pixels across, enlarged again with linear
interpolation as the device enlarges it; area interpolation is blocky when enlarging), sensor noise (Poisson
shot noise that grows with the signal plus Gaussian read noise), JPEG's 8x8 block quantisation (the faces
in FER2013 went through it), and something in front of the face (a hand, a mug).
"""

from __future__ import annotations

import math

import numpy as np

BLUR_KERNEL_SIDE = 9


def _gaussian(sigma: float) -> np.ndarray:
    r = np.arange(BLUR_KERNEL_SIDE) - BLUR_KERNEL_SIDE // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def _motion(length: int, degrees: float) -> np.ndarray:
    """A straight streak `length` px long through the centre at `degrees` (box along the line, anti-aliased)."""
    k = np.zeros((BLUR_KERNEL_SIDE, BLUR_KERNEL_SIDE))
    c = BLUR_KERNEL_SIDE // 2
    dx, dy = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length):
        x, y = c + t * dx, c + t * dy
        x0, y0 = math.floor(x), math.floor(y)
        for xi, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            for yi, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                if 0 <= xi < BLUR_KERNEL_SIDE and 0 <= yi < BLUR_KERNEL_SIDE:
                    k[yi, xi] += wx * wy
    return k / k.sum()


def blur_kernels() -> np.ndarray:
    """(K, 9, 9) float32: defocus (Gaussian sigma 0.7 to 2.5 px at 48 px) and motion streaks (5 and 9 px, 4 angles)."""
    kernels = [_gaussian(s) for s in (0.7, 1.0, 1.5, 2.0, 2.5)]
    kernels += [_motion(n, a) for n in (5, 9) for a in (0, 45, 90, 135)]
    return np.stack(kernels).astype(np.float32)


# The JPEG standard's luminance quantisation table (ITU T.81, Annex K.1) and its scaling by quality (libjpeg).
JPEG_LUMA = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float32)


def jpeg_table(quality: float) -> np.ndarray:
    """The 8x8 quantisation steps libjpeg uses at `quality` (1..100)."""
    q = min(max(quality, 1.0), 100.0)
    scale = 5000 / q if q < 50 else 200 - 2 * q
    return np.clip(np.floor((JPEG_LUMA * scale + 50) / 100), 1, 255).astype(np.float32)


def dct_matrix() -> np.ndarray:
    """The orthonormal 8-point DCT-II as a matrix D: coefficients of a block B are D @ B @ D.T."""
    n = np.arange(8)
    d = np.cos(math.pi * (2 * n[None, :] + 1) * n[:, None] / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.astype(np.float32)
