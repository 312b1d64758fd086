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


def test_fullframe_eval_text_output_names_detection(shipped_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--fullframe", "--model", str(shipped_model), "--data", str(FULLFRAME)]) == 0
    assert "faces found in" in capsys.readouterr().out


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
