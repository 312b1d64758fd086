"""A private Mopidy (Debian's mopidy + mopidy-mpd) for the tests: its MPD frontend on 127.0.0.1 and a free port,
the file and m3u backends over a music folder and a playlist folder, and a fakesink that plays in real time."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import mpd

from moodspeaker.dev.mpd_server import free_port


class Mopidy:
    host = "127.0.0.1"

    def __init__(self, state_dir: Path, music_dir: Path, playlist_dir: Path) -> None:
        self.state_dir, self.music_dir, self.playlist_dir = state_dir, music_dir, playlist_dir
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def uri(self, relative: str) -> str:
        """The URI Mopidy's file backend gives a file of the music folder."""
        return (self.music_dir / relative).as_uri()

    def start(self, timeout: float = 30.0) -> Mopidy:
        binary = shutil.which("mopidy")
        if binary is None:
            raise RuntimeError("mopidy is not installed; `apt-get install mopidy mopidy-mpd` (make test does it)")
        for sub in ("cache", "config", "data"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        conf = self.state_dir / "mopidy.conf"
        conf.write_text(
            f"[core]\ncache_dir = {self.state_dir / 'cache'}\nconfig_dir = {self.state_dir / 'config'}\n"
            f"data_dir = {self.state_dir / 'data'}\n[audio]\noutput = fakesink sync=true\nmixer = software\n"
            f"[http]\nenabled = false\n[stream]\nenabled = false\n[file]\nmedia_dirs = {self.music_dir}\n"
            f"[m3u]\nplaylists_dir = {self.playlist_dir}\nbase_dir = {self.music_dir}\n"
            f"[mpd]\nhostname = {self.host}\nport = {self.port}\n")
        log = (self.state_dir / "mopidy.log").open("ab")
        self._proc = subprocess.Popen([binary, "--config", str(conf)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            client = mpd.MPDClient()
            try:
                client.connect(self.host, self.port, timeout=1)
                client.disconnect()
                return self
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mopidy did not start; see {self.state_dir / 'mopidy.log'}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
