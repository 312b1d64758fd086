"""Run inside a venv with moodspeaker installed (x86 or emulated arm64): the raw int8 outputs and predictions of the
installed model on face crops, the Haar boxes on given frames, and the moods the demo clip produces.

    python arm64_probe.py MODEL FACES.npz FRAMES.npz CLIP.mp4 > out.json
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np

from moodspeaker.adapters.haar_detector import HaarFaceDetector
from moodspeaker.adapters.litert_classifier import LiteRTClassifier
from moodspeaker.adapters.opencv_source import OpenCVFrameSource
from moodspeaker.app.vision import VisionPipeline
from moodspeaker.config import DetectorConfig
from moodspeaker.core.smoother import Smoother, SmootherParams


class _Moods:
    def __init__(self) -> None:
        self.events: list[str] = []

    def send(self, event) -> None:
        self.events.append(event.mood)

    def close(self) -> None:
        pass


def main() -> None:
    model, faces, frames, clip = map(Path, sys.argv[1:5])
    clf = LiteRTClassifier(model)
    with np.load(faces) as d:
        images = d["images"]
    raw = []
    for face in images:
        clf.logits(clf.prepare(face))
        raw.append(clf._interp.get_tensor(clf._out_index)[0].astype(int).tolist())  # the int8 output, unscaled
    detector = HaarFaceDetector(DetectorConfig(track=False))
    with np.load(frames) as d:
        boxes = [[[b.x, b.y, b.w, b.h] for b in detector.detect(f)] for f in d["images"]]
    sink = _Moods()
    pipeline = VisionPipeline(HaarFaceDetector(), clf, Smoother(clf.labels, SmootherParams()), sink,
                              face_margin=clf.card.preprocessing.face_margin)
    for frame in OpenCVFrameSource(clip, size=(320, 240)).frames():
        pipeline.process(frame, 5.0)
    print(json.dumps({"machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__,
                      "int8": raw, "pred": [int(np.argmax(r)) for r in raw], "boxes": boxes, "moods": sink.events}))


if __name__ == "__main__":
    main()
