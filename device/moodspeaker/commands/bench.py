"""`moodspeaker bench`: our vision pipeline and the reference peer, side by side on the demo clip.

Each measurement runs in its own fresh process (`python -m moodspeaker.dev.benchmark`), one after another,
single-threaded, so peak RSS and CPU use belong to that pipeline alone and runs do not compete. The bench is a
development tool: `moodspeaker.dev` is imported only when this command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from moodspeaker.errors import SetupError

SIZES = ("320x240", "640x480")
PIPELINES = ("ours", "peer")


class BenchError(SetupError):
    """A measurement process failed; its stderr says why (usually the peer or model is missing)."""


def measure(pipeline: str, size: str, model: Path | None, truth: Path, paced_fps: float = 0.0,
            paced_seconds: float = 10.0) -> dict:
    """One worker process; its JSON result."""
    cmd = [sys.executable, "-m", "moodspeaker.dev.benchmark", pipeline, size, "--truth", str(truth)]
    if model is not None:
        cmd += ["--model", str(model)]
    if paced_fps:
        cmd += ["--paced", str(paced_fps), "--seconds", str(paced_seconds)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise BenchError(f"{pipeline} {size} failed (exit {done.returncode}):\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_bench(model: Path | None, truth: Path, paced_fps: float, paced_seconds: float,
              sizes: tuple[str, ...] = SIZES) -> dict:
    """Every pipeline at every size, one process each; a progress line per run on stderr (stdout is the result)."""
    result: dict = {}
    runs = len(PIPELINES) * len(sizes) * (2 if paced_fps else 1)
    done = 0

    def progress(what: str) -> None:
        nonlocal done
        done += 1
        print(f"bench: [{done}/{runs}] {what}", file=sys.stderr, flush=True)

    for pipeline in PIPELINES:
        result[pipeline] = {}
        for size in sizes:
            progress(f"{pipeline} {size}: the whole clip, as fast as it goes")
            entry = measure(pipeline, size, model, truth)
            if paced_fps:
                progress(f"{pipeline} {size}: CPU use at {paced_fps:g} fps for {paced_seconds:g} s")
                entry[f"cpu_percent_at_{paced_fps:g}fps"] = measure(pipeline, size, model, truth, paced_fps,
                                                                    paced_seconds)["cpu_percent"]
            result[pipeline][size] = entry
    from moodspeaker.dev.demo_clip import load_clip_truth

    clip = load_clip_truth(truth)
    result["clip"] = {"video": str(clip.video), "frames": clip.frames, "fps": clip.fps}
    result["setup"] = {"threads": 1, "machine": platform.machine(), "cpu_count": os.cpu_count(),
                       "python": platform.python_version(),
                       "note": "fps and ms exclude video decoding; rss_mb is each run's own process peak"}
    return result


def _print_table(result: dict, sizes: tuple[str, ...]) -> None:
    cpu_key = next((k for k in result["ours"][sizes[0]] if k.startswith("cpu_percent")), None)
    print(f"{'pipeline':8s} {'size':8s} {'fps':>7s} {'detect':>7s} {'prep':>6s} {'class':>6s} {'smooth':>6s} "
          f"{'rss MB':>7s} {'face acc':>8s} {'mood acc':>8s} {'segments':>8s}" + (f" {'cpu%':>6s}" if cpu_key else ""))
    for pipeline in PIPELINES:
        for size in sizes:
            r = result[pipeline][size]
            ms = r["ms"]
            print(f"{pipeline:8s} {size:8s} {r['fps']:7.1f} {ms['detect']:7.2f} {ms['preprocess']:6.3f} "
                  f"{ms['classify']:6.3f} {ms['smooth']:6.3f} {r['rss_mb']:7.1f} {r['face_accuracy']:8.3f} "
                  f"{r['mood_accuracy']:8.3f} {r['segments_right']:>4d}/{r['segments']:<3d}"
                  + (f" {r[cpu_key]:6.1f}" if cpu_key else ""))


def _run(args: argparse.Namespace) -> int:
    from moodspeaker.dev.demo_clip import DEFAULT_TRUTH, load_clip_truth

    truth = args.truth or DEFAULT_TRUTH
    load_clip_truth(truth)  # a bad clip is a UsageError, a failed run a BenchError: cli.main reports both
    result = run_bench(args.model, truth, args.paced_fps, args.paced_seconds, tuple(args.sizes))
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result, tuple(args.sizes))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="speed, memory and accuracy of the vision pipeline vs the peer on the demo clip")
    p.add_argument("--model", type=Path, default=None, help="our int8 .tflite (default: the model the device runs)")
    p.add_argument("--truth", type=Path, default=None,
                   help="demo clip ground truth, clip.json beside the video (default: the clip installed with moodspeaker)")
    p.add_argument("--paced-fps", type=float, default=5.0, help="analysis rate for the CPU-use figure; 0 skips it")
    p.add_argument("--paced-seconds", type=float, default=10.0, help="how long each CPU-use run lasts")
    p.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES), help="frame sizes to run (default: both)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)
