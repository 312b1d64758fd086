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


def test_volume_section_gives_the_rules_and_refuses_a_bad_window() -> None:
    config = parse_config('[volume]\nstart = 40\nmaximum = 80\nquiet_hours = ["22:00-07:00"]\nquiet_max = 20\n'
                          'quiet_camera_off = true\n')
    rules = config.volume.rules()
    assert rules.cap(23 * 60) == 20 and rules.cap(12 * 60) == 80 and rules.camera_off(60)
    with pytest.raises(ConfigError, match=r"\[volume\].*'22-7' is not a daily window like \"22:00-07:00\""):
        parse_config('[volume]\nquiet_hours = ["22-7"]\n')
    with pytest.raises(ConfigError, match=r"\[volume\].*volume percentages"):
        parse_config('[volume]\nmaximum = 150\n')


@pytest.mark.parametrize(
    "text, expected",
    [  # each of these used to pass `config check` and then fail (or go silent) in a daemon
        ("[model]\nthreads = 0\n", "[model]: threads must be 1..16, got 0"),
        ("[smoother]\nema_tau_s = nan\n", "[smoother].ema_tau_s: expected a finite number, got nan"),
        ("[camera]\nfps = inf\n", "[camera].fps: expected a finite number, got inf"),
        ('[player]\nplaylists = { hapy = "mood-happy" }\n',
         "[player]: playlists.hapy: no mood plays this key (a typo would leave that mood silent); did you mean 'happy'?"),
        ('[player]\nbackend = "spotify"\n', "[spotify].client_id: the spotify backend ([player] backend) needs"),
    ],
    ids=["threads-0", "nan", "inf", "playlist-typo", "spotify-without-client-id"],
)
def test_values_the_daemons_would_fail_on_are_config_errors(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert expected in str(err.value)


def test_every_problem_in_the_file_is_reported_at_once(tmp_path, capsys) -> None:
    from moodspeaker.cli import main

    path = tmp_path / "config.toml"
    path.write_text('[model]\nthread = 2\n[camera]\nfps = "fast"\nwidth = nan\n[modle]\n[player]\nbackend = "spotify"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert len(err.value.problems) == 5, err.value.problems
    assert main(["config", "check", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "moodspeaker config: 5 problems:"
    expected = ["[model]: unknown key 'thread'", "[camera].fps: expected a number", "[camera].width: expected a whole",
                "unknown section [modle]", "[spotify].client_id: the spotify backend"]
    assert len(lines) == 6 and all(want in line for want, line in zip(expected, lines[1:], strict=True)), lines


def test_a_non_utf8_file_is_a_config_error_not_a_traceback(tmp_path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[mpd]\nhost = "caf\xe9"\n')  # Latin-1
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 17 is b'\\xe9'\); save the file as UTF-8"):
        load_config(path)


def test_library_mode_names_moods_by_their_keys_unless_the_owner_maps_them() -> None:
    from moodspeaker.app.player import policy_from_config

    folders = parse_config('[mpd]\nlibrary = "folders"\n')
    assert policy_from_config(folders).selection_for("happy").playlists == ("happy",)  # moods/happy/, not mood-happy
    mapped = parse_config('[mpd]\nlibrary = "tags"\n[player]\nplaylists = { happy = "party", sad = "blue" }\n')
    assert policy_from_config(mapped).selection_for("sad").playlists == ("blue",)
    assert policy_from_config(parse_config("")).selection_for("happy").playlists == ("mood-happy",)  # as before
    with pytest.raises(ConfigError, match=r"\[mpd\].*library_tag must be one of MPD's tags"):
        parse_config('[mpd]\nlibrary_tag = "vibe"\n')


def test_checks_that_compare_fields_of_one_section_report_every_problem(tmp_path, capsys) -> None:
    """These checks used to stop at a section's first problem: fixing it revealed the next one, a restart later."""
    from moodspeaker.cli import main

    path = tmp_path / "config.toml"
    path.write_text('[buttons]\nskip_pin = 17\nlike_pin = 17\nhold_s = 0.01\ndebounce_s = 0.05\n'
                    '[player]\nplaylists = { hapy = "mood-happy", sad = "" }\ncooldown_s = -1.0\n'
                    '[volume]\nquiet_hours = ["22-7", "07:00-07:00"]\nfade_s = 9.0\n'
                    '[smoother]\nmin_confidence = 2.0\nheartbeat_s = 0.0\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    expected = [
        "[buttons]: skip_pin, like_pin and led_pin must differ, got [17, 17, 22]",
        "[buttons]: need 0 <= debounce_s < hold_s",
        "[player]: playlists.hapy: no mood plays this key (a typo would leave that mood silent); did you mean 'happy'?",
        "[player]: playlists.sad is empty; name a playlist or remove the key",
        "[player]: cooldown_s and early_skip_s must be >= 0 seconds",
        "[volume]: fade_s must be 0..3 seconds",
        "[volume]: quiet_hours: '22-7' is not a daily window like \"22:00-07:00\" (24-hour HH:MM-HH:MM)",
        "[volume]: quiet_hours: '07:00-07:00' starts and ends at the same minute",
        "[smoother]: min_confidence must be between 0 and 1",
        "[smoother]: heartbeat_s must be > 0 seconds",
    ]
    assert [p.removeprefix(f"{path} ") for p in err.value.problems] == expected
    assert main(["config", "check", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"moodspeaker config: {len(expected)} problems:" and len(lines) == 1 + len(expected)


def test_a_retired_key_loads_with_a_warning_that_says_to_remove_it(caplog: pytest.LogCaptureFixture) -> None:
    """An owner's config from an earlier release (the template offered [spotify] max_attempts) still starts the
    speaker after an upgrade; a misspelt key is still an error."""
    with caplog.at_level("WARNING", logger="moodspeaker.config"):
        config = parse_config('[spotify]\nmax_attempts = 5\ndevice_name = "den"\n')
    assert config.spotify.device_name == "den"
    assert "'max_attempts' is no longer used" in caplog.text and "remove it" in caplog.text
    with pytest.raises(ConfigError, match="unknown key 'max_attempt'"):
        parse_config("[spotify]\nmax_attempt = 5\n")
