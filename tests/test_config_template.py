"""The commented config template that install.sh puts in /etc: complete, valid, and true about the defaults."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

from moodspeaker.cli import main
from moodspeaker.config import Config, parse_config

TEMPLATE = Path(__file__).resolve().parents[1] / "systemd" / "config.toml.example"
COMMENTED_KEY = re.compile(r"^# ([a-z_]+) = ", re.MULTILINE)


def _sections() -> dict[str, list[str]]:
    """Section name -> the keys shown (commented) in the template, in order."""
    shown: dict[str, list[str]] = {}
    for block in re.split(r"^\[", TEMPLATE.read_text(), flags=re.MULTILINE)[1:]:
        name, body = block.split("]", 1)
        assert name not in shown, f"[{name}] appears twice"
        shown[name] = COMMENTED_KEY.findall(body)
    return shown


def test_template_passes_config_check(capsys):
    assert main(["config", "check", str(TEMPLATE)]) == 0
    assert "ok" in capsys.readouterr().out


def test_template_shows_every_section_and_key():
    hints = typing.get_type_hints(Config)
    expected = {f.name: [g.name for g in dataclasses.fields(hints[f.name])]
                for f in dataclasses.fields(Config) if f.name != "source"}
    shown = _sections()
    assert set(shown) == set(expected)
    for name, keys in expected.items():
        assert sorted(shown[name]) == sorted(keys), f"[{name}]"


def test_defaults_shown_in_the_template_are_the_real_defaults(tmp_path):
    uncommented = re.sub(r"^# ([a-z_]+ = )", r"\1", TEMPLATE.read_text(), flags=re.MULTILINE)
    assert parse_config(uncommented) == Config()
    path = tmp_path / "config.toml"
    path.write_text(uncommented)
    assert main(["config", "check", str(path)]) == 0


def test_config_check_names_file_key_and_suggestion(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text("[camera]\nfsp = 3\n")
    assert main(["config", "check", str(path)]) == 2
    assert capsys.readouterr().err.strip() == f"moodspeaker config: {path} [camera]: unknown key 'fsp'; did you mean 'fps'?"
    assert main(["config", "check", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
