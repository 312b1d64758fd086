"""`moodspeaker player`: the player daemon — mood events from the unix socket in, music out.

SIGTERM/SIGINT stop it cleanly; SIGHUP rebuilds everything from a freshly read config (a bad new config
keeps the old one running, and says why in the log and in `moodspeaker status`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from moodspeaker.commands import add_config_argument
from moodspeaker.config import Config, load_config
from moodspeaker.errors import ConfigError

log = logging.getLogger(__name__)


def _serve(config: Config) -> int:
    from moodspeaker.adapters.mood_socket import MoodSocketError, MoodSocketReceiver
    from moodspeaker.adapters.privacy_flag import PrivacyFlag
    from moodspeaker.adapters.sqlite_feedback import FeedbackStoreError
    from moodspeaker.app.lifecycle import ControlSignals, ServiceRuntime
    from moodspeaker.app.player import PlayerApp

    runtime = ServiceRuntime("player", config.service)
    privacy = PrivacyFlag(config.service.runtime_dir)
    app: PlayerApp | None = None

    def stop_app() -> None:
        if app is not None:
            app.service.stop()

    try:
        with ControlSignals(on_stop=stop_app, on_reload=stop_app) as signals:
            while not signals.stop.is_set():
                try:
                    privacy.set(False)  # a new player starts with privacy off; the flag follows its state
                    app = PlayerApp(config, on_iteration=runtime.iteration, on_privacy=privacy.set)
                    if signals.stop.is_set() or signals.reload.is_set():  # a signal came while building
                        app.service.stop()
                    with MoodSocketReceiver(config.mood_socket.path) as source:
                        asyncio.run(app.service.run(source))
                except (FeedbackStoreError, MoodSocketError) as exc:
                    print(f"moodspeaker player: {exc}", file=sys.stderr)
                    return 2
                finally:
                    if app is not None:
                        app.close()
                if not signals.take_reload():
                    break
                runtime.reloading()
                try:
                    config = load_config(config.source)
                    runtime.reloaded(True)
                except ConfigError as exc:
                    runtime.reloaded(False, str(exc))
        runtime.stopping()
    finally:
        runtime.close()
    return 0


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)  # a ConfigError is reported by cli.main
    return _serve(config)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("player", help="the player daemon: mood events -> playlists on MPD or Spotify, buttons, learning")
    add_config_argument(p)
    p.set_defaults(func=_run)
