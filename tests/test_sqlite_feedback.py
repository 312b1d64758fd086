"""The SQLite feedback store (real SQLite files) and `moodspeaker feedback show|export|reset`."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from moodspeaker.adapters.sqlite_feedback import SCHEMA_VERSION, FeedbackStoreError, SqliteFeedbackStore
from moodspeaker.cli import main
from moodspeaker.core.feedback import EARLY_SKIP, FULL_PLAY, LIKE, SKIP, posterior


def _fill(store: SqliteFeedbackStore) -> None:
    for i in range(3):
        store.record("sad", "good.mp3", FULL_PLAY, 100.0 + i)
    store.record("sad", "good.mp3", LIKE, 103.0)
    store.record("sad", "bad.mp3", EARLY_SKIP, 104.0)
    store.record("sad", "bad.mp3", EARLY_SKIP, 105.0)
    store.record("happy", "bad.mp3", SKIP, 106.0)


def test_events_survive_closing_and_reopening(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "feedback.db"
    with SqliteFeedbackStore(db) as store:
        _fill(store)
    with SqliteFeedbackStore(db) as store:
        assert store.counts("sad") == {"good.mp3": {FULL_PLAY: 3, LIKE: 1}, "bad.mp3": {EARLY_SKIP: 2}}
        assert store.counts("happy") == {"bad.mp3": {SKIP: 1}}
        assert store.counts("angry") == {}
        assert store.state().emotions() == ["happy", "sad"]


def test_wal_mode_full_sync_and_schema_version_are_on_disk(tmp_path: Path) -> None:
    db = tmp_path / "feedback.db"
    with SqliteFeedbackStore(db) as store:
        store.record("sad", "a", LIKE, 1.0)
        assert store.settings() == {"journal_mode": "wal", "synchronous": 2, "user_version": SCHEMA_VERSION}  # 2 = FULL
    raw = sqlite3.connect(db)  # a second, independent connection sees what was committed
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert raw.execute("SELECT emotion, track, event, t FROM events").fetchall() == [("sad", "a", "like", 1.0)]
    raw.close()


def test_every_recorded_event_survives_the_writer_being_killed(tmp_path: Path) -> None:
    """SIGKILL right after the last record(): no close, no checkpoint; each commit must already be in the WAL."""
    db = tmp_path / "f.db"
    writer = (
        "import os, signal, sys\n"
        "from moodspeaker.adapters.sqlite_feedback import SqliteFeedbackStore\n"
        "store = SqliteFeedbackStore(sys.argv[1])\n"
        "for i in range(50):\n"
        "    store.record('sad', f'track-{i}', 'like', float(i))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", writer, str(db)], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    with SqliteFeedbackStore(db) as store:
        assert store.counts("sad") == {f"track-{i}": {LIKE: 1} for i in range(50)}


def test_a_newer_schema_and_a_non_database_are_refused_clearly(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(FeedbackStoreError, match="newer"):
        SqliteFeedbackStore(newer)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(FeedbackStoreError, match="not a usable feedback database"):
        SqliteFeedbackStore(junk)


def test_unknown_events_are_rejected_before_they_reach_the_disk(tmp_path: Path) -> None:
    with SqliteFeedbackStore(tmp_path / "f.db") as store:
        with pytest.raises(ValueError, match="unknown feedback event"):
            store.record("sad", "a", "love", 1.0)
        assert store.counts("sad") == {}


def test_cli_show_lists_top_and_bottom_tracks_with_posterior_means(tmp_path: Path, capsys) -> None:
    db = tmp_path / "f.db"
    with SqliteFeedbackStore(db) as store:
        _fill(store)
    assert main(["feedback", "show", "--db", str(db), "--top", "1"]) == 0
    out = capsys.readouterr().out
    good = posterior({FULL_PLAY: 3, LIKE: 1}).mean
    bad = posterior({EARLY_SKIP: 2}).mean
    sad = out[out.index("sad:"):]
    assert "sad: 2 tracks, 6 events" in out
    assert sad.index(f"{good:.2f}  good.mp3") < sad.index("bottom:") < sad.index(f"{bad:.2f}  bad.mp3")


def test_cli_export_json_and_csv(tmp_path: Path, capsys) -> None:
    db = tmp_path / "f.db"
    with SqliteFeedbackStore(db) as store:
        _fill(store)
    assert main(["feedback", "export", "--db", str(db)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["emotions"]["sad"]["good.mp3"]["full_play"] == 3
    assert data["emotions"]["happy"]["bad.mp3"]["skip"] == 1
    out_csv = tmp_path / "f.csv"
    assert main(["feedback", "export", "--db", str(db), "--format", "csv", "--out", str(out_csv)]) == 0
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert {(r["emotion"], r["track"]) for r in rows} == {("sad", "good.mp3"), ("sad", "bad.mp3"), ("happy", "bad.mp3")}
    bad = next(r for r in rows if r["emotion"] == "sad" and r["track"] == "bad.mp3")
    assert int(bad["early_skip"]) == 2
    assert float(bad["mean"]) == pytest.approx(posterior({EARLY_SKIP: 2}).mean, abs=1e-6)


def test_cli_reset_needs_yes_and_can_be_limited_to_one_emotion(tmp_path: Path, capsys) -> None:
    db = tmp_path / "f.db"
    with SqliteFeedbackStore(db) as store:
        _fill(store)
    assert main(["feedback", "reset", "--db", str(db)]) == 2
    assert "--yes" in capsys.readouterr().err
    with SqliteFeedbackStore(db) as store:
        assert store.counts("sad")
    assert main(["feedback", "reset", "--db", str(db), "--emotion", "happy", "--yes"]) == 0
    assert "deleted 1 " in capsys.readouterr().out
    with SqliteFeedbackStore(db) as store:
        assert store.counts("happy") == {} and store.counts("sad")
    assert main(["feedback", "reset", "--db", str(db), "--yes"]) == 0
    with SqliteFeedbackStore(db) as store:
        assert store.state().emotions() == []


def test_cli_reads_the_path_from_the_config_and_does_not_create_a_missing_db(tmp_path: Path, capsys) -> None:
    db = tmp_path / "none" / "f.db"
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[feedback]\npath = "{db}"\n')
    assert main(["feedback", "show", "--config", str(cfg)]) == 0
    assert "no feedback recorded yet" in capsys.readouterr().out
    assert not db.exists()
    cfg.write_text('[feedback]\npaht = "x"\n')
    assert main(["feedback", "show", "--config", str(cfg)]) == 2
    assert "did you mean 'path'" in capsys.readouterr().err


def test_cli_feedback_raises_its_errors_for_cli_main_to_report(tmp_path: Path, capsys) -> None:
    """A thin command: it raises the error kinds and `cli.main` turns them into one line and exit 2 (it used to
    print and return 2 itself)."""
    from moodspeaker.cli import build_parser
    from moodspeaker.errors import EXIT_OWNER, ConfigError, UsageError

    cfg = tmp_path / "config.toml"
    cfg.write_text('[feedback]\npaht = "x"\n')
    args = build_parser().parse_args(["feedback", "show", "--config", str(cfg)])
    with pytest.raises(ConfigError, match="did you mean 'path'"):
        args.func(args)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    args = build_parser().parse_args(["feedback", "export", "--db", str(junk)])
    with pytest.raises(FeedbackStoreError, match="not a usable feedback database") as raised:
        args.func(args)
    assert raised.value.exit_code == EXIT_OWNER
    args = build_parser().parse_args(["feedback", "reset", "--db", str(junk)])
    with pytest.raises(UsageError, match="add --yes"):
        args.func(args)
    assert main(["feedback", "export", "--db", str(junk)]) == EXIT_OWNER
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"moodspeaker feedback: {junk}: not a usable feedback database")


def test_a_full_disk_keeps_events_in_memory_and_writes_them_once_there_is_room(tmp_path: Path) -> None:
    """Before, a full disk raised sqlite3.OperationalError out of record() and the player died at the next track end."""
    from moodspeaker.adapters.sqlite_feedback import FeedbackNotSaved

    db = tmp_path / "feedback.db"
    store = SqliteFeedbackStore(db)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL: the file may not grow
    written = 0
    with pytest.raises(FeedbackNotSaved, match="kept in memory"):
        for written in range(10_000):
            store.record("sad", f"track-{written}-" + "x" * 500, FULL_PLAY, float(written))
    with pytest.raises(FeedbackNotSaved, match="2 feedback events kept in memory"):
        store.record("sad", "liked.mp3", LIKE, 1e6)
    assert store.unsaved == 2
    assert store.counts("sad")["liked.mp3"] == {LIKE: 1}  # ranking sees what waits in memory
    store._db.execute(f"PRAGMA max_page_count = {10 * pages + 1000}")  # room again
    store.record("sad", "liked.mp3", LIKE, 1e6 + 1)
    assert store.unsaved == 0
    store.close()
    with SqliteFeedbackStore(db) as reopened:
        counts = reopened.counts("sad")
    assert counts["liked.mp3"] == {LIKE: 2} and len(counts) == written + 2  # nothing lost


def _corrupt_a_page(db: Path) -> None:
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[2 * page: 3 * page] = b"\xa5" * page  # the third page: part of the events table or its index
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["header", "page"])
def test_a_corrupt_database_is_moved_aside_and_a_new_one_started(tmp_path: Path, damage: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "feedback.db"
    with SqliteFeedbackStore(db) as store:
        for i in range(300):
            store.record("sad", f"track-{i}-" + "x" * 100, FULL_PLAY, float(i))
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if damage == "header":
        db.write_bytes(b"\x00" * 100 + db.read_bytes()[100:])
    else:
        _corrupt_a_page(db)
    with pytest.raises(FeedbackStoreError, match=r"not a usable|corrupt"):  # `moodspeaker feedback` leaves it alone
        SqliteFeedbackStore(db)
    with SqliteFeedbackStore(db, move_corrupt_aside=True) as store:  # the player: a new database, the music goes on
        store.record("sad", "new.mp3", LIKE, 1.0)
        assert store.counts("sad") == {"new.mp3": {LIKE: 1}}
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("feedback.db.corrupt-") and p.name[-4:] not in ("-wal", "-shm")]
    assert len(aside) == 1 and f"moved it to {aside[0]} " in caplog.text


def _damage_the_btree_roots(db: Path) -> None:
    """Overwrite pages 2 and 3, the roots of the events table and its index: every insert and every count reads them."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page: 3 * page] = b"\xa5" * (2 * page)
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("first_use", ["record", "counts"])
@pytest.mark.parametrize("uncached", ["another-connection-wrote", "db-outgrew-the-cache"])
def test_a_database_damaged_while_the_player_runs_is_moved_aside_and_later_events_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, uncached: str, first_use: str) -> None:
    """The store holds one connection whose page cache hid damage made underneath it: the damage must be read from
    disk, so either another connection changed the database (`moodspeaker feedback`, a checkpoint), which makes
    SQLite drop the store's cached pages, or the database is bigger than the page cache (here: a cache of one page)."""
    db = tmp_path / "feedback.db"
    store = SqliteFeedbackStore(db, move_corrupt_aside=True)  # the player's store, open the whole test
    for i in range(300):
        store.record("sad", f"track-{i}-" + "x" * 100, FULL_PLAY, float(i))
    assert store._db.execute("SELECT rootpage FROM sqlite_master ORDER BY rootpage").fetchall() == [(2,), (3,)]
    if uncached == "another-connection-wrote":
        other = sqlite3.connect(db)
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page now in the main file, the WAL restarted
        other.close()
    else:
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store._db.execute("PRAGMA cache_size = 1")
    _damage_the_btree_roots(db)
    caplog.set_level("ERROR")
    if first_use == "record":
        store.record("sad", "new.mp3", LIKE, 1000.0)  # a track end: no exception reaches the player
    else:
        assert store.counts("sad") == {}  # a playlist switch: ranks without the lost feedback
        store.record("sad", "new.mp3", LIKE, 1000.0)
    store.record("sad", "new.mp3", FULL_PLAY, 1001.0)
    assert store.counts("sad") == {"new.mp3": {LIKE: 1, FULL_PLAY: 1}} and store.unsaved == 0
    store.close()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("feedback.db.corrupt-") and p.name[-4:] not in ("-wal", "-shm")]
    assert len(aside) == 1 and f"{db} is corrupt: moved it to {aside[0]} and started a new feedback database" in caplog.text
    with SqliteFeedbackStore(db) as reopened:  # the new database kept what came after the damage
        assert reopened.counts("sad") == {"new.mp3": {LIKE: 1, FULL_PLAY: 1}}


