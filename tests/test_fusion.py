"""Fusing one tracked face's crops over time (core.fusion), on real val faces (the fer_tiny fixture): noise
averages away, a shifted crop is registered, fusion starts over when the face leaves, jumps or changes, and a
face counts only once confirmed; then the same through the device's pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moodspeaker.core.crop_quality import noise_sigma
from moodspeaker.core.domain import Box
from moodspeaker.core.fusion import CropFuser, FusionParams

BOX = Box(100, 80, 72, 72)


@pytest.fixture(scope="module")
def faces(fer_tiny: Path) -> np.ndarray:
    with np.load(fer_tiny / "val.npz") as data:
        return data["images"]


def _noisy(face: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(np.rint(face * 0.3 + rng.normal(0, sigma, face.shape)), 0, 255).astype(np.uint8)


def _feed(fuser: CropFuser, t: float, crop: np.ndarray, box: Box = BOX):
    fuser.track(t, box)
    return fuser.add(crop)


def test_eight_noisy_frames_of_one_face_average_the_noise_away(faces: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    face = faces[5]
    clean = np.rint(face * 0.3)
    fuser = CropFuser(FusionParams(frames=8))
    for i in range(8):
        crop = _noisy(face, rng, 8.0)
        fused = _feed(fuser, i / 10, crop)
        assert fused.restarted == ("new face" if i == 0 else None) and fused.frames == i + 1
    single_error = np.abs(crop - clean).mean()
    fused_error = np.abs(fused.crop - clean).mean()
    assert fused_error < single_error / 2.2  # sqrt(8) = 2.8 for the noise; the face's own rounding remains
    assert noise_sigma(fused.crop) < noise_sigma(crop) / 2


def test_a_crop_shifted_by_a_pixel_is_registered_on_the_average(faces: np.ndarray) -> None:
    face = faces[7]
    fuser = CropFuser(FusionParams(frames=4, confirm_frames=1))
    _feed(fuser, 0.0, face)
    shifted = np.roll(face, (1, -2), axis=(0, 1))  # the face moved; the detector's box did not
    fused = _feed(fuser, 0.1, shifted)
    inner = (slice(3, -3), slice(3, -3))
    assert fused.restarted is None
    assert np.abs(fused.crop[inner].astype(int) - face[inner]).mean() < 1.0  # aligned: the average is the face


def test_fusion_starts_over_when_the_face_leaves_jumps_or_changes(faces: np.ndarray) -> None:
    params = FusionParams(frames=8, max_gap_s=0.6)
    fuser = CropFuser(params)
    for i in range(4):
        _feed(fuser, i / 10, faces[1])
    fuser.miss(0.5)
    assert _feed(fuser, 0.6, faces[1]).frames == 5  # a missed frame or two: the same face
    fuser.miss(1.5)
    assert _feed(fuser, 1.6, faces[1]).restarted == "new face"  # gone for a second
    assert _feed(fuser, 1.7, faces[1], Box(300, 80, 72, 72)).restarted == "jump"
    assert _feed(fuser, 1.8, faces[1], Box(300, 80, 72, 72)).frames == 2
    assert _feed(fuser, 1.9, faces[1], Box(300, 80, 100, 100)).restarted == "jump"  # much closer: another face
    changed = _feed(fuser, 2.0, faces[90], Box(300, 80, 100, 100))  # someone else, same place
    assert changed.restarted == "changed" and np.array_equal(changed.crop, faces[90])


def test_the_crop_box_is_the_mean_of_the_tracks_jittering_boxes() -> None:
    fuser = CropFuser()
    boxes = [Box(100, 80, 70, 70), Box(103, 79, 76, 76), Box(99, 82, 73, 73)]
    got = [fuser.track(i / 10, b) for i, b in enumerate(boxes)]
    assert got[0] == boxes[0] and got[-1] == Box(101, 80, 73, 73)


def test_a_box_that_flickers_in_size_is_still_the_same_face(faces: np.ndarray) -> None:
    """The detector's box on one face flickers by a step or two of its scan (a lamp-lit 48 px face: 44, 50, 51, then
    38 px): measured against the track's mean box it is the same face, not a jump that starts fusion over and leaves
    the face uncounted for frames (which also restarts the smoother's dwell)."""
    fuser = CropFuser(FusionParams(confirm_frames=3))
    for i, side in enumerate((44, 44, 53)):
        _feed(fuser, i / 10, faces[1], Box(300, 80, side, side))
    flicker = _feed(fuser, 0.3, faces[1], Box(302, 82, 40, 40))  # 53 / 40 = 1.33 from the last box, 1.18 from the mean
    assert flicker.restarted is None and flicker.confirmed and flicker.frames == 4


def test_a_face_is_confirmed_after_confirm_frames_in_a_row(faces: np.ndarray) -> None:
    fuser = CropFuser(FusionParams(confirm_frames=3))
    assert [_feed(fuser, i / 10, faces[2]).confirmed for i in range(4)] == [False, False, True, True]
    with pytest.raises(ValueError, match="confirm_frames"):
        FusionParams(frames=2, confirm_frames=3)
    with pytest.raises(ValueError, match="uint8"):
        fuser.add(np.zeros((48, 48), np.float32))


def test_the_pipeline_counts_a_face_once_confirmed_and_says_so_meanwhile(shipped_model: Path) -> None:
    from moodspeaker.adapters.haar_detector import HaarFaceDetector
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier
    from moodspeaker.app.vision import VisionPipeline
    from moodspeaker.core.crop_quality import QualityParams
    from moodspeaker.core.domain import Frame
    from moodspeaker.core.smoother import Smoother
    from moodspeaker.dev.benchmark import EventLog

    with np.load(Path(__file__).parent / "fixtures" / "fullframe_tiny.npz") as data:
        frame = data["images"][0]
    classifier = LiteRTClassifier(shipped_model)
    pipeline = VisionPipeline(HaarFaceDetector(), classifier, Smoother(classifier.labels), EventLog(),
                              quality=QualityParams(), fusion=FusionParams(confirm_frames=3))
    rng = np.random.default_rng(5)
    statuses, weights = [], []
    for i in range(4):
        noisy = np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
        result = pipeline.process(Frame(noisy, i / 10))
        statuses.append(pipeline.face_status())
        weights.append(result.quality.weight)
    assert statuses == ["new face", "new face", "ok", "ok"] and weights[:2] == [0.0, 0.0] and weights[2] == 1.0
    assert pipeline.smoother.probabilities()  # the confirmed face's crops were averaged
    pipeline.process(Frame(np.full_like(frame, 90), 1.0))
    assert pipeline.face_status() == "none"


class _Cushion:
    """A detector that boxes the same patch of an empty room every seventh frame: each box is a new track."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, gray: np.ndarray) -> list[Box]:
        self.calls += 1
        return [BOX] if self.calls % 7 == 1 else []


def test_a_box_never_confirmed_is_not_read_and_lets_the_mood_decay(shipped_model: Path, faces: np.ndarray) -> None:
    """A cushion boxed now and then is no listener: its crop is never classified, and the mood an earlier listener
    left decays to no_face on time. Before, each box kept the smoother's face clock running, so a room with such a
    cushion never went empty."""
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier
    from moodspeaker.app.vision import VisionPipeline
    from moodspeaker.core.crop_quality import QualityParams
    from moodspeaker.core.domain import Frame
    from moodspeaker.core.mood import NO_FACE
    from moodspeaker.core.smoother import Smoother
    from moodspeaker.dev.benchmark import EventLog

    classifier = LiteRTClassifier(shipped_model)
    smoother, sink = Smoother(classifier.labels), EventLog()
    happy = np.eye(len(classifier.labels))[classifier.labels.index("happy")]
    for i in range(20):  # the listener who was there: two seconds of a happy face
        smoother.update(i / 10, happy)
    assert smoother.mood == "happy"
    pipeline = VisionPipeline(_Cushion(), classifier, smoother, sink, quality=QualityParams(),
                              fusion=FusionParams(confirm_frames=3))
    room = np.full((240, 320), 60, np.uint8)
    room[BOX.y:BOX.y + BOX.h, BOX.x:BOX.x + BOX.w] = faces[0][::2, ::2].repeat(3, 0).repeat(3, 1)
    after = smoother.params.no_face_after_s
    boxed = []
    for i in range(20, 20 + int(10 * (after + 1))):
        result = pipeline.process(Frame(room, i / 10))
        if result.face is not None:
            boxed.append((result.probs, pipeline.face_status(), result.quality.weight))
    assert len(boxed) >= 5 and all(item == (None, "new face", 0.0) for item in boxed)
    assert [(e.mood, e.t) for e in sink.events if e.kind == "mood"] == [(NO_FACE, pytest.approx(1.9 + after))]


def test_a_face_that_changes_in_place_stays_confirmed(faces: np.ndarray) -> None:
    """A change restarts the average, not the confirmation: the box never left (a confirmed face that turns, or
    a distant face whose box jitters in size, goes on counting)."""
    fuser = CropFuser(FusionParams(confirm_frames=3))
    for i in range(3):
        _feed(fuser, i / 10, faces[1])
    changed = _feed(fuser, 0.3, faces[90])
    assert changed.restarted == "changed" and changed.frames == 1 and changed.confirmed
    assert _feed(fuser, 0.4, faces[90], Box(400, 80, 72, 72)).confirmed is False  # a jump: a new box to confirm


def test_a_confirmed_face_found_again_in_place_counts_at_once(faces: np.ndarray) -> None:
    """A dim face the detector finds only now and then: after a gap longer than max_gap_s, a box where the confirmed
    face was, within resume_s, counts from its first frame (fusion still starts over); one elsewhere, or after
    resume_s, waits confirm_frames again."""
    params = FusionParams(confirm_frames=3, max_gap_s=0.6, resume_s=2.0)
    fuser = CropFuser(params)
    assert [_feed(fuser, i / 10, faces[2]).confirmed for i in range(3)] == [False, False, True]
    fuser.miss(1.2)  # lost for a second: the next box starts fusion over
    again = _feed(fuser, 1.3, faces[2], Box(BOX.x + 2, BOX.y - 1, BOX.w, BOX.h))
    assert again.restarted == "new face" and again.frames == 1 and again.confirmed
    fuser.miss(3.0)
    elsewhere = _feed(fuser, 3.1, faces[2], Box(BOX.x + 3 * BOX.w, BOX.y, BOX.w, BOX.h))
    assert elsewhere.restarted == "new face" and not elsewhere.confirmed
    fuser.miss(9.0)
    late = _feed(fuser, 9.1, faces[2], BOX)  # where the confirmed face was, but 7.8 s later
    assert not late.confirmed
    with pytest.raises(ValueError, match="resume_s"):
        FusionParams(resume_s=-1)
