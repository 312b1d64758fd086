"""`moodspeaker model install | rollback | list` with real LiteRT on tiny int8 models converted here with TF.

The test models ignore the face and always answer one class, so their accuracy on a golden set is known from the
set itself; the golden set is a class-unbalanced subset of the fer_tiny fixture, which makes a card with swapped
labels measurably wrong. The card is not trusted: bad types, NaN, a huge tolerance, an accuracy below the floor,
oversized files and a concurrent install are refused.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from moodspeaker.cli import main
from moodspeaker.commands.model import request_vision_reload
from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.model_card import CARD_FORMAT, sha256_file
from moodspeaker.model_store import ModelStore

HAPPY, NEUTRAL = EMOTIONS.index("happy"), EMOTIONS.index("neutral")


def _convert(size: int, favourite: int, quantize: bool = True) -> bytes:
    """A tiny Keras model whose logits favour one class whatever the face, as (int8) TFLite."""
    import keras
    import tensorflow as tf

    bias = np.zeros(len(EMOTIONS), np.float32)
    bias[favourite] = 4.0
    inputs = keras.Input((size, size, 1))
    x = keras.layers.Rescaling(1 / 127.5, -1)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(EMOTIONS), kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(bias))(x)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, outputs))
    if quantize:
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.uniform(0, 255, (1, size, size, 1)).astype(np.float32)]
                                                    for _ in range(8))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def _card(model: Path, golden: Path, labels: tuple[str, ...] = EMOTIONS, size: int = 48) -> dict:
    """A card as `moodspeaker-train report` writes it; the golden accuracy is measured by the device's classifier."""
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier
    from moodspeaker.evaluation import evaluate_crops

    card = {"format": CARD_FORMAT, "name": f"tiny{size}", "file": model.name, "sha256": sha256_file(model),
            "labels": list(labels), "input": {"height": size, "width": size, "channels": 1},
            "preprocessing": {"device": {"face_margin": 0.0, "resize": "area", "flip_tta": False}},
            "metrics": {"val": {"accuracy": 0.5}, "measured": "2025-01-01"}}
    card_path = model.with_suffix(".json")
    card_path.write_text(json.dumps(card))
    with np.load(golden) as d:
        images, labels_ = d["images"], d["labels"].astype(np.int64)
    clf = LiteRTClassifier(model, card_path)
    accuracy = evaluate_crops(clf.classify, clf.labels, images, labels_)["accuracy"]
    card["golden"] = {"file": golden.name, "sha256": sha256_file(golden), "n": len(images), "accuracy": accuracy,
                      "tolerance": 0.02}
    card_path.write_text(json.dumps(card))
    return card


@pytest.fixture(scope="module")
def built(tmp_path_factory, fer_tiny) -> Path:
    """models/: happy.tflite + happy.json, neutral.tflite + .json (a second good model), golden_faces.npz,
    and raw variants small.tflite (40x40 input), float.tflite (no quantisation)."""
    out = tmp_path_factory.mktemp("built")
    with np.load(fer_tiny / "val.npz") as d:
        images, labels = d["images"], d["labels"]
    # 30 happy, 24 neutral, 1 of each other class: the happy model scores 0.51, the neutral one 0.41 (both above
    # the install floor), and a card that swaps happy and neutral measures 0.41 against its claimed 0.51
    keep = np.concatenate([np.flatnonzero(labels == HAPPY), np.flatnonzero(labels == NEUTRAL)[:24]] +
                          [np.flatnonzero(labels == c)[:1] for c in range(len(EMOTIONS)) if c not in (HAPPY, NEUTRAL)])
    np.savez_compressed(out / "golden_faces.npz", images=images[keep], labels=labels[keep])
    for name, blob in (("happy", _convert(48, HAPPY)), ("neutral", _convert(48, NEUTRAL)),
                       ("small", _convert(40, HAPPY)), ("float", _convert(48, HAPPY, quantize=False))):
        (out / f"{name}.tflite").write_bytes(blob)
    for name in ("happy", "neutral"):
        _card(out / f"{name}.tflite", out / "golden_faces.npz")
    return out


def _install(model: Path, card: Path, store: Path, *extra: str) -> int:
    return main(["model", "install", str(model), "--card", str(card), "--models-dir", str(store), *extra])


@pytest.fixture()
def store(tmp_path, built) -> Path:
    """A models dir with the 'happy' model installed and current."""
    root = tmp_path / "models"
    assert _install(built / "happy.tflite", built / "happy.json", root) == 0
    return root


def _variant(built: Path, tmp_path: Path, model_bytes: bytes, card_edit: dict | None = None,
             card_from: str = "happy", sha_of_file: bool = True) -> tuple[Path, Path]:
    """A copy of a built model/card pair with the model replaced and card fields changed."""
    model, card_path = tmp_path / "candidate.tflite", tmp_path / "candidate.json"
    model.write_bytes(model_bytes)
    card = json.loads((built / f"{card_from}.json").read_text())
    if sha_of_file:
        card["sha256"] = sha256_file(model)
    card.update(card_edit or {})
    card_path.write_text(json.dumps(card))
    (tmp_path / "golden_faces.npz").write_bytes((built / "golden_faces.npz").read_bytes())
    return model, card_path


