"""`moodspeaker run` as the other commands and systemd see it: the player's and vision's state files, the privacy
flag and volume requests in the runtime folder, sd_notify through a real socket; a `--source` file that a reload
or privacy pause does not start over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
from test_sd_notify import MOODSPEAKER, REPO, manager  # noqa: F401  (the notify socket fixture)

from moodspeaker.adapters.npz_source import StoredFrameSource
from moodspeaker.app.run import ResumingSource
from moodspeaker.cli import main


def _state(runtime: Path, name: str) -> dict:
    try:
        return json.loads((runtime / f"{name}.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet
        return {}


def _until(condition, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def test_run_is_the_player_and_vision_to_the_cli_and_speaks_sd_notify(manager, tmp_path, mpd_server,  # noqa: F811
                                                                       shipped_model, capsys) -> None:
    """Before, `run` wrote no state file and sent no READY or WATCHDOG: `status` and `volume` said the player was
    not running, `privacy on` never reached it, and under systemd it would have been killed for no READY."""
    sock, path = manager
    with np.load(REPO / "tests" / "fixtures" / "fullframe_tiny.npz") as d:
        np.savez(tmp_path / "frames.npz", images=np.concatenate([d["images"]] * 40))  # 600 frames, 60 s at 10 fps
    runtime = tmp_path / "run"
    config = tmp_path / "config.toml"
    config.write_text(f'[mpd]\nhost = "{mpd_server.host}"\nport = {mpd_server.port}\n'
                      f'[service]\nruntime_dir = "{runtime}"\nstatus_interval = 0.2\n'
                      f'[feedback]\npath = "{tmp_path / "feedback.db"}"\n[buttons]\nenabled = false\n'
                      f'[model]\npath = "{shipped_model}"\n[camera]\nfps = 10.0\n')
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000"}
    proc = subprocess.Popen([MOODSPEAKER, "run", "--config", str(config), "--source", str(tmp_path / "frames.npz")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    heard: list[dict[str, str]] = []
    done = threading.Event()

    def drain() -> None:  # as systemd does: a full socket queue (10 datagrams) would block the sender
        while not done.wait(0.02):
            heard.extend(sock.messages())

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    try:
        _until(lambda: any("READY" in m for m in heard), what="READY=1")
        first = list(heard)
        assert first[0] == {"WATCHDOG": "1"}  # from the player's loop, after its first iteration
        assert "backend=mpd" in next(m for m in first if "READY" in m)["STATUS"]
        _until(lambda: sum("WATCHDOG" in m for m in heard) >= 3, what="watchdog pings")
        _until(lambda: _state(runtime, "vision").get("status", {}).get("state") == "running", what="vision's state")
        capsys.readouterr()
        assert main(["status", "--json", "--config", str(config)]) == 0
        report = json.loads(capsys.readouterr().out)
        assert {name: s["state"] for name, s in report["services"].items()} == {"vision": "running", "player": "running"}
        assert report["services"]["player"]["pid"] == proc.pid == report["services"]["vision"]["pid"]

        assert main(["privacy", "on", "--config", str(config)]) == 0  # the flag the player follows
        _until(lambda: _state(runtime, "player").get("status", {}).get("privacy") is True, what="privacy in the player")
        _until(lambda: _state(runtime, "vision").get("status", {}).get("privacy") is True, what="the camera paused")
        capsys.readouterr()
        assert main(["privacy", "status", "--config", str(config)]) == 0
        assert capsys.readouterr().out.startswith("privacy on")

        assert main(["volume", "30", "--config", str(config)]) == 0
        assert capsys.readouterr().out.strip() == "volume 30"

        assert main(["privacy", "off", "--config", str(config)]) == 0
        _until(lambda: _state(runtime, "vision").get("status", {}).get("state") == "running", what="the camera back")

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        done.set()
        drainer.join()
        heard.extend(sock.messages())
        assert heard[-1] == {"STOPPING": "1"}
        assert not (runtime / "player.json").exists() and not (runtime / "vision.json").exists()  # a clean stop
    finally:
        done.set()
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate(timeout=10)[0]
        print(output)  # shown when the test fails
    assert "Traceback" not in output, output


def test_run_refuses_to_start_beside_the_daemons(tmp_path, capsys) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    (runtime / "player.json").write_text(json.dumps({"service": "player", "pid": os.getpid(), "phase": "running",
                                                     "started_at": time.time(), "updated_at": time.time()}))
    config = tmp_path / "config.toml"
    config.write_text(f'[service]\nruntime_dir = "{runtime}"\n')
    clip = tmp_path / "frames.npz"
    np.savez(clip, images=np.zeros((2, 48, 48), np.uint8))
    assert main(["run", "--config", str(config), "--source", str(clip)]) == 2
    assert "the player daemon is running" in capsys.readouterr().err


def test_a_source_file_goes_on_where_it_was_after_a_reload_or_pause(tmp_path) -> None:
    """The vision loop closes its source at each reload and privacy pause and opens it again: a `--source` clip
    used to start over at every SIGHUP."""
    images = np.arange(6, dtype=np.uint8)[:, None, None] * np.ones((1, 8, 8), np.uint8)  # frame i is all i
    np.savez(tmp_path / "frames.npz", images=images)
    opened: list[StoredFrameSource] = []

    def open_file() -> StoredFrameSource:
        opened.append(StoredFrameSource(tmp_path / "frames.npz", fps=10.0))
        return opened[-1]

    source = ResumingSource(open_file)
    seen = []
    for stream in range(3):  # what VisionService._stream does: open, some frames, interrupted, close
        opened_source = source.open()
        for frame in opened_source.frames():
            seen.append(int(frame.gray[0, 0]))
            if len(seen) == 2 * (stream + 1):
                break
        opened_source.close()
    assert seen == [0, 1, 2, 3, 4, 5] and len(opened) == 1  # one clip, read once through
    assert list(source.open().frames()) == []  # it ended ...
    assert [int(f.gray[0, 0]) for f in source.open().frames()][:2] == [0, 1] and len(opened) == 2  # ... then anew
    source.release()
