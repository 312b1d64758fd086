"""The player side wired from the config: the backend, feedback store and mood policy (a `PlayerSetup`, built
again beside the running one on reload), and around the service the parts the owner touches: GPIO buttons and
the status LED, the Home Assistant bridge, and the requests left in the runtime folder by `moodspeaker privacy`,
`volume` and `resume`. The loop that runs it all is app.player.PlayerService.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from moodspeaker.app.player import CALL_TIMEOUT_S, PlayerService
from moodspeaker.config import Config, PlayerConfig
from moodspeaker.core.domain import ButtonAction
from moodspeaker.core.policy import MoodPolicy
from moodspeaker.ports import Player

log = logging.getLogger(__name__)


def policy_from_config(config: Config) -> MoodPolicy:
    """The mood policy; in MPD's library modes with the default [player] playlists, each key names its own
    folder or tag value (moods/happy/, genre "happy") instead of the stored playlist mood-happy."""
    p = config.player
    playlists = p.playlists
    if config.player.backend == "mpd" and config.mpd.library != "playlists" and playlists == PlayerConfig().playlists:
        playlists = {key: key for key in playlists}
    return MoodPolicy(playlists, p.strategy, p.lift, p.cooldown_s, switch_at_once=p.switch == "at_once")


def _quietly(close: Callable[[], None], what: str) -> None:
    try:
        close()
    except Exception as exc:  # a part being replaced: the new one matters now
        log.warning("player: %s failed: %s", what, exc)


def build_player(config: Config) -> Player:
    """The backend named by [player] backend, configured from its own section."""
    if config.player.backend == "spotify":
        from moodspeaker.adapters.spotify_player import SpotifyPlayer

        return SpotifyPlayer.from_config(config.spotify)
    from moodspeaker.adapters.mpd_player import MpdPlayer

    return MpdPlayer.from_config(config.mpd)


@dataclass
class PlayerSetup:
    """What one (re)build from the config makes; the buttons belong to PlayerApp (they keep their pins)."""

    config: Config
    player: Player
    store: Any  # SqliteFeedbackStore: a FeedbackStore that is closed with the setup
    policy: MoodPolicy


def build_setup(config: Config) -> PlayerSetup:
    """Backend, feedback store and policy from `config`; raises (ConfigError, SetupError, ...) if any cannot be made."""
    from moodspeaker.adapters.sqlite_feedback import SqliteFeedbackStore

    policy = policy_from_config(config)
    # music first: a corrupt file is kept aside, a full disk keeps events in memory until there is room
    store = SqliteFeedbackStore(config.feedback.path, move_corrupt_aside=True, wait_for_room=True)
    try:
        player = build_player(config)
    except BaseException:
        store.close()
        raise
    return PlayerSetup(config, player, store, policy)


class PlayerApp:
    """The player side wired from the config: backend, policy, feedback store, buttons and status LED.

    `on_privacy(on)` lets the owner of the camera turn it off (the vision daemon through the privacy flag, or
    vision in the same process). `camera_on()` says whether the camera really captures now; the LED follows it.
    `swap(setup)` takes a reload's new setup (see Daemon.reload_off_loop). A machine without usable GPIO runs
    without buttons, with a warning. With `runtime_dir` it follows the owner's commands there: the privacy flag
    (`moodspeaker privacy`), volume and resume requests (`moodspeaker volume`, `resume`). With [mqtt] host set it
    runs the Home Assistant bridge.
    """

    def __init__(self, config: Config, on_iteration: Callable[[dict[str, Any]], None] | None = None,
                 on_privacy: Callable[[bool], None] | None = None, on_reload: Callable[[], Awaitable[Any]] | None = None,
                 camera_on: Callable[[], bool] | None = None, call_timeout_s: float = CALL_TIMEOUT_S,
                 pin_factory: Any = None, runtime_dir: str | None = None) -> None:
        from moodspeaker.adapters.privacy_flag import PrivacyFlag
        from moodspeaker.adapters.volume_request import ResumeRequest, VolumeRequest

        self._pin_factory = pin_factory
        self._camera_on = camera_on
        self._on_iteration = on_iteration
        self._privacy_flag = PrivacyFlag(runtime_dir) if runtime_dir else None
        self._volume_request = VolumeRequest(runtime_dir) if runtime_dir else None
        self._resume_request = ResumeRequest(runtime_dir) if runtime_dir else None
        self.buttons: Any = None  # GpioButtons, when the config enables them and GPIO is usable
        self.bridge: Any = None  # MqttBridge, when [mqtt] host is set
        self.setup = build_setup(config)
        self.service = PlayerService(self.setup.player, self.setup.policy, self.setup.store,
                                     backend=config.player.backend, early_skip_s=config.player.early_skip_s,
                                     on_iteration=self._iteration, on_privacy=on_privacy, on_reload=on_reload,
                                     call_timeout_s=call_timeout_s, volume=config.volume)
        self._open_buttons(config)
        self._open_bridge(config)

    def _open_bridge(self, config: Config) -> None:
        if not config.mqtt.host:
            return
        from moodspeaker.adapters.mqtt_bridge import BridgeCommands, MqttBridge, VisionPresence

        service = self.service
        self.bridge = MqttBridge(config.mqtt, BridgeCommands(
            privacy=service.submit_privacy, skip=lambda: service.submit_action(ButtonAction.SKIP),
            like=lambda: service.submit_action(ButtonAction.LIKE), volume=service.submit_volume,
            pause=self._pause, resume=service.submit_resume), volume_max=config.volume.maximum)
        self._vision = VisionPresence(stale_s=3 * config.smoother.heartbeat_s + 1)
        self.bridge.start()

    def _pause(self, on: bool) -> None:
        """Pause (True) or resume: the skip button's hold, a toggle, when it changes something."""
        if on != self.service.session.paused:
            self.service.submit_action(ButtonAction.PAUSE)

    def _close_bridge(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None

    def _open_buttons(self, config: Config) -> None:
        from moodspeaker.adapters.gpio_buttons import GpioButtons, GpioUnavailable

        if not config.buttons.enabled:
            return
        try:
            self.buttons = GpioButtons(config.buttons, self.service.submit_action, pin_factory=self._pin_factory)
        except GpioUnavailable as exc:
            log.warning("%s; running without buttons", exc)
            return
        self._update_led()

    def _close_buttons(self) -> None:
        if self.buttons is not None:
            self.buttons.set_led(False)
            self.buttons.close()
            self.buttons = None

    def _update_led(self) -> None:
        if self.buttons is not None:
            self.buttons.set_led(self._camera_on() if self._camera_on is not None else not self.service.session.privacy)

    def _iteration(self, status: dict[str, Any]) -> None:
        self._update_led()
        privacy_pending = self._follow_owner(status)
        if self.bridge is not None:
            from moodspeaker.adapters.mqtt_bridge import SpeakerState

            now = time.monotonic()
            captures = self._camera_on() if self._camera_on is not None else True
            seen = self._vision.seen(now, self.service.mood_heard_at, captures, status["privacy"])
            self.bridge.publish_state(SpeakerState(
                mood=status["mood"] if seen else None, confidence=status["confidence"],
                track=status["title"] or status["track"],  # a file without a title tag: its name
                control=status["control"],
                paused=status["paused"], privacy=None if privacy_pending else status["privacy"],
                volume=status["volume"], volume_max=status["volume_cap"]), now)
            status = {**status, "mqtt": self.bridge.describe()}
        if self._on_iteration is not None:
            self._on_iteration(status)

    def _follow_owner(self, status: dict[str, Any]) -> bool:
        """`moodspeaker privacy` / `volume` / `resume` from the runtime folder (the flag is polled once a second).
        True when privacy mode is about to change (`status` shows the state before it)."""
        privacy_pending = False
        if self._privacy_flag is not None and (on := self._privacy_flag.changed()) is not None \
                and on != status["privacy"]:
            self.service.submit_privacy(on)
            privacy_pending = True
        if self._volume_request is not None and (level := self._volume_request.take()) is not None:
            self.service.submit_volume(level)
        if self._resume_request is not None and self._resume_request.take():
            self.service.submit_resume()
        return privacy_pending

    def swap(self, new: PlayerSetup) -> None:
        """Continue with a reload's setup (called from the player loop). What may fail comes first (the bridge,
        the buttons: reopened only if their settings changed), so a swap that raises leaves the old backend and
        store serving (see `discard`); then the service takes the new ones, the old store closes, and the old
        backend is closed by the loop. A part of the old setup that fails to close is a warning, not a failure."""
        old = self.setup
        if new.config.mqtt != old.config.mqtt or new.config.volume.maximum != old.config.volume.maximum:
            _quietly(self._close_bridge, "closing the Home Assistant bridge")
            self._open_bridge(new.config)
        if new.config.buttons != old.config.buttons:
            _quietly(self._close_buttons, "closing the buttons")
            self._open_buttons(new.config)
        self.setup = new
        self.service.replace(new.player, new.store, new.policy, new.config.player.early_skip_s, new.config.player.backend,
                             new.config.volume)
        _quietly(old.store.close, "closing the previous feedback store")

    def discard(self, new: PlayerSetup) -> None:
        """A reload's setup that failed to swap in: its store closes now, its backend by the loop."""
        new.store.close()
        self.service.retire(new.player)

    def close(self) -> None:
        self._close_bridge()
        self._close_buttons()
        self.setup.store.close()
