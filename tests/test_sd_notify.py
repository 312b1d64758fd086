"""sd_notify and the service runtime, against a real AF_UNIX datagram socket standing in for systemd's."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from moodspeaker.adapters.sd_notify import SystemdNotifier
from moodspeaker.app.lifecycle import ControlSignals, ServiceRuntime
from moodspeaker.cli import main
from moodspeaker.config import ServiceConfig
from moodspeaker.model_card import sha256_file

REPO = Path(__file__).resolve().parents[1]
MOODSPEAKER = str(Path(sys.executable).with_name("moodspeaker"))


class NotifySocket:
    """The manager's end: a bound datagram socket; `messages()` returns what arrived, as dicts."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.0)

    def messages(self) -> list[dict[str, str]]:
        out = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return out
            out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))

    def wait_for(self, key: str, value: str | None = None, timeout: float = 30.0) -> list[dict[str, str]]:
        """All messages up to and including the first with `key` (= `value`)."""
        seen: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen += self.messages()
            if any(key in m and (value is None or m[key] == value) for m in seen):
                return seen
            time.sleep(0.02)
        raise AssertionError(f"no {key}={value} within {timeout} s; got {seen}")


@pytest.fixture()
def manager() -> Iterator[tuple[NotifySocket, str]]:
    folder = tempfile.mkdtemp(prefix="notify-", dir="/tmp")  # AF_UNIX paths must stay short
    path = os.path.join(folder, "notify.sock")
    sock = NotifySocket(path)
    yield sock, path
    sock.sock.close()
    os.unlink(path)
    os.rmdir(folder)


def test_without_notify_socket_nothing_is_sent(manager):
    sock, _ = manager
    notifier = SystemdNotifier({})
    notifier.ready("hello")
    notifier.watchdog()
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert sock.messages() == []


