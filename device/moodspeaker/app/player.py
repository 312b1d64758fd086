"""The player side: mood events and button actions in, music and feedback out.

`core.session.Session` decides (which mood plays, what counts as a like, a skip, a full play, privacy mode);
`PlayerService` executes its commands against the backend and the feedback store in one asyncio loop.
Everything reaches the loop through one thread-safe inbox: mood events (`send`, so the service is itself a
MoodSink for `moodspeaker run`; or a MoodSource read by a thread), button actions (`submit_action`, from
gpiozero's threads), track changes (a task awaiting `Player.wait_track_change`) and reload requests. Every
backend command has a time limit below half of systemd's WatchdogSec: a stuck backend is an error in status,
the loop (and its watchdog pings) goes on. `PlayerApp` wires it from the config and swaps in a new setup on
reload, keeping the session (what plays, privacy, counters).

Volume ([volume], core.volume.VolumePlan): the loop keeps the planned volume: it re-reads the backend's volume
every VOLUME_CHECK_S (a phone app's change is the new choice, and any volume above the cap of the local time is
lowered to it) and sets what the plan says. `submit_volume` (the `volume` command, Home Assistant) asks for a
level, clipped to the cap, and is set at the loop's next turn (requests during a hang cost one attempt, not one
each). A mood change that cuts a track fades out and in; a play that fails after the fade gets its volume back.
`submit_privacy` sets privacy mode (the `privacy` command, Home Assistant); quiet hours with the camera off
follow the precedence in core.session.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import queue
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from moodspeaker.adapters.backend_call import BUDGET_S
from moodspeaker.config import Config, PlayerConfig, VolumeConfig
from moodspeaker.core.domain import ButtonAction, OwnerTookOver, Track
from moodspeaker.core.feedback import rank
from moodspeaker.core.mood import MoodEvent
from moodspeaker.core.policy import MoodPolicy
from moodspeaker.core.session import Command, Like, Next, PlaySwitch, QueueNext, Record, Session, SetPrivacy, TogglePause
from moodspeaker.core.volume import VolumePlan, fade
from moodspeaker.errors import MoodspeakerError, PlayerError, PlayerUnavailable
from moodspeaker.ports import FeedbackStore, MoodSource, Player

log = logging.getLogger(__name__)

TICK_S = 0.5  # the loop wakes at least this often: cool-downs expire, status is reported, the watchdog is fed
WATCH_RETRY_S = 2.0  # pause before watching the backend again after it failed in a way it cannot retry itself
# The longest one backend command may take. The adapters keep each port call within backend_call.BUDGET_S and
# fail cleanly; this is the backstop above that, for a command of several calls or a backend that hangs in a way
# its adapter does not catch.
CALL_TIMEOUT_S = BUDGET_S + 3.0
FADE_STEP_S = {"mpd": 0.05, "spotify": 0.5}  # one volume step per this long while fading (Spotify: one request each)
MOOD_BACKLOG = 32  # mood events waiting at most (a burst of datagrams must not keep the speaker switching)
REPEAT_LOG_S = 60.0  # a failure that repeats unchanged is logged this often, with its count
VOLUME_CHECK_S = 5.0  # the backend's volume is re-read this often (and after a failure, tried again this late)


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


def policy_from_config(config: Config) -> MoodPolicy:
    """The mood policy; in MPD's library modes with the default [player] playlists, each key names its own
    folder or tag value (moods/happy/, genre "happy") instead of the stored playlist mood-happy."""
    p = config.player
    playlists = p.playlists
    if config.player.backend == "mpd" and config.mpd.library != "playlists" and playlists == PlayerConfig().playlists:
        playlists = {key: key for key in playlists}
    return MoodPolicy(playlists, p.strategy, p.lift, p.cooldown_s, switch_at_once=p.switch == "at_once")


def describe(track: Track | None) -> str:
    if track is None:
        return ""
    return f"{track.artist} - {track.title}" if track.title else track.uri


class PlayerService:
    def __init__(self, player: Player, policy: MoodPolicy, feedback: FeedbackStore, *, backend: str,
                 early_skip_s: float = 30.0, rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, on_iteration: Callable[[dict[str, Any]], None] | None = None,
                 on_privacy: Callable[[bool], None] | None = None, on_reload: Callable[[], Awaitable[Any] | None] | None = None,
                 call_timeout_s: float = CALL_TIMEOUT_S, volume: VolumeConfig | None = None,
                 minute: Callable[[], int] = local_minute) -> None:
        self.player, self.feedback = player, feedback
        self.volume_config = volume or VolumeConfig()
        self.plan = VolumePlan(self.volume_config.rules())
        self._minute = minute
        self._volume_read_at = float("-inf")  # the backend's volume is re-read at the loop's first turn after this
        self._volume_retry_at = float("-inf")  # after a failed volume call, none before this (monotonic s)
        self._volume_asked = False  # a level was asked for since the last check: set it, do not re-read first
        self.mood_heard_at: float | None = None  # when the last mood event arrived (vision is seen)
        self.session = Session(policy, early_skip_s)
        self.backend = backend
        self.call_timeout_s = call_timeout_s
        self._rng = rng or random.Random()
        self._clock, self._wall = clock, wall_clock
        self._on_iteration, self._on_privacy, self._on_reload = on_iteration, on_privacy, on_reload
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._moods: collections.deque[MoodEvent] = collections.deque()  # bounded apart: see send()
        self._moods_lock = threading.Lock()
        self.moods_dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop = threading.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._retired: list[Player] = []  # backends replaced by a reload, closed by the loop
        self.errors = 0
        self.handled = 0  # messages handled so far: what a test waits on to know that one was, and did nothing
        self.turns = 0  # loop turns completed (messages, then the tick, quiet hours and the volume)
        self.last_error = ""  # the problem now; a backend's is cleared when a command works again
        self.watch_failures = 0  # times watching the backend for track changes failed (it is watched again)
        self.watcher_dead = ""  # why the track watcher ended on its own: fatal, see _report
        self._backend_failing = False  # last_error is the backend's
        self._repeats, self._repeats_since = 0, 0.0  # the same failure again: how often since it was last logged

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
        self._submit("action", action)

    def submit_volume(self, level: int) -> None:
        """Ask for a volume (clipped to [volume] maximum, or the quiet hours' cap); from any thread."""
        self._submit("volume", level)

    def submit_privacy(self, on: bool) -> None:
        """Set privacy mode on or off (not a toggle); from any thread."""
        self._submit("privacy", on)

    def submit_resume(self) -> None:
        """The owner hands control back (`moodspeaker resume`); from any thread."""
        self._submit("resume", None)

    def request_reload(self) -> None:
        """Call `on_reload` from the loop at its next turn; safe from any thread or a signal handler."""
        self._submit("reload", None)

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

    # --- a reload's new setup (from the loop's thread, inside on_reload) ------------------------------

    def replace(self, player: Player, feedback: FeedbackStore, policy: MoodPolicy, early_skip_s: float,
                backend: str, volume: VolumeConfig | None = None) -> None:
        """Carry on with a new backend, store and rules; the session (what plays, privacy, counters) stays.
        The old backend is closed by the loop right after."""
        self.session.reconfigure(policy, early_skip_s)
        if volume is not None:
            self.volume_config, self.plan.rules = volume, volume.rules()
        self.feedback, self.backend = feedback, backend
        if player is not self.player:
            if type(player) is type(self.player):  # the same kind of backend: it goes on with what the old one knew
                player.carry_over(self.player)
            self._retired.append(self.player)
            self.player = player

    def retire(self, player: Player) -> None:
        """Close `player` (a backend never used: a reload that failed to swap in) at the loop's next turn."""
        self._retired.append(player)

    # --- the loop -----------------------------------------------------------------------------------

    async def run(self, source: MoodSource | None = None) -> None:
        """Serve until stop(); then close the player. `source`: read mood events from it in a thread."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        self._watcher = asyncio.create_task(self._watch_tracks(self.player))
        reader = None
        if source is not None:
            reader = threading.Thread(target=self._read_source, args=(source,), name="mood-source", daemon=True)
            reader.start()
        try:
            if self.volume_config.start >= 0:  # else the backend's volume is learnt by _keep_volume
                self.plan.ask(self.volume_config.start, self._minute())
                self._volume_asked = True
            while not self._stop.is_set():
                self._wake.clear()
                while (self._moods or not self._inbox.empty()) and not self._stop.is_set():
                    await self._handle(*(self._inbox.get() if not self._inbox.empty() else self._next_mood()))
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
            await self._stop_watching()
            if reader is not None:
                reader.join(timeout=2)
            self._retired.append(self.player)
            await self._close_retired()
            self._loop = self._wake = None

    def _next_mood(self) -> tuple[str, MoodEvent]:
        with self._moods_lock:
            return "mood", self._moods.popleft()

    def _read_source(self, source: MoodSource) -> None:
        while not self._stop.is_set():
            try:
                event = source.receive(TICK_S)
            except Exception as exc:  # a bug in the transport must not end mood reception silently
                log.exception("player: receiving mood events failed; retrying")
                self._submit("error", exc)
                self._stop.wait(WATCH_RETRY_S)
                continue
            if event is not None:
                self.send(event)

    async def _watch_tracks(self, player: Player) -> None:
        while True:
            try:
                self._submit("track", await player.wait_track_change())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a PlayerError, or a bug in the backend: report it, keep watching
                self.watch_failures += 1
                if not isinstance(exc, MoodspeakerError):
                    log.exception("player: watching %s failed", self.backend)
                self._submit("error", exc)
                await asyncio.sleep(WATCH_RETRY_S)

    async def _stop_watching(self) -> None:
        """Cancel the track watcher and wait for it, at most one call's time limit: a backend that ignores the
        cancel (as Python 3.11's wait_for may) must not keep a reload or a stop waiting for ever."""
        assert self._watcher is not None
        self._watcher.cancel()
        done, _ = await asyncio.wait({self._watcher}, timeout=self.call_timeout_s)
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

    async def _handle(self, kind: str, item: Any) -> None:
        now, wall = self._clock(), self._wall()
        if kind == "mood":
            self.mood_heard_at = now
            before = self.session.mood_changes
            commands = self.session.on_mood(item.mood, item.confidence, now)
            if self.session.mood_changes != before:
                log.info("mood: %s (confidence %.2f)", item.mood, item.confidence)
            await self._execute(commands)
        elif kind == "action":
            await self._execute(self.session.on_action(item, now, wall))
        elif kind == "track" and isinstance(item, OwnerTookOver):
            self._recovered()
            log.info("another client %s: the owner is in control until a button press or `moodspeaker resume`",
                     item.what)
            await self._execute(self.session.on_owner(item))
        elif kind == "resume":
            if self.session.owner is not None:
                log.info("the owner hands back: mood music again")
            await self._execute(self.session.resume(now))
        elif kind == "track":
            self._recovered()
            before = self.session.tracks_started
            commands = self.session.on_track(item, now, wall)
            if self.session.tracks_started != before:
                log.info("track: %s", describe(item))
            await self._execute(commands)
        elif kind == "error":
            self._failed(item)
        elif kind == "volume":  # set by the loop's next _keep_volume: ten taps during a hang cost one attempt
            self.plan.ask(item, self._minute())
            self._volume_asked = True
        elif kind == "privacy":
            await self._execute(self.session.set_privacy(item))
        elif kind == "reload" and self._on_reload is not None:
            before = self.player
            try:  # builds beside (in a thread, if it returns an awaitable) and swaps on success; says how it went
                if inspect.isawaitable(building := self._on_reload()):
                    task = asyncio.ensure_future(building)
                    while not (await asyncio.wait({task}, timeout=TICK_S))[0]:
                        self._report()  # the loop is alive while a thread builds: the watchdog is fed
                    task.result()
            except Exception as exc:  # a bug while swapping: report it, keep serving
                log.exception("player: reload failed")
                self._failed(exc)
            if self.player is not before:  # a new backend: watch it instead, and hand it what waits to play
                await self._stop_watching()
                self._watcher = asyncio.create_task(self._watch_tracks(self.player))
                await self._execute(self.session.backend_replaced())
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
        if isinstance(command, Record):  # in a thread: SQLite's fsync and busy waits stay off the loop
            await asyncio.to_thread(self.feedback.record, command.emotion, command.track_uri, command.event, command.at)
            return
        if isinstance(command, SetPrivacy):
            log.info("privacy mode %s: camera %s, music continues", "on" if command.on else "off",
                     "off" if command.on else "on")
            if self._on_privacy is not None:
                self._on_privacy(command.on)
            return
        try:
            async with asyncio.timeout(self.call_timeout_s):
                await self._backend_command(command)
        except TimeoutError:
            raise PlayerUnavailable(f"{self.backend} did not answer within {self.call_timeout_s:g} s; "
                                    "the player keeps serving and tries again") from None
        self._recovered()

    async def _backend_command(self, command: Command) -> None:
        if isinstance(command, PlaySwitch):
            await self._play(command)
        elif isinstance(command, Next):
            await self.player.next()
        elif isinstance(command, QueueNext):
            await self.player.play_next(list(command.tracks))
        elif isinstance(command, TogglePause):
            await self.player.toggle_pause()
        elif isinstance(command, Like):
            await self.player.like(command.track)

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
        if switch.at_once and self.session.playing is not None and self.volume_config.fade_s > 0:
            await self._fade_across(tracks)
        elif switch.at_once:
            await self.player.play(tracks)
        else:
            await self.player.play_next(tracks)
        self.session.queued(switch, tracks)

    async def _fade_across(self, tracks: list[Track]) -> None:
        """Fade the current track out, start `tracks`, fade them in to the planned volume (not a hard cut). A play
        that fails leaves the volume low; the plan still holds the level, and the next _keep_volume restores it."""
        self.plan.was_read(await self.player.volume())  # another client's volume is the level to come back to
        if not self.plan.backend:
            await self.player.play(tracks)
            return
        level, half = self.plan.wanted or self.plan.backend or 0, self.volume_config.fade_s / 2
        step = FADE_STEP_S.get(self.backend, 0.1)
        for steps, then in ((fade(self.plan.backend or 0, 0, half, step), None), (fade(0, level, half, step), tracks)):
            if then is not None:
                await self.player.play(then)
            elapsed = 0.0
            for at, volume in steps:
                await asyncio.sleep(at - elapsed)
                elapsed = at
                await self.player.set_volume(volume)
                self.plan.was_set(volume)

    async def _keep_volume(self) -> None:
        """Every turn, within one command's time limit: set what the plan says when it differs from the backend
        (a request, the cap of the time, a volume a failed play left low); every VOLUME_CHECK_S also re-read the
        backend's volume first (unless a level was just asked for). After a failure, nothing for VOLUME_CHECK_S:
        requests during a hang wait in the plan, the latest one wins."""
        now, minute = self._clock(), self._minute()
        read = now >= self._volume_read_at and not self._volume_asked
        if now < self._volume_retry_at or (not read and self.plan.correction(minute) is None):
            return
        try:
            async with asyncio.timeout(self.call_timeout_s):
                if read:
                    self._volume_read_at = now + VOLUME_CHECK_S
                    self.plan.was_read(await self.player.volume())
                self._volume_asked = False
                if (change := self.plan.correction(minute)) is not None:
                    await self.player.set_volume(change[0])
                    self.plan.was_set(change[0])
                    log.info("volume %d (%s)", *change)
            return
        except TimeoutError:
            self._failed(PlayerUnavailable(f"{self.backend} did not answer within {self.call_timeout_s:g} s "
                                           "(the volume); the player tries again"))
        except (PlayerError, PlayerUnavailable) as exc:
            self._failed(exc)
        self._volume_retry_at = now + VOLUME_CHECK_S
        self.plan.backend = None  # unknown: a set that timed out may still land, and is not another client's

    def _failed(self, exc: BaseException, backend: bool = True) -> None:
        """Count and show a failure; log it when it differs from the last one, and a repeated one once a minute
        with its count (a Spotify rate limit of an hour is a few lines, not thousands)."""
        self.errors += 1
        why, now = str(exc), self._clock()
        if why != self.last_error:
            log.warning("player: %s", why)
            self._repeats, self._repeats_since = 0, now
        else:
            self._repeats += 1
            if now - self._repeats_since >= REPEAT_LOG_S:
                log.warning("player: %s (%d times in %.0f s)", why, self._repeats, now - self._repeats_since)
                self._repeats, self._repeats_since = 0, now
        self.last_error, self._backend_failing = why, backend

    def _recovered(self) -> None:
        """A backend command worked: a backend failure no longer shows (a feedback store's failure does), and a
        volume that waits since a failed volume call goes at the next turn, not VOLUME_CHECK_S after the failure."""
        self._volume_retry_at = float("-inf")
        if self.last_error and self._backend_failing:
            log.info("player: %s works again", self.backend)
            self.last_error = ""

    def _report(self) -> None:
        self._check_watcher()
        if self._on_iteration is not None:
            self._on_iteration(self.status())

    def _check_watcher(self) -> None:
        """A track watcher that ended on its own (a CancelledError or a BaseException from the backend) never
        notices a track again: say so once, and the status's `fatal` stops the watchdog pings (ServiceRuntime),
        so systemd restarts the player instead of leaving it deaf. The watcher's own loop survives any Exception."""
        watcher = self._watcher
        if self.watcher_dead or watcher is None or not watcher.done() or self._stop.is_set():
            return
        exc = None if watcher.cancelled() else watcher.exception()
        how = "was cancelled" if exc is None else f"died ({type(exc).__name__}: {exc})"
        self.watcher_dead = f"watching {self.backend} for track changes {how}; the player must be restarted"
        log.warning("player: %s", self.watcher_dead)

    def status(self) -> dict[str, Any]:
        s = self.session
        return {"mood": s.mood, "confidence": round(s.confidence, 3), "backend": self.backend,
                "track": describe(s.playing.track if s.playing else None), "paused": s.paused,
                "control": f"owner ({s.owner.what} from another client)" if s.owner else "speaker",
                "privacy": s.privacy, "mood_changes": s.mood_changes, "tracks_started": s.tracks_started,
                "errors": self.errors, "last_error": self.last_error, "volume": self.plan.backend,
                "moods_dropped": self.moods_dropped, "fatal": self.watcher_dead,
                "watch_failures": self.watch_failures,
                "volume_cap": self.plan.rules.cap(self._minute()),
                "title": s.playing.track.title if s.playing else "", "feedback_problem": self.feedback.problem}


def _quietly(close: Callable[[], None], what: str) -> None:
    try:
        close()
    except Exception as exc:  # a part being replaced: the new one matters now
        log.warning("player: %s failed: %s", what, exc)


def build_player(config: Config) -> Player:
    """The backend named by [player] backend, configured from its own section."""
    if config.player.backend == "spotify":
        from moodspeaker.adapters.spotify_player import SpotifyPlayer

        return SpotifyPlayer.from_config(config.spotify)
    from moodspeaker.adapters.mpd_player import MpdPlayer

    return MpdPlayer.from_config(config.mpd)


@dataclass
class PlayerSetup:
    """What one (re)build from the config makes; the buttons belong to PlayerApp (they keep their pins)."""

    config: Config
    player: Player
    store: Any  # SqliteFeedbackStore: a FeedbackStore that is closed with the setup
    policy: MoodPolicy


def build_setup(config: Config) -> PlayerSetup:
    """Backend, feedback store and policy from `config`; raises (ConfigError, SetupError, ...) if any cannot be made."""
    from moodspeaker.adapters.sqlite_feedback import SqliteFeedbackStore

    policy = policy_from_config(config)
    # music first: a corrupt file is kept aside, a full disk keeps events in memory until there is room
    store = SqliteFeedbackStore(config.feedback.path, move_corrupt_aside=True, wait_for_room=True)
    try:
        player = build_player(config)
    except BaseException:
        store.close()
        raise
    return PlayerSetup(config, player, store, policy)


class PlayerApp:
    """The player side wired from the config: backend, policy, feedback store, buttons and status LED.

    `on_privacy(on)` lets the owner of the camera turn it off (the vision daemon through the privacy flag, or
    vision in the same process). `camera_on()` says whether the camera really captures now; the LED follows it.
    `swap(setup)` takes a reload's new setup (see Daemon.reload). A machine without usable GPIO runs without
    buttons, with a warning. With `runtime_dir` it follows the owner's commands there: the privacy flag
    (`moodspeaker privacy`) and volume requests (`moodspeaker volume`). With [mqtt] host set it runs the Home
    Assistant bridge.
    """

    def __init__(self, config: Config, on_iteration: Callable[[dict[str, Any]], None] | None = None,
                 on_privacy: Callable[[bool], None] | None = None, on_reload: Callable[[], Awaitable[Any] | None] | None = None,
                 camera_on: Callable[[], bool] | None = None, call_timeout_s: float = CALL_TIMEOUT_S,
                 pin_factory: Any = None, runtime_dir: str | None = None) -> None:
        from moodspeaker.adapters.privacy_flag import PrivacyFlag
        from moodspeaker.adapters.volume_request import ResumeRequest, VolumeRequest

        self._pin_factory = pin_factory
        self._camera_on = camera_on
        self._on_iteration = on_iteration
        self._privacy_flag = PrivacyFlag(runtime_dir) if runtime_dir else None
        self._volume_request = VolumeRequest(runtime_dir) if runtime_dir else None
        self._resume_request = ResumeRequest(runtime_dir) if runtime_dir else None
        self.buttons: Any = None  # GpioButtons, when the config enables them and GPIO is usable
        self.bridge: Any = None  # MqttBridge, when [mqtt] host is set
        self.setup = build_setup(config)
        self.service = PlayerService(self.setup.player, self.setup.policy, self.setup.store,
                                     backend=config.player.backend, early_skip_s=config.player.early_skip_s,
                                     on_iteration=self._iteration, on_privacy=on_privacy, on_reload=on_reload,
                                     call_timeout_s=call_timeout_s, volume=config.volume)
        self._open_buttons(config)
        self._open_bridge(config)

    def _open_bridge(self, config: Config) -> None:
        if not config.mqtt.host:
            return
        from moodspeaker.adapters.mqtt_bridge import BridgeCommands, MqttBridge, VisionPresence

        service = self.service
        self.bridge = MqttBridge(config.mqtt, BridgeCommands(
            privacy=service.submit_privacy, skip=lambda: service.submit_action(ButtonAction.SKIP),
            like=lambda: service.submit_action(ButtonAction.LIKE), volume=service.submit_volume,
            pause=self._pause, resume=service.submit_resume), volume_max=config.volume.maximum)
        self._vision = VisionPresence(stale_s=3 * config.smoother.heartbeat_s + 1)
        self.bridge.start()

    def _pause(self, on: bool) -> None:
        """Pause (True) or resume: the skip button's hold, a toggle, when it changes something."""
        if on != self.service.session.paused:
            self.service.submit_action(ButtonAction.PAUSE)

    def _close_bridge(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None

    def _open_buttons(self, config: Config) -> None:
        from moodspeaker.adapters.gpio_buttons import GpioButtons, GpioUnavailable

        if not config.buttons.enabled:
            return
        try:
            self.buttons = GpioButtons(config.buttons, self.service.submit_action, pin_factory=self._pin_factory)
        except GpioUnavailable as exc:
            log.warning("%s; running without buttons", exc)
            return
        self._update_led()

    def _close_buttons(self) -> None:
        if self.buttons is not None:
            self.buttons.set_led(False)
            self.buttons.close()
            self.buttons = None

    def _update_led(self) -> None:
        if self.buttons is not None:
            self.buttons.set_led(self._camera_on() if self._camera_on is not None else not self.service.session.privacy)

    def _iteration(self, status: dict[str, Any]) -> None:
        self._update_led()
        privacy_pending = self._follow_owner(status)
        if self.bridge is not None:
            from moodspeaker.adapters.mqtt_bridge import SpeakerState

            now = time.monotonic()
            captures = self._camera_on() if self._camera_on is not None else True
            seen = self._vision.seen(now, self.service.mood_heard_at, captures, status["privacy"])
            self.bridge.publish_state(SpeakerState(
                mood=status["mood"] if seen else None, confidence=status["confidence"],
                track=status["title"] or status["track"],  # a file without a title tag: its name
                control=status["control"],
                paused=status["paused"], privacy=None if privacy_pending else status["privacy"],
                volume=status["volume"], volume_max=status["volume_cap"]), now)
            status = {**status, "mqtt": self.bridge.describe()}
        if self._on_iteration is not None:
            self._on_iteration(status)

    def _follow_owner(self, status: dict[str, Any]) -> bool:
        """`moodspeaker privacy` / `volume` / `resume` from the runtime folder (the flag is polled once a second).
        True when privacy mode is about to change (`status` shows the state before it)."""
        privacy_pending = False
        if self._privacy_flag is not None and (on := self._privacy_flag.changed()) is not None \
                and on != status["privacy"]:
            self.service.submit_privacy(on)
            privacy_pending = True
        if self._volume_request is not None and (level := self._volume_request.take()) is not None:
            self.service.submit_volume(level)
        if self._resume_request is not None and self._resume_request.take():
            self.service.submit_resume()
        return privacy_pending

    def swap(self, new: PlayerSetup) -> None:
        """Continue with a reload's setup (called from the player loop). What may fail comes first (the bridge,
        the buttons: reopened only if their settings changed), so a swap that raises leaves the old backend and
        store serving (see `discard`); then the service takes the new ones, the old store closes, and the old
        backend is closed by the loop. A part of the old setup that fails to close is a warning, not a failure."""
        old = self.setup
        if new.config.mqtt != old.config.mqtt or new.config.volume.maximum != old.config.volume.maximum:
            _quietly(self._close_bridge, "closing the Home Assistant bridge")
            self._open_bridge(new.config)
        if new.config.buttons != old.config.buttons:
            _quietly(self._close_buttons, "closing the buttons")
            self._open_buttons(new.config)
        self.setup = new
        self.service.replace(new.player, new.store, new.policy, new.config.player.early_skip_s, new.config.player.backend,
                             new.config.volume)
        _quietly(old.store.close, "closing the previous feedback store")

    def discard(self, new: PlayerSetup) -> None:
        """A reload's setup that failed to swap in: its store closes now, its backend by the loop."""
        new.store.close()
        self.service.retire(new.player)

    def close(self) -> None:
        self._close_bridge()
        self._close_buttons()
        self.setup.store.close()
