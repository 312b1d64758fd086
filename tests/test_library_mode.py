"""Library mode on a real MPD: a mood's music from a folder (moods/<mood>/) or a tag, refreshed when MPD's
database changes, ranked by the same Thompson sampling as stored playlists."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import mpd
import pytest
from test_player_service import mood, serve, until

from moodspeaker.adapters.mpd_player import MpdPlayer
from moodspeaker.adapters.sqlite_feedback import SqliteFeedbackStore
from moodspeaker.app.player import PlayerService, policy_from_config
from moodspeaker.config import parse_config
from moodspeaker.dev.demo_music import synth_track, write_library, write_wav
from moodspeaker.dev.mpd_server import MpdServer
from moodspeaker.errors import PlayerError


@pytest.fixture
def library_mpd(tmp_path: Path):
    """An MPD whose music directory has moods/<mood>/ folders and nothing else (no stored playlists used)."""
    music = tmp_path / "music"
    write_library(music / "moods", tmp_path / "playlists", {"happy": 2, "sad": 3, "calm": 2, "uplifting": 2},
                  seconds=20.0)
    server = MpdServer(tmp_path / "mpd", music, tmp_path / "playlists")
    server.start()
    yield server, music
    server.stop()


def _update(server: MpdServer) -> None:
    client = mpd.MPDClient()
    client.connect(server.host, server.port)
    try:
        client.update()
        while "updating_db" in client.status():
            time.sleep(0.05)
    finally:
        client.disconnect()


def test_folders_give_a_moods_songs_and_a_new_file_appears_after_a_database_update(library_mpd) -> None:
    server, music = library_mpd

    async def scenario() -> tuple[list[str], list[str]]:
        player = MpdPlayer(server.host, server.port, library="folders", library_dir="moods")
        try:
            await player.connect()
            before = [t.uri for t in await player.playlist_tracks("happy")]
            write_wav(music / "moods" / "happy" / "happy-new.wav", synth_track("happy", 9, 2.0), {"INAM": "New"})
            await asyncio.to_thread(_update, server)  # MPD: idle database
            deadline = time.monotonic() + 5
            while len(after := [t.uri for t in await player.playlist_tracks("happy")]) == len(before):
                assert time.monotonic() < deadline, "the new file never appeared"
                await asyncio.sleep(0.05)
            return before, after
        finally:
            await player.close()

    before, after = asyncio.run(scenario())
    assert before == ["moods/happy/happy-1.wav", "moods/happy/happy-2.wav"]
    assert after == [*before, "moods/happy/happy-new.wav"]


def test_a_missing_mood_folder_says_what_to_create(library_mpd) -> None:
    server, _ = library_mpd

    async def scenario() -> None:
        player = MpdPlayer(server.host, server.port, library="folders")
        try:
            await player.playlist_tracks("angry")
        finally:
            await player.close()

    with pytest.raises(PlayerError, match=r"no folder 'moods/angry'.*mpc update"):
        asyncio.run(scenario())


def test_tags_find_a_moods_songs_in_any_case(library_mpd) -> None:
    server, _ = library_mpd

    async def scenario() -> list[str]:
        player = MpdPlayer(server.host, server.port, library="tags", library_tag="album")
        try:
            return [t.uri for t in await player.playlist_tracks("SAD MOODS")]  # the demo files' album: "sad moods"
        finally:
            await player.close()

    assert asyncio.run(scenario()) == ["moods/sad/sad-1.wav", "moods/sad/sad-2.wav", "moods/sad/sad-3.wav"]


def test_library_mode_plays_a_mood_ranked_by_the_listeners_feedback(library_mpd, tmp_path: Path) -> None:
    server, _ = library_mpd
    config = parse_config(f'[mpd]\nhost = "{server.host}"\nport = {server.port}\nlibrary = "folders"\n'
                          '[player]\ncooldown_s = 0.0\n')
    policy = policy_from_config(config)  # default playlists: each key names its folder
    with SqliteFeedbackStore(tmp_path / "feedback.db") as store:
        for _ in range(30):
            store.record("sad", "moods/sad/sad-2.wav", "like", 0.0)
            store.record("sad", "moods/sad/sad-1.wav", "early_skip", 0.0)
        player = MpdPlayer.from_config(config.mpd)
        service = PlayerService(player, policy, store, backend="mpd", rng=random.Random(5))

        async def scenario() -> None:
            service.send(mood("sad"))
            await until(lambda: service.session.tracks_started == 1)

        serve(service, scenario)
    client = mpd.MPDClient()
    client.connect(server.host, server.port)
    queue = [s["file"] for s in client.playlistinfo()]
    client.disconnect()
    assert queue[0] == "moods/sad/sad-2.wav" and queue[-1] == "moods/sad/sad-1.wav" and len(queue) == 3


def test_a_mood_folder_larger_than_the_queue_cap_queues_the_cap_with_one_warning(library_mpd, caplog) -> None:
    """Issue 20 #7: a mood folder of more songs than MPD's queue takes (16,384) gave one warning per refused add
    and outlasted the call's time limit. A mood now queues at most QUEUE_CAP tracks, and says so once."""
    from moodspeaker.adapters.mpd_player import QUEUE_CAP

    server, music = library_mpd
    many = QUEUE_CAP + 50
    blip = synth_track("happy", 0, 0.05)
    (music / "moods" / "party").mkdir()
    for i in range(many):
        write_wav(music / "moods" / "party" / f"party-{i:05d}.wav", blip, {"INAM": f"Party {i}"})
    _update(server)

    async def scenario() -> int:
        player = MpdPlayer(server.host, server.port, library="folders", library_dir="moods")
        try:
            await player.connect()
            tracks = await player.playlist_tracks("party")
            assert len(tracks) == many
            with caplog.at_level("WARNING", logger="moodspeaker.adapters.mpd_player"):
                await player.play(tracks)
            return int((await player._client.status())["playlistlength"])
        finally:
            await player.close()

    assert asyncio.run(scenario()) == QUEUE_CAP
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"MPD: queueing the first {QUEUE_CAP} of {many} tracks (the most one mood queues)"]
