"""`moodspeaker run`: vision and player in one process, for development and the demo (the appliance runs them
as two daemons). `--source` analyses a video file instead of the camera and ends with it. SIGHUP reloads the
config and model like the daemons do; SIGTERM/Ctrl-C stops."""

from __future__ import annotations

import argparse

from moodspeaker.commands import add_config_argument, add_source_argument, source_exists
from moodspeaker.config import load_config


def _run(args: argparse.Namespace) -> int:
    from moodspeaker.app.lifecycle import Daemon, ServiceRuntime
    from moodspeaker.app.run import run_together

    config = load_config(args.config)  # a ConfigError is reported by cli.main
    if not source_exists("run", args.source):
        return 2
    with Daemon("run", config, ServiceRuntime("run", config.service, state_file=False)) as daemon:
        status = run_together(config, args.source, daemon.stop, daemon=daemon)
    print(f"run: {status['mood_changes']} mood changes, {status['tracks_started']} tracks started, {status['errors']} errors")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="vision and player in one process (development, demo)")
    add_config_argument(p)
    add_source_argument(p)
    p.set_defaults(func=_run)
