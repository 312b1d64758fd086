"""The model card (`models/emotion.json`): what the device needs to run a model, and proof it is that model.

The card travels with the .tflite file; the device refuses a model whose card does not match it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moodspeaker.core.checks import finite_number
from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.enhance import ENHANCE_NAME
from moodspeaker.errors import ModelError, quote

CARD_FORMAT = "moodspeaker-model-card/1"
FACE_MARGIN_RANGE = (-0.25, 1.0)  # a tighter crop than the detector box, up to twice its size
INPUT_SIZE_RANGE = (8, 512)  # pixels per side
MAX_CARD_BYTES = 1 << 20  # a card is a few KiB


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
    def name(self) -> str | None:
        name = self.raw.get("name")
        return name if isinstance(name, str) else None

    @property
    def val_accuracy(self) -> float | None:
        """metrics.val.accuracy, if the card gives it as a number in 0..1 (the card is informative here, and any
        JSON: these fields are only shown)."""
        accuracy = _at(self.raw, "metrics", "val", "accuracy")
        return float(accuracy) if finite_number(accuracy) and 0 <= accuracy <= 1 else None

    @property
    def measured(self) -> str | None:
        """metrics.measured: when the metrics were measured, if the card says so as a string."""
        measured = _at(self.raw, "metrics", "measured")
        return measured if isinstance(measured, str) else None


def _at(raw: Any, *keys: str) -> Any:
    """raw[k1][k2]..., or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(raw, dict):
            return None
        raw = raw.get(key)
    return raw


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
        with path.open("rb") as f:
            data = f.read(MAX_CARD_BYTES + 1)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model card ({exc.strerror})") from None
    if len(data) > MAX_CARD_BYTES:
        raise ModelError(f"{path}: larger than {MAX_CARD_BYTES >> 20} MiB, too large for a model card")
    try:
        raw = json.loads(data.decode("utf-8"))
    except RecursionError:  # e.g. 200,000 "[": deeper than the parser's stack
        raise ModelError(f"{path}: model card is not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # not UTF-8, not JSON, an integer of more than 4300 digits
        raise ModelError(f"{path}: model card is not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != CARD_FORMAT:
        raise ModelError(f"{path}: not a moodspeaker model card (expected \"format\": \"{CARD_FORMAT}\")")
    labels = raw.get("labels")
    if not isinstance(labels, list) or not all(isinstance(lab, str) for lab in labels):
        raise ModelError(f"{path}: \"labels\" must be a list of emotion names, got {quote(labels)}")
    if [lab for lab in labels if lab not in EMOTIONS] or len(set(labels)) != len(labels):
        raise ModelError(f"{path}: labels {quote(labels)} must be distinct names from {list(EMOTIONS)}")
    size = _input_size(path, raw.get("input"))
    sha = raw.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelError(f"{path}: \"sha256\" must be the model file's SHA-256 as 64 lower-case hex digits")
    return ModelCard(sha256=sha, labels=tuple(labels), input_size=size, preprocessing=_preprocessing(path, raw),
                     raw=raw)


def _whole(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _input_size(path: Path, spec: Any) -> int:
    if not isinstance(spec, dict) or not all(_whole(spec.get(k)) for k in ("height", "width", "channels")):
        raise ModelError(f"{path}: \"input\" must give whole-number height, width and channels, got {quote(spec)}")
    size = spec["height"]
    if spec["width"] != size or spec["channels"] != 1:
        raise ModelError(f"{path}: input must be square grayscale, got {quote(spec)}")
    low, high = INPUT_SIZE_RANGE
    if not low <= size <= high:
        raise ModelError(f"{path}: input size {quote(size)} is outside {low}..{high} pixels")
    return size


def _preprocessing(path: Path, raw: dict[str, Any]) -> Preprocessing:
    """preprocessing.device, every field checked for type and range: vision uses them on every face."""
    section = raw.get("preprocessing", {})
    device = section.get("device", {}) if isinstance(section, dict) else None
    if not isinstance(device, dict):
        raise ModelError(f"{path}: \"preprocessing\" must be an object with a \"device\" object, got {quote(section)}")
    if unknown := sorted(set(device) - {"face_margin", "resize", "enlarge", "flip_tta", "enhance"}):
        raise ModelError(f"{path}: preprocessing.device has unknown keys {unknown}")
    prep = Preprocessing(**device)
    low, high = FACE_MARGIN_RANGE
    if not finite_number(prep.face_margin) or not low <= prep.face_margin <= high:
        raise ModelError(f"{path}: preprocessing.device.face_margin must be a number in {low}..{high}, "
                         f"got {quote(prep.face_margin)}")
    if prep.resize not in {"area", "linear"}:
        raise ModelError(f"{path}: preprocessing.device.resize must be 'area' or 'linear', got {quote(prep.resize)}")
    if prep.enlarge not in {"area", "cubic"}:
        raise ModelError(f"{path}: preprocessing.device.enlarge must be 'area' or 'cubic', got {quote(prep.enlarge)}")
    if not isinstance(prep.flip_tta, bool):
        raise ModelError(f"{path}: preprocessing.device.flip_tta must be true or false, got {quote(prep.flip_tta)}")
    if not isinstance(prep.enhance, str) or prep.enhance not in {"none", ENHANCE_NAME}:
        raise ModelError(f"{path}: preprocessing.device.enhance must be 'none' or '{ENHANCE_NAME}', "
                         f"got {quote(prep.enhance)}")
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
