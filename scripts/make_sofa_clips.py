#!/usr/bin/env python3
"""Clips of a listener on a sofa in full and in evening light, for `moodspeaker bench --truth CLIP.json`.

Each clip: 640x480 grey frames at 10 fps, lossless FFV1 .avi (OpenCV writes and reads it, so the noise in
every frame is exactly what was drawn). One room (moodspeaker_train/scenes.py), one spot on the sofa; the
sofa is empty for 3 s, then FER2013 *validation* faces (the FER+ crowd agreeing with the label, classes in
turn) each sit there for 4 s with a 1 px jitter, with 1 s of empty sofa between two faces. Every frame gets
fresh sensor noise. The kinds (the issue's table):

    full72     full light, face 72 px (about 1.5 m), noise σ2 (the control)
    lamp72     lamp-lit: the same light ×0.3, noise σ6
    full36     full light, face 36 px (about 3 m), noise σ3
    lamp48     lamp-lit and further: face 48 px, ×0.35, noise σ5

The same faces, room and spot in every kind, so kinds compare face by face. Seeded: the same arguments
write the same pixels. Clips are large (about 80 MB each): write them outside the repository.

    .venv/bin/python scripts/make_sofa_clips.py --out /tmp/sofa          # all four kinds, 16 faces
    moodspeaker bench --truth /tmp/sofa/lamp72.json --sizes 640x480 --paced-fps 0
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.mood import NO_FACE
from moodspeaker_train.scenes import VAL_NPZ, agreed_faces, paste_face, room

WIDTH, HEIGHT, FPS = 640, 480, 10
FACE_S, GAP_S, LEAD_S = 4.0, 1.0, 3.0
SIDE_LIGHT = 0.15  # a lamp or window to one side: brightness slope across the frame


@dataclass(frozen=True)
class Kind:
    name: str
    face_px: int
    light: float  # exposure relative to full light
    noise: float  # sensor noise σ, grey levels, fresh in every frame
    what: str


KINDS = {k.name: k for k in (
    Kind("full72", 72, 1.0, 2.0, "full light, face 72 px (about 1.5 m), noise σ2"),
    Kind("lamp72", 72, 0.3, 6.0, "lamp-lit ×0.3, face 72 px, noise σ6"),
    Kind("full36", 36, 1.0, 3.0, "full light, face 36 px (about 3 m), noise σ3"),
    Kind("lamp48", 48, 0.35, 5.0, "lamp-lit ×0.35, face 48 px, noise σ5"),
)}


def pick_faces(labels: np.ndarray, votes: np.ndarray, n: int, agreement: float, seed: int) -> list[int]:
    """n val indices, the seven classes in turn (a class with no faces left is skipped), FER+ agreeing."""
    rng = np.random.default_rng(seed)
    pools = {c: list(rng.permutation([i for i in agreed_faces(votes, labels, agreement) if labels[i] == c]))
             for c in range(len(EMOTIONS))}
    order = list(rng.permutation(len(EMOTIONS)))
    chosen: list[int] = []
    while len(chosen) < n and any(pools.values()):
        for c in order:
            if pools[c] and len(chosen) < n:
                chosen.append(int(pools[c].pop()))
    return chosen


def render(kind: Kind, faces: np.ndarray, out: Path, seed: int) -> dict:
    """Write `out`.avi and return its ground truth (the clip.json object)."""
    rng = np.random.default_rng([seed, 1])  # the room and spot: the same for every kind
    background = room(rng, WIDTH, HEIGHT)
    cx, cy = rng.uniform(0.35, 0.65) * WIDTH, rng.uniform(0.4, 0.55) * HEIGHT
    slope = (1 + SIDE_LIGHT * np.linspace(-1, 1, WIDTH, dtype=np.float32))[None, :]
    noise_rng = np.random.default_rng([seed, 2, int(kind.face_px), int(kind.light * 100), int(kind.noise * 10)])
    side = kind.face_px
    x0, y0 = int(cx - side / 2), int(cy - side / 2)
    video = out.with_suffix(".avi")
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), FPS, (WIDTH, HEIGHT), isColor=False)
    if not writer.isOpened():
        raise SystemExit(f"{video}: OpenCV cannot write FFV1 here")
    segments, boxes, t = [], [], 0.0

    def write(face: np.ndarray | None, seconds: float) -> None:
        nonlocal t
        for _ in range(round(seconds * FPS)):
            scene = background.copy()
            box = None
            if face is not None:
                dx, dy = (int(v) for v in noise_rng.integers(-1, 2, size=2))  # a 1 px jitter
                paste_face(scene, face, x0 + dx, y0 + dy, side)
                box = [x0 + dx, y0 + dy, side]
            lit = scene * slope * kind.light + noise_rng.normal(0, kind.noise, scene.shape).astype(np.float32)
            writer.write(np.clip(np.rint(lit), 0, 255).astype(np.uint8))
            boxes.append(box)
        t += seconds

    write(None, LEAD_S)
    segments.append({"start": 0.0, "end": LEAD_S, "mood": NO_FACE})
    for i, (face, label, index) in enumerate(faces):
        start = t
        write(face, FACE_S)
        segments.append({"start": round(start, 3), "end": round(t, 3), "mood": EMOTIONS[label], "val_index": index})
        if i + 1 < len(faces):
            write(None, GAP_S)
            segments.append({"start": round(t - GAP_S, 3), "end": round(t, 3), "mood": NO_FACE})
    writer.release()
    return {"video": video.name, "fps": FPS, "width": WIDTH, "height": HEIGHT, "frames": len(boxes),
            "kind": kind.name, "what": kind.what, "segments": segments, "face_boxes": boxes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory for KIND.avi and KIND.json")
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--faces", type=int, default=16)
    parser.add_argument("--agreement", type=float, default=0.8, help="minimum FER+ vote share for the FER2013 label")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--val", type=Path, default=VAL_NPZ, help="FER2013 val.npz with FER+ votes")
    args = parser.parse_args(argv)
    data = np.load(args.val)
    images, labels, votes = data["images"], data["labels"], data["ferplus_votes"]
    chosen = pick_faces(labels, votes, args.faces, args.agreement, args.seed)
    faces = [(images[i], int(labels[i]), i) for i in chosen]
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.kinds:
        truth = render(KINDS[name], faces, args.out / name, args.seed)
        truth["seed"] = args.seed
        truth["source"] = (f"FER2013 PublicTest (val.npz) faces by scripts/make_sofa_clips.py --seed {args.seed} "
                           f"--faces {args.faces} --agreement {args.agreement}")
        (args.out / f"{name}.json").write_text(json.dumps(truth))
        print(f"{args.out / truth['video']}: {truth['frames']} frames, {truth['what']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
