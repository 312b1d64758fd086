"""Mopidy (3.4, Mopidy-MPD 3.3) as the MPD server, as an owner may already run it: stored playlists with both
switch modes, Mopidy's `song: None` near a track's end, and library modes refused with the reason."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import mpd
import pytest
from mopidy_server import Mopidy
from test_player_service import mood, serve, until

from moodspeaker.adapters.mpd_player import MpdPlayer
from moodspeaker.adapters.sqlite_feedback import SqliteFeedbackStore
from moodspeaker.app.player import PlayerService
from moodspeaker.core.domain import OwnerTookOver
from moodspeaker.core.policy import MoodPolicy
from moodspeaker.errors import PlayerError

PLAYLISTS = {"happy": "mood-happy", "sad": "mood-sad"}


@pytest.fixture
def mopidy(tmp_path: Path, music_library):
    music, playlists, _ = music_library
    server = Mopidy(tmp_path / "mopidy", music, playlists).start()
    yield server
    server.stop()


@pytest.fixture
def store(tmp_path: Path):
    with SqliteFeedbackStore(tmp_path / "feedback.db") as s:
        yield s


def view(server: Mopidy) -> tuple[dict, dict, list[str]]:
    client = mpd.MPDClient()
    client.connect(server.host, server.port)
    try:
        return client.status(), client.currentsong(), [s["file"] for s in client.playlistinfo()]
    finally:
        client.disconnect()


def other_client(server: Mopidy, *command: object) -> None:
    """Another MPD client (the owner's phone app, `mpc`): one command."""
    client = mpd.MPDClient()
    client.connect(server.host, server.port)
    try:
        getattr(client, str(command[0]))(*command[1:])
    finally:
        client.disconnect()


def service_on(server: Mopidy, store: SqliteFeedbackStore, **policy: object) -> PlayerService:
    player = MpdPlayer(server.host, server.port, reconnect_max_s=0.5)
    return PlayerService(player, MoodPolicy(PLAYLISTS, **{"cooldown_s": 0.0, **policy}), store,  # type: ignore[arg-type]
                         backend="mpd", rng=random.Random(5))


def folder(uri: str) -> str:
    return uri.rsplit("/", 2)[-2]


def test_stored_playlists_switch_at_once(mopidy: Mopidy, store) -> None:
    service = service_on(mopidy, store, switch_at_once=True)

    async def scenario() -> None:
        service.send(mood("happy"))
        await until(lambda: service.session.tracks_started == 1)
        service.send(mood("sad"))
        await until(lambda: service.session.tracks_started == 2)
        status, song, queue = view(mopidy)
        assert status["state"] == "play" and folder(song["file"]) == "sad" and {folder(f) for f in queue} == {"sad"}

    serve(service, scenario)
    assert service.errors == 0


def test_a_mood_near_the_end_of_a_track_on_mopidy_is_not_lost(mopidy: Mopidy, store) -> None:
    """L: with switch = "track_end", a mood in a track's last moments: Mopidy had already prepared the next song;
    deleted by play_next, that song still played, outside the queue (status `song: None`: int('None') failed every
    2 s and the mood was lost), and then Mopidy went on at the queue's start, the first track again."""
    service = service_on(mopidy, store)
    now = lambda: view(mopidy)[1].get("file", "")  # noqa: E731

    async def scenario() -> None:
        service.send(mood("happy"))
        await until(lambda: service.session.tracks_started == 1)
        first = now()
        other_client(mopidy, "seekcur", "18.5")  # the track's last moments: Mopidy prepares the next song
        await asyncio.sleep(0.9)
        service.send(mood("sad"))
        await until(lambda: now() not in ("", first), timeout=10)
        if folder(now()) == "happy":  # the song Mopidy had prepared plays, outside the queue
            assert view(mopidy)[0].get("song") == "None"
            await until(lambda: service.session.tracks_started == 2)
            other_client(mopidy, "seekcur", "19.0")
            await until(lambda: service.errors > 0 or folder(now()) == "sad", timeout=10)
        assert folder(now()) == "sad" and service.errors == 0, service.last_error

    serve(service, scenario)


def test_library_modes_on_mopidy_are_refused_with_the_reason(mopidy: Mopidy) -> None:
    """L: Mopidy-MPD speaks protocol 0.19, without the filter expressions library modes use: the folders mode
    blamed a folder that exists. Now the reason is said, with what to do."""
    async def attempt(library: str) -> None:
        player = MpdPlayer(mopidy.host, mopidy.port, library=library)
        try:
            await player.playlist_tracks("happy")
        finally:
            await player.close()

    for library in ("folders", "tags"):
        with pytest.raises(PlayerError, match=r"protocol 0\.19.*library = \"playlists\""):
            asyncio.run(attempt(library))


def test_the_owners_stop_on_mopidy_is_seen(mopidy: Mopidy) -> None:
    """I, on Mopidy: `mpc stop` from another client is the owner's, not the end of the queue."""
    async def scenario() -> list:
        player = MpdPlayer(mopidy.host, mopidy.port)
        try:
            await player.play(await player.playlist_tracks("mood-happy"))
            seen = [await player.wait_track_change()]
            await asyncio.to_thread(other_client, mopidy, "stop")
            seen.append(await asyncio.wait_for(player.wait_track_change(), 10))
            return seen
        finally:
            await player.close()

    first, stopped = asyncio.run(scenario())
    assert first.uri == mopidy.uri("happy/happy-1.wav") and stopped == OwnerTookOver("stopped")
