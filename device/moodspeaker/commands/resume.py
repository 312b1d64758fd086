"""`moodspeaker resume`: hand the music back to the speaker after you took over from another client (stopped,
paused or replaced its music from a phone app or `mpc`); a button press on the speaker does the same."""

from __future__ import annotations

import argparse
from pathlib import Path

from moodspeaker.adapters.volume_request import ResumeRequest
from moodspeaker.commands import add_config_argument
from moodspeaker.commands.volume import _player_status, hand_to_player
from moodspeaker.config import load_config


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)  # a ConfigError is reported by cli.main
    runtime = args.runtime_dir or Path(config.service.runtime_dir)
    if _player_status(runtime).get("control", "speaker") == "speaker":
        print("the speaker is in control already: nothing to hand back")
        return 0
    request = ResumeRequest(runtime)
    hand_to_player(request, request.ask, "the request")
    print("handed back: the speaker plays the mood's music again")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resume", help="hand the music back to the speaker after you stopped, paused or replaced it "
                       "from another client")
    add_config_argument(p)
    p.add_argument("--runtime-dir", type=Path, default=None, help="the daemons' runtime folder "
                   "(default: [service] runtime_dir)")
    p.set_defaults(func=_run)
