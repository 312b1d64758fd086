"""The model card (`models/emotion.json`): what the device needs to run a model, and proof it is that model.

The card travels with the .tflite file; the device refuses a model whose card does not match it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.errors import ModelError

CARD_FORMAT = "moodspeaker-model-card/1"


@dataclass(frozen=True)
class Preprocessing:
    """How a face crop becomes model input. Pixels go in raw (0..255); scaling is inside the model."""

    face_margin: float = 0.0  # fraction of the detector box added on each side before the square crop
    resize: str = "area"  # OpenCV interpolation: area | linear
    enlarge: str = "area"  # for a crop smaller than the input: the same as resize ("area"), or exact "cubic"
    flip_tta: bool = False  # average logits of the crop and its mirror image


@dataclass(frozen=True)
class ModelCard:
    sha256: str
    labels: tuple[str, ...]
    input_size: int
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def val_accuracy(self) -> float | None:
        return self.raw.get("metrics", {}).get("val", {}).get("accuracy")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path_for(model: Path) -> Path:
    return model.with_suffix(".json")


def load_card(path: Path) -> ModelCard:
    """Parse and sanity-check a card (without looking at the model file)."""
    if not path.is_file():
        raise ModelError(f"{path}: model card not found; every .tflite needs its .json card beside it "
                         "(written by `moodspeaker-train report`)")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: model card is not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != CARD_FORMAT:
        raise ModelError(f"{path}: not a moodspeaker model card (expected \"format\": \"{CARD_FORMAT}\")")
    try:
        labels = tuple(raw["labels"])
        size = int(raw["input"]["height"])
        if int(raw["input"]["width"]) != size or int(raw["input"]["channels"]) != 1:
            raise ModelError(f"{path}: input must be square grayscale, got {raw['input']}")
        prep = Preprocessing(**raw.get("preprocessing", {}).get("device", {}))
        sha = str(raw["sha256"])
    except ModelError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: model card is missing or has a bad field ({exc!r})") from None
    unknown = [lab for lab in labels if lab not in EMOTIONS]
    if unknown or len(set(labels)) != len(labels):
        raise ModelError(f"{path}: labels {list(labels)} must be distinct names from {list(EMOTIONS)}")
    if prep.resize not in {"area", "linear"}:
        raise ModelError(f"{path}: preprocessing.device.resize must be 'area' or 'linear'")
    if prep.enlarge not in {"area", "cubic"}:
        raise ModelError(f"{path}: preprocessing.device.enlarge must be 'area' or 'cubic'")
    return ModelCard(sha256=sha, labels=labels, input_size=size, preprocessing=prep, raw=raw)


def require_model_file(model: Path) -> None:
    """Checked before the card: a missing .tflite is the first thing to fix (its card is usually missing with it)."""
    if not model.is_file():
        raise ModelError(f"{model}: model file not found")


def verify_model_file(model: Path, card: ModelCard) -> None:
    """The file must be the one the card describes (SHA-256)."""
    require_model_file(model)
    actual = sha256_file(model)
    if actual != card.sha256:
        raise ModelError(
            f"{model}: SHA-256 {actual[:12]}… does not match its card ({card.sha256[:12]}…); "
            "the file is corrupt or the card belongs to another model — copy both files again"
        )
