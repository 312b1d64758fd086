"""The square face crop the classifier sees, cut around a detector box the way training framed faces.

FER2013 faces are square crops a little larger than a Haar box (forehead and chin included); the model
card's `preprocessing.device.face_margin` says how much to add on each side. Parts of the crop that fall
outside the frame are filled with the nearest edge pixels, so a face at the border keeps its scale.
"""

from __future__ import annotations

import functools

import numpy as np

from moodspeaker.core.domain import Box


def square_crop_box(box: Box, margin: float) -> Box:
    """The square around `box`'s centre whose side is the box's longer side plus `margin` of it on each side.

    May extend past the frame; `crop_face` pads. `margin` may be negative (a tighter crop).
    """
    if box.w <= 0 or box.h <= 0:
        raise ValueError(f"face box must have a positive size, got {box}")
    if margin <= -0.5:
        raise ValueError(f"face margin must be greater than -0.5, got {margin}")
    side = max(1, round(max(box.w, box.h) * (1 + 2 * margin)))
    cx2, cy2 = 2 * box.x + box.w, 2 * box.y + box.h  # twice the centre, to stay in integers
    return Box(x=(cx2 - side) // 2, y=(cy2 - side) // 2, w=side, h=side)


def scale_box(box: Box, from_shape: tuple[int, ...], to_shape: tuple[int, ...]) -> Box:
    """`box` found in a frame of `from_shape` (H, W), in the coordinates of a larger or smaller frame of the same
    view (`to_shape`): a camera's lores and main streams."""
    if tuple(from_shape[:2]) == tuple(to_shape[:2]):
        return box
    sy, sx = to_shape[0] / from_shape[0], to_shape[1] / from_shape[1]
    x0, y0 = round(box.x * sx), round(box.y * sy)
    return Box(x0, y0, max(round((box.x + box.w) * sx) - x0, 1), max(round((box.y + box.h) * sy) - y0, 1))


def crop_face(gray: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """The uint8 square crop of `gray` around `box`; a view into the frame when it lies fully inside."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 grayscale frame, got {gray.dtype} {gray.shape}")
    sq = square_crop_box(box, margin)
    height, width = gray.shape
    x0, y0, x1, y1 = sq.x, sq.y, sq.x + sq.w, sq.y + sq.h
    if x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height:
        return gray[y0:y1, x0:x1]
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise ValueError(f"face box {box} lies outside the {width}x{height} frame")
    inside = gray[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)]
    pad = ((max(-y0, 0), max(y1 - height, 0)), (max(-x0, 0), max(x1 - width, 0)))
    return np.pad(inside, pad, mode="edge")


CUBIC_A = -0.75  # Keys' cubic convolution parameter, as OpenCV's INTER_CUBIC
_WEIGHT_BITS = 11  # fixed-point weights: each row of a resize matrix sums to exactly 2**11


@functools.lru_cache(maxsize=64)
def _cubic_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) integer-valued float64 weights of a cubic resize (half-pixel centres, edges replicated), fixed point."""

    def keys(d: np.ndarray) -> np.ndarray:
        d = np.abs(d)
        a = CUBIC_A
        return np.where(d <= 1, (a + 2) * d**3 - (a + 3) * d**2 + 1,
                        np.where(d < 2, a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a, 0.0))

    pos = (np.arange(dst) + 0.5) * src / dst - 0.5
    base = np.floor(pos).astype(np.int64)
    weights = np.zeros((dst, src))
    for tap in range(-1, 3):
        idx = base + tap
        np.add.at(weights, (np.arange(dst), np.clip(idx, 0, src - 1)), keys(pos - idx))
    fixed = np.round(weights * (1 << _WEIGHT_BITS)).astype(np.int64)
    fixed[np.arange(dst), np.clip(base + 1, 0, src - 1)] += (1 << _WEIGHT_BITS) - fixed.sum(axis=1)  # exact sums
    return fixed.astype(np.float64)


def enlarge_cubic(crop: np.ndarray, size: int) -> np.ndarray:
    """A small uint8 crop enlarged to size x size with cubic interpolation, in integer arithmetic only, so an
    ARM Pi and an x86 PC give the same pixels (OpenCV's INTER_CUBIC is not bit-exact across them). Enlarging
    a distant face with cubic instead of area interpolation keeps it from turning blocky: on val crops shrunk
    to 24 px the shipped model scores 0.64 instead of 0.53 (living-room benchmark, crop24)."""
    if crop.ndim != 2 or crop.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 crop, got {crop.dtype} {crop.shape}")
    rows, cols = _cubic_matrix(crop.shape[0], size), _cubic_matrix(crop.shape[1], size)
    # Integers times integers, summed: every intermediate stays below 2**31, so float64 (and BLAS, in any
    # order) computes them exactly; then a rounding shift, as in integer arithmetic.
    out = (rows @ crop.astype(np.float64) @ cols.T).astype(np.int64)
    half = 1 << (2 * _WEIGHT_BITS - 1)
    return np.clip((out + half) >> (2 * _WEIGHT_BITS), 0, 255).astype(np.uint8)
