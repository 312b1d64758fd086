"""The README's recipe for Snapcast, tried as written. MPD's half on a real MPD: its `audio_output` block (one setting
per line) starts MPD and feeds the fifo while it plays; the same block on one line stops MPD from starting.
snapserver's half on Debian's /etc/snapserver.conf as the package ships it: tests/fixtures/snapserver.conf is that
file from Debian 12's snapserver 0.26.0+dfsg1-1+deb12u1 (`apt-get download snapserver`; dpkg-deb -x), unchanged
(its SHA-256 below). The recipe applied to it leaves one source on the fifo, and a real snapserver (where
installed: make test's apt packages) starts on it and reads the fifo.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import mpd
import pytest

from moodspeaker.dev.mpd_server import MpdServer, MpdServerError

README = Path(__file__).resolve().parents[1] / "README.md"
DEBIAN_SNAPSERVER_CONF = Path(__file__).resolve().parent / "fixtures" / "snapserver.conf"
DEBIAN_SNAPSERVER_CONF_SHA256 = "952a5c8ee42c57c80d3cc32916ad31918bb3b2978f6f4bd4ed9033d2249eed9a"


def recipe_block() -> str:
    """The fenced `audio_output { ... }` block of the README's Snapcast recipe, exactly as written there."""
    match = re.search(r"In `/etc/mpd\.conf`.*?```\n(audio_output \{.*?\n\})\n```", README.read_text(), re.S)
    assert match, "the README's Snapcast recipe has no fenced audio_output block"
    return match.group(1)


class RecipeMpd(MpdServer):
    """The suite's private MPD with the recipe's output instead of its null output, the fifo moved into the test's
    folder."""

    def __init__(self, *args: object, output: str, fifo: Path) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.output = output.replace("/tmp/snapfifo", str(fifo))

    def _write_config(self) -> Path:
        conf = super()._write_config()
        text = conf.read_text()
        conf.write_text(text[:text.index("audio_output {")] + self.output + "\n")
        return conf


def test_the_snapcast_recipe_starts_mpd_and_feeds_the_fifo(tmp_path: Path, music_library) -> None:
    music, playlists, _ = music_library
    fifo = tmp_path / "snapfifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # snapserver's end
    server = RecipeMpd(tmp_path / "mpd", music, playlists, output=recipe_block(), fifo=fifo)
    server.start()
    try:
        client = mpd.MPDClient()
        client.connect(server.host, server.port)
        client.load("mood-happy")
        client.play(0)
        client.setvol(40)  # the recipe's software mixer
        assert client.status()["volume"] == "40"
        client.disconnect()
        received, deadline = 0, time.monotonic() + 10
        while received < 48000 * 4 and time.monotonic() < deadline:  # a second of 48 kHz 16-bit stereo
            try:
                received += len(os.read(reader, 65536))
            except BlockingIOError:
                time.sleep(0.05)
        assert received >= 48000 * 4
    finally:
        server.stop()
        os.close(reader)


def test_the_same_output_on_one_line_stops_mpd_from_starting(tmp_path: Path, music_library) -> None:
    music, playlists, _ = music_library
    one_line = " ".join(line.strip() for line in recipe_block().splitlines())
    server = RecipeMpd(tmp_path / "mpd", music, playlists, output=one_line, fifo=tmp_path / "snapfifo")
    with pytest.raises(MpdServerError, match="exited"):
        server.start(timeout=5)
    server.stop()
    assert "Unknown tokens after '{'" in server.log_path.read_text()


def snapserver_conf_as_the_recipe_says() -> str:
    """Debian's snapserver.conf with the README's replacement made: the line it names, exactly as written there."""
    import hashlib

    match = re.search(r"In `/etc/snapserver\.conf`, replace Debian's `(source = [^`]+)` under `\[stream\]` with\s+"
                      r"`(source = [^`]+)`", README.read_text())
    assert match, "the README's Snapcast recipe no longer says which snapserver.conf line to replace"
    debian, ours = match.groups()
    conf = DEBIAN_SNAPSERVER_CONF.read_bytes()
    assert hashlib.sha256(conf).hexdigest() == DEBIAN_SNAPSERVER_CONF_SHA256  # the package's file, unchanged
    lines = conf.decode().splitlines(keepends=True)
    assert [line.strip() for line in lines].count(debian) == 1, f"Debian's file has no line {debian!r}"
    return "".join(ours + "\n" if line.strip() == debian else line for line in lines)