def test_a_damaged_database_that_cannot_be_moved_aside_keeps_events_in_memory_until_it_can(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """An SD card with I/O errors is often remounted read-only. Before, the rename's OSError crossed the port and
    left the store with a closed connection: every later event was kept in memory for good, never written."""
    import errno

    from moodspeaker.adapters.sqlite_feedback import FeedbackNotSaved

    db = tmp_path / "feedback.db"
    store = SqliteFeedbackStore(db, move_corrupt_aside=True)
    for i in range(300):
        store.record("sad", f"track-{i}-" + "x" * 100, FULL_PLAY, float(i))
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store._db.execute("PRAGMA cache_size = 1")  # the damage is read from disk, as in a database bigger than the cache
    _damage_the_btree_roots(db)
    rename = Path.rename

    def read_only(self: Path, target: object) -> Path:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "rename", read_only)
    with pytest.raises(FeedbackNotSaved, match=r"is corrupt .* cannot be moved aside .*Read-only file system.*"
                                               r"1 feedback events kept in memory"):
        store.record("sad", "new.mp3", LIKE, 1000.0)
    assert store.counts("sad") == {"new.mp3": {LIKE: 1}}  # ranking goes on with what waits in memory
    with pytest.raises(FeedbackNotSaved, match="2 feedback events kept in memory"):
        store.record("sad", "new.mp3", FULL_PLAY, 1001.0)
    monkeypatch.setattr(Path, "rename", rename)  # writable again (say, after a reboot's fsck)
    caplog.set_level("ERROR")
    store.record("sad", "other.mp3", SKIP, 1002.0)
    assert store.unsaved == 0 and f"{db} is corrupt: moved it to" in caplog.text
    store.close()
    with SqliteFeedbackStore(db) as reopened:
        assert reopened.counts("sad") == {"new.mp3": {LIKE: 1, FULL_PLAY: 1}, "other.mp3": {SKIP: 1}}


