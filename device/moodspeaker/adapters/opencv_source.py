"""FrameSource over OpenCV capture: a USB camera (by index) or a video file, as grayscale frames.

A camera that stops delivering raises SourceError (the vision loop backs off and reopens); a file
ends (logged, with how to loop it) or, with `loop`, starts again from its first frame. File frames are
stamped with their position in the file (continuing across loops), so a replay is deterministic and its
timing matches the file's ground truth; camera frames with the monotonic clock.
"""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from moodspeaker.core.domain import Frame
from moodspeaker.errors import SourceError

log = logging.getLogger(__name__)


class OpenCVFrameSource:
    def __init__(self, device: int | str | Path, size: tuple[int, int] | None = None, fps: float | None = None,
                 loop: bool = False) -> None:
        """`device`: a camera index (int or digits) or a video file. `size` (width, height): asked of a camera;
        frames of another size (a file, a camera that ignores the request) are resized to it. `fps`: asked of a
        camera; for a file, only the fallback frame rate for timestamps. `loop`: a file plays again from its
        start when it ends (ignored for a camera)."""
        self.is_camera = isinstance(device, int) or (isinstance(device, str) and device.isdigit())
        self.device = int(device) if self.is_camera else Path(device)
        if not self.is_camera:
            _check_video_file(Path(self.device))
        self.size = size
        self.fps = fps
        self.loop = loop and not self.is_camera
        self._cap: cv2.VideoCapture | None = None

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.device if self.is_camera else str(self.device))
        if not cap.isOpened():
            cap.release()
            what = f"camera {self.device}" if self.is_camera else f"{self.device}"
            raise SourceError(f"{what}: cannot open (unplugged, busy, or not a video OpenCV can read)")
        if self.is_camera:
            if self.size:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
        return cap

    def frames(self) -> Iterator[Frame]:
        if self._cap is None:
            self._cap = self._open()
        cap = self._cap
        # A file's frames are stamped index / its frame rate (or the asked-for fps if it declares none).
        file_fps = 0.0 if self.is_camera else (cap.get(cv2.CAP_PROP_FPS) or self.fps or 10.0)
        index = 0  # frames delivered, across loops
        in_pass = 0  # frames read in this pass through the file
        while True:
            ok, image = cap.read()
            if not ok:
                if self.is_camera:
                    self.close()
                    raise SourceError(f"camera {self.device}: stopped delivering frames (unplugged or hung)")
                if self.loop and in_pass > 0:
                    self.close()
                    cap = self._cap = self._open()  # a fresh capture: seeking back is unreliable for some codecs
                    in_pass = 0
                    continue
                why = "it has no readable frames" if in_pass == 0 else f"end of the file after {index} frames"
                hint = "" if self.loop else "; set [camera] loop = true to play it in a loop"
                log.warning("%s: video file source stopped: %s%s", self.device, why, hint)
                return
            in_pass += 1
            t = time.monotonic() if self.is_camera else index / file_fps
            yield Frame(gray=self._gray(image), t=t)
            index += 1

    def _gray(self, image: np.ndarray) -> np.ndarray:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if self.size and (gray.shape[1], gray.shape[0]) != self.size:
            gray = cv2.resize(gray, self.size, interpolation=cv2.INTER_AREA)
        return gray

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _check_video_file(path: Path) -> None:
    """A missing path and one that is not a regular file (a FIFO, a device, a folder) get different messages."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SourceError(f"{path}: no such video file") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise SourceError(f"{path}: is {kind}, not a video file; give a video file, or a camera index "
                          "(0, 1, …) for a USB camera")
