"""One daemon lifecycle: a reload builds beside the running setup and swaps only if that works, carrying over
what plays, privacy and the counters; a stuck backend is an error in status while the loop goes on."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mpd
import pytest
from gpiozero.pins.mock import MockFactory
from test_player_service import serve

from moodspeaker.app.lifecycle import Daemon
from moodspeaker.app.player import TICK_S, PlayerService
from moodspeaker.app.player_app import PlayerApp, build_setup
from moodspeaker.config import load_config
from moodspeaker.core.domain import ButtonAction, Track
from moodspeaker.core.mood import MoodEvent
from moodspeaker.core.policy import MoodPolicy
from moodspeaker.dev.mpd_server import MpdServer

MOODSPEAKER = str(Path(sys.executable).with_name("moodspeaker"))


def mood(name: str) -> MoodEvent:
    return MoodEvent(kind="mood", mood=name, confidence=0.9, t=0.0)


async def until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def current_song(server: MpdServer) -> dict[str, str]:
    client = mpd.MPDClient()
    client.connect(server.host, server.port)
    try:
        return client.currentsong()
    finally:
        client.disconnect()


def player_config(tmp_path: Path, server: MpdServer, feedback: str | None = None, player: str = "") -> str:
    return (f'[mpd]\nhost = "{server.host}"\nport = {server.port}\nliked_playlist = "liked-{server.port}"\n'
            f'[service]\nruntime_dir = "{tmp_path}"\nstatus_interval = 0.1\n'
            f'[feedback]\npath = "{feedback or tmp_path / "feedback.db"}"\n[player]\ncooldown_s = 0.0\n{player}'
            '[buttons]\nskip_pin = 5\nlike_pin = 6\nled_pin = 13\n')


def test_a_reload_keeps_the_track_privacy_and_counters_and_a_failed_one_keeps_the_old_setup(
        mpd_server: MpdServer, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(player_config(tmp_path, mpd_server))
    config = load_config(path)
    daemon = Daemon("player", config)  # not entered: no signal handlers in the test process
    privacy_calls: list[bool] = []
    factory = MockFactory()
    app = PlayerApp(config, on_iteration=daemon.runtime.iteration, on_privacy=privacy_calls.append,
                    on_reload=lambda: daemon.reload_off_loop(build_setup, app.swap), pin_factory=factory)
    service = app.service
    state = lambda: json.loads((tmp_path / "player.json").read_text())  # noqa: E731

    async def scenario() -> None:
        service.send(mood("happy"))
        await until(lambda: service.session.tracks_started == 1)
        playing = current_song(mpd_server)
        service.submit_action(ButtonAction.PRIVACY)
        await until(lambda: service.session.privacy)
        first_store = app.setup.store

        path.write_text(player_config(tmp_path, mpd_server, feedback="/proc/no-such-dir/feedback.db"))
        service.request_reload()
        await until(lambda: state()["reloads"] == 1)
        assert "feedback" in state()["reload_error"] and app.setup.store is first_store

        path.write_text(player_config(tmp_path, mpd_server, player='playlists = { happy = "mood-happy", sad = "mood-calm" }\n'))
        service.request_reload()
        await until(lambda: state()["reloads"] == 2)
        assert state()["reload_error"] is None and state()["last_error"] is None
        assert app.setup.store is not first_store and app.setup.player is service.player
        await until(lambda: service.player._known is not None)  # the new backend has reported what plays ...
        turns = service.turns
        await until(lambda: service.turns >= turns + 2)  # ... and the loop has handled that: no restart, no new track
        now = current_song(mpd_server)
        assert (now["id"], now["file"]) == (playing["id"], playing["file"])
        assert service.session.privacy and service.session.tracks_started == 1 and service.session.mood_changes == 1
        assert service.session.policy.selection_for("sad").playlists == ("mood-calm",)  # the new rules apply
        service.submit_action(ButtonAction.LIKE)  # the new store records, the new backend saves
        await until(lambda: app.setup.store.counts("happy") != {})

    try:
        serve(service, scenario, stop_within=10)
    finally:
        app.close()
    assert privacy_calls == [True]  # turned on once, never reset by a reload


def test_a_reload_is_ready_only_once_the_new_backend_knows_what_plays_so_a_stop_right_after_is_the_owners(
        mpd_server: MpdServer, tmp_path: Path) -> None:
    """System check 24 failed once: the new backend was told what plays after READY, so an `mpc stop` right after
    `systemctl reload` returned was undone by that restore. The restore now comes before READY."""
    path = tmp_path / "config.toml"
    path.write_text(player_config(tmp_path, mpd_server))
    config = load_config(path)
    daemon = Daemon("player", config)
    state = lambda: json.loads((tmp_path / "player.json").read_text())  # noqa: E731
    phases_while_settling: list[str] = []

    async def settle() -> None:
        phases_while_settling.append(state()["phase"])
        await app.service.settle()

    app = PlayerApp(config, on_iteration=daemon.runtime.iteration, pin_factory=MockFactory(),
                    on_reload=lambda: daemon.reload_off_loop(build_setup, app.swap, app.discard, settle))
    service = app.service

    async def scenario() -> None:
        service.send(mood("happy"))
        await until(lambda: service.session.tracks_started == 1)
        service.request_reload()
        await until(lambda: state()["reloads"] == 1)  # READY: what `systemctl reload` waits for
        client = mpd.MPDClient()
        client.connect(mpd_server.host, mpd_server.port)
        client.stop()  # the owner's phone, at once
        client.disconnect()
        await until(lambda: service.status()["control"] == "owner (stopped from another client)")

    try:
        serve(service, scenario, stop_within=10)
    finally:
        app.close()
    assert phases_while_settling == ["reloading"]
    client = mpd.MPDClient()
    client.connect(mpd_server.host, mpd_server.port)
    assert client.status()["state"] == "stop"
    client.disconnect()


class StuckPlayer:
    """An in-memory backend whose commands never answer (a hung MPD, a Spotify stuck in Retry-After)."""

    def __init__(self) -> None:
        self.calls = 0

    async def playlist_tracks(self, playlist: str) -> list[Track]:
        self.calls += 1
        await asyncio.sleep(3600)
        return []

    async def wait_track_change(self) -> Track | None:
        await asyncio.sleep(3600)
        return None

    async def volume(self) -> int | None:
        await asyncio.sleep(3600)
        return None

    async def close(self) -> None:
        pass


class MemoryStore:
    problem = None

    def record(self, emotion: str, track_uri: str, event: str, t: float) -> None:
        pass

    def counts(self, emotion: str) -> dict[str, dict[str, int]]:
        return {}


def test_a_stuck_backend_is_reported_while_the_loop_keeps_feeding_the_watchdog() -> None:
    reported_errors: list[int] = []  # the error count at each report (each one a watchdog ping under systemd)
    player = StuckPlayer()
    service = PlayerService(player, MoodPolicy({"happy": "mood-happy"}, cooldown_s=0.0), MemoryStore(),  # type: ignore[arg-type]
                            backend="mpd", call_timeout_s=0.3,
                            on_iteration=lambda _status: reported_errors.append(service.errors))

    async def main() -> None:
        task = asyncio.create_task(service.run())
        service.send(mood("happy"))
        await until(lambda: service.errors >= 4, timeout=10)  # the play is tried again and again, each time stuck
        reported = len(reported_errors)
        await until(lambda: len(reported_errors) >= reported + 3, timeout=5)  # the loop goes on reporting while stuck
        service.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert "did not answer within 0.3 s" in service.status()["last_error"]
    # every command that ran out of time was reported before the next one began: the watchdog waits one call's
    # limit (and a tick) at most, never the sum of several
    assert set(range(1, 5)) <= set(reported_errors)


def test_run_reloads_on_sighup(mpd_server: MpdServer, tmp_path: Path, shipped_model: Path) -> None:
    """`moodspeaker run` used to ignore SIGHUP (its default action ended the process); now it rebuilds vision and
    player like the daemons do."""
    import queue
    import threading

    from moodspeaker.dev.demo_clip import DEFAULT_TRUTH, load_clip_truth

    config = tmp_path / "config.toml"
    config.write_text(player_config(tmp_path, mpd_server).replace("[buttons]\n", "[buttons]\nenabled = false\n")
                      + f'[model]\npath = "{shipped_model}"\n[camera]\nfps = 10.0\n')
    clip = load_clip_truth(DEFAULT_TRUTH).video  # its first face shows after 4 s
    proc = subprocess.Popen([MOODSPEAKER, "run", "--config", str(config), "--source", str(clip)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 30
        while text not in lines.get(timeout=max(0.1, deadline - time.monotonic())):
            pass

    try:
        wait_for(" track: ")  # vision saw a mood, the player started its playlist: both loops run
        proc.send_signal(signal.SIGHUP)
        wait_for("player: reloaded config and model")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class MemoryPlayer:
    """An in-memory backend: playing a list starts its first track; `end_track()` moves to the next."""

    fade_step_s = 0.0

    def __init__(self) -> None:
        self.queue: list[Track] = []
        self.changes: asyncio.Queue[Track | None] = asyncio.Queue()
        self.restores: list[tuple[list[Track], int]] = []

    async def playlist_tracks(self, playlist: str) -> list[Track]:
        return [Track(f"{playlist}/{i}") for i in range(3)]

    async def play(self, tracks: list[Track]) -> None:
        self.queue = list(tracks)
        await self.changes.put(self.queue[0])

    def end_track(self) -> None:
        self.queue.pop(0)
        self.changes.put_nowait(self.queue[0] if self.queue else None)

    async def wait_track_change(self) -> Track | None:
        return await self.changes.get()

    async def volume(self) -> int | None:
        return None  # no mixer

    async def restore(self, tracks: list[Track], index: int, elapsed_s: float, paused: bool) -> None:
        self.restores.append((tracks, index))
        if self.queue != tracks[index:]:  # a new backend after a reload: it plays on from there
            self.queue = list(tracks[index:])

    async def close(self) -> None:
        pass


def test_a_reload_to_another_kind_of_backend_hands_it_none_of_the_old_ones_tracks() -> None:
    """MPD file names mean nothing to Spotify (and the reverse): the new backend is not told to restore them; when
    it reports nothing playing, the mood's music starts on it. A reload to the same kind restores."""
    policy = MoodPolicy({"happy": "mood-happy"}, cooldown_s=0.0)
    first, same_kind, other_kind = MemoryPlayer(), MemoryPlayer(), MemoryPlayer()
    swaps = iter([(same_kind, "mpd"), (other_kind, "spotify")])

    async def swap() -> None:
        player, backend = next(swaps)
        service.replace(player, MemoryStore(), policy, 30.0, backend)

    service = PlayerService(first, policy, MemoryStore(), backend="mpd", on_reload=swap)  # type: ignore[arg-type]

    async def main() -> None:
        task = asyncio.create_task(service.run())
        service.send(mood("happy"))
        await until(lambda: service.session.tracks_started == 1)
        service.request_reload()
        await until(lambda: same_kind.restores != [])
        assert same_kind.restores == [(first.queue, 0)] and same_kind.queue == first.queue
        service.request_reload()
        await until(lambda: service.player is other_kind)
        other_kind.changes.put_nowait(None)  # it reports nothing playing
        await until(lambda: other_kind.queue != [])
        assert other_kind.restores == [] and {t.uri for t in other_kind.queue} == {f"mood-happy/{i}" for i in range(3)}
        service.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


