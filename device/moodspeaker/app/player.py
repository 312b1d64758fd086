"""The player side: mood events and button actions in, music and feedback out.

`core.session.Session` decides (which mood plays, what counts as a like, a skip, a full play, privacy mode);
`PlayerService` executes its commands against the backend and the feedback store in one asyncio loop, one typed
message at a time: mood events (`send`, so the service is itself a MoodSink for `moodspeaker run`, or the mood
socket, read by the loop itself), button actions, volume and privacy requests and the owner's hand-back (the
`submit_*` methods, safe from gpiozero's and MQTT's threads), track changes (a task watching the backend) and
reload requests. A message of a type it does not know is a bug: it ends the loop. Every backend command has a time
limit below half of systemd's WatchdogSec: a stuck backend is an error in status, the loop (and its watchdog pings)
goes on. A track watcher that ended, or that hangs in a backend call that ignored its cancel, is fatal: the pings
stop and systemd restarts the player. app.player_app.PlayerApp wires it from the config and swaps in a new setup
on reload (`replace`), keeping the session (what plays, privacy, counters).

Volume ([volume]): the loop keeps core.volume.VolumePlan's volume: every turn it does the plan's `step` (re-read
the backend's volume every few seconds: a phone app's change is the new choice, capped; set what the plan says).
`submit_volume` asks for a level, set at the loop's next turn. A mood change that cuts a track fades out and in; a
play that fails after the fade gets its volume back. Quiet hours with the camera off follow core.session's
precedence over `submit_privacy`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from moodspeaker.adapters.backend_call import BUDGET_S
from moodspeaker.config import VolumeConfig
from moodspeaker.core.domain import BackendReturned, ButtonAction, OwnerTookOver, Track
from moodspeaker.core.feedback import rank
from moodspeaker.core.mood import MoodEvent
from moodspeaker.core.policy import MoodPolicy
from moodspeaker.core.repeats import RepeatLog
from moodspeaker.core.session import Command, Like, Next, PlaySwitch, Record, Restore, Session, SetPrivacy, TogglePause
from moodspeaker.core.volume import VolumePlan
from moodspeaker.errors import MoodspeakerError, PlayerError, PlayerUnavailable
from moodspeaker.ports import FeedbackStore, MoodSource, Player

log = logging.getLogger(__name__)

TICK_S = 0.5  # the loop wakes at least this often: cool-downs expire, status is reported, the watchdog is fed
WATCH_RETRY_S = 2.0  # pause before watching the backend again after it failed in a way it cannot retry itself
# One wait for a track change lasts at most this long, then the watcher waits again (its heartbeat). Longer than any
# one pause inside a backend's watch (Spotify's poll_s, up to 60 s, then a command and its back-off), so that a
# span's end never keeps a backend from looking: a backend's watch starts its pauses afresh when called again.
WATCH_SPAN_S = 120.0
# The longest one backend command may take. The adapters keep each port call within backend_call.BUDGET_S and
# fail cleanly; this is the backstop above that, for a command of several calls or a backend that hangs in a way
# its adapter does not catch.
CALL_TIMEOUT_S = BUDGET_S + 3.0
MOOD_BACKLOG = 32  # mood events waiting at most (a burst of datagrams must not keep the speaker switching)


@dataclass(frozen=True)
class MoodArrived:
    event: MoodEvent


@dataclass(frozen=True)
class ButtonPressed:
    action: ButtonAction


@dataclass(frozen=True)
class TrackChanged:
    track: Track | None  # None: playback stopped


@dataclass(frozen=True)
class VolumeAsked:
    level: int


@dataclass(frozen=True)
class PrivacySet:
    on: bool


@dataclass(frozen=True)
class Resume:
    """The owner hands control back."""


@dataclass(frozen=True)
class Reload:
    pass


@dataclass(frozen=True)
class Failure:
    """Something outside a command failed (watching the backend): counted and shown in status."""

    error: Exception


# What reaches the loop; OwnerTookOver and BackendReturned are the backend's reports beside track changes.
Message = (MoodArrived | ButtonPressed | TrackChanged | OwnerTookOver | BackendReturned | VolumeAsked | PrivacySet | Resume
           | Reload | Failure)


def local_minute() -> int:
    """Minutes after local midnight now (quiet hours are local time)."""
    now = time.localtime()
    return now.tm_hour * 60 + now.tm_min


def call_timeout(watchdog_s: float | None) -> float:
    """The time limit for one backend command: CALL_TIMEOUT_S, and under systemd short enough that one command
    plus a tick's wait stays under half of WatchdogSec (13 s for the units' 30 s)."""
    if watchdog_s is None:
        return CALL_TIMEOUT_S
    return min(CALL_TIMEOUT_S, max(watchdog_s / 4, watchdog_s / 2 - TICK_S - 1.0))


class PlayerService:
    def __init__(self, player: Player, policy: MoodPolicy, feedback: FeedbackStore, *, backend: str,
                 early_skip_s: float = 30.0, rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, on_iteration: Callable[[dict[str, Any]], None] | None = None,
                 on_privacy: Callable[[bool], None] | None = None, on_reload: Callable[[], Awaitable[Any]] | None = None,
                 call_timeout_s: float = CALL_TIMEOUT_S, volume: VolumeConfig | None = None,
                 minute: Callable[[], int] = local_minute, watch_span_s: float = WATCH_SPAN_S) -> None:
        self.player, self.feedback, self.backend = player, feedback, backend
        self.session = Session(policy, early_skip_s)
        self.volume_config = volume or VolumeConfig()
        self.plan = VolumePlan(self.volume_config.rules())
        self.call_timeout_s, self.watch_span_s = call_timeout_s, watch_span_s
        self._minute, self._rng, self._clock, self._wall = minute, rng or random.Random(), clock, wall_clock
        self._on_iteration, self._on_privacy, self._on_reload = on_iteration, on_privacy, on_reload
        self._inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._moods: collections.deque[MoodEvent] = collections.deque()  # bounded apart: see send()
        self._moods_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop = threading.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._watch_beat = 0.0  # when the watcher last came back from the backend (time.monotonic: real time)
        self._answered = asyncio.Event()  # set when the loop has handled a BackendReturned (made anew by run())
        self._retired: list[Player] = []  # backends replaced by a reload, closed by the loop
        self._replaced_kind: str | None = None  # a reload's new backend is not settled yet: the old one's kind
        self._repeats = RepeatLog()
        self._backend_failing = False  # last_error is the backend's
        self.mood_heard_at: float | None = None  # when the last mood event arrived (vision is seen)
        self.moods_dropped = self.errors = self.watch_failures = 0  # watch_failures: watching the backend failed
        self.handled = 0  # messages handled so far: what a test waits on to know that one was, and did nothing
        self.turns = 0  # loop turns completed (messages, then the tick, quiet hours and the volume)
        self.last_error = ""  # the problem now; a backend's is cleared when a command works again
        self.fatal = ""  # what the player cannot mend itself (a dead or stuck track watcher): see _check_watcher

    # --- thread-safe inputs -------------------------------------------------------------------------

    def send(self, event: MoodEvent) -> None:
        """MoodSink: deliver a mood event from any thread (vision in the same process). At most MOOD_BACKLOG wait:
        a burst beyond that drops the oldest (counted in status as moods_dropped), never the newest."""
        with self._moods_lock:
            if len(self._moods) >= MOOD_BACKLOG:
                self._moods.popleft()
                self.moods_dropped += 1
            self._moods.append(event)
        self._poke()

    def submit_action(self, action: ButtonAction) -> None:
        self._submit(ButtonPressed(action))

    def submit_volume(self, level: int) -> None:
        """Ask for a volume (clipped to [volume] maximum, or the quiet hours' cap); from any thread."""
        self._submit(VolumeAsked(level))

    def submit_privacy(self, on: bool) -> None:
        """Set privacy mode on or off (not a toggle); from any thread."""
        self._submit(PrivacySet(on))

    def submit_resume(self) -> None:
        """The owner hands control back (`moodspeaker resume`); from any thread."""
        self._submit(Resume())

    def request_reload(self) -> None:
        """Call `on_reload` from the loop at its next turn; safe from any thread."""
        self._submit(Reload())

    def stop(self) -> None:
        """Ask `run()` to finish; safe from any thread."""
        self._stop.set()
        self._poke()

    def _submit(self, message: Message) -> None:
        self._inbox.put(message)
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    # --- a reload's new setup (from the loop's thread, inside on_reload) ------------------------------

    def replace(self, player: Player, feedback: FeedbackStore, policy: MoodPolicy, early_skip_s: float,
                backend: str, volume: VolumeConfig | None = None) -> None:
        """Carry on with a new backend, store and rules; the session (what plays, privacy, counters) stays.
        The old backend is closed by the loop right after."""
        self.session.reconfigure(policy, early_skip_s)
        if volume is not None:
            self.volume_config, self.plan.rules = volume, volume.rules()
        if player is not self.player:
            self._replaced_kind = self._replaced_kind or self.backend
            self._retired.append(self.player)
            self.player = player
        self.feedback, self.backend = feedback, backend

    async def settle(self) -> None:
        """A new backend `replace` brought is told what should be playing (unless it is of another kind: the old
        one's tracks mean nothing to it; it starts the mood's music when it reports nothing playing), then watched
        instead of the old. From the reload before READY (Daemon.reload_off_loop), else when the reload is over."""
        if self._replaced_kind is None:
            return
        kind, self._replaced_kind = self._replaced_kind, None
        await self._stop_watching()
        if self.backend == kind:
            await self._execute(self.session.returned(self._clock()))
        self._start_watching()

    def retire(self, player: Player) -> None:
        """Close `player` (a backend never used: a reload that failed to swap in) at the loop's next turn."""
        self._retired.append(player)

    # --- the loop -----------------------------------------------------------------------------------

    async def run(self, source: MoodSource | None = None) -> None:
        """Serve until stop(); then close the player. `source`: mood events, read by the loop when they wait."""
        self._loop, self._wake, self._answered = asyncio.get_running_loop(), asyncio.Event(), asyncio.Event()
        self._start_watching()
        if source is not None:
            self._loop.add_reader(source.fileno(), self._read_moods, source)
        if self.volume_config.start >= 0:  # else the backend's volume is learnt by _keep_volume
            self.plan.ask(self.volume_config.start, self._minute())
        try:
            while not self._stop.is_set():
                self._wake.clear()
                while not self._stop.is_set() and (message := self._next()) is not None:
                    await self._handle(message)
                    self.handled += 1
                    self._report()  # after every message: the watchdog waits at most one command's time limit
                await self._execute(self.session.tick(self._clock()))
                await self._execute(self.session.quiet_hours(self.plan.rules.camera_off(self._minute())))
                await self._keep_volume()
                self._report()
                self.turns += 1
                if self._inbox.empty() and not self._moods and not self._stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(TICK_S):
                            await self._wake.wait()
        finally:
            if source is not None:
                self._loop.remove_reader(source.fileno())
            await self._stop_watching()
            self._retired.append(self.player)
            await self._close_retired()
            self._loop = self._wake = None

    def _next(self) -> Message | None:
        """The inbox's next message (buttons, track changes, requests), else the oldest waiting mood."""
        with contextlib.suppress(queue.Empty):
            return self._inbox.get_nowait()
        with self._moods_lock:
            return MoodArrived(self._moods.popleft()) if self._moods else None

    def _read_moods(self, source: MoodSource) -> None:
        """The loop's reader of the mood socket: takes every event waiting (the source refuses and counts malformed
        datagrams). A transport that fails leaves the player deaf: fatal, so systemd restarts it."""
        try:
            while (event := source.receive_nowait()) is not None:
                self.send(event)
        except Exception as exc:
            assert self._loop is not None
            self._loop.remove_reader(source.fileno())
            log.exception("player: receiving mood events failed")
            self._fatal(f"receiving mood events failed ({type(exc).__name__}: {exc})")

    def _start_watching(self) -> None:
        self._watch_beat = time.monotonic()
        self._watcher = asyncio.create_task(self._watch_tracks(self.player))

    async def _watch_tracks(self, player: Player) -> None:
        """Hand the backend's track changes to the loop. Each wait lasts at most watch_span_s (a longer track is
        waited for again), so the heartbeat moves at least that often unless a call hangs past its cancel. After a
        BackendReturned it watches again only once the loop has answered it (what it sees before the restore, an
        empty queue, is no track change)."""
        while True:
            self._watch_beat = time.monotonic()
            span = asyncio.timeout(self.watch_span_s)
            try:
                async with span:
                    report = await player.wait_track_change()
            except Exception as exc:  # a PlayerError, or a bug in the backend: report it, keep watching
                if span.expired():
                    continue
                self.watch_failures += 1
                if not isinstance(exc, MoodspeakerError):
                    log.exception("player: watching %s failed", self.backend)
                self._submit(Failure(exc))
                await asyncio.sleep(WATCH_RETRY_S)
                continue
            if not isinstance(report, BackendReturned):
                self._submit(report if isinstance(report, OwnerTookOver) else TrackChanged(report))
                continue
            self._answered.clear()
            self._submit(report)
            await self._answered.wait()

    async def _stop_watching(self) -> None:
        """Cancel the track watcher and wait for it, at most one call's time limit: a backend that ignores the
        cancel (as Python 3.11's wait_for may) must not keep a reload or a stop waiting for ever."""
        watcher, self._watcher = self._watcher, None
        assert watcher is not None
        watcher.cancel()
        done, _ = await asyncio.wait({watcher}, timeout=self.call_timeout_s)
        if not done:
            log.error("player: watching %s did not stop when cancelled; left behind", self.backend)

    async def _close_retired(self) -> None:
        while self._retired:
            player = self._retired.pop(0)
            try:
                async with asyncio.timeout(self.call_timeout_s):
                    await player.close()
            except TimeoutError:
                log.warning("player: closing the previous backend timed out")
            except Exception:  # the new backend already serves; an old one that fails to close changes nothing
                log.exception("player: closing the previous backend failed")

    async def _handle(self, message: Message) -> None:
        now, wall = self._clock(), self._wall()
        match message:
            case MoodArrived(event):
                self.mood_heard_at = now
                before = self.session.mood_changes
                commands = self.session.on_mood(event.mood, event.confidence, now)
                if self.session.mood_changes != before:
                    log.info("mood: %s (confidence %.2f)", event.mood, event.confidence)
                await self._execute(commands)
            case ButtonPressed(action):
                await self._execute(self.session.on_action(action, now, wall))
            case TrackChanged(track):
                self._recovered()
                before = self.session.tracks_started
                commands = self.session.on_track(track, now, wall)
                if track is not None and self.session.tracks_started != before:
                    log.info("track: %s", track.label)
                await self._execute(commands)
            case BackendReturned():
                self._recovered()
                try:
                    await self._execute(self.session.returned(now))
                finally:
                    self._answered.set()
            case OwnerTookOver(what):
                self._recovered()
                log.info("another client %s: the owner is in control until a button press or `moodspeaker resume`", what)
                await self._execute(self.session.on_owner(message))
            case Resume():
                if self.session.owner is not None:
                    log.info("the owner hands back: mood music again")
                await self._execute(self.session.resume(now))
            case VolumeAsked(level):  # set by the loop's next _keep_volume: ten taps during a hang cost one attempt
                self.plan.ask(level, self._minute())
            case PrivacySet(on):
                await self._execute(self.session.set_privacy(on))
            case Reload():
                await self._reload()
            case Failure(error):
                if isinstance(error, PlayerUnavailable):
                    self.session.backend_lost(now)
                self._failed(error)
            case _:
                raise TypeError(f"player: no handler for the message {message!r} (a bug)")

    async def _reload(self) -> None:
        """`on_reload` builds beside (in a thread) and swaps on success, saying how it went; meanwhile the loop
        reports (the watchdog is fed). A new backend is settled (`settle`) if on_reload did not."""
        if self._on_reload is None:
            return
        building = asyncio.ensure_future(self._on_reload())
        while not (await asyncio.wait({building}, timeout=TICK_S))[0]:
            self._report()
        if (exc := building.exception()) is not None:  # a bug while swapping: report it, keep serving
            log.error("player: reload failed", exc_info=exc)
            self._failed(exc)
        await self.settle()
        await self._close_retired()

    async def _execute(self, commands: list[Command]) -> None:
        for command in commands:
            try:
                await self._carry_out(command)
            except (PlayerError, PlayerUnavailable) as exc:
                self.session.failed(command, transient=isinstance(exc, PlayerUnavailable))
                self._failed(exc)
            except MoodspeakerError as exc:  # the feedback store: the music goes on
                self._failed(exc, backend=False)
            except Exception as exc:  # a bug (a foreign exception an adapter let through): report it, keep serving
                log.exception("player: %s failed", type(command).__name__)
                self.session.failed(command, transient=False)
                self._failed(exc)
            self._report()  # after every command: the watchdog waits at most one command's time limit

    async def _carry_out(self, command: Command) -> None:
        match command:
            case Record(emotion, track_uri, event, at):  # in a thread: SQLite's fsync and busy waits stay off the loop
                await asyncio.to_thread(self.feedback.record, emotion, track_uri, event, at)
                return
            case SetPrivacy(on):
                log.info("privacy mode %s: camera %s, music continues", "on" if on else "off", "off" if on else "on")
                if self._on_privacy is not None:
                    self._on_privacy(on)
                return
        async with self._within_limit():
            match command:
                case PlaySwitch():
                    await self._play(command)
                case Next():
                    await self.player.next()
                case Restore(tracks, index, elapsed_s, paused):
                    await self.player.restore(list(tracks), index, elapsed_s, paused)
                case TogglePause():
                    await self.player.toggle_pause()
                case Like(track):
                    await self.player.like(track)
        self._recovered()

    @contextlib.asynccontextmanager
    async def _within_limit(self) -> AsyncIterator[None]:
        """One backend command's time limit; past it the backend is unavailable for now."""
        try:
            async with asyncio.timeout(self.call_timeout_s):
                yield
        except TimeoutError:
            raise PlayerUnavailable(f"{self.backend} did not answer within {self.call_timeout_s:g} s; "
                                    "the player keeps serving and tries again") from None

    async def _play(self, command: PlaySwitch) -> None:
        switch = command.switch
        emotion = switch.selection.emotion
        counts = await asyncio.to_thread(self.feedback.counts, emotion)
        tracks: list[Track] = []
        for playlist in switch.selection.playlists:
            tracks += rank(await self.player.playlist_tracks(playlist), counts, self._rng)
        tracks = list({t.uri: t for t in tracks}.values())  # a track in two of the playlists plays once
        if not tracks:
            raise PlayerError(f"the playlists {list(switch.selection.playlists)} for {emotion} are empty")
        log.info("%s %d tracks for %s from %s", "playing" if switch.at_once else "queueing after this track",
                 len(tracks), emotion, ", ".join(switch.selection.playlists))
        if not switch.at_once:
            await self.player.play_next(tracks)
        elif self.session.playing is not None and self.volume_config.fade_s > 0:
            await self._fade_across(tracks)
        else:
            await self.player.play(tracks)
        self.session.queued(switch, tracks)

    async def _fade_across(self, tracks: list[Track]) -> None:
        """Fade the current track out, start `tracks`, fade them in (VolumePlan.fade). A play that fails leaves the
        volume low; the plan still holds the level, and the next _keep_volume restores it."""
        self.plan.was_read(await self.player.volume())  # another client's volume is the level to come back to
        fade_out, fade_in = self.plan.fade(self.volume_config.fade_s, self.player.fade_step_s)
        await self._set_volumes(fade_out)
        await self.player.play(tracks)
        await self._set_volumes(fade_in)

    async def _set_volumes(self, steps: list[tuple[float, int]]) -> None:
        elapsed = 0.0
        for at, volume in steps:
            await asyncio.sleep(at - elapsed)
            elapsed = at
            await self.player.set_volume(volume)
            self.plan.was_set(volume)

    async def _keep_volume(self) -> None:
        """Every turn, within one command's time limit: what the plan's `step` says (re-read the backend's volume,
        set the plan's correction). A failure pauses it (VolumePlan.failed)."""
        now, minute = self._clock(), self._minute()
        if (step := self.plan.step(now, minute)) is None:
            return
        try:
            async with self._within_limit():
                if step == "read":
                    self.plan.was_read(await self.player.volume())
                if (change := self.plan.correction(minute)) is not None:
                    await self.player.set_volume(change[0])
                    self.plan.was_set(change[0])
                    log.info("volume %d (%s)", *change)
        except (PlayerError, PlayerUnavailable) as exc:
            self._failed(exc)
            self.plan.failed(now)

    def _failed(self, exc: BaseException, backend: bool = True) -> None:
        """Count and show a failure; log it when it is new, a repeated one once a minute with its count."""
        self.errors += 1
        if (line := self._repeats.line(str(exc), self._clock())) is not None:
            log.warning("player: %s", line)
        self.last_error, self._backend_failing = str(exc), backend

    def _recovered(self) -> None:
        """A backend command worked: a backend failure no longer shows (a feedback store's failure does), and a
        volume that waits since a failed volume call goes at the next turn."""
        self.plan.backend_works()
        if self.last_error and self._backend_failing:
            log.info("player: %s works again", self.backend)
            self.last_error = self._repeats.last = ""

    def _report(self) -> None:
        self._check_watcher()
        if self._on_iteration is not None:
            self._on_iteration(self.status())

    def _check_watcher(self) -> None:
        """A track watcher that ended on its own (a CancelledError or a BaseException from the backend; its own loop
        survives any Exception), or whose heartbeat is older than a span and a call's limit (hung in a backend call
        that ignored its cancel), never notices a track again: fatal."""
        watcher = self._watcher
        if self.fatal or watcher is None or self._stop.is_set():
            return
        if watcher.done():
            exc = None if watcher.cancelled() else watcher.exception()
            how = "was cancelled" if exc is None else f"died ({type(exc).__name__}: {exc})"
        elif (silent := time.monotonic() - self._watch_beat) > self.watch_span_s + self.call_timeout_s:
            how = f"is stuck: no heartbeat for {silent:.0f} s (a backend call that ignored its cancel)"
        else:
            return
        self._fatal(f"watching {self.backend} for track changes {how}")

    def _fatal(self, why: str) -> None:
        """Say it once; the status's `fatal` stops the watchdog pings (ServiceRuntime), so systemd restarts the
        player instead of leaving it deaf."""
        self.fatal = f"{why}; the player must be restarted"
        log.warning("player: %s", self.fatal)

    def status(self) -> dict[str, Any]:
        return {**self.session.status(), "backend": self.backend, "errors": self.errors, "last_error": self.last_error,
                "volume": self.plan.backend, "volume_cap": self.plan.rules.cap(self._minute()),
                "moods_dropped": self.moods_dropped, "fatal": self.fatal, "watch_failures": self.watch_failures,
                "feedback_problem": self.feedback.problem}
