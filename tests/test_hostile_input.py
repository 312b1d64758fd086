"""Issue 20: hostile input refused cleanly, each case as the issue reproduced it. Datagrams whose numbers do not
fit a float (case 2); numbers and paths that pass the type check (8); what `config check` accepts the daemons
accept (9); secrets never echoed (10); the mood socket's modes whatever the umask (11). The property-based
suites for the same parsers are in test_parser_properties.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
from pathlib import Path

import pytest

from moodspeaker.adapters.mood_socket import MoodSocketReceiver
from moodspeaker.cli import main
from moodspeaker.config import parse_config
from moodspeaker.core.mood import MalformedEvent, MoodEvent
from moodspeaker.errors import EXIT_MODEL, EXIT_OWNER, ConfigError, ModelError
from moodspeaker.model_card import load_card, sha256_file

VALID = MoodEvent(kind="mood", mood="happy", confidence=0.9, t=12.5, seq=3)


def _datagram(**changes: object) -> bytes:
    body = json.loads(VALID.to_bytes())
    body.update(changes)
    return json.dumps(body).encode()


# --- case 2: a datagram whose t is a 400-digit integer ---

@pytest.mark.parametrize("field", ["t", "fps", "confidence", "probs"])
def test_case2_a_number_too_large_for_a_float_is_a_malformed_datagram(field: str) -> None:
    huge = 10**400
    data = _datagram(**{field: {"happy": huge} if field == "probs" else huge})
    with pytest.raises(MalformedEvent):
        MoodEvent.from_bytes(data)


def test_case2_the_receiver_drops_a_400_digit_t_and_takes_the_next_mood_at_once(tmp_path: Path) -> None:
    path = tmp_path / "mood.sock"
    with MoodSocketReceiver(path) as receiver, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as tx:
        tx.sendto(_datagram(t=10**400), str(path))
        tx.sendto(VALID.to_bytes(), str(path))  # both are queued once sendto returns (a local datagram socket)
        assert receiver.receive_nowait() == VALID  # at once: the bad one dropped, no wait for another
        assert receiver.dropped == 1


# --- case 8: numbers and paths that pass the type check ---

@pytest.mark.parametrize("text", [
    "[camera]\nfps = " + "9" * 400,  # a 400-digit number where a float goes
    "[player]\ncooldown_s = 1e300",
    "[detector]\nmin_neighbors = " + "9" * 400,
    "[model]\nthreads = " + "9" * 5000,  # more digits than Python converts
    "[player]\nlift = " + "[" * 200_000,
])
def test_case8_config_numbers_and_nesting_beyond_range_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert len(str(caught.value)) < 300  # the value is quoted briefly, not echoed in full


@pytest.fixture()
def candidate(shipped_model: Path, tmp_path: Path) -> tuple[Path, Path, dict]:
    """A copy of the shipped model, card and golden faces, to edit."""
    folder = tmp_path / "candidate"
    folder.mkdir()
    model, card = folder / "emotion.tflite", folder / "emotion.json"
    shutil.copy(shipped_model, model)
    raw = json.loads(shipped_model.with_suffix(".json").read_text())
    shutil.copy(shipped_model.parent / raw["golden"]["file"], folder)
    card.write_text(json.dumps(raw))
    return model, card, raw


def _install(model: Path, card: Path, store: Path, *extra: str) -> int:
    return main(["model", "install", str(model), "--card", str(card), "--models-dir", str(store), "--no-reload",
                 *extra])


@pytest.mark.parametrize("edit, message", [
    ({"golden": {"tolerance": 10**400}}, "golden.tolerance must be a number"),
    ({"golden": {"accuracy": -10**400}}, "golden.accuracy must be a number"),
    ({"golden": {"file": ".."}}, "golden.file must be a plain file name"),
    ({"golden": {"file": "golden\0faces.npz"}}, "golden.file must be a plain file name"),
    ({"preprocessing": {"device": {"face_margin": 10**400}}}, "face_margin must be a number"),
])
def test_case8_card_numbers_and_names_that_pass_the_type_check_are_refused(candidate, tmp_path: Path, capsys,
                                                                           edit: dict, message: str) -> None:
    model, card, raw = candidate
    for key, value in edit.items():
        raw[key] = {**raw[key], **value}
    card.write_text(json.dumps(raw))
    golden = card.parent / "golden_faces.npz"
    assert _install(model, card, tmp_path / "store", "--golden", str(golden)) == EXIT_MODEL
    err = capsys.readouterr().err
    assert message in err and "internal error" not in err and len(err) < 600, err


def test_case8_a_card_of_200000_brackets_is_not_json(candidate, tmp_path: Path, capsys) -> None:
    model, card, _ = candidate
    card.write_text("[" * 200_000)
    with pytest.raises(ModelError, match="nested too deeply"):
        load_card(card)
    assert _install(model, card, tmp_path / "store") == EXIT_MODEL
    assert "not valid JSON" in capsys.readouterr().err


def test_case8_a_missing_card_file_is_refused(candidate, tmp_path: Path, capsys) -> None:
    model, card, _ = candidate
    assert _install(model, card.with_name("missing.json"), tmp_path / "store") == EXIT_MODEL
    err = capsys.readouterr().err
    assert "missing.json: no such file" in err and "internal error" not in err, err


def test_case8_a_card_whose_metrics_is_a_list_installs_and_lists(candidate, tmp_path: Path, capsys) -> None:
    model, card, raw = candidate
    raw["metrics"], raw["name"] = [1, 2, 3], 42
    card.write_text(json.dumps(raw))
    store = tmp_path / "store"
    assert _install(model, card, store) == 0
    capsys.readouterr()
    assert main(["model", "list", "--models-dir", str(store)]) == 0
    assert f"current  {sha256_file(model)[:12]}  ?" in capsys.readouterr().out
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\npath = "{store / "current" / "emotion.tflite"}"\n')
    assert main(["status", "--config", str(config), "--runtime-dir", str(tmp_path)]) == 1  # no daemons run
    out, err = capsys.readouterr()
    assert "val accuracy ?" in out and "internal error" not in err, err


# --- case 9: `config check` is the daemons' own check ---

@pytest.mark.parametrize("text, message", [
    ('[feedback]\npath = ""', "[feedback].path: must not be empty"),
    ('[mood_socket]\npath = ""', "[mood_socket].path: must not be empty"),
    ('[camera]\nkind = "opencv"\ndevice = ""', "[camera].device: must not be empty"),
    ('[service]\nruntime_dir = ""', "[service].runtime_dir: must not be empty"),
    ("[volume]\nstart = 90\nmaximum = 50", "start (90) must not be above maximum (50)"),
])
@pytest.mark.parametrize("command", ["config check", "player", "vision"])
def test_case9_config_check_and_the_daemons_refuse_the_same_config(tmp_path: Path, capsys, text: str, message: str,
                                                                   command: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    args = [str(config)] if command == "config check" else ["--config", str(config)]
    assert main([*command.split(), *args]) == EXIT_OWNER
    assert message in capsys.readouterr().err


def test_case9_special_and_oversized_config_files_are_refused_unread(tmp_path: Path, capsys) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    for path, message in ((fifo, "is a FIFO"), (Path("/dev/zero"), "is a device"), (big, "too large"),
                          (tmp_path, "is a directory")):
        assert main(["config", "check", str(path)]) == EXIT_OWNER  # the FIFO: no hang, /dev/zero: no 4 GB read
        assert message in capsys.readouterr().err
        assert main(["player", "--config", str(path)]) == EXIT_OWNER
        assert message in capsys.readouterr().err


# --- case 10: error messages never echo a secret ---

@pytest.mark.parametrize("section, key", [("mqtt", "password"), ("mpd", "password"), ("spotify", "client_secret")])
@pytest.mark.parametrize("value", ["987654321", "[987654321]", "{ a = 987654321 }", "987654321.5"])
def test_case10_a_secret_of_the_wrong_type_is_not_echoed(tmp_path: Path, capsys, section: str, key: str,
                                                         value: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[{section}]\n{key} = {value}\n")
    assert main(["config", "check", str(config)]) == EXIT_OWNER
    err = capsys.readouterr().err
    assert f"[{section}].{key}: expected a string" in err and "987654321" not in err, err


# --- case 11 (the socket part): explicit modes whatever the umask ---

def test_case11_the_mood_socket_and_its_folder_have_explicit_modes_under_umask_0(tmp_path: Path) -> None:
    path = tmp_path / "run" / "moodspeaker" / "mood.sock"
    old = os.umask(0)
    try:
        with MoodSocketReceiver(path):
            assert stat.S_IMODE(path.stat().st_mode) == 0o660
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750
            assert sorted(p.name for p in path.parent.iterdir()) == ["mood.sock"]  # no private folder left
    finally:
        os.umask(old)
