"""`moodspeaker privacy on | off | status`: privacy mode (camera off, music on) for the owner over SSH.

The same flag file the like button's hold toggles: vision closes the camera within a second of it appearing,
and the player follows it (LED off, no mood changes) the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from moodspeaker.adapters.privacy_flag import PrivacyFlag
from moodspeaker.commands import add_config_argument
from moodspeaker.config import load_config
from moodspeaker.errors import SetupError


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)  # a ConfigError is reported by cli.main
    flag = PrivacyFlag(args.runtime_dir or Path(config.service.runtime_dir))
    if args.state != "status":
        try:
            flag.set(args.state == "on")
        except PermissionError:
            raise SetupError(f"cannot write {flag.path}: permission denied; run it with sudo "
                             "(or as the moodspeaker user)") from None
    print(f"privacy {'on: camera off, the music plays on' if flag.is_on() else 'off: the camera watches'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("privacy", help="turn privacy mode on or off (camera off, music on), or show it")
    p.add_argument("state", choices=("on", "off", "status"), help="on: camera off; off: camera on; status: show it")
    add_config_argument(p)
    p.add_argument("--runtime-dir", type=Path, default=None, help="the daemons' runtime folder "
                   "(default: [service] runtime_dir)")
    p.set_defaults(func=_run)
