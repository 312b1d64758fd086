"""`moodspeaker config check [FILE]`: parse the config exactly as the daemons do, and say what is wrong."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from moodspeaker.config import DEFAULT_CONFIG_PATH, load_config
from moodspeaker.errors import ConfigError


def _check(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.exists():
        print(f"moodspeaker config: {path}: no such file; start from systemd/config.toml.example", file=sys.stderr)
        return 2
    try:
        config = load_config(path)
    except ConfigError as exc:
        if len(exc.problems) == 1:
            print(f"moodspeaker config: {exc}", file=sys.stderr)
        else:  # every problem in the file, one per line
            print(f"moodspeaker config: {len(exc.problems)} problems:", *(f"  {p}" for p in exc.problems),
                  sep="\n", file=sys.stderr)
        return 2
    sections = [f.name for f in dataclasses.fields(config) if f.name != "source"]
    print(f"{path}: ok ({len(sections)} sections: {', '.join(sections)}; keys not in the file take their defaults)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="check the config file")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser("check", help="parse a config file; on an error print the file, key and a suggestion")
    q.add_argument("file", type=Path, nargs="?", default=DEFAULT_CONFIG_PATH, metavar="FILE",
                   help=f"config file (default {DEFAULT_CONFIG_PATH})")
    q.set_defaults(func=_check)
