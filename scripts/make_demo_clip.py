#!/usr/bin/env python3
"""Generate the demo clip (device/moodspeaker/dev/clip/clip.mp4) and its ground truth (clip.json beside it).

640x480 grey frames at 10 fps: FER2013 validation faces composited into synthetic rooms (moodspeaker_train/scenes.py), one
face per segment held for a few seconds with a slow sway, plus stretches with nobody in view. Faces are
picked without looking at any emotion model: the FER+ crowd must agree with the FER2013 label
(`--agreement`), and the Haar detector must find the face in nearly every frame at 640x480 and 320x240.

    .venv/bin/python scripts/make_demo_clip.py            # rewrites device/moodspeaker/dev/clip/clip.{mp4,json}
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from moodspeaker.adapters.haar_detector import HaarFaceDetector
from moodspeaker.config import DetectorConfig
from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.mood import NO_FACE
from moodspeaker_train.scenes import VAL_NPZ, Lighting, agreed_faces, composite, room

OUT_DIR = Path(__file__).resolve().parents[1] / "device" / "moodspeaker" / "dev" / "clip"  # package data
WIDTH, HEIGHT, FPS = 640, 480, 10
# (mood, seconds): a no-face stretch longer than the smoother's decay time, so no_face shows up as a mood.
SCRIPT = [(NO_FACE, 3), ("happy", 5), ("neutral", 5), ("surprise", 5), ("sad", 5), ("angry", 5), (NO_FACE, 8),
          ("fear", 5), ("happy", 5)]
MIN_DETECTED = 0.95  # fraction of a segment's frames in which Haar must find the face, at both sizes


def segment_frames(rng: np.random.Generator, face: np.ndarray | None, n: int) -> tuple[list[np.ndarray], list[list[int] | None]]:
    """n frames of one scene and lighting; the face (if any) sways and breathes a little around a spot."""
    background, lighting = room(rng, WIDTH, HEIGHT), Lighting.random(rng)
    side0 = rng.uniform(0.24, 0.40) * HEIGHT
    cx, cy = rng.uniform(0.3, 0.7) * WIDTH, rng.uniform(0.4, 0.6) * HEIGHT
    phase, drift = rng.uniform(0, 2 * math.pi), rng.uniform(-1.5, 1.5, size=2)
    frames, boxes = [], []
    for i in range(n):
        if face is None:
            frames.append(composite(None, background, lighting, rng))
            boxes.append(None)
            continue
        t = i / FPS
        side = int(side0 * (1 + 0.03 * math.sin(0.9 * t + phase)))
        x = int(cx + drift[0] * t + 0.03 * WIDTH * math.sin(0.7 * t + phase) - side / 2)
        y = int(cy + drift[1] * t + 0.015 * HEIGHT * math.sin(1.1 * t) - side / 2)
        x, y = min(max(x, 0), WIDTH - side), min(max(y, 0), HEIGHT - side)
        frames.append(composite(face, background, lighting, rng, x, y, side))
        boxes.append([x, y, side])
    return frames, boxes


def found_fraction(detector: HaarFaceDetector, frames: list[np.ndarray], boxes: list[list[int] | None], scale: float) -> float:
    """Fraction of frames whose largest detection is centred on the pasted face (after resizing by `scale`)."""
    hits = 0
    for frame, (x, y, side) in zip(frames, boxes, strict=True):
        if scale != 1:
            frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        found = detector.detect(frame)
        if found:
            b = found[0]
            centre_off = max(abs(b.x + b.w / 2 - scale * (x + side / 2)), abs(b.y + b.h / 2 - scale * (y + side / 2)))
            hits += centre_off < scale * side / 4
    return hits / len(frames)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--agreement", type=float, default=0.8, help="minimum FER+ vote share for the FER2013 label")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()

    data = np.load(VAL_NPZ)
    images, labels, votes, ids = data["images"], data["labels"], data["ferplus_votes"], data["ids"]
    rng = np.random.default_rng(args.seed)
    candidates = rng.permutation(agreed_faces(votes, labels, args.agreement))
    detector = HaarFaceDetector(DetectorConfig(track=False))
    used: set[int] = set()
    all_frames, all_boxes, segments = [], [], []
    t = 0.0
    for mood, seconds in SCRIPT:
        n = seconds * FPS
        chosen = None
        if mood == NO_FACE:
            frames, boxes = segment_frames(rng, None, n)
            while any(detector.detect(f) for f in frames[::5]):  # a room that looks like a face: draw another
                frames, boxes = segment_frames(rng, None, n)
        else:
            for index in (int(i) for i in candidates if labels[i] == EMOTIONS.index(mood) and i not in used):
                frames, boxes = segment_frames(rng, images[index], n)
                if min(found_fraction(detector, frames, boxes, s) for s in (1.0, 0.5)) >= MIN_DETECTED:
                    chosen = index
                    break
            if chosen is None:
                print(f"no {mood} face with agreement >= {args.agreement} that Haar finds; lower --agreement", file=sys.stderr)
                return 1
            used.add(chosen)
        segment = {"start": round(t, 3), "end": round(t + seconds, 3), "mood": mood}
        if chosen is not None:
            share = votes[chosen].max() / max(votes[chosen].sum(), 1)
            segment |= {"val_index": chosen, "val_id": str(ids[chosen]), "ferplus_agreement": round(float(share), 2)}
        segments.append(segment)
        all_frames += frames
        all_boxes += boxes
        t += seconds

    args.out.mkdir(parents=True, exist_ok=True)
    video = args.out / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for frame in all_frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    truth = {"video": video.name, "fps": FPS, "width": WIDTH, "height": HEIGHT, "frames": len(all_frames),
             "source": "FER2013 PublicTest (val.npz) faces composited by scripts/make_demo_clip.py "
                       f"--seed {args.seed} --agreement {args.agreement}",
             "segments": segments}
    # Readable segments; the per-frame pasted face [x, y, side] (null: no face) one frame per line.
    boxes = ",\n  ".join(json.dumps(b) for b in all_boxes)
    (args.out / "clip.json").write_text(json.dumps(truth, indent=1)[:-2] + f',\n "face_boxes": [\n  {boxes}\n ]\n}}\n')
    print(f"{video}: {len(all_frames)} frames, {video.stat().st_size / 1e6:.2f} MB; segments: "
          + ", ".join(f"{s['mood']} {s['start']:g}-{s['end']:g}s" for s in segments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
