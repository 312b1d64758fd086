"""ports.Player on MPD through python-mpd2's asyncio client (the sync client cannot leave `idle`).

One connection carries commands and a background `idle player` listener. When MPD restarts or drops
the connection, the next command or `wait_track_change` reconnects, and the watcher's next look reports
BackendReturned before anything else (so a restart is not reported as a stop); the session answers with `restore`:
our queue, the song and the position it says, paused or not; an MPD that carried on by itself is left alone.
Each port call is one command of backend_call's: within its budget (a hung MPD costs one budget, then the
connection is dropped), and while a failed attempt's back-off runs it fails at once as PlayerUnavailable; the
watcher sleeps the back-off out before its next attempt. `play` and `restore` hold the lock, so that their
clear-and-load is not seen as playback stopping.
MPD's refusals (ACK) become MpdRefused, a PlayerError: nothing from python-mpd2 crosses the port. Mopidy-MPD is
served too: it may report `song: None` (read as "no song position"); library modes need protocol 0.21 (it speaks
0.19), and are refused at the connection with what to use instead.

Another client (the owner's phone app, `mpc`) that stops or pauses our music or changes our queue (MPD's playlist
version moves without us) is reported once as OwnerTookOver; its queue is never restored as ours. MPD's `stop`
keeps a song position, the end of the queue has none: that tells the owner's stop from the music running out.

A mood's music comes from a stored playlist, or in library mode from MPD's own database: the songs under a
folder (`library = "folders"`: moods/<name>/...) or those whose tag is the name (`library = "tags"`, any case),
found with MPD's find/search. Library lookups are cached until MPD says its database changed (`idle database`,
after `mpc update` or MPD's own auto_update).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from moodspeaker.adapters.backend_call import BackendCalls, command
from moodspeaker.config import MpdConfig
from moodspeaker.core.domain import BackendReturned, OwnerTookOver, Track
from moodspeaker.errors import MoodspeakerError, PlayerError, PlayerUnavailable

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.1
QUEUE_CAP = 2000  # the most tracks one mood queues: MPD refuses more than 16,384 and each add is one round trip


class MpdRefused(PlayerError):
    """MPD understood a command and refused it (an ACK: no such playlist, no such file, ...)."""


def _filter_value(text: str) -> str:
    """`text` quoted for an MPD filter expression, e.g. (base 'moods/happy')."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _number(value: Any, default: float) -> float:
    """A number from MPD's status; `default` for what is not one (Mopidy sends `song: None` near a track's end)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _capped(uris: list[str]) -> list[str]:
    if len(uris) > QUEUE_CAP:
        log.warning("MPD: queueing the first %d of %d tracks (the most one mood queues)", QUEUE_CAP, len(uris))
    return uris[:QUEUE_CAP]


def _tag(song: dict[str, Any], key: str) -> str:
    value = song.get(key, "")
    return value[0] if isinstance(value, list) else value


def _track(song: dict[str, Any]) -> Track:
    return Track(uri=song["file"], title=_tag(song, "title"), artist=_tag(song, "artist"))


def _positions(uris: list[str], added: list[str]) -> dict[int, int]:
    """Where each of `uris` landed in the queue, given `added` (the same order, with the files MPD lacks left out)."""
    landed, at = {}, 0
    for i, uri in enumerate(uris):
        if at < len(added) and added[at] == uri:
            landed[i], at = at, at + 1
    return landed


class MpdPlayer:
    fade_step_s = 0.05  # a volume step is one short round trip

    def __init__(self, host: str = "localhost", port: int = 6600, password: str = "", liked_playlist: str = "liked",
                 reconnect_max_s: float = 15.0, clock: Callable[[], float] = time.monotonic, *,
                 library: str = "playlists", library_dir: str = "moods", library_tag: str = "genre",
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.host, self.port, self.password = host, port, password
        self.library, self.library_dir, self.library_tag = library, library_dir.strip("/"), library_tag
        self._library_cache: dict[str, list[Track]] = {}  # name -> its songs, until MPD's database changes
        self.liked_playlist = liked_playlist
        self.calls = BackendCalls(f"MPD at {self.where}", first_s=FIRST_BACKOFF_S, max_s=reconnect_max_s, clock=clock,
                                  sleep=sleep, before=self._connected, translate=self._translate, on_hung=self._drop)
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._song_pos = 0  # MPD's song position as last seen (-1: none)
        self._known: tuple[str, int] | None = None  # (file, pos) last reported by wait_track_change
        self.connect_attempts = 0
        self.reconnects = 0  # connections after the first
        self._queue_version: str | None = None  # MPD's playlist version when the queue was last ours (None: not ours)
        self._paused_by_us = False

    @classmethod
    def from_config(cls, config: MpdConfig) -> MpdPlayer:
        return cls(config.host, config.port, config.password, config.liked_playlist, config.reconnect_max_s,
                   library=config.library, library_dir=config.library_dir, library_tag=config.library_tag)

    @property
    def where(self) -> str:
        return self.host if self.host.startswith("/") else f"{self.host}:{self.port}"

    # --- connection ---------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    @command
    async def connect(self) -> None:
        """Connect (at start-up; every command connects first): PlayerUnavailable, or PlayerError (a bad password)."""

    async def _connected(self) -> None:
        """Connect, if not connected; a connection after a lost one is reported as BackendReturned."""
        from mpd import CommandError
        from mpd.asyncio import MPDClient

        async with self._lock:
            if self.connected:
                return
            client = MPDClient()
            self.connect_attempts += 1
            await client.connect(self.host, self.port)
            protocol = client.mpd_version or "0"
            if self.library != "playlists" and tuple(map(int, protocol.split(".")[:2])) < (0, 21):
                client.disconnect()
                raise PlayerError(f"the MPD server at {self.where} speaks protocol {protocol} (Mopidy-MPD does); [mpd] "
                                  f"library = \"{self.library}\" needs protocol 0.21 (MPD 0.21 or later): use [mpd] "
                                  'library = "playlists" (stored playlists) with this server')
            if self.password:
                try:
                    await client.password(self.password)
                except CommandError as exc:
                    client.disconnect()
                    raise PlayerError(f"MPD at {self.where} rejected the password ({exc}); fix [mpd] password") from None
            if self._client is not None:  # a connection before this one
                self.reconnects += 1
                self.calls.back = True  # even with no failed attempt between (a quick restart): our queue may be gone
                log.info("reconnected to MPD at %s", self.where)
            self._client, self._queue_version = client, None
            self._listener = asyncio.get_running_loop().create_task(self._listen(client))

    async def _listen(self, client: Any) -> None:
        """Wake `wait_track_change` on every player change, and once more when the connection drops; forget the
        library lookups when the database changes."""
        try:
            async for changes in client.idle(["player", "playlist", "database"]):
                if "database" in changes:
                    self._library_cache.clear()
                if "player" in changes or "playlist" in changes:
                    self._changed.set()
        except Exception as exc:  # ConnectionError, OSError, whatever the dying client raises
            if client is self._client and client.connected:  # not our own close or drop
                log.warning("MPD at %s: watching for changes failed (%r); reconnecting", self.where, exc)
        finally:
            self._changed.set()

    def _translate(self, exc: Exception) -> MoodspeakerError | None:
        """The boundary: what python-mpd2 raises leaves as ours. A lost connection (OS errors, timeouts, python-mpd2's
        ConnectionError, which is not the builtin one, and its protocol errors: an answer it cannot read) is dropped,
        to be made again."""
        from mpd import CommandError, MPDError

        if isinstance(exc, CommandError):
            return MpdRefused(f"MPD at {self.where} refused: {exc}")
        if isinstance(exc, OSError | TimeoutError | ConnectionError | MPDError):
            self._drop()
            return PlayerUnavailable(f"MPD at {self.where} is not reachable ({exc!r})")
        return None

    def _drop(self) -> None:
        if self._client is not None:
            self._client.disconnect()

    async def _status(self) -> dict[str, Any]:
        """MPD's status, noting its song position."""
        status = await self._client.status()
        self._song_pos = int(_number(status.get("song"), self._song_pos))
        return status

    # --- ports.Player: each a command ---------------------------------------------

    @command
    async def playlist_tracks(self, playlist: str) -> list[Track]:
        """A stored playlist's songs, or in library mode the folder's or the tag's (sorted by file)."""
        from mpd import CommandError

        if self.library == "playlists":
            try:
                return [_track(song) for song in await self._client.listplaylistinfo(playlist)]
            except CommandError as exc:
                raise PlayerError(f"MPD has no stored playlist {playlist!r} ({exc}); create it (e.g. `mpc save "
                                  f"{playlist}`) or fix [player] playlists") from None
        if playlist not in self._library_cache:
            songs = await self._find_in_library(playlist)
            self._library_cache[playlist] = sorted((_track(s) for s in songs if "file" in s), key=lambda t: t.uri)
        return list(self._library_cache[playlist])

    async def _find_in_library(self, name: str) -> list[dict[str, Any]]:
        from mpd import CommandError

        if self.library == "tags":
            return await self._client.search(f"({self.library_tag} == {_filter_value(name)})")  # search: any case
        folder = f"{self.library_dir}/{name}" if self.library_dir else name
        try:
            return await self._client.find(f"(base {_filter_value(folder)})")
        except CommandError as exc:
            raise PlayerError(f"MPD has no folder {folder!r} in its music directory ({exc}); create it with the "
                              "mood's music in it and run `mpc update`, or fix [player] playlists / [mpd] "
                              "library_dir") from None

    async def _load(self, uris: list[str]) -> list[str]:
        """Replace MPD's queue with `uris` (files MPD does not know are left out); returns what was added."""
        await self._client.clear()
        for option in ("random", "repeat", "single", "consume"):  # our order, played once
            await getattr(self._client, option)(0)
        return await self._add(uris)

    async def _add(self, uris: list[str]) -> list[str]:
        from mpd import CommandError

        added = []
        for uri in _capped(uris):
            try:
                await self._client.add(uri)
                added.append(uri)
            except CommandError as exc:  # a file deleted since the playlist was stored: play the others
                log.warning("MPD cannot add %s: %s; left out", uri, exc)
        return added

    @command
    async def play(self, tracks: list[Track]) -> None:
        await self._queue(tracks, at_once=True)

    @command
    async def play_next(self, tracks: list[Track]) -> None:
        await self._queue(tracks, at_once=False)

    async def _queue(self, tracks: list[Track], at_once: bool) -> None:
        """Play `tracks` now, or after the current song (at once if nothing plays), under the lock: the watcher
        must not take our own changes for another client's, nor the cleared queue for playback stopping."""
        async with self._lock:
            status = await self._client.status()
            now, length = at_once or status.get("state", "stop") == "stop", int(_number(status.get("playlistlength"), 0))
            if now:
                first, added = 0, await self._load([t.uri for t in tracks])
            else:  # replace what follows the current song. Mopidy, asked near a track's end, has already
                # moved on to the song after it; deleted, that one still plays, outside the queue (`song: None`),
                # and `nextsong` says where the queue goes on.
                first = int(_number(status.get("song"), _number(status.get("nextsong"), length) - 1)) + 1
                if length > first:
                    await self._client.delete((first, length))
                added = await self._add([t.uri for t in tracks])
            if not added:
                raise PlayerError(f"none of the {len(tracks)} tracks is in MPD's database; run `mpc update` "
                                  "or fix the stored playlist")
            if now:
                await self._client.play(0)
                self._paused_by_us = False
            self._queue_version = (await self._status()).get("playlist")

    @command
    async def next(self) -> None:
        await self._client.next()
        await self._status()

    @command
    async def toggle_pause(self) -> None:
        state = (await self._client.status()).get("state", "stop")
        self._paused_by_us = state == "play"  # before the command: the watcher must not take it for the owner's
        if state != "stop":
            await self._client.pause(int(state == "play"))
        elif self._queue_version is not None:
            await self._client.play(max(self._song_pos, 0))
        await self._status()

    @command
    async def restore(self, tracks: list[Track], index: int, elapsed_s: float, paused: bool) -> None:
        """Under the lock: unless MPD plays this queue in the wanted state (it carried on, from its own state file),
        the queue loaded again if MPD lacks it, then tracks[index] (or the next one MPD has) from `elapsed_s`, or
        the one after it if it would have ended by then; paused or not. Then the queue is ours."""
        async with self._lock:
            uris, wanted = [t.uri for t in tracks], "pause" if paused else "play"
            files = [song["file"] for song in await self._client.playlistinfo()]
            if files != uris or (await self._client.status()).get("state") != wanted:
                if files != uris:
                    files = await self._load(uris)
                landed = _positions(uris, files)
                present = [i for i in range(index, len(uris)) if i in landed]
                if present:
                    pos, elapsed = landed[present[0]], elapsed_s if present[0] == index else 0.0
                    if elapsed >= _number((await self._client.playlistinfo(pos))[0].get("duration"), math.inf):
                        pos, elapsed = pos + 1, 0.0
                    if pos < len(files):
                        await self._client.seek(pos, f"{elapsed:.1f}")
                        if paused:
                            await self._client.pause(1)
                        log.info("restored MPD queue of %d tracks at #%d %.1fs (%s)", len(files), pos, elapsed, wanted)
            self._paused_by_us = paused
            self._queue_version = (await self._status()).get("playlist")  # ours (versions count afresh on a restart)

    @command
    async def set_volume(self, level: int) -> None:
        from mpd import CommandError

        try:
            await self._client.setvol(max(0, min(100, level)))
        except CommandError as exc:
            raise PlayerError(f"MPD at {self.where} cannot set the volume ({exc}); give its audio_output a mixer "
                              '(mixer_type "software" works everywhere)') from None

    @command
    async def volume(self) -> int | None:
        level = int(_number((await self._client.status()).get("volume"), -1))
        return None if level < 0 else level  # -1: an output without a mixer

    @command
    async def like(self, track: Track) -> None:
        from mpd import CommandError

        try:
            liked = await self._client.listplaylist(self.liked_playlist)
        except CommandError:  # no such playlist yet: playlistadd creates it
            liked = []
        if track.uri not in liked:
            await self._client.playlistadd(self.liked_playlist, track.uri)

    async def wait_track_change(self) -> Track | OwnerTookOver | BackendReturned | None:
        """Block until another song plays (or playback stops). A lost connection is made again here, at the
        back-off's pace, and reported as BackendReturned; while MPD is away or hung, each failed attempt raises
        PlayerUnavailable."""
        while True:
            if not self.connected:
                await self.calls.wait_turn()  # outside the budget: the attempt itself gets all of it
            self._changed.clear()
            song = await self.calls(self._look)
            if isinstance(song, OwnerTookOver | BackendReturned):
                return song
            key = (song["file"], int(_number(song.get("pos"), 0))) if song else None
            if key != self._known:
                self._known = key
                return _track(song) if song else None
            await self._changed.wait()

    async def _look(self) -> dict[str, Any] | OwnerTookOver | BackendReturned:
        """The song playing now ({} when stopped); or what another client did to our music; or, first after a new
        connection, that MPD is back."""
        async with self._lock:  # not halfway through a restore or a play()
            if self.calls.back:  # connected again after a failure (see the module's docstring)
                self.calls.back = False
                return BackendReturned()
            pos_before = self._song_pos
            status = await self._status()
            if (took_over := self._took_over(status)) is not None:
                return took_over
            if status.get("state") == "stop":
                return {}
            if _number(status.get("song"), -1) < 0 and pos_before >= 0 and self._queue_version is not None:
                # Mopidy plays a song it had prepared before play_next() deleted it, outside the queue, and then
                # goes on at the queue's start: drop what already played there, so our next song follows.
                await self._client.delete((0, pos_before + 1))
                self._song_pos = -1
                self._queue_version = (await self._client.status()).get("playlist")
            return await self._client.currentsong()

    def _took_over(self, status: dict[str, Any]) -> OwnerTookOver | None:
        """Another client stopped or paused our music or changed our queue (reported once; then it is theirs)."""
        if self._queue_version is None:  # nothing of ours plays
            return None
        if status.get("playlist") != self._queue_version:
            what = "changed the queue"
        elif status.get("state") == "stop" and _number(status.get("song"), -1) >= 0:  # the queue's end has no song
            what = "stopped"
        elif status.get("state") == "pause" and not self._paused_by_us:
            what = "paused"
        else:
            return None
        self._queue_version = None
        log.info("MPD at %s: another client %s; the speaker yields", self.where, what)
        return OwnerTookOver(what)

    async def close(self) -> None:
        self._drop()
        if self._listener is not None:
            self._listener.cancel()
            # gather, not a suppressed CancelledError: a cancel of close() itself must still end its caller
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
