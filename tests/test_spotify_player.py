"""The Spotify Connect backend, with spotipy as the client, against a local fake of the Web API and accounts service."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fake_spotify import DROP, FakeSpotify
from spotipy.oauth2 import SpotifyOAuth, SpotifyPKCE

from moodspeaker.adapters.spotify_auth import TokenFile
from moodspeaker.adapters.spotify_player import SpotifyPlayer
from moodspeaker.cli import main
from moodspeaker.config import SpotifyConfig
from moodspeaker.core.domain import BackendReturned, Track
from moodspeaker.errors import PlayerError, PlayerUnavailable

PLAYLIST = "spotify:playlist:moodsad"


@pytest.fixture
def fake() -> Iterator[FakeSpotify]:
    server = FakeSpotify().start()
    server.add_playlist("moodsad", 5)
    yield server
    server.stop()


def _config(fake: FakeSpotify, tmp_path: Path, **overrides) -> SpotifyConfig:
    values = {"client_id": fake.client_id, "client_secret": fake.client_secret, "device_name": "moodspeaker",
              "token_cache": str(tmp_path / "spotify-token.json"), "poll_s": 0.2, **overrides}
    return SpotifyConfig(**values)


def _player(fake: FakeSpotify, tmp_path: Path, *, token: dict | None = None, **overrides) -> SpotifyPlayer:
    cfg = _config(fake, tmp_path, **overrides)
    if token is not False:
        TokenFile(Path(cfg.token_cache)).save_token_to_cache(token or fake.issue_token())
    player = SpotifyPlayer.from_config(cfg)
    player.client.prefix = fake.api_prefix  # spotipy's Web API base URL
    player.token.manager.OAUTH_TOKEN_URL = fake.token_url  # spotipy's accounts token endpoint
    return player


def run(coro):
    return asyncio.run(coro)


def test_playlist_is_read_across_pages_in_stored_order(fake: FakeSpotify, tmp_path: Path) -> None:
    tracks = run(_player(fake, tmp_path).playlist_tracks(PLAYLIST))
    assert [t.uri for t in tracks] == fake.playlists["moodsad"]
    assert tracks[0] == Track("spotify:track:moodsad000", "Song 0", "Artist 0")
    assert len(fake.calls("GET", "/v1/playlists/moodsad/items")) == 3  # 5 tracks, pages of 2


def test_no_active_device_transfers_playback_then_starts_our_order(fake: FakeSpotify, tmp_path: Path) -> None:
    player = _player(fake, tmp_path)
    tracks = list(reversed(run(player.playlist_tracks(PLAYLIST))))  # "ranked": any order but the stored one
    run(player.play(tracks))
    plays = fake.calls("PUT", "/v1/me/player/play")
    transfers = fake.calls("PUT", "/v1/me/player")
    assert len(plays) == 2 and len(transfers) == 1  # refused (NO_ACTIVE_DEVICE), transfer, repeated
    assert transfers[0].body == {"device_ids": ["dev-speaker"], "play": False}  # found by name, case-insensitively
    assert plays[0].time < transfers[0].time < plays[1].time
    assert plays[1].query["device_id"] == ["dev-speaker"]
    assert plays[1].body == {"uris": [t.uri for t in tracks]}
    assert fake.queue == [t.uri for t in tracks] and fake.is_playing and fake.current == tracks[0].uri


def test_next_pause_and_resume(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.active_device = "dev-speaker"
    player = _player(fake, tmp_path)
    tracks = run(player.playlist_tracks(PLAYLIST))
    run(player.play(tracks))
    run(player.next())
    assert fake.current == tracks[1].uri
    assert fake.calls("POST", "/v1/me/player/next")[0].query["device_id"] == ["dev-speaker"]
    run(player.toggle_pause())
    assert not fake.is_playing and fake.calls("PUT", "/v1/me/player/pause")
    run(player.toggle_pause())
    assert fake.is_playing and fake.current == tracks[1].uri


def test_like_saves_the_track_with_put_me_library(fake: FakeSpotify, tmp_path: Path) -> None:
    player = _player(fake, tmp_path)
    run(player.like(Track("spotify:track:moodsad002")))
    (call,) = fake.calls("PUT", "/v1/me/library")
    assert call.query["uris"] == ["spotify:track:moodsad002"]
    assert fake.library == ["spotify:track:moodsad002"]


def test_wait_track_change_reports_the_next_track_then_the_end(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.active_device = "dev-speaker"
    player = _player(fake, tmp_path)
    tracks = run(player.playlist_tracks(PLAYLIST))[:2]

    async def scenario() -> tuple[Track | None, Track | None, Track | None]:
        await player.play(tracks)
        first = await player.wait_track_change()  # the first track of a playlist is a change too
        asyncio.get_running_loop().call_later(0.3, lambda: setattr(fake, "position", 1))  # track 1 ends
        changed = await player.wait_track_change()
        asyncio.get_running_loop().call_later(0.3, lambda: fake.__setattr__("position", 2))  # the list is over
        return first, changed, await player.wait_track_change()

    first, changed, ended = run(scenario())
    assert first == tracks[0]
    assert changed == tracks[1]
    assert ended is None


def test_the_first_track_is_reported_even_to_a_watcher_already_waiting(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.active_device = "dev-speaker"
    player = _player(fake, tmp_path)
    tracks = run(player.playlist_tracks(PLAYLIST))

    async def scenario() -> Track | None:
        watcher = asyncio.create_task(player.wait_track_change())  # the service's watcher waits all the time
        await asyncio.sleep(0.05)
        await player.play(tracks)
        return await asyncio.wait_for(watcher, 2)

    assert run(scenario()) == tracks[0]


def test_play_next_with_nothing_playing_starts_at_once(fake: FakeSpotify, tmp_path: Path) -> None:
    player = _player(fake, tmp_path)
    tracks = run(player.playlist_tracks(PLAYLIST))[:2]
    run(player.play_next(tracks))
    assert fake.queue == [t.uri for t in tracks] and fake.is_playing


def test_play_next_starts_the_new_list_when_the_current_track_ends(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.active_device = "dev-speaker"
    player = _player(fake, tmp_path)
    old, new = run(player.playlist_tracks(PLAYLIST))[:2], run(player.playlist_tracks(PLAYLIST))[3:]

    async def scenario() -> Track | None:
        await player.play(old)
        assert await player.wait_track_change() == old[0]
        fake.progress_ms = 180_000 - 150  # 0.15 s left of the first track: less than one poll (0.2 s)
        await player.play_next(new)
        assert fake.queue == [t.uri for t in old]  # nothing changes before the track ends
        return await player.wait_track_change()

    started = time.monotonic()
    assert run(scenario()) == new[0]
    plays = fake.calls("PUT", "/v1/me/player/play")
    assert plays[-1].body == {"uris": [t.uri for t in new]}
    assert plays[-1].time - started >= 0.2 + 0.15  # one poll, then the 0.15 s left of the track
    assert fake.queue == [t.uri for t in new]


def test_play_next_starts_the_new_list_on_a_skip(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.active_device = "dev-speaker"
    player = _player(fake, tmp_path)
    old, new = run(player.playlist_tracks(PLAYLIST))[:2], run(player.playlist_tracks(PLAYLIST))[3:]

    async def scenario() -> Track | None:
        await player.play(old)
        assert await player.wait_track_change() == old[0]
        await player.play_next(new)
        await player.next()  # the listener skips the old mood's track
        return await player.wait_track_change()

    assert run(scenario()) == new[0]
    assert fake.queue == [t.uri for t in new]


def test_an_expired_cached_token_is_refreshed_before_the_call(fake: FakeSpotify, tmp_path: Path) -> None:
    old = fake.issue_token()
    fake.access_tokens.discard(old["access_token"])
    old["expires_at"] = int(time.time()) - 10
    player = _player(fake, tmp_path, token=old)
    assert len(run(player.playlist_tracks(PLAYLIST))) == 5
    (refresh,) = fake.calls("POST", "/api/token")
    assert refresh.body["grant_type"] == ["refresh_token"] and refresh.body["refresh_token"] == [old["refresh_token"]]
    cached = json.loads(Path(player.token.cache.path).read_text())
    assert cached["access_token"] in fake.access_tokens and cached["access_token"] != old["access_token"]
    assert cached["refresh_token"] == old["refresh_token"]
    assert all(r.token == cached["access_token"] for r in fake.requests if r.path.startswith("/v1/"))
    assert stat.S_IMODE(Path(player.token.cache.path).stat().st_mode) == 0o600


def test_a_token_the_server_rejects_early_is_refreshed_and_the_call_repeated(fake: FakeSpotify, tmp_path: Path) -> None:
    player = _player(fake, tmp_path)
    fake.access_tokens.clear()  # revoked on the server, still valid by the clock
    run(player.like(Track("spotify:track:x1")))
    assert [r.path for r in fake.requests] == ["/v1/me/library", "/api/token", "/v1/me/library"]
    assert fake.library == ["spotify:track:x1"]


def test_a_429s_retry_after_is_the_back_off_not_a_wait_inside_the_call(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.active_device = "dev-speaker"
    clock = FakeClock()
    player = _clocked(fake, tmp_path, clock)
    fake.fail("PUT", "/v1/me/player/play", 429, retry_after=3)
    started = time.monotonic()
    with pytest.raises(PlayerUnavailable, match=r"rate-limits this app for 3 s .*trying again in 3\.0 s"):
        run(player.play([Track("spotify:track:moodsad001")]))
    assert time.monotonic() - started < 2  # not slept through
    clock.now += 2.9
    with pytest.raises(PlayerUnavailable, match=r"rate-limits this app for 3 s .*trying again in 3\.0 s"):
        run(player.play([Track("spotify:track:moodsad001")]))
    assert len(fake.calls("PUT", "/v1/me/player/play")) == 1  # nobody asked Spotify meanwhile
    clock.now += 0.1
    run(player.play([Track("spotify:track:moodsad001")]))
    assert fake.queue == ["spotify:track:moodsad001"]


def test_5xx_and_a_dropped_connection_fail_at_once_and_the_back_off_doubles(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.active_device = "dev-speaker"
    clock = FakeClock()
    player = _clocked(fake, tmp_path, clock)
    fake.fail("POST", "/v1/me/player/next", 503, times=2)
    fake.fail("POST", "/v1/me/player/next", DROP)
    fake.queue = ["a", "b"]
    errors = []
    for _ in range(3):
        with pytest.raises(PlayerUnavailable) as error:
            run(player.next())
        errors.append(str(error.value))
        with pytest.raises(PlayerUnavailable, match="trying again in"):  # during the back-off: nothing sent
            run(player.next())
        clock.now += player.calls.backoff_s
    run(player.next())
    assert [e.rsplit("again in ", 1)[1] for e in errors] == ["0.5 s", "1.0 s", "2.0 s"]  # exponential back-off
    assert "HTTP 503" in errors[0] and "network error" in errors[2]
    assert len(fake.calls("POST", "/v1/me/player/next")) == 4
    assert fake.position == 1 and player.calls.backoff_s == 0  # worked: the back-off starts afresh


def test_spotify_down_for_ten_minutes_is_tried_at_the_back_off_pace_and_back_within_one_period(
        fake: FakeSpotify, tmp_path: Path) -> None:
    """3, on Spotify: the watcher sleeps the back-off out between its attempts (production constants; a clock the
    sleeps advance), commands meanwhile fail at once without a request, and once Spotify answers again the next
    attempt (at most one back-off later) sees the music."""
    from moodspeaker.adapters.spotify_player import BACKOFF_MAX_S

    fake.active_device = "dev-speaker"
    clock = FakeClock()
    player = _clocked(fake, tmp_path, clock)
    tracks = run(player.playlist_tracks(PLAYLIST))

    async def scenario() -> tuple[list[float], list[int], float, Track | None]:
        await player.play(tracks)
        assert await player.wait_track_change() == tracks[0]
        fake.fail("GET", "/v1/me/player", 503, times=10_000)
        polls_at: list[float] = []
        sent_meanwhile = []
        start = clock.now
        while clock.now - start < 600:
            polls = len(fake.calls("GET", "/v1/me/player"))
            with pytest.raises(PlayerUnavailable, match="HTTP 503"):
                await player.wait_track_change()
            polls_at += [clock.now] * (len(fake.calls("GET", "/v1/me/player")) - polls)
            polls = len(fake.calls("GET", "/v1/me/player"))
            with pytest.raises(PlayerUnavailable, match="trying again in"):
                await player.volume()
            sent_meanwhile.append(len(fake.calls("GET", "/v1/me/player")) - polls)
        fake.failures.clear()  # Spotify is back; the listener skipped to the next track meanwhile
        fake.position = 1
        back_at = clock.now
        assert await player.wait_track_change() == BackendReturned()
        await player.restore(tracks, 0, 1.0, False)  # as the session answers it: the device carried on, left alone
        return polls_at, sent_meanwhile, clock.now - back_at, await player.wait_track_change()

    polls_at, sent_meanwhile, _, changed = run(scenario())
    gaps = [b - a for a, b in itertools.pairwise(polls_at)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0] and set(gaps[4:]) == {BACKOFF_MAX_S}  # doubling from 0.5 s, then 8 s
    assert len(polls_at) > 60 and set(sent_meanwhile) == {0}
    assert changed == tracks[1] and clock.now - polls_at[-1] <= BACKOFF_MAX_S
    assert len(fake.calls("PUT", "/v1/me/player/play")) == 1  # the restore started nothing


def test_a_device_that_lost_its_music_while_spotify_was_away_gets_the_list_back_where_it_was(
        fake: FakeSpotify, tmp_path: Path) -> None:
    """Build 1 on Spotify: raspotify restarted while the network was down. Before, the first poll that worked found
    nothing playing: a stop, the track counted as a full play, the mood's list started from its first track."""
    fake.active_device = "dev-speaker"
    player = _player(fake, tmp_path)
    tracks = run(player.playlist_tracks(PLAYLIST))

    async def scenario() -> object:
        await player.play(tracks)
        assert await player.wait_track_change() == tracks[0]
        fake.fail("GET", "/v1/me/player", 503)
        with pytest.raises(PlayerUnavailable, match="HTTP 503"):
            await player.wait_track_change()
        fake.active_device, fake.queue, fake.is_playing = None, [], False  # the Connect device restarted
        returned = await player.wait_track_change()
        await player.restore(tracks, 1, 42.5, True)
        return returned

    assert run(scenario()) == BackendReturned()
    assert fake.calls("PUT", "/v1/me/player/play")[-1].body == {"uris": [t.uri for t in tracks[1:]], "position_ms": 42500}
    assert fake.current == tracks[1].uri and fake.active_device == "dev-speaker" and not fake.is_playing


