"""One daemon lifecycle for `vision`, `player` and `run`: build -> READY -> serve -> SIGHUP: build a new setup
beside the running one and swap only if it works -> SIGTERM -> STOPPING.

Signals: the asyncio daemons (`player`, `run`) take them through their event loop (`Daemon.signals_on_loop`:
`loop.add_signal_handler`, so the callbacks run as ordinary loop callbacks). `ControlSignals` serves the vision
daemon, whose loop is a thread that blocks on the camera. `ServiceRuntime` is a daemon's outward state: systemd
notifications (WATCHDOG=1 from the main loop itself, so a hung camera, model or backend stops the pings and
systemd restarts the unit) and the state file that `moodspeaker status` and `moodspeaker reload` read. `Daemon`
ties them together with the reload procedure every daemon shares: read the config afresh, build beside (in a worker
thread for the asyncio daemons), swap, say how it went; a swap that raises is a failed reload, READY again on the
old setup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TypeVar

from moodspeaker.adapters.sd_notify import SystemdNotifier
from moodspeaker.adapters.state_file import state_path, write_state
from moodspeaker.config import Config, ServiceConfig, load_config
from moodspeaker.errors import MoodspeakerError

log = logging.getLogger(__name__)

Callback = Callable[[], None]
S = TypeVar("S")


class ControlSignals:
    """For a daemon whose loop is a blocking thread, not an event loop (vision: a camera read blocks, and its loop
    polls `stop` between frames): SIGTERM/SIGINT set `stop`, SIGHUP sets `reload`; each may also call a callback
    (`on_stop`, `on_reload`). The handler only writes the signal's number to a self-pipe; the "signals" thread sets
    the flags and calls the callbacks (a handler that set a threading.Event itself could deadlock on the Event's lock
    held by the code it interrupted).

    Use as a context manager around the daemon's main loop; the previous handlers come back on exit.
    """

    def __init__(self, on_stop: Callback | None = None, on_reload: Callback | None = None) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.on_stop, self.on_reload = on_stop, on_reload
        self._previous: dict[int, Any] = {}
        self._pipe: tuple[int, int] | None = None
        self._dispatcher: threading.Thread | None = None
        self.handled = 0  # signals acted on so far (tests wait on it)

    def take_reload(self) -> bool:
        """True once per SIGHUP received since the last call."""
        if self.reload.is_set():
            self.reload.clear()
            return True
        return False

    def _write(self, signum: int, _frame: FrameType | None) -> None:
        """The signal handler: one byte into the pipe, nothing that takes a lock."""
        if self._pipe is not None:
            with contextlib.suppress(BlockingIOError):  # a full pipe already holds enough wake-ups
                os.write(self._pipe[1], bytes([signum]))

    def _dispatch(self, read_end: int) -> None:
        while data := os.read(read_end, 64):  # b"": the write end closed on exit
            for signum in data:
                self._handle(signum)
                self.handled += 1

    def _handle(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.reload.set()
            if self.on_reload:
                self.on_reload()
        else:
            self.stop.set()
            if self.on_stop:
                self.on_stop()

    def __enter__(self) -> ControlSignals:
        self._pipe = os.pipe()
        os.set_blocking(self._pipe[1], False)
        self._dispatcher = threading.Thread(target=self._dispatch, args=(self._pipe[0],), name="signals", daemon=True)
        self._dispatcher.start()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._previous[signum] = signal.signal(signum, self._write)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        if self._pipe is not None and self._dispatcher is not None:
            os.close(self._pipe[1])  # the dispatcher reads what is left, then ends
            self._dispatcher.join(timeout=5)
            os.close(self._pipe[0])
            self._pipe = self._dispatcher = None


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
    STATUS= and the state file at most once per `status_interval`. Problems the daemon survives are kept per
    source (`error(why, source)`, e.g. "camera", "backend", "reload") until that source recovers
    (`clear_error(source)`), so `moodspeaker status` shows what is wrong now, not what once was. Around a
    SIGHUP rebuild: `reloading()`, then `reloaded(ok, why)`: READY=1 again only after the rebuild; a failed
    reload keeps the old setup and its reason shows in STATUS and the state file until a reload succeeds.
    `close(clean=True)` removes the state file; after a crash `close(clean=False, why)` leaves it, in phase
    "failed" with the reason, so status can tell a crash from a stop.
    """

    def __init__(self, name: str, config: ServiceConfig | None = None, notifier: SystemdNotifier | None = None,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 state_file: bool = True) -> None:
        config = config or ServiceConfig()
        self.name = name
        self._writes_state = state_file  # `moodspeaker run` (development) writes none
        self.notifier = notifier or SystemdNotifier()
        self.status_interval = config.status_interval
        self._state_path = state_path(Path(config.runtime_dir), name)
        self._clock, self._wall = clock, wall_clock
        self._started_at = wall_clock()
        self._phase = "starting"
        self._ready = False
        self._status: dict[str, Any] = {}
        self._errors: dict[str, tuple[str, float]] = {}  # source -> (why, wall time), the problems of now
        self._reloads = 0
        self._last_reload: dict[str, Any] | None = None
        self._last_publish: float | None = None
        self._state_file_warned = False

    @property
    def watchdog_interval(self) -> float | None:
        """systemd's WatchdogSec for this process, if it has one."""
        return self.notifier.watchdog_interval

    def ready(self) -> None:
        """The daemon serves: the state file, then READY=1 with the current status (`systemctl start` returns at
        READY, and a `moodspeaker status` right after it finds the file)."""
        self._ready = True
        self._phase = "running"
        self._publish_state()
        self.notifier.ready(self._status_line())

    def iteration(self, status: dict[str, Any]) -> None:
        """One loop iteration completed with this status (mood, fps, model, track, … — scalars show in STATUS).
        A status whose `fatal` names a problem the daemon cannot mend itself (the player's track watcher died) is
        an error and gets no WATCHDOG=1: systemd restarts the daemon."""
        self._status = dict(status)
        if fatal := status.get("fatal"):
            if self._errors.get("fatal", ("",))[0] != fatal:
                self.error(fatal, "fatal")
        else:
            self.notifier.watchdog()
        if not self._ready:
            self.ready()
            return
        now = self._clock()
        if self._last_publish is None or now - self._last_publish >= self.status_interval:
            self.notifier.status(self._status_line())
            self._publish_state()

    def error(self, why: str, source: str = "") -> None:
        """Something went wrong that the daemon survives (camera lost, backend down): shown until `clear_error`."""
        self._errors.pop(source, None)  # the newest error is the last one
        self._errors[source] = (why, self._wall())
        self._publish_state()

    def clear_error(self, source: str = "") -> None:
        """`source` works again: its error no longer shows."""
        if self._errors.pop(source, None) is not None:
            self._publish_state()

    def reloading(self) -> None:
        self._phase = "reloading"
        self.notifier.reloading()
        self._publish_state()

    def reloaded(self, ok: bool, why: str = "") -> None:
        """The rebuild after SIGHUP finished (and, if ok, the new setup is swapped in); READY=1 follows."""
        self._phase = "running"
        self._reloads += 1
        self._last_reload = {"ok": ok, "error": None if ok else why, "finished_at": self._wall()}
        if ok:
            self._errors.pop("reload", None)
            log.info("%s: reloaded config and model", self.name)
        else:
            log.error("%s: reload failed, still running the previous config and model: %s", self.name, why)
            self._errors.pop("reload", None)
            self._errors["reload"] = (f"reload failed: {why}", self._wall())
        self.notifier.ready(self._status_line())
        self._publish_state()

    def stopping(self) -> None:
        self._phase = "stopping"
        self.notifier.stopping()
        self._publish_state()

    def close(self, clean: bool = True, why: str = "") -> None:
        """After the loop ended. A clean stop removes the state file (nothing runs any more); a daemon that dies
        of an error leaves it in phase "failed" with `why`, so `moodspeaker status` says it crashed and why."""
        if clean:
            if self._writes_state:
                self._state_path.unlink(missing_ok=True)
        else:
            self._phase = "failed"
            self._errors.pop("exit", None)
            self._errors["exit"] = (why, self._wall())
            self._publish_state()
        self.notifier.close()

    @property
    def reload_error(self) -> str | None:
        return None if self._last_reload is None or self._last_reload["ok"] else self._last_reload["error"]

    def _status_line(self) -> str:
        line = format_status(self._status)
        if self.reload_error:
            line = f"reload failed, kept previous: {self.reload_error}; {line}"
        return line

    def _publish_state(self) -> None:
        """The state file (see adapters/state_file.py for its keys)."""
        self._last_publish = self._clock()
        if not self._writes_state:
            return
        latest = list(self._errors.values())[-1] if self._errors else (None, None)
        state = {
            "service": self.name, "pid": os.getpid(), "phase": self._phase,
            "started_at": self._started_at, "updated_at": self._wall(),
            "status": self._status, "last_error": latest[0], "last_error_at": latest[1],
            "errors": {source or self.name: why for source, (why, _) in self._errors.items()},
            "reload_error": self.reload_error, "reloads": self._reloads, "last_reload": self._last_reload,
        }
        try:
            write_state(self._state_path, state)
        except OSError as exc:
            if not self._state_file_warned:  # status is a convenience; the daemon keeps serving without it
                log.warning("%s: cannot write state file %s: %s", self.name, self._state_path, exc)
                self._state_file_warned = True


