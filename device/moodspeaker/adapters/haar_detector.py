"""FaceDetector on OpenCV's Haar cascade (the frontal-face XML shipped in the package's data/), on the grayscale frame.

Sizes are relative to the frame, so one setting works at any capture size, and each scan runs on a copy
shrunk until the smallest face wanted is 36 px, so a larger frame costs little more. With tracking on, the
detector first searches a margin around the last face at nearby scales (a fraction of a full scan's
cost) and falls back to the full frame on a miss and every `full_every` frames, so a second, larger
face entering the scene is found within that many frames.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from moodspeaker.config import DetectorConfig
from moodspeaker.core.domain import Box
from moodspeaker.errors import SetupError

CASCADE_NAME = "haarcascade_frontalface_default.xml"
SCAN_MIN_FACE_PX = 36  # the smallest face wanted is scanned at this size (the cascade window is 24 px; 36 holds recall)
TRACK_SCALE_RANGE = 1.5  # the tracked search looks for faces between 1/1.5 and 1.5 times the last one


class DetectorError(SetupError):
    """The cascade file is missing or unreadable; the message says where it was looked for."""


def default_cascade() -> Path:
    """The cascade is part of the program, not of a model version: package data, found from this file."""
    return Path(__file__).resolve().parents[1] / "data" / CASCADE_NAME


class HaarFaceDetector:
    def __init__(self, config: DetectorConfig | None = None, cascade: Path | None = None) -> None:
        """`config`: the [detector] section (validated there); `cascade`: the XML, default the package's."""
        self.config = config or DetectorConfig()
        self.cascade_path = Path(cascade) if cascade else default_cascade()
        if not self.cascade_path.is_file():
            raise DetectorError(f"{self.cascade_path}: Haar cascade not found; it ships with the moodspeaker package "
                                f"(moodspeaker/data/{CASCADE_NAME}): reinstall moodspeaker")
        try:
            self._cascade = cv2.CascadeClassifier(str(self.cascade_path))
        except (cv2.error, SystemError):  # OpenCV raises on some malformed files, returns an empty one on others
            self._cascade = cv2.CascadeClassifier()
        if self._cascade.empty():
            raise DetectorError(f"{self.cascade_path}: not a readable Haar cascade XML")
        self._last: Box | None = None
        self._since_full = 0

    def detect(self, gray: np.ndarray) -> list[Box]:
        """Faces in a grayscale frame, largest first."""
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError(f"expected a 2-D uint8 grayscale frame, got {gray.dtype} {gray.shape}")
        cfg = self.config
        if cfg.track and self._last is not None and self._since_full < cfg.full_every:
            self._since_full += 1
            faces = self._around(gray, self._last)
            if faces:
                self._last = faces[0]
                return faces
        self._since_full = 0
        short = min(gray.shape)
        faces = self._scan(gray, round(short * cfg.min_size), round(short * cfg.max_size))
        self._last = faces[0] if faces else None
        return faces

    def _around(self, gray: np.ndarray, last: Box) -> list[Box]:
        pad_x, pad_y = round(last.w * self.config.track_margin), round(last.h * self.config.track_margin)
        x0, y0 = max(last.x - pad_x, 0), max(last.y - pad_y, 0)
        x1, y1 = min(last.x + last.w + pad_x, gray.shape[1]), min(last.y + last.h + pad_y, gray.shape[0])
        side = max(last.w, last.h)
        faces = self._scan(gray[y0:y1, x0:x1], round(side / TRACK_SCALE_RANGE), round(side * TRACK_SCALE_RANGE))
        return [Box(b.x + x0, b.y + y0, b.w, b.h) for b in faces]

    def _scan(self, gray: np.ndarray, min_side: int, max_side: int) -> list[Box]:
        """Faces between min_side and max_side px, found on a copy shrunk so the smallest is SCAN_MIN_FACE_PX:
        the cost then depends on the face sizes wanted, not on the frame's resolution."""
        shrink = min(1.0, SCAN_MIN_FACE_PX / max(min_side, 1))
        if shrink < 1.0:
            gray = cv2.resize(gray, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        lo, hi = max(round(min_side * shrink), 1), max(round(max_side * shrink), 1)
        found = self._cascade.detectMultiScale(gray, scaleFactor=self.config.scale_factor, minNeighbors=self.config.min_neighbors,
                                               minSize=(lo, lo), maxSize=(hi, hi))
        boxes = [Box(*(round(v / shrink) for v in (x, y, w, h))) for x, y, w, h in found]
        return sorted(boxes, key=lambda b: b.area, reverse=True)