class FullDiskStore(MemoryStore):
    def record(self, emotion: str, track_uri: str, event: str, t: float) -> None:
        from moodspeaker.adapters.sqlite_feedback import FeedbackNotSaved

        raise FeedbackNotSaved("feedback.db: cannot write (database or disk is full); 1 feedback events kept in memory")


def test_a_store_that_cannot_write_does_not_stop_the_music(caplog: pytest.LogCaptureFixture) -> None:
    """Before, sqlite3's OperationalError escaped from the full play's record() and ended the loop. And the next
    track that started logged "mpd works again" and hid the store's problem from status (issue 20, #12)."""
    player = MemoryPlayer()
    service = PlayerService(player, MoodPolicy({"happy": "mood-happy"}, cooldown_s=0.0), FullDiskStore(),  # type: ignore[arg-type]
                            backend="mpd")

    async def main() -> None:
        task = asyncio.create_task(service.run())
        service.send(mood("happy"))
        await until(lambda: service.session.tracks_started == 1)
        player.end_track()  # a full play: the store cannot take it
        await until(lambda: service.session.tracks_started == 2)
        assert not task.done() and service.errors == 1 and "kept in memory" in service.status()["last_error"]
        player.end_track()
        await until(lambda: service.session.tracks_started == 3)  # still playing
        assert "kept in memory" in service.status()["last_error"]  # the store's problem still shows
        service.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert "works again" not in caplog.text


