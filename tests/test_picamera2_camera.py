"""The Pi camera adapter against a recording fake of Picamera2 (the real one runs only on a Pi): what it asks
the camera for (streams, sensor mode, exposure, noise reduction), how it reads a frame (one request, both
planes, released), and the pipeline cutting the face from the main stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from moodspeaker.adapters import picamera2_source
from moodspeaker.adapters.camera import open_camera
from moodspeaker.adapters.picamera2_source import Picamera2FrameSource
from moodspeaker.config import CameraConfig
from moodspeaker.errors import SourceError

# A Camera Module 3 (IMX708) lists these modes: cropped-and-binned, binned full view, full resolution.
IMX708_MODES = [
    {"size": (1536, 864), "bit_depth": 10, "crop_limits": (768, 432, 3072, 1728)},
    {"size": (2304, 1296), "bit_depth": 10, "crop_limits": (0, 0, 4608, 2592)},
    {"size": (4608, 2592), "bit_depth": 10, "crop_limits": (0, 0, 4608, 2592)},
]


class FakeRequest:
    def __init__(self, camera: FakePicamera2, n: int) -> None:
        self.camera, self.n = camera, n

    def make_array(self, name: str) -> np.ndarray:
        self.camera.calls.append(("make_array", name))
        if name in self.camera.fail_make_array:
            raise RuntimeError("buffer gone")
        width, height = self.camera.config[name]["size"]
        stride = width + 32  # libcamera pads rows to a stride
        yuv = np.full((height * 3 // 2, stride), 255, np.uint8)  # U/V rows and padding: 255, never image
        yuv[:height, :width] = (self.n + (0 if name == "lores" else 100)) % 256
        return yuv

    def release(self) -> None:
        self.camera.calls.append(("release", self.n))


class FakePicamera2:
    """Records what the adapter asks for; serves numbered frames whose planes say which stream they are."""

    instances: ClassVar[list[FakePicamera2]] = []

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.calls: list[tuple] = []
        self.config: dict[str, Any] = {}
        self.sensor_modes = IMX708_MODES
        self.camera_properties = {"PixelArraySize": (4608, 2592), "Model": "imx708"}
        self.fail_make_array: set[str] = set()
        self.hang = False
        self.frames_served = 0
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("create_video_configuration", kwargs))
        return kwargs

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config
        self.calls.append(("configure",))

    def start(self) -> None:
        self.calls.append(("start",))

    def capture_request(self, wait: bool | None = None) -> int:
        self.calls.append(("capture_request", wait))
        self.frames_served += 1
        return self.frames_served

    def wait(self, job: int, timeout: float | None = None) -> FakeRequest:
        self.calls.append(("wait", timeout))
        if self.hang:
            raise TimeoutError
        return FakeRequest(self, job)

    def stop(self) -> None:
        self.calls.append(("stop",))

    def close(self) -> None:
        self.calls.append(("close",))


@pytest.fixture
def fake(monkeypatch) -> type[FakePicamera2]:
    FakePicamera2.instances = []
    monkeypatch.setattr(picamera2_source, "_import_picamera2", lambda: FakePicamera2)
    return FakePicamera2


def _asked(camera: FakePicamera2) -> dict[str, Any]:
    return next(call[1] for call in camera.calls if call[0] == "create_video_configuration")


def test_the_default_config_asks_for_a_living_room_camera(fake) -> None:
    source = open_camera(CameraConfig(fps=5.0))
    frame = next(iter(source.frames()))
    asked = _asked(fake.instances[0])
    assert asked["lores"] == {"size": (640, 480), "format": "YUV420"}
    assert asked["main"] == {"size": (1280, 960), "format": "YUV420"}
    assert asked["sensor"] == {"output_size": (2304, 1296), "bit_depth": 10}  # binned full view, not the crop
    controls = asked["controls"]
    assert controls["FrameDurationLimits"] == (100_000, 100_000)  # exposure up to 0.1 s; 5 fps analysed of 10
    assert controls["AeExposureMode"] == picamera2_source.AE_EXPOSURE_LONG
    assert controls["NoiseReductionMode"] == picamera2_source.NOISE_REDUCTION["high_quality"]
    assert frame.gray.shape == (480, 640) and frame.main.shape == (960, 1280)
    assert (frame.gray == 1).all() and (frame.main == 101).all()  # the Y planes of one request, no padding
    source.close()


def test_one_request_per_frame_both_planes_then_released(fake) -> None:
    source = Picamera2FrameSource(size=(320, 240), main_size=(640, 480), capture_timeout=1.5)
    frames = source.frames()
    for _ in range(3):
        next(frames)
    camera = fake.instances[0]
    reads = [c for c in camera.calls if c[0] in ("capture_request", "wait", "make_array", "release")]
    assert reads[:5] == [("capture_request", False), ("wait", 1.5), ("make_array", "lores"), ("make_array", "main"),
                         ("release", 1)]
    assert sum(c[0] == "release" for c in camera.calls) == 3
    source.close()


def test_no_main_stream_reads_lores_only_and_settings_reach_the_camera(fake) -> None:
    config = CameraConfig(main_width=0, main_height=0, max_exposure_ms=250.0, fps=10.0, denoise="fast", binned=False)
    source = open_camera(config)
    frame = next(iter(source.frames()))
    asked = _asked(fake.instances[0])
    assert frame.main is None and ("make_array", "main") not in fake.instances[0].calls
    assert asked["main"]["size"] == (640, 480) and "sensor" not in asked
    assert asked["controls"]["FrameDurationLimits"] == (100_000, 250_000)  # 10 fps in good light, 4 in the dark
    assert asked["controls"]["NoiseReductionMode"] == picamera2_source.NOISE_REDUCTION["fast"]
    source.close()


def test_a_hung_capture_or_a_failed_read_closes_the_camera_and_releases_the_buffer(fake) -> None:
    source = Picamera2FrameSource()
    frames = source.frames()
    next(frames)
    camera = fake.instances[0]
    camera.fail_make_array.add("main")
    with pytest.raises(SourceError, match="reading a frame failed"):
        next(frames)
    assert camera.calls[-3:] == [("release", 2), ("stop",), ("close",)]  # the buffer first, then the camera
    source = Picamera2FrameSource(capture_timeout=0.5)
    frames = source.frames()
    next(frames)
    fake.instances[-1].hang = True
    with pytest.raises(SourceError, match=r"no frame within 0\.5 s"):
        next(frames)
    assert fake.instances[-1].calls[-2:] == [("stop",), ("close",)]


def test_bad_camera_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="main size"):
        Picamera2FrameSource(size=(640, 480), main_size=(320, 240))
    with pytest.raises(ValueError, match="denoise"):
        Picamera2FrameSource(denoise="max")
    with pytest.raises(ValueError, match="main_width"):
        CameraConfig(main_width=320, main_height=240)
    with pytest.raises(ValueError, match="max_exposure_ms"):
        CameraConfig(max_exposure_ms=5.0)


def test_the_pipeline_cuts_the_face_from_the_main_stream(shipped_model: Path) -> None:
    import cv2

    from moodspeaker.adapters.haar_detector import HaarFaceDetector
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier
    from moodspeaker.app.vision import VisionPipeline
    from moodspeaker.core.crop_quality import QualityParams
    from moodspeaker.core.domain import Frame
    from moodspeaker.core.smoother import Smoother
    from moodspeaker.dev.benchmark import EventLog

    with np.load(Path(__file__).parent / "fixtures" / "fullframe_tiny.npz") as data:
        small = data["images"][0]
    big = cv2.resize(small, (small.shape[1] * 2, small.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    classifier = LiteRTClassifier(shipped_model)
    pipeline = VisionPipeline(HaarFaceDetector(), classifier, Smoother(classifier.labels), EventLog(),
                              quality=QualityParams())
    with_main = pipeline.process(Frame(small, 0.0, main=big))
    alone = pipeline.process(Frame(small, 1.0))
    assert with_main.face is not None and alone.face is not None
    assert with_main.quality.side_px >= 2 * with_main.face.w - 2  # the crop has the main stream's pixels
    assert alone.quality.side_px <= alone.face.w + 2
