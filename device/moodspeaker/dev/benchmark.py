"""One `moodspeaker bench` measurement, run in a fresh process so its peak RSS is its own.

    python -m moodspeaker.dev.benchmark {ours,peer} WIDTHxHEIGHT [--paced FPS] [--model M] [--truth clip.json]

Replays the demo clip at the given size through a pipeline — detect, preprocess (crop + model input),
classify, smooth — on one thread and prints one JSON object: fps and per-stage ms over the whole clip
(frame decoding excluded: on the Pi the camera hands over the frame), peak RSS, and accuracy against the
clip's ground truth. With `--paced`, analyses the clip's first frames at that rate in real time instead
and reports the process's CPU use as a percentage of one core.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from moodspeaker.app.vision import VisionPipeline
from moodspeaker.core.crop_quality import QualityParams
from moodspeaker.core.domain import Frame
from moodspeaker.core.fusion import FusionParams
from moodspeaker.core.mood import NO_FACE, MoodEvent
from moodspeaker.core.smoother import Smoother
from moodspeaker.dev.demo_clip import DEFAULT_TRUTH, ClipTruth, load_clip_truth, score, score_boxes
from moodspeaker.ports import EmotionClassifier, FaceDetector


class EventLog:
    """MoodSink that keeps the events (the bench has no player to send them to)."""

    def __init__(self) -> None:
        self.events: list[MoodEvent] = []

    def send(self, event: MoodEvent) -> None:
        self.events.append(event)


def ours(model: Path | None) -> VisionPipeline:
    """The device's pipeline with its default detector settings (tracking on) and the model card's crop."""
    from moodspeaker.adapters.haar_detector import HaarFaceDetector
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier
    from moodspeaker.paths import default_model

    classifier = LiteRTClassifier(model or default_model(), num_threads=1)
    return _pipeline(HaarFaceDetector(), classifier, classifier.card.preprocessing.face_margin, QualityParams(),
                     FusionParams())


def peer() -> VisionPipeline:
    """fer's detector and model (moodspeaker.dev.peer); its boxes already carry fer's padding, so no margin."""
    from moodspeaker.adapters.haar_detector import default_cascade
    from moodspeaker.dev.peer import PeerClassifier, PeerDetector

    return _pipeline(PeerDetector(default_cascade()), PeerClassifier(num_threads=1), 0.0)


def _pipeline(detector: FaceDetector, classifier: EmotionClassifier, margin: float,
              quality: QualityParams | None = None, fusion: FusionParams | None = None) -> VisionPipeline:
    return VisionPipeline(detector, classifier, Smoother(classifier.labels), EventLog(), face_margin=margin,
                          quality=quality, fusion=fusion)


def _frames(truth: ClipTruth, size: tuple[int, int]) -> Iterator[Frame]:
    from moodspeaker.adapters.opencv_source import OpenCVFrameSource

    source = OpenCVFrameSource(truth.video, size=size)
    try:
        yield from source.frames()
    finally:
        source.close()


def replay(pipeline: VisionPipeline, truth: ClipTruth, size: tuple[int, int]) -> dict:
    """The whole clip through the pipeline: wall-clock stage times, CPU time, accuracy against the truth."""
    times, face_labels, moods, boxes, counted = [], [], [], [], []
    cpu = 0.0
    for frame in _frames(truth, size):
        c0 = time.thread_time()
        result = pipeline.process(frame)
        cpu += time.thread_time() - c0
        times.append(frame.t)
        moods.append(pipeline.smoother.mood)
        labels = pipeline.classifier.labels
        face_labels.append(NO_FACE if result.probs is None else labels[int(np.argmax(result.probs))])
        boxes.append(result.face)
        counted.append(result.probs is not None and (result.quality is None or result.quality.weight > 0))
    stats = pipeline.times
    ms = stats.mean_ms()
    return {"frames": stats.frames, "fps": round(stats.fps(), 1), "fps_cpu": round(stats.frames / cpu, 1),
            "ms": {k: round(v, 3) for k, v in ms.items()},
            "ms_per_face": round((ms["preprocess"] + ms["classify"]) * stats.frames / max(stats.faces, 1), 3),
            "detected_frames": stats.faces, **score(truth, times, face_labels, moods),
            **(score_boxes(truth, size, times, boxes, counted) if truth.face_boxes else {})}


def paced(pipeline: VisionPipeline, truth: ClipTruth, size: tuple[int, int], fps: float, seconds: float) -> dict:
    """Analyse frames at `fps` in real time for `seconds`; CPU seconds used per wall second, as % of a core.

    The frames are decoded beforehand (a camera delivers them for free), from the clip's first face segment on.
    """
    first_face = next(seg.start for seg in truth.segments if seg.mood != NO_FACE)
    frames = [f for f in _frames(truth, size) if f.t >= first_face][:round(fps * seconds)]
    cpu0, wall0 = time.process_time(), time.monotonic()
    for i, frame in enumerate(frames):
        pipeline.process(Frame(frame.gray, i / fps), fps)
        time.sleep(max(0.0, wall0 + (i + 1) / fps - time.monotonic()))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return {"analysis_fps": fps, "seconds": round(wall, 2), "cpu_percent": round(100 * cpu / wall, 2)}


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 320x240, got {text!r}") from None
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moodspeaker.dev.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", choices=("ours", "peer"))
    parser.add_argument("size", type=parse_size)
    parser.add_argument("--model", type=Path, default=None, help="our model (default: the device's)")
    parser.add_argument("--truth", type=Path, default=DEFAULT_TRUTH, help="the demo clip's ground truth")
    parser.add_argument("--paced", type=float, default=0.0, metavar="FPS", help="measure CPU use at this analysis rate")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run paced")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    truth = load_clip_truth(args.truth)
    pipeline = ours(args.model) if args.pipeline == "ours" else peer()
    result = paced(pipeline, truth, args.size, args.paced, args.seconds) if args.paced else replay(pipeline, truth, args.size)
    result["rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