def test_401_even_after_refreshing_is_a_clear_player_error(fake: FakeSpotify, tmp_path: Path) -> None:
    player = _player(fake, tmp_path)
    fake.fail("GET", "/v1/me/player", 401, times=2)
    with pytest.raises(PlayerError, match=r"rejected the login.*moodspeaker spotify-login"):
        run(player.volume())
    assert len(fake.calls("POST", "/api/token")) == 1  # one refresh attempt, no loop


def test_a_revoked_refresh_token_is_a_clear_player_error(fake: FakeSpotify, tmp_path: Path) -> None:
    old = fake.issue_token()
    old["expires_at"] = int(time.time()) - 10
    fake.refresh_tokens.clear()
    with pytest.raises(PlayerError, match=r"refused to refresh the login \(invalid_grant\).*spotify-login"):
        run(_player(fake, tmp_path, token=old).volume())


@pytest.mark.parametrize(("path", "reason", "message", "says"), [
    ("/v1/me/player/next", "PREMIUM_REQUIRED", "Player command failed: Premium required", r"needs Spotify Premium.*renew"),
    ("/v1/me/player/next", None, "Insufficient client scope", r"lacks a permission.*moodspeaker spotify-login"),
    ("/v1/playlists/moodsad/items", None, "Forbidden", r"owns or collaborates on.*copy it"),
], ids=["premium-lapsed", "login", "playlist-not-yours"])
def test_403s_are_told_apart_with_what_to_do(fake: FakeSpotify, tmp_path: Path, path: str, reason: str | None,
                                             message: str, says: str) -> None:
    fake.active_device = "dev-speaker"
    player = _player(fake, tmp_path)
    fake.fail("GET" if "playlists" in path else "POST", path, 403, reason=reason, message=message)
    with pytest.raises(PlayerError, match=says):
        run(player.playlist_tracks(PLAYLIST) if "playlists" in path else player.next())


