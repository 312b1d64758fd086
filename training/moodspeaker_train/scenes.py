"""Synthetic camera frames: FER2013 validation faces composited into procedurally drawn rooms.

Shared by the living-room benchmark, the demo-clip generator, the full-frame test fixture and the
face-margin tuning, so all of them see the same kind of frame: a wall with furniture-like shapes and
texture, a face resized to a realistic size at speaker distance and blended in with a soft edge, then
lighting (overall level, contrast and a side-light gradient over the whole scene, face included) and
sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from moodspeaker_train.data import DEFAULT_DATA

VAL_NPZ = DEFAULT_DATA / "val.npz"
# FER+ vote columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF.
FERPLUS_COLUMN_OF_FER_LABEL = (4, 5, 6, 1, 3, 2, 0)  # FER2013 label index -> FER+ column


@dataclass(frozen=True)
class Lighting:
    gain: float  # contrast multiplier around mid-grey
    offset: float  # added grey level
    side: float  # left-to-right illumination slope, fraction of brightness across the frame
    noise: float  # sensor noise standard deviation, grey levels

    @classmethod
    def random(cls, rng: np.random.Generator) -> Lighting:
        return cls(gain=float(rng.uniform(0.6, 1.15)), offset=float(rng.uniform(-45, 25)),
                   side=float(rng.uniform(-0.35, 0.35)), noise=float(rng.uniform(1.5, 4.0)))


def agreed_faces(votes: np.ndarray, labels: np.ndarray, min_agreement: float) -> np.ndarray:
    """Indices of faces whose FER+ crowd votes agree with the FER2013 label at least `min_agreement`."""
    columns = np.array(FERPLUS_COLUMN_OF_FER_LABEL)[labels]
    total = votes.sum(axis=1).astype(np.float64)
    agree = votes[np.arange(len(labels)), columns] / np.maximum(total, 1)
    return np.flatnonzero((total > 0) & (agree >= min_agreement))


def room(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A float32 grey 'room': graded wall, a few rectangles (door, shelf, picture, window), soft texture."""
    top, bottom = rng.uniform(60, 200, size=2)
    wall = np.linspace(top, bottom, height, dtype=np.float32)[:, None].repeat(width, axis=1)
    for _ in range(rng.integers(2, 6)):
        w, h = int(rng.integers(width // 10, width // 2)), int(rng.integers(height // 8, height // 1.5))
        x, y = int(rng.integers(-w // 2, width - w // 2)), int(rng.integers(-h // 4, height - h // 2))
        wall[max(y, 0):y + h, max(x, 0):x + w] = rng.uniform(20, 235)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 3)
    return wall + texture * rng.uniform(4, 12)


def paste_face(scene: np.ndarray, face: np.ndarray, x: int, y: int, side: int) -> None:
    """Blend the face, resized to side×side, into `scene` (float32, in place) with a soft square edge.

    Enlarged with cubic interpolation, shrunk with area averaging (as optics and the ISP shrink a distant face)."""
    shrink = side < face.shape[0]
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC).astype(np.float32)
    ramp = np.clip(np.minimum(np.arange(side), np.arange(side)[::-1]) / (0.08 * side), 0, 1).astype(np.float32)
    alpha = np.minimum(ramp[:, None], ramp[None, :])
    region = scene[y:y + side, x:x + side]
    region[:] = alpha * big + (1 - alpha) * region


def light(scene: np.ndarray, lighting: Lighting, rng: np.random.Generator) -> np.ndarray:
    """Apply lighting and noise to a float scene; returns the uint8 frame."""
    width = scene.shape[1]
    side = 1 + lighting.side * np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    lit = ((scene - 128) * lighting.gain + 128 + lighting.offset) * side
    lit += rng.normal(0, lighting.noise, scene.shape).astype(np.float32)
    return np.clip(lit, 0, 255).astype(np.uint8)


def composite(face: np.ndarray | None, background: np.ndarray, lighting: Lighting, rng: np.random.Generator,
              x: int = 0, y: int = 0, side: int = 0) -> np.ndarray:
    """One uint8 frame: `background` (float, not modified) with `face` pasted at (x, y) side×side, lit."""
    scene = background.copy()
    if face is not None:
        paste_face(scene, face, x, y, side)
    return light(scene, lighting, rng)


def random_placement(rng: np.random.Generator, width: int, height: int, side_range: tuple[float, float]) -> tuple[int, int, int]:
    """(x, y, side) for a face whose side is a fraction of the frame height in `side_range`, fully inside."""
    side = int(rng.uniform(*side_range) * height)
    return int(rng.integers(0, width - side)), int(rng.integers(0, height - side)), side
