"""The player side: mood events and button actions in, music and feedback out.

`PlayerService.run()` is one asyncio loop. Everything reaches it through one thread-safe inbox: mood
events (`send`, so the service is itself a MoodSink for `moodspeaker run`; or a MoodSource read by a
thread), button actions (`submit_action`, from gpiozero's threads) and track changes (a task awaiting
`Player.wait_track_change`). The loop applies the mood policy, orders each playlist by Thompson sampling
over the listener's feedback for the mood, and records feedback: a like, a skip (early in the first
`early_skip_s`), a full play when a track ends by itself. A playlist change is not the listener's verdict
on the track it interrupts, so it records nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moodspeaker.config import Config
from moodspeaker.core.domain import ButtonAction, Track
from moodspeaker.core.feedback import FULL_PLAY, LIKE, rank, skip_event
from moodspeaker.core.mood import NO_FACE, MoodEvent
from moodspeaker.core.policy import MoodPolicy, Switch
from moodspeaker.errors import PlayerError, PlayerUnavailable
from moodspeaker.ports import FeedbackStore, MoodSource, Player

log = logging.getLogger(__name__)

TICK_S = 0.5  # the loop wakes at least this often: cool-downs expire, status is reported
WATCH_RETRY_S = 2.0  # pause before watching the backend again after it failed in a way it cannot retry itself


@dataclass
class _Playing:
    track: Track
    emotion: str | None  # the mood it was queued for (None: not queued by us, no feedback)
    started_at: float


def policy_from_config(config: Config) -> MoodPolicy:
    p = config.player
    return MoodPolicy(p.playlists, p.strategy, p.lift, p.cooldown_s, switch_at_once=p.switch == "at_once")


def describe(track: Track | None) -> str:
    if track is None:
        return ""
    return f"{track.artist} - {track.title}" if track.title else track.uri


class PlayerService:
    def __init__(self, player: Player, policy: MoodPolicy, feedback: FeedbackStore, *, backend: str,
                 early_skip_s: float = 30.0, rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, on_iteration: Callable[[dict[str, Any]], None] | None = None,
                 on_privacy: Callable[[bool], None] | None = None) -> None:
        self.player, self.policy, self.feedback = player, policy, feedback
        self.backend = backend
        self.early_skip_s = early_skip_s
        self._rng = rng or random.Random()
        self._clock, self._wall = clock, wall_clock
        self._on_iteration, self._on_privacy = on_iteration, on_privacy
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop = threading.Event()
        self.mood = NO_FACE
        self.confidence = 0.0
        self.privacy = False
        self.paused = False
        self.playing: _Playing | None = None
        self._emotion_of: dict[str, str] = {}  # track URI -> the mood it was queued for
        self._expected_change: str | None = None  # "skip" or "switch": the next track change is ours, not an end
        self.mood_changes = 0
        self.tracks_started = 0
        self.errors = 0
        self.last_error = ""

    # --- thread-safe inputs -------------------------------------------------------------------------

    def send(self, event: MoodEvent) -> None:
        """MoodSink: deliver a mood event from any thread (vision in the same process)."""
        self._submit("mood", event)

    def submit_action(self, action: ButtonAction) -> None:
        self._submit("action", action)

    def stop(self) -> None:
        """Ask `run()` to finish; safe from any thread or a signal handler."""
        self._stop.set()
        self._poke()

    def _submit(self, kind: str, item: Any) -> None:
        self._inbox.put((kind, item))
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    # --- the loop -----------------------------------------------------------------------------------

    async def run(self, source: MoodSource | None = None) -> None:
        """Serve until stop(); then close the player. `source`: read mood events from it in a thread."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        watcher = asyncio.create_task(self._watch_tracks())
        reader = None
        if source is not None:
            reader = threading.Thread(target=self._read_source, args=(source,), name="mood-source", daemon=True)
            reader.start()
        try:
            while not self._stop.is_set():
                self._wake.clear()
                while not self._inbox.empty():
                    await self._handle(*self._inbox.get())
                await self._handle("tick", None)
                self._report()
                if self._inbox.empty() and not self._stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), TICK_S)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            if reader is not None:
                reader.join(timeout=2)
            await self.player.close()
            self._loop = self._wake = None

    def _read_source(self, source: MoodSource) -> None:
        while not self._stop.is_set():
            event = source.receive(TICK_S)
            if event is not None:
                self.send(event)

    async def _watch_tracks(self) -> None:
        while True:
            try:
                self._submit("track", await self.player.wait_track_change())
            except (PlayerError, PlayerUnavailable) as exc:
                self._submit("error", exc)
                await asyncio.sleep(WATCH_RETRY_S)

    async def _handle(self, kind: str, item: Any) -> None:
        try:
            if kind == "mood":
                await self._on_mood(item)
            elif kind == "action":
                await self._on_action(item)
            elif kind == "track":
                await self._on_track(item)
            elif kind == "tick":
                await self._apply(self.policy.tick(self._clock()))
            elif kind == "error":
                raise item
        except (PlayerError, PlayerUnavailable) as exc:
            self.errors += 1
            self.last_error = str(exc)
            log.warning("player: %s", exc)

    def _report(self) -> None:
        if self._on_iteration is not None:
            self._on_iteration(self.status())

    def status(self) -> dict[str, Any]:
        return {"mood": self.mood, "confidence": round(self.confidence, 3), "backend": self.backend,
                "track": describe(self.playing.track if self.playing else None), "paused": self.paused,
                "privacy": self.privacy, "mood_changes": self.mood_changes, "tracks_started": self.tracks_started,
                "errors": self.errors, "last_error": self.last_error}

    # --- what happens ---------------------------------------------------------------------------------

    async def _on_mood(self, event: MoodEvent) -> None:
        if self.privacy:
            return
        self.confidence = event.confidence
        if event.mood == self.mood:
            return
        self.mood = event.mood
        self.mood_changes += 1
        log.info("mood: %s (confidence %.2f)", event.mood, event.confidence)
        await self._apply(self.policy.on_mood(event.mood, self._clock()))

    async def _apply(self, switch: Switch | None) -> None:
        if switch is None:
            return
        try:
            await self._carry_out(switch)
        except PlayerUnavailable:  # transient: retried after the cool-down (a PlayerError needs the user)
            self.policy.failed(switch)
            raise

    async def _carry_out(self, switch: Switch) -> None:
        emotion = switch.selection.emotion
        counts = self.feedback.counts(emotion)
        tracks: list[Track] = []
        for playlist in switch.selection.playlists:
            tracks += rank(await self.player.playlist_tracks(playlist), counts, self._rng)
        tracks = list({t.uri: t for t in tracks}.values())  # a track in two of the playlists plays once
        if not tracks:
            raise PlayerError(f"the playlists {list(switch.selection.playlists)} for {emotion} are empty")
        log.info("%s %d tracks for %s from %s", "playing" if switch.at_once else "queueing after this track",
                 len(tracks), emotion, ", ".join(switch.selection.playlists))
        if switch.at_once:
            self._emotion_of = {t.uri: emotion for t in tracks}
            await self.player.play(tracks)
            self._expected_change = "switch" if self.playing else None
            self.paused = False
        else:
            keep = {self.playing.track.uri: self.playing.emotion} if self.playing and self.playing.emotion else {}
            self._emotion_of = {**{t.uri: emotion for t in tracks}, **keep}
            await self.player.play_next(tracks)

    async def _on_track(self, track: Track | None) -> None:
        now = self._clock()
        ended, reason = self.playing, self._expected_change
        self._expected_change = None
        if ended is not None and reason is None and ended.emotion is not None:
            self.feedback.record(ended.emotion, ended.track.uri, FULL_PLAY, self._wall())
        if track is None:
            self.playing = None
            await self._apply(self.policy.on_queue_end(now))
            return
        self.playing = _Playing(track, self._emotion_of.get(track.uri), now)
        self.tracks_started += 1
        log.info("track: %s", describe(track))

    async def _on_action(self, action: ButtonAction) -> None:
        playing = self.playing
        if action == ButtonAction.SKIP:
            if playing is not None and playing.emotion is not None:
                event = skip_event(self._clock() - playing.started_at, self.early_skip_s)
                self.feedback.record(playing.emotion, playing.track.uri, event, self._wall())
            await self.player.next()
            self._expected_change = "skip"
        elif action == ButtonAction.PAUSE:
            await self.player.toggle_pause()
            self.paused = not self.paused
        elif action == ButtonAction.LIKE:
            if playing is not None:
                if playing.emotion is not None:
                    self.feedback.record(playing.emotion, playing.track.uri, LIKE, self._wall())
                await self.player.like(playing.track)
        elif action == ButtonAction.PRIVACY:
            self.privacy = not self.privacy
            log.info("privacy mode %s: camera %s, music continues", "on" if self.privacy else "off",
                     "off" if self.privacy else "on")
            if self._on_privacy is not None:
                self._on_privacy(self.privacy)


