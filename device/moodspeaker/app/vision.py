"""The vision side: frames -> largest face -> emotion probabilities -> smoothed mood -> a MoodSink.

`VisionPipeline` handles one frame and times each stage (for `moodspeaker bench` and the status line).
`VisionService` runs it on a FrameSource: capped to the configured analysis rate, reopening a failed
camera with exponential backoff, stopping on an Event, and swapping in a new setup that the daemon's
lifecycle built beside the running one on reload. Frames live only in memory: nothing here writes a frame
anywhere or touches a network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from moodspeaker.config import Config
from moodspeaker.core.crop_quality import UNCONFIRMED, CropQuality, QualityParams, assess
from moodspeaker.core.domain import Box, Frame
from moodspeaker.core.face_crop import crop_face, scale_box
from moodspeaker.core.fusion import CropFuser, FusionParams
from moodspeaker.core.mood import MoodEvent
from moodspeaker.core.smoother import Smoother
from moodspeaker.errors import FrameError, SourceError
from moodspeaker.ports import EmotionClassifier, FaceDetector, FrameSource, MoodSink

log = logging.getLogger(__name__)

STAGES = ("detect", "preprocess", "classify", "smooth")
FPS_SMOOTHING = 0.2  # weight of the newest frame interval in the reported analysis rate
STATUS_DURING_WAIT_S = 1.0  # while waiting to reopen the camera, report (and so feed the watchdog) this often


@dataclass(frozen=True)
class FrameResult:
    face: Box | None  # the largest face, if any
    probs: np.ndarray | None  # its probabilities in the classifier's label order; None while it is not confirmed
    quality: CropQuality | None  # its crop's quality; its weight is the frame's weight in the smoother
    event: MoodEvent | None  # what was sent to the sink for this frame, if anything
    ms: dict[str, float]  # milliseconds per stage (STAGES); preprocess and classify are 0 without a face


@dataclass
class StageTimes:
    """Running totals over the frames a pipeline processed."""

    frames: int = 0
    faces: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def mean_ms(self) -> dict[str, float]:
        """Milliseconds per frame for each stage (preprocess/classify averaged over all frames, faces or not)."""
        return {stage: 1000 * s / max(self.frames, 1) for stage, s in self.seconds.items()}

    def fps(self) -> float:
        """Frames per second the pipeline alone sustains on one thread (no capture, no pacing)."""
        total = sum(self.seconds.values())
        return self.frames / total if total > 0 else 0.0


class VisionPipeline:
    """One frame at a time: detect, crop the largest face as in training, fuse it with the same face's last
    crops (core.fusion: sensor noise averages away), judge the crop's quality, classify, smooth (weighted by
    that quality: a dark, blurred or distant crop cannot flip the mood), send.

    `quality` None gives every crop full weight and `fusion` None classifies each frame's crop alone (the
    peer's pipeline in `moodspeaker bench`)."""

    def __init__(self, detector: FaceDetector, classifier: EmotionClassifier, smoother: Smoother, sink: MoodSink,
                 face_margin: float = 0.0, quality: QualityParams | None = None,
                 fusion: FusionParams | None = None) -> None:
        if tuple(smoother.labels) != tuple(classifier.labels):
            raise ValueError(f"smoother labels {smoother.labels} differ from the classifier's {classifier.labels}")
        self.detector, self.classifier, self.smoother, self.sink = detector, classifier, smoother, sink
        self.face_margin = face_margin
        self.quality = quality
        self.fuser = CropFuser(fusion) if fusion is not None else None
        self.last_quality: CropQuality | None = None  # the last analysed frame's, None when it had no face
        self.times = StageTimes()

    def face_status(self) -> str:
        """For the status line: "ok", the reason the last face counted less ("face too dark", "too far", ...),
        or "none" when the last frame had no face."""
        if self.last_quality is None:
            return "none"
        return self.last_quality.reason or "ok"

    def process(self, frame: Frame, fps: float = 0.0) -> FrameResult:
        """Run one frame through every stage; `fps` is the analysis rate reported in mood events."""
        t0 = time.perf_counter()
        boxes = self.detector.detect(frame.gray)
        t1 = t2 = t3 = time.perf_counter()
        face, probs, quality = (boxes[0], None, None) if boxes else (None, None, None)
        confirmed = face is not None
        if face is not None:
            # Found in the small picture; cut from the same moment's larger one where the camera gives one.
            image = frame.gray if frame.main is None else frame.main
            if self.fuser is None:
                crop = crop_face(image, scale_box(face, frame.gray.shape, image.shape), self.face_margin)
                quality = assess(crop, self.quality) if self.quality is not None else None
            else:
                box = scale_box(self.fuser.track(frame.t, face), frame.gray.shape, image.shape)
                cut = crop_face(image, box, self.face_margin)
                fused = self.fuser.add(self.classifier.resize(cut))
                crop, confirmed = fused.crop, fused.confirmed
                quality = assess(crop, self.quality, side_px=min(cut.shape)) if self.quality is not None else None
                if quality is not None and not confirmed:
                    quality = replace(quality, weight=0.0, reason=UNCONFIRMED)
            # A box not yet confirmed is no face yet: it is not read, and the smoother sees nobody (a cushion the
            # cascade boxes now and then does not keep an empty room's mood from decaying to no_face).
            prepared = self.classifier.prepare(crop) if confirmed else None
            t2 = time.perf_counter()
            probs = None if prepared is None else self.classifier.classify_prepared(prepared)
            t3 = time.perf_counter()
        elif self.fuser is not None:
            self.fuser.miss(frame.t)
        self.last_quality = quality
        event = self.smoother.update(frame.t, probs, fps, weight=1.0 if quality is None else quality.weight,
                                     low_light=0.0 if quality is None else quality.low_light,
                                     far=0.0 if quality is None else quality.far)
        if event is not None:
            self.sink.send(event)
        t4 = time.perf_counter()
        spent = {"detect": t1 - t0, "preprocess": t2 - t1, "classify": t3 - t2, "smooth": t4 - t3}
        self.times.frames += 1
        self.times.faces += face is not None
        for stage, seconds in spent.items():
            self.times.seconds[stage] += seconds
        return FrameResult(face=face, probs=probs, quality=quality, event=event, ms={k: 1000 * v for k, v in spent.items()})


