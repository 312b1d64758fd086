"""`moodspeaker feedback show|export|reset`: what the speaker has learnt from the skip and like buttons."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from moodspeaker.adapters.sqlite_feedback import SqliteFeedbackStore
from moodspeaker.commands import add_config_argument
from moodspeaker.config import load_config
from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.feedback import EVENTS, FeedbackState
from moodspeaker.errors import UsageError


def _db_path(args: argparse.Namespace) -> Path:
    return args.db if args.db else Path(load_config(args.config).feedback.path)


def _open_existing(path: Path) -> SqliteFeedbackStore | None:
    """The store, or None if nothing was ever recorded (reading must not create /var/lib/... files)."""
    return SqliteFeedbackStore(path) if path.exists() else None


def _row(track: str, mean: float, counts: dict[str, int]) -> str:
    tally = " ".join(f"{e}={counts[e]}" for e in EVENTS if counts.get(e))
    return f"    {mean:.2f}  {track}  ({tally})"


def _show(state: FeedbackState, top: int) -> str:
    """Per emotion, the `top` tracks with the highest posterior mean and the `top` with the lowest."""
    lines = []
    for emotion in state.emotions():
        ranked = sorted(state.posteriors(emotion).items(), key=lambda kv: kv[1].mean, reverse=True)
        counts = state.counts(emotion)
        n_events = sum(sum(c.values()) for c in counts.values())
        lines.append(f"{emotion}: {len(ranked)} tracks, {n_events} events")
        lines.append("  top:")
        lines += [_row(t, p.mean, counts[t]) for t, p in ranked[:top]]
        bottom = ranked[max(top, len(ranked) - top):]
        if bottom:
            lines.append("  bottom:")
            lines += [_row(t, p.mean, counts[t]) for t, p in reversed(bottom)]
    return "\n".join(lines)


def _csv(state: FeedbackState) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["emotion", "track", *EVENTS, "alpha", "beta", "mean"])
    for emotion, tracks in state.to_dict()["emotions"].items():
        for track, entry in tracks.items():
            writer.writerow([emotion, track, *(entry[e] for e in EVENTS), entry["alpha"], entry["beta"], entry["mean"]])
    return out.getvalue()


def _run(args: argparse.Namespace) -> int:
    if args.action == "reset" and not args.yes:
        raise UsageError("reset forgets what the speaker has learnt; add --yes to do it")
    path = _db_path(args)
    store = _open_existing(path)
    state = FeedbackState() if store is None else store.state()
    try:
        if args.action == "show":
            print(_show(state, args.top) if state.emotions() else f"no feedback recorded yet ({path})")
        elif args.action == "export":
            text = json.dumps(state.to_dict(), indent=2) + "\n" if args.format == "json" else _csv(state)
            if args.out:
                args.out.write_text(text)
            else:
                sys.stdout.write(text)
        else:
            deleted = 0 if store is None else store.reset(args.emotion)
            scope = f"for {args.emotion}" if args.emotion else "for all emotions"
            print(f"deleted {deleted} feedback events {scope} ({path})")
    finally:
        if store is not None:
            store.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("feedback", help="show, export or reset what the speaker learnt from skips and likes")
    p.add_argument("action", choices=("show", "export", "reset"))
    add_config_argument(p)
    p.add_argument("--db", type=Path, default=None, help="feedback database (default: [feedback] path)")
    p.add_argument("--top", type=int, default=5, help="show: tracks listed at each end per emotion (default 5)")
    p.add_argument("--format", choices=("json", "csv"), default="json", help="export format (default json)")
    p.add_argument("--out", type=Path, default=None, help="export to this file instead of stdout")
    p.add_argument("--emotion", choices=EMOTIONS, default=None, help="reset: only this emotion's feedback")
    p.add_argument("--yes", action="store_true", help="reset: really delete")
    p.set_defaults(func=_run)
