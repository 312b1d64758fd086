"""ports.FeedbackStore on SQLite: one row per event, so nothing the listener taught the speaker is lost.

Durability: WAL journal with synchronous=FULL. In WAL mode NORMAL keeps the database consistent on power loss
but may drop the last commits; FULL fsyncs the WAL on every commit, so a like pressed a second before the plug
is pulled survives. Events come a few per track, so the extra fsync costs nothing that matters.
The schema version lives in PRAGMA user_version; a database from a newer moodspeaker is refused, not guessed at.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from moodspeaker.core.feedback import EVENTS, FeedbackState, Weights, check_event
from moodspeaker.errors import SetupError

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


class SqliteFeedbackStore:
    """Thread-safe (one connection behind a lock), so the player may call it from a worker thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise FeedbackStoreError(f"{self.path}: cannot open the feedback database ({exc}); check [feedback] path "
                                     "and that the directory is writable by this user") from None
        try:
            self._setup()
        except sqlite3.Error as exc:
            self._db.close()
            raise FeedbackStoreError(f"{self.path}: not a usable feedback database ({exc}); move it aside or point "
                                     "[feedback] path elsewhere") from None
        except FeedbackStoreError:
            self._db.close()
            raise

    def _setup(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise FeedbackStoreError(f"{self.path}: schema version {version} is newer than this moodspeaker "
                                     f"understands ({SCHEMA_VERSION}); upgrade moodspeaker or point [feedback] path elsewhere")
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise FeedbackStoreError(f"{self.path}: the filesystem does not support SQLite's WAL mode (got {mode!r})")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")  # `moodspeaker feedback` may read while the player writes
        if version < SCHEMA_VERSION:
            self._db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")

    def record(self, emotion: str, track_uri: str, event: str, t: float) -> None:
        check_event(event)
        with self._lock:
            self._db.execute("INSERT INTO events (emotion, track, event, t) VALUES (?, ?, ?, ?)",
                             (emotion, track_uri, event, t))

    def counts(self, emotion: str) -> dict[str, dict[str, int]]:
        with self._lock:
            rows = self._db.execute("SELECT track, event, COUNT(*) FROM events WHERE emotion = ? GROUP BY track, event",
                                    (emotion,)).fetchall()
        result: dict[str, dict[str, int]] = {}
        for track, event, n in rows:
            result.setdefault(track, {})[event] = n
        return result

    def state(self, weights: Weights | None = None) -> FeedbackState:
        """Everything, aggregated: the pure model's serialisable state."""
        state = FeedbackState(weights) if weights else FeedbackState()
        with self._lock:
            rows = self._db.execute("SELECT emotion, track, event, COUNT(*) FROM events GROUP BY emotion, track, event")
            for emotion, track, event, n in rows:
                state.record(emotion, track, event, n)
        return state

    def reset(self, emotion: str | None = None) -> int:
        """Forget all events (or one emotion's); returns how many were deleted."""
        with self._lock:
            if emotion is None:
                cur = self._db.execute("DELETE FROM events")
            else:
                cur = self._db.execute("DELETE FROM events WHERE emotion = ?", (emotion,))
        return cur.rowcount

    def settings(self) -> dict[str, int | str]:
        """The durability settings in force on this connection (for tests and status)."""
        with self._lock:
            return {name: self._db.execute(f"PRAGMA {name}").fetchone()[0]
                    for name in ("journal_mode", "synchronous", "user_version")}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteFeedbackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
