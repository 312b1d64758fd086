"""The README's MPD recipe for Snapcast, tried as written on a real MPD: its `audio_output` block (one setting per
line) starts MPD and feeds the fifo while it plays; the same block on one line stops MPD from starting."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import mpd
import pytest

from moodspeaker.dev.mpd_server import MpdServer, MpdServerError

README = Path(__file__).resolve().parents[1] / "README.md"


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
