"""`moodspeaker volume [N]`: show the speaker's volume, or set it (0-100, within [volume] maximum and, in the
quiet hours, quiet_max). The running player daemon takes the request within a second and applies it."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moodspeaker.adapters.state_file import StateFileError, read_state, state_path
from moodspeaker.adapters.volume_request import ResumeRequest, VolumeRequest
from moodspeaker.commands import add_config_argument
from moodspeaker.config import load_config
from moodspeaker.errors import SetupError, UsageError

TAKE_TIMEOUT_S = 3.0


def _player_state(runtime_dir: Path) -> dict[str, Any]:
    try:
        state = read_state(state_path(runtime_dir, "player"))
    except StateFileError as exc:
        raise SetupError(f"cannot read the player's state: {exc}") from None
    if not state or state.get("phase") != "running":
        raise SetupError("the player is not running (`moodspeaker status`; `sudo systemctl start moodspeaker-player`)")
    return state


def _player_status(runtime_dir: Path) -> dict[str, Any]:
    return _player_state(runtime_dir).get("status") or {}


def hand_to_player(request: VolumeRequest | ResumeRequest, ask: Callable[[], None], what: str) -> float:
    """Leave a request for the running player (`ask`) and wait until it takes it; the deadline it had to.
    A request not taken within TAKE_TIMEOUT_S is withdrawn, so a player that starts later does not act on it."""
    try:
        ask()
    except PermissionError:
        raise SetupError(f"cannot write {request.path}: permission denied; run it with sudo") from None
    deadline = time.monotonic() + TAKE_TIMEOUT_S
    while request.pending():
        if time.monotonic() > deadline:
            request.take()
            raise SetupError(f"the player did not take {what} within {TAKE_TIMEOUT_S:g} s; is it running? "
                             "(`moodspeaker status`)")
        time.sleep(0.1)
    return deadline


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)  # a ConfigError is reported by cli.main
    runtime = args.runtime_dir or Path(config.service.runtime_dir)
    if args.level is not None:
        if not 0 <= args.level <= 100:
            raise UsageError(f"volume {args.level}: give 0..100")
        _player_status(runtime)
        request = VolumeRequest(runtime)
        deadline = hand_to_player(request, lambda: request.ask(args.level), "the volume")
        taken_at = time.time()
        while _player_state(runtime).get("updated_at", 0) < taken_at + config.service.status_interval \
                and time.monotonic() < deadline + TAKE_TIMEOUT_S:  # a state written after the player applied it
            time.sleep(0.05)
    level = _player_status(runtime).get("volume")
    if level is None:
        print("volume unknown (the backend has not told it yet)")
    else:
        capped = " (capped: [volume] maximum or quiet hours)" if args.level is not None and level < args.level else ""
        print(f"volume {level}{capped}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("volume", help="show the volume, or set it: moodspeaker volume 40 (within [volume] maximum "
                       "and the quiet hours' cap)")
    p.add_argument("level", type=int, nargs="?", help="0..100; without it, show the volume")
    add_config_argument(p)
    p.add_argument("--runtime-dir", type=Path, default=None, help="the daemons' runtime folder "
                   "(default: [service] runtime_dir)")
    p.set_defaults(func=_run)
