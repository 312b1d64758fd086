"""Mood events over a unix datagram socket: the vision process sends, the player process listens.

The listener owns the socket path, mode 0660 (the daemons' user and group may send, nobody else) and, where it
creates the socket's folder, 0750: explicit modes, whatever the umask. The sender addresses every datagram to
that path (no connection to lose), so it picks the listener up whenever it appears, and it never blocks: with
nobody listening, or the listener's queue full, the event is dropped. A heartbeat follows within seconds, so
nothing is lost for long.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from moodspeaker.core.mood import MAX_DATAGRAM, MalformedEvent, MoodEvent
from moodspeaker.errors import SetupError

SOCKET_MODE = 0o660  # the daemons' user and group send moods; nobody else may
FOLDER_MODE = 0o750  # a folder the listener creates for its socket
DROP_LOG_INTERVAL_S = 10.0  # after the first dropped datagram, at most one log line per this many seconds

log = logging.getLogger(__name__)

class MoodSocketError(SetupError):
    """The socket path cannot be used; the message says why and what to do."""


class MoodSocketSender:
    """MoodSink: sends each event as one datagram to `path`; drops it when it cannot be delivered.

    Nobody bound at the path (ENOENT), a stale socket file (ECONNREFUSED), a listener too busy to take it (EAGAIN)
    or a path it may not use (EACCES, ...): the vision loop goes on either way, and the log says so once.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._listening: bool | None = None  # unknown until the first send

    def send(self, event: MoodEvent) -> None:
        try:
            self._sock.sendto(event.to_bytes(), self.path)
        except OSError as exc:
            if self._listening is not False:
                log.info("no mood listener at %s (%s); dropping events until one appears", self.path,
                         os.strerror(exc.errno or 0))
            self._listening = False
            return
        if self._listening is False:
            log.info("mood listener at %s is back", self.path)
        self._listening = True

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> MoodSocketSender:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class MoodSocketReceiver:
    """MoodSource: binds `path` (creating its directory, replacing a stale socket) and yields valid events.

    Every datagram is validated; a malformed, oversized or unknown-version one is dropped. The first drop is
    logged at once, later ones at most once per `log_every_s` as a count with the latest reason, so a flood of
    bad datagrams cannot flood the journal.
    """

    def __init__(self, path: str | Path, log_every_s: float = DROP_LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.dropped = 0  # datagrams rejected since start
        self._log_every_s, self._clock = log_every_s, clock
        self._drop_logged_at: float | None = None
        self._unlogged = 0  # drops since the last log line
        self._latest_drop = ""
        try:
            _make_folder(self.path.parent)
        except OSError as exc:
            raise MoodSocketError(f"{self.path.parent}: cannot create the mood socket directory ({exc.strerror}); "
                                  "set [mood_socket] path to a writable place") from None
        _remove_stale_socket(self.path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            _bind_with_mode(self._sock, self.path)
        except OSError as exc:
            self._sock.close()
            raise MoodSocketError(f"{self.path}: cannot bind the mood socket ({exc.strerror})") from None
        self._sock.setblocking(False)

    def fileno(self) -> int:
        """For an event loop that waits on the socket itself (asyncio `add_reader`), then calls `receive_nowait`."""
        return self._sock.fileno()

    def receive_nowait(self) -> MoodEvent | None:
        """A valid event if one is queued; drops (and logs) malformed ones in front of it. Nothing left: the drops
        not yet logged are, if their interval has passed (so a flood that stopped is counted at the next read)."""
        while True:
            try:
                # One byte more than allowed: a datagram that fills it is oversized (the rest is discarded).
                data = self._sock.recv(MAX_DATAGRAM + 1)
            except BlockingIOError:
                self._log_drops()
                return None
            try:
                return MoodEvent.from_bytes(data)
            except MalformedEvent as exc:
                self._drop(exc)

    def _drop(self, why: MalformedEvent) -> None:
        self.dropped += 1
        self._unlogged += 1
        self._latest_drop = str(why)
        self._log_drops()

    def _log_drops(self) -> None:
        """One line for the drops not yet logged, unless one was written less than `log_every_s` ago."""
        now = self._clock()
        if not self._unlogged or (self._drop_logged_at is not None and now - self._drop_logged_at < self._log_every_s):
            return
        if self._drop_logged_at is None:
            log.warning("dropped a mood datagram on %s: %s", self.path, self._latest_drop)
        else:
            log.warning("dropped %d more mood datagrams on %s (%d since start); the latest: %s",
                        self._unlogged, self.path, self.dropped, self._latest_drop)
        self._drop_logged_at, self._unlogged = now, 0

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> MoodSocketReceiver:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _make_folder(folder: Path) -> None:
    """Create `folder` (and missing parents) with FOLDER_MODE, set explicitly: mkdir's mode is cut by the umask."""
    if folder.is_dir():
        return
    _make_folder(folder.parent)
    with contextlib.suppress(FileExistsError):
        folder.mkdir()
        os.chmod(folder, FOLDER_MODE)


def _bind_with_mode(sock: socket.socket, path: Path) -> None:
    """Bind `sock` at `path` with SOCKET_MODE from its first moment: bound inside a private (0700) folder, given
    its mode, then renamed into place, so no datagram can arrive through the umask's mode meanwhile."""
    private = Path(tempfile.mkdtemp(prefix=".mood-", dir=path.parent))
    try:
        sock.bind(str(private / "s"))
        os.chmod(private / "s", SOCKET_MODE)
        os.rename(private / "s", path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            (private / "s").unlink()
        private.rmdir()


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket left by a listener that died; refuse to touch a live one or anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise MoodSocketError(f"{path}: exists and is not a socket; remove it or set [mood_socket] path elsewhere")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno != errno.ECONNREFUSED:
            raise MoodSocketError(f"{path}: cannot check the existing socket ({exc.strerror})") from None
        path.unlink()
        log.info("removed stale mood socket %s", path)
        return
    finally:
        probe.close()
    raise MoodSocketError(f"{path}: another process is already listening for mood events there "
                          "(is `moodspeaker player` or `run` already running?)")


class LoggingMoodSink:
    """MoodSink that logs each mood change (heartbeats at debug level): `run` uses it until a player exists."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("moodspeaker.mood")

    def send(self, event: MoodEvent) -> None:
        if event.kind == "mood":
            self._log.info("mood: %s (confidence %.2f, %.1f fps)", event.mood, event.confidence, event.fps)
        else:
            self._log.debug("heartbeat: %s (confidence %.2f, %.1f fps)", event.mood, event.confidence, event.fps)
