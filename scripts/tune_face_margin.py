#!/usr/bin/env python3
"""Tune the face crop's margin (model card preprocessing.device.face_margin) on validation faces in frames.

Composites FER2013 validation faces into synthetic rooms (moodspeaker_train/scenes.py) at the device's default capture size,
finds them with the device's Haar detector, and classifies the crop at each candidate margin with the
model (with and without flip averaging). Prints one JSON object: accuracy per margin on the detected faces.
Only validation data is used.

    nice -n 19 .venv/bin/python scripts/tune_face_margin.py --n 1000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from moodspeaker.adapters.haar_detector import HaarFaceDetector
from moodspeaker.adapters.litert_classifier import LiteRTClassifier
from moodspeaker.config import CameraConfig, DetectorConfig
from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.face_crop import crop_face
from moodspeaker.paths import default_model
from moodspeaker_train.scenes import VAL_NPZ, Lighting, composite, random_placement, room

MARGINS = tuple(round(float(m), 3) + 0.0 for m in np.arange(-0.1, 0.301, 0.025))  # + 0.0: no "-0.0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--n", type=int, default=1000, help="validation faces to composite")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    camera = CameraConfig()
    width, height = camera.width, camera.height
    data = np.load(VAL_NPZ)
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(data["labels"]), size=min(args.n, len(data["labels"])), replace=False)
    classifier = LiteRTClassifier(args.model)
    to_fer = np.array([EMOTIONS.index(lab) for lab in classifier.labels])
    detector = HaarFaceDetector(DetectorConfig(track=False))
    correct = {m: np.zeros(2, np.int64) for m in MARGINS}  # [plain, flip-averaged]
    detected = 0
    for index in pick:
        x, y, side = random_placement(rng, width, height, (0.3, 0.6))
        frame = composite(data["images"][index], room(rng, width, height), Lighting.random(rng), rng, x, y, side)
        found = detector.detect(frame)
        if not found:
            continue
        detected += 1
        label = int(data["labels"][index])
        for margin in MARGINS:
            prepared = classifier.prepare(np.ascontiguousarray(crop_face(frame, found[0], margin)))
            logits = classifier.logits(prepared)
            flipped = logits + classifier.logits(prepared[:, ::-1])
            correct[margin] += [to_fer[int(np.argmax(logits))] == label, to_fer[int(np.argmax(flipped))] == label]
    best = max(MARGINS, key=lambda m: correct[m][0])
    result = {"model": args.model.name, "frames": len(pick), "detected": detected, "size": f"{width}x{height}",
              "accuracy_on_detected": {str(m): round(float(c[0]) / max(detected, 1), 4) for m, c in correct.items()},
              "accuracy_on_detected_flip": {str(m): round(float(c[1]) / max(detected, 1), 4) for m, c in correct.items()},
              "best_margin": best}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
