"""The small interfaces between the pure core and the adapters that touch the world.

Each adapter in `adapters/` implements one of these; tests swap in real-but-local parts
(an npz frame source, a private MPD, a fake Spotify HTTP server, gpiozero's MockFactory).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from moodspeaker.core.mood import MoodEvent


@dataclass(frozen=True)
class Frame:
    gray: np.ndarray  # (H, W) uint8, the luminance plane
    t: float  # monotonic seconds when captured


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h


class SourceError(RuntimeError):
    """The camera or video vanished or hung; the vision loop backs off and reopens."""


class FrameSource(Protocol):
    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends (a file) or fails (raises SourceError)."""
        ...

    def close(self) -> None: ...


class FaceDetector(Protocol):
    def detect(self, gray: np.ndarray) -> list[Box]:
        """Faces in a grayscale frame, largest first."""
        ...


class EmotionClassifier(Protocol):
    labels: tuple[str, ...]

    def classify(self, face: np.ndarray) -> np.ndarray:
        """Probabilities per label for one uint8 grayscale face crop."""
        ...


class MoodSink(Protocol):
    def send(self, event: MoodEvent) -> None:
        """Deliver an event; never blocks, never raises when nobody listens."""
        ...


class MoodSource(Protocol):
    def receive(self, timeout: float | None) -> MoodEvent | None:
        """Next valid event, or None on timeout. Malformed datagrams are dropped and logged."""
        ...
