"""The whole training pipeline on the committed tiny fixture: distill (PyTorch, here on the CPU) -> import into
the Keras twin -> int8 export -> report -> device."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch", reason="PyTorch is not installed: `make torch` adds it (README: Training the model)")

from moodspeaker.adapters.litert_classifier import LiteRTClassifier
from moodspeaker_train.cli import main as train_main

pytestmark = pytest.mark.training
TINY = ["--config", "training/configs/tiny.toml"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fer_tiny):
    out = tmp_path_factory.mktemp("pipeline")
    run, model = out / "run", out / "models" / "emotion.tflite"
    assert train_main(["distill", *TINY, "--data", str(fer_tiny), "--out", str(run)]) == 0
    assert train_main(["import", "--run", str(run)]) == 0
    assert train_main(["export", "--run", str(run), "--data", str(fer_tiny), "--out", str(model),
                       "--calibration", "64"]) == 0
    assert train_main(["report", "--run", str(run), "--model", str(model), "--data", str(fer_tiny),
                       "--out", str(out / "report")]) == 0
    return run, model, out


def test_the_trainer_writes_checkpoints_history_curves_and_twin_weights(trained):
    run, _, _ = trained
    for name in ("best.pt", "last.pt", "best.weights.npz", "best.keras", "history.csv", "curves.png", "recipe.json",
                 "state.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "state.json").read_text())["epoch"] == 1


def test_export_is_full_integer_int8_that_litert_loads(trained):
    _, model, _ = trained
    clf = LiteRTClassifier(model)
    probs = clf.classify(np.full((48, 48), 128, np.uint8))
    assert probs.shape == (7,) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert clf._in_scale == pytest.approx(1.0) and clf._in_zero == -128  # input = pixel - 128, exactly


def test_report_writes_card_figures_and_golden_set(trained):
    _, model, out = trained
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    val = card["metrics"]["val"]
    assert val["n"] == 210 and 0.0 <= val["accuracy"] <= 1.0
    assert card["golden"]["n"] == 210 and (model.parent / "golden_faces.npz").is_file()
    assert card["training"]["epochs_run"] == 1 and card["macs"] > 0 and card["parameters"] > 0
    assert (out / "report" / "confusion_int8.png").is_file() and (out / "report" / "learning_curves.png").is_file()
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["int8"]["accuracy"] == val["accuracy"]


def test_device_eval_matches_the_report(trained, fer_tiny):
    _, model, _ = trained
    proc = subprocess.run([sys.executable, "-m", "moodspeaker.cli", "eval", "--model", str(model),
                           "--data", str(fer_tiny / "val.npz"), "--json"], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    card = json.loads(model.with_suffix(".json").read_text())
    assert result["n"] == 210
    assert result["accuracy"] == pytest.approx(card["metrics"]["val"]["accuracy"])
    assert set(result) >= {"n", "accuracy", "macro_f1", "per_class_recall", "confusion", "ms_per_face"}


def test_resume_continues_and_refuses_to_overwrite(trained, fer_tiny, capsys):
    run, _, _ = trained
    assert train_main(["distill", *TINY, "--data", str(fer_tiny), "--out", str(run)]) == 2
    assert "--resume" in capsys.readouterr().err
    before = (run / "history.csv").read_text()
    assert train_main(["distill", *TINY, "--data", str(fer_tiny), "--out", str(run), "--resume"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert (run / "history.csv").read_text() == before  # finished: nothing more trained


def test_missing_data_is_a_clear_cli_error(tmp_path, capsys):
    assert train_main(["distill", *TINY, "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
