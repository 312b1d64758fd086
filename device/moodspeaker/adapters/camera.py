"""The configured camera: the [camera] section turned into a FrameSource."""

from __future__ import annotations

from moodspeaker.adapters.opencv_source import OpenCVFrameSource
from moodspeaker.adapters.picamera2_source import Picamera2FrameSource
from moodspeaker.config import CameraConfig
from moodspeaker.ports import FrameSource


def open_camera(config: CameraConfig) -> FrameSource:
    """A source for [camera]; nothing is opened until its frames are read."""
    size = (config.width, config.height)
    if config.kind == "picamera2":
        main = (config.main_width, config.main_height) if config.main_width and config.main_height else None
        return Picamera2FrameSource(size=size, fps=config.fps, camera_num=int(config.device),
                                    capture_timeout=config.capture_timeout, main_size=main,
                                    max_exposure_ms=config.max_exposure_ms, denoise=config.denoise,
                                    binned=config.binned)
    return OpenCVFrameSource(config.device, size=size, fps=config.fps, loop=config.loop)
