"""FrameSource on the Raspberry Pi camera through picamera2 (libcamera).

The ISP scales the sensor image down to a small lores YUV420 stream at the configured size and frame
rate; its Y plane is the grayscale frame, so the CPU does no resizing or colour conversion. One camera
instance stays open across frames. "Camera busy", a capture that hangs past `capture_timeout` and a
camera that vanishes all raise SourceError after closing the camera, so the vision loop can back off
and open it again. picamera2 exists only on the Pi: it is imported when the camera is opened.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from moodspeaker.core.domain import Frame
from moodspeaker.errors import SourceError

# The main stream must exist and be at least as large as lores; keep it small, we never read it. The lores
# stream defaults to 640x480 (CameraConfig): the detector finds faces down to 24 px, so 480 lines see a
# listener on the sofa (36 px at 3.2 m with a Camera Module 3), where 240 lines lose them beyond ~2.4 m.
_MIN_MAIN_SIZE = (640, 480)


def _import_picamera2() -> Any:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise SourceError("the Pi camera needs picamera2, which is not installed here "
                          "(on Raspberry Pi OS: `sudo apt install python3-picamera2` and create the venv with "
                          "--system-site-packages); on a PC use [camera] kind = \"opencv\"") from exc
    return Picamera2


class Picamera2FrameSource:
    def __init__(self, size: tuple[int, int] = (640, 480), fps: float = 10.0, camera_num: int = 0,
                 capture_timeout: float = 2.0) -> None:
        width, height = size
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise ValueError(f"lores size must be positive and even (YUV420), got {size}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.size = (width, height)
        self.fps = fps
        self.camera_num = camera_num
        self.capture_timeout = capture_timeout
        self._camera: Any = None

    def _open(self) -> Any:
        picamera2_cls = _import_picamera2()
        try:
            camera = picamera2_cls(self.camera_num)
        except IndexError:
            raise SourceError(f"Pi camera {self.camera_num}: not found (ribbon cable, or camera disabled "
                              "in /boot/firmware/config.txt)") from None
        except RuntimeError as exc:  # "Failed to acquire camera: Device or resource busy"
            raise SourceError(f"Pi camera {self.camera_num}: cannot acquire it ({exc}); "
                              "is another program using the camera?") from None
        frame_us = round(1_000_000 / self.fps)
        try:
            config = camera.create_video_configuration(
                main={"size": (max(self.size[0], _MIN_MAIN_SIZE[0]), max(self.size[1], _MIN_MAIN_SIZE[1])),
                      "format": "YUV420"},
                lores={"size": self.size, "format": "YUV420"},
                controls={"FrameDurationLimits": (frame_us, frame_us)},
                buffer_count=4,
            )
            camera.configure(config)
            camera.start()
        except Exception as exc:
            camera.close()
            raise SourceError(f"Pi camera {self.camera_num}: cannot start it at {self.size} ({exc})") from None
        return camera

    def frames(self) -> Iterator[Frame]:
        if self._camera is None:
            self._camera = self._open()
        width, height = self.size
        while True:
            try:
                job = self._camera.capture_array("lores", wait=False)
                yuv = self._camera.wait(job, timeout=self.capture_timeout)
            except TimeoutError:
                self.close()
                raise SourceError(f"Pi camera {self.camera_num}: no frame within {self.capture_timeout:g} s "
                                  "(camera hung or disconnected)") from None
            except Exception as exc:
                self.close()
                raise SourceError(f"Pi camera {self.camera_num}: capture failed ({exc})") from None
            # YUV420 is planar: the first `height` rows are the Y plane (rows may be padded to a stride).
            yield Frame(gray=yuv[:height, :width], t=time.monotonic())

    def close(self) -> None:
        if self._camera is not None:
            camera, self._camera = self._camera, None
            # A camera that vanished can fail to stop; closing must still release what it can.
            with contextlib.suppress(Exception):
                camera.stop()
            with contextlib.suppress(Exception):
                camera.close()
