"""The vision loop with real parts: the shipped LiteRT model, the Haar detector, demo-clip frames, unix sockets.

Sources here are real frames behind a FrameSource that can be told to die, to exercise reopening.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mood_wait import receive

from moodspeaker.adapters.haar_detector import HaarFaceDetector
from moodspeaker.adapters.litert_classifier import LiteRTClassifier
from moodspeaker.adapters.mood_socket import MoodSocketReceiver, MoodSocketSender
from moodspeaker.adapters.opencv_source import OpenCVFrameSource
from moodspeaker.app.vision import STAGES, VisionPipeline, VisionService, VisionSetup, build_vision
from moodspeaker.cli import main
from moodspeaker.config import CameraConfig, Config, ModelConfig, MoodSocketConfig, ServiceConfig
from moodspeaker.core.domain import Frame
from moodspeaker.core.mood import NO_FACE, MoodEvent
from moodspeaker.core.smoother import Smoother, SmootherParams
from moodspeaker.dev.demo_clip import load_clip_truth, score
from moodspeaker.errors import SourceError

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "emotion.tflite"


@pytest.fixture(scope="module")
def model() -> Path:
    if not MODEL.exists():
        pytest.skip("models/emotion.tflite is absent: these tests run the shipped model (train and export it first)")
    return MODEL


@pytest.fixture(scope="module")
def truth():
    return load_clip_truth()


@pytest.fixture(scope="module")
def face_frames(truth) -> list[np.ndarray]:
    """Grayscale 320x240 frames of the demo clip's first face segment."""
    seg = next(s for s in truth.segments if s.mood != NO_FACE)
    source = OpenCVFrameSource(truth.video, size=(320, 240))
    try:
        return [f.gray for f in source.frames() if seg.start <= f.t < seg.end]
    finally:
        source.close()


class Recorder:
    """A MoodSink and the service's callbacks, remembering everything."""

    def __init__(self) -> None:
        self.events: list[MoodEvent] = []
        self.statuses: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.reloads: list[tuple[bool, str]] = []
        self.recovered = 0

    def send(self, event: MoodEvent) -> None:
        self.events.append(event)

    def callbacks(self) -> dict[str, Callable]:
        return {"on_iteration": self.statuses.append, "on_error": self.errors.append,
                "on_recovered": self._recovered}

    def _recovered(self) -> None:
        self.recovered += 1


class ScriptedCamera:
    """Opens like a camera: each open either fails (busy) or yields some frames and then dies (or runs forever).

    `script` lists per open: an int n = n frames then SourceError, None = endless, "busy" = the open fails.
    Timestamps keep rising across opens, as a camera's monotonic clock does.
    """

    def __init__(self, frames: list[np.ndarray], script: list[int | str | None], dt: float = 0.1) -> None:
        self.images, self.script, self.dt = frames, list(script), dt
        self.opened_at: list[float] = []
        self.closed = 0
        self.t = 0.0

    def open(self) -> ScriptedCamera:
        self.opened_at.append(time.monotonic())
        step = self.script.pop(0) if self.script else None
        if step == "busy":
            raise SourceError("camera busy")
        self._left = step
        return self

    def frames(self) -> Iterator[Frame]:
        i = 0
        while self._left is None or i < self._left:
            yield Frame(gray=self.images[i % len(self.images)], t=self.t)
            self.t += self.dt
            i += 1
        raise SourceError("camera vanished")

    def close(self) -> None:
        self.closed += 1


def make_setup(model: Path, sink, open_source, max_fps: float = 1000.0, closed: list | None = None,
               reopen: tuple[float, float] = (0.05, 0.2)) -> VisionSetup:
    classifier = LiteRTClassifier(model)
    smoother = Smoother(classifier.labels, SmootherParams(dwell_s=0.3))
    pipeline = VisionPipeline(HaarFaceDetector(), classifier, smoother, sink,
                              face_margin=classifier.card.preprocessing.face_margin)
    return VisionSetup(open_source=open_source, pipeline=pipeline, max_fps=max_fps, reopen_initial_s=reopen[0],
                       reopen_max_s=reopen[1], model_path=str(model), model_sha=classifier.card.sha256,
                       close=(lambda: closed.append(True)) if closed is not None else (lambda: None))