def build_player(config: Config) -> Player:
    """The backend named by [player] backend, configured from its own section."""
    if config.player.backend == "spotify":
        from moodspeaker.adapters.spotify_player import SpotifyPlayer

        return SpotifyPlayer.from_config(config.spotify)
    from moodspeaker.adapters.mpd_player import MpdPlayer

    return MpdPlayer.from_config(config.mpd)


class PlayerApp:
    """The player side wired from the config: backend, policy, feedback store, buttons and status LED.

    `on_privacy(on)` lets the owner of the camera turn it off (`moodspeaker run`); the LED follows here.
    A machine without usable GPIO runs without buttons, with a warning.
    """

    def __init__(self, config: Config, on_iteration: Callable[[dict[str, Any]], None] | None = None,
                 on_privacy: Callable[[bool], None] | None = None, pin_factory: Any = None) -> None:
        from moodspeaker.adapters.gpio_buttons import GpioButtons, GpioUnavailable
        from moodspeaker.adapters.sqlite_feedback import SqliteFeedbackStore

        self.buttons: GpioButtons | None = None
        self.store = SqliteFeedbackStore(config.feedback.path)

        def privacy(on: bool) -> None:
            if self.buttons is not None:
                self.buttons.set_led(not on)
            if on_privacy is not None:
                on_privacy(on)

        self.service = PlayerService(build_player(config), policy_from_config(config), self.store,
                                     backend=config.player.backend, early_skip_s=config.player.early_skip_s,
                                     on_iteration=on_iteration, on_privacy=privacy)
        if config.buttons.enabled:
            try:
                self.buttons = GpioButtons(config.buttons, self.service.submit_action, pin_factory=pin_factory)
                self.buttons.set_led(True)
            except GpioUnavailable as exc:
                log.warning("%s; running without buttons", exc)

    def close(self) -> None:
        if self.buttons is not None:
            self.buttons.set_led(False)
            self.buttons.close()
        self.store.close()
