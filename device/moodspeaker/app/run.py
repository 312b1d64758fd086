"""Vision and player in one process (`moodspeaker run`, the demo): no socket, the player is the vision's sink.

Vision runs in a thread (its loop is blocking); the player's asyncio loop runs in the calling thread and also
does the reloads. Privacy mode from the like button pauses the camera directly; the LED follows the camera.
A source that ends (a video file) ends both.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moodspeaker.app.lifecycle import Daemon
from moodspeaker.config import Config
from moodspeaker.core.mood import MoodEvent
from moodspeaker.ports import MoodSink


class TeeMoodSink:
    """MoodSink that hands each event to several sinks in order (e.g. a printer, then the player)."""

    def __init__(self, *sinks: MoodSink) -> None:
        self.sinks = sinks

    def send(self, event: MoodEvent) -> None:
        for sink in self.sinks:
            sink.send(event)


def run_together(config: Config, source: Path | None, stop: threading.Event, *, watch: MoodSink | None = None,
                 on_iteration: Callable[[dict[str, Any]], None] | None = None, daemon: Daemon | None = None) -> dict[str, Any]:
    """Serve until `stop` is set (vision sees it between frames, then stops the player) or the source ends;
    returns the player's final status. `watch` sees every mood event before the player does. With a `daemon`,
    its SIGHUP rebuilds vision and player beside the running ones and swaps both only if both built.
    Vision's start-up errors (model, cascade) re-raise here.
    """
    from moodspeaker.app.player import PlayerApp, PlayerSetup, build_setup
    from moodspeaker.app.vision import VisionService, VisionSetup, build_vision

    vision: VisionService | None = None

    def privacy(on: bool) -> None:
        if vision is not None:
            vision.set_paused(on)

    def camera_on() -> bool:
        return vision is not None and vision.status()["state"] == "running"

    def build_both(fresh: Config) -> tuple[VisionSetup, PlayerSetup]:
        seeing = build_vision(fresh, sink, source=source)
        try:
            return seeing, build_setup(fresh)
        except BaseException:
            seeing.close()
            raise

    def swap_both(new: tuple[VisionSetup, PlayerSetup]) -> None:
        assert vision is not None
        vision.swap(new[0])
        app.swap(new[1])

    def reload() -> None:
        if daemon is not None:
            daemon.reload(build_both, swap_both)

    app = PlayerApp(config, on_iteration=on_iteration, on_privacy=privacy, on_reload=reload, camera_on=camera_on)
    sink: MoodSink = app.service if watch is None else TeeMoodSink(watch, app.service)
    vision = VisionService(lambda: build_vision(config, sink, source=source))
    if daemon is not None:
        daemon.on_stop, daemon.on_reload = app.service.stop, app.service.request_reload
    failures: list[BaseException] = []

    def see() -> None:
        try:
            vision.run(stop)
        except BaseException as exc:
            failures.append(exc)
        finally:
            app.service.stop()

    seer = threading.Thread(target=see, name="vision", daemon=True)
    seer.start()
    try:
        asyncio.run(app.service.run())
    finally:
        stop.set()
        seer.join(timeout=10)
        app.close()
    if failures:
        raise failures[0]
    return app.service.status()
