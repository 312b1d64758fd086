"""[volume] end to end on a real MPD: start volume, the maximum, quiet hours (cap, camera off) and the fade on
a mood change; `moodspeaker privacy` and `moodspeaker volume` reaching the running player."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path

import mpd
import pytest
from test_player_service import PLAYLISTS, Clock, folder, mood, mpd_view, serve, settled, until

from moodspeaker.adapters.mpd_player import MpdPlayer
from moodspeaker.adapters.privacy_flag import PrivacyFlag
from moodspeaker.adapters.sqlite_feedback import SqliteFeedbackStore
from moodspeaker.adapters.volume_request import VolumeRequest
from moodspeaker.app.player import PlayerService
from moodspeaker.config import VolumeConfig
from moodspeaker.core.domain import ButtonAction
from moodspeaker.core.policy import MoodPolicy
from moodspeaker.dev.mpd_server import MpdServer


def mpd_volume(server: MpdServer) -> int:
    client = mpd.MPDClient()
    client.connect(server.host, server.port)
    try:
        return int(client.status()["volume"])
    finally:
        client.disconnect()


class RecordingMpd(MpdPlayer):
    """The real MPD player, noting each volume it sets (to see the fade's steps)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.volumes: list[tuple[float, int]] = []

    async def set_volume(self, level: int) -> None:
        await super().set_volume(level)
        self.volumes.append((time.monotonic(), level))


@pytest.fixture
def store(tmp_path: Path):
    with SqliteFeedbackStore(tmp_path / "feedback.db") as s:
        yield s


def make(server: MpdServer, store: SqliteFeedbackStore, volume: VolumeConfig, minute: list[int],
         clock: Clock | None = None, **policy: object) -> tuple[PlayerService, RecordingMpd]:
    player = RecordingMpd(server.host, server.port, reconnect_max_s=0.5)
    service = PlayerService(player, MoodPolicy(PLAYLISTS, **{"cooldown_s": 0.0, **policy}), store,  # type: ignore[arg-type]
                            backend="mpd", rng=random.Random(3), volume=volume, minute=lambda: minute[0],
                            clock=clock or time.monotonic)
    return service, player


def test_start_volume_maximum_and_quiet_hours_cap(mpd_server: MpdServer, store) -> None:
    minute = [12 * 60]  # noon
    volume = VolumeConfig(start=70, maximum=70, quiet_hours=("22:00-07:00",), quiet_max=20)
    service, _ = make(mpd_server, store, volume, minute)

    async def scenario() -> None:
        await until(lambda: mpd_volume(mpd_server) == 70)  # start (a start above the maximum is a config error)
        service.submit_volume(50)
        await until(lambda: mpd_volume(mpd_server) == 50)
        minute[0] = 22 * 60 + 1  # quiet hours begin: lowered to their cap
        await until(lambda: mpd_volume(mpd_server) == 20)
        service.submit_volume(60)  # asked for more in the quiet hours: the cap holds
        await settled(service)
        assert mpd_volume(mpd_server) == 20 and service.status()["volume"] == 20
        minute[0] = 7 * 60  # morning: asking works again up to the maximum
        service.submit_volume(100)
        await until(lambda: mpd_volume(mpd_server) == 70)

    serve(service, scenario)
    assert service.errors == 0


def test_quiet_hours_turn_the_camera_off_and_on_again(mpd_server: MpdServer, store) -> None:
    minute = [21 * 60 + 59]
    calls: list[bool] = []
    volume = VolumeConfig(quiet_hours=("22:00-07:00",), quiet_camera_off=True)
    service, _ = make(mpd_server, store, volume, minute)
    service._on_privacy = calls.append

    async def scenario() -> None:
        await settled(service)
        assert not service.session.privacy
        minute[0] = 22 * 60
        await until(lambda: service.session.privacy)
        minute[0] = 7 * 60
        await until(lambda: not service.session.privacy)
        service.submit_privacy(True)  # the owner's privacy outlasts the next quiet hours' end
        minute[0] = 23 * 60
        await settled(service)
        minute[0] = 8 * 60
        await settled(service)
        assert service.session.privacy

    serve(service, scenario)
    assert calls == [True, False, True]


def test_a_mood_change_that_cuts_a_track_fades_out_and_in(mpd_server: MpdServer, store) -> None:
    clock = Clock()
    service, player = make(mpd_server, store, VolumeConfig(start=60, fade_s=0.6), [12 * 60], clock,
                           switch_at_once=True)

    async def scenario() -> None:
        service.send(mood("happy"))
        await until(lambda: service.session.tracks_started == 1)
        player.volumes.clear()
        clock.t += 100
        service.send(mood("sad"))
        await until(lambda: folder(mpd_view(mpd_server)[1]) == "sad" and mpd_volume(mpd_server) == 60)

    serve(service, scenario)
    levels = [v for _, v in player.volumes]
    bottom = levels.index(0)
    assert levels[:bottom] == sorted(levels[:bottom], reverse=True) and levels[bottom + 1:] == sorted(levels[bottom + 1:])
    assert levels[-1] == 60 and len(levels) > 6
    took = player.volumes[-1][0] - player.volumes[0][0]
    assert 0.4 < took < 2.0  # about fade_s, not a hard cut and not a stall


def test_the_owners_privacy_and_volume_commands_reach_the_running_player(mpd_server: MpdServer, store,
                                                                          tmp_path: Path) -> None:
    from moodspeaker.app.player_app import PlayerApp
    from moodspeaker.config import parse_config

    config = parse_config(f'[mpd]\nhost = "{mpd_server.host}"\nport = {mpd_server.port}\n[feedback]\n'
                          f'path = "{tmp_path / "fb.db"}"\n[buttons]\nenabled = false\n[volume]\nmaximum = 80\n')
    flag = PrivacyFlag(tmp_path / "run")
    app = PlayerApp(config, on_privacy=flag.set, runtime_dir=str(tmp_path / "run"))

    async def scenario() -> None:
        flag.set(True)  # what `moodspeaker privacy on` does
        await until(lambda: app.service.session.privacy, timeout=5)
        flag.set(False)
        await until(lambda: not app.service.session.privacy, timeout=5)
        await until(lambda: mpd_volume(mpd_server) == 80)  # MPD started at 100: brought down to the maximum
        VolumeRequest(tmp_path / "run").ask(45)  # what `moodspeaker volume 45` does
        await until(lambda: mpd_volume(mpd_server) == 45, timeout=5)
        assert not VolumeRequest(tmp_path / "run").pending()

    try:
        serve(app.service, scenario)
    finally:
        app.close()


def test_volume_command_hands_the_level_to_the_player_and_shows_the_result(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from moodspeaker.adapters.sd_notify import SystemdNotifier
    from moodspeaker.app.lifecycle import ServiceRuntime
    from moodspeaker.cli import main
    from moodspeaker.config import ServiceConfig

    runtime = ServiceRuntime("player", ServiceConfig(runtime_dir=str(tmp_path), status_interval=0.1), SystemdNotifier({}))
    request, stop = VolumeRequest(tmp_path), threading.Event()

    def player() -> None:  # takes the request as the player loop does, and reports the capped level each turn
        volume = 30
        while not stop.is_set():
            if (level := request.take()) is not None:
                volume = min(level, 60)
            runtime.iteration({"volume": volume})
            time.sleep(0.05)

    worker = threading.Thread(target=player, daemon=True)
    worker.start()
    deadline = time.monotonic() + 10  # the player's first iteration writes its state file: until then it is not running
    while not (tmp_path / "player.json").exists():
        assert time.monotonic() < deadline, "the player wrote no state file"
        time.sleep(0.01)
    config = tmp_path / "config.toml"
    config.write_text(f'[service]\nruntime_dir = "{tmp_path}"\nstatus_interval = 0.1\n')
    try:
        assert main(["volume", "--config", str(config)]) == 0
        assert capsys.readouterr().out.strip() == "volume 30"
        assert main(["volume", "75", "--config", str(config)]) == 0
        assert capsys.readouterr().out.strip() == "volume 60 (capped: [volume] maximum or quiet hours)"
        assert main(["volume", "150", "--config", str(config)]) == 2
        assert "0..100" in capsys.readouterr().err
    finally:
        stop.set()
        worker.join()


def other_client(server: MpdServer, *command: object) -> None:
    """Another MPD client (the owner's phone app, `mpc`): one command."""
    client = mpd.MPDClient()
    client.connect(server.host, server.port)
    try:
        getattr(client, str(command[0]))(*command[1:])
    finally:
        client.disconnect()


def test_a_play_that_fails_after_the_fade_gets_its_volume_back(mpd_server: MpdServer, store, music_library) -> None:
    """B: the fade took the volume to 0, then the play failed: the speaker stayed silent while it believed 60."""
    broken = music_library[1] / "mood-gone.m3u"
    broken.write_text("sad/deleted-since.wav\n")
    clock = Clock()
    player = RecordingMpd(mpd_server.host, mpd_server.port, reconnect_max_s=0.5)
    service = PlayerService(player, MoodPolicy({"happy": "mood-happy", "sad": "mood-gone"}, cooldown_s=0.0,
                                               switch_at_once=True), store, backend="mpd",  # type: ignore[arg-type]
                            volume=VolumeConfig(start=60, fade_s=0.4), clock=clock)

    async def scenario() -> None:
        service.send(mood("happy"))
        await until(lambda: service.session.tracks_started == 1 and mpd_volume(mpd_server) == 60)
        clock.t += 100
        service.send(mood("sad"))  # fades out, then MPD has none of the playlist's files
        await until(lambda: service.errors == 1)
        assert 0 in [v for _, v in player.volumes]
        await until(lambda: mpd_volume(mpd_server) == 60)
        assert service.status()["volume"] == 60

    try:
        serve(service, scenario)
    finally:
        broken.unlink()
    assert "none of the 1 tracks" in service.last_error


def test_a_volume_raised_by_another_client_in_quiet_hours_is_brought_back_to_the_cap(mpd_server: MpdServer,
                                                                                       store) -> None:
    """F/K: quiet hours compared with the last volume the player set, never re-read: a phone's 90 stayed all night.
    A volume lowered by another client is the owner's choice: kept, and the fade comes back to it, not to ours."""
    clock = Clock()
    minute = [23 * 60]
    volume = VolumeConfig(start=25, maximum=80, quiet_hours=("22:00-07:00",), quiet_max=30, fade_s=0.2)
    service, player = make(mpd_server, store, volume, minute, clock, switch_at_once=True)

    async def scenario() -> None:
        service.send(mood("happy"))
        await until(lambda: mpd_volume(mpd_server) == 25 and service.session.tracks_started == 1)
        other_client(mpd_server, "setvol", 90)  # `mpc volume 90`
        clock.t += 10  # the next volume check
        await until(lambda: mpd_volume(mpd_server) == 30)
        other_client(mpd_server, "setvol", 10)  # the owner wants it quieter: that is the new level
        minute[0] = 12 * 60
        clock.t += 10
        await until(lambda: service.status()["volume"] == 10)
        service.send(mood("sad"))  # a fade across: back to the owner's 10, not to 25
        await until(lambda: service.session.tracks_started == 2)
        await until(lambda: player.volumes[-1][1] == 10)
        assert max(v for _, v in player.volumes[-3:]) <= 10 and mpd_volume(mpd_server) == 10

    serve(service, scenario)


def test_volume_requests_during_an_mpd_hang_do_not_starve_the_watchdog(mpd_server: MpdServer, store) -> None:
    """D: each queued request waited out the call's time limit with no report between them: ten taps in Home
    Assistant during a hang outlasted WatchdogSec. Now the requests are one plan (one attempt per check), and a
    report (a watchdog ping) follows every attempt."""
    clock = Clock()
    events: list[str] = []

    class Noting(RecordingMpd):
        async def set_volume(self, level: int) -> None:
            events.append(f"set {level}")
            await super().set_volume(level)

    player = Noting(mpd_server.host, mpd_server.port, reconnect_max_s=0.5)
    service = PlayerService(player, MoodPolicy(PLAYLISTS, cooldown_s=0.0), store, backend="mpd",  # type: ignore[arg-type]
                            volume=VolumeConfig(start=50), clock=clock, call_timeout_s=0.3,
                            on_iteration=lambda _: events.append("report"))

    async def scenario() -> None:
        await until(lambda: mpd_volume(mpd_server) == 50)
        mpd_server.freeze()
        try:
            events.clear()
            for level in range(31, 41):
                service.submit_volume(level)
            await until(lambda: service.errors >= 1)
            await until(lambda: events[-1] == "report")
        finally:
            mpd_server.freeze(False)
        sets = [i for i, e in enumerate(events) if e.startswith("set")]
        assert len(sets) == 1 and events[sets[0]] == "set 40"  # the latest request, once
        clock.t += 10  # the next check after the failure: MPD answers again
        await until(lambda: mpd_volume(mpd_server) == 40)

    serve(service, scenario)


def test_a_volume_asked_for_during_a_hang_goes_as_soon_as_the_backend_answers_again(mpd_server: MpdServer,
                                                                                   store) -> None:
    """After a hang nothing was set until VolumePlan.check_s (5 s) after the last failed volume call, so `moodspeaker
    volume 39` right after MPD came back could say "volume unknown" (system check 22). Any command that works
    again ends that wait: the plan's level goes at the next turn, the clock not moved on."""
    clock = Clock()
    player = RecordingMpd(mpd_server.host, mpd_server.port, reconnect_max_s=0.5)
    service = PlayerService(player, MoodPolicy(PLAYLISTS, cooldown_s=0.0), store, backend="mpd",  # type: ignore[arg-type]
                            volume=VolumeConfig(start=50), clock=clock, call_timeout_s=0.3)

    async def scenario() -> None:
        service.send(mood("happy"))
        await until(lambda: service.session.tracks_started == 1 and mpd_volume(mpd_server) == 50)
        mpd_server.freeze()
        try:
            service.submit_volume(39)
            await until(lambda: service.errors >= 1)
        finally:
            mpd_server.freeze(False)
        await until(lambda: mpd_volume(mpd_server) == 39)  # the set that timed out landed when MPD woke up ...
        other_client(mpd_server, "setvol", 70)  # ... and is gone again: the player cannot know its level yet
        service.submit_action(ButtonAction.SKIP)  # a command that works: MPD answers again
        await until(lambda: service.session.tracks_started == 2)
        await until(lambda: mpd_volume(mpd_server) == 39)

    serve(service, scenario)


def test_moodspeaker_resume_hands_the_music_back_after_another_client_stopped_it(mpd_server: MpdServer,
                                                                                 tmp_path: Path) -> None:
    from moodspeaker.adapters.sd_notify import SystemdNotifier
    from moodspeaker.app.lifecycle import ServiceRuntime
    from moodspeaker.app.player_app import PlayerApp
    from moodspeaker.cli import main
    from moodspeaker.config import ServiceConfig, parse_config

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    text = (f'[mpd]\nhost = "{mpd_server.host}"\nport = {mpd_server.port}\n[feedback]\npath = "{tmp_path / "fb.db"}"\n'
            f'[buttons]\nenabled = false\n[player]\ncooldown_s = 0.0\n[service]\nruntime_dir = "{run_dir}"\n'
            'status_interval = 0.1\n')
    (tmp_path / "config.toml").write_text(text)
    runtime = ServiceRuntime("player", ServiceConfig(runtime_dir=str(run_dir), status_interval=0.1), SystemdNotifier({}))
    app = PlayerApp(parse_config(text), on_iteration=runtime.iteration, runtime_dir=str(run_dir))

    async def scenario() -> None:
        app.service.send(mood("happy"))
        await until(lambda: app.service.session.tracks_started == 1)
        other_client(mpd_server, "stop")
        await until(lambda: app.service.status()["control"] != "speaker")
        assert await asyncio.to_thread(main, ["resume", "--config", str(tmp_path / "config.toml")]) == 0
        await until(lambda: mpd_view(mpd_server)[0] == "play" and app.service.status()["control"] == "speaker")

    try:
        serve(app.service, scenario)
    finally:
        app.close()
