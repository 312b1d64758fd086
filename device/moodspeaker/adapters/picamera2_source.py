"""FrameSource on the Raspberry Pi camera through picamera2 (libcamera), set up for a living room.

Two streams of the same moment from one request: the ISP scales the sensor image to a small lores YUV420
stream (the Y plane is the frame faces are looked for in: the detector's cost does not grow with the
camera's resolution) and to a larger main stream, from whose Y plane the face is cut (a listener 3 m away
has twice the pixels at 1280x960 than at 640x480; the issue-17 measurement: a dim 3 m face read 0.43 from a
frame three times larger, 0.33 from the 48 px crop). No resizing or colour conversion on the CPU.

For a lamp-lit room, each choice a [camera] key:
- the sensor's 2x2-binned full-view mode (`binned`): four pixels' light summed in one read, so less noise
  for the same exposure, the whole field of view, and a cheap readout; chosen from the camera's own list of
  modes (the smallest full-view mode that covers the main stream: 2304x1296 on a Camera Module 3, 1640x1232
  on a v2);
- exposure (`max_exposure_ms`): the frame duration may stretch up to this, so in the dark the auto exposure
  lengthens the shutter before it raises the gain (more light, not more amplified noise), in its "long"
  exposure mode; analysis at 5-10 fps needs no more frames than that, and a listener on the sofa moves little
  within 0.1 s. libcamera offers no ceiling on the analogue gain itself: past this exposure, gain rises;
- the ISP's noise reduction (`denoise`): "high_quality" runs the ISP's spatial and colour denoise at its
  strongest, in hardware, so the Y plane arrives with less sensor noise at no CPU cost.

One camera instance stays open across frames. "Camera busy", a capture that hangs past `capture_timeout` and
a camera that vanishes all raise SourceError after closing the camera, so the vision loop can back off and
open it again. picamera2 exists only on the Pi: it is imported when the camera is opened.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from moodspeaker.core.domain import Frame
from moodspeaker.errors import SourceError

# The lores stream defaults to 640x480 (CameraConfig): the detector finds faces down to 24 px, so 480 lines see
# a listener on the sofa (36 px at 3.2 m with a Camera Module 3), where 240 lines lose them beyond ~2.4 m.
# libcamera's enums, as numbers (the libcamera module exists only on the Pi):
AE_EXPOSURE_LONG = 2  # controls.AeExposureModeEnum.Long: longer shutter before more gain
NOISE_REDUCTION = {"off": 0, "fast": 1, "high_quality": 2}  # controls.draft.NoiseReductionModeEnum


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
                 capture_timeout: float = 2.0, main_size: tuple[int, int] | None = (1280, 960),
                 max_exposure_ms: float = 100.0, denoise: str = "high_quality", binned: bool = True) -> None:
        """`size`: the lores frame faces are looked for in; `main_size`: the larger frame of the same moment
        faces are cut from (None: no main stream is read, faces are cut from lores)."""
        width, height = size
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise ValueError(f"lores size must be positive and even (YUV420), got {size}")
        if main_size is not None and (main_size[0] % 2 or main_size[1] % 2 or main_size[0] < width
                                      or main_size[1] < height):
            raise ValueError(f"main size must be even and at least the lores size {size}, got {main_size}")
        if fps <= 0 or max_exposure_ms <= 0:
            raise ValueError(f"fps and max_exposure_ms must be positive, got {fps} and {max_exposure_ms}")
        if denoise not in NOISE_REDUCTION:
            raise ValueError(f"denoise must be one of {sorted(NOISE_REDUCTION)}, got {denoise!r}")
        self.size = (width, height)
        self.main_size = main_size
        self.fps = fps
        self.camera_num = camera_num
        self.capture_timeout = capture_timeout
        self.max_exposure_ms = max_exposure_ms
        self.denoise = denoise
        self.binned = binned
        self._camera: Any = None

    def frame_duration_limits(self) -> tuple[int, int]:
        """(shortest, longest) frame duration in µs: no faster than the analysis needs, and as long as
        `max_exposure_ms` so the exposure can stretch in the dark (both `max_exposure_ms` when that is the
        shorter: then the camera runs faster than we analyse, and we read only the frames we analyse)."""
        longest = round(self.max_exposure_ms * 1000)
        return min(round(1_000_000 / self.fps), longest), longest

    def sensor_mode(self, camera: Any) -> dict[str, Any] | None:
        """The binned full-view sensor mode: of the modes that see the sensor's whole field of view, the
        smallest that covers the largest stream (binning, not cropping, makes it small). None: let picamera2
        choose (binned off, or a camera that lists no such mode)."""
        if not self.binned:
            return None
        need = self.main_size or self.size
        full = tuple(camera.camera_properties.get("PixelArraySize", ()))
        modes = [m for m in camera.sensor_modes if m["size"][0] >= need[0] and m["size"][1] >= need[1]
                 and (not full or tuple(m.get("crop_limits", (0, 0, *full))[2:]) == full)]
        if not modes:
            return None
        best = min(modes, key=lambda m: (m["size"][0] * m["size"][1], -m.get("bit_depth", 0)))
        return {"output_size": tuple(best["size"]), "bit_depth": best.get("bit_depth", 10)}

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
        try:
            streams: dict[str, Any] = {
                "main": {"size": self.main_size or self.size, "format": "YUV420"},
                "lores": {"size": self.size, "format": "YUV420"},
                "controls": {"FrameDurationLimits": self.frame_duration_limits(),
                             "AeExposureMode": AE_EXPOSURE_LONG,
                             "NoiseReductionMode": NOISE_REDUCTION[self.denoise]},
                "buffer_count": 4,
            }
            if (sensor := self.sensor_mode(camera)) is not None:
                streams["sensor"] = sensor
            camera.configure(camera.create_video_configuration(**streams))
            camera.start()
        except Exception as exc:
            camera.close()
            raise SourceError(f"Pi camera {self.camera_num}: cannot start it at {self.size} ({exc})") from None
        return camera

    def frames(self) -> Iterator[Frame]:
        if self._camera is None:
            self._camera = self._open()
        while True:
            try:
                job = self._camera.capture_request(wait=False)
                request = self._camera.wait(job, timeout=self.capture_timeout)
            except TimeoutError:
                self.close()
                raise SourceError(f"Pi camera {self.camera_num}: no frame within {self.capture_timeout:g} s "
                                  "(camera hung or disconnected)") from None
            except Exception as exc:
                self.close()
                raise SourceError(f"Pi camera {self.camera_num}: capture failed ({exc})") from None
            try:
                try:
                    gray = _y_plane(request.make_array("lores"), self.size)
                    main = _y_plane(request.make_array("main"), self.main_size) if self.main_size else None
                finally:
                    with contextlib.suppress(Exception):
                        request.release()  # the buffer goes back to the camera at once, whatever happened
            except Exception as exc:
                self.close()
                raise SourceError(f"Pi camera {self.camera_num}: reading a frame failed ({exc})") from None
            yield Frame(gray=gray, t=time.monotonic(), main=main)

    def close(self) -> None:
        if self._camera is not None:
            camera, self._camera = self._camera, None
            # A camera that vanished can fail to stop; closing must still release what it can.
            with contextlib.suppress(Exception):
                camera.stop()
            with contextlib.suppress(Exception):
                camera.close()


def _y_plane(yuv: Any, size: tuple[int, int]) -> Any:
    """YUV420 is planar: the first `height` rows are the Y plane (rows may be padded to a stride)."""
    width, height = size
    return yuv[:height, :width]
