"""Float vs int8 on val, the peer side by side, figures, and the model card the device checks."""

from __future__ import annotations

import csv
import json
import platform
import time
from pathlib import Path

import keras
import numpy as np

from moodspeaker.adapters.litert_classifier import LiteRTClassifier
from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.metrics import confusion_matrix, summarize
from moodspeaker.dev.peer import PeerClassifier
from moodspeaker.evaluation import evaluate_crops
from moodspeaker.model_card import CARD_FORMAT, card_path_for, sha256_file
from moodspeaker_train.data import LABELS, FaceSet
from moodspeaker_train.models import count_macs
from moodspeaker_train.plots import plot_confusion

GOLDEN_FILE = "golden_faces.npz"
GOLDEN_N = 210  # 30 per class where val has them: `moodspeaker model install` re-checks a model on these
FLIP_VAL_TOLERANCE = 0.003  # averaging a crop with its mirror image is kept unless it costs val more than this ...
# xception80-kd lost 0.1 points of clean val with it but read the camera's crops better: the living room's
# darkened, noisy, blurred, distant, covered and tilted val crops +0.2 to +1.3 points (blur σ1 -0.2), its whole
# frames +0.1 to +2.9 (24 px faces -1.2); on the sofa clips (seeds 17-22, 384 faces) wrong moods 23 -> 15, faces
# reached 265 -> 261. The camera fine-tune gains 1.3 points of clean val with it
FLIP_MAX_MS_PER_FACE = 2.0  # ... or the face more than this (1% of a core at 5 fps). The shipped model's second
# inference: 0.89 -> 0.92 ms a face here in eval, classify 0.35 -> 0.62 ms a frame in `moodspeaker bench` (640x480)


def _float_metrics(model: keras.Model, val: FaceSet) -> dict:
    logits = model.predict(val.images.astype(np.float32)[..., None], batch_size=256, verbose=0)
    return summarize(confusion_matrix(val.labels, logits.argmax(axis=1), len(LABELS)), LABELS)


