"""`moodspeaker run`: vision and player in one process, for development and the demo (the appliance runs them
as two daemons). `--source` analyses a video file instead of the camera and ends with it. It is the player and
vision to the other commands: it writes their state files in [service] runtime_dir and follows the privacy flag
and volume requests there, so `moodspeaker status`, `privacy` and `volume` work against it, and it speaks
sd_notify (READY, WATCHDOG from the player's loop, STATUS) like the daemons, so it can run under systemd too.
SIGHUP reloads the config and model like the daemons do (a `--source` file goes on where it was); SIGTERM/Ctrl-C
stops."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path

from moodspeaker.commands import add_config_argument, add_source_argument, source_exists
from moodspeaker.config import load_config
from moodspeaker.errors import SetupError


def _run(args: argparse.Namespace) -> int:
    from moodspeaker.adapters.sd_notify import SystemdNotifier
    from moodspeaker.app.lifecycle import Daemon, ServiceRuntime
    from moodspeaker.app.player import call_timeout
    from moodspeaker.app.run import run_together
    from moodspeaker.commands.status import service_state

    config = load_config(args.config)  # a ConfigError is reported by cli.main
    if not source_exists("run", args.source):
        return 2
    runtime_dir = config.service.runtime_dir
    for name in ("player", "vision"):
        if service_state(Path(runtime_dir), name, stale_after=60.0, now=time.time())["state"] in ("running", "stuck"):
            raise SetupError(f"the {name} daemon is running (`moodspeaker status`); stop it first "
                             "(`sudo systemctl stop moodspeaker-vision moodspeaker-player`)")
    with contextlib.suppress(OSError):  # systemd makes it for the daemons; without it, `run` says once it cannot write
        Path(runtime_dir).mkdir(parents=True, exist_ok=True)
    seeing = ServiceRuntime("vision", config.service, notifier=SystemdNotifier({}))  # its state file only
    with Daemon("player", config) as daemon:
        try:
            status = asyncio.run(run_together(config, args.source, daemon, on_iteration=daemon.runtime.iteration,
                                              on_vision_iteration=seeing.iteration, runtime_dir=runtime_dir,
                                              call_timeout_s=call_timeout(daemon.runtime.watchdog_interval)))
        except BaseException as exc:
            seeing.close(clean=isinstance(exc, KeyboardInterrupt), why=str(exc))
            raise
        seeing.stopping()
        seeing.close()
    print(f"run: {status['mood_changes']} mood changes, {status['tracks_started']} tracks started, {status['errors']} errors")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="vision and player in one process (development, demo)")
    add_config_argument(p)
    add_source_argument(p)
    p.set_defaults(func=_run)
