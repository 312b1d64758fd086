"""ports.FeedbackStore on SQLite: one row per event, so nothing the listener taught the speaker is lost.

Durability: WAL journal with synchronous=FULL. In WAL mode NORMAL keeps the database consistent on power loss
but may drop the last commits; FULL fsyncs the WAL on every commit, so a like pressed a second before the plug
is pulled survives. Events come a few per track, so the extra fsync costs nothing that matters.
The schema version lives in PRAGMA user_version; a database from a newer moodspeaker is refused, not guessed at.

The music never waits for the database. A full disk (or any failed write) keeps the event in memory, says so
once, and writes it with the next event once there is room; a corrupt database is moved aside (with a log line
naming both files) and a new one started, when the player opens it or finds it corrupt while running;
while it cannot be moved (a read-only filesystem), events wait in memory and each new one tries again.
With `wait_for_room` (the player), a database that cannot be created or opened for lack of room (or an I/O
error), at start or after a corrupt one was moved aside, is a state, not a crash: events wait in memory,
`problem` says why (the player's status shows it), and each new event tries to open it again.
Reads that fail answer from what is in memory.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from moodspeaker.core.feedback import EVENTS, FeedbackState, Weights, check_event
from moodspeaker.errors import MoodspeakerError, SetupError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    emotion TEXT NOT NULL,
    track TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ({", ".join(repr(e) for e in EVENTS)})),
    t REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_emotion_track ON events (emotion, track);
"""


class FeedbackStoreError(SetupError):
    """The database cannot be opened or is not ours; the message says which file and what to do."""


class CorruptFeedbackDatabase(FeedbackStoreError):
    """SQLite says the file is not a database or its pages are damaged."""


class NoRoomForFeedback(FeedbackStoreError):
    """The database cannot be created or opened now: the disk is full, or an I/O error."""


class FeedbackNotSaved(MoodspeakerError):
    """Events are kept in memory because the database cannot take them now (disk full, I/O error)."""


def _no_room(exc: sqlite3.Error | OSError) -> bool:
    """SQLITE_FULL, any SQLITE_IOERR, or ENOSPC/EIO from the filesystem: conditions that pass by themselves."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO)
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)) or "disk is full" in str(exc)


def _corrupt(exc: sqlite3.Error) -> bool:
    """SQLite's 'database disk image is malformed' (SQLITE_CORRUPT) and 'file is not a database' (SQLITE_NOTADB)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or any(
        words in str(exc) for words in ("malformed", "not a database"))


