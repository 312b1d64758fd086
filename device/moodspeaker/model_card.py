"""The model card (`models/emotion.json`): what the device needs to run a model, and proof it is that model.

The card travels with the .tflite file; the device refuses a model whose card does not match it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.enhance import ENHANCE_NAME
from moodspeaker.errors import ModelError

CARD_FORMAT = "moodspeaker-model-card/1"
FACE_MARGIN_RANGE = (-0.25, 1.0)  # a tighter crop than the detector box, up to twice its size
INPUT_SIZE_RANGE = (8, 512)  # pixels per side


@dataclass(frozen=True)
class Preprocessing:
    """How a face crop becomes model input. Pixels go in raw (0..255); scaling is inside the model."""

    face_margin: float = 0.0  # fraction of the detector box added on each side before the square crop
    resize: str = "area"  # OpenCV interpolation: area | linear
    enlarge: str = "area"  # for a crop smaller than the input: the same as resize ("area"), or exact "cubic"
    flip_tta: bool = False  # average logits of the crop and its mirror image
    enhance: str = "none"  # after the resize: "none", or "denoise-stretch" (core.enhance.enhance_crop)


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
    labels = raw.get("labels")
    if not isinstance(labels, list) or not all(isinstance(lab, str) for lab in labels):
        raise ModelError(f"{path}: \"labels\" must be a list of emotion names, got {labels!r}")
    if [lab for lab in labels if lab not in EMOTIONS] or len(set(labels)) != len(labels):
        raise ModelError(f"{path}: labels {labels} must be distinct names from {list(EMOTIONS)}")
    size = _input_size(path, raw.get("input"))
    sha = raw.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelError(f"{path}: \"sha256\" must be the model file's SHA-256 as 64 lower-case hex digits")
    return ModelCard(sha256=sha, labels=tuple(labels), input_size=size, preprocessing=_preprocessing(path, raw),
                     raw=raw)


def _whole(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def finite_number(x: Any) -> bool:
    """A JSON number that is not a bool, NaN or infinite."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _input_size(path: Path, spec: Any) -> int:
    if not isinstance(spec, dict) or not all(_whole(spec.get(k)) for k in ("height", "width", "channels")):
        raise ModelError(f"{path}: \"input\" must give whole-number height, width and channels, got {spec!r}")
    size = spec["height"]
    if spec["width"] != size or spec["channels"] != 1:
        raise ModelError(f"{path}: input must be square grayscale, got {spec}")
    low, high = INPUT_SIZE_RANGE
    if not low <= size <= high:
        raise ModelError(f"{path}: input size {size} is outside {low}..{high} pixels")
    return size


def _preprocessing(path: Path, raw: dict[str, Any]) -> Preprocessing:
    """preprocessing.device, every field checked for type and range: vision uses them on every face."""
    section = raw.get("preprocessing", {})
    device = section.get("device", {}) if isinstance(section, dict) else None
    if not isinstance(device, dict):
        raise ModelError(f"{path}: \"preprocessing\" must be an object with a \"device\" object, got {section!r}")
    if unknown := sorted(set(device) - {"face_margin", "resize", "enlarge", "flip_tta", "enhance"}):
        raise ModelError(f"{path}: preprocessing.device has unknown keys {unknown}")
    prep = Preprocessing(**device)
    low, high = FACE_MARGIN_RANGE
    if not finite_number(prep.face_margin) or not low <= prep.face_margin <= high:
        raise ModelError(f"{path}: preprocessing.device.face_margin must be a number in {low}..{high}, "
                         f"got {prep.face_margin!r}")
    if prep.resize not in {"area", "linear"}:
        raise ModelError(f"{path}: preprocessing.device.resize must be 'area' or 'linear', got {prep.resize!r}")
    if prep.enlarge not in {"area", "cubic"}:
        raise ModelError(f"{path}: preprocessing.device.enlarge must be 'area' or 'cubic', got {prep.enlarge!r}")
    if not isinstance(prep.flip_tta, bool):
        raise ModelError(f"{path}: preprocessing.device.flip_tta must be true or false, got {prep.flip_tta!r}")
    if prep.enhance not in {"none", ENHANCE_NAME}:
        raise ModelError(f"{path}: preprocessing.device.enhance must be 'none' or '{ENHANCE_NAME}', got {prep.enhance!r}")
    return Preprocessing(face_margin=float(prep.face_margin), resize=prep.resize, enlarge=prep.enlarge,
                         flip_tta=prep.flip_tta, enhance=prep.enhance)


def require_model_file(model: Path) -> None:
    """Checked before the card: a missing .tflite is the first thing to fix (its card is usually missing with it)."""
    if not model.is_file():
        raise ModelError(f"{model}: model file not found")


def verify_model_bytes(model: Path, content: bytes, card: ModelCard) -> None:
    """The model's bytes (read from `model`) must be the ones the card describes (SHA-256)."""
    actual = hashlib.sha256(content).hexdigest()
    if actual != card.sha256:
        raise ModelError(
            f"{model}: SHA-256 {actual[:12]}… does not match its card ({card.sha256[:12]}…); "
            "the file is corrupt or the card belongs to another model — copy both files again"
        )