def describe_error(exc: BaseException) -> str:
    """One line for status and logs: our errors carry their own message; anything else is named by its type."""
    return str(exc) if isinstance(exc, MoodspeakerError) else f"{type(exc).__name__}: {exc}"


class Daemon:
    """The lifecycle every daemon shares, as a context manager around its main loop.

    An asyncio daemon takes its signals with `signals_on_loop` (SIGTERM/SIGINT call `on_stop`, SIGHUP `on_reload`);
    the vision daemon uses ControlSignals. On a clean exit: STOPPING, the state file goes; on an exception: the
    state file stays in phase "failed" with the reason, and the exception propagates (cli.main makes it one line
    and an exit code).
    """

    def __init__(self, name: str, config: Config, runtime: ServiceRuntime | None = None) -> None:
        self.name = name
        self.config = config
        self.runtime = runtime or ServiceRuntime(name, config.service)
        self.on_stop: Callback | None = None  # e.g. stop the player's loop
        self.on_reload: Callback | None = None  # e.g. tell the loop a reload is due
        self.stop_requested = False  # SIGTERM/SIGINT came (perhaps before on_stop was set: while building)

    @contextlib.contextmanager
    def signals_on_loop(self) -> Iterator[None]:
        """Inside the running event loop, for as long as it serves: SIGTERM/SIGINT and SIGHUP through the loop
        (`loop.add_signal_handler`), so `on_stop` and `on_reload` run as loop callbacks, never inside a handler."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop_requested)
        loop.add_signal_handler(signal.SIGHUP, self._reload_requested)
        try:
            yield
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)

    def _stop_requested(self) -> None:
        self.stop_requested = True
        if self.on_stop is not None:
            self.on_stop()

    def _reload_requested(self) -> None:
        if self.on_reload is not None:
            self.on_reload()

    def reload(self, build: Callable[[Config], S], swap: Callable[[S], None],
               discard: Callable[[S], None] | None = None) -> bool:
        """Read the config file afresh, `build` a new setup from it beside the running one and, only if that
        worked, `swap` it in. A failure keeps the running setup and says why (STATUS, state file, log); a swap
        that raises is a failed reload too (READY again, the reason shown), and `discard` closes what it left."""
        self.runtime.reloading()
        try:
            built = self._build(build)
        except Exception as exc:
            return self._build_failed(exc)
        return self._swap(*built, swap, discard)

    async def reload_off_loop(self, build: Callable[[Config], S], swap: Callable[[S], None],
                              discard: Callable[[S], None] | None = None,
                              settle: Callable[[], Awaitable[None]] | None = None) -> bool:
        """`reload` for an asyncio daemon: the config is read and the setup built in a worker thread (a feedback
        database's check, a model's proof take seconds), and swapped in on the loop. `settle` (it must not raise)
        lets the new setup take over before READY: the player tells a new backend what should be playing, so that
        `systemctl reload` returns once it has (another client's stop right after is then seen as the owner's)."""
        self.runtime.reloading()
        try:
            fresh, new = await asyncio.to_thread(self._build, build)
        except Exception as exc:
            return self._build_failed(exc)
        if not self._swapped_in(new, swap, discard):
            return False
        if settle is not None:
            await settle()
        self._reloaded(fresh)
        return True

    def _build(self, build: Callable[[Config], S]) -> tuple[Config, S]:
        fresh = load_config(self.config.source)
        return fresh, build(fresh)

    def _build_failed(self, exc: Exception) -> bool:
        """Whatever broke the new setup, the running one stays."""
        if not isinstance(exc, MoodspeakerError):
            log.exception("%s: building the new setup failed", self.name, exc_info=exc)
        self.runtime.reloaded(False, describe_error(exc))
        return False

    def _swap(self, fresh: Config, new: S, swap: Callable[[S], None], discard: Callable[[S], None] | None) -> bool:
        if not self._swapped_in(new, swap, discard):
            return False
        self._reloaded(fresh)
        return True

    def _swapped_in(self, new: S, swap: Callable[[S], None], discard: Callable[[S], None] | None) -> bool:
        try:
            swap(new)
        except Exception as exc:  # a swap must never leave the daemon in "reloading": systemctl reload would hang
            log.exception("%s: swapping in the new setup failed", self.name)
            if discard is not None:
                try:
                    discard(new)
                except Exception:
                    log.exception("%s: closing the new setup that failed to swap in failed too", self.name)
            self.runtime.reloaded(False, f"swapping in the new setup failed: {describe_error(exc)}")
            return False
        return True

    def _reloaded(self, fresh: Config) -> None:
        self.config = fresh
        self.runtime.reloaded(True)

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None or isinstance(exc, KeyboardInterrupt):
            self.runtime.stopping()
            self.runtime.close()
        else:
            self.runtime.close(clean=False, why=describe_error(exc))
