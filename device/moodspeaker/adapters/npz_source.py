"""FrameSource over stored frames: an npz `images` array (N,H,W) uint8 or a folder of image files.

For tests and offline runs. Timestamps are synthetic: frame i is at `start + i / fps`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from moodspeaker.core.domain import Frame
from moodspeaker.errors import SourceError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff")


class StoredFrameSource:
    def __init__(self, path: Path, fps: float = 10.0, start: float = 0.0) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = fps
        self.start = start
        if self.path.is_dir():
            self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._files:
                raise SourceError(f"{self.path}: no image files ({', '.join(IMAGE_SUFFIXES)})")
            self._images: np.ndarray | None = None
        elif self.path.is_file():
            self._images = _load_npz_images(self.path)
        else:
            raise SourceError(f"{self.path}: no such npz file or folder of images")

    def __len__(self) -> int:
        return len(self._images) if self._images is not None else len(self._files)

    def _gray(self, i: int) -> np.ndarray:
        if self._images is not None:
            return self._images[i]
        image = cv2.imread(str(self._files[i]), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise SourceError(f"{self._files[i]}: cannot read this image (gone or not an image)")
        return image

    def frames(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield Frame(gray=self._gray(i), t=self.start + i / self.fps)

    def close(self) -> None:
        self._images = None
        self._files = []


def _load_npz_images(path: Path) -> np.ndarray:
    try:
        with np.load(path) as data:
            images = data["images"]
    except KeyError:
        raise SourceError(f"{path}: no `images` array; need images (N,H,W) uint8") from None
    except Exception as exc:
        raise SourceError(f"{path}: not a readable npz file ({exc})") from None
    if images.ndim != 3 or images.dtype != np.uint8:
        raise SourceError(f"{path}: need images (N,H,W) uint8, got {images.dtype} {images.shape}")
    return images
