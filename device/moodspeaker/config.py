"""The appliance's one TOML config file, parsed into frozen dataclasses.

Every section is a dataclass below; every key has a default, so an empty file is a valid config.
Unknown sections/keys and bad values are rejected with the file, the key and a suggestion.
To add a setting: add a field to its section's dataclass (with a default and a comment).
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_PATH = Path("/etc/moodspeaker/config.toml")


class ConfigError(ValueError):
    """A bad config; the message names the file and key and says what to do."""


@dataclass(frozen=True)
class ModelConfig:
    path: str = ""  # .tflite with its .json card beside it; empty = the installed/checkout default
    threads: int = 1  # LiteRT threads


@dataclass(frozen=True)
class MoodSocketConfig:
    path: str = "/run/moodspeaker/mood.sock"  # unix datagram socket: vision -> player


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    mood_socket: MoodSocketConfig = field(default_factory=MoodSocketConfig)
    source: Path | None = field(default=None, compare=False)


def _suggest(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(options))}"


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against a field type: bool, int, float, str, Literal, tuple[X, ...], dict[str, X]."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}{_suggest(str(value), map(str, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for alt in args:
            if alt is type(None) and value is None:
                return None
            try:
                return _coerce(value, alt, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"config field type {tp!r} is not supported")


def parse_section(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build section dataclass `cls` from a TOML table, rejecting unknown keys and bad values."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a [table]")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r}{_suggest(key, names)}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config) if f.name != "source"}


def parse_config(text: str, source: Path | None = None) -> Config:
    name = str(source) if source else "<config>"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from None
    sections = _sections()
    parsed = {}
    for key, table in raw.items():
        if key not in sections:
            raise ConfigError(f"{name}: unknown section [{key}]{_suggest(key, sections)}")
        parsed[key] = parse_section(sections[key], table, f"{name} [{key}]")
    return Config(**parsed, source=source)


def load_config(path: Path | None) -> Config:
    """Read the config file; a missing default file means all defaults, a missing explicit file is an error."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return Config()
        path = DEFAULT_CONFIG_PATH
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file; copy the template from systemd/config.toml.example") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_config(text, path)
