"""`make demo`: the whole speaker on this machine, end to end, in about half a minute.

Generates a small synthesised music library with tags and one stored playlist per mood, starts a private
MPD on loopback (null audio output), and runs vision + player in one process on the bundled demo clip
(moodspeaker/dev/clip/clip.mp4, analysed at twice its speed). Prints each mood change with its confidence and each
track that starts, then a verdict (which of the clip's moods it found and missed, and whether that is what the
model's accuracy predicts) and one summary line: `demo: N mood changes, M tracks started, K errors`.
Everything lives in a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from moodspeaker.adapters.sd_notify import SystemdNotifier
from moodspeaker.app.lifecycle import Daemon, ServiceRuntime
from moodspeaker.app.run import run_together
from moodspeaker.config import parse_config
from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.mood import MoodEvent
from moodspeaker.dev.demo_clip import DEFAULT_TRUTH, load_clip_truth, verdict
from moodspeaker.dev.demo_music import write_library
from moodspeaker.dev.mpd_server import MpdServer
from moodspeaker.model_card import card_path_for, load_card
from moodspeaker.paths import default_model

TRACKS_PER_PLAYLIST = 3
TRACK_SECONDS = 4.0


class Narrator:
    """Prints mood changes (as a MoodSink, before the player sees them) and track starts (from player status)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.track = ""
        self.changes: list[tuple[float, str]] = []  # (clip time, mood)

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self.t0:5.1f}s]"

    def send(self, event: MoodEvent) -> None:
        if event.kind == "mood":
            self.changes.append((event.t, event.mood))
            print(f"{self._stamp()} mood: {event.mood} (confidence {event.confidence:.2f}, clip time {event.t:.1f}s)",
                  flush=True)

    def on_status(self, status: dict[str, Any]) -> None:
        if status["track"] and status["track"] != self.track:
            print(f"{self._stamp()}   playing: {status['track']}", flush=True)
        self.track = status["track"]


def demo_config(work: Path, mpd: MpdServer, speed: float, fps: float) -> str:
    return f"""
[player]
backend = "mpd"
strategy = "lift"     # sad, angry, fear -> calm, then uplifting
cooldown_s = 3.0      # short, for a demo that changes mood every few seconds
switch = "track_end"  # a mood change waits for the current track to end

[mpd]
host = "{mpd.host}"
port = {mpd.port}

[feedback]
path = "{work / "feedback.db"}"

[buttons]
enabled = false

[service]
runtime_dir = "{work / "run"}"

[camera]
fps = {fps * speed}   # analysis rate in wall time: the clip's every frame, {speed}x as fast as real time
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_TRUTH, help="demo clip's ground truth JSON (next to the video)")
    parser.add_argument("--speed", type=float, default=2.0, help="play the clip this many times faster than real time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    logging.getLogger("moodspeaker.adapters.opencv_source").setLevel(logging.ERROR)  # the clip's end is the demo's
    truth = load_clip_truth(args.clip)
    with tempfile.TemporaryDirectory(prefix="moodspeaker-demo-") as tmp:
        work = Path(tmp)
        keys = (*EMOTIONS, "calm", "uplifting")
        playlists = write_library(work / "music", work / "playlists", dict.fromkeys(keys, TRACKS_PER_PLAYLIST),
                                  seconds=TRACK_SECONDS)
        print(f"demo: {sum(map(len, playlists.values()))} synthesised tracks in {len(playlists)} playlists; "
              f"clip {truth.video.name} ({truth.fps:g} fps), played at {args.speed:g}x", flush=True)
        with MpdServer(work / "mpd", work / "music", work / "playlists") as mpd:
            print(f"demo: private MPD on {mpd.host}:{mpd.port} (null output)", flush=True)
            config = parse_config(demo_config(work, mpd, args.speed, truth.fps), work / "demo.toml")
            narrator = Narrator()
            (work / "run").mkdir()
            runtime = ServiceRuntime("demo", config.service, notifier=SystemdNotifier({}))  # state file in the work dir
            with Daemon("demo", config, runtime) as daemon:  # Ctrl-C stops it cleanly
                status = asyncio.run(run_together(config, truth.video, daemon, watch=narrator,
                                                  on_iteration=narrator.on_status))
    expected = [s.mood for s in truth.segments]
    print(f"demo: the clip shows {' -> '.join(expected)}")
    card = load_card(card_path_for(Path(config.model.path) if config.model.path else default_model()))
    print(f"demo: {verdict(truth, narrator.changes, card.raw['metrics']['val']['per_class_recall']).line()}")
    print(f"demo: {status['mood_changes']} mood changes, {status['tracks_started']} tracks started, {status['errors']} errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
