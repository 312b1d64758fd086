#!/usr/bin/env python3
"""The learning curve: how often a simulated listener hears the tracks they skip and the tracks they like,
against the number of feedback events so far. Runs the simulation tests/test_learning.py asserts on
(moodspeaker.dev.listener_sim), prints the figures and writes a PNG.

    .venv/bin/python scripts/learning_curve.py --out learning_curve.png
"""

from __future__ import annotations

import argparse
import random
import statistics
from pathlib import Path

from moodspeaker.dev.listener_sim import default_listener, playlist, simulate

N_TRACKS, N_LIKED, N_DISLIKED = 20, 4, 4


def curve(seeds: int, max_events: int, step: int, window: int) -> tuple[list[int], list[float], list[float]]:
    """Mean over seeds of (disliked share, liked share) of the `window` starts after each event count."""
    tracks = playlist(N_TRACKS)
    listener = default_listener(tracks, N_LIKED, N_DISLIKED)
    xs = list(range(0, max_events + 1, step))
    disliked: list[list[float]] = [[] for _ in xs]
    liked: list[list[float]] = [[] for _ in xs]
    for seed in range(seeds):
        result = simulate(tracks, listener, random.Random(seed), n_starts=max_events + 2 * window)
        for i, x in enumerate(xs):
            d, lk = result.rates(listener, x, window)
            disliked[i].append(d)
            liked[i].append(lk)
    return xs, [statistics.fmean(v) for v in disliked], [statistics.fmean(v) for v in liked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("learning_curve.png"), help="PNG to write")
    parser.add_argument("--seeds", type=int, default=20, help="simulated listeners averaged (default 20)")
    parser.add_argument("--max-events", type=int, default=400)
    parser.add_argument("--window", type=int, default=30, help="track starts each point is measured over")
    args = parser.parse_args()

    xs, disliked, liked = curve(args.seeds, args.max_events, 10, args.window)
    print(f"playlist of {N_TRACKS} tracks: {N_LIKED} liked, {N_DISLIKED} skipped; random order would give "
          f"{N_DISLIKED / N_TRACKS:.0%} / {N_LIKED / N_TRACKS:.0%}; mean of {args.seeds} seeds, "
          f"{args.window} starts per point")
    print("events  skipped-share  liked-share")
    for x, d, lk in zip(xs, disliked, liked, strict=True):
        if x in (0, 20, 50, 100, 150, 200, 300, 400):
            print(f"{x:6d}  {d:13.3f}  {lk:11.3f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(xs, liked, label="liked tracks", color="tab:green")
    ax.plot(xs, disliked, label="skipped tracks", color="tab:red")
    ax.axhline(0.5, color="tab:green", linestyle=":", linewidth=1, label="bar: liked > 50%")
    ax.axhline(0.1, color="tab:red", linestyle=":", linewidth=1, label="bar: skipped < 10%")
    ax.axhline(N_DISLIKED / N_TRACKS, color="gray", linestyle="--", linewidth=1, label="random order")
    ax.axvline(200, color="black", linewidth=0.5)
    ax.set_xlabel("feedback events so far")
    ax.set_ylabel(f"share of the next {args.window} track starts")
    ax.set_ylim(0, 1)
    ax.set_title("Thompson-sampled queue: a simulated listener")
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