def run_in_thread(service: VisionService, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    return thread


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the vision loop"
        time.sleep(0.01)


def test_pipeline_times_every_stage_and_classifies_the_face(model: Path, face_frames: list[np.ndarray]) -> None:
    rec = Recorder()
    setup = make_setup(model, rec, lambda: None)
    results = [setup.pipeline.process(Frame(gray=g, t=i * 0.1)) for i, g in enumerate(face_frames[:20])]
    faces = [r for r in results if r.face is not None]
    assert len(faces) >= 15  # Haar finds the clip's face in (nearly) every frame
    for r in faces:
        assert set(r.ms) == set(STAGES) and all(v > 0 for v in r.ms.values())
        assert r.probs is not None and r.probs.sum() == pytest.approx(1.0, abs=1e-3)
    times = setup.pipeline.times
    assert times.frames == 20 and times.faces == len(faces)
    assert times.fps() == pytest.approx(1000 / sum(times.mean_ms().values()))
    assert [e.seq for e in rec.events] == list(range(1, len(rec.events) + 1))  # every event reached the sink


def test_a_source_that_dies_is_reopened_with_exponential_backoff(model: Path, face_frames: list[np.ndarray]) -> None:
    rec = Recorder()
    camera = ScriptedCamera(face_frames, [5, "busy", "busy", "busy", "busy", 5, None])
    service = VisionService(lambda: make_setup(model, rec, camera.open, reopen=(0.05, 0.4)), **rec.callbacks())
    stop = threading.Event()
    thread = run_in_thread(service, stop)
    wait_for(lambda: len(camera.opened_at) == 7 and service.status()["frames"] >= 20)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    gaps = np.diff(camera.opened_at)
    # waits: 0.05 after the first death, then 0.1, 0.2, 0.4 and 0.4 (the cap) while busy; after 5 good frames the
    # backoff starts again at 0.05 (gaps[0] and gaps[5] also hold the time the 5 frames took). A wait is never
    # shorter than planned (a loaded machine only makes it longer), and the cap holds: the last is not 0.8.
    assert gaps[1] >= 0.1 - 0.005 and gaps[2] >= 0.2 - 0.005 and gaps[3] >= 0.4 - 0.005 and gaps[4] >= 0.4 - 0.005
    assert gaps[4] < 0.8
    assert gaps[5] < 0.3
    assert rec.errors == ["camera: camera vanished"] + ["camera: camera busy"] * 4 + ["camera: camera vanished"]
    assert rec.recovered == 2  # once per failure streak, at the first frame after it: status clears the error
    assert camera.closed == 2 + 1  # each source that opened was closed, the last one on stop
    assert service.status()["source_errors"] == 6
    assert {s["state"] for s in rec.statuses} >= {"running", "reopening camera"}


def test_a_frame_the_detector_fails_on_is_counted_and_the_loop_goes_on(
        model: Path, face_frames: list[np.ndarray], caplog: pytest.LogCaptureFixture) -> None:
    """H: only SourceError was caught; OpenCV's or LiteRT's error on one frame ended vision."""
    import cv2

    rec = Recorder()
    camera = ScriptedCamera(face_frames, [None])

    def broken_setup() -> VisionSetup:
        setup = make_setup(model, rec, camera.open)
        setup.pipeline.detector._cascade = cv2.CascadeClassifier()  # type: ignore[attr-defined]  # OpenCV asserts
        return setup

    service = VisionService(broken_setup, **rec.callbacks())
    stop = threading.Event()
    thread = run_in_thread(service, stop)
    wait_for(lambda: service.status()["frame_errors"] >= 10)
    stop.set()
    thread.join(timeout=5)
    status = service.status()
    assert status["frames"] >= 10 and status["frame_errors"] >= 10 and status["source_errors"] == 0
    assert rec.errors == [] and camera.closed == 1  # the camera was never blamed nor reopened
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "face detector: OpenCV failed" in warnings[0]  # once, not once a frame


def test_stop_ends_the_loop_promptly_and_closes_everything(model: Path, face_frames: list[np.ndarray]) -> None:
    rec, closed = Recorder(), []
    camera = ScriptedCamera(face_frames, [None])
    service = VisionService(lambda: make_setup(model, rec, camera.open, closed=closed), **rec.callbacks())
    stop = threading.Event()
    thread = run_in_thread(service, stop)
    wait_for(lambda: len(rec.statuses) >= 3)
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert camera.closed == 1 and closed == [True]
    assert service.status()["state"] == "stopped"


def test_stop_also_ends_a_backoff_wait(model: Path, face_frames: list[np.ndarray]) -> None:
    camera = ScriptedCamera(face_frames, ["busy"] * 100)
    service = VisionService(lambda: make_setup(model, Recorder(), camera.open, reopen=(30.0, 30.0)))
    stop = threading.Event()
    thread = run_in_thread(service, stop)
    wait_for(lambda: len(camera.opened_at) == 1)
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive()


def test_on_iteration_reports_mood_confidence_fps_and_model(model: Path, face_frames: list[np.ndarray]) -> None:
    rec = Recorder()
    camera = ScriptedCamera(face_frames, [None])
    service = VisionService(lambda: make_setup(model, rec, camera.open, max_fps=50), **rec.callbacks())
    stop = threading.Event()
    thread = run_in_thread(service, stop)
    wait_for(lambda: len(rec.statuses) >= 15)
    stop.set()
    thread.join(timeout=2)
    status = rec.statuses[-1]
    assert status["state"] == "running"
    assert status["model_sha"] == LiteRTClassifier(model).card.sha256
    assert status["model_path"] == str(model)
    assert [s["frames"] for s in rec.statuses[:15]] == list(range(1, 16))
    assert 10 <= status["fps"] <= 55  # capped at 50 analysed frames per second
    moods = [e for e in rec.events if e.kind == "mood"]
    assert moods, "a steady face for 1.5 s must settle into a mood"
    assert status["mood"] == moods[-1].mood and 0 < status["confidence"] <= 1


def test_the_rate_cap_skips_frames_that_come_faster(model: Path, face_frames: list[np.ndarray]) -> None:
    rec = Recorder()
    camera = ScriptedCamera(face_frames, [100], dt=0.01)  # 100 fps for one second, then it dies
    service = VisionService(lambda: make_setup(model, rec, camera.open, max_fps=20, reopen=(5.0, 5.0)),
                            **rec.callbacks())
    stop = threading.Event()
    thread = run_in_thread(service, stop)
    t0 = time.monotonic()
    wait_for(lambda: rec.errors != [])
    elapsed = time.monotonic() - t0
    stop.set()
    thread.join(timeout=2)
    assert 19 <= service.status()["frames"] <= 21  # one frame in five: ~ t = 0, 0.05, ... 0.95
    assert 0.8 <= elapsed < 3.0  # and in real time, not as fast as possible


def test_reload_swaps_in_a_new_setup_and_a_failed_reload_keeps_the_old_one(model: Path,
                                                                          face_frames: list[np.ndarray]) -> None:
    rec, closed = Recorder(), []
    cameras: list[ScriptedCamera] = []
    builds = {"n": 0}

    def build() -> VisionSetup:
        builds["n"] += 1
        if builds["n"] == 3:
            raise ValueError("models/emotion.json: bad card")
        cameras.append(ScriptedCamera(face_frames, [None]))
        return make_setup(model, rec, cameras[-1].open, max_fps=50, closed=closed)

    def reload() -> None:  # what Daemon.reload does, without a config file
        try:
            new = build()
        except ValueError as exc:
            rec.reloads.append((False, str(exc)))
            return
        service.swap(new)
        rec.reloads.append((True, ""))

    service = VisionService(build, on_reload=reload, **rec.callbacks())
    stop = threading.Event()
    thread = run_in_thread(service, stop)
    wait_for(lambda: service.status()["frames"] >= 3)
    service.request_reload()
    wait_for(lambda: len(rec.reloads) == 1 and len(cameras) == 2 and cameras[1].opened_at != [])
    assert rec.reloads == [(True, "")] and closed == [True] and cameras[0].closed == 1
    service.request_reload()
    wait_for(lambda: len(rec.reloads) == 2)
    frames = service.status()["frames"]
    wait_for(lambda: service.status()["frames"] >= frames + 3)  # still analysing with the second setup
    stop.set()
    thread.join(timeout=2)
    assert rec.reloads[1] == (False, "models/emotion.json: bad card")
    assert len(cameras) == 2 and closed == [True, True]


def test_privacy_pause_closes_the_camera_until_resumed(model: Path, face_frames: list[np.ndarray]) -> None:
    rec = Recorder()
    camera = ScriptedCamera(face_frames, [None, None])
    service = VisionService(lambda: make_setup(model, rec, camera.open, max_fps=50), **rec.callbacks())
    stop = threading.Event()
    thread = run_in_thread(service, stop)
    wait_for(lambda: service.status()["frames"] >= 3)
    service.set_paused(True)
    wait_for(lambda: camera.closed == 1)
    frames = service.status()["frames"]
    wait_for(lambda: rec.statuses[-1]["state"] == "paused")  # the loop waits, paused: no frame comes from there
    assert service.status()["frames"] == frames and service.status()["privacy"] is True
    service.set_paused(False)
    wait_for(lambda: service.status()["frames"] > frames, timeout=5)
    stop.set()
    thread.join(timeout=2)
    assert len(camera.opened_at) == 2


def test_the_demo_clip_end_to_end_over_the_mood_socket(model: Path, truth, tmp_path: Path) -> None:
    """The daemon's own wiring (build_vision from a Config) on the demo clip; moods arrive over a real socket."""
    sock = tmp_path / "mood.sock"
    config = Config(model=ModelConfig(path=str(model)), mood_socket=MoodSocketConfig(path=str(sock)),
                    camera=CameraConfig(kind="opencv", width=320, height=240, fps=60.0),
                    service=ServiceConfig(runtime_dir=str(tmp_path)))
    with MoodSocketReceiver(sock) as receiver:
        received: list[MoodEvent] = []
        stop = threading.Event()

        def listen() -> None:
            while not stop.is_set():
                if (event := receive(receiver, 0.1)) is not None:
                    received.append(event)

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        sender = MoodSocketSender(sock)
        service = VisionService(lambda: build_vision(config, sender, source=truth.video, close=sender.close))
        service.run(threading.Event())  # returns when the clip ends: every datagram is in the socket's queue by then
        stop.set()
        listener.join(timeout=2)
        while (event := receiver.receive_nowait()) is not None:  # what the listener had not taken yet
            received.append(event)
    assert service.status()["frames"] == truth.frames  # the clip's 10 fps is under the 60 fps cap: every frame
    assert [e.seq for e in received] == list(range(1, len(received) + 1))  # every event arrived, in order
    changes = [e for e in received if e.kind == "mood"]
    assert len({e.mood for e in changes}) >= 3
    times = [i / truth.fps for i in range(truth.frames)]
    moods, k, mood = [], 0, NO_FACE
    for t in times:
        while k < len(changes) and changes[k].t <= t + 1e-6:
            mood, k = changes[k].mood, k + 1
        moods.append(mood)
    result = score(truth, times, moods, moods)
    settled = {seg: Counter(m for t, m in zip(times, moods, strict=True) if (seg.start + seg.end) / 2 <= t < seg.end)
               for seg in truth.segments}
    # Haar and the decay alone decide the no-face segments; with the model, most segments settle on the true mood.
    assert all(settled[seg].most_common(1)[0][0] == NO_FACE for seg in truth.segments if seg.mood == NO_FACE)
    assert result["segments_right"] > result["segments"] / 2, result["mood_changes"]
    heartbeats = [e for e in received if e.kind == "heartbeat"]
    assert heartbeats and max(np.diff([e.t for e in received])) <= Config().smoother.heartbeat_s + 0.2


def test_the_vision_daemon_reloads_on_sighup_and_stops_cleanly_on_sigterm(model: Path, truth, tmp_path: Path) -> None:
    sock = tmp_path / "run" / "mood.sock"
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\npath = "{model}"\n[mood_socket]\npath = "{sock}"\n[service]\nruntime_dir = "{tmp_path}"\n'
                      '[camera]\nkind = "opencv"\nfps = 10.0\n')
    with MoodSocketReceiver(sock) as receiver:
        proc = subprocess.Popen([sys.executable, "-m", "moodspeaker.cli", "vision", "--config", str(config),
                                 "--source", str(truth.video)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = receive(receiver, 30)
            assert first is not None and first.kind == "heartbeat"
            wait_for(lambda: (tmp_path / "vision.json").exists())  # written right after the first frame's event
            state = json.loads((tmp_path / "vision.json").read_text())
            assert state["service"] == "vision" and state["status"]["model_sha"] == LiteRTClassifier(model).card.sha256
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: json.loads((tmp_path / "vision.json").read_text())["reloads"] == 1, timeout=30)
            assert proc.poll() is None and json.loads((tmp_path / "vision.json").read_text())["reload_error"] is None
            while receiver.receive_nowait() is not None:
                pass  # what was sent until the rebuild finished
            assert receive(receiver, 10) is not None  # still sending after the rebuild
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert "reloaded config and model" in err
    assert not (tmp_path / "vision.json").exists()  # a clean stop removes the state file


def test_the_vision_command_rejects_a_missing_source(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["vision", "--config", str(tmp_path / "none.toml")]) == 2
    assert "no such config file" in capsys.readouterr().err
    config = tmp_path / "config.toml"
    config.write_text("")
    assert main(["vision", "--config", str(config), "--source", str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4: no such video file" in capsys.readouterr().err


NETWORK_MODULES = ("spotipy", "requests", "urllib3", "http.client", "mpd", "aiohttp", "httpx")


def test_the_vision_path_imports_nothing_that_talks_to_the_network(model: Path) -> None:
    """`moodspeaker vision` runs with PrivateNetwork=yes; no network client should even be imported."""
    code = (
        "import sys\n"
        "from moodspeaker.cli import build_parser\n"
        "build_parser()\n"  # every command module is imported to build the CLI
        "from moodspeaker.config import Config, ModelConfig\n"
        "from moodspeaker.adapters.mood_socket import LoggingMoodSink\n"
        "from moodspeaker.app.vision import build_vision\n"
        f"build_vision(Config(model=ModelConfig(path={str(model)!r})), LoggingMoodSink())\n"
        f"print(sorted(m for m in sys.modules if m in {NETWORK_MODULES!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", f"the vision process imports network clients: {done.stdout.strip()}"
