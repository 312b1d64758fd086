"""The square face crop around a detector box: geometry, margins, and padding at the frame's edges."""

from __future__ import annotations

import numpy as np
import pytest

from moodspeaker.core.domain import Box
from moodspeaker.core.face_crop import crop_face, square_crop_box


def test_square_box_is_centred_and_grows_by_the_margin_on_each_side() -> None:
    assert square_crop_box(Box(100, 50, 40, 40), 0.25) == Box(90, 40, 60, 60)


def test_square_box_uses_the_longer_side_of_a_tall_box() -> None:
    sq = square_crop_box(Box(10, 10, 20, 40), 0.0)
    assert (sq.w, sq.h) == (40, 40)
    assert (sq.x + sq.w / 2, sq.y + sq.h / 2) == (20, 30)


def test_negative_margin_tightens_the_crop() -> None:
    assert square_crop_box(Box(0, 0, 100, 100), -0.1) == Box(10, 10, 80, 80)


@pytest.mark.parametrize("box, margin", [(Box(0, 0, 0, 10), 0.1), (Box(0, 0, 10, 10), -0.5)])
def test_degenerate_boxes_and_margins_are_rejected(box: Box, margin: float) -> None:
    with pytest.raises(ValueError):
        square_crop_box(box, margin)


def test_crop_inside_the_frame_is_the_exact_region() -> None:
    frame = np.arange(100 * 120, dtype=np.uint32).reshape(100, 120).astype(np.uint8)
    crop = crop_face(frame, Box(30, 20, 40, 40), 0.1)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, frame[16:64, 26:74])


def test_crop_past_the_corner_is_padded_with_edge_pixels_and_keeps_its_size() -> None:
    frame = np.zeros((60, 80), np.uint8)
    frame[:, :2] = 200  # left edge column band
    crop = crop_face(frame, Box(0, 0, 20, 20), 0.5)  # 40x40 square from (-10, -10)
    assert crop.shape == (40, 40)
    np.testing.assert_array_equal(crop[:, :12], 200)  # 10 padded columns copy the edge, then 2 real ones
    assert (crop[:, 12:] == 0).all()


def test_crop_of_a_box_outside_the_frame_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside"):
        crop_face(np.zeros((50, 50), np.uint8), Box(60, 60, 10, 10), 0.0)


def test_crop_needs_a_grey_uint8_frame() -> None:
    with pytest.raises(ValueError, match="grayscale"):
        crop_face(np.zeros((50, 50, 3), np.uint8), Box(10, 10, 10, 10), 0.0)


def test_cubic_enlargement_is_opencvs_cubic_in_exact_integer_arithmetic() -> None:
    import cv2

    from moodspeaker.core.face_crop import _cubic_matrix, enlarge_cubic

    rng = np.random.default_rng(3)
    for side in (12, 24, 30, 47):
        crop = rng.integers(0, 256, (side, side), dtype=np.uint8)
        out = enlarge_cubic(crop, 48)
        assert out.shape == (48, 48) and out.dtype == np.uint8
        assert np.abs(out.astype(int) - cv2.resize(crop, (48, 48), interpolation=cv2.INTER_CUBIC)).max() <= 1
        weights = _cubic_matrix(side, 48).astype(np.int64)  # the same sum in int64: float64 lost nothing
        exact = np.clip((weights @ crop.astype(np.int64) @ weights.T + (1 << 21)) >> 22, 0, 255)
        np.testing.assert_array_equal(out, exact)
    flat = np.full((20, 20), 77, np.uint8)
    np.testing.assert_array_equal(enlarge_cubic(flat, 48), np.full((48, 48), 77, np.uint8))
