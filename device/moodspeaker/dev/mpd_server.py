"""A private MPD on loopback with a null audio output, for the demo and the test suite.

Not used by the appliance (it talks to the system's MPD). Start/kill/restart are real process
operations, so tests can kill -9 the server mid-play and start it again on the same port.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import mpd

from moodspeaker.errors import MoodspeakerError


class MpdServerError(MoodspeakerError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MpdServer:
    """`mpd --no-daemon` on 127.0.0.1 with its config, database and log under `state_dir`."""

    host = "127.0.0.1"

    def __init__(self, state_dir: Path, music_dir: Path, playlist_dir: Path, port: int | None = None) -> None:
        binary = shutil.which("mpd") or next((p for p in ("/usr/bin/mpd", "/usr/sbin/mpd") if Path(p).exists()), None)
        if binary is None:
            raise MpdServerError("mpd is not installed; install it with `sudo apt-get install mpd` (or `make setup`)")
        self.binary = binary
        self.state_dir, self.music_dir, self.playlist_dir = state_dir, music_dir, playlist_dir
        self.port = port or free_port()
        self.log_path = state_dir / "mpd.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        conf = self.state_dir / "mpd.conf"
        conf.write_text(
            f'music_directory "{self.music_dir}"\n'
            f'playlist_directory "{self.playlist_dir}"\n'
            f'db_file "{self.state_dir / "database"}"\n'
            f'bind_to_address "{self.host}"\nport "{self.port}"\n'
            'zeroconf_enabled "no"\n'
            'audio_output {\n  type "null"\n  name "null"\n  mixer_type "software"\n}\n'  # a volume to set
        )
        return conf

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers and its database is up to date."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        conf = self._write_config()
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen([self.binary, "--no-daemon", "--stderr", str(conf)], stdout=log, stderr=log,
                                      stdin=subprocess.DEVNULL)
        log.close()
        client = self._wait_for_connection(timeout)
        try:
            client.update()
            deadline = time.monotonic() + timeout
            while "updating_db" in client.status():
                if time.monotonic() > deadline:
                    raise MpdServerError(f"MPD database update took over {timeout}s; see {self.log_path}")
                time.sleep(0.05)
        finally:
            client.disconnect()

    def _wait_for_connection(self, timeout: float) -> mpd.MPDClient:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise MpdServerError(f"mpd exited with status {self._proc.returncode}; see {self.log_path}")
            client = mpd.MPDClient()
            try:
                client.connect(self.host, self.port, timeout=1)
                return client
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise MpdServerError(f"mpd did not answer on {self.host}:{self.port} in {timeout}s ({exc}); "
                                         f"see {self.log_path}") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """kill -9: the way a crash or power cut looks to a client."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
            self._proc = None

    def freeze(self, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT): an MPD that hangs: the kernel still accepts connections, nothing answers."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)  # a frozen MPD cannot act on SIGTERM
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
            self._proc = None

    def __enter__(self) -> MpdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
