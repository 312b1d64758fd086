"""ports.Player on Spotify Connect, through spotipy (which is synchronous: each call runs in a worker thread).

Plays on the Connect device named in [spotify] device_name (the speaker's raspotify/spotifyd). A mood playlist is
started as an explicit, ordered list of its track URIs, so the feedback ranking decides the order, not Spotify:
the first START_URIS of them (longer lists get 413/500), the rest added to Spotify's queue as the started ones run out.

Each port call is one command of backend_call's (its budget in all; at once PlayerUnavailable during a back-off):
a request is sent only when its timeout fits in what is left, and no wait is slept inside a command.
- 404 NO_ACTIVE_DEVICE (or device not found): transfer playback to our device, then repeat the command once.
  401: refresh the token once and repeat; then PlayerError.
- 429: the Retry-After (at most a day) is the back-off; 5xx, a 429 without one, connection errors, timeouts:
  PlayerUnavailable, and the back-off doubles from BACKOFF_FIRST_S to BACKOFF_MAX_S.
- 403: PlayerError saying which refusal it is (lapsed Premium, a playlist the account may not read, the login's
  permissions) and what to do. Any other refusal (404, 400): PlayerError with Spotify's message.
- An answer that is not what the endpoint returns (not JSON, missing fields) is PlayerUnavailable, never a crash
  (spotipy reads a 200 whose body is not JSON as "no answer"; a response hook on our session refuses it first).
spotipy's own urllib3 retries are switched off (a plain requests.Session) so that these rules are the only ones.

The owner's hand: our music is a list of URIs without a context. Another app pausing it, moving it to another
device, or playing a context (a playlist, an album) or a track outside our list, is OwnerTookOver (once; then the
music is the owner's until we play again). A track after our list's end is Spotify's autoplay, not the owner.

Spotify back after failed polls is reported as BackendReturned: the Connect device may have lost its playback
meanwhile (raspotify restarted, the network dropped); `restore` then starts the session's list again where it was.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import requests
import spotipy
from spotipy.exceptions import SpotifyException

from moodspeaker.adapters.backend_call import BUDGET_S, BackendCalls, RateLimited, command, remaining
from moodspeaker.adapters.spotify_answers import (
    BadAnswer,
    Forbidden,
    forbidden,
    playback_state,
    refuse_unreadable,
    retry_after,
    spotify_message,
    track_of,
    translate,
)
from moodspeaker.adapters.spotify_auth import RELOGIN, REQUEST_TIMEOUT_S, HeadlessToken, make_auth_manager
from moodspeaker.config import SpotifyConfig
from moodspeaker.core.domain import BackendReturned, OwnerTookOver, Track
from moodspeaker.errors import PlayerError, PlayerUnavailable

log = logging.getLogger(__name__)

R = TypeVar("R")
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
PAGE_SIZE = 50  # Spotify answers 400 for a playlist page of more than 50 items
START_URIS = 100  # the most track URIs one start-playback request carries
TOP_UP_AHEAD = 2  # when the current track is this close to the end of what Spotify has, queue more
TOP_UP_BATCH = 5  # tracks added to Spotify's queue per top-up (one request each)


class SpotifyPlayer:
    """The Player port on Spotify Connect. Build it with `SpotifyPlayer.from_config(config.spotify)`."""

    fade_step_s = 0.5  # each volume step is one Web API request

    def __init__(self, client: spotipy.Spotify, token: HeadlessToken, device_name: str, *, poll_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 budget_s: float = BUDGET_S) -> None:
        self.client, self.token, self.device_name, self.poll_s = client, token, device_name, poll_s
        self.calls = BackendCalls("Spotify", first_s=BACKOFF_FIRST_S, max_s=BACKOFF_MAX_S, budget_s=budget_s,
                                  translate=translate, clock=clock, sleep=sleep)
        self._lock = threading.Lock()  # one Web API conversation at a time (the session is shared)
        self._device_id: str | None = None
        self._last_uri: str | None = None  # the track last seen playing
        self._unreported: Track | None = None  # play() started it; wait_track_change() reports it next
        self._paused = False
        self._pending: list[Track] | None = None  # play_next(): what starts when the current track ends
        self._started: list[str] = []  # the URIs Spotify has now: the started ones, then those queued since
        self._before: list[str] = []  # the list started before (Spotify may report its track a moment longer)
        self._rest: list[str] = []  # the rest of the mood list, queued as the started ones run out
        self._volume_refused = False  # the device refused a volume change once: not asked again
        self._ours = False  # what plays is a list we started (the owner's hand is told apart from it)

    @classmethod
    def from_config(cls, cfg: SpotifyConfig, *, budget_s: float = BUDGET_S) -> SpotifyPlayer:
        token = HeadlessToken(make_auth_manager(cfg))
        timeout = min(REQUEST_TIMEOUT_S, budget_s / 2)  # room for a second request (a repeat) within the budget
        session = requests.Session()
        session.hooks["response"].append(refuse_unreadable)
        client = spotipy.Spotify(auth_manager=token, requests_session=session, requests_timeout=timeout)
        return cls(client, token, cfg.device_name, poll_s=cfg.poll_s, budget_s=budget_s)

    # --- the Player port: each a command ---------------------------------------------------------------------

    @command
    async def playlist_tracks(self, playlist: str) -> list[Track]:
        return await self._thread(self._playlist_tracks, playlist)

    @command
    async def play(self, tracks: list[Track]) -> None:
        assert tracks, "play() needs at least one track"
        self._pending = None
        await self._thread(self._play, [t.uri for t in tracks])
        self._unreported = tracks[0]

    @command
    async def play_next(self, tracks: list[Track]) -> None:
        """Start `tracks` when the current track ends. Spotify cannot replace the rest of a queue, so the switch is
        made by wait_track_change(), which times its last poll to the end of the track (or sees a skip)."""
        state = await self._thread(self._playback)
        if not state or not track_of(state.get("item")):
            await self.play(tracks)
        else:
            self._pending = list(tracks)

    @command
    async def next(self) -> None:
        await self._thread(self._on_device, "skip to the next track", lambda d: self.client.next_track(device_id=d))

    @command
    async def toggle_pause(self) -> None:
        await self._thread(self._toggle_pause)

    @command
    async def set_volume(self, level: int) -> None:
        """PUT /me/player/volume. A device that refuses it (403 VOLUME_CONTROL_DISALLOW) is told once, then left be."""
        if self._volume_refused:
            return
        try:
            await self._thread(self._on_device, "set the volume",
                               lambda d: self.client.volume(max(0, min(100, level)), device_id=d))
        except Forbidden as exc:
            self._volume_refused = True
            raise PlayerError(f"the Spotify Connect device {self.device_name!r} does not let apps set its volume "
                              f"({exc}); set it on the device; the speaker stops trying") from None

    @command
    async def volume(self) -> int | None:
        state = await self._thread(self._playback)
        device = state.get("device") if state else None
        level = device.get("volume_percent") if isinstance(device, dict) else None
        return int(level) if isinstance(level, int | float) else None

    @command
    async def like(self, track: Track) -> None:
        """PUT /me/library?uris=<track URI> (spotipy 2.26's current_user_saved_tracks_add)."""
        await self._thread(self._call, "save the track to your library", self.client.current_user_saved_tracks_add,
                           [track.uri])

    @command
    async def restore(self, tracks: list[Track], index: int, elapsed_s: float, paused: bool) -> None:
        """A device on another track is left alone (it moved on, or the owner's hand is on it: the watcher tells).
        One on tracks[index] plays on; a new backend (a reload) takes it as ours, the rest to start when it ends.
        One without a track starts tracks[index:] `elapsed_s` in (Spotify moves on past the end), paused or not."""
        state = await self._thread(self._playback)
        if state and (item := track_of(state.get("item"))):
            if not self._ours and item.uri == tracks[index].uri:
                await self._thread(self._device)  # a move to the phone is seen from now on
                self._started, self._last_uri, self._ours, self._paused = [item.uri], item.uri, True, paused
                self._pending = tracks[index + 1:] or None
            return
        self._pending = None
        await self._thread(self._play, [t.uri for t in tracks[index:]], round(elapsed_s * 1000))
        if paused:
            await self._thread(self._pause, True)
        log.info("spotify: restored the list at %s, %.1f s in", tracks[index].label, elapsed_s)

    async def wait_track_change(self) -> Track | OwnerTookOver | BackendReturned | None:
        """Poll every `poll_s` (Spotify has no push) until another track plays (-> it) or playback stops (-> None),
        or the owner's hand is seen (-> OwnerTookOver, once). Each poll is a command; after a failed one the back-off
        is slept out first.

        With a play_next() list waiting, the track's end (or a skip, or a stop) starts that list instead.
        The first track of a list play() started is reported at once; the first poll that works after failed ones
        reports BackendReturned.
        """
        while True:
            for pause in (0.0, self.poll_s):  # a play() during the pause is seen before the next poll
                await asyncio.sleep(pause)
                if self._unreported is not None:  # the first track play() started is a change too (as on MPD)
                    track, self._unreported = self._unreported, None
                    return track
            await self.calls.wait_turn()
            state = await self.calls(self._thread, self._playback)
            if self.calls.back:
                self.calls.back = False
                return BackendReturned()
            item = track_of(state.get("item")) if state else None
            stopped = item is None or (not state["is_playing"] and not self._paused and not state.get("progress_ms"))
            if self._ours and not stopped and (took_over := self._owners_hand(state, item.uri)):
                self._ours, self._pending = False, None
                log.info("spotify: another app %s; the speaker yields", took_over)
                return OwnerTookOver(took_over)
            if self._pending and (stopped or item.uri != self._last_uri):
                return await self._start_pending()
            if stopped:
                return None
            if item.uri != self._last_uri:
                self._last_uri = item.uri
                if self._rest:
                    await self.calls(self._thread, self._top_up, item.uri)
                return item
            if self._pending and state["is_playing"]:
                remaining_s = (state["item"]["duration_ms"] - (state.get("progress_ms") or 0)) / 1000
                if remaining_s < self.poll_s:
                    await asyncio.sleep(max(0.0, remaining_s))
                    if self._pending:  # a play() meanwhile replaced it: poll again
                        return await self._start_pending()

    def _owners_hand(self, state: dict[str, Any], uri: str) -> str | None:
        """What another app did to our music, if anything (as the module's docstring says)."""
        if self._device_id and isinstance(on := state.get("device"), dict) and on.get("id") not in {None, self._device_id}:
            return f"moved the music to {on.get('name') or 'another device'}"
        if not state["is_playing"] and not self._paused:
            return "paused"
        context = state.get("context")
        ours = uri in self._started or uri in self._before or (not self._rest and self._started[-1:] == [self._last_uri])
        return "played something else" if (isinstance(context, dict) and context.get("uri")) or not ours else None

    async def _start_pending(self) -> Track:
        tracks, self._pending = self._pending, None
        assert tracks, "called with a play_next() list waiting"
        await self.calls(self._thread, self._play, [t.uri for t in tracks])
        return tracks[0]

    async def close(self) -> None:
        for holder in (self.client, self.token.manager):
            session = getattr(holder, "_session", None)
            if isinstance(session, requests.Session):
                session.close()

    # --- synchronous work, in a worker thread, within the command's budget ------------------------------------

    async def _thread(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.to_thread(self._locked, fn, *args)

    def _locked(self, fn: Callable[..., R], *args: Any) -> R:
        """`fn` once the request before it is answered, if that is within the command's budget."""
        if not self._lock.acquire(timeout=max(0.0, min(remaining(), self.calls.budget_s))):
            raise PlayerUnavailable(f"Spotify did not answer the previous request within {self.calls.budget_s:g} s")
        try:
            return fn(*args)
        finally:
            self._lock.release()

    def _call(self, what: str, fn: Callable[..., R], *args: Any, _refreshed: bool = False, **kwargs: Any) -> R:
        """One Web API request, sent only if its timeout fits in the command's budget, with the rules in the module
        docstring (repeated once after refreshing a rejected token). Other HTTP errors pass through."""
        if remaining() < self.client.requests_timeout:  # no request may outlive the command
            raise PlayerUnavailable(f"could not {what} on Spotify within {self.calls.budget_s:g} s")
        try:
            return fn(*args, **kwargs)
        except SpotifyException as exc:
            if exc.http_status == 401 and not _refreshed:
                log.info("spotify: token rejected while trying to %s; refreshing it", what)
                self.token.refresh()
                return self._call(what, fn, *args, _refreshed=True, **kwargs)
            if exc.http_status == 401:
                raise PlayerError(f"Spotify rejected the login while trying to {what} (401): {RELOGIN}") from None
            if exc.http_status == 403:
                raise forbidden(what, exc) from None
            if exc.http_status == 429 and (wait := retry_after(exc)) is not None:
                raise RateLimited(f"Spotify rate-limits this app for {wait:.0f} s (Retry-After); the speaker waits "
                                  "that long before asking again", wait) from None
            if exc.http_status == 429 or exc.http_status >= 500:
                raise PlayerUnavailable(f"could not {what} on Spotify: HTTP {exc.http_status}") from None
            raise
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise PlayerUnavailable(f"could not {what} on Spotify: network error ({type(exc).__name__})") from None

    def _device(self, refresh: bool = False) -> str:
        if self._device_id and not refresh:
            return self._device_id
        answer = self._call("list Connect devices", self.client.devices)
        devices = answer.get("devices") if isinstance(answer, dict) else None
        if not isinstance(devices, list) or not all(isinstance(d, dict) for d in devices):
            raise BadAnswer(f"device list {str(answer)[:80]!r}")
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
            reason = spotify_message(exc)
            if exc.http_status != 404 or not (exc.reason == "NO_ACTIVE_DEVICE" or "device not found" in reason.lower()):
                raise PlayerError(f"Spotify refused to {what} ({exc.http_status}: {reason})") from None
        log.info("spotify: no active device; transferring playback to %r", self.device_name)
        device = self._device(refresh=True)
        self._call("transfer playback to the speaker", self.client.transfer_playback, device, force_play=False)
        return self._call(what, command, device)

    def _play(self, uris: list[str], position_ms: int = 0) -> None:
        """Start the first START_URIS (the first `position_ms` in); the rest wait in `_rest` for `_top_up`."""
        first = uris[:START_URIS]
        self._on_device("start the mood playlist", lambda d: self.client.start_playback(
            device_id=d, uris=first, position_ms=position_ms or None))
        self._started, self._before, self._rest = list(first), self._started, list(uris[START_URIS:])
        self._last_uri, self._paused, self._ours = first[0], False, True

    def _top_up(self, playing: str) -> None:
        """Queue the next TOP_UP_BATCH of the mood list when `playing` is within TOP_UP_AHEAD of what Spotify has."""
        if playing not in self._started or len(self._started) - self._started.index(playing) > TOP_UP_AHEAD:
            return
        batch, self._rest = self._rest[:TOP_UP_BATCH], self._rest[TOP_UP_BATCH:]
        for uri in batch:
            self._on_device("queue the next track", lambda d, uri=uri: self.client.add_to_queue(uri, device_id=d))
            self._started.append(uri)

    def _toggle_pause(self) -> None:
        self._pause(bool((state := self._playback()) and state.get("is_playing")))

    def _pause(self, pause: bool) -> None:
        """Pause the device, or resume it."""
        command = self.client.pause_playback if pause else self.client.start_playback
        self._on_device("pause" if pause else "resume", lambda d: command(device_id=d))
        self._paused = pause

    def _playback(self) -> dict[str, Any] | None:
        return playback_state(self._call("read what is playing", self.client.current_playback))

    def _playlist_tracks(self, playlist: str) -> list[Track]:
        try:
            page = self._call("read the playlist", self.client.playlist_items, playlist, limit=PAGE_SIZE,
                              additional_types=("track",))
            tracks: list[Track] = []
            while page:
                if not isinstance(page, dict) or not isinstance(page.get("items", []), list):
                    raise BadAnswer(f"playlist page {str(page)[:80]!r}")
                for entry in page.get("items", []):
                    # Spotify's newer playlist-item objects call it "item", older ones "track".
                    track = track_of(entry.get("item") or entry.get("track")) if isinstance(entry, dict) else None
                    if track:
                        tracks.append(track)
                page = self._call("read the playlist", self.client.next, page) if page.get("next") else None
        except Forbidden as exc:
            if exc.why != "other":
                raise
            raise PlayerError(f"Spotify playlist {playlist!r} cannot be read (403): apps in development mode may read "
                              "only playlists the logged-in account owns or collaborates on; copy it into a playlist "
                              "of your own and put that one in [player] playlists") from None
        except SpotifyException as exc:
            if exc.http_status == 404:
                raise PlayerError(f"Spotify playlist {playlist!r} was not found (404): it does not exist, or it is one "
                                  "of Spotify's own (editorial or generated) playlists, which apps cannot read; copy "
                                  "it into a playlist of your own and put that one in [player] playlists") from None
            raise PlayerError(f"Spotify playlist {playlist!r} cannot be read ({exc.http_status}: {spotify_message(exc)}); check "
                              "[player] playlists (a spotify:playlist:... URI the logged-in account can see)") from None
        return tracks
