"""`moodspeaker eval --fullframe`: whole frames through the detector, the card's crop and the real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moodspeaker.cli import main

FULLFRAME = Path(__file__).parent / "fixtures" / "fullframe_tiny.npz"


def test_fullframe_eval_reports_detection_and_counts_missed_frames_as_wrong(
        shipped_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--fullframe", "--model", str(shipped_model), "--data", str(FULLFRAME), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    with np.load(FULLFRAME) as data:
        labels, boxes = data["labels"], data["boxes"]
    with_face = int((boxes[:, 0] >= 0).sum())
    assert result["n"] == len(labels)
    assert result["detected"] == with_face  # every composited face found, nothing in the empty rooms
    confusion = np.array(result["confusion"])
    assert confusion.shape == (7, 8)
    np.testing.assert_array_equal(confusion.sum(axis=1), np.bincount(labels, minlength=7))
    assert confusion[:, 7].sum() == len(labels) - with_face  # the empty rooms: no face, counted wrong
    assert result["accuracy"] == pytest.approx(np.trace(confusion[:, :7]) / len(labels))
    assert result["accuracy"] > 2 / 7  # a trained model beats chance on faces the crowd agrees on
    assert result["ms_detect"] > 0 and result["ms_per_face"] > 0
    assert set(result["per_class_recall"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}


def test_fullframe_eval_counts_the_boxes_that_lie_on_no_face(shipped_model: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """With each frame's face given (`boxes`), eval counts the boxes off it: here one frame's face is said to be
    elsewhere, so the box found on the real face lies on no face; without `boxes` only the boxes are counted."""
    with np.load(FULLFRAME) as data:
        frames, labels, boxes = data["images"], data["labels"], data["boxes"]
    moved = boxes.copy()
    first = int(np.flatnonzero(boxes[:, 0] >= 0)[0])
    moved[first, 0] = (boxes[first, 0] + frames.shape[2] // 2) % (frames.shape[2] - boxes[first, 2])
    for name, faces, off in (("as_made", boxes, 0), ("moved", moved, 1)):
        np.savez(tmp_path / f"{name}.npz", images=frames, labels=labels, boxes=faces)
        assert main(["eval", "--fullframe", "--model", str(shipped_model), "--data", str(tmp_path / f"{name}.npz"),
                     "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["boxes"] == int((boxes[:, 0] >= 0).sum()) and result["boxes_on_no_face"] == off
    np.savez(tmp_path / "plain.npz", images=frames, labels=labels)
    assert main(["eval", "--fullframe", "--model", str(shipped_model), "--data", str(tmp_path / "plain.npz"), "--json"]) == 0
    assert "boxes_on_no_face" not in json.loads(capsys.readouterr().out)
    np.savez(tmp_path / "bad.npz", images=frames, labels=labels, boxes=boxes[:, :3])
    assert main(["eval", "--fullframe", "--model", str(shipped_model), "--data", str(tmp_path / "bad.npz")]) == 2
    assert "boxes must be integers (N,4)" in capsys.readouterr().err


def test_fullframe_eval_text_output_names_detection(shipped_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--fullframe", "--model", str(shipped_model), "--data", str(FULLFRAME)]) == 0
    out = capsys.readouterr().out
    assert "faces found in" in out and "boxes lie on no face" in out


def test_fullframe_eval_rejects_a_bad_data_file(shipped_model: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 40, 40), np.float32), labels=np.zeros(2, np.uint8))
    assert main(["eval", "--fullframe", "--model", str(shipped_model), "--data", str(tmp_path / "bad.npz"), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "uint8" in err  # stdout stays clean for --json readers


def test_a_frame_larger_than_the_lores_stream_is_searched_small_and_cut_large(
        shipped_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    with np.load(FULLFRAME) as data:
        frames, labels, boxes = data["images"], data["labels"], data["boxes"]
    # the same scenes as a 1280x960 main stream: found as in the 640x480 copy, read from the large frame
    big = np.stack([cv2.resize(f, (1280, 960), interpolation=cv2.INTER_CUBIC) for f in frames])
    np.savez(tmp_path / "big.npz", images=big, labels=labels)
    assert main(["eval", "--fullframe", "--model", str(shipped_model), "--data", str(tmp_path / "big.npz"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["detected"] == int((boxes[:, 0] >= 0).sum())
    assert result["accuracy"] > 2 / 7