def _snapshot(root: Path) -> tuple[str, list[str]]:
    return os.readlink(root / "current"), sorted(p.name for p in (root / "versions").iterdir())


def test_install_makes_the_model_current_and_checked(capsys, store, built):
    sha12 = sha256_file(built / "happy.tflite")[:12]
    assert ModelStore(store).current() == (store / "versions" / sha12).resolve()
    for name in ("emotion.tflite", "emotion.json", "golden_faces.npz"):
        assert (store / "current" / name).is_file()
    assert sha256_file(store / "current" / "emotion.tflite") == sha256_file(built / "happy.tflite")
    out = capsys.readouterr().out
    assert f"installed {sha12}" in out and "systemd is not running here" in out


def test_second_install_keeps_previous_and_rollback_swaps_them(store, built, capsys):
    happy, neutral = (sha256_file(built / f"{n}.tflite")[:12] for n in ("happy", "neutral"))
    assert _install(built / "neutral.tflite", built / "neutral.json", store) == 0
    models = ModelStore(store)
    assert (models.current().name, models.previous().name) == (neutral, happy)
    assert main(["model", "rollback", "--models-dir", str(store), "--no-reload"]) == 0
    assert (models.current().name, models.previous().name) == (happy, neutral)
    capsys.readouterr()
    assert main(["model", "list", "--models-dir", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("current ") and happy in line for line in lines)
    assert any(line.startswith("previous") and neutral in line for line in lines)


def test_reinstalling_the_current_model_changes_nothing(store, built):
    before = _snapshot(store)
    assert _install(built / "happy.tflite", built / "happy.json", store, "--no-reload") == 0
    assert _snapshot(store) == before and not (store / "previous").exists()


def test_rollback_without_previous_is_refused(store, capsys):
    assert main(["model", "rollback", "--models-dir", str(store), "--no-reload"]) == 3
    assert "no previous model" in capsys.readouterr().err


def _refused(store: Path, model: Path, card: Path, capsys, message: str) -> None:
    before = _snapshot(store)
    assert _install(model, card, store, "--no-reload") == 3
    err = capsys.readouterr().err
    assert message in err and "the current model is unchanged" in err, err
    assert _snapshot(store) == before  # same current link, no new version, no staging folder left behind


def test_corrupt_model_is_refused(store, built, tmp_path, capsys):
    blob = bytearray((built / "happy.tflite").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    model, card = _variant(built, tmp_path, bytes(blob), sha_of_file=False)
    _refused(store, model, card, capsys, "does not match its card")


def test_truncated_model_is_refused_even_with_a_matching_card(store, built, tmp_path, capsys):
    blob = (built / "happy.tflite").read_bytes()
    model, card = _variant(built, tmp_path, blob[: len(blob) // 2])
    _refused(store, model, card, capsys, "LiteRT cannot load this model")


def test_card_of_another_model_is_refused(store, built, capsys):
    _refused(store, built / "happy.tflite", built / "neutral.json", capsys, "does not match its card")


def test_wrong_input_shape_is_refused(store, built, tmp_path, capsys):
    model, card = _variant(built, tmp_path, (built / "small.tflite").read_bytes())
    _refused(store, model, card, capsys, "input shape [1, 40, 40, 1] does not match the card's [1, 48, 48, 1]")


def test_float_model_is_refused(store, built, tmp_path, capsys):
    model, card = _variant(built, tmp_path, (built / "float.tflite").read_bytes())
    _refused(store, model, card, capsys, "not a full-integer int8 model")


def test_card_with_fewer_labels_than_outputs_is_refused(store, built, tmp_path, capsys):
    model, card = _variant(built, tmp_path, (built / "happy.tflite").read_bytes(), {"labels": list(EMOTIONS[:6])})
    _refused(store, model, card, capsys, "does not match the card's 6 labels")


def test_card_with_labels_in_the_wrong_order_fails_the_golden_faces(store, built, tmp_path, capsys):
    swapped = list(EMOTIONS)
    swapped[HAPPY], swapped[NEUTRAL] = swapped[NEUTRAL], swapped[HAPPY]
    model, card = _variant(built, tmp_path, (built / "happy.tflite").read_bytes(), {"labels": swapped})
    _refused(store, model, card, capsys, "golden faces is")


def test_golden_faces_that_do_not_match_the_card_are_refused(store, built, tmp_path, capsys):
    golden = json.loads((built / "neutral.json").read_text())["golden"]
    model, card = _variant(built, tmp_path, (built / "neutral.tflite").read_bytes(), {"golden": {**golden, "sha256": "0" * 64}},
                           card_from="neutral")
    _refused(store, model, card, capsys, "no golden faces matching the card")


def test_card_without_golden_entry_is_refused(store, built, tmp_path, capsys):
    model, card = _variant(built, tmp_path, (built / "neutral.tflite").read_bytes(), card_from="neutral")
    raw = json.loads(card.read_text())
    del raw["golden"]
    card.write_text(json.dumps(raw))
    _refused(store, model, card, capsys, "has no \"golden\" entry")


def test_golden_faces_come_from_the_current_model_when_not_beside_the_card(store, built, tmp_path):
    model, card = tmp_path / "m.tflite", tmp_path / "m.json"
    model.write_bytes((built / "neutral.tflite").read_bytes())
    card.write_bytes((built / "neutral.json").read_bytes())
    assert _install(model, card, store, "--no-reload") == 0
    assert ModelStore(store).current().name == sha256_file(model)[:12]


def test_reload_is_skipped_without_systemd_and_failures_say_what_to_run(tmp_path):
    assert "systemd is not running" in request_vision_reload(systemd_dir=tmp_path / "absent")
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl is not installed")
    # Claim systemd runs (the folder exists) where it does not: the real systemctl fails, and we say what to do.
    message = request_vision_reload(systemd_dir=tmp_path)
    assert message.startswith("could not reload moodspeaker-vision.service") and "sudo systemctl reload" in message


def test_the_shipped_model_passes_its_own_checks(shipped_model, tmp_path):
    root = tmp_path / "models"
    assert _install(shipped_model, shipped_model.with_suffix(".json"), root, "--no-reload") == 0
    assert sha256_file(root / "current" / "emotion.tflite") == sha256_file(shipped_model)


def _golden_edit(built: Path, **changes: object) -> dict:
    return {"golden": {**json.loads((built / "happy.json").read_text())["golden"], **changes}}


@pytest.mark.parametrize(("changes", "message"), [
    ({"tolerance": float("nan")}, "golden.tolerance must be a number from 0 to 0.05, got nan"),  # NaN passed every check
    ({"tolerance": 1.0}, "golden.tolerance must be a number from 0 to 0.05, got 1.0"),  # waved any labels through
    ({"accuracy": "0.5"}, "golden.accuracy must be a number"),
    ({"n": 10}, "golden.n must be a whole number of at least 50"),
], ids=["nan-tolerance", "tolerance-1", "accuracy-string", "too-few-faces"])
def test_a_golden_entry_that_proves_nothing_is_refused(store, built, tmp_path, capsys, changes, message):
    model, card = _variant(built, tmp_path, (built / "happy.tflite").read_bytes(), _golden_edit(built, **changes))
    _refused(store, model, card, capsys, message)


def test_reversed_labels_are_refused_even_when_the_card_claims_their_accuracy(store, built, tmp_path, capsys):
    """A card with reversed labels and its own (low) golden accuracy matched its claim; the floor refuses it."""
    model, card = _variant(built, tmp_path, (built / "neutral.tflite").read_bytes(), {"labels": list(reversed(EMOTIONS))},
                           card_from="neutral")
    raw = json.loads(card.read_text())
    raw["golden"]["accuracy"] = 1 / 59  # what reversed labels score: the neutral answer reads "angry", one face
    card.write_text(json.dumps(raw))
    _refused(store, model, card, capsys, "golden.accuracy must be a number from 0.4")


@pytest.mark.parametrize(("preprocessing", "message"), [
    ({"device": {"face_margin": "wide", "resize": "area", "flip_tta": False}}, "face_margin must be a number"),
    ({"device": {"face_margin": float("nan")}}, "face_margin must be a number"),
    ({"device": {"face_margin": 0.0, "flip_tta": "yes"}}, "flip_tta must be true or false"),
    (None, "\"preprocessing\" must be an object"),  # was a traceback
], ids=["margin-string", "margin-nan", "flip-string", "null"])
def test_card_preprocessing_is_checked_before_vision_uses_it(store, built, tmp_path, capsys, preprocessing, message):
    """A non-numeric face_margin used to install and then crash vision on the first face."""
    model, card = _variant(built, tmp_path, (built / "happy.tflite").read_bytes(), {"preprocessing": preprocessing})
    _refused(store, model, card, capsys, message)


def test_an_oversized_model_file_is_refused_before_it_is_read(store, built, tmp_path, capsys):
    model, card = _variant(built, tmp_path, b"")
    with model.open("wb") as f:  # 1 GiB, sparse: costs no disk
        f.truncate(1 << 30)
    _refused(store, model, card, capsys, "1024 MiB is too large for a model file (at most 64 MiB)")


def test_a_second_install_while_one_runs_is_refused(store, built, capsys):
    """Two installs at once raced on current/previous and both said "now current"."""
    import fcntl

    with (store / ".install.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # an install in progress
        _refused(store, built / "neutral.tflite", built / "neutral.json", capsys, "another `moodspeaker model install`")
        assert main(["model", "rollback", "--models-dir", str(store), "--no-reload"]) == 3
    assert _install(built / "neutral.tflite", built / "neutral.json", store, "--no-reload") == 0  # free again
