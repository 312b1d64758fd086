"""ports.Player on Spotify Connect, through spotipy (which is synchronous: each call runs in a worker thread).

Plays on the Connect device named in [spotify] device_name (the speaker's raspotify/spotifyd). A mood playlist is
started as an explicit, ordered list of its track URIs, so the feedback ranking decides the order, not Spotify.

Failure handling, per Web API call:
- 404 NO_ACTIVE_DEVICE (or device not found): transfer playback to our device, then repeat the command once.
- 429: wait the Retry-After seconds (up to MAX_RETRY_AFTER_S, else PlayerUnavailable), then retry.
- 5xx, connection errors, timeouts: exponential back-off, retry; at most `max_attempts` tries in all, then
  PlayerUnavailable (the service tries again later).
- 401: refresh the token once and retry (the server may have revoked it early); then PlayerError.
- 403 and other refusals: PlayerError with what to do. `last_error` keeps the message for `moodspeaker status`.
spotipy's own urllib3 retries are switched off (a plain requests.Session) so that these rules are the only ones.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
import spotipy
from spotipy.exceptions import SpotifyException

from moodspeaker.adapters.spotify_auth import RELOGIN, REQUEST_TIMEOUT_S, HeadlessToken, make_auth_manager
from moodspeaker.config import SpotifyConfig
from moodspeaker.core.domain import Track
from moodspeaker.errors import PlayerError, PlayerUnavailable

log = logging.getLogger(__name__)

R = TypeVar("R")
MAX_RETRY_AFTER_S = 120.0  # a longer rate-limit ban is reported as an error instead of silently freezing the player
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
PAGE_SIZE = 100


def _track(item: dict[str, Any] | None) -> Track | None:
    if not item or item.get("type", "track") != "track" or item.get("is_local"):
        return None
    artists = ", ".join(a.get("name", "") for a in item.get("artists", []))
    return Track(uri=item["uri"], title=item.get("name", ""), artist=artists)


def _retry_after(exc: SpotifyException) -> float | None:
    value = (exc.headers or {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _message(exc: SpotifyException) -> str:
    """Spotify's error message without the request URL spotipy puts in front of it."""
    return str(exc.msg).splitlines()[-1].strip()


def _no_device(exc: SpotifyException) -> bool:
    return exc.http_status == 404 and (exc.reason == "NO_ACTIVE_DEVICE" or "device not found" in _message(exc).lower())


