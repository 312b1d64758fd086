"""The crop-quality estimate on real val faces (the committed fer_tiny fixture): clean faces keep their weight;
dim and noisy, blurred or tiny ones lose it, each with the reason the status line shows."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from moodspeaker.core.crop_quality import REASONS, QualityParams, assess, noise_sigma


@pytest.fixture(scope="module")
def faces(fer_tiny: Path) -> np.ndarray:
    with np.load(fer_tiny / "val.npz") as data:
        return data["images"]


def _weights(images) -> np.ndarray:
    return np.array([assess(face).weight for face in images])


def _reasons(images) -> list[str | None]:
    return [assess(face).reason for face in images]


def test_clean_faces_keep_full_weight(faces: np.ndarray) -> None:
    weights = _weights(faces)
    assert np.mean(weights == 1.0) >= 0.9 and np.mean(weights == 0.0) <= 0.02


def test_clean_faces_enlarged_as_a_near_face_are_still_clean(faces: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    big = [np.clip(cv2.resize(f, (144, 144), interpolation=cv2.INTER_CUBIC) + rng.normal(0, 3, (144, 144)), 0, 255)
           .astype(np.uint8) for f in faces[:60]]  # a close face with camera noise at frame resolution
    assert np.mean(_weights(big) == 1.0) >= 0.9


def _dim(faces: np.ndarray, gain: float, sigma: float, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(f * gain + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in faces]


def test_a_dim_noisy_face_counts_less_and_a_darker_one_is_skipped_as_too_dark(faces: np.ndarray) -> None:
    lamp, dimmer, darker = _dim(faces, 0.3, 4.0), _dim(faces, 0.3, 8.0), _dim(faces, 0.15, 8.0)
    # the enhanced model reads these at 0.65 and 0.55 on val (clean: 0.70): they count, less the noisier they are
    assert np.median(_weights(lamp)) > 0.8 > np.median(_weights(dimmer)) > 0.25
    assert np.mean(_weights(darker) == 0.0) >= 0.95
    assert _reasons(dimmer).count("face too dark") >= 0.95 * len(faces)


def test_a_lamp_lit_face_is_low_light_and_a_clean_one_is_not(faces: np.ndarray) -> None:
    """low_light (the smoother asks such a crop for more confidence) follows the face's contrast, not its noise:
    a lamp-lit face (×0.3, its noise averaged away by fusion) is low-light, nearly every clean val face is not."""
    clean = [assess(f).low_light for f in faces]
    lamp = [assess(f).low_light for f in _dim(faces, 0.3, 1.0)]
    assert np.mean(np.array(clean) == 0.0) >= 0.95
    assert np.median(lamp) > 0.5 and min(lamp) >= 0.0 and max(lamp) <= 1.0


def test_a_blurred_face_is_skipped_as_too_blurred(faces: np.ndarray) -> None:
    blurred = [cv2.GaussianBlur(f, (0, 0), 2.0) for f in faces]
    assert np.mean(_weights(blurred) == 0.0) >= 0.95
    assert _reasons(blurred).count("too blurred") >= 0.95 * len(faces)


def test_a_tiny_face_counts_less_as_too_far(faces: np.ndarray) -> None:
    tiny = [cv2.resize(f, (24, 24), interpolation=cv2.INTER_AREA) for f in faces]
    weights = _weights(tiny)
    assert 0.2 < weights.mean() < 0.8 and _reasons(tiny).count("too far") >= 0.9 * len(faces)
    assert assess(cv2.resize(faces[0], (16, 16), interpolation=cv2.INTER_AREA)).weight == 0.0


def test_far_follows_the_faces_side_in_the_image_it_was_cut_from(faces: np.ndarray) -> None:
    """`far` (the smoother asks such a crop for more confidence) is 1 for a 36 px face, 0 from 60 px on, and
    comes from the side the face had in the frame, not from the fused crop's (always the model's size)."""
    sides = {side: assess(cv2.resize(faces[0], (side, side), interpolation=cv2.INTER_AREA)).far
             for side in (30, 36, 48, 60, 96)}
    assert sides == {30: 1.0, 36: 1.0, 48: 0.5, 60: 0.0, 96: 0.0}
    assert assess(faces[0], side_px=36).far == 1.0 and assess(faces[0], side_px=120).far == 0.0


def test_flat_crop_is_skipped_and_every_reason_is_known() -> None:
    q = assess(np.full((48, 48), 90, np.uint8))
    assert q.weight == 0.0 and q.reason in REASONS


def test_noise_estimate_reads_the_sigma_of_white_noise() -> None:
    rng = np.random.default_rng(2)
    assert noise_sigma(np.full((200, 200), 128.0) + rng.normal(0, 5, (200, 200))) == pytest.approx(5, rel=0.05)


def test_bad_input_and_params_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        assess(np.zeros((48, 48), np.float32))
    with pytest.raises(ValueError, match="contrast"):
        QualityParams(contrast=(10.0, 10.0))


def test_the_pipeline_weights_the_smoother_by_quality_and_reports_why(shipped_model: Path) -> None:
    from moodspeaker.adapters.haar_detector import HaarFaceDetector
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier
    from moodspeaker.app.vision import VisionPipeline
    from moodspeaker.core.domain import Frame
    from moodspeaker.core.smoother import Smoother
    from moodspeaker.dev.benchmark import EventLog

    with np.load(Path(__file__).parent / "fixtures" / "fullframe_tiny.npz") as data:
        frame, (_, _, side, _) = data["images"][0], data["boxes"][0]
    classifier = LiteRTClassifier(shipped_model)
    rng = np.random.default_rng(4)
    frames = {"ok": frame, "face too dark": np.clip(frame * 0.25 + rng.normal(0, 5, frame.shape), 0, 255).astype(np.uint8),
              "too blurred": cv2.GaussianBlur(frame, (0, 0), 2.0 * side / 48)}
    for status, image in frames.items():
        pipeline = VisionPipeline(HaarFaceDetector(), classifier, Smoother(classifier.labels), EventLog(),
                                  quality=QualityParams())
        result = pipeline.process(Frame(image, 0.0))
        assert result.face is not None and pipeline.face_status() == status
        weight = {"ok": 1.0, "too blurred": 0.0}.get(status)
        if weight is None:  # dark: counts less, but counts
            assert 0.25 < result.quality.weight < 1.0, result.quality
        else:
            assert result.quality.weight == weight, result.quality
        assert (pipeline.smoother.probabilities() == {}) == (status == "too blurred")  # a skipped crop is not averaged
    pipeline.process(Frame(np.full_like(frame, 90), 1.0))
    assert pipeline.face_status() == "none"
