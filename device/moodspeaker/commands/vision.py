"""`moodspeaker vision`: the vision daemon — camera in, mood events out on the unix socket. No network.

SIGTERM/SIGINT stop it cleanly; SIGHUP rebuilds camera, detector, model, smoother and socket from a freshly
read config (a bad new config or model keeps the old setup running, and says why in `moodspeaker status`).
`--source` replaces the camera with a video file, an npz of frames or a folder of images; the daemon then
ends with the file.
"""

from __future__ import annotations

import argparse

from moodspeaker.commands import add_config_argument, add_source_argument, source_exists
from moodspeaker.config import Config, load_config


def _run(args: argparse.Namespace) -> int:
    from moodspeaker.adapters.mood_socket import MoodSocketSender
    from moodspeaker.adapters.privacy_flag import PrivacyFlag
    from moodspeaker.app.lifecycle import ControlSignals, Daemon
    from moodspeaker.app.vision import VisionService, VisionSetup, build_vision

    config = load_config(args.config)  # a ConfigError is reported by cli.main
    if not source_exists("vision", args.source):
        return 2

    def build(fresh: Config) -> VisionSetup:
        """The whole setup from a config (at start and, beside the running one, on each SIGHUP)."""
        sender = MoodSocketSender(fresh.mood_socket.path)
        try:
            return build_vision(fresh, sender, source=args.source, close=sender.close)
        except BaseException:
            sender.close()
            raise

    with Daemon("vision", config) as daemon, ControlSignals() as signals:
        privacy = PrivacyFlag(config.service.runtime_dir)

        def on_iteration(status: dict) -> None:
            daemon.runtime.iteration(status)
            if (on := privacy.changed()) is not None:  # the player's like-button hold: camera off / on
                service.set_paused(on)

        service = VisionService(lambda: build(config), on_iteration=on_iteration,
                                on_error=lambda why: daemon.runtime.error(why, "camera"),
                                on_recovered=lambda: daemon.runtime.clear_error("camera"),
                                on_reload=lambda: daemon.reload(build, service.swap))
        signals.on_reload = service.request_reload
        service.run(signals.stop)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vision", help="the vision daemon: camera -> face -> emotion -> mood events (no network)")
    add_config_argument(p)
    add_source_argument(p)
    p.set_defaults(func=_run)