def test_messages_reach_a_filesystem_socket(manager):
    sock, path = manager
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
    assert notifier.watchdog_interval == 30.0
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.ready("mood=happy")
    notifier.watchdog()
    notifier.reloading()
    notifier.stopping()
    ready, watchdog, reloading, stopping = sock.messages()
    assert ready == {"READY": "1", "STATUS": "mood=happy"}
    assert watchdog == {"WATCHDOG": "1"} and stopping == {"STOPPING": "1"}
    assert reloading["RELOADING"] == "1"
    assert before <= int(reloading["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def test_messages_reach_an_abstract_socket():
    name = f"moodspeaker-test-{uuid.uuid4().hex}"
    sock = NotifySocket(b"\0" + name.encode())
    try:
        SystemdNotifier({"NOTIFY_SOCKET": f"@{name}"}).ready()
        assert sock.messages() == [{"READY": "1"}]
    finally:
        sock.sock.close()


def test_watchdog_meant_for_another_process_is_ignored(manager):
    sock, path = manager
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
    notifier.watchdog()
    assert notifier.watchdog_interval is None and sock.messages() == []


def test_a_vanished_manager_does_not_stop_the_daemon(tmp_path):
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    notifier.ready()  # logs once, raises nothing
    notifier.status("still here")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _runtime(path: str, runtime_dir: Path, clock: Clock) -> ServiceRuntime:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"})
    return ServiceRuntime("vision", ServiceConfig(runtime_dir=str(runtime_dir), status_interval=1.0), notifier,
                          clock=clock)


def test_runtime_pings_the_watchdog_every_iteration_and_rate_limits_status(manager, tmp_path):
    sock, path = manager
    clock = Clock()
    runtime = _runtime(path, tmp_path, clock)
    runtime.iteration({"mood": "happy", "confidence": 0.8123, "fps": 5.0})
    assert sock.messages() == [{"WATCHDOG": "1"}, {"READY": "1", "STATUS": "mood=happy confidence=0.81 fps=5.00"}]
    for _ in range(3):
        clock.t += 0.2
        runtime.iteration({"mood": "sad", "confidence": 0.7, "fps": 5.0})
    assert sock.messages() == [{"WATCHDOG": "1"}] * 3  # STATUS waits for the interval
    clock.t += 1.0
    runtime.iteration({"mood": "sad", "confidence": 0.7, "fps": 5.0})
    assert sock.messages() == [{"WATCHDOG": "1"}, {"STATUS": "mood=sad confidence=0.70 fps=5.00"}]
    state = json.loads((tmp_path / "vision.json").read_text())
    assert state["status"] == {"mood": "sad", "confidence": 0.7, "fps": 5.0} and state["pid"] == os.getpid()
    assert state["phase"] == "running"


def test_failed_reload_keeps_running_and_says_why_until_a_reload_succeeds(manager, tmp_path):
    sock, path = manager
    clock = Clock()
    runtime = _runtime(path, tmp_path, clock)
    runtime.iteration({"mood": "happy"})
    sock.messages()
    runtime.reloading()
    runtime.reloaded(False, "config.toml [camera].fps: expected a number")
    reloading, ready = sock.messages()
    assert reloading["RELOADING"] == "1" and "MONOTONIC_USEC" in reloading
    assert ready["READY"] == "1"
    assert ready["STATUS"] == "reload failed, kept previous: config.toml [camera].fps: expected a number; mood=happy"
    state = json.loads((tmp_path / "vision.json").read_text())
    assert state["reload_error"] == "config.toml [camera].fps: expected a number"
    assert state["last_error"].startswith("reload failed")
    runtime.reloading()
    runtime.reloaded(True)
    assert sock.messages()[-1] == {"READY": "1", "STATUS": "mood=happy"}
    runtime.stopping()
    assert sock.messages() == [{"STOPPING": "1"}]
    runtime.close()
    assert not (tmp_path / "vision.json").exists()


def test_signals_become_flags_and_callbacks():
    calls: list[str] = []
    previous = signal.getsignal(signal.SIGHUP)
    with ControlSignals(on_stop=lambda: calls.append("stop"), on_reload=lambda: calls.append("reload")) as signals:
        os.kill(os.getpid(), signal.SIGHUP)
        assert signals.reload.wait(5)  # set by the signals thread, not inside the handler
        assert signals.take_reload() and not signals.take_reload()
        assert not signals.stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.stop.wait(5)
        assert threading.current_thread().name not in ("signals",) and "signals" in [t.name for t in threading.enumerate()]
    assert calls == ["reload", "stop"]
    assert signal.getsignal(signal.SIGHUP) is previous
    assert "signals" not in [t.name for t in threading.enumerate()]  # the dispatcher ended with the context


def _start_daemon(command: str, config: Path, notify_path: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "20000000"}
    return subprocess.Popen([MOODSPEAKER, command, "--config", str(config)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.kill()
    return proc.communicate(timeout=10)[0]


def test_player_daemon_speaks_the_notify_protocol(manager, tmp_path, mpd_server):
    sock, path = manager
    config = tmp_path / "config.toml"
    good = (f'[mpd]\nhost = "{mpd_server.host}"\nport = {mpd_server.port}\n'
            f'[mood_socket]\npath = "{tmp_path / "mood.sock"}"\n'
            f'[service]\nruntime_dir = "{tmp_path}"\nstatus_interval = 0.2\n'
            f'[feedback]\npath = "{tmp_path / "feedback.db"}"\n[buttons]\nenabled = false\n')
    config.write_text(good)
    proc = _start_daemon("player", config, path)
    try:
        first = sock.wait_for("READY", "1")
        assert first[0] == {"WATCHDOG": "1"}  # READY=1 comes after the first completed iteration
        assert "backend=mpd" in next(m for m in first if "READY" in m)["STATUS"]
        sock.wait_for("WATCHDOG")
        assert json.loads((tmp_path / "player.json").read_text())["pid"] == proc.pid

        proc.send_signal(signal.SIGHUP)
        reload = sock.wait_for("READY", "1")
        reloading = next(m for m in reload if "RELOADING" in m)
        assert int(reloading["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert reload.index(reloading) < next(i for i, m in enumerate(reload) if "READY" in m)

        state = json.loads((tmp_path / "player.json").read_text())
        assert state["reloads"] == 1 and state["last_reload"]["ok"] is True  # what `moodspeaker reload` waits for

        config.write_text(good + "[player]\nbackend = \"tidal\"\n")
        proc.send_signal(signal.SIGHUP)
        failed = next(m for m in sock.wait_for("READY", "1") if "READY" in m)
        assert failed["STATUS"].startswith("reload failed, kept previous:") and "tidal" in failed["STATUS"]
        sock.wait_for("WATCHDOG")  # still serving with the old config
        assert proc.poll() is None

        # a feedback database that cannot be opened: before, the player exited 2; now it keeps the old one
        config.write_text(good.replace(str(tmp_path / "feedback.db"), "/proc/no-such-dir/feedback.db"))
        proc.send_signal(signal.SIGHUP)
        failed = next(m for m in sock.wait_for("READY", "1") if "READY" in m)
        assert failed["STATUS"].startswith("reload failed, kept previous:") and "feedback" in failed["STATUS"]
        sock.wait_for("WATCHDOG")
        state = json.loads((tmp_path / "player.json").read_text())
        assert state["reloads"] == 3 and state["last_reload"]["ok"] is False and "feedback" in state["reload_error"]
        assert state["last_error"].startswith("reload failed")

        config.write_text(good)  # fixed: a good reload clears the error from status
        proc.send_signal(signal.SIGHUP)
        sock.wait_for("READY", "1")
        deadline = time.monotonic() + 5  # READY comes first; the state file follows at its next write
        while (state := json.loads((tmp_path / "player.json").read_text()))["reloads"] < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state["reloads"] == 4 and state["last_reload"]["ok"] is True
        assert state["reload_error"] is None and state["last_error"] is None and state["errors"] == {}

        proc.send_signal(signal.SIGTERM)
        sock.wait_for("STOPPING", "1")
        assert proc.wait(timeout=15) == 0
        assert not (tmp_path / "player.json").exists()
    finally:
        output = _stop(proc)
    assert "reload failed" in output


def test_a_restarted_player_keeps_privacy_mode_on(manager, tmp_path, mpd_server):
    """Before, the player cleared the privacy flag when it started: a crash or `systemctl restart` turned the
    camera back on behind the owner's back."""
    from moodspeaker.adapters.privacy_flag import PrivacyFlag

    sock, path = manager
    config = tmp_path / "config.toml"
    config.write_text(f'[mpd]\nhost = "{mpd_server.host}"\nport = {mpd_server.port}\n'
                      f'[mood_socket]\npath = "{tmp_path / "mood.sock"}"\n'
                      f'[service]\nruntime_dir = "{tmp_path}"\nstatus_interval = 0.2\n'
                      f'[feedback]\npath = "{tmp_path / "feedback.db"}"\n[buttons]\nenabled = false\n')
    PrivacyFlag(tmp_path).set(True)  # left by the player that ran before
    proc = _start_daemon("player", config, path)
    try:
        sock.wait_for("READY", "1")
        deadline = time.monotonic() + 10  # the flag is polled once a second
        while not (state := json.loads((tmp_path / "player.json").read_text()))["status"].get("privacy") \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert state["status"]["privacy"] is True
        assert PrivacyFlag(tmp_path).is_on()
    finally:
        _stop(proc)


def test_vision_daemon_speaks_the_notify_protocol(manager, tmp_path, shipped_model, capsys):
    sock, path = manager
    with np.load(REPO / "tests" / "fixtures" / "fullframe_tiny.npz") as d:
        np.savez(tmp_path / "frames.npz", images=np.concatenate([d["images"]] * 20))  # 300 frames, 30 s at 10 fps
    config = tmp_path / "config.toml"
    good = (f'[model]\npath = "{shipped_model}"\n[camera]\nfps = 10.0\n'
            f'[mood_socket]\npath = "{tmp_path / "mood.sock"}"\n'
            f'[service]\nruntime_dir = "{tmp_path}"\nstatus_interval = 0.2\n')
    config.write_text(good)
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000"}
    proc = subprocess.Popen([MOODSPEAKER, "vision", "--config", str(config), "--source", str(tmp_path / "frames.npz")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = sock.wait_for("READY", "1")
        assert first[0] == {"WATCHDOG": "1"}
        assert f"model_path={shipped_model}" in next(m for m in first if "READY" in m)["STATUS"]
        pings = [m for m in sock.wait_for("WATCHDOG") + sock.wait_for("WATCHDOG") if "WATCHDOG" in m]
        assert len(pings) >= 2  # one per analysed frame
        deadline = time.monotonic() + 10
        while True:  # the state file is rewritten every status_interval; the first one has no fps yet
            assert main(["status", "--json", "--runtime-dir", str(tmp_path)]) == 1  # the player is not running
            report = json.loads(capsys.readouterr().out)
            if report["fps"] > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert report["services"]["vision"]["state"] == "running"
        assert report["model"]["sha256"] == sha256_file(shipped_model) and report["fps"] > 0

        proc.send_signal(signal.SIGHUP)
        reload = sock.wait_for("READY", "1")
        reloading = next(i for i, m in enumerate(reload) if "RELOADING" in m)
        assert "MONOTONIC_USEC" in reload[reloading] and reloading < next(i for i, m in enumerate(reload) if "READY" in m)

        config.write_text(good.replace(str(shipped_model), str(tmp_path / "missing.tflite")))
        proc.send_signal(signal.SIGHUP)
        failed = next(m for m in sock.wait_for("READY", "1") if "READY" in m)
        assert failed["STATUS"].startswith("reload failed, kept previous:")
        assert "missing.tflite: model file not found" in failed["STATUS"]
        sock.wait_for("WATCHDOG")  # still analysing frames with the old model
        assert proc.poll() is None

        proc.send_signal(signal.SIGTERM)
        sock.wait_for("STOPPING", "1")
        assert proc.wait(timeout=15) == 0
        assert not (tmp_path / "vision.json").exists()
    finally:
        _stop(proc)
