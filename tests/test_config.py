"""The config file: defaults, and bad input rejected with the file, the key and a suggestion."""

from __future__ import annotations

import pytest

from moodspeaker.config import Config, load_config, parse_config
from moodspeaker.errors import ConfigError


def test_empty_file_is_all_defaults(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("")
    assert load_config(path) == Config()


def test_values_are_parsed_into_sections():
    config = parse_config('[model]\nthreads = 2\npath = "/tmp/m.tflite"\n')
    assert config.model.threads == 2 and config.model.path == "/tmp/m.tflite"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[modle]\n", "unknown section [modle]; did you mean 'model'?"),
        ("[model]\nthread = 2\n", "[model]: unknown key 'thread'; did you mean 'threads'?"),
        ('[model]\nthreads = "two"\n', "[model].threads: expected a whole number, got 'two'"),
        ("[model]\nthreads = true\n", "[model].threads: expected a whole number"),
        ("[model\n", "not valid TOML"),
    ],
)
def test_bad_config_names_file_key_and_fix(tmp_path, text, expected):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize("uri", ["http://localhost:8888/callback", "https://example.org/callback",
                                 "http://127.0.0.1/callback", "http://192.168.1.5:8888/cb"])
def test_spotify_redirect_uri_must_be_a_loopback_ip_with_a_port(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"\[spotify\].*loopback IP address.*http://127\.0\.0\.1:8888/callback"):
        parse_config(f'[spotify]\nredirect_uri = "{uri}"\n')


def test_spotify_loopback_redirect_uris_are_accepted() -> None:
    for uri in ("http://127.0.0.1:8888/callback", "http://[::1]:43019/moodspeaker"):
        assert parse_config(f'[spotify]\nredirect_uri = "{uri}"\n').spotify.redirect_uri == uri
