"""MpdPlayer against a real MPD (private, loopback, null output): load, play, next, like, and surviving kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import mpd
import pytest

from moodspeaker.adapters.mpd_player import MpdPlayer
from moodspeaker.core.domain import BackendReturned, Track
from moodspeaker.dev.mpd_server import MpdServer
from moodspeaker.errors import PlayerError, PlayerUnavailable


def _player(server: MpdServer, **kwargs: object) -> MpdPlayer:
    return MpdPlayer(server.host, server.port, reconnect_max_s=0.5, **kwargs)  # type: ignore[arg-type]


def _server_status(server: MpdServer) -> tuple[dict, dict, list[str]]:
    """MPD's own view, through a separate sync client: status, current song, queue files."""
    client = mpd.MPDClient()
    client.connect(server.host, server.port)
    try:
        return client.status(), client.currentsong(), [s["file"] for s in client.playlistinfo()]
    finally:
        client.disconnect()


def test_loads_a_stored_playlist_in_our_order_and_plays_next(mpd_server: MpdServer, music_library) -> None:
    stored = music_library[2]["mood-happy"]

    async def scenario() -> tuple[list[Track], str, str]:
        player = _player(mpd_server)
        await player.connect()
        tracks = await player.playlist_tracks("mood-happy")
        await player.play(list(reversed(tracks)))
        first = _server_status(mpd_server)[1]["file"]
        await player.next()
        second = _server_status(mpd_server)[1]["file"]
        await player.close()
        return tracks, first, second

    tracks, first, second = asyncio.run(scenario())
    assert [t.uri for t in tracks] == stored
    assert tracks[0].title == "Happy song 1" and tracks[0].artist == "moodspeaker demo"
    assert (first, second) == (stored[-1], stored[-2])
    status, song, queue = _server_status(mpd_server)
    assert status["state"] == "play" and song["file"] == stored[-2]
    assert queue == list(reversed(stored))


def test_wait_track_change_follows_next_and_the_end_of_the_queue(mpd_server: MpdServer, seek_near_the_end) -> None:
    async def scenario() -> list[str | None]:
        player = _player(mpd_server)
        tracks = await player.playlist_tracks("mood-calm")  # two tracks
        await player.play(tracks)
        seen = [(await player.wait_track_change()).uri]
        await player.next()
        seen.append((await player.wait_track_change()).uri)
        seek_near_the_end()
        end = await asyncio.wait_for(player.wait_track_change(), timeout=6)  # the last track plays out
        seen.append(end)
        await player.close()
        return seen

    calm = ["calm/calm-1.wav", "calm/calm-2.wav"]
    assert asyncio.run(scenario()) == [*calm, None]


def test_play_next_lets_the_current_track_finish_then_plays_the_new_tracks(mpd_server: MpdServer,
                                                                          seek_near_the_end) -> None:
    async def scenario() -> tuple[str, str, list[str]]:
        player = _player(mpd_server)
        await player.play(await player.playlist_tracks("mood-happy"))
        playing = (await player.wait_track_change()).uri
        await player.play_next(await player.playlist_tracks("mood-sad"))
        still = _server_status(mpd_server)[1]["file"]
        seek_near_the_end()
        following = await asyncio.wait_for(player.wait_track_change(), timeout=6)
        await player.close()
        return playing, still, [following.uri]

    playing, still, following = asyncio.run(scenario())
    assert playing == still == "happy/happy-1.wav"
    assert following == ["sad/sad-1.wav"]
    assert _server_status(mpd_server)[2] == ["happy/happy-1.wav", "sad/sad-1.wav", "sad/sad-2.wav", "sad/sad-3.wav"]


