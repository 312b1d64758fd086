"""The package's boundaries (DESIGN.md): a pure core, Protocols-only ports, no development tool in a daemon,
and one error tree that `cli.main` turns into one line and an exit code."""

from __future__ import annotations

import ast
import inspect
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

import pytest

import moodspeaker.ports
from moodspeaker import cli
from moodspeaker.errors import EXIT_BUG, EXIT_MODEL, EXIT_OWNER

PACKAGE = Path(moodspeaker.ports.__file__).parent
FIXTURES = Path(__file__).parent / "fixtures"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_core_imports_nothing_outside_core() -> None:
    allowed_outside = set(sys.stdlib_module_names) | {"numpy"}
    for path in sorted((PACKAGE / "core").glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            assert name.startswith("moodspeaker.core") or (top != "moodspeaker" and top in allowed_outside), \
                f"{path.name} imports {name}"


def test_ports_holds_only_protocols() -> None:
    defined = [obj for _, obj in inspect.getmembers(moodspeaker.ports, inspect.isclass)
               if obj.__module__ == moodspeaker.ports.__name__]
    assert defined
    assert all(Protocol in obj.__mro__[1:] or getattr(obj, "_is_protocol", False) for obj in defined), defined


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Run under atexit, so it sees everything the daemon imported during its whole life.
DEV_MODULES_AT_EXIT = ("import atexit, sys\n"
                       "atexit.register(lambda: print('dev:', sorted(m for m in sys.modules if m.startswith('moodspeaker.dev'))))"
                       "\nfrom moodspeaker.cli import main\n")


def test_the_daemons_load_no_development_tool(shipped_model: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\npath = "{shipped_model}"\n[mood_socket]\npath = "{tmp_path / "mood.sock"}"\n'
                      f'[service]\nruntime_dir = "{tmp_path}"\n[buttons]\nenabled = false\n'
                      f'[mpd]\nhost = "127.0.0.1"\nport = {_free_port()}\n'  # nobody listens: the player retries
                      f'[feedback]\npath = "{tmp_path / "feedback.db"}"\n')
    vision = subprocess.run([sys.executable, "-c", DEV_MODULES_AT_EXIT + f"sys.exit(main(['vision', '--config', {str(config)!r}, "
                             f"'--source', {str(FIXTURES / 'fullframe_tiny.npz')!r}]))"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert vision.returncode == 0, vision.stderr
    assert vision.stdout.strip().splitlines()[-1] == "dev: []"
    code = DEV_MODULES_AT_EXIT + f"sys.exit(main(['player', '--config', {str(config)!r}]))"
    player = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "player.json").exists() and time.monotonic() < deadline and player.poll() is None:
            time.sleep(0.05)
        started = (tmp_path / "player.json").exists()
        player.send_signal(signal.SIGTERM)
        try:
            out, err = player.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            player.kill()
            out, err = player.communicate()
            pytest.fail(f"the player did not stop on SIGTERM (state file written: {started}):\n{err[-3000:]}")
    finally:
        if player.poll() is None:
            player.kill()
            player.communicate()
    assert player.returncode == 0, err
    assert out.strip().splitlines()[-1] == "dev: []"


def test_a_config_mistake_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[player]\nbackend = \"mpdd\"\n")
    assert cli.main(["player", "--config", str(config)]) == EXIT_OWNER
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("moodspeaker player: ") and "'mpd'" in err


def test_a_spotify_backend_without_client_id_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """This used to escape as a traceback with exit 1."""
    config = tmp_path / "config.toml"
    config.write_text('[player]\nbackend = "spotify"\n')
    assert cli.main(["player", "--config", str(config)]) == EXIT_OWNER
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[spotify].client_id" in err and "Traceback" not in err


def test_a_model_problem_is_one_line_and_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\npath = "{tmp_path / "missing.tflite"}"\n[service]\nruntime_dir = "{tmp_path}"\n'
                      f'[mood_socket]\npath = "{tmp_path / "mood.sock"}"\n')
    assert cli.main(["vision", "--config", str(config), "--source", str(FIXTURES / "fullframe_tiny.npz")]) == EXIT_MODEL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("moodspeaker vision: ")
    assert "missing.tflite: model file not found" in err  # the .tflite is named before its missing card


def test_a_bug_is_exit_1_with_the_traceback_only_under_verbose(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    import moodspeaker.commands.status as status_command

    def broken(_args: object) -> int:
        return {}["no such key"]

    monkeypatch.setattr(status_command, "_run", broken)
    assert cli.main(["status"]) == EXIT_BUG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "KeyError" in err and "Traceback" not in err
    assert cli.main(["-v", "status"]) == EXIT_BUG
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_the_bench_clip_is_package_data_so_bench_runs_from_an_installed_package() -> None:
    import tomllib

    from moodspeaker.dev.demo_clip import DEFAULT_TRUTH, load_clip_truth

    truth = load_clip_truth(DEFAULT_TRUTH)
    shipped = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for path in (DEFAULT_TRUTH, truth.video):
        assert path.relative_to(PACKAGE).as_posix() in shipped["moodspeaker"]