def test_an_hour_of_the_same_failure_is_a_line_a_minute_not_one_per_try(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 20, #6: a Spotify Retry-After of an hour logged every refused call, about 8,000 lines."""
    from moodspeaker.errors import PlayerUnavailable

    now = [1000.0]

    class RateLimited(MemoryPlayer):
        async def next(self) -> None:
            now[0] += 3.6  # a thousand tries in an hour
            raise PlayerUnavailable("Spotify rate-limits this app for 3600 s (Retry-After); the speaker waits")

    service = PlayerService(RateLimited(), MoodPolicy({"happy": "mood-happy"}), MemoryStore(),  # type: ignore[arg-type]
                            backend="spotify", clock=lambda: now[0])

    async def main() -> None:
        task = asyncio.create_task(service.run())
        for _ in range(1000):
            service.submit_action(ButtonAction.SKIP)
        await until(lambda: service.errors == 1000, timeout=30)
        service.stop()
        await asyncio.wait_for(task, 5)

    with caplog.at_level("WARNING", logger="moodspeaker.app.player"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "rate-limits" in r.getMessage()]
    assert 55 <= len(lines) <= 62  # the first, then one a minute with its count
    assert lines[1].endswith("waits (17 times in 61 s)")  # 17 tries of 3.6 s: the first line a minute on


def test_the_led_follows_the_camera_not_the_privacy_button(tmp_path: Path) -> None:
    """The LED is "lit while the camera captures": it used to follow the player's privacy toggle instead."""
    from moodspeaker.commands.player import vision_captures
    from moodspeaker.config import parse_config

    config = parse_config(f'[mpd]\nhost = "127.0.0.1"\nport = 9\nreconnect_max_s = 0.2\n'  # nobody answers: no matter
                          f'[feedback]\npath = "{tmp_path / "f.db"}"\n[buttons]\nskip_pin = 5\nlike_pin = 6\nled_pin = 13\n')
    factory = MockFactory()
    camera = {"on": False}
    app = PlayerApp(config, camera_on=lambda: camera["on"], pin_factory=factory)
    led = factory.pin(13)

    async def main() -> None:
        task = asyncio.create_task(app.service.run())
        await until(lambda: app.service.turns >= 2)
        assert led.state == 0  # the camera is not capturing yet (vision starting, paused or reopening)
        camera["on"] = True
        await until(lambda: led.state == 1)
        app.service.submit_action(ButtonAction.PRIVACY)  # the player asks for privacy ...
        await until(lambda: app.service.session.privacy)
        turns = app.service.turns
        await until(lambda: app.service.turns >= turns + 2)  # the LED is set at the end of every turn
        assert led.state == 1  # ... but the LED stays lit until the camera really stops
        camera["on"] = False
        await until(lambda: led.state == 0)
        app.service.stop()
        await asyncio.wait_for(task, 5)

    try:
        asyncio.run(main())
    finally:
        app.close()

    from moodspeaker.adapters.sd_notify import SystemdNotifier
    from moodspeaker.app.lifecycle import ServiceRuntime
    from moodspeaker.config import ServiceConfig

    captures = vision_captures(str(tmp_path), fresh_s=5.0)
    assert not captures()  # no vision daemon
    ticks = iter(range(0, 1000, 10))  # each state-file write is due: 10 s apart on the runtime's clock
    vision = ServiceRuntime("vision", ServiceConfig(runtime_dir=str(tmp_path)), SystemdNotifier({}),
                            clock=lambda: float(next(ticks)))
    vision.iteration({"state": "running", "frames": 3})
    assert captures()
    vision.iteration({"state": "paused"})  # privacy: vision closed the camera
    assert not captures()
    state = json.loads((tmp_path / "vision.json").read_text())
    (tmp_path / "vision.json").write_text(json.dumps({**state, "status": {"state": "running"},
                                                      "updated_at": time.time() - 60}))
    assert not captures()  # a vision daemon that stopped updating is not capturing


class BrokenPlayer(MemoryPlayer):
    """A backend with a bug: a library exception escapes its boundary (like mpd.CommandError out of play_next)."""

    async def play(self, tracks: list[Track]) -> None:
        raise KeyError("file")

    async def play_next(self, tracks: list[Track]) -> None:
        raise KeyError("file")


def test_a_foreign_exception_from_the_backend_is_reported_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    player = BrokenPlayer()
    service = PlayerService(player, MoodPolicy({"happy": "mood-happy", "sad": "mood-sad"}, cooldown_s=0.0),  # type: ignore[arg-type]
                            MemoryStore(), backend="mpd")  # type: ignore[arg-type]

    async def main() -> None:
        task = asyncio.create_task(service.run())
        service.send(mood("happy"))
        await until(lambda: service.errors == 1)
        service.send(mood("sad"))  # the loop still takes moods
        await until(lambda: service.errors == 2 and service.session.mood_changes == 2)
        assert not task.done()
        service.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert "KeyError" in caplog.text and "'file'" in service.status()["last_error"]


def test_a_command_and_a_tick_fit_in_half_of_watchdogsec() -> None:
    from moodspeaker.app.player import CALL_TIMEOUT_S, call_timeout

    assert call_timeout(None) == CALL_TIMEOUT_S == call_timeout(30.0)  # the units' WatchdogSec=30: 13 s + 0.5 s < 15 s
    for watchdog in (2.0, 4.0, 10.0, 20.0, 30.0, 120.0):
        assert call_timeout(watchdog) > 0 and call_timeout(watchdog) + TICK_S <= watchdog / 2


class DeafPlayer(MemoryPlayer):
    """A backend whose track watch ignores the first cancel, as MpdPlayer's did on Python 3.11 when the cancel
    landed in the loop turn MPD's answer arrived in (asyncio.wait_for returned the answer, the watch went on)."""

    def __init__(self) -> None:
        super().__init__()
        self.cancels = 0

    async def wait_track_change(self) -> Track | None:
        while True:
            try:
                return await self.changes.get()
            except asyncio.CancelledError:
                self.cancels += 1
                if self.cancels > 1:
                    raise


def test_a_watcher_that_ignores_its_cancel_holds_up_neither_a_reload_nor_the_stop(caplog: pytest.LogCaptureFixture) -> None:
    """`moodspeaker run` and the player daemon hung for ever after a reload: the loop waited, without a time
    limit, for a cancelled track watcher that went on watching the replaced backend (no timer, no wake-up)."""
    old, new = DeafPlayer(), DeafPlayer()
    service: PlayerService

    async def reload() -> None:
        service.replace(new, MemoryStore(), MoodPolicy({"happy": "mood-happy"}, cooldown_s=0.0), 30.0, "mpd")  # type: ignore[arg-type]

    service = PlayerService(old, MoodPolicy({"happy": "mood-happy"}, cooldown_s=0.0), MemoryStore(),  # type: ignore[arg-type]
                            backend="mpd", on_reload=reload, call_timeout_s=0.3)

    async def main() -> None:
        task = asyncio.create_task(service.run())
        service.send(mood("happy"))
        await until(lambda: service.session.tracks_started == 1)
        service.request_reload()
        await until(lambda: service.player is new and not service._retired)  # the old backend closed: reloaded
        new.changes.put_nowait(old.queue[1])  # the next track, seen on the new backend
        await until(lambda: service.session.tracks_started == 2)
        service.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert caplog.text.count("did not stop when cancelled") == 2  # at the reload and at the stop


def test_a_reload_whose_swap_raises_is_ready_again_on_the_old_setup_and_says_why(
        mpd_server: MpdServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """C: a swap that raised (paho's RuntimeError from the Home Assistant bridge) left the daemon in phase
    "reloading" for good: no READY, and `systemctl reload` waited 90 s and failed."""
    import os
    import tempfile

    from test_sd_notify import NotifySocket

    from moodspeaker.adapters.sd_notify import SystemdNotifier
    from moodspeaker.app.lifecycle import ServiceRuntime

    folder = tempfile.mkdtemp(prefix="notify-", dir="/tmp")
    sock = NotifySocket(os.path.join(folder, "notify.sock"))
    path = tmp_path / "config.toml"
    path.write_text(player_config(tmp_path, mpd_server))
    config = load_config(path)
    daemon = Daemon("player", config, ServiceRuntime(
        "player", config.service, SystemdNotifier({"NOTIFY_SOCKET": os.path.join(folder, "notify.sock")})))
    app = PlayerApp(config, on_iteration=daemon.runtime.iteration, pin_factory=MockFactory(),
                    on_reload=lambda: daemon.reload_off_loop(build_setup, app.swap, app.discard))
    service, old_setup = app.service, app.setup

    def broken_bridge(_config: object) -> None:
        raise RuntimeError("The client is not currently connected.")  # what paho raises

    monkeypatch.setattr(app, "_open_bridge", broken_bridge)
    state = lambda: json.loads((tmp_path / "player.json").read_text())  # noqa: E731

    async def scenario() -> None:
        service.send(mood("happy"))
        await until(lambda: service.session.tracks_started == 1)
        path.write_text(player_config(tmp_path, mpd_server, player="[mqtt]\nhost = \"127.0.0.1\"\n"))
        sock.messages()
        service.request_reload()
        await until(lambda: state()["reloads"] == 1 and state()["phase"] == "running")
        assert "swapping in the new setup failed: RuntimeError: The client is not currently connected." \
            in state()["reload_error"]
        assert app.setup is old_setup and service.player is old_setup.player  # the old setup plays on
        assert [m for m in sock.wait_for("READY", "1", timeout=5) if "RELOADING" in m or "READY" in m][-1]["READY"] == "1"
        service.submit_action(ButtonAction.LIKE)  # and still records into its store
        await until(lambda: old_setup.store.counts("happy") != {})

    try:
        serve(service, scenario, stop_within=10)
    finally:
        app.close()
        sock.sock.close()
        os.unlink(os.path.join(folder, "notify.sock"))
        os.rmdir(folder)


def test_a_reload_builds_in_a_thread_while_the_loop_feeds_the_watchdog(mpd_server: MpdServer, tmp_path: Path) -> None:
    """G: the new setup (a feedback database's quick_check, a Spotify login) was built on the event loop: no
    watchdog ping, no mood, no button while it took."""
    import threading

    path = tmp_path / "config.toml"
    path.write_text(player_config(tmp_path, mpd_server))
    config = load_config(path)
    daemon = Daemon("player", config)
    reports: list[str] = []
    building, finish = threading.Event(), threading.Event()

    def slow_build(fresh):  # a database check that takes its time
        building.set()
        assert finish.wait(10)
        return build_setup(fresh)

    app = PlayerApp(config, on_iteration=lambda status: reports.append(threading.current_thread().name),
                    on_reload=lambda: daemon.reload_off_loop(slow_build, app.swap, app.discard), pin_factory=MockFactory())

    async def scenario() -> None:
        app.service.request_reload()
        await asyncio.to_thread(building.wait, 5)
        during = len(reports)
        await until(lambda: len(reports) >= during + 3)  # the loop reports on while the thread builds
        finish.set()
        await until(lambda: daemon.runtime._reloads == 1)
        assert daemon.runtime.reload_error is None and app.setup.config is not config

    try:
        serve(app.service, scenario, stop_within=10)
    finally:
        finish.set()
        app.close()
    assert set(reports) == {"MainThread"}


class DyingWatchPlayer(MemoryPlayer):
    """A backend whose track watch ends its watcher for good once `die` is set: a CancelledError from inside the
    backend (its client's own task was cancelled), which the watcher's `except Exception` does not catch."""

    def __init__(self) -> None:
        super().__init__()
        self.die = asyncio.Event()

    async def wait_track_change(self) -> Track | None:
        await self.die.wait()
        raise asyncio.CancelledError


def serve_until_fatal(tmp_path: Path, player: MemoryPlayer, *, fail: Callable[[], None] = lambda: None,
                      at_fatal: Callable[[PlayerService], None] = lambda service: None,
                      release: Callable[[], None] = lambda: None, **service_args: Any) -> dict:
    """A PlayerService on `player` reporting through a real notify socket: WATCHDOG=1 while it is well; after
    `fail()` its status turns fatal (`at_fatal` looks at it then), and three more loop turns, each reported, send
    no WATCHDOG=1. `release()` lets the backend go before the stop. Returns the state file."""
    import os
    import tempfile

    from test_sd_notify import NotifySocket

    from moodspeaker.adapters.sd_notify import SystemdNotifier
    from moodspeaker.app.lifecycle import ServiceRuntime
    from moodspeaker.config import ServiceConfig

    folder = tempfile.mkdtemp(prefix="notify-", dir="/tmp")
    address = os.path.join(folder, "notify.sock")
    sock = NotifySocket(address)
    runtime = ServiceRuntime("player", ServiceConfig(runtime_dir=str(tmp_path), status_interval=0.1),
                             SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "30000000"}))
    service = PlayerService(player, MoodPolicy({"happy": "mood-happy"}, cooldown_s=0.0), MemoryStore(),  # type: ignore[arg-type]
                            backend="mpd", on_iteration=runtime.iteration, **service_args)

    async def main() -> None:
        task = asyncio.create_task(service.run())
        try:
            await asyncio.to_thread(sock.wait_for, "WATCHDOG", "1", 5)  # fed while the player is well
            fail()
            await until(lambda: service.fatal != "")
            at_fatal(service)
            sock.messages()
            turns = service.turns
            await until(lambda: service.turns >= turns + 3)  # three more loop turns, each one reported
            assert not any("WATCHDOG" in m for m in sock.messages())
        finally:
            release()
            service.stop()
            await asyncio.wait_for(task, 5)

    try:
        asyncio.run(main())
    finally:
        sock.sock.close()
        os.unlink(address)
        os.rmdir(folder)
    return json.loads((tmp_path / "player.json").read_text())