class SpotifyPlayer:
    """The Player port on Spotify Connect. Build it with `SpotifyPlayer.from_config(config.spotify)`."""

    def __init__(self, client: spotipy.Spotify, token: HeadlessToken, device_name: str, *, max_attempts: int = 5,
                 poll_s: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.token = token
        self.device_name = device_name
        self.max_attempts = max_attempts
        self.poll_s = poll_s
        self.last_error: str | None = None  # the latest failure (for status); None after a call succeeds
        self._sleep = sleep
        self._lock = threading.Lock()  # one Web API conversation at a time (the session is shared)
        self._device_id: str | None = None
        self._last_uri: str | None = None
        self._paused = False
        self._pending: list[Track] | None = None  # play_next(): what starts when the current track ends

    @classmethod
    def from_config(cls, cfg: SpotifyConfig, *, sleep: Callable[[float], None] = time.sleep) -> SpotifyPlayer:
        token = HeadlessToken(make_auth_manager(cfg))
        client = spotipy.Spotify(auth_manager=token, requests_session=requests.Session(), requests_timeout=REQUEST_TIMEOUT_S)
        return cls(client, token, cfg.device_name, max_attempts=cfg.max_attempts, poll_s=cfg.poll_s, sleep=sleep)

    # --- the Player port -------------------------------------------------------------------------------------

    async def playlist_tracks(self, playlist: str) -> list[Track]:
        return await self._in_thread(self._playlist_tracks, playlist)

    async def play(self, tracks: list[Track]) -> None:
        if not tracks:
            raise ValueError("play() needs at least one track")
        self._pending = None
        await self._in_thread(self._play, [t.uri for t in tracks])

    async def play_next(self, tracks: list[Track]) -> None:
        """Start `tracks` when the current track ends. Spotify cannot replace the rest of a queue, so the switch is
        made by wait_track_change(), which times its last poll to the end of the track (or sees a skip)."""
        if not tracks:
            raise ValueError("play_next() needs at least one track")
        state = await self._in_thread(self._playback)
        if not state or not _track(state.get("item")):
            await self.play(tracks)
        else:
            self._pending = list(tracks)

    async def next(self) -> None:
        await self._in_thread(self._on_device, "skip to the next track", lambda d: self.client.next_track(device_id=d))

    async def toggle_pause(self) -> None:
        await self._in_thread(self._toggle_pause)

    async def current(self) -> Track | None:
        state = await self._in_thread(self._playback)
        track = _track(state.get("item")) if state else None
        if track:
            self._last_uri = track.uri
        return track

    async def like(self, track: Track) -> None:
        """PUT /me/library?uris=<track URI> (spotipy 2.26's current_user_saved_tracks_add)."""
        await self._in_thread(self._call, "save the track to your library", self.client.current_user_saved_tracks_add,
                              [track.uri])

    async def wait_track_change(self) -> Track | None:
        """Poll every `poll_s` (Spotify has no push) until another track plays (-> it) or playback stops (-> None).

        With a play_next() list waiting, the track's end (or a skip, or a stop) starts that list instead.
        """
        delay = self.poll_s
        while True:
            await asyncio.sleep(delay)
            state = await self._in_thread(self._playback)
            item = _track(state.get("item")) if state else None
            stopped = item is None or (not state["is_playing"] and not self._paused and not state.get("progress_ms"))
            if self._pending and (stopped or item.uri != self._last_uri):
                return await self._start_pending()
            if stopped:
                return None
            if item.uri != self._last_uri:
                self._last_uri = item.uri
                return item
            delay = self.poll_s
            if self._pending and state["is_playing"]:
                remaining_s = (state["item"].get("duration_ms", 0) - (state.get("progress_ms") or 0)) / 1000
                if remaining_s < self.poll_s:
                    await asyncio.sleep(max(0.0, remaining_s))
                    return await self._start_pending()

    async def _start_pending(self) -> Track:
        tracks, self._pending = self._pending or [], None
        await self._in_thread(self._play, [t.uri for t in tracks])
        return tracks[0]

    async def close(self) -> None:
        for holder in (self.client, self.token.manager):
            session = getattr(holder, "_session", None)
            if isinstance(session, requests.Session):
                session.close()

    # --- synchronous work, in a worker thread ----------------------------------------------------------------

    async def _in_thread(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.to_thread(self._guarded, fn, *args)

    def _guarded(self, fn: Callable[..., R], *args: Any) -> R:
        with self._lock:
            try:
                result = fn(*args)
            except (PlayerError, PlayerUnavailable) as exc:
                self.last_error = str(exc)
                log.error("spotify: %s", exc)
                raise
            self.last_error = None
            return result

    def _call(self, what: str, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """One Web API call with the retry rules in the module docstring. Other HTTP errors pass through."""
        refreshed = False
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn(*args, **kwargs)
            except SpotifyException as exc:
                if exc.http_status == 401 and not refreshed:
                    log.info("spotify: token rejected while trying to %s; refreshing it", what)
                    self.token.refresh()
                    refreshed = True
                    continue
                if exc.http_status == 401:
                    raise PlayerError(f"Spotify rejected the login while trying to {what} (401): {RELOGIN}") from None
                if exc.http_status == 403:
                    raise PlayerError(f"Spotify refused to {what} (403: {_message(exc)}); controlling "
                                      f"playback needs Spotify Premium and the scopes granted at login: {RELOGIN}") from None
                if exc.http_status == 429:
                    wait = _retry_after(exc)
                    if wait is None:
                        wait = self._backoff(attempt)
                    elif wait > MAX_RETRY_AFTER_S:
                        raise PlayerUnavailable(f"Spotify rate-limits this app for {wait:.0f} s") from None
                    problem = f"rate limited (429), Retry-After {wait:g} s"
                elif exc.http_status >= 500:
                    wait, problem = self._backoff(attempt), f"server error {exc.http_status}"
                else:
                    raise
            except (requests.ConnectionError, requests.Timeout) as exc:
                wait, problem = self._backoff(attempt), f"network error ({type(exc).__name__})"
            if attempt == self.max_attempts:
                raise PlayerUnavailable(f"could not {what} on Spotify after {attempt} tries: {problem}")
            log.warning("spotify: %s while trying to %s; retrying in %.1f s", problem, what, wait)
            self._sleep(wait)
        raise PlayerError(f"could not {what} on Spotify: the login was refreshed but {RELOGIN}")

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1))

    def _device(self, refresh: bool = False) -> str:
        if self._device_id and not refresh:
            return self._device_id
        devices = self._call("list Connect devices", self.client.devices)["devices"]
        for device in devices:
            if device.get("name", "").casefold() == self.device_name.casefold() and device.get("id"):
                self._device_id = device["id"]
                return device["id"]
        seen = ", ".join(repr(d.get("name")) for d in devices) or "none"
        raise PlayerError(f"Spotify Connect device {self.device_name!r} is not online (seen: {seen}); check that the "
                          "speaker's Connect service (raspotify/spotifyd) runs and [spotify] device_name matches it")

    def _on_device(self, what: str, command: Callable[[str], R]) -> R:
        """Run a playback command on our device; on NO_ACTIVE_DEVICE transfer playback to it first, then repeat."""
        device = self._device()
        try:
            return self._call(what, command, device)
        except SpotifyException as exc:
            if not _no_device(exc):
                raise PlayerError(f"Spotify refused to {what} ({exc.http_status}: {_message(exc)})") from None
        log.info("spotify: no active device; transferring playback to %r", self.device_name)
        device = self._device(refresh=True)
        try:
            self._call("transfer playback to the speaker", self.client.transfer_playback, device, force_play=False)
            return self._call(what, command, device)
        except SpotifyException as exc:
            raise PlayerError(f"Spotify refused to {what} on {self.device_name!r} after transferring playback to it "
                              f"({exc.http_status}: {_message(exc)})") from None

    def _play(self, uris: list[str]) -> None:
        self._on_device("start the mood playlist", lambda d: self.client.start_playback(device_id=d, uris=uris))
        self._last_uri, self._paused = uris[0], False

    def _toggle_pause(self) -> None:
        state = self._playback()
        if state and state.get("is_playing"):
            self._on_device("pause", lambda d: self.client.pause_playback(device_id=d))
            self._paused = True
        else:
            self._on_device("resume", lambda d: self.client.start_playback(device_id=d))
            self._paused = False

    def _playback(self) -> dict[str, Any] | None:
        try:
            return self._call("read what is playing", self.client.current_playback)
        except SpotifyException as exc:
            raise PlayerError(f"Spotify refused to say what is playing ({exc.http_status}: {_message(exc)})") from None

    def _playlist_tracks(self, playlist: str) -> list[Track]:
        try:
            page = self._call("read the playlist", self.client.playlist_items, playlist, limit=PAGE_SIZE,
                              additional_types=("track",))
            tracks: list[Track] = []
            while page:
                for entry in page.get("items", []):
                    # Spotify's newer playlist-item objects call it "item", older ones "track".
                    track = _track(entry.get("item") or entry.get("track"))
                    if track:
                        tracks.append(track)
                page = self._call("read the playlist", self.client.next, page) if page.get("next") else None
        except SpotifyException as exc:
            raise PlayerError(f"Spotify playlist {playlist!r} cannot be read ({exc.http_status}: {_message(exc)}); check "
                              "[player] playlists (a spotify:playlist:... URI the logged-in account can see)") from None
        return tracks