def _golden_set(val: FaceSet, out: Path, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    per_class = GOLDEN_N // len(LABELS)
    idx = np.concatenate([
        rng.permutation(np.flatnonzero(val.labels == c))[:per_class] for c in range(len(LABELS))
    ])
    images, labels = val.images[idx], val.labels[idx]
    np.savez_compressed(out, images=images, labels=labels)
    return images, labels


def _recipe_enhance(run: Path) -> str:
    """The device enhancement the run trained with (the card must turn on what the training applied)."""
    return json.loads((run / "recipe.json").read_text()).get("augment", {}).get("enhance", "none")


def _training_summary(run: Path) -> dict:
    recipe = json.loads((run / "recipe.json").read_text())
    state = json.loads((run / "state.json").read_text())
    with (run / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    summary = {
        "recipe": recipe,
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
        "train_seconds": round(sum(float(r["seconds"]) for r in rows)),
        "trained_on": state.get("device") or f"{platform.machine()} CPU, {platform.system()}",
    }
    if state.get("teachers"):
        summary["distilled_from"] = [_teacher_summary(run.parent / Path(t).name) for t in state["teachers"]]
    if state.get("targets"):  # distilled from a logits file: its provenance says whose
        targets = Path(state["targets"]).with_suffix(".json")
        summary["distilled_from_logits"] = ({"file": Path(state["targets"]).name, **json.loads(targets.read_text())}
                                            if targets.is_file() else {"file": state["targets"]})
    if state.get("init_from"):
        summary["init_from"] = Path(state["init_from"]).name
    return summary


def _teacher_summary(teacher: Path) -> dict:
    """A teacher run beside the student's (as `distill` lays them out): its recipe, time and val accuracy."""
    if not (teacher / "state.json").is_file():
        return {"run": teacher.name}
    summary = _training_summary(teacher)
    recipe = summary["recipe"]
    best = json.loads((teacher / "state.json").read_text())["best_val_accuracy"]
    return {"run": teacher.name, "arch": recipe["arch"], "arch_args": recipe["arch_args"], "seed": recipe["seed"],
            "epochs_run": summary["epochs_run"], "train_seconds": summary["train_seconds"],
            "trained_on": summary["trained_on"], "val_accuracy_float": round(best, 4)}


def _choose_flip_tta(card: dict, card_path: Path, model_path: Path, val: FaceSet) -> tuple[dict, LiteRTClassifier]:
    """Evaluate the int8 model through the device classifier without and with flip averaging.

    Flip averaging is kept unless it costs val accuracy (over FLIP_VAL_TOLERANCE) or the face more than
    FLIP_MAX_MS_PER_FACE. Leaves the chosen setting in the card on disk.
    """
    results = {}
    for flip in (False, True):
        card["preprocessing"]["device"]["flip_tta"] = flip
        card_path.write_text(json.dumps(card, indent=1))
        classifier = LiteRTClassifier(model_path, card_path, num_threads=1)
        results[flip] = (evaluate_crops(classifier.classify, classifier.labels, val.images, val.labels), classifier)
    gain = results[True][0]["accuracy"] - results[False][0]["accuracy"]
    flip = gain >= -FLIP_VAL_TOLERANCE and results[True][0]["ms_per_face"] <= FLIP_MAX_MS_PER_FACE
    card["preprocessing"]["device"]["flip_tta"] = flip
    card["preprocessing"]["flip_tta_val_gain"] = round(gain, 4)
    card_path.write_text(json.dumps(card, indent=1))
    return results[flip]


def report(run: Path, model_path: Path, val: FaceSet, data_name: str, peer: Path | None, out_dir: Path,
           face_margin: float = 0.0) -> dict:
    """Evaluate the run's float checkpoint and the exported int8 model on val; write the card."""
    out_dir.mkdir(parents=True, exist_ok=True)
    keras_model = keras.models.load_model(run / "best.keras")
    size = keras_model.input_shape[1]
    card_path = card_path_for(model_path)
    card = {
        "format": CARD_FORMAT,
        "name": run.name,
        "file": model_path.name,
        "sha256": sha256_file(model_path),
        "size_bytes": model_path.stat().st_size,
        "labels": list(LABELS),
        "input": {"height": size, "width": size, "channels": 1, "layout": "NHWC", "dtype": "int8"},
        "output": {"dtype": "int8", "meaning": "logits; softmax on the device"},
        "preprocessing": {
            "description": "grayscale face crop, square box from the detector (+ face_margin per side), "
                           "resized to the input size; raw pixels 0..255 quantised with the input "
                           "tensor's scale/zero-point (scaling to -1..1 is inside the model); a crop smaller "
                           "than the input is enlarged with exact integer cubic interpolation (enlarge)"
                           + ("; after the resize, a noisy crop is denoised by non-local means and a dark one "
                              "contrast-stretched (enhance: moodspeaker.core.enhance.enhance_crop)"
                              if _recipe_enhance(run) != "none" else ""),
            "device": {"face_margin": face_margin, "resize": "area", "enlarge": "cubic", "flip_tta": False,
                       "enhance": _recipe_enhance(run)},
        },
        "quantization": {"type": "full-integer int8 (TFLite builtins int8)",
                         "calibration": "random train faces (seeded)"},
        "parameters": keras_model.count_params(),
        "macs": count_macs(keras_model),
        "training": {**_training_summary(run), "data": data_name,
                     "data_splits": {"train": "FER2013 Training (28,709)", "val": "FER2013 PublicTest (3,589)"}},
    }
    flt = _float_metrics(keras_model, val)
    peer_result = None
    if peer is not None:
        peer_result = evaluate_crops(PeerClassifier(peer).classify, EMOTIONS, val.images, val.labels)
        peer_result["file_kib"] = round(peer.stat().st_size / 1024, 1)
    int8, classifier = _choose_flip_tta(card, card_path, model_path, val)
    golden_images, golden_labels = _golden_set(val, model_path.parent / GOLDEN_FILE)
    golden = evaluate_crops(classifier.classify, classifier.labels, golden_images, golden_labels)
    card["metrics"] = {
        "val": {k: int8[k] for k in ("n", "accuracy", "macro_f1", "per_class_recall", "per_class_precision",
                                     "ms_per_face")},
        "val_float": {k: flt[k] for k in ("accuracy", "macro_f1")},
        "measured": time.strftime("%Y-%m-%d"),
    }
    card["golden"] = {"file": GOLDEN_FILE, "sha256": sha256_file(model_path.parent / GOLDEN_FILE),
                      "n": golden["n"], "accuracy": golden["accuracy"], "tolerance": 0.02}
    plot_confusion(np.array(int8["confusion"]), EMOTIONS, f"int8 on val: acc {int8['accuracy']:.3f}",
                   out_dir / "confusion_int8.png")
    result = {"float": flt, "int8": int8, "file_kib": round(card["size_bytes"] / 1024, 1),
              "parameters": card["parameters"], "macs": card["macs"]}
    if peer_result is not None:
        result["peer"] = peer_result
        card["metrics"]["peer_val"] = {k: result["peer"][k] for k in ("accuracy", "macro_f1", "ms_per_face")}
        plot_confusion(np.array(result["peer"]["confusion"]), EMOTIONS,
                       f"peer (fer) on val: acc {result['peer']['accuracy']:.3f}", out_dir / "confusion_peer.png")
    card_path.write_text(json.dumps(card, indent=1))
    (out_dir / "report.json").write_text(json.dumps(result, indent=1))
    if (run / "curves.png").exists():
        (out_dir / "learning_curves.png").write_bytes((run / "curves.png").read_bytes())
    return card
