"""The mood transport over real AF_UNIX datagram sockets."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

import pytest
from mood_wait import receive

from moodspeaker.adapters.mood_socket import LoggingMoodSink, MoodSocketError, MoodSocketReceiver, MoodSocketSender
from moodspeaker.core.mood import MAX_DATAGRAM, PROTOCOL_VERSION, MoodEvent

EVENT = MoodEvent(kind="mood", mood="happy", confidence=0.81, t=123.456, seq=7, probs={"happy": 0.81, "sad": 0.05},
                  fps=5.0)


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "mood.sock"  # the parent does not exist yet: the receiver creates it


@pytest.fixture
def receiver(sock_path: Path):
    with MoodSocketReceiver(sock_path) as rx:
        yield rx


def raw_send(path: Path, data: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(data, str(path))


def valid_body(**changes: object) -> dict:
    body = json.loads(EVENT.to_bytes())
    body.update(changes)
    return body


def test_round_trip(receiver: MoodSocketReceiver, sock_path: Path) -> None:
    with MoodSocketSender(sock_path) as tx:
        tx.send(EVENT)
        heartbeat = MoodEvent(kind="heartbeat", mood="no_face", confidence=0.0, t=124.0, seq=8)
        tx.send(heartbeat)
    assert receive(receiver, 1.0) == EVENT
    assert receive(receiver, 1.0) == heartbeat
    assert receive(receiver, 0.05) is None


def test_receive_times_out_without_events(receiver: MoodSocketReceiver) -> None:
    t0 = time.monotonic()
    assert receive(receiver, 0.2) is None
    assert 0.15 <= time.monotonic() - t0 < 1.0


BAD_DATAGRAMS = {
    "not json": b"{mood: happy",
    "not utf-8": b"\xff\xfe\x00",
    "not an object": b"[1, 2, 3]",
    "unknown version": json.dumps(valid_body(v=PROTOCOL_VERSION + 1)).encode(),
    "no version": json.dumps({k: v for k, v in valid_body().items() if k != "v"}).encode(),
    "unknown mood": json.dumps(valid_body(mood="bored")).encode(),
    "unknown kind": json.dumps(valid_body(kind="hello")).encode(),
    "confidence is a string": json.dumps(valid_body(confidence="0.5")).encode(),
    "confidence out of range": json.dumps(valid_body(confidence=1.5)).encode(),
    "confidence is a bool": json.dumps(valid_body(confidence=True)).encode(),
    "seq is a float": json.dumps(valid_body(seq=1.5)).encode(),
    "t is null": json.dumps(valid_body(t=None)).encode(),
    "probs is a list": json.dumps(valid_body(probs=[0.5])).encode(),
    "probs has an unknown emotion": json.dumps(valid_body(probs={"bored": 0.5})).encode(),
    "oversized": json.dumps(valid_body(pad="x" * MAX_DATAGRAM)).encode(),
    "nested too deeply": b"[" * 4000,  # raised RecursionError in the decoder, killing mood reception
    "an integer too long": b'{"v": 1, "seq": ' + b"9" * 4400 + b"}",
}


@pytest.mark.parametrize("data", BAD_DATAGRAMS.values(), ids=BAD_DATAGRAMS.keys())
def test_a_bad_datagram_is_dropped_with_one_log_line(receiver: MoodSocketReceiver, sock_path: Path, data: bytes,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    raw_send(sock_path, data)
    raw_send(sock_path, EVENT.to_bytes())
    with caplog.at_level(logging.WARNING, logger="moodspeaker.adapters.mood_socket"):
        assert receive(receiver, 1.0) == EVENT  # the valid event behind it still arrives
    drops = [r for r in caplog.records if "dropped a mood datagram" in r.getMessage()]
    assert len(drops) == 1
    assert receiver.dropped == 1


def test_only_bad_datagrams_time_out_to_none(receiver: MoodSocketReceiver, sock_path: Path) -> None:
    for data in BAD_DATAGRAMS.values():
        raw_send(sock_path, data)  # one at a time: the kernel queues only max_dgram_qlen (often 10) datagrams
        assert receive(receiver, 0.05) is None
    assert receiver.dropped == len(BAD_DATAGRAMS)


def test_sender_with_no_listener_neither_blocks_nor_raises(sock_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with MoodSocketSender(sock_path) as tx, caplog.at_level(logging.INFO, logger="moodspeaker.adapters.mood_socket"):
        t0 = time.monotonic()
        for _ in range(100):
            tx.send(EVENT)
        assert time.monotonic() - t0 < 0.5
    assert sum("no mood listener" in r.getMessage() for r in caplog.records) == 1  # said once, not per event


def test_sender_with_a_stale_socket_file_neither_blocks_nor_raises(sock_path: Path) -> None:
    MoodSocketReceiver(sock_path)._sock.close()  # a listener that died without removing its socket file
    assert sock_path.is_socket()
    with MoodSocketSender(sock_path) as tx:
        tx.send(EVENT)


def test_sender_with_an_unusable_path_neither_blocks_nor_raises(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with MoodSocketSender(tmp_path / "file" / "mood.sock") as tx:  # ENOTDIR
        tx.send(EVENT)
    with MoodSocketSender(tmp_path / "file") as tx:  # not a socket: ECONNREFUSED
        tx.send(EVENT)


def test_sender_never_blocks_when_the_listener_does_not_read(receiver: MoodSocketReceiver, sock_path: Path) -> None:
    with MoodSocketSender(sock_path) as tx:
        t0 = time.monotonic()
        for _ in range(2000):  # far more than a unix datagram queue holds
            tx.send(EVENT)
        assert time.monotonic() - t0 < 2.0
    assert receive(receiver, 1.0) == EVENT


def test_sender_reaches_a_listener_that_appears_later(sock_path: Path) -> None:
    with MoodSocketSender(sock_path) as tx:
        tx.send(EVENT)
        with MoodSocketReceiver(sock_path) as rx:
            later = MoodEvent(kind="heartbeat", mood="happy", confidence=0.7, t=130.0, seq=9)
            tx.send(later)
            assert receive(rx, 1.0) == later
        # and again after the listener restarted
        with MoodSocketReceiver(sock_path) as rx:
            tx.send(EVENT)
            assert receive(rx, 1.0) == EVENT


def test_receiver_replaces_a_stale_socket(sock_path: Path) -> None:
    MoodSocketReceiver(sock_path)._sock.close()
    with MoodSocketReceiver(sock_path) as rx, MoodSocketSender(sock_path) as tx:
        tx.send(EVENT)
        assert receive(rx, 1.0) == EVENT


def test_receiver_refuses_a_live_socket(receiver: MoodSocketReceiver, sock_path: Path) -> None:
    with pytest.raises(MoodSocketError, match="already listening"):
        MoodSocketReceiver(sock_path)
    raw_send(sock_path, EVENT.to_bytes())  # the first listener is untouched
    assert receive(receiver, 1.0) == EVENT


def test_receiver_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "mood.sock"
    path.write_text("precious")
    with pytest.raises(MoodSocketError, match="not a socket"):
        MoodSocketReceiver(path)
    assert path.read_text() == "precious"


def test_receiver_removes_its_socket_on_close(sock_path: Path) -> None:
    MoodSocketReceiver(sock_path).close()
    assert not sock_path.exists()


def test_logging_sink_logs_changes_at_info_and_heartbeats_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    sink = LoggingMoodSink()
    with caplog.at_level(logging.INFO, logger="moodspeaker.mood"):
        sink.send(EVENT)
        sink.send(MoodEvent(kind="heartbeat", mood="happy", confidence=0.8, t=1.0))
    assert [r.getMessage() for r in caplog.records] == ["mood: happy (confidence 0.81, 5.0 fps)"]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_flood_of_bad_datagrams_is_logged_as_counts_not_line_by_line(sock_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """10,000 bad datagrams used to write ~9,500 log lines; now: the first, then one count per interval."""
    clock = Clock()
    with MoodSocketReceiver(sock_path, log_every_s=10.0, clock=clock) as receiver, \
            caplog.at_level(logging.WARNING, logger="moodspeaker.adapters.mood_socket"):
        for i in range(1000):
            raw_send(sock_path, b"[" * 4000)
            clock.t = i * 0.003  # 1,000 datagrams in 3 s
            assert receiver.receive_nowait() is None
        raw_send(sock_path, EVENT.to_bytes())
        assert receive(receiver, 1.0) == EVENT  # reception is alive
        clock.t = 20.0
        assert receive(receiver, 0.01) is None  # the flood stopped: its count is logged
    lines = [r.getMessage() for r in caplog.records]
    assert receiver.dropped == 1000 and len(lines) == 2
    assert lines[0].startswith("dropped a mood datagram") and "nested too deeply" in lines[0]
    assert lines[1].startswith("dropped 999 more mood datagrams") and "(1000 since start)" in lines[1]