class SqliteFeedbackStore:
    """Thread-safe (one connection behind a lock), so the player may call it from a worker thread.

    `move_corrupt_aside`: the player's choice (a new, empty database beats no music and a crash at every
    start); `moodspeaker feedback` leaves a corrupt file alone and reports it. `wait_for_room`: the player's
    choice too (see the module's docstring); without it a full disk at open is a NoRoomForFeedback error.
    """

    def __init__(self, path: Path | str, move_corrupt_aside: bool = False, wait_for_room: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._unsaved: list[tuple[str, str, str, float]] = []  # events the database did not take yet
        self._move_corrupt_aside = move_corrupt_aside
        self.problem: str | None = None  # why events wait in memory now; None while the database takes them
        self._db: sqlite3.Connection | None = None  # None while it cannot be opened (wait_for_room)
        try:
            self._db = self._open_or_set_aside()
        except NoRoomForFeedback as exc:
            if not wait_for_room:
                raise
            self.problem = f"{exc}; feedback events are kept in memory until there is room"
            log.warning("%s", self.problem)

    def _open_or_set_aside(self) -> sqlite3.Connection:
        try:
            return self._open()
        except CorruptFeedbackDatabase:
            if not self._move_corrupt_aside:
                raise
            self._set_aside()
            return self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            if _no_room(exc):
                raise NoRoomForFeedback(f"{self.path}: cannot create the feedback database: the disk is full or "
                                        f"failing ({exc}); free space on its filesystem") from None
            raise FeedbackStoreError(f"{self.path}: cannot open the feedback database ({exc}); check [feedback] path "
                                     "and that the directory is writable by this user") from None
        try:
            self._setup(db)
            check = db.execute("PRAGMA quick_check").fetchone()[0]  # damaged pages would fail a later read
        except sqlite3.Error as exc:
            db.close()
            if _no_room(exc) and not _corrupt(exc):
                raise NoRoomForFeedback(f"{self.path}: cannot open the feedback database: the disk is full or "
                                        f"failing ({exc}); free space on its filesystem") from None
            error = CorruptFeedbackDatabase if _corrupt(exc) else FeedbackStoreError
            raise error(f"{self.path}: not a usable feedback database ({exc}); move it aside or point "
                        "[feedback] path elsewhere") from None
        except FeedbackStoreError:
            db.close()
            raise
        if check != "ok":
            db.close()
            raise CorruptFeedbackDatabase(f"{self.path}: corrupt feedback database (quick_check: {check}); move it "
                                          "aside or point [feedback] path elsewhere")
        return db

    def _setup(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise FeedbackStoreError(f"{self.path}: schema version {version} is newer than this moodspeaker "
                                     f"understands ({SCHEMA_VERSION}); upgrade moodspeaker or point [feedback] path elsewhere")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise FeedbackStoreError(f"{self.path}: the filesystem does not support SQLite's WAL mode (got {mode!r})")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")  # `moodspeaker feedback` may read while the player writes
        if version < SCHEMA_VERSION:
            db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")

    def _set_aside(self) -> None:
        """Rename the corrupt database (and its WAL and shared-memory files) to <name>.corrupt-<time>; a
        FeedbackStoreError where it cannot be moved (a filesystem remounted read-only)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = self.path.with_name(self.path.name + suffix)
            try:
                if src.exists():
                    src.rename(aside.with_name(aside.name + suffix))
            except OSError as exc:
                raise FeedbackStoreError(f"{self.path} is corrupt and cannot be moved aside ({exc}); move it aside "
                                         "or point [feedback] path elsewhere") from None
        log.error("%s is corrupt: moved it to %s and started a new feedback database; what the speaker had learnt "
                  "stays in the old file (sqlite3's .recover may get it back)", self.path, aside)

    def _recover_from_corruption(self, exc: sqlite3.Error) -> None:
        """While running: the database turned out corrupt. Set it aside and continue with a new one. If it cannot
        be moved (a filesystem remounted read-only after I/O errors), raise FeedbackNotSaved; the next use tries
        again."""
        if not self._move_corrupt_aside:
            raise CorruptFeedbackDatabase(f"{self.path}: corrupt feedback database ({exc}); move it aside") from None
        assert self._db is not None
        self._db.close()  # before the rename: closing removes the -wal and -shm files by the old name
        self._db = None
        try:
            self._set_aside()
        except FeedbackStoreError as failure:  # closed: the next use opens it again, and tries to move it (_connection)
            raise self._not_saved(f"{failure} (SQLite: {exc})") from None
        self._db = self._connection()  # a new database; with no room, events wait and the next one tries again

    def _connection(self) -> sqlite3.Connection:
        """The open database; opened again if it could not be (no room before). Raises FeedbackNotSaved while it
        still cannot be, naming the cause."""
        if self._db is None:
            try:
                self._db = self._open_or_set_aside()
            except FeedbackStoreError as exc:
                raise self._not_saved(str(exc)) from None
            log.info("%s: the feedback database is open again", self.path)
        return self._db

    def _not_saved(self, why: str) -> FeedbackNotSaved:
        self.problem = f"{why}; {len(self._unsaved)} feedback events kept in memory until it can be written"
        return FeedbackNotSaved(self.problem)

    def record(self, emotion: str, track_uri: str, event: str, t: float) -> None:
        """Store one event; if the database cannot take it now, keep it (and any before it) in memory and raise
        FeedbackNotSaved, to be written with a later event."""
        check_event(event)
        with self._lock:
            self._unsaved.append((emotion, track_uri, event, t))
            self._flush()

    def _flush(self) -> None:
        for recovered in (False, True):  # once more into a new database, after a corrupt one was moved aside
            try:
                self._insert(self._unsaved)
                break
            except sqlite3.Error as exc:
                if recovered or not _corrupt(exc):
                    cause = "the disk is full" if _no_room(exc) else "cannot write"
                    raise self._not_saved(f"{self.path}: {cause} ({exc})") from None
                self._recover_from_corruption(exc)
        if len(self._unsaved) > 1:
            log.info("%s: wrote %d feedback events kept in memory", self.path, len(self._unsaved))
        self._unsaved.clear()
        self.problem = None

    def _insert(self, rows: list[tuple[str, str, str, float]]) -> None:
        db = self._connection()
        with db:  # one transaction: all or none
            db.execute("BEGIN")
            db.executemany("INSERT INTO events (emotion, track, event, t) VALUES (?, ?, ?, ?)", rows)

    def counts(self, emotion: str) -> dict[str, dict[str, int]]:
        """Per track, event -> count for one emotion, the unsaved events included; when the database cannot be
        read, the unsaved ones alone (ranking then treats the tracks as new) and a log line."""
        with self._lock:
            try:
                rows = self._select_counts(emotion)
            except sqlite3.Error as exc:
                try:
                    if not (_corrupt(exc) and self._move_corrupt_aside):
                        raise
                    self._recover_from_corruption(exc)
                    rows = self._select_counts(emotion)
                except (sqlite3.Error, MoodspeakerError) as failure:
                    log.warning("%s: cannot read feedback (%s); ranking without it", self.path, failure)
                    rows = []
            unsaved = [(track, event) for e, track, event, _ in self._unsaved if e == emotion]
        result: dict[str, dict[str, int]] = {}
        for track, event, n in rows:
            result.setdefault(track, {})[event] = n
        for track, event in unsaved:
            per_track = result.setdefault(track, {})
            per_track[event] = per_track.get(event, 0) + 1
        return result

    def _select_counts(self, emotion: str) -> list[tuple[str, str, int]]:
        if self._db is None:  # no room to open it yet: what waits in memory is all there is
            return []
        return self._db.execute("SELECT track, event, COUNT(*) FROM events WHERE emotion = ? GROUP BY track, event",
                                (emotion,)).fetchall()

    @contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        """sqlite3's errors as ours, for the `moodspeaker feedback` commands."""
        try:
            yield
        except sqlite3.Error as exc:
            error = CorruptFeedbackDatabase if _corrupt(exc) else FeedbackStoreError
            raise error(f"{self.path}: cannot {doing} the feedback database ({exc})") from None

    @property
    def unsaved(self) -> int:
        """How many events wait in memory for the database."""
        return len(self._unsaved)

    def state(self, weights: Weights | None = None) -> FeedbackState:
        """Everything, aggregated: the pure model's serialisable state."""
        state = FeedbackState(weights) if weights else FeedbackState()
        with self._lock, self._translated("read"):
            rows = self._connection().execute("SELECT emotion, track, event, COUNT(*) FROM events GROUP BY emotion, track, event")
            for emotion, track, event, n in rows:
                state.record(emotion, track, event, n)
        return state

    def reset(self, emotion: str | None = None) -> int:
        """Forget all events (or one emotion's); returns how many were deleted."""
        with self._lock, self._translated("change"):
            db = self._connection()
            if emotion is None:
                cur = db.execute("DELETE FROM events")
            else:
                cur = db.execute("DELETE FROM events WHERE emotion = ?", (emotion,))
        return cur.rowcount

    def settings(self) -> dict[str, int | str]:
        """The durability settings in force on this connection (for tests and status)."""
        with self._lock:
            return {name: self._connection().execute(f"PRAGMA {name}").fetchone()[0]
                    for name in ("journal_mode", "synchronous", "user_version")}

    def close(self) -> None:
        """Close the database; events still in memory get one last try, and are named in the log if lost."""
        with self._lock:
            if self._unsaved:
                try:
                    self._flush()
                except MoodspeakerError:
                    log.error("%s: %d feedback events could not be written and are lost: %s", self.path,
                              len(self._unsaved), self._unsaved)
            if self._db is not None:
                self._db.close()

    def __enter__(self) -> SqliteFeedbackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
