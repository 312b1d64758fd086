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
        return Picamera2FrameSource(size=size, fps=config.fps, camera_num=int(config.device),
                                    capture_timeout=config.capture_timeout)
    return OpenCVFrameSource(config.device, size=size, fps=config.fps, loop=config.loop)
