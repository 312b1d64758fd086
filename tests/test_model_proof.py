"""Issue 20, case 1: a model whose card carries its (corrupt) file's SHA-256 and that crashes LiteRT is proven in a
child process before anything loads it. `model install`, `model rollback` and every vision (re)load refuse it with
"the model crashed the interpreter"; the vision daemon keeps running its old model. Real LiteRT, real daemon."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crashing_model import crashing_copy
from mood_wait import receive

from moodspeaker.adapters.mood_socket import LoggingMoodSink, MoodSocketReceiver
from moodspeaker.app.vision import build_vision
from moodspeaker.cli import main
from moodspeaker.config import Config, ModelConfig
from moodspeaker.dev.demo_clip import load_clip_truth
from moodspeaker.errors import ModelError
from moodspeaker.model_card import sha256_file
from moodspeaker.model_proof import prove
from moodspeaker.model_store import ModelStore

MOODSPEAKER = str(Path(sys.executable).with_name("moodspeaker"))
CRASHED = "the model crashed the interpreter (SIGABRT"


def _crashing_model(shipped_model: Path, folder: Path) -> Path:
    """folder/emotion.tflite (the shipped model with one scale set to 1e30), its card with the matching SHA-256,
    and the golden faces."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "emotion.tflite"
    model.write_bytes(crashing_copy(shipped_model.read_bytes()))
    card = json.loads(shipped_model.with_suffix(".json").read_text())
    card["sha256"] = sha256_file(model)
    model.with_suffix(".json").write_text(json.dumps(card))
    shutil.copy(shipped_model.parent / card["golden"]["file"], folder)
    return model


def test_case1_the_crashing_model_really_crashes_litert(shipped_model: Path, tmp_path: Path) -> None:
    """The premise: loaded in-process, this model kills the interpreter (here: a throw-away Python)."""
    model = _crashing_model(shipped_model, tmp_path)
    code = ("from moodspeaker.adapters.litert_classifier import LiteRTClassifier\n"
            f"LiteRTClassifier({str(model)!r})\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGABRT, done.stderr


def test_case1_model_install_refuses_a_model_that_crashes_the_interpreter(shipped_model: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    store = tmp_path / "store"
    assert main(["model", "install", str(shipped_model), "--card", str(shipped_model.with_suffix(".json")),
                 "--models-dir", str(store), "--no-reload"]) == 0
    current = ModelStore(store).current()
    model = _crashing_model(shipped_model, tmp_path / "bad")
    capsys.readouterr()
    assert main(["model", "install", str(model), "--card", str(model.with_suffix(".json")),
                 "--models-dir", str(store), "--no-reload"]) == 3
    err = capsys.readouterr().err
    assert CRASHED in err and "the current model is unchanged" in err, err
    assert ModelStore(store).current() == current
    assert [v.sha12 for v in ModelStore(store).versions()] == [current.name]


def test_case1_rollback_refuses_a_previous_model_that_crashes(shipped_model: Path, tmp_path: Path) -> None:
    """A version folder damaged after its install (its card rewritten to match): rollback proves it first."""
    store = ModelStore(tmp_path / "store")
    bad = _crashing_model(shipped_model, tmp_path / "bad")
    store.install(shipped_model, shipped_model.with_suffix(".json"))
    version = store.root / "versions" / "deadbeef0000"
    shutil.copytree(bad.parent, version)
    (store.root / "previous").symlink_to(Path("versions") / version.name)
    current = store.current()
    with pytest.raises(ModelError, match="crashed the interpreter"):
        store.rollback()
    assert store.current() == current


def test_case1_a_vision_build_proves_the_model_in_a_child_first(shipped_model: Path, tmp_path: Path) -> None:
    model = _crashing_model(shipped_model, tmp_path)
    with pytest.raises(ModelError, match="crashed the interpreter"):
        build_vision(Config(model=ModelConfig(path=str(model))), LoggingMoodSink())
    proof = prove(shipped_model, shipped_model.with_suffix(".json"), shipped_model.parent / "golden_faces.npz")
    card = json.loads(shipped_model.with_suffix(".json").read_text())
    assert proof.n == card["golden"]["n"] and abs(proof.accuracy - card["golden"]["accuracy"]) <= 0.02


def test_case1_a_vision_reload_onto_a_crashing_model_is_refused_and_the_daemon_lives(shipped_model: Path,
                                                                                     tmp_path: Path) -> None:
    sock, config = tmp_path / "run" / "mood.sock", tmp_path / "config.toml"
    video = load_clip_truth().video
    settings = (f'[mood_socket]\npath = "{sock}"\n[service]\nruntime_dir = "{tmp_path}"\n'
                '[camera]\nkind = "opencv"\nfps = 10.0\nloop = true\n')
    config.write_text(f'[model]\npath = "{shipped_model}"\n' + settings)
    bad = _crashing_model(shipped_model, tmp_path / "bad")
    with MoodSocketReceiver(sock) as receiver:
        proc = subprocess.Popen([sys.executable, "-m", "moodspeaker.cli", "vision", "--config", str(config),
                                 "--source", str(video)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert receive(receiver, 60) is not None
            deadline = time.monotonic() + 30
            while not (tmp_path / "vision.json").exists():
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            config.write_text(f'[model]\npath = "{bad}"\n' + settings)
            out = subprocess.run([MOODSPEAKER, "reload", "vision", "--runtime-dir", str(tmp_path), "--pid",
                                  str(proc.pid)], capture_output=True, text=True, timeout=120)
            assert out.returncode == 1 and "reload failed" in out.stderr and "crashed the interpreter" in out.stderr
            assert proc.poll() is None
            state = json.loads((tmp_path / "vision.json").read_text())
            assert state["pid"] == proc.pid and state["status"]["model_sha"] == sha256_file(shipped_model)
            assert receive(receiver, 10) is not None  # still seeing, on the old model
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
