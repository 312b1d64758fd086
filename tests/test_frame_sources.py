"""Frame sources: stored frames (npz, folder), OpenCV on a real video file, and the Pi camera's import guard."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from moodspeaker.adapters.camera import open_camera
from moodspeaker.adapters.npz_source import StoredFrameSource
from moodspeaker.adapters.opencv_source import OpenCVFrameSource
from moodspeaker.adapters.picamera2_source import Picamera2FrameSource
from moodspeaker.config import CameraConfig, parse_config
from moodspeaker.errors import ConfigError, SourceError


def _frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """n frames, frame i a flat grey of level 20 + 20 i (distinct after lossy video coding)."""
    return np.stack([np.full((h, w), 20 + 20 * i, np.uint8) for i in range(n)])


def test_npz_source_yields_every_frame_with_timestamps_from_fps(tmp_path: Path) -> None:
    images = _frames(5)
    np.savez(tmp_path / "f.npz", images=images, labels=np.zeros(5, np.uint8))
    frames = list(StoredFrameSource(tmp_path / "f.npz", fps=4.0, start=1.0).frames())
    assert [f.t for f in frames] == [1.0, 1.25, 1.5, 1.75, 2.0]
    np.testing.assert_array_equal(np.stack([f.gray for f in frames]), images)


def test_npz_without_images_is_a_clear_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "f.npz", labels=np.zeros(3))
    with pytest.raises(SourceError, match="images"):
        StoredFrameSource(tmp_path / "f.npz")


def test_folder_source_reads_images_in_name_order_as_grey(tmp_path: Path) -> None:
    images = _frames(3)
    for i, image in enumerate(images):
        cv2.imwrite(str(tmp_path / f"frame{i:02d}.png"), cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    (tmp_path / "notes.txt").write_text("not a frame")
    frames = list(StoredFrameSource(tmp_path, fps=10).frames())
    assert len(frames) == 3
    np.testing.assert_array_equal(np.stack([f.gray for f in frames]), images)


def test_folder_source_whose_frames_vanish_mid_stream_raises_source_error(tmp_path: Path) -> None:
    for i, image in enumerate(_frames(3)):
        cv2.imwrite(str(tmp_path / f"{i}.png"), image)
    stream = StoredFrameSource(tmp_path).frames()
    next(stream)
    (tmp_path / "1.png").unlink()
    with pytest.raises(SourceError, match=r"1\.png"):
        next(stream)


def test_missing_path_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such"):
        StoredFrameSource(tmp_path / "nothing")


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (64, 48))
    for image in _frames(8):
        writer.write(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def test_opencv_source_reads_a_video_file_to_its_end_as_grey_frames(video: Path) -> None:
    frames = list(OpenCVFrameSource(video).frames())
    assert len(frames) == 8
    assert all(f.gray.shape == (48, 64) and f.gray.dtype == np.uint8 for f in frames)
    assert [round(f.t, 3) for f in frames] == [i / 5 for i in range(8)]
    levels = [float(f.gray.mean()) for f in frames]
    np.testing.assert_allclose(levels, [20 + 20 * i for i in range(8)], atol=3)


def test_opencv_source_resizes_file_frames_to_the_asked_size(video: Path) -> None:
    source = OpenCVFrameSource(str(video), size=(32, 24))
    assert {f.gray.shape for f in source.frames()} == {(24, 32)}
    source.close()


def test_opencv_source_on_a_missing_file_or_camera_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such video"):
        OpenCVFrameSource(tmp_path / "gone.mp4")
    with pytest.raises(SourceError, match="camera 63"):
        next(OpenCVFrameSource(63).frames())  # no /dev/video63: the camera is not there


def test_opencv_source_on_a_file_that_is_not_a_video_raises_source_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not a video at all")
    with pytest.raises(SourceError, match="cannot open"):
        next(OpenCVFrameSource(bogus).frames())


def test_opencv_source_with_loop_plays_the_file_again_with_timestamps_that_keep_rising(video: Path) -> None:
    stream = OpenCVFrameSource(video, loop=True).frames()
    frames = [next(stream) for _ in range(20)]  # the file has 8
    assert [round(f.t, 3) for f in frames] == [round(i / 5, 3) for i in range(20)]
    levels = [float(f.gray.mean()) for f in frames]
    np.testing.assert_allclose(levels, [20 + 20 * (i % 8) for i in range(20)], atol=3)


def test_opencv_file_source_that_ends_logs_why_and_how_to_loop_it(video: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        assert len(list(OpenCVFrameSource(video).frames())) == 8
    assert "end of the file after 8 frames" in caplog.text and "loop = true" in caplog.text


def test_camera_config_loop_reaches_the_file_source(video: Path) -> None:
    source = open_camera(CameraConfig(kind="opencv", device=str(video), width=64, height=48, loop=True))
    stream = source.frames()
    assert len([next(stream) for _ in range(12)]) == 12
    source.close()
    assert parse_config('[camera]\nkind = "opencv"\ndevice = "/x.mp4"\nloop = true\n').camera.loop is True


def test_opencv_source_on_a_fifo_says_fifo_not_missing(tmp_path: Path) -> None:
    fifo = tmp_path / "frames.fifo"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match="FIFO") as err:
        OpenCVFrameSource(fifo)
    assert "no such" not in str(err.value)
    with pytest.raises(SourceError, match="a folder"):
        OpenCVFrameSource(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("picamera2") is not None, reason="picamera2 is installed (a Pi)")
def test_picamera2_module_imports_without_picamera2_and_says_what_to_install_when_used() -> None:
    source = Picamera2FrameSource(size=(320, 240), fps=5)
    assert "picamera2" not in sys.modules
    with pytest.raises(SourceError, match="python3-picamera2"):
        next(source.frames())
    source.close()


def test_picamera2_rejects_an_odd_yuv420_size() -> None:
    with pytest.raises(ValueError, match="even"):
        Picamera2FrameSource(size=(321, 240))


def test_camera_config_picks_the_source(video: Path) -> None:
    assert isinstance(open_camera(CameraConfig()), Picamera2FrameSource)
    source = open_camera(CameraConfig(kind="opencv", device=str(video), width=32, height=32))
    assert isinstance(source, OpenCVFrameSource)
    assert next(source.frames()).gray.shape == (32, 32)
    source.close()


@pytest.mark.parametrize("table, word", [('kind = "picamera2"\ndevice = "/dev/video0"', "camera number"),
                                         ("width = 321", "even"), ("fps = 0", "fps")])
def test_bad_camera_settings_are_config_errors(table: str, word: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[camera\].*{word}"):
        parse_config(f"[camera]\n{table}\n")