def test_a_dead_track_watcher_is_reported_and_the_watchdog_is_no_longer_fed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 18, 2: a player whose watcher died went on feeding the watchdog, deaf to every track for good."""
    player = DyingWatchPlayer()
    state = serve_until_fatal(tmp_path, player, fail=player.die.set)
    assert "watching mpd for track changes was cancelled" in state["errors"]["fatal"]
    assert caplog.text.count("watching mpd for track changes was cancelled") == 1  # once, as a warning
    assert "WARNING" in caplog.text


class HungWatchPlayer(MemoryPlayer):
    """A backend whose track watch hangs in a call that ignores every cancel (a library call stuck past its budget
    that swallows the CancelledError), until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.cancels_ignored = 0

    async def wait_track_change(self) -> Track | None:
        while not self.release.is_set():
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancels_ignored += 1
        return await super().wait_track_change()


def test_a_track_watcher_hung_past_its_cancel_is_a_stale_heartbeat_and_stops_the_watchdog(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 18, 2: a watcher alive but stuck in a backend call that ignored its cancel never saw a track again, and
    the loop went on feeding the watchdog."""
    player = HungWatchPlayer()

    def stuck_but_alive(service: PlayerService) -> None:  # the span ended, the cancel was ignored: no heartbeat since
        assert player.cancels_ignored >= 1 and not service._watcher.done()

    state = serve_until_fatal(tmp_path, player, at_fatal=stuck_but_alive, release=player.release.set,
                              call_timeout_s=0.2, watch_span_s=0.3)
    assert "watching mpd for track changes is stuck: no heartbeat for" in state["errors"]["fatal"]
    assert state["status"]["fatal"].endswith("the player must be restarted")
    assert caplog.text.count("is stuck: no heartbeat") == 1


class LongTrackPlayer(MemoryPlayer):
    """A backend whose waits for a track change are cancelled at each watch span's end (a long track)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    async def wait_track_change(self) -> Track | None:
        self.waits += 1
        return await super().wait_track_change()


def test_a_long_track_is_waited_for_again_each_span_and_its_end_still_seen() -> None:
    player = LongTrackPlayer()
    service = PlayerService(player, MoodPolicy({"happy": "mood-happy"}, cooldown_s=0.0), MemoryStore(),  # type: ignore[arg-type]
                            backend="mpd", call_timeout_s=5.0, watch_span_s=0.1)  # stale only after 5.1 s

    async def main() -> None:
        task = asyncio.create_task(service.run())
        service.send(mood("happy"))
        await until(lambda: service.session.tracks_started == 1)
        waits = player.waits
        await until(lambda: player.waits >= waits + 3)  # three spans ended without a change: each waited for again
        player.end_track()
        await until(lambda: service.session.tracks_started == 2)
        assert service.fatal == "" and service.watch_failures == 0 and service.errors == 0
        service.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_a_message_of_an_unknown_type_is_a_bug_that_ends_the_loop() -> None:
    service = PlayerService(MemoryPlayer(), MoodPolicy({"happy": "mood-happy"}), MemoryStore(),  # type: ignore[arg-type]
                            backend="mpd")

    async def main() -> None:
        task = asyncio.create_task(service.run())
        service._submit(("mood", mood("happy")))  # type: ignore[arg-type]  # the old untyped inbox's shape
        with pytest.raises(TypeError, match="no handler for the message"):
            await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_the_loop_reads_the_mood_socket_and_refuses_a_malformed_datagram(tmp_path: Path) -> None:
    """The mood socket is read by the loop (add_reader), not by a thread: a valid event after a malformed one still
    arrives, and the malformed one is refused and counted."""
    import socket
    import threading

    from moodspeaker.adapters.mood_socket import MoodSocketReceiver, MoodSocketSender

    service = PlayerService(MemoryPlayer(), MoodPolicy({"happy": "mood-happy", "sad": "mood-sad"}, cooldown_s=0.0),  # type: ignore[arg-type]
                            MemoryStore(), backend="mpd")  # type: ignore[arg-type]
    path = tmp_path / "mood.sock"

    async def main(receiver: MoodSocketReceiver) -> None:
        task = asyncio.create_task(service.run(receiver))
        with MoodSocketSender(path) as sender, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as raw:
            sender.send(mood("happy"))
            await until(lambda: service.session.mood == "happy")
            raw.sendto(b'{"v": 1, "kind": "mood", "mood": "sad"', str(path))  # cut short
            sender.send(mood("sad"))
            await until(lambda: service.session.mood == "sad")
        assert receiver.dropped == 1 and service.session.mood_changes == 2
        assert "mood-source" not in [t.name for t in threading.enumerate()]  # no reader thread
        service.stop()
        await asyncio.wait_for(task, 5)

    with MoodSocketReceiver(path) as receiver:
        asyncio.run(main(receiver))


def test_an_asyncio_daemon_takes_its_signals_on_the_loop() -> None:
    """SIGTERM/SIGINT and SIGHUP reach the player's loop as loop callbacks (loop.add_signal_handler), not as
    threading.Events set from a handler; a SIGTERM before the loop's service exists is kept."""
    import threading

    from moodspeaker.config import Config

    daemon = Daemon("player", Config())
    calls: list[tuple[str, str]] = []

    async def main() -> None:
        stopped = asyncio.Event()
        with daemon.signals_on_loop():
            signal.raise_signal(signal.SIGTERM)  # before on_stop is set: while the setup builds
            await until(lambda: daemon.stop_requested)
            daemon.on_reload = lambda: calls.append(("reload", threading.current_thread().name))
            daemon.on_stop = lambda: (calls.append(("stop", threading.current_thread().name)), stopped.set())
            signal.raise_signal(signal.SIGHUP)
            await until(lambda: len(calls) == 1)
            signal.raise_signal(signal.SIGINT)
            await asyncio.wait_for(stopped.wait(), 5)

    asyncio.run(main())
    assert calls == [("reload", "MainThread"), ("stop", "MainThread")]
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL  # given back when the loop stops serving


def test_a_mood_transport_that_fails_is_fatal_and_not_read_again(caplog: pytest.LogCaptureFixture) -> None:
    """A reader on the loop that raised would be called again at every turn of the loop while its socket stays
    readable: the player would spin, deaf. It stops reading and says so (fatal: systemd restarts the player)."""
    import socket

    readable, writer = socket.socketpair()

    class BrokenSource:
        calls = 0

        def fileno(self) -> int:
            return readable.fileno()

        def receive_nowait(self) -> MoodEvent | None:
            self.calls += 1
            raise OSError("recv failed")

    source = BrokenSource()
    service = PlayerService(MemoryPlayer(), MoodPolicy({"happy": "mood-happy"}), MemoryStore(),  # type: ignore[arg-type]
                            backend="mpd")

    async def main() -> None:
        task = asyncio.create_task(service.run(source))
        writer.send(b"x")  # the socket is readable, and stays so
        await until(lambda: service.fatal != "")
        turns = service.turns
        await until(lambda: service.turns >= turns + 3)
        assert source.calls == 1  # not read again
        service.stop()
        await asyncio.wait_for(task, 5)

    try:
        asyncio.run(main())
    finally:
        readable.close()
        writer.close()
    assert service.status()["fatal"] == "receiving mood events failed (OSError: recv failed); the player must be restarted"
    assert "receiving mood events failed" in caplog.text


def test_a_watch_span_outlasts_every_pause_inside_a_backends_watch() -> None:
    """A span's end cancels the backend's wait_track_change, which starts its pauses afresh when called again: a
    span shorter than Spotify's poll (poll_s up to 60 s, then one command and its back-off) would never let it poll."""
    from moodspeaker.adapters.backend_call import BUDGET_S
    from moodspeaker.adapters.spotify_player import BACKOFF_MAX_S
    from moodspeaker.app.player import WATCH_SPAN_S
    from moodspeaker.config import parse_config
    from moodspeaker.errors import ConfigError

    spotify = '[player]\nbackend = "spotify"\n[spotify]\nclient_id = "x"\npoll_s = {}\n'
    longest_poll = parse_config(spotify.format(60)).spotify.poll_s  # the longest the config accepts
    with pytest.raises(ConfigError, match="poll_s"):
        parse_config(spotify.format(60.5))
    assert longest_poll + BUDGET_S + BACKOFF_MAX_S < WATCH_SPAN_S
