"""`moodspeaker reload vision|player` (the units' ExecReload=) against a real daemon process: a real SIGHUP, the
real ServiceRuntime state file. It returns only after the rebuild, and fails with the reason when it failed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

MOODSPEAKER = str(Path(sys.executable).with_name("moodspeaker"))

# A daemon that rebuilds on SIGHUP, holding the rebuild while the file `hold` exists; the rebuild fails while the
# file `broken` exists, naming its content, and the daemon aborts in it (as LiteRT did on a corrupt model) while
# the file `crash` exists.
DAEMON = textwrap.dedent("""
    import os, signal, sys, threading, time
    from pathlib import Path
    from moodspeaker.config import ServiceConfig
    from moodspeaker.app.lifecycle import ServiceRuntime

    runtime_dir = Path(sys.argv[1])
    runtime = ServiceRuntime("vision", ServiceConfig(runtime_dir=str(runtime_dir)))
    hup = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: hup.set())
    runtime.ready()
    while True:
        if hup.wait(0.05):
            hup.clear()
            runtime.reloading()
            while (runtime_dir / "hold").exists():
                time.sleep(0.01)
            if (runtime_dir / "crash").exists():
                os.abort()
            broken = runtime_dir / "broken"
            runtime.reloaded(not broken.exists(), broken.read_text() if broken.exists() else "")
""")


@pytest.fixture()
def daemon(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-c", DAEMON, str(tmp_path)])
    deadline = time.monotonic() + 20
    while not (tmp_path / "vision.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the test daemon did not start"
        time.sleep(0.05)
    yield proc
    proc.kill()
    proc.wait()


def _reload(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MOODSPEAKER, "reload", "vision", "--runtime-dir", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=60)


def test_reload_waits_for_the_rebuild_and_succeeds(daemon, tmp_path: Path) -> None:
    (tmp_path / "hold").touch()
    reload = subprocess.Popen([MOODSPEAKER, "reload", "vision", "--runtime-dir", str(tmp_path), "--pid", str(daemon.pid)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while '"phase":"reloading"' not in (tmp_path / "vision.json").read_text():
            assert time.monotonic() < deadline, "the daemon did not start reloading"
            time.sleep(0.05)
        assert reload.poll() is None  # the daemon holds its rebuild: `reload` must still be waiting for it
        (tmp_path / "hold").unlink()
        out, err = reload.communicate(timeout=60)
    finally:
        if reload.poll() is None:
            reload.kill()
    assert reload.returncode == 0, err
    assert "reloaded" in out


def test_a_failed_reload_fails_with_the_reason_and_a_good_one_clears_it(daemon, tmp_path: Path) -> None:
    (tmp_path / "broken").write_text("config.toml: [camera] fps: must be between 0.5 and 60")
    out = _reload(tmp_path)
    assert out.returncode == 1
    assert "reload failed" in out.stderr and "fps: must be between" in out.stderr
    (tmp_path / "broken").unlink()
    out = _reload(tmp_path)
    assert out.returncode == 0, out.stderr
    assert '"reload_error":null' in (tmp_path / "vision.json").read_text()


def test_reload_of_a_daemon_that_is_not_running_says_so(tmp_path: Path) -> None:
    out = _reload(tmp_path)
    assert out.returncode == 1 and "no state file" in out.stderr
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "vision.json").write_text(f'{{"pid": {proc.stdout.strip()}, "reloads": 0}}')
    out = _reload(tmp_path, "--pid", proc.stdout.strip())
    assert out.returncode == 1 and "not running" in out.stderr


def test_case1_reload_says_at_once_when_the_daemon_dies_in_the_rebuild(daemon, tmp_path: Path) -> None:
    (tmp_path / "crash").touch()
    started = time.monotonic()
    out = _reload(tmp_path, "--timeout", "60")
    assert out.returncode == 1 and "died while reloading" in out.stderr, out.stderr
    assert time.monotonic() - started < 30  # not the full timeout: it noticed the death
