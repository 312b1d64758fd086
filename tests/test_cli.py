"""The command line as the owner meets it: every command explains itself, privacy over SSH, the model in use."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from moodspeaker.adapters.privacy_flag import PrivacyFlag
from moodspeaker.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.append((f"{prefix}{name}", child))
                found += _commands(child, f"{prefix}{name} ")
    return found


def test_every_command_and_subcommand_has_a_description_line() -> None:
    commands = _commands(build_parser())
    assert {"eval", "bench", "privacy", "model list", "status"} <= {name for name, _ in commands}
    missing = [name for name, parser in commands if not parser.description]
    assert not missing, f"no description in --help: {missing}"


def test_privacy_on_off_status_writes_the_flag_the_daemons_follow(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    flag = PrivacyFlag(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(f'[service]\nruntime_dir = "{tmp_path}"\n')
    assert main(["privacy", "status", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("privacy off")
    assert main(["privacy", "on", "--config", str(config)]) == 0
    assert flag.is_on() and capsys.readouterr().out.startswith("privacy on: camera off")
    assert main(["privacy", "off", "--runtime-dir", str(tmp_path), "--config", str(config)]) == 0
    assert not flag.is_on() and capsys.readouterr().out.startswith("privacy off")


def test_model_list_without_installed_models_names_the_model_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    shipped_model: Path) -> None:
    monkeypatch.setenv("MOODSPEAKER_MODELS", str(shipped_model.parent))
    assert main(["model", "list", "--models-dir", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    name = json.loads(shipped_model.with_suffix(".json").read_text())["name"]
    assert f"runs {shipped_model}" in out and "in use" in out and name in out
