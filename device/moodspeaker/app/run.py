"""Vision and player in one process (`moodspeaker run`, the demo): no socket, the player is the vision's sink.

Vision runs in a thread (its loop is blocking); the player's asyncio loop runs in the calling thread, takes the
signals and does the reloads (each built in a worker thread). Privacy mode (the like button, Home Assistant,
`moodspeaker privacy`) pauses the camera directly; the LED follows the camera. A source that ends (a video file)
ends both.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from moodspeaker.app.lifecycle import Daemon
from moodspeaker.config import Config
from moodspeaker.core.domain import Frame
from moodspeaker.core.mood import MoodEvent
from moodspeaker.ports import FrameSource, MoodSink

log = logging.getLogger(__name__)


class TeeMoodSink:
    """MoodSink that hands each event to several sinks in order (the demo's narrator, then the player)."""

    def __init__(self, *sinks: MoodSink) -> None:
        self.sinks = sinks

    def send(self, event: MoodEvent) -> None:
        for sink in self.sinks:
            sink.send(event)


class ResumingSource:
    """A file (`--source`) opened once for the whole run: the vision loop closes its source at every reload and
    privacy pause and opens it again, which would start the clip over; this one goes on where it was. It is
    opened afresh only after it ended or failed. `open` is the VisionSetup's `open_source`."""

    def __init__(self, open_file: Callable[[], FrameSource]) -> None:
        self._open_file = open_file
        self._file: FrameSource | None = None
        self._frames: Iterator[Frame] | None = None

    def open(self) -> ResumingSource:
        return self

    def frames(self) -> Iterator[Frame]:
        if self._frames is None:
            self._file = self._open_file()
            self._frames = iter(self._file.frames())
        return self

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        assert self._frames is not None
        try:
            return next(self._frames)
        except BaseException:  # ended (StopIteration) or failed (SourceError): the next stream opens it again
            self.release()
            raise

    def close(self) -> None:
        """The vision loop's close after each stream: the file stays open (see `release`)."""

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._frames = None


async def run_together(config: Config, source: Path | None, daemon: Daemon, *, watch: MoodSink | None = None,
                       on_iteration: Callable[[dict[str, Any]], None] | None = None, runtime_dir: str | None = None,
                       on_vision_iteration: Callable[[dict[str, Any]], None] | None = None,
                       call_timeout_s: float | None = None) -> dict[str, Any]:
    """Serve until the daemon's SIGTERM/SIGINT (taken by this loop) or the source's end; returns the player's final
    status. `watch` sees every mood event before the player does. SIGHUP rebuilds vision and player in a worker
    thread beside the running ones and swaps both only if both built (a `source` file goes on where it was).
    `on_iteration` gets the player's status after each of its loop iterations, `on_vision_iteration` vision's after
    each frame. With `runtime_dir` the player follows the owner's commands there and keeps the privacy flag, as the
    player daemon does. Vision's start-up errors (model, cascade) re-raise here.
    """
    from moodspeaker.adapters.privacy_flag import PrivacyFlag
    from moodspeaker.app.player import CALL_TIMEOUT_S
    from moodspeaker.app.player_app import PlayerApp, PlayerSetup, build_setup
    from moodspeaker.app.vision import VisionService, VisionSetup, build_vision

    vision: VisionService | None = None
    flag = PrivacyFlag(runtime_dir) if runtime_dir else None
    resuming: ResumingSource | None = None  # with a `source` file: the first setup's, kept across reloads
    stop = threading.Event()  # the vision loop's: set when the player's loop ends

    def privacy(on: bool) -> None:
        if vision is not None:
            vision.set_paused(on)
        if flag is not None:
            try:
                flag.set(on)  # what `moodspeaker privacy status` reads
            except OSError as exc:
                log.warning("cannot write the privacy flag %s: %s", flag.path, exc)

    def camera_on() -> bool:
        return vision is not None and vision.status()["state"] == "running"

    def build_seeing(fresh: Config) -> VisionSetup:
        nonlocal resuming
        seeing = build_vision(fresh, app.service if watch is None else TeeMoodSink(watch, app.service), source=source)
        if source is None:
            return seeing
        if resuming is None:
            resuming = ResumingSource(seeing.open_source)
        return replace(seeing, open_source=resuming.open)

    def build_both(fresh: Config) -> tuple[VisionSetup, PlayerSetup]:
        seeing = build_seeing(fresh)
        try:
            return seeing, build_setup(fresh)
        except BaseException:
            seeing.close()
            raise

    def swap_both(new: tuple[VisionSetup, PlayerSetup]) -> None:
        assert vision is not None
        vision.swap(new[0])
        app.swap(new[1])

    failures: list[BaseException] = []

    def see() -> None:
        assert vision is not None
        try:
            vision.run(stop)
        except BaseException as exc:
            failures.append(exc)
        finally:
            app.service.stop()

    with daemon.signals_on_loop():
        app = await asyncio.to_thread(
            PlayerApp, config, on_iteration=on_iteration, on_privacy=privacy, camera_on=camera_on,
            on_reload=lambda: daemon.reload_off_loop(build_both, swap_both, settle=app.service.settle),
            runtime_dir=runtime_dir,
            call_timeout_s=CALL_TIMEOUT_S if call_timeout_s is None else call_timeout_s)
        vision = VisionService(lambda: build_seeing(config), on_iteration=on_vision_iteration)
        daemon.on_stop, daemon.on_reload = app.service.stop, app.service.request_reload
        if daemon.stop_requested:  # SIGTERM came while building
            app.service.stop()
        seer = threading.Thread(target=see, name="vision", daemon=True)
        seer.start()
        try:
            await app.service.run()
        finally:
            stop.set()
            await asyncio.to_thread(seer.join, 10)
            app.close()
            if resuming is not None:
                resuming.release()
    if failures:
        raise failures[0]
    return app.service.status()
