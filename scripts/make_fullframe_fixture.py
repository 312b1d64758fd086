#!/usr/bin/env python3
"""Generate tests/fixtures/fullframe_tiny.npz: a few whole frames for `moodspeaker eval --fullframe` tests.

320x240 frames in the eval layout (`images` (N,H,W) uint8, `labels` FER2013 order) plus `boxes` (N,4): the
pasted face as x, y, w, h, or -1s for the frames with nobody in them (their label is still counted: a frame
with no face found is a wrong answer). Faces are FER2013 validation faces the FER+ crowd agrees with and
that the Haar detector finds; no emotion model is consulted.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from moodspeaker.adapters.haar_detector import HaarFaceDetector
from moodspeaker.config import DetectorConfig
from moodspeaker_train.scenes import VAL_NPZ, Lighting, agreed_faces, composite, random_placement, room

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "fullframe_tiny.npz"
WIDTH, HEIGHT = 320, 240
PER_CLASS = (2, 1, 2, 2, 2, 2, 2)  # FER2013 order; disgust is rare among agreed faces
EMPTY_FRAMES = 2


def quiet(rng: np.random.Generator) -> Lighting:
    """Random lighting without sensor noise, which would make the committed file ten times larger."""
    return dataclasses.replace(Lighting.random(rng), noise=0.0)


def main() -> int:
    data = np.load(VAL_NPZ)
    images, labels, votes = data["images"], data["labels"], data["ferplus_votes"]
    rng = np.random.default_rng(7)
    candidates = rng.permutation(agreed_faces(votes, labels, 0.6))
    detector = HaarFaceDetector(DetectorConfig(track=False))
    frames, frame_labels, boxes = [], [], []
    for label, count in enumerate(PER_CLASS):
        for index in candidates[labels[candidates] == label]:
            x, y, side = random_placement(rng, WIDTH, HEIGHT, (0.3, 0.55))
            frame = composite(images[index], room(rng, WIDTH, HEIGHT), quiet(rng), rng, x, y, side)
            found = detector.detect(frame)
            if found and abs(found[0].x + found[0].w / 2 - x - side / 2) < side / 4:
                frames.append(frame)
                frame_labels.append(label)
                boxes.append((x, y, side, side))
                if frame_labels.count(label) == count:
                    break
    for _ in range(EMPTY_FRAMES):
        frame = composite(None, room(rng, WIDTH, HEIGHT), quiet(rng), rng)
        if detector.detect(frame):
            print("an empty room fooled the detector; try another seed", file=sys.stderr)
            return 1
        frames.append(frame)
        frame_labels.append(6)
        boxes.append((-1, -1, -1, -1))
    np.savez_compressed(OUT, images=np.stack(frames), labels=np.array(frame_labels, np.uint8),
                        boxes=np.array(boxes, np.int32))
    print(f"{OUT}: {len(frames)} frames, {OUT.stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
