"""The square face crop the classifier sees, cut around a detector box the way training framed faces.

FER2013 faces are square crops a little larger than a Haar box (forehead and chin included); the model
card's `preprocessing.device.face_margin` says how much to add on each side. Parts of the crop that fall
outside the frame are filled with the nearest edge pixels, so a face at the border keeps its scale.
"""

from __future__ import annotations

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
