"""`moodspeaker status` reading the state files that the daemons' ServiceRuntime writes."""

from __future__ import annotations

import json
import subprocess
import sys

from moodspeaker.adapters.sd_notify import SystemdNotifier
from moodspeaker.adapters.state_file import write_state
from moodspeaker.app.lifecycle import ServiceRuntime
from moodspeaker.cli import main
from moodspeaker.commands.status import gather
from moodspeaker.config import Config, ServiceConfig
from moodspeaker.model_card import card_path_for, load_card


def _runtimes(tmp_path, model, face="ok"):
    config = ServiceConfig(runtime_dir=str(tmp_path))
    vision = ServiceRuntime("vision", config, SystemdNotifier({}))
    player = ServiceRuntime("player", config, SystemdNotifier({}))
    vision.iteration({"mood": "happy", "confidence": 0.82, "face": face, "fps": 4.9, "model_path": str(model),
                      "privacy": False})
    player.iteration({"mood": "happy", "confidence": 0.82, "backend": "mpd", "track": "Artist - Title",
                      "privacy": False, "last_error": ""})
    return vision, player


def test_status_json_reports_both_daemons_mood_model_and_player(tmp_path, shipped_model, capsys):
    _runtimes(tmp_path, shipped_model)
    assert main(["status", "--json", "--runtime-dir", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    card = load_card(card_path_for(shipped_model))
    assert (report["mood"], report["confidence"], report["fps"]) == ("happy", 0.82, 4.9)
    assert report["model"]["sha256"] == card.sha256 and report["model"]["val_accuracy"] == card.val_accuracy
    assert (report["backend"], report["track"], report["privacy"], report["last_error"]) == ("mpd", "Artist - Title",
                                                                                             False, None)
    assert {name: s["state"] for name, s in report["services"].items()} == {"vision": "running", "player": "running"}
    assert all(0 <= uptime < 60 for uptime in report["uptime_s"].values())


def test_status_text_is_one_line_per_fact(tmp_path, shipped_model, capsys):
    _runtimes(tmp_path, shipped_model)
    assert main(["status", "--runtime-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("vision  running for 0m") and lines[1].startswith("player  running for 0m")
    assert "mood    happy (0.82), 4.9 fps" in lines
    assert any(line.startswith(f"model   {load_card(card_path_for(shipped_model)).sha256[:12]}") for line in lines)
    assert "player  mpd: Artist - Title" in lines and "privacy off" in lines and "error   none" in lines


def test_failed_reload_and_latest_error_are_shown(tmp_path, shipped_model, capsys):
    vision, player = _runtimes(tmp_path, shipped_model)
    player.error("mpd: connection refused")
    vision.reloading()
    vision.reloaded(False, "config.toml [camera]: unknown key 'fsp'")
    report = gather(Config(), tmp_path)
    assert report["last_error"] == "vision: reload failed: config.toml [camera]: unknown key 'fsp'"
    assert report["services"]["vision"]["reload_error"] == "config.toml [camera]: unknown key 'fsp'"
    main(["status", "--runtime-dir", str(tmp_path)])
    assert "last reload failed, still on the previous config" in capsys.readouterr().out


def test_stopped_crashed_and_stuck_daemons(tmp_path, shipped_model):
    vision, _ = _runtimes(tmp_path, shipped_model)
    vision.close()  # a clean stop removes the state file
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    state = json.loads((tmp_path / "player.json").read_text())
    write_state(tmp_path / "player.json", {**state, "pid": int(dead.stdout)})
    report = gather(Config(), tmp_path)
    assert report["services"]["vision"]["state"] == "stopped" and report["services"]["player"]["state"] == "crashed"
    write_state(tmp_path / "player.json", state)
    later = state["updated_at"] + 60
    assert gather(Config(), tmp_path, now=later)["services"]["player"]["state"] == "stuck"
    assert main(["status", "--runtime-dir", str(tmp_path)]) == 1


def test_a_corrupt_state_file_is_reported_not_fatal(tmp_path, shipped_model):
    (tmp_path / "vision.json").write_text("{not json")
    report = gather(Config(), tmp_path)
    assert report["services"]["vision"]["state"] == "unreadable" and "vision.json" in report["services"]["vision"]["error"]


def test_a_broken_config_does_not_stop_status_it_says_why(tmp_path, shipped_model, capsys):
    _runtimes(tmp_path, shipped_model)
    config = tmp_path / "config.toml"
    config.write_text("[camera]\nfsp = 5\n")
    assert main(["status", "--config", str(config), "--runtime-dir", str(tmp_path)]) == 1  # before: exit 2, nothing shown
    out = capsys.readouterr().out
    assert "vision  running" in out and "config  broken" in out and "unknown key 'fsp'" in out


def test_a_non_utf8_state_file_is_reported_not_a_traceback(tmp_path, shipped_model):
    (tmp_path / "vision.json").write_bytes(b'{"service": "vision\xff\xfe"}')
    report = gather(Config(), tmp_path)
    assert report["services"]["vision"]["state"] == "unreadable" and "vision.json" in report["services"]["vision"]["error"]


def test_state_files_are_readable_by_the_group_only(tmp_path, shipped_model):
    _runtimes(tmp_path, shipped_model)
    assert (tmp_path / "vision.json").stat().st_mode & 0o777 == 0o640


def test_a_crashed_daemon_is_shown_as_crashed_with_its_reason(tmp_path, shipped_model, capsys):
    from moodspeaker.app.lifecycle import Daemon
    from moodspeaker.errors import SetupError

    config = Config(service=ServiceConfig(runtime_dir=str(tmp_path)))
    try:
        with Daemon("player", config) as daemon:
            daemon.runtime.iteration({"backend": "mpd"})
            raise SetupError("feedback.db: disk I/O error")
    except SetupError:
        pass
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    state = json.loads((tmp_path / "player.json").read_text())  # before: the file was deleted, status said "stopped"
    assert state["phase"] == "failed"
    write_state(tmp_path / "player.json", {**state, "pid": int(dead.stdout)})  # the process is gone
    main(["status", "--runtime-dir", str(tmp_path)])
    assert "player  crashed: feedback.db: disk I/O error" in capsys.readouterr().out


def test_an_error_is_cleared_once_its_source_recovers(tmp_path, shipped_model):
    vision, _ = _runtimes(tmp_path, shipped_model)
    vision.error("camera: vanished", "camera")
    assert gather(Config(), tmp_path)["last_error"] == "vision: camera: vanished"
    vision.clear_error("camera")
    assert gather(Config(), tmp_path)["last_error"] is None  # before: shown forever


def test_status_says_why_the_face_counts_less(tmp_path, shipped_model, capsys):
    _runtimes(tmp_path, shipped_model, face="face too dark")
    assert main(["status", "--runtime-dir", str(tmp_path)]) == 0
    assert "mood    happy (0.82), 4.9 fps; face too dark" in capsys.readouterr().out.splitlines()


def test_status_shows_the_volume_and_the_home_assistant_link(tmp_path, shipped_model, capsys):
    config = ServiceConfig(runtime_dir=str(tmp_path))
    _runtimes(tmp_path, shipped_model)
    player = ServiceRuntime("player", config, SystemdNotifier({}))
    player.iteration({"mood": "happy", "confidence": 0.82, "backend": "mpd", "track": "Artist - Title", "privacy": False,
                      "last_error": "", "volume": 40, "mqtt": "connected to 10.0.0.2:1883 (Home Assistant discovery "
                      "under homeassistant/)"})
    main(["status", "--runtime-dir", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert "player  mpd: Artist - Title, volume 40" in lines
    assert "mqtt    connected to 10.0.0.2:1883 (Home Assistant discovery under homeassistant/)" in lines


def test_status_counts_the_failures_of_the_players_track_watch(tmp_path, shipped_model, capsys):
    _runtimes(tmp_path, shipped_model)
    player = ServiceRuntime("player", ServiceConfig(runtime_dir=str(tmp_path)), SystemdNotifier({}))
    player.iteration({"backend": "mpd", "track": "Artist - Title", "privacy": False, "last_error": "",
                      "watch_failures": 3})
    main(["status", "--runtime-dir", str(tmp_path)])
    assert "player  mpd: Artist - Title, watching for track changes failed 3 times" in capsys.readouterr().out.splitlines()