@dataclass
class VisionSetup:
    """Everything a (re)build from the config produces; `close` releases what the setup owns (e.g. its sink)."""

    open_source: Callable[[], FrameSource]  # a fresh source per (re)open; may raise SourceError
    pipeline: VisionPipeline
    max_fps: float  # analysis rate cap
    reopen_initial_s: float = 0.5
    reopen_max_s: float = 30.0
    model_path: str = ""
    model_sha: str = ""
    close: Callable[[], None] = lambda: None


class VisionService:
    """The vision loop. `build()` makes the first VisionSetup, in `run`, so its errors (model, cascade) surface
    there. Callbacks, all optional and called from the loop's thread:

    - `on_iteration(status)` after every analysed frame, and every second while waiting to reopen the camera
      (the loop is alive then, not hung); status: state, mood, confidence, face (the last crop's quality:
      ok, none, or why it counted less, e.g. "face too dark"), fps, model_path, model_sha, privacy, frames,
      source_errors, frame_errors (frames the detector or classifier failed on: skipped, the loop goes on);
    - `on_error(why)` when the source fails, `on_recovered()` at the first frame after that;
    - `on_reload()` at the first safe point (between frames) after `request_reload()`: the daemon builds a new
      setup and hands it to `swap`, or keeps this one.

    A source that ends (a video file) ends `run`; one that raises SourceError is reopened after a backoff.
    """

    def __init__(self, build: Callable[[], VisionSetup], *, on_iteration: Callable[[dict[str, Any]], None] | None = None,
                 on_error: Callable[[str], None] | None = None, on_recovered: Callable[[], None] | None = None,
                 on_reload: Callable[[], None] | None = None) -> None:
        self._build = build
        self._on_iteration, self._on_error, self._on_recovered = on_iteration, on_error, on_recovered
        self._on_reload = on_reload
        self._reload = threading.Event()
        self._paused = threading.Event()
        self._setup: VisionSetup | None = None
        self._pending: VisionSetup | None = None  # swapped in at the next safe point
        self._pending_lock = threading.Lock()
        self._failing = False
        self._state = "starting"
        self._fps = 0.0
        self._frames = 0
        self._source_errors = 0
        self._frame_errors = 0  # frames the detector or classifier failed on (skipped, counted)
        self._last_frame_error = ""
        self._next_due: float | None = None

    def request_reload(self) -> None:
        """Call `on_reload` at the next safe point (between frames). Safe to call from a signal handler."""
        self._reload.set()

    def swap(self, setup: VisionSetup) -> None:
        """Run `setup` from the next safe point on, closing the current one; safe from any thread."""
        with self._pending_lock:
            unused, self._pending = self._pending, setup
        if unused is not None:
            unused.close()

    def set_paused(self, paused: bool) -> None:
        """Privacy mode: the camera is closed and nothing is analysed until unpaused (takes effect within a second)."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"state": self._state, "fps": round(self._fps, 2), "privacy": self._paused.is_set(),
                                  "frames": self._frames, "source_errors": self._source_errors,
                                  "frame_errors": self._frame_errors}
        if self._setup is not None:
            smoother = self._setup.pipeline.smoother
            status.update(mood=smoother.mood, confidence=round(smoother.confidence, 3),
                          face=self._setup.pipeline.face_status(),
                          model_path=self._setup.model_path, model_sha=self._setup.model_sha)
        return status

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set or the source ends. The first build's errors propagate (bad config/model)."""
        self._setup = self._build()
        delay = self._setup.reopen_initial_s
        try:
            while not stop.is_set():
                if self._reload.is_set():
                    self._reload.clear()
                    if self._on_reload is not None:
                        self._on_reload()
                if self._take_pending():
                    delay = self._setup.reopen_initial_s
                    continue
                if self._paused.is_set():
                    self._wait("paused", stop, None)
                    continue
                frames_before = self._frames
                outcome = self._stream(self._setup, stop)
                if outcome == "ended":
                    break
                if outcome == "failed":
                    if self._frames > frames_before:
                        delay = self._setup.reopen_initial_s  # it worked for a while: start the backoff afresh
                    self._wait("reopening camera", stop, delay)
                    delay = min(2 * delay, self._setup.reopen_max_s)
        finally:
            self._state = "stopped"
            self._setup.close()
            with self._pending_lock:
                unused, self._pending = self._pending, None
            if unused is not None:
                unused.close()

    def _take_pending(self) -> bool:
        with self._pending_lock:
            new, self._pending = self._pending, None
        if new is None:
            return False
        old, self._setup = self._setup, new
        if old is not None:
            old.close()
        return True

    def _stream(self, setup: VisionSetup, stop: threading.Event) -> str:
        """Analyse frames until the source ends ("ended"), fails ("failed") or something is requested ("interrupted")."""
        try:
            source = setup.open_source()
        except SourceError as exc:
            self._failed(exc)
            return "failed"
        self._next_due = None
        interval = 1.0 / setup.max_fps
        last_wall: float | None = None
        try:
            for frame in source.frames():
                if stop.is_set() or self._reload.is_set() or self._pending is not None or self._paused.is_set():
                    return "interrupted"
                if not self._due(frame.t, interval):
                    continue
                now = time.monotonic()
                if last_wall is not None:
                    rate = 1.0 / max(now - last_wall, 1e-6)
                    self._fps = rate if self._fps == 0 else self._fps + FPS_SMOOTHING * (rate - self._fps)
                last_wall = now
                try:
                    setup.pipeline.process(frame, self._fps)
                except FrameError as exc:  # that frame is lost, not the camera: count it, go on with the next
                    self._frame_failed(exc)
                self._frames += 1
                self._state = "running"
                if self._failing:
                    self._failing = False
                    if self._on_recovered is not None:
                        self._on_recovered()
                self._report()
                stop.wait(max(0.0, last_wall + interval - time.monotonic()))  # the cap, in wall time
            return "ended"
        except SourceError as exc:
            self._failed(exc)
            return "failed"
        finally:
            source.close()

    def _due(self, t: float, interval: float) -> bool:
        """Whether the frame captured at `t` is analysed: frames come faster than the cap (a video file, a USB camera
        ignoring the asked-for rate) are skipped by capture time, keeping the average rate at the cap."""
        due = self._next_due
        if due is not None and t < due - interval / 4:  # a quarter interval of slack for capture jitter
            return False
        self._next_due = (t if due is None or t > due + interval else due) + interval
        return True

    def _failed(self, exc: SourceError) -> None:
        self._source_errors += 1
        self._failing = True
        self._state = "reopening camera"
        log.warning("frame source failed: %s", exc)
        if self._on_error:
            self._on_error(f"camera: {exc}")

    def _frame_failed(self, exc: FrameError) -> None:
        """Count a frame the detector or classifier failed on; a warning when the reason differs from the last."""
        self._frame_errors += 1
        if str(exc) != self._last_frame_error:
            self._last_frame_error = str(exc)
            log.warning("frame %d skipped: %s", self._frames, exc)

    def _wait(self, state: str, stop: threading.Event, seconds: float | None) -> None:
        """Wait `seconds` (None: as long as paused), reporting every STATUS_DURING_WAIT_S; a stop, a reload request
        or a change of privacy mode ends it within that time."""
        self._state = state
        deadline = None if seconds is None else time.monotonic() + seconds
        paused = self._paused.is_set()
        while (not stop.is_set() and not self._reload.is_set() and self._pending is None
               and self._paused.is_set() == paused):
            self._report()
            left = STATUS_DURING_WAIT_S if deadline is None else min(deadline - time.monotonic(), STATUS_DURING_WAIT_S)
            if left <= 0:
                return
            stop.wait(left)

    def _report(self) -> None:
        if self._on_iteration:
            self._on_iteration(self.status())