def test_a_write_failing_again_in_the_new_database_after_a_corrupt_one_was_moved_aside_arrives_as_ours(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """3: after moving a corrupt database aside, record() wrote into the new one outside the error translation:
    a full disk there crossed the port as sqlite3.OperationalError."""
    from moodspeaker.adapters.sqlite_feedback import FeedbackNotSaved

    db = tmp_path / "feedback.db"
    store = SqliteFeedbackStore(db, move_corrupt_aside=True)
    for i in range(300):
        store.record("sad", f"track-{i}-" + "x" * 100, FULL_PLAY, float(i))
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store._db.execute("PRAGMA cache_size = 1")
    _damage_the_btree_roots(db)
    open_ = SqliteFeedbackStore._open

    def on_a_full_disk(self: SqliteFeedbackStore) -> sqlite3.Connection:  # the new database may not grow (SQLITE_FULL)
        new = open_(self)
        new.execute(f"PRAGMA max_page_count = {new.execute('PRAGMA page_count').fetchone()[0]}")
        return new

    monkeypatch.setattr(SqliteFeedbackStore, "_open", on_a_full_disk)
    long_uri = "new-" + "x" * 10_000  # more than a page: the insert needs pages the file may not add
    with pytest.raises(FeedbackNotSaved, match=r"the disk is full .*1 feedback events kept in memory"):
        store.record("sad", long_uri, LIKE, 1000.0)
    assert store.counts("sad") == {long_uri: {LIKE: 1}} and store.unsaved == 1
    store.close()


def test_a_corrupt_database_that_cannot_be_moved_aside_at_start_is_our_error(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """3: at start (and when reopening), the rename's OSError crossed the port."""
    import errno

    db = tmp_path / "feedback.db"
    db.write_bytes(b"this is not sqlite" * 100)

    def read_only(self: Path, target: object) -> Path:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "rename", read_only)
    with pytest.raises(FeedbackStoreError, match=r"is corrupt and cannot be moved aside .*Read-only file system.*"
                                                 r"point \[feedback\] path elsewhere"):
        SqliteFeedbackStore(db, move_corrupt_aside=True, wait_for_room=True)
