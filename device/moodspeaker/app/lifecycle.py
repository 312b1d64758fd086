"""What a daemon needs to live under systemd: signals as plain requests, and one object that reports its state.

A daemon's main loop asks `ControlSignals` whether to stop or reload (SIGTERM/SIGINT and SIGHUP become flags
and optional callbacks, nothing happens inside the handler), and tells `ServiceRuntime` about each completed
iteration. `ServiceRuntime` turns that into systemd notifications — WATCHDOG=1 from the main loop itself, so a
hung camera or model stops the pings and systemd restarts the unit — and into the state file that
`moodspeaker status` reads.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from moodspeaker.adapters.sd_notify import SystemdNotifier
from moodspeaker.adapters.state_file import state_path, write_state
from moodspeaker.config import ServiceConfig

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class ControlSignals:
    """SIGTERM/SIGINT set `stop`, SIGHUP sets `reload`; each may also call a callback (e.g. to wake an event loop).

    Use as a context manager around the daemon's main loop; the previous handlers come back on exit.
    """

    def __init__(self, on_stop: Callback | None = None, on_reload: Callback | None = None) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()
        self._on_stop, self._on_reload = on_stop, on_reload
        self._previous: dict[int, Any] = {}

    def take_reload(self) -> bool:
        """True once per SIGHUP received since the last call."""
        if self.reload.is_set():
            self.reload.clear()
            return True
        return False

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload.set()
            if self._on_reload:
                self._on_reload()
        else:
            self.stop.set()
            if self._on_stop:
                self._on_stop()

    def __enter__(self) -> ControlSignals:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def format_status(status: dict[str, Any]) -> str:
    """One line for systemd's STATUS=: the scalar entries of a daemon's status, in its order."""
    parts = []
    for key, value in status.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.2f}")
        elif isinstance(value, str | int | bool) and value != "":
            parts.append(f"{key}={value}")
    return " ".join(parts)


class ServiceRuntime:
    """A daemon's outward state: systemd notifications plus its JSON state file under the runtime directory.

    `iteration(status)` after every completed loop iteration: WATCHDOG=1 each time; READY=1 after the first;
    STATUS= and the state file at most once per `status_interval`. Around a SIGHUP rebuild: `reloading()`, then
    `reloaded(ok, why)`; a failed reload keeps the old setup running and its reason shows in STATUS and the
    state file until a later reload succeeds.
    """

    def __init__(self, name: str, config: ServiceConfig | None = None, notifier: SystemdNotifier | None = None,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time) -> None:
        config = config or ServiceConfig()
        self.name = name
        self.notifier = notifier or SystemdNotifier()
        self.status_interval = config.status_interval
        self._state_path = state_path(Path(config.runtime_dir), name)
        self._clock, self._wall = clock, wall_clock
        self._started_at = wall_clock()
        self._phase = "starting"
        self._ready = False
        self._status: dict[str, Any] = {}
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._reload_error: str | None = None
        self._last_publish: float | None = None
        self._state_file_warned = False

    def ready(self) -> None:
        """The daemon serves: READY=1 with the current status."""
        self._ready = True
        self._phase = "running"
        self.notifier.ready(self._status_line())
        self._publish_state()

    def iteration(self, status: dict[str, Any]) -> None:
        """One loop iteration completed with this status (mood, fps, model, track, … — scalars show in STATUS)."""
        self._status = dict(status)
        self.notifier.watchdog()
        if not self._ready:
            self.ready()
            return
        now = self._clock()
        if self._last_publish is None or now - self._last_publish >= self.status_interval:
            self.notifier.status(self._status_line())
            self._publish_state()

    def error(self, why: str) -> None:
        """Something went wrong that the daemon survives (camera lost, backend down): keep it for status."""
        self._last_error, self._last_error_at = why, self._wall()
        self._publish_state()

    def reloading(self) -> None:
        self._phase = "reloading"
        self.notifier.reloading()
        self._publish_state()

    def reloaded(self, ok: bool, why: str = "") -> None:
        """The rebuild after SIGHUP finished; on failure the old config and model keep running."""
        self._phase = "running"
        if ok:
            self._reload_error = None
            log.info("%s: reloaded config and model", self.name)
        else:
            self._reload_error = why
            log.error("%s: reload failed, still running the previous config and model: %s", self.name, why)
            self.error(f"reload failed: {why}")
        self.notifier.ready(self._status_line())
        self._publish_state()

    def stopping(self) -> None:
        self._phase = "stopping"
        self.notifier.stopping()
        self._publish_state()

    def close(self) -> None:
        """After the loop ended: remove the state file (nothing runs any more) and the notify socket."""
        self._state_path.unlink(missing_ok=True)
        self.notifier.close()

    def _status_line(self) -> str:
        line = format_status(self._status)
        if self._reload_error:
            line = f"reload failed, kept previous: {self._reload_error}; {line}"
        return line

    def _publish_state(self) -> None:
        self._last_publish = self._clock()
        state = {
            "service": self.name, "pid": os.getpid(), "phase": self._phase,
            "started_at": self._started_at, "updated_at": self._wall(),
            "status": self._status, "last_error": self._last_error, "last_error_at": self._last_error_at,
            "reload_error": self._reload_error,
        }
        try:
            write_state(self._state_path, state)
        except OSError as exc:
            if not self._state_file_warned:  # status is a convenience; the daemon keeps serving without it
                log.warning("%s: cannot write state file %s: %s", self.name, self._state_path, exc)
                self._state_file_warned = True
