"""The living-room benchmark on the committed val fixture: seeded sets, ours and the peer through
`moodspeaker eval`, the table and plots, and the summary in a copy of the model card (its SHA intact)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from moodspeaker.adapters.litert_classifier import LiteRTClassifier
from moodspeaker_train.cli import main
from moodspeaker_train.living_room import CROP_SETS, FRAME_SETS, crop_set, frame_set, top_wrong


def test_sets_are_seeded_and_perturb(fer_tiny: Path) -> None:
    with np.load(fer_tiny / "val.npz") as data:
        faces = data["images"][:20]
    for name in CROP_SETS:
        a, b = crop_set(name, faces, seed=5), crop_set(name, faces, seed=5)
        assert np.array_equal(a, b), name
        assert name == "clean" or not np.array_equal(a, faces), name
    assert crop_set("crop24", faces, 5).shape == (20, 24, 24)
    assert crop_set("dim_noise8", faces, 5).mean() < 0.4 * faces.mean()
    spec = next(s for s in FRAME_SETS if s.name == "frame320_face24")
    frames, boxes = frame_set(spec, faces[:3], seed=5)
    assert frames.shape == (3, 240, 320) and np.array_equal(frames, frame_set(spec, faces[:3], seed=5)[0])
    assert (boxes[:, 2] == 24).all() and (boxes[:, 0] + 24 <= 320).all() and (boxes[:, 1] + 24 <= 240).all()


def test_top_wrong_counts_wrong_answers_only() -> None:
    confusion = [[5, 3, 0], [0, 9, 0], [4, 0, 1]]  # true rows; column 0 gets 4 wrong, column 1 gets 3
    names = ("angry", "disgust", "fear")
    wrong, share = top_wrong([row + [0] * 4 for row in confusion] + [[0] * 7] * 4)
    assert wrong == names[0] and share == round(4 / 22, 4)


def test_benchmark_writes_table_plots_and_card_summary(fer_tiny: Path, shipped_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "model" / shipped_model.name
    model.parent.mkdir()
    shutil.copy(shipped_model, model)
    shutil.copy(shipped_model.with_suffix(".json"), model.with_suffix(".json"))
    out = tmp_path / "report"
    args = ["living-room", "--data", str(fer_tiny), "--model", str(model), "--sets", "clean", "blur2",
            "frame320_face72", "--frames", "12", "--rooms", "5", "--out", str(out), "--work", str(tmp_path / "work"), "--card"]
    assert main(args) == 0
    result = json.loads((out / "living_room.json").read_text())
    assert list(result["sets"]) == ["clean", "blur2", "frame320_face72"]
    clean, frames = result["sets"]["clean"], result["sets"]["frame320_face72"]
    assert clean["n"] == 210 and frames["n"] == 12 and frames["kind"] == "frames"
    for who in ("ours", "peer"):
        assert 0 <= clean[who]["accuracy"] <= 1 and 0 <= frames[who]["detected"] <= 1
        assert clean[who]["top_wrong_class"] in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert result["sets"]["blur2"]["ours"]["accuracy"] < clean["ours"]["accuracy"]
    table = (out / "living_room.md").read_text()
    assert "| frame320_face72 |" in table and "| blur2 | 99% |" in table  # blur σ2: the gate skips nearly every crop
    for who in ("ours", "peer"):  # every box counted, those on no face among them
        counted = frames[who]
        assert counted["boxes"] >= round(12 * counted["detected"]) and 0 <= counted["boxes_on_no_face"] <= counted["boxes"]
    assert f"| frame320_face72 | {frames['ours']['boxes_on_no_face']} / {frames['ours']['boxes']} |" in table
    false = result["false_faces"]["640x480"]
    assert false["empty_rooms"] == 5 and false["demo_clip_face_free_frames"] == 110
    assert false["ours_demo_clip_false_frames"] == 0.0
    assert (out / "living_room_face_size.png").stat().st_size > 0 and (out / "living_room_light.png").stat().st_size > 0
    assert not list((tmp_path / "work").glob("*.npz"))  # the built sets are removed unless --keep
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["living_room"]["sets"]["clean"]["ours"]["accuracy"] == clean["ours"]["accuracy"]
    LiteRTClassifier(model)  # the card still matches its file


def test_unknown_set_is_an_error(fer_tiny: Path, tmp_path: Path, capsys) -> None:
    assert main(["living-room", "--data", str(fer_tiny), "--sets", "moonlight", "--work", str(tmp_path)]) == 2
    assert "moonlight" in capsys.readouterr().err


def test_the_simulated_gate_keeps_untrusted_crops_from_setting_a_wrong_mood() -> None:
    from moodspeaker.core.emotions import EMOTIONS
    from moodspeaker_train.living_room import simulate_moods

    labels = np.array([3] * 10 + [6] * 10)  # happy and neutral listeners
    clean = np.full((20, 7), 0.02)
    clean[np.arange(20), labels] = 0.88
    poor = np.full((20, 7), 0.02)
    poor[:, 4] = 0.88  # in the dark every face comes out "sad"
    skipped = simulate_moods(clean, poor, np.zeros(20), labels, EMOTIONS, listeners=20, seed=1)
    assert skipped["without_gate"]["wrong_mood_time"] > 0.5 and skipped["without_gate"]["false_flips"] == 1.0
    assert skipped["with_gate"]["wrong_mood_time"] == 0.0 and skipped["with_gate"]["right_mood_time"] == 1.0
    cold = simulate_moods(clean, poor, np.zeros(20), labels, EMOTIONS, listeners=20, seed=1, warm_start=False)
    assert cold["with_gate"]["no_mood_time"] == 1.0
