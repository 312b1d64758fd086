"""A private mosquitto broker for the tests: 127.0.0.1, a free port, anonymous, no persistence."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from moodspeaker.dev.mpd_server import free_port


class Mosquitto:
    def __init__(self, state_dir: Path, port: int | None = None, *, anonymous: bool = True) -> None:
        """`anonymous=False`: a broker that knows no users, so every login is refused."""
        self.state_dir, self.host, self.port = state_dir, "127.0.0.1", port or free_port()
        self.anonymous = anonymous
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Mosquitto:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        conf = self.state_dir / "mosquitto.conf"
        access = "allow_anonymous true\n"
        if not self.anonymous:
            (self.state_dir / "passwords").write_text("")
            access = f"allow_anonymous false\npassword_file {self.state_dir / 'passwords'}\n"
        # user root: run as root, mosquitto would switch to its own user, which cannot read a test's folder
        conf.write_text(f"listener {self.port} {self.host}\n{access}persistence false\nuser root\n")
        log = (self.state_dir / "mosquitto.log").open("ab")
        self._proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return self
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not start; see {self.state_dir / 'mosquitto.log'}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=5)
            self._proc = None