def test_toggle_pause_and_like_into_the_stored_liked_playlist(mpd_server: MpdServer, tmp_path) -> None:
    liked_name = f"liked-{tmp_path.name}"

    async def scenario() -> list[str]:
        player = _player(mpd_server, liked_playlist=liked_name)
        await player.play(await player.playlist_tracks("mood-sad"))
        await player.toggle_pause()
        states = [_server_status(mpd_server)[0]["state"]]
        await player.toggle_pause()
        states.append(_server_status(mpd_server)[0]["state"])
        track = Track(_server_status(mpd_server)[1]["file"])
        await player.like(track)
        await player.like(track)  # twice: stored once
        await player.close()
        return states

    assert asyncio.run(scenario()) == ["pause", "play"]
    client = mpd.MPDClient()
    client.connect(mpd_server.host, mpd_server.port)
    assert client.listplaylist(liked_name) == ["sad/sad-1.wav"]
    client.disconnect()


def test_unknown_playlist_and_unreachable_server_give_clear_errors(mpd_server: MpdServer) -> None:
    async def missing_playlist() -> None:
        player = _player(mpd_server)
        try:
            await player.playlist_tracks("no-such-mood")
        finally:
            await player.close()

    with pytest.raises(PlayerError, match="no stored playlist 'no-such-mood'"):
        asyncio.run(missing_playlist())
    mpd_server.stop()
    with pytest.raises(PlayerUnavailable, match=f"127.0.0.1:{mpd_server.port} is not reachable"):
        asyncio.run(_player(mpd_server).connect())


def test_after_a_kill_9_and_a_restart_the_watcher_reports_the_return_and_restore_puts_the_queue_back(
        mpd_server: MpdServer) -> None:
    """The restore is the session's (test_player_service has it end to end); the adapter reports MPD's return before
    anything else (MPD without our queue is no stop) and carries out `restore`: queue, song, position, paused. A
    second restore finds MPD already so and changes nothing."""
    async def scenario() -> tuple[list[Track], object, tuple, tuple, object]:
        player = _player(mpd_server)
        tracks = await player.playlist_tracks("mood-happy")
        await player.play(tracks)
        assert await player.wait_track_change() == tracks[0]
        mpd_server.kill()
        with pytest.raises(PlayerUnavailable, match="not reachable"):
            await player.wait_track_change()
        await asyncio.to_thread(mpd_server.start)
        returned = await player.wait_track_change()
        await player.restore(tracks, 1, 2.0, True)
        restored = _server_status(mpd_server)
        await player.restore(tracks, 1, 2.0, True)
        again = _server_status(mpd_server)
        changed = await player.wait_track_change()  # from the song before the kill to the one restored
        await player.close()
        return tracks, returned, restored, again, changed

    tracks, returned, (status, song, queue), (status_again, _, _), changed = asyncio.run(scenario())
    assert returned == BackendReturned()
    assert queue == [t.uri for t in tracks] and song["file"] == tracks[1].uri
    assert status["state"] == "pause" and 1.9 <= float(status["elapsed"]) <= 2.1
    assert status_again["playlist"] == status["playlist"] and status_again["elapsed"] == status["elapsed"]
    assert changed == tracks[1]


def test_restore_starts_the_next_track_when_the_one_asked_for_would_have_ended(mpd_server: MpdServer) -> None:
    async def scenario() -> tuple[dict, dict]:
        player = _player(mpd_server)
        tracks = await player.playlist_tracks("mood-happy")
        await player.restore(tracks, 0, 3600.0, False)
        status, song, _ = _server_status(mpd_server)
        await player.close()
        return status, song

    status, song = asyncio.run(scenario())
    assert status["state"] == "play" and song["file"] == "happy/happy-2.wav" and float(status["elapsed"]) < 1.0


def test_a_stored_playlist_with_a_deleted_file_plays_the_rest(mpd_server: MpdServer, music_library) -> None:
    _, playlist_dir, _ = music_library
    broken = playlist_dir / "mood-broken.m3u"
    broken.write_text("sad/sad-1.wav\nsad/deleted-since.wav\nsad/sad-2.wav\n")

    async def scenario() -> list[str]:
        player = _player(mpd_server)
        try:
            tracks = await player.playlist_tracks("mood-broken")
            await player.play(tracks)  # nothing playing: play() loads what MPD has
            await player.play_next(tracks)  # playing: the rest of the queue replaced, file by file
            return _server_status(mpd_server)[2]
        finally:
            await player.close()

    try:
        queue = asyncio.run(scenario())
    finally:
        broken.unlink()
    assert queue == ["sad/sad-1.wav", "sad/sad-1.wav", "sad/sad-2.wav"]  # the one playing, then the list again