def _open_file_source(path: Path, config: Config) -> FrameSource:
    """`--source`: an npz of frames or a folder of images (StoredFrameSource), else a video file (OpenCV)."""
    if path.is_dir() or path.suffix.lower() == ".npz":
        from moodspeaker.adapters.npz_source import StoredFrameSource

        return StoredFrameSource(path, fps=config.camera.fps)
    from moodspeaker.adapters.opencv_source import OpenCVFrameSource

    return OpenCVFrameSource(path, size=(config.camera.width, config.camera.height), fps=config.camera.fps)


def build_vision(config: Config, sink: MoodSink, source: Path | None = None,
                 close: Callable[[], None] = lambda: None) -> VisionSetup:
    """The vision setup the config describes, sending to `sink`. `source` replaces the camera with a file
    (npz, image folder or video). `close` is called when the setup is replaced or the service ends.

    Raises ModelError (model/card) or DetectorError (cascade) with a message saying what to fix.
    """
    from moodspeaker.adapters.camera import open_camera
    from moodspeaker.adapters.haar_detector import HaarFaceDetector
    from moodspeaker.model_proof import load_proven
    from moodspeaker.paths import default_model

    model = Path(config.model.path) if config.model.path else default_model()
    classifier = load_proven(model, num_threads=config.model.threads)  # a model that crashes LiteRT kills a child
    pipeline = VisionPipeline(HaarFaceDetector(config.detector), classifier, Smoother(classifier.labels, config.smoother),
                              sink, face_margin=classifier.card.preprocessing.face_margin, quality=QualityParams(),
                              fusion=FusionParams())
    open_source = (lambda: _open_file_source(source, config)) if source is not None else (lambda: open_camera(config.camera))
    return VisionSetup(open_source=open_source, pipeline=pipeline, max_fps=config.camera.fps,
                       reopen_initial_s=config.vision.reopen_initial_s, reopen_max_s=config.vision.reopen_max_s,
                       model_path=str(model), model_sha=classifier.card.sha256, close=close)
