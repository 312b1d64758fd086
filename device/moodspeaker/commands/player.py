"""`moodspeaker player`: the player daemon — mood events from the unix socket in, music out.

SIGTERM/SIGINT stop it cleanly; SIGHUP builds backend, feedback store and policy from a freshly read config
beside the running ones and swaps them in only if that works (what plays, privacy mode and the counters carry
over; a failed reload keeps the old setup and says why in STATUS and `moodspeaker status`). Signals and the mood
socket are taken by the event loop. The status LED follows the vision daemon's camera, read from its state file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from moodspeaker.commands import add_config_argument
from moodspeaker.config import load_config

if TYPE_CHECKING:
    from moodspeaker.app.lifecycle import Daemon

log = logging.getLogger(__name__)


def vision_captures(runtime_dir: str, fresh_s: float) -> Callable[[], bool]:
    """Whether the vision daemon's camera captures now, from its state file (read as `moodspeaker status` reads
    it): vision runs, updated within `fresh_s`, and its loop analyses frames (not paused for privacy, not
    waiting to reopen the camera)."""
    from moodspeaker.commands.status import service_state

    def captures() -> bool:
        vision = service_state(Path(runtime_dir), "vision", fresh_s, time.time())
        return (vision["state"] == "running" and vision.get("phase") == "running"
                and vision.get("status", {}).get("state") == "running")

    return captures


def _run(args: argparse.Namespace) -> int:
    from moodspeaker.app.lifecycle import Daemon

    config = load_config(args.config)  # a ConfigError is reported by cli.main
    with Daemon("player", config) as daemon:
        asyncio.run(_serve(daemon))
    return 0


async def _serve(daemon: Daemon) -> None:
    """Signals through the loop from the start: the setup is built in a worker thread (a feedback database's check
    takes seconds) while they are heard, and a SIGTERM meanwhile stops the player as soon as it is built."""
    from moodspeaker.adapters.mood_socket import MoodSocketReceiver
    from moodspeaker.adapters.privacy_flag import PrivacyFlag
    from moodspeaker.app.player import call_timeout
    from moodspeaker.app.player_app import PlayerApp, build_setup

    config = daemon.config
    # The flag outlives the process (it is in the runtime folder): a restarted player finds it and starts in
    # privacy mode, so a crash or `systemctl restart` never turns the camera back on. A reboot clears it.
    privacy = PrivacyFlag(config.service.runtime_dir)
    with daemon.signals_on_loop():
        app = await asyncio.to_thread(
            PlayerApp, config, on_iteration=daemon.runtime.iteration, on_privacy=privacy.set,
            on_reload=lambda: daemon.reload_off_loop(build_setup, app.swap, app.discard, app.service.settle),
            camera_on=vision_captures(config.service.runtime_dir, fresh_s=3 * config.service.status_interval + 2),
            call_timeout_s=call_timeout(daemon.runtime.watchdog_interval), runtime_dir=config.service.runtime_dir)
        daemon.on_stop, daemon.on_reload = app.service.stop, app.service.request_reload
        if daemon.stop_requested:  # SIGTERM came while building
            app.service.stop()
        try:
            with MoodSocketReceiver(config.mood_socket.path) as source:  # a new [mood_socket] path needs a restart
                await app.service.run(source)
        finally:
            app.close()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("player", help="the player daemon: mood events -> playlists on MPD or Spotify, buttons, learning")
    add_config_argument(p)
    p.set_defaults(func=_run)