def test_mpd_absent_at_start_is_reported_by_the_watcher_with_growing_back_off(tmp_path) -> None:
    from moodspeaker.dev.mpd_server import free_port

    async def scenario() -> list[str]:
        player = MpdPlayer("127.0.0.1", free_port(), reconnect_max_s=0.4)
        errors = []
        for _ in range(4):
            with pytest.raises(PlayerUnavailable) as error:
                await player.wait_track_change()
            errors.append(str(error.value))
        await player.close()
        return errors

    errors = asyncio.run(scenario())
    assert all("is not reachable" in e for e in errors)
    assert [e.rsplit("again in ", 1)[1] for e in errors] == ["0.1 s", "0.2 s", "0.4 s", "0.4 s"]


def test_a_hung_mpd_costs_one_budget_then_commands_fail_at_once_until_the_back_off_is_over(
        mpd_server: MpdServer) -> None:
    from moodspeaker.adapters.backend_call import BUDGET_S

    async def scenario() -> tuple[float, list[str], int, bool]:
        player = _player(mpd_server)
        tracks = await player.playlist_tracks("mood-calm")
        await player.play(tracks)
        assert await player.wait_track_change() == tracks[0]
        mpd_server.freeze()
        started = time.monotonic()
        errors = []
        try:
            with pytest.raises(PlayerUnavailable) as error:
                await player.next()
            errors.append(str(error.value))
            attempts = player.connect_attempts
            with pytest.raises(PlayerUnavailable) as error:  # during the back-off: at once, nothing asked of MPD
                await player.volume()
            errors.append(str(error.value))
            took = time.monotonic() - started
            attempts_during_back_off = player.connect_attempts - attempts
        finally:
            mpd_server.freeze(False)
        for _ in range(5):  # MPD answers again: reconnected, at the back-off's pace (a CI run saw the first new
            await player.calls.wait_turn()  # connection after SIGCONT closed before MPD's hello, once in five runs)
            with contextlib.suppress(PlayerUnavailable):
                await player.volume()
                break
        connected = player.connected
        await player.close()
        return took, errors, attempts_during_back_off, connected

    took, errors, attempts_during_back_off, connected = asyncio.run(scenario())
    assert BUDGET_S <= took < BUDGET_S + 2 < 30 / 2  # one budget in all (WatchdogSec=30 in the unit)
    assert "did not answer within 10 s; it may be hung; trying again in" in errors[0]
    assert errors[1] == errors[0]  # the same text while the back-off lasts: the player logs a repeat once a minute
    assert all(str(mpd_server.port) in e for e in errors)
    assert attempts_during_back_off == 0 and connected


def test_volume_is_set_and_read_on_mpd(mpd_server: MpdServer) -> None:
    async def scenario() -> tuple[int | None, int | None]:
        player = _player(mpd_server)
        try:
            await player.play(await player.playlist_tracks("mood-calm"))
            await player.set_volume(35)
            first = await player.volume()
            await player.set_volume(140)  # clipped to MPD's range
            return first, await player.volume()
        finally:
            await player.close()

    assert asyncio.run(scenario()) == (35, 100)
    assert _server_status(mpd_server)[0]["volume"] == "100"


def test_a_cancel_that_lands_as_mpd_answers_still_ends_the_call() -> None:
    """On Python 3.11, asyncio.wait_for returned the answer and dropped a cancel that arrived in the same loop turn:
    the player's track watcher, cancelled at a reload or a stop just as MPD answered, watched on for ever and
    `moodspeaker run` never exited. This forces that ordering on the budget every port call runs in."""
    async def scenario() -> asyncio.Task[str]:
        player = MpdPlayer("127.0.0.1", 9)  # nothing is sent: only the time limit is under test
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def look() -> str:
            return await answer

        call = asyncio.create_task(player.calls(look))
        for _ in range(3):
            await asyncio.sleep(0)  # the call waits for MPD's answer
        answer.set_result("song")  # MPD answers ...
        call.cancel()  # ... and the reload cancels the watcher, in the same loop turn
        await asyncio.gather(call, return_exceptions=True)
        return call

    assert asyncio.run(scenario()).cancelled()


