"""A model is proven in a child process before this process loads it.

A model file can match its card's SHA-256 and still crash the interpreter: one corrupt quantisation scale makes
LiteRT's XNNPACK delegate abort ("double free or corruption") while it allocates tensors. In-process, that kills
`model install` or the vision daemon. So the model is first loaded and run on its golden faces (without them, on a
few synthetic crops) in a child Python (`python -m moodspeaker.model_proof`); only a model that ran there is
loaded here, and only the very bytes that ran (the SHA-256 the child reports). A crash, a hang or an error in the
child is a ModelError that says which.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import moodspeaker
from moodspeaker.errors import ModelError, MoodspeakerError
from moodspeaker.model_card import ModelCard, card_path_for, load_card, require_model_file

if TYPE_CHECKING:
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier

PROOF_TIMEOUT_S = 120.0  # a Pi loads LiteRT and runs a few hundred faces in a few seconds
_proven: set[str] = set()  # SHA-256s of models that ran in a child during this process's life


@dataclass(frozen=True)
class Proof:
    sha256: str  # of the bytes the child loaded and ran
    n: int  # faces run
    accuracy: float | None  # on the golden faces; None when it ran on synthetic crops


def prove(model: Path, card: Path, golden: Path | None, timeout: float = PROOF_TIMEOUT_S) -> Proof:
    """Load and run `model` in a child process; raise ModelError if it crashes, hangs or is refused there."""
    cmd = [sys.executable, "-m", "moodspeaker.model_proof", str(model), str(card), *([str(golden)] if golden else [])]
    package_root = str(Path(moodspeaker.__file__).resolve().parents[1])  # the child runs this very code
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH"))))}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise ModelError(f"{model}: the model did not load and run within {timeout:g} s in a test process; "
                         "refused") from None
    except OSError as exc:
        raise ModelError(f"{model}: cannot start a process to test the model ({exc.strerror}); refused") from None
    if out.returncode < 0:
        try:
            name = signal.Signals(-out.returncode).name
        except ValueError:
            name = f"signal {-out.returncode}"
        said = out.stderr.strip().splitlines()[-1:]
        raise ModelError(f"{model}: the model crashed the interpreter ({name}{': ' + said[0] if said else ''}) "
                         "when a test process loaded it and ran it on the golden faces; refused: the file is "
                         "corrupt even though its card's SHA-256 matches, copy both files again from the training "
                         "machine")
    lines = out.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
        if out.returncode == 0:
            return Proof(sha256=answer["sha256"], n=answer["n"], accuracy=answer["accuracy"])
        error = answer["error"]
    except (IndexError, ValueError, KeyError, TypeError):
        said = out.stderr.strip().splitlines()[-1:]
        raise ModelError(f"{model}: the process testing the model failed (exit status {out.returncode}"
                         f"{': ' + said[0] if said else ''}); refused") from None
    raise ModelError(error)


def golden_beside(card: ModelCard, card_path: Path) -> Path | None:
    """The golden-faces file the card names, if it lies beside the card."""
    raw = card.raw.get("golden")
    name = raw.get("file") if isinstance(raw, dict) else None
    if not isinstance(name, str) or not name or name in (".", "..") or Path(name).name != name:
        return None
    path = card_path.parent / name
    return path if path.is_file() else None


def load_proven(model: Path, num_threads: int = 1) -> LiteRTClassifier:
    """The classifier for `model` (its card beside it), proven in a child first unless it already was (same
    SHA-256) during this process's life. Raises ModelError."""
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier

    require_model_file(model)  # named before its card, which is usually missing with it
    card_path = card_path_for(model)
    card = load_card(card_path)
    sha = card.sha256
    if sha not in _proven:
        sha = prove(model, card_path, golden_beside(card, card_path)).sha256
        _proven.add(sha)
    return LiteRTClassifier(model, card_path, num_threads=num_threads, proven_sha256=sha)


def read_golden(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images, FER2013 labels) of a golden-faces .npz; ModelError if it is not one."""
    try:
        with np.load(path) as data:
            images, labels = data["images"], data["labels"].astype(np.int64)
    except (KeyError, ValueError, OSError, EOFError) as exc:
        raise ModelError(f"{path}: not a golden-faces file with images and labels ({exc})") from None
    if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise ModelError(f"{path}: golden faces must be uint8 images (N, H, W) with N labels, got "
                         f"{images.dtype} {images.shape} and {labels.shape} labels")
    return images, labels


def _synthetic_faces(size: int) -> np.ndarray:
    """Crops that exercise every path of the model without a face: black, white, a gradient, noise."""
    ramp = np.linspace(0, 255, size * size).reshape(size, size)
    noise = np.random.default_rng(0).integers(0, 256, (4, size, size))
    return np.stack([np.zeros((size, size)), np.full((size, size), 255), ramp, ramp.T, *noise]).astype(np.uint8)


def _run_here(model: Path, card: Path, golden: Path | None) -> Proof:
    """In the child: load the model as the device does and run it on every face."""
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier
    from moodspeaker.evaluation import evaluate_crops

    classifier = LiteRTClassifier(model, card)
    sha = classifier.card.sha256  # checked against the bytes the interpreter loaded
    if golden is None:
        faces = _synthetic_faces(classifier.input_size)
        for face in faces:
            classifier.classify(face)
        return Proof(sha256=sha, n=len(faces), accuracy=None)
    images, labels = read_golden(golden)
    accuracy = evaluate_crops(classifier.classify, classifier.labels, images, labels)["accuracy"]
    return Proof(sha256=sha, n=len(images), accuracy=accuracy)


def _main(argv: list[str]) -> int:
    model, card, golden = Path(argv[0]), Path(argv[1]), (Path(argv[2]) if len(argv) > 2 else None)
    try:
        proof = _run_here(model, card, golden)
    except MoodspeakerError as exc:
        print(json.dumps({"error": str(exc)}))
        return 3
    print(json.dumps({"sha256": proof.sha256, "n": proof.n, "accuracy": proof.accuracy}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