def _sources(conf: str) -> list[str]:
    return [line.split("=", 1)[1].strip() for line in conf.splitlines() if re.match(r"\s*source\s*=", line)]


def test_the_snapcast_recipe_leaves_one_source_on_the_fifo_in_debians_snapserver_conf() -> None:
    conf = snapserver_conf_as_the_recipe_says()
    on_the_fifo = [source for source in _sources(conf) if source.startswith("pipe:///tmp/snapfifo")]
    assert on_the_fifo == ["pipe:///tmp/snapfifo?name=moodspeaker"]
    added_instead = DEBIAN_SNAPSERVER_CONF.read_text() + "[stream]\nsource = pipe:///tmp/snapfifo?name=moodspeaker\n"
    assert len([s for s in _sources(added_instead) if s.startswith("pipe:///tmp/snapfifo")]) == 2  # what it prevents


def _rpc(port: int, method: str) -> dict:
    """One JSON-RPC call on snapserver's control port: one JSON object a line, and notifications (such as
    Stream.OnUpdate) may come on the same connection before the answer, which is the line with our id."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn, conn.makefile("rb") as lines:
        conn.sendall(json.dumps({"id": 1, "jsonrpc": "2.0", "method": method}).encode() + b"\r\n")
        while (message := json.loads(lines.readline())).get("id") != 1:
            pass
    return message["result"]


@pytest.mark.skipif(shutil.which("snapserver") is None, reason="snapserver is not installed (make test's apt packages)")
def test_snapserver_starts_on_the_recipes_conf_and_reads_the_fifo(tmp_path: Path) -> None:
    from moodspeaker.dev.mpd_server import free_port

    fifo = tmp_path / "snapfifo"
    os.mkfifo(fifo)
    conf = tmp_path / "snapserver.conf"
    conf.write_text(snapserver_conf_as_the_recipe_says().replace("/tmp/snapfifo", str(fifo)))
    control = free_port()
    server = subprocess.Popen(["snapserver", "-c", str(conf), f"--server.datadir={tmp_path}", "--http.enabled=false",
                               "--tcp.bind_to_address=127.0.0.1", f"--tcp.port={control}",
                               "--stream.bind_to_address=127.0.0.1", f"--stream.port={free_port()}",
                               f"--logging.sink=file:{tmp_path / 'snapserver.log'}"])
    opened, stop = threading.Event(), threading.Event()

    def mpd() -> None:  # MPD's part: 48 kHz 16-bit stereo into the fifo, once snapserver reads it
        fd = os.open(fifo, os.O_WRONLY)  # blocks until a reader opens the fifo: the fact waited for
        opened.set()
        try:
            while not stop.is_set():
                os.write(fd, b"\x01\x00" * 4800)
        except BrokenPipeError:
            pass
        finally:
            os.close(fd)

    writer = threading.Thread(target=mpd)
    writer.start()
    try:
        assert opened.wait(10), f"snapserver did not open the fifo within 10 s; see {tmp_path / 'snapserver.log'}"
        deadline, stream = time.monotonic() + 10, None
        while stream is None or stream[0]["status"] != "playing":
            assert time.monotonic() < deadline, f"the stream never played: {stream}"
            time.sleep(0.05)
            with contextlib.suppress(ConnectionRefusedError):  # its control port opens after the fifo
                stream = _rpc(control, "Server.GetStatus")["server"]["streams"]
        assert len(stream) == 1 and stream[0]["id"] == "moodspeaker" and stream[0]["uri"]["path"] == str(fifo)
    finally:
        stop.set()
        server.terminate()
        server.wait(10)
        if not opened.is_set():  # let the writer's open return
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(10)
