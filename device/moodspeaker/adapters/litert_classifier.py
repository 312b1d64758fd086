"""EmotionClassifier on the LiteRT interpreter, running the full-integer int8 model.

Reads input/output scale and zero-point from the model itself and labels and preprocessing from
its card, after checking that the card matches the file. The file is read once and the interpreter loads those
bytes, so what was checked is what runs. A model that matches its card can still crash the interpreter; code that
must survive that loads through `model_proof.load_proven`, which runs the model in a child process first.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from moodspeaker.core.enhance import ENHANCE_NAME, enhance_crop
from moodspeaker.core.face_crop import enlarge_cubic
from moodspeaker.errors import FrameError, ModelError, library_reason
from moodspeaker.model_card import ModelCard, card_path_for, load_card, require_model_file, verify_model_bytes

# The exact variants: INTER_LINEAR differs by up to 2 grey levels between ARM and x86; these give the same pixels.
_INTERP = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR_EXACT}


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


class LiteRTClassifier:
    """Face crop (uint8 grayscale, any size) -> probabilities per label, in `labels` order."""

    def __init__(self, model: Path, card: Path | None = None, num_threads: int = 1,
                 proven_sha256: str | None = None) -> None:
        """`proven_sha256`: load only the model with this SHA-256 (the one a child process ran, see model_proof)."""
        from ai_edge_litert.interpreter import Interpreter

        self.model_path = Path(model)
        require_model_file(self.model_path)
        self.card: ModelCard = load_card(Path(card) if card else card_path_for(self.model_path))
        try:
            content = self.model_path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{self.model_path}: cannot read the model ({exc.strerror})") from None
        verify_model_bytes(self.model_path, content, self.card)
        if proven_sha256 is not None and self.card.sha256 != proven_sha256:
            raise ModelError(f"{self.model_path}: the model changed after it was tested; load it again")
        try:
            self._interp = Interpreter(model_content=content, num_threads=num_threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.model_path}: LiteRT cannot load this model ({exc})") from None
        self._check_tensors()
        inp, out = self._interp.get_input_details()[0], self._interp.get_output_details()[0]
        self._in_index, self._out_index = inp["index"], out["index"]
        self._in_scale, self._in_zero = inp["quantization"]
        self._out_scale, self._out_zero = out["quantization"]
        size = self.card.input_size
        self._buffer = np.empty((1, size, size, 1), np.int8)
        # uint8 pixel -> int8 input as a 256-entry lookup table: exact, and one numpy take per face.
        levels = np.round(np.arange(256) / self._in_scale + self._in_zero)
        self._lut = np.clip(levels, -128, 127).astype(np.int8)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.card.labels

    @property
    def input_size(self) -> int:
        return self.card.input_size

    def _check_tensors(self) -> None:
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        size, n = self.card.input_size, len(self.card.labels)
        where = f"{self.model_path}"
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{where}: expected one input and one output tensor")
        inp, out = inputs[0], outputs[0]
        if list(inp["shape"]) != [1, size, size, 1]:
            raise ModelError(f"{where}: input shape {inp['shape'].tolist()} does not match the card's [1, {size}, {size}, 1]")
        if inp["dtype"] != np.int8 or out["dtype"] != np.int8:
            raise ModelError(f"{where}: not a full-integer int8 model (input {inp['dtype'].__name__}, "
                             f"output {out['dtype'].__name__}); export with `moodspeaker-train export`")
        if list(out["shape"]) != [1, n]:
            raise ModelError(f"{where}: output shape {out['shape'].tolist()} does not match the card's {n} labels")
        if inp["quantization"][0] == 0 or out["quantization"][0] == 0:
            raise ModelError(f"{where}: input/output tensors carry no quantisation parameters")

    def resize(self, face: np.ndarray) -> np.ndarray:
        """A grayscale crop at the model's input size: resized the card's `resize` way, or, smaller than the
        input (a distant face), enlarged the card's `enlarge` way."""
        size = self.card.input_size
        prep = self.card.preprocessing
        if face.shape[0] < size and face.shape[1] < size and prep.enlarge == "cubic":
            return enlarge_cubic(face, size)
        if face.shape != (size, size):
            try:
                return cv2.resize(face, (size, size), interpolation=_INTERP[prep.resize])
            except cv2.error as exc:
                raise FrameError(f"classifier: OpenCV cannot resize a {face.shape} crop ({library_reason(exc)})") from None
        return face

    def prepare(self, face: np.ndarray) -> np.ndarray:
        """`resize`, enhance if the card says so (a dark or noisy crop: core.enhance), and quantise (int8, model
        layout)."""
        face = self.resize(face)
        if self.card.preprocessing.enhance == ENHANCE_NAME:
            face = enhance_crop(face)
        return self._lut[face]

    def logits(self, prepared: np.ndarray) -> np.ndarray:
        self._buffer[0, :, :, 0] = prepared
        try:
            self._interp.set_tensor(self._in_index, self._buffer)
            self._interp.invoke()
            q = self._interp.get_tensor(self._out_index)[0].astype(np.float32)
        except (ValueError, RuntimeError) as exc:
            raise FrameError(f"classifier: LiteRT failed on a crop ({library_reason(exc)})") from None
        return (q - self._out_zero) * self._out_scale

    def classify(self, face: np.ndarray) -> np.ndarray:
        """Probabilities per label for one uint8 grayscale face crop."""
        if face.ndim != 2 or face.dtype != np.uint8:
            raise ValueError(f"expected a 2-D uint8 grayscale crop, got {face.dtype} {face.shape}")
        return self.classify_prepared(self.prepare(face))

    def classify_prepared(self, prepared: np.ndarray) -> np.ndarray:
        """Probabilities per label for a crop already through `prepare` (for timing the two stages apart)."""
        logits = self.logits(prepared)
        if self.card.preprocessing.flip_tta:
            logits = (logits + self.logits(prepared[:, ::-1])) / 2
        return _softmax(logits)