def test_mpd_down_for_ten_minutes_is_tried_at_the_back_off_pace_and_back_within_one_period(
        mpd_server: MpdServer) -> None:
    """A, with the production back-off (reconnect_max_s 15 s, above the call budget): once the back-off passed
    the budget, a back-off slept inside the budget left no time for the attempt, and MPD was never tried again.
    Time is a clock the back-off's sleeps advance; MPD and the connection attempts are real. Commands during the
    back-off fail at once without an attempt; once MPD is back, the next attempt (at most one back-off later)
    reconnects and restores the music."""
    from moodspeaker.adapters.backend_call import BUDGET_S
    from moodspeaker.config import MpdConfig

    max_s = MpdConfig().reconnect_max_s
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds
        await asyncio.sleep(0)

    async def scenario() -> tuple[list[float], list[int], float]:
        player = MpdPlayer(mpd_server.host, mpd_server.port, reconnect_max_s=max_s, clock=lambda: now[0], sleep=sleep)
        tracks = await player.playlist_tracks("mood-calm")
        await player.play(tracks)
        assert await player.wait_track_change() == tracks[0]
        await asyncio.to_thread(mpd_server.stop)
        attempts_at: list[float] = []  # the clock at each connection attempt
        refused_attempts = []  # attempts made by commands during the back-off (none)
        while now[0] < 600:
            before = player.connect_attempts
            with pytest.raises(PlayerUnavailable, match="not reachable"):
                await player.wait_track_change()
            attempts_at += [now[0]] * (player.connect_attempts - before)
            before = player.connect_attempts
            with pytest.raises(PlayerUnavailable, match="trying again in"):
                await player.volume()
            refused_attempts.append(player.connect_attempts - before)
        await asyncio.to_thread(mpd_server.start)
        back_at = now[0]
        assert await asyncio.wait_for(player.wait_track_change(), 10) == BackendReturned()
        await player.restore(tracks, 0, 0.0, False)  # as the session answers it
        await player.close()
        return attempts_at, refused_attempts, now[0] - back_at

    attempts_at, refused_attempts, back_after = asyncio.run(scenario())
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(attempts_at)]
    assert max_s > BUDGET_S
    doubling = list(itertools.takewhile(lambda gap: gap < max_s, (round(0.2 * 2**i, 6) for i in itertools.count())))
    assert gaps[:len(doubling)] == doubling == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8]  # from 0.1 s before the first
    assert set(gaps[len(doubling):]) == {max_s} and len(gaps) > 30  # then every max_s, for ten minutes
    assert set(refused_attempts) == {0}
    assert back_after <= max_s
    status, song, _ = _server_status(mpd_server)
    assert status["state"] == "play" and song["file"] == "calm/calm-1.wav"


def test_an_mpd_refusal_while_watching_arrives_as_ours(tmp_path, music_library) -> None:
    """H: an ACK in the watcher's path (status, currentsong) crossed the port as python-mpd2's CommandError."""
    from moodspeaker.adapters.mpd_player import MpdRefused

    class LockedMpd(MpdServer):  # an MPD that lets nobody read without a password
        def _write_config(self):
            conf = super()._write_config()
            conf.write_text(conf.read_text() + 'password "secret@read,add,control,admin"\ndefault_permissions ""\n')
            return conf

        def _wait_for_connection(self, timeout: float):
            client = super()._wait_for_connection(timeout)
            client.password("secret")
            return client

    server = LockedMpd(tmp_path / "mpd", music_library[0], music_library[1])
    server.start()
    try:
        with pytest.raises(MpdRefused, match="permission"):
            asyncio.run(_player(server).wait_track_change())
    finally:
        server.stop()
