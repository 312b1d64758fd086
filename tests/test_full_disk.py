"""Issue 20, cases 3, 4 and 12 (status): a full disk is a state, not a crash. A real full filesystem: a small tmpfs
mounted for the test and filled to the last byte (needs root, as the system test does; skipped where mount is not
allowed). The feedback store starts without a database and keeps events in memory, reopens after a corrupt
database was moved aside once space returns, and names the real cause; `moodspeaker status` finds a daemon that
cannot write its state file and says why."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mood_wait import receive

from moodspeaker.adapters.mood_socket import MoodSocketReceiver
from moodspeaker.adapters.sqlite_feedback import FeedbackNotSaved, SqliteFeedbackStore
from moodspeaker.config import Config, FeedbackConfig
from moodspeaker.core.feedback import FULL_PLAY, LIKE
from moodspeaker.dev.demo_clip import load_clip_truth

MOODSPEAKER = str(Path(sys.executable).with_name("moodspeaker"))


class Disk:
    """A mounted tmpfs of `size` bytes; `fill()` takes its last byte, `free()` gives the room back."""

    def __init__(self, path: Path) -> None:
        self.path, self.filler = path, path / "filler"

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for block in (1 << 16, 1 << 12, 1 << 9, 1):  # smaller and smaller, down to the last byte
                try:
                    while os.write(fd, b"\0" * block):
                        pass
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()


@pytest.fixture()
def disk(tmp_path: Path) -> Iterator[Disk]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"a real full disk needs a tmpfs mount, not allowed here: {done.stderr.strip()}")
    try:
        yield Disk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_case3_a_full_disk_at_start_without_a_database_keeps_events_in_memory(disk: Disk,
                                                                               caplog: pytest.LogCaptureFixture) -> None:
    db = disk.path / "feedback.db"
    disk.fill()
    store = SqliteFeedbackStore(db, move_corrupt_aside=True, wait_for_room=True)  # the player's store: no exit 2
    assert store.problem is not None and "disk is full" in store.problem and "move it aside" not in store.problem
    with pytest.raises(FeedbackNotSaved, match=r"disk is full.*1 feedback events kept in memory"):
        store.record("sad", "a.mp3", LIKE, 1.0)
    assert store.counts("sad") == {"a.mp3": {LIKE: 1}}  # ranking sees what waits in memory
    with pytest.raises(FeedbackNotSaved, match="2 feedback events"):
        store.record("sad", "a.mp3", FULL_PLAY, 2.0)
    disk.free()
    store.record("sad", "b.mp3", LIKE, 3.0)  # room again: the database is created and takes all three
    assert store.unsaved == 0 and store.problem is None
    store.close()
    with SqliteFeedbackStore(db) as reopened:
        assert reopened.counts("sad") == {"a.mp3": {LIKE: 1, FULL_PLAY: 1}, "b.mp3": {LIKE: 1}}


def test_case3_the_player_starts_on_a_full_disk(disk: Disk) -> None:
    from moodspeaker.app.player_app import build_setup

    disk.fill()
    setup = build_setup(Config(feedback=FeedbackConfig(path=str(disk.path / "feedback.db"))))
    try:
        assert "disk is full" in setup.store.problem  # before: exit 2, "not a usable feedback database … move it aside"
    finally:
        setup.store.close()  # the MPD backend is not connected until the service runs


def _damage_the_btree_roots(db: Path) -> None:
    """Overwrite pages 2 and 3 in place (no new blocks on the full disk): the events table's and its index's roots."""
    with db.open("r+b") as f:
        page = int.from_bytes(f.read(18)[16:18], "big")
        f.seek(page)
        f.write(b"\xa5" * (2 * page))


def test_case4_a_corrupt_database_found_on_a_full_disk_reopens_when_space_returns(disk: Disk) -> None:
    db = disk.path / "feedback.db"
    store = SqliteFeedbackStore(db, move_corrupt_aside=True, wait_for_room=True)
    for i in range(100):
        store.record("sad", f"track-{i}", FULL_PLAY, float(i))
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store._db.execute("PRAGMA cache_size = 1")  # the damage is read from disk
    disk.fill()
    _damage_the_btree_roots(db)
    assert store.counts("sad") == {}  # a playlist switch finds it corrupt: moved aside, no room for a new one yet
    assert "disk is full" in store.problem
    with pytest.raises(FeedbackNotSaved, match=r"disk is full.*1 feedback events kept in memory"):
        store.record("sad", "new.mp3", LIKE, 1000.0)
    with pytest.raises(FeedbackNotSaved, match="2 feedback events"):
        store.record("sad", "new.mp3", FULL_PLAY, 1001.0)  # before: "Cannot operate on a closed database", for good
    disk.free()
    store.record("sad", "later.mp3", LIKE, 1002.0)
    assert store.unsaved == 0 and store.problem is None
    store.close()  # before: the events in memory were lost at stop
    with SqliteFeedbackStore(db) as reopened:
        assert reopened.counts("sad") == {"new.mp3": {LIKE: 1, FULL_PLAY: 1}, "later.mp3": {LIKE: 1}}
    assert any(p.name.startswith("feedback.db.corrupt-") for p in disk.path.iterdir())


def test_case12_status_finds_a_daemon_whose_runtime_folder_is_full(disk: Disk, tmp_path: Path, shipped_model) -> None:
    sock, config = tmp_path / "run" / "mood.sock", tmp_path / "config.toml"
    config.write_text(f'[model]\npath = "{shipped_model}"\n[mood_socket]\npath = "{sock}"\n'
                      f'[service]\nruntime_dir = "{disk.path}"\n[camera]\nkind = "opencv"\nfps = 10.0\nloop = true\n')
    disk.fill()
    with MoodSocketReceiver(sock) as receiver:
        proc = subprocess.Popen([sys.executable, "-m", "moodspeaker.cli", "vision", "--config", str(config),
                                 "--source", str(load_clip_truth().video)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert receive(receiver, 60) is not None  # it runs, and cannot write vision.json
            assert not (disk.path / "vision.json").exists()
            out = subprocess.run([MOODSPEAKER, "status", "--config", str(config), "--json"], capture_output=True,
                                 text=True, timeout=60)
            report = json.loads(out.stdout)
            vision = report["services"]["vision"]
            assert vision["state"] == "running" and vision["pid"] == proc.pid, vision
            assert "is full" in report["last_error"] and "vision.json" in report["last_error"]
            text = subprocess.run([MOODSPEAKER, "status", "--config", str(config)], capture_output=True, text=True,
                                  timeout=60).stdout
            assert f"vision  running (pid {proc.pid}), but it cannot write" in text and "error   none" not in text
        finally:
            proc.terminate()
            proc.wait(timeout=30)
