"""The sofa clip generator (scripts/make_sofa_clips.py) writes clips `moodspeaker bench --truth` reads, with the
light, noise and face size of its kind; and the owner's scores of such a clip (faces reached, wrong moods)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from moodspeaker.adapters.opencv_source import OpenCVFrameSource
from moodspeaker.core.mood import NO_FACE
from moodspeaker.dev.demo_clip import load_clip_truth, score

ROOT = Path(__file__).resolve().parents[1]


def test_the_generator_writes_seeded_lossless_clips_of_each_kind(tmp_path: Path, fer_tiny: Path) -> None:
    cmd = [sys.executable, str(ROOT / "scripts" / "make_sofa_clips.py"), "--out", str(tmp_path), "--faces", "2",
           "--kinds", "full72", "lamp72", "--val", str(fer_tiny / "val.npz"), "--agreement", "0.5"]
    subprocess.run(cmd, check=True, capture_output=True)
    frames = {}
    for kind in ("full72", "lamp72"):
        truth = load_clip_truth(tmp_path / f"{kind}.json")
        assert truth.frames == (3 + 4 + 1 + 4) * 10 and (truth.width, truth.height, truth.fps) == (640, 480, 10)
        assert [s.mood == NO_FACE for s in truth.segments] == [True, False, True, False]
        source = OpenCVFrameSource(truth.video)
        frames[kind] = np.stack([f.gray.astype(np.float32) for f in source.frames()])
        source.close()
        boxes = json.loads((tmp_path / f"{kind}.json").read_text())["face_boxes"]
        assert boxes[0] is None and boxes[40][2] == 72
    full, lamp = frames["full72"], frames["lamp72"]
    assert len(full) == len(lamp) == 120
    assert 0.27 < lamp.mean() / full.mean() < 0.33  # a third of the light
    empty = full[:30] - full[:30].mean(axis=0)  # the same empty room 30 times: what differs is fresh noise
    assert 1.5 < empty.std() < 2.5  # σ2, drawn anew for every frame (FFV1 keeps it exactly)
    again = tmp_path / "again"
    subprocess.run([*cmd[:3], str(again), *cmd[4:]], check=True, capture_output=True)
    source = OpenCVFrameSource(again / "full72.avi")
    assert np.array_equal(next(iter(source.frames())).gray, full[0].astype(np.uint8))  # seeded: same pixels
    source.close()


def test_a_clip_is_scored_as_an_owner_counts(tmp_path: Path) -> None:
    (tmp_path / "c.avi").write_bytes(b"")
    segments = [{"start": 0, "end": 2, "mood": NO_FACE}, {"start": 2, "end": 6, "mood": "happy"},
                {"start": 6, "end": 7, "mood": NO_FACE}, {"start": 7, "end": 11, "mood": "sad"},
                {"start": 11, "end": 15, "mood": "angry"}]
    (tmp_path / "c.json").write_text(json.dumps({"video": "c.avi", "fps": 1, "width": 640, "height": 480,
                                                 "frames": 15, "segments": segments}))
    truth = load_clip_truth(tmp_path / "c.json")
    times = [float(t) for t in range(15)]
    moods = [NO_FACE, NO_FACE, NO_FACE, "happy", "happy", "happy", "happy", "happy",  # happy reached
             "sad", "sad", "fear", "fear", "fear", "fear", "fear"]  # sad reached; fear for the angry face: wrong
    result = score(truth, times, moods, moods)
    assert (result["faces"], result["faces_reached"], result["wrong_moods"]) == (3, 2, 1)
    assert result["first_mood_s"] == 1.0
    late = [NO_FACE] * 6 + ["happy"] * 9  # happy arrives as its face leaves: late (within LAG_S), not wrong
    late_result = score(truth, times, late, late)
    assert late_result["faces_reached"] == 0 and late_result["wrong_moods"] == 0


def test_boxes_are_scored_against_where_the_face_was_pasted(tmp_path: Path) -> None:
    """A box on no face (the empty room, an eye inside the face) is counted apart from a box on the face of the
    wrong size (misframed), as the issue defines a false face."""
    from moodspeaker.core.domain import Box
    from moodspeaker.dev.demo_clip import score_boxes

    (tmp_path / "c.avi").write_bytes(b"")
    face = [200, 100, 72]
    (tmp_path / "c.json").write_text(json.dumps({
        "video": "c.avi", "fps": 1, "width": 640, "height": 480, "frames": 6,
        "segments": [{"start": 0, "end": 1, "mood": NO_FACE}, {"start": 1, "end": 6, "mood": "happy"}],
        "face_boxes": [None, face, face, face, face, face]}))
    truth = load_clip_truth(tmp_path / "c.json")
    times = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    boxes = [Box(10, 10, 60, 60),  # a box in the empty room: on no face
             Box(205, 104, 70, 70),  # on the face
             Box(220, 125, 20, 20),  # an eye: on no face
             Box(170, 70, 130, 130),  # centred on the face, 1.8 times its side: misframed
             Box(290, 100, 72, 72),  # beside the face (its centre outside): on no face
             None]
    result = score_boxes(truth, (640, 480), times, boxes, [True, True, False, True, True, False])
    assert result == {"boxes": 5, "boxes_on_no_face": 3, "boxes_on_no_face_rate": 0.6, "boxes_on_no_face_counted": 2,
                      "boxes_misframed": 1}
    half = score_boxes(truth, (320, 240), times, [None, Box(102, 52, 35, 35), None, None, None, None],
                       [False, True] + [False] * 4)
    assert (half["boxes_on_no_face"], half["boxes_misframed"]) == (0, 0)  # scored at the frame size the pipeline ran at