def test_an_editorial_playlist_404_says_to_copy_it(fake: FakeSpotify, tmp_path: Path) -> None:
    with pytest.raises(PlayerError, match=r"not found \(404\).*Spotify's own.*copy it"):
        run(_player(fake, tmp_path).playlist_tracks("spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"))


def test_no_login_says_to_log_in(fake: FakeSpotify, tmp_path: Path) -> None:
    with pytest.raises(PlayerError, match=r"not logged in to Spotify.*spotify-login"):
        run(_player(fake, tmp_path, token=False).volume())


def test_playlists_are_read_in_pages_of_at_most_50(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.page_size = 1000  # the fake serves what is asked for, up to 50, and answers 400 above that
    fake.add_playlist("long", 120)
    tracks = run(_player(fake, tmp_path).playlist_tracks("spotify:playlist:long"))
    assert [t.uri for t in tracks] == fake.playlists["long"]
    pages = fake.calls("GET", "/v1/playlists/long/items")
    assert [int(p.query["limit"][0]) for p in pages] == [50, 50, 50] and len(pages) == 3


def test_a_long_list_starts_with_100_and_tops_the_queue_up_as_it_plays(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.active_device = "dev-speaker"
    fake.page_size = 50
    fake.add_playlist("long", 130)
    player = _player(fake, tmp_path)
    tracks = run(player.playlist_tracks("spotify:playlist:long"))

    async def scenario() -> list[Track | None]:
        await player.play(tracks)
        seen = [await player.wait_track_change()]
        for position in (98, 103):  # two tracks from the end of what Spotify has (100, then 105): queue 5 more
            fake.position = position
            seen.append(await player.wait_track_change())
        return seen

    seen = run(scenario())
    (start,) = fake.calls("PUT", "/v1/me/player/play")
    assert start.body == {"uris": [t.uri for t in tracks[:100]]}
    assert seen == [tracks[0], tracks[98], tracks[103]]
    queued = [r.query["uri"][0] for r in fake.calls("POST", "/v1/me/player/queue")]
    assert queued == [t.uri for t in tracks[100:110]]  # two top-ups of 5, in the ranked order
    assert fake.queue == [t.uri for t in tracks[:110]]


class FakeClock:
    """Monotonic time for the back-off, that moves only when the player sleeps one out or the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _clocked(fake: FakeSpotify, tmp_path: Path, clock: FakeClock, **overrides) -> SpotifyPlayer:
    player = _player(fake, tmp_path, **overrides)
    player.calls._clock, player.calls._sleep = clock, clock.sleep
    return player


@pytest.mark.parametrize("retry_after", [40, 3600])
def test_a_long_retry_after_is_honoured_without_blocking_the_loop(fake: FakeSpotify, tmp_path: Path,
                                                                  retry_after: int) -> None:
    clock = FakeClock()
    player = _clocked(fake, tmp_path, clock)
    fake.fail("GET", "/v1/me/player", 429, retry_after=retry_after)
    with pytest.raises(PlayerUnavailable, match=f"rate-limits this app for {retry_after} s"):
        run(player.volume())
    assert clock.slept == []  # not slept through: the call returned at once
    for _ in range(5):  # the loop keeps asking; nobody asks Spotify before Retry-After is over
        clock.now += retry_after / 10
        with pytest.raises(PlayerUnavailable, match=f"rate-limits this app for {retry_after} s"):
            run(player.volume())
    assert len(fake.calls("GET", "/v1/me/player")) == 1
    clock.now += retry_after / 2 + 1
    assert run(player.volume()) is None  # over: asks again
    assert len(fake.calls("GET", "/v1/me/player")) == 2


def test_slow_answers_end_the_call_within_its_budget(fake: FakeSpotify, tmp_path: Path) -> None:
    cfg = _config(fake, tmp_path)
    TokenFile(Path(cfg.token_cache)).save_token_to_cache(fake.issue_token())
    player = SpotifyPlayer.from_config(cfg, budget_s=1.0)  # requests time out after half of it
    player.client.prefix = fake.api_prefix
    fake.fail("GET", "/v1/me/player", 503, delay_s=3.0, times=5)  # answers after 3 s: three budgets
    started = time.monotonic()
    with pytest.raises(PlayerUnavailable, match="ReadTimeout"):
        run(player.volume())
    assert time.monotonic() - started < 1.0 + 0.5


def test_a_non_json_200_on_devices_is_reported_not_a_crash(fake: FakeSpotify, tmp_path: Path) -> None:
    player = _player(fake, tmp_path)
    fake.fail("GET", "/v1/me/player/devices", 200, body=b"<html>captive portal</html>")
    with pytest.raises(PlayerUnavailable, match="cannot read"):
        run(player.play([Track("spotify:track:moodsad000")]))
    run(player.calls.wait_turn())
    run(player.play([Track("spotify:track:moodsad000")]))  # the next try, after the back-off, works
    assert fake.queue == ["spotify:track:moodsad000"]


@pytest.mark.parametrize("answer", [
    b'{"is_playing": "yes", "item": null}',
    b'{"is_playing": true, "progress_ms": 5, "item": {"type": "track", "name": "no uri"}}',
    b'[1, 2]',
    b'<html>captive portal</html>',  # issue 20 #5: spotipy reads a non-JSON 200 as None, "nothing plays"
], ids=["is_playing-not-bool", "item-without-uri", "not-an-object", "not-json"])
def test_a_malformed_poll_answer_is_unavailable_not_the_end_of_the_list(fake: FakeSpotify, tmp_path: Path,
                                                                        answer: bytes) -> None:
    fake.active_device = "dev-speaker"
    player = _player(fake, tmp_path)
    tracks = run(player.playlist_tracks(PLAYLIST))

    async def scenario() -> None:
        await player.play(tracks)
        assert await player.wait_track_change() == tracks[0]
        fake.fail("GET", "/v1/me/player", 200, body=answer)
        await player.wait_track_change()  # None here would make the service restart the playlist

    with pytest.raises(PlayerUnavailable, match="cannot read"):
        run(scenario())
    assert len(fake.calls("PUT", "/v1/me/player/play")) == 1


def test_verbose_logs_carry_no_token_or_secret(fake: FakeSpotify, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # as `moodspeaker -v player`
    old = fake.issue_token()
    old["expires_at"] = int(time.time()) - 10  # expired: the player refreshes it first
    player = _player(fake, tmp_path, token=old)
    run(player.playlist_tracks(PLAYLIST))
    fake.fail("GET", "/v1/me/player", 500)
    with pytest.raises(PlayerUnavailable):
        run(player.volume())
    cached = json.loads(Path(player.token.cache.path).read_text())
    secrets = [old["access_token"], old["refresh_token"], cached["access_token"], fake.client_secret]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records  # -v does log (the requests), just not the secrets
    assert not [secret for secret in secrets if secret in logged]


def test_an_offline_device_is_named_with_the_devices_seen(fake: FakeSpotify, tmp_path: Path) -> None:
    player = _player(fake, tmp_path, device_name="kitchen")
    with pytest.raises(PlayerError, match=r"'kitchen' is not online \(seen: 'Pixel', 'Moodspeaker'\)"):
        run(player.play([Track("spotify:track:a")]))


@pytest.mark.parametrize("secret", ["test-secret", ""], ids=["client-secret", "pkce"])
def test_spotify_login_exchanges_the_pasted_redirect_and_writes_a_0600_cache(
        fake: FakeSpotify, tmp_path: Path, monkeypatch, capsys, secret: str) -> None:
    cache = tmp_path / "state" / "spotify-token.json"
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[spotify]\nclient_id = "{fake.client_id}"\nclient_secret = "{secret}"\ntoken_cache = "{cache}"\n'
                   'redirect_uri = "http://127.0.0.1:8888/callback"\n')
    for manager in (SpotifyOAuth, SpotifyPKCE):
        monkeypatch.setattr(manager, "OAUTH_TOKEN_URL", fake.token_url)
        monkeypatch.setattr(manager, "OAUTH_AUTHORIZE_URL", fake.authorize_url)

    def listener_pastes_redirect() -> str:
        """The person at the SSH prompt: opens the printed URL, allows access, pastes where the browser went."""
        printed = capsys.readouterr().out
        url = next(word for word in printed.split() if word.startswith(fake.authorize_url))
        query = parse_qs(urlsplit(url).query)
        assert query["client_id"] == [fake.client_id] and "user-library-modify" in query["scope"][0]
        code = fake.new_code(query.get("code_challenge", [None])[0])
        return f"{query['redirect_uri'][0]}?code={code}&state={query['state'][0]}\n"

    monkeypatch.setattr("sys.stdin", type("Paste", (), {"readline": staticmethod(listener_pastes_redirect)})())
    before = time.time()
    assert main(["spotify-login", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "Logged in" in out and "six months from now" in out
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    token = json.loads(cache.read_text())
    assert before <= token["logged_in_at"] <= time.time()  # the six months count from here
    assert token["access_token"] in fake.access_tokens and token["refresh_token"] in fake.refresh_tokens


def test_spotify_login_refuses_a_url_without_a_code_or_from_another_attempt(fake: FakeSpotify, tmp_path: Path,
                                                                            monkeypatch, capsys) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[spotify]\nclient_id = "id"\ntoken_cache = "{tmp_path / "t.json"}"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("http://127.0.0.1:8888/callback?error=access_denied\n"))
    assert main(["spotify-login", "--config", str(cfg)]) == 2
    assert "did not grant access" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("http://127.0.0.1:8888/callback?code=abc&state=stale\n"))
    assert main(["spotify-login", "--config", str(cfg)]) == 2
    assert "another login attempt" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("http://127.0.0.1:8888/callback\n"))
    assert main(["spotify-login", "--config", str(cfg)]) == 2
    assert "has no ?code=" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


def test_spotify_login_raises_its_errors_for_cli_main_to_report(tmp_path: Path, monkeypatch, capsys) -> None:
    """A thin command: it raises the error kinds and `cli.main` turns them into one line and exit 2 (it used to
    print and return 2 itself, so `-v` showed no traceback)."""
    from moodspeaker.cli import build_parser
    from moodspeaker.commands.spotify_login import LoginError
    from moodspeaker.errors import EXIT_OWNER, ConfigError

    cfg = tmp_path / "config.toml"
    cfg.write_text('[spotify]\nclient_id = ""\n')
    args = build_parser().parse_args(["spotify-login", "--config", str(cfg)])
    with pytest.raises(PlayerError, match=r"client_id is empty") as raised:
        args.func(args)
    assert raised.value.exit_code == EXIT_OWNER
    cfg.write_text('[spotify]\nclient_idd = "id"\n')
    with pytest.raises(ConfigError, match=r"did you mean 'client_id'"):
        args.func(args)
    cfg.write_text(f'[spotify]\nclient_id = "id"\ntoken_cache = "{tmp_path / "t.json"}"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("http://127.0.0.1:8888/callback?code=abc&state=stale\n"))
    with pytest.raises(LoginError, match="another login attempt"):
        args.func(args)
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("http://127.0.0.1:8888/callback?code=abc&state=stale\n"))
    assert main(["spotify-login", "--config", str(cfg)]) == EXIT_OWNER
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("moodspeaker spotify-login: that URL belongs to another login")


def test_token_file_fsyncs_its_folder_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    cache = TokenFile(tmp_path / "state" / "token.json")
    cache.save_token_to_cache({"access_token": "a", "refresh_token": "r"})
    assert synced == [str(tmp_path / "state" / "token.json.tmp"), str(tmp_path / "state")]
    assert cache.get_cached_token() == {"access_token": "a", "refresh_token": "r"}


def test_the_login_date_survives_refreshes_and_status_warns_before_six_months(fake: FakeSpotify, tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from moodspeaker.adapters.spotify_auth import LOGIN_LIFETIME_S
    from moodspeaker.commands.status import gather, render
    from moodspeaker.config import parse_config

    old = fake.issue_token()
    old["expires_at"] = int(time.time()) - 10
    player = _player(fake, tmp_path, token=old)
    logged_in = time.time() - 175 * 86400  # 175 days ago: a week left
    assert player.token.cache.record_login(logged_in) == logged_in + LOGIN_LIFETIME_S
    run(player.volume())  # refreshes the expired access token: spotipy writes a new token_info
    assert json.loads(Path(player.token.cache.path).read_text())["logged_in_at"] == logged_in
    config = parse_config(f'[player]\nbackend = "spotify"\n[spotify]\nclient_id = "{fake.client_id}"\n'
                          f'token_cache = "{player.token.cache.path}"\n')
    report = gather(config, tmp_path / "run")
    assert report["spotify_login"]["warn"] and 6 < report["spotify_login"]["days_left"] < 8
    assert "log in again now" in render(report)
    player.token.cache.record_login(time.time())
    assert "spotify login until" in render(gather(config, tmp_path / "run"))


def test_volume_is_set_and_read_and_a_device_that_refuses_it_is_said_once(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.active_device = "dev-speaker"
    player = _player(fake, tmp_path)
    run(player.play([Track("spotify:track:moodsad000")]))
    run(player.set_volume(35))
    assert fake.volume_percent == 35 and run(player.volume()) == 35
    assert fake.calls("PUT", "/v1/me/player/volume")[0].query["device_id"] == ["dev-speaker"]
    fake.fail("PUT", "/v1/me/player/volume", 403, reason="VOLUME_CONTROL_DISALLOW", message="Cannot control device volume")
    with pytest.raises(PlayerError, match=r"does not let apps set its volume.*stops trying"):
        run(player.set_volume(20))
    run(player.set_volume(10))  # not asked again, not said again
    assert len(fake.calls("PUT", "/v1/me/player/volume")) == 2 and fake.volume_percent == 35


@pytest.mark.parametrize("status", [404, 400])
def test_a_like_spotify_refuses_arrives_as_our_error(fake: FakeSpotify, tmp_path: Path, status: int) -> None:
    """E: a like's 404/400 crossed the port as spotipy's own SpotifyException."""
    player = _player(fake, tmp_path)
    fake.fail("PUT", "/v1/me/library", status, message="Invalid id")
    with pytest.raises(PlayerError, match=f"Spotify refused \\({status}: Invalid id\\)"):
        run(player.like(Track("spotify:track:nosuch")))


def test_a_call_that_waited_out_its_budget_for_the_one_before_sends_nothing(fake: FakeSpotify, tmp_path: Path) -> None:
    """E: a call that got the lock late still sent its request, which then outlived the call's budget in its
    worker thread (and the service's time limit). Now a request that cannot end within the budget is not sent."""
    import threading

    cfg = _config(fake, tmp_path)
    TokenFile(Path(cfg.token_cache)).save_token_to_cache(fake.issue_token())
    player = SpotifyPlayer.from_config(cfg, budget_s=1.0)  # requests time out after 0.5 s
    player.client.prefix = fake.api_prefix
    player._lock.acquire()  # the call before it, still talking to Spotify
    threading.Timer(0.7, player._lock.release).start()  # ... until 0.7 s of the 1 s budget are gone
    with pytest.raises(PlayerUnavailable, match="within 1 s"):
        run(player.volume())
    assert fake.calls("GET", "/v1/me/player") == []


def test_a_play_during_the_wait_for_the_tracks_end_replaces_the_waiting_list(fake: FakeSpotify, tmp_path: Path) -> None:
    """E: the watcher slept out the current track's last moments, then started its play_next() list, which a play()
    had meanwhile cleared: an index into an empty list."""
    fake.active_device = "dev-speaker"
    player = _player(fake, tmp_path, poll_s=3.0)
    tracks = run(player.playlist_tracks(PLAYLIST))
    old, new, other = tracks[:1], tracks[1:3], tracks[3:]

    async def scenario() -> Track | None:
        await player.play(old)
        assert await player.wait_track_change() == old[0]
        # 1.5 s left, less than a poll (3 s): the watcher sleeps them out (wide enough for a loaded machine)
        fake.progress_ms = 180_000 - 1_500
        await player.play_next(new)
        watcher = asyncio.create_task(player.wait_track_change())
        while not fake.calls("GET", "/v1/me/player")[1:]:  # the watcher has polled and sleeps to the track's end
            await asyncio.sleep(0.02)
        await player.play(other)  # a mood that cuts in: replaces the waiting list
        return await watcher

    assert run(scenario()) == other[0]
    assert fake.queue == [t.uri for t in other]


def test_a_reload_keeps_the_list_a_mood_queued_after_the_track(fake: FakeSpotify, tmp_path: Path) -> None:
    """E: the list play_next() left waiting lived only in the old backend; a reload dropped it."""
    import random

    from moodspeaker.adapters.sqlite_feedback import SqliteFeedbackStore
    from moodspeaker.app.player import PlayerService
    from moodspeaker.core.mood import MoodEvent
    from moodspeaker.core.policy import MoodPolicy

    fake.active_device = "dev-speaker"
    happy = fake.add_playlist("moodhappy", 3)
    policy = MoodPolicy({"happy": "spotify:playlist:moodhappy", "sad": PLAYLIST}, cooldown_s=0.0)
    old, new = _player(fake, tmp_path), _player(fake, tmp_path)
    with SqliteFeedbackStore(tmp_path / "fb.db") as store:
        async def reload() -> None:
            service.replace(new, store, policy, 30.0, "spotify")

        service = PlayerService(old, policy, store, backend="spotify", rng=random.Random(1), on_reload=reload)

        async def until(condition) -> None:
            deadline = time.monotonic() + 10
            while not condition():
                assert time.monotonic() < deadline, "condition not met in time"
                await asyncio.sleep(0.02)

        async def scenario() -> None:
            task = asyncio.create_task(service.run())
            service.send(MoodEvent("mood", "happy", 0.9, 0.0))
            await until(lambda: service.session.tracks_started == 1)
            service.send(MoodEvent("mood", "sad", 0.9, 0.0))  # waits for the happy track to end
            await until(lambda: any(t.uri in fake.playlists["moodsad"] for t in service.session.queue))
            service.request_reload()
            await until(lambda: service.player is new and old not in service._retired)
            fake.progress_ms = 180_000 - 100  # the happy track ends
            await until(lambda: service.session.tracks_started == 2)
            service.stop()
            await asyncio.wait_for(task, 10)

        run(scenario())
    assert set(fake.queue) == set(fake.playlists["moodsad"]) and not set(fake.queue) & set(happy)


def test_another_app_pausing_our_music_is_the_owner_taking_over(fake: FakeSpotify, tmp_path: Path) -> None:
    """I, on Spotify: a pause from the phone's Spotify app was not seen, and the next mood un-paused it."""
    from moodspeaker.core.domain import OwnerTookOver

    fake.active_device = "dev-speaker"
    player = _player(fake, tmp_path)
    tracks = run(player.playlist_tracks(PLAYLIST))

    async def scenario() -> list:
        await player.play(tracks)
        seen = [await player.wait_track_change()]
        await player.toggle_pause()  # our own pause and resume (the button)
        await player.toggle_pause()
        fake.progress_ms = 5_000
        fake.is_playing = False  # the phone's app pauses it
        seen.append(await asyncio.wait_for(player.wait_track_change(), 5))
        return seen

    assert run(scenario()) == [tracks[0], OwnerTookOver("paused")]


@pytest.mark.parametrize("context", ["spotify:playlist:ownermix", None], ids=["another-playlist", "other-tracks"])
def test_the_owner_playing_other_music_from_the_phone_is_the_owner_taking_over(fake: FakeSpotify, tmp_path: Path,
                                                                               context: str | None) -> None:
    """4: the phone's app starting a playlist (a context), or tracks that are not among those the speaker queued,
    on the speaker's device, went unseen; the next mood replaced the owner's music."""
    from moodspeaker.core.domain import OwnerTookOver

    fake.active_device = "dev-speaker"
    owners = fake.add_playlist("ownermix", 2)
    player = _player(fake, tmp_path)
    tracks = run(player.playlist_tracks(PLAYLIST))

    async def scenario() -> list:
        await player.play(tracks[:3])
        seen = [await player.wait_track_change()]
        fake.position = 1  # our own next track: a change, not the owner
        seen.append(await player.wait_track_change())
        fake.queue, fake.position, fake.context = list(owners), 0, context  # the phone's app
        seen.append(await asyncio.wait_for(player.wait_track_change(), 5))
        fake.position = 1  # the owner's music goes on: a track change, not taken over twice
        seen.append(await asyncio.wait_for(player.wait_track_change(), 5))
        return seen

    assert run(scenario()) == [tracks[0], tracks[1], OwnerTookOver("played something else"),
                               Track(owners[1], "Song 1", "Artist 1")]


def test_the_owner_moving_the_music_to_the_phone_is_the_owner_taking_over(fake: FakeSpotify, tmp_path: Path) -> None:
    """The phone's app moving our music to the phone (Spotify Connect's device picker) is the owner's choice: the
    speaker yields instead of taking the music back to its device at the next mood."""
    from moodspeaker.core.domain import OwnerTookOver

    fake.active_device = "dev-speaker"
    player = _player(fake, tmp_path)
    tracks = run(player.playlist_tracks(PLAYLIST))

    async def scenario() -> list:
        await player.play(tracks[:3])
        seen = [await player.wait_track_change()]
        fake.active_device = "dev-phone"  # the same track goes on, on the phone
        seen.append(await asyncio.wait_for(player.wait_track_change(), 5))
        return seen

    assert run(scenario()) == [tracks[0], OwnerTookOver("moved the music to Pixel")]


def test_a_track_after_the_end_of_our_list_is_the_list_running_out_not_the_owner(fake: FakeSpotify,
                                                                                 tmp_path: Path) -> None:
    fake.active_device = "dev-speaker"
    autoplay = fake.add_playlist("radio", 1)
    player = _player(fake, tmp_path)
    tracks = run(player.playlist_tracks(PLAYLIST))[:2]

    async def scenario() -> list:
        await player.play(tracks)
        seen = [await player.wait_track_change()]
        fake.position = 1
        seen.append(await player.wait_track_change())
        fake.queue.append(autoplay[0])  # Spotify's autoplay, after our last track
        fake.position = 2
        seen.append(await asyncio.wait_for(player.wait_track_change(), 5))
        return seen

    assert run(scenario()) == [tracks[0], tracks[1], Track(autoplay[0], "Song 0", "Artist 0")]


def test_a_reloads_new_backend_takes_the_music_as_ours_and_sees_a_move_to_the_phone_at_once(
        fake: FakeSpotify, tmp_path: Path) -> None:
    """After a reload the new backend knew its device only at the next play: a move to the phone right after went
    unseen. The session's restore now tells it what plays: taken as ours, its device known, nothing restarted."""
    from moodspeaker.core.domain import OwnerTookOver

    fake.active_device = "dev-speaker"
    old, new = _player(fake, tmp_path), _player(fake, tmp_path)
    tracks = run(old.playlist_tracks(PLAYLIST))

    async def scenario() -> object:
        await old.play(tracks)
        assert await old.wait_track_change() == tracks[0]
        await new.restore(tracks, 0, 12.0, False)  # as the session answers a reload
        fake.active_device = "dev-phone"
        return await asyncio.wait_for(new.wait_track_change(), 5)

    assert run(scenario()) == OwnerTookOver("moved the music to Pixel")
    assert len(fake.calls("PUT", "/v1/me/player/play")) == 1  # the restore started nothing
