"""Home Assistant over MQTT (paho-mqtt): the speaker as one device with a mood sensor, a confidence sensor, the
track, who is in control, a privacy switch, a pause switch, skip, like and mood-music buttons and a volume number.

Topics, for node_id N and discovery prefix P (Home Assistant's MQTT discovery):
- P/<component>/N/<entity>/config: one discovery config per entity, retained, sent on every (re)connect;
- moodspeaker/N/availability: the speaker's; "online" (retained) only once the current state is published, so
  Home Assistant never shows a previous run's retained values or placeholders as live; the last will (and a
  clean stop) sets "offline";
- moodspeaker/N/vision: "online" while vision is seen (it runs, captures, and its mood events arrive), else
  "offline": the mood and confidence entities need both, so a stopped, crashed or paused (privacy) camera
  makes them unavailable instead of showing a mood nobody shows;
- moodspeaker/N/{mood,confidence,track,control,privacy,paused,volume}: the states, retained, sent when they change;
  a track is never an empty payload (that would delete the retained message): nothing playing for a few
  seconds is "None", which Home Assistant shows as unknown;
- moodspeaker/N/{privacy/set, pause/set, skip/press, like/press, resume/press, volume/set}: commands from Home
  Assistant (resume: the owner hands the music back to the speaker, as `moodspeaker resume`).
  Retained messages there are ignored (a stale retained command would replay at every connect), and no
  payload, however odd, can raise out of the handler (an exception would end paho's network thread).
What leaves the speaker is the mood's name (an emotion or no_face), its confidence in percent, the playing
track's title and the control states: never a frame, never probabilities.

paho's network thread keeps the connection and reconnects with an exponential back-off (1 s to 60 s); the
command callbacks run on that thread, so they must be thread-safe (PlayerService.submit_* are).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moodspeaker import __version__
from moodspeaker.config import MqttConfig
from moodspeaker.core.mood import MOODS
from moodspeaker.errors import SetupError, UsageError

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 60
KEEPALIVE_S = 30
MAX_PAYLOAD = 64  # bytes: no command needs more
MAX_STATE = 255  # characters: Home Assistant refuses a longer sensor state
NOTHING_PLAYING = "None"  # Home Assistant's MQTT sensor turns this payload into "unknown"
IDLE_GRACE_S = 3.0  # a playlist load stops the music for a moment: "nothing playing" only after this long
NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")  # what Home Assistant's number sends, and no more
COMMAND_TOPICS = ("privacy/set", "pause/set", "skip/press", "like/press", "resume/press", "volume/set")


class CommandRefused(UsageError):
    """A message on a command topic that is not a command this speaker takes; it is ignored with one log line."""


@dataclass(frozen=True)
class Command:
    name: str  # privacy | pause | skip | like | resume | volume
    value: bool | int | None = None  # privacy/pause: on; volume: the level within the cap; the buttons: None


def parse_command(topic: str, payload: bytes, volume_max: int) -> Command:
    """One command from its topic (below moodspeaker/N/) and payload; raises CommandRefused saying why not.
    A volume is rounded and clipped to 0..`volume_max` (the cap in force)."""
    if topic not in COMMAND_TOPICS:
        raise CommandRefused(f"no command topic {topic[:60]!r}")
    if len(payload) > MAX_PAYLOAD:
        raise CommandRefused(f"a payload of {len(payload)} bytes on {topic} (at most {MAX_PAYLOAD})")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandRefused(f"a payload on {topic} that is not UTF-8 text") from None
    name = topic.split("/")[0]
    if name in ("privacy", "pause"):
        if text not in ("ON", "OFF"):
            raise CommandRefused(f"{text!r} on {topic} (ON or OFF)")
        return Command(name, text == "ON")
    if name == "volume":
        if not NUMBER.fullmatch(text):
            raise CommandRefused(f"{text!r} on {topic} (not a number)")
        number = float(text)
        if not math.isfinite(number):
            raise CommandRefused(f"{text!r} on {topic} (not a finite number)")
        return Command(name, max(0, min(volume_max, round(number))))
    return Command(name)  # a button: any payload is a press


@dataclass(frozen=True)
class BridgeCommands:
    """What Home Assistant can ask for; each runs on paho's thread."""

    privacy: Callable[[bool], None]
    skip: Callable[[], None]
    like: Callable[[], None]
    volume: Callable[[int], None]
    pause: Callable[[bool], None]  # True: pause, False: play on
    resume: Callable[[], None]  # the owner hands the music back to the speaker

    def run(self, command: Command) -> None:
        match command.name, command.value:
            case "privacy", bool(on):
                self.privacy(on)
            case "pause", bool(on):
                self.pause(on)
            case "volume", int(level):
                self.volume(level)
            case "skip", None:
                self.skip()
            case "like", None:
                self.like()
            case "resume", None:
                self.resume()
            case _:
                raise AssertionError(f"no such command: {command}")  # parse_command makes only the above


@dataclass(frozen=True)
class SpeakerState:
    """What the bridge shows; a None is not known now and is not published."""

    mood: str | None  # None: vision is not seen now (stopped, crashed, privacy): the mood entities are unavailable
    confidence: float  # of the mood, 0..1
    track: str  # the playing track's title; "" nothing plays
    control: str  # who decides what plays: "speaker", or "owner (...)" after another client took over
    paused: bool
    privacy: bool | None  # None: a change is on its way (published once applied, never the state before it)
    volume: int | None
    volume_max: int  # the cap in force: [volume] maximum, or the quiet hours' cap


class VisionPresence:
    """Whether vision is seen now, from what the player knows: its camera captures (the vision daemon's state
    file, or the vision thread under `moodspeaker run`), privacy is off, and a mood event arrived since the
    camera was last off and within `stale_s` (a few of vision's heartbeats). Pure: times passed in."""

    def __init__(self, stale_s: float) -> None:
        self.stale_s = stale_s
        self._lost_at: float | None = None

    def seen(self, now: float, heard_at: float | None, captures: bool, privacy: bool) -> bool:
        if privacy or not captures:
            self._lost_at = now
            return False
        if heard_at is None or now - heard_at > self.stale_s:
            return False
        return self._lost_at is None or heard_at > self._lost_at


class MqttBridge:
    def __init__(self, config: MqttConfig, commands: BridgeCommands, *, volume_max: int = 100) -> None:
        import paho.mqtt.client as mqtt

        self.config, self.commands, self.volume_max = config, commands, volume_max
        self.base = f"moodspeaker/{config.node_id}"
        self.availability = f"{self.base}/availability"
        self.vision = f"{self.base}/vision"
        self.last_error: str | None = None
        self.ignored = 0  # command messages ignored (retained, malformed): for tests and status
        self.connected = threading.Event()  # connected and subscribed: commands are heard
        self._online = threading.Event()  # "online" published: states are published as they change
        self._closing = False
        self._lock = threading.Lock()
        self._state: dict[str, str] = {}  # topic suffix -> the payload last published (sent again on reconnect)
        self._idle_since: float | None = None
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"moodspeaker-{config.node_id}")
        self._client.suppress_exceptions = True  # a bug in a callback is logged by paho, never ends its thread
        if config.username:
            self._client.username_pw_set(config.username, config.password or None)
        if config.tls:
            try:
                self._client.tls_set(ca_certs=config.ca_file or None)
            except (OSError, ValueError) as exc:
                raise SetupError(f"[mqtt] tls: cannot use the CA file {config.ca_file!r} ({exc})") from None
        self._client.will_set(self.availability, "offline", qos=1, retain=True)
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    def start(self) -> None:
        """Connect in the background; an unreachable broker is retried, never fatal."""
        try:
            self._client.connect_async(self.config.host, self.config.port, keepalive=KEEPALIVE_S)
        except (OSError, ValueError) as exc:
            raise SetupError(f"[mqtt] cannot use broker {self.config.host}:{self.config.port} ({exc})") from None
        self._client.loop_start()

    def close(self) -> None:
        """Say offline (retained) and disconnect; the last will covers a crash."""
        self._closing = True
        if self.connected.is_set():
            try:
                self._client.publish(self.availability, "offline", qos=1, retain=True).wait_for_publish(2)
            except (RuntimeError, ValueError) as exc:  # paho's: the connection went after the check above
                log.warning("MQTT: could not say offline on closing (%s); the broker's last will says it", exc)
        self._client.disconnect()
        self._client.loop_stop()

    def describe(self) -> str:
        """One line for `moodspeaker status`: connected, or why not."""
        where = f"{self.config.host}:{self.config.port}"
        if self.connected.is_set():
            return f"connected to {where} (Home Assistant discovery under {self.config.discovery_prefix}/)"
        return self.last_error or f"connecting to {where}"

    def publish_state(self, state: SpeakerState, now: float) -> None:
        """Publish what changed since the last call (each retained); the first call also says "online".
        `now`: monotonic seconds (how long nothing has played)."""
        payloads = self._payloads(state, now)
        with self._lock:
            cap_changed = state.volume_max != self.volume_max
            self.volume_max = state.volume_max
            changed = {k: v for k, v in payloads.items() if self._state.get(k) != v}
            self._state.update(changed)
            if not self.connected.is_set():
                return
            if not self._online.is_set():
                self._announce()
                return
        if cap_changed:  # the volume slider's end follows the cap (quiet hours)
            topic, config = self._entity_configs()["volume"]
            self._client.publish(topic, json.dumps(config), qos=1, retain=True)
        for key, payload in changed.items():
            self._client.publish(f"{self.base}/{key}", payload, qos=0, retain=True)

    def _payloads(self, state: SpeakerState, now: float) -> dict[str, str]:
        payloads = {"vision": "online" if state.mood is not None else "offline", "paused": _on_off(state.paused),
                    "control": state.control[:MAX_STATE]}
        if state.mood is not None:
            payloads.update(mood=state.mood, confidence=str(round(state.confidence * 100)))
        if state.track:
            self._idle_since = None
            payloads["track"] = state.track[:MAX_STATE]
        else:
            self._idle_since = now if self._idle_since is None else self._idle_since
            if now - self._idle_since >= IDLE_GRACE_S:
                payloads["track"] = NOTHING_PLAYING
        if state.privacy is not None:
            payloads["privacy"] = _on_off(state.privacy)
        if state.volume is not None:
            payloads["volume"] = str(state.volume)
        return payloads

    def _announce(self) -> None:
        """With the lock held, connected: the current state, then "online"."""
        for key, payload in self._state.items():
            self._client.publish(f"{self.base}/{key}", payload, qos=1, retain=True)
        self._client.publish(self.availability, "online", qos=1, retain=True)
        self._online.set()

    # --- paho's thread ---------------------------------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if reason.is_failure:
            self.last_error = f"MQTT broker {self.config.host}:{self.config.port} refused the connection ({reason})"
            log.error("%s; check [mqtt] username/password", self.last_error)
            return
        self.last_error = None
        client.subscribe([(f"{self.base}/{topic}", 1) for topic in COMMAND_TOPICS])
        log.info("MQTT: connected to %s:%d, Home Assistant discovery under %s/", self.config.host, self.config.port,
                 self.config.discovery_prefix)

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reasons: Any, properties: Any = None) -> None:
        for topic, config in self._entity_configs().values():
            client.publish(topic, json.dumps(config), qos=1, retain=True)
        with self._lock:
            self.connected.set()  # commands are heard from now on
            if self._state:  # a state is known: show it, then say online (else the first publish_state does)
                self._announce()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if self._closing:
            log.info("MQTT: disconnected from the broker")
        elif self.connected.is_set():
            log.warning("MQTT: lost the broker (%s); reconnecting", reason)
        self._online.clear()
        self.connected.clear()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        """A command; whatever it holds, nothing raises out of here (it would end paho's network thread)."""
        topic = str(message.topic)
        try:
            if message.retain:  # a stale command kept by the broker, replayed at subscribe: not the owner's now
                raise CommandRefused(f"a retained message on {topic} (commands are never retained; clear it with "
                                     f"`mosquitto_pub -r -n -t {topic}`)")
            command = parse_command(topic.removeprefix(f"{self.base}/"), bytes(message.payload), self.volume_max)
            self.commands.run(command)
        except CommandRefused as exc:
            self.ignored += 1
            log.warning("MQTT: ignored %s", exc)
        except Exception:  # a bug in a command handler: say so, keep the connection
            self.ignored += 1
            log.exception("MQTT: the command on %s failed", topic[:80])

    # --- discovery -----------------------------------------------------------------------------------------

    def discovery(self) -> dict[str, dict[str, Any]]:
        """Home Assistant discovery topic -> config, one per entity."""
        return dict(self._entity_configs().values())

    def _entity_configs(self) -> dict[str, tuple[str, dict[str, Any]]]:
        node, prefix, base = self.config.node_id, self.config.discovery_prefix, self.base
        device = {"identifiers": [f"moodspeaker-{node}"], "name": self.config.device_name,
                  "manufacturer": "moodspeaker", "model": "emotion-aware speaker", "sw_version": __version__}
        origin = {"name": "moodspeaker", "sw_version": __version__}
        speaker = {"availability_topic": self.availability}
        seen = {"availability": [{"topic": self.availability}, {"topic": self.vision}], "availability_mode": "all"}

        def entity(component: str, key: str, name: str, availability: dict[str, Any], **extra: Any) \
                -> tuple[str, tuple[str, dict[str, Any]]]:
            return key, (f"{prefix}/{component}/{node}/{key}/config",
                         {"name": name, "unique_id": f"moodspeaker_{node}_{key}", "device": device, "origin": origin,
                          **availability, **extra})

        return dict([
            entity("sensor", "mood", "Mood", seen, state_topic=f"{base}/mood", device_class="enum",
                   options=list(MOODS), icon="mdi:emoticon-outline"),
            entity("sensor", "confidence", "Mood confidence", seen, state_topic=f"{base}/confidence",
                   unit_of_measurement="%", state_class="measurement", entity_category="diagnostic",
                   icon="mdi:gauge"),
            entity("sensor", "track", "Track", speaker, state_topic=f"{base}/track", icon="mdi:music"),
            entity("sensor", "control", "Control", speaker, state_topic=f"{base}/control", icon="mdi:account-music"),
            entity("switch", "privacy", "Privacy mode", speaker, state_topic=f"{base}/privacy",
                   command_topic=f"{base}/privacy/set"),  # no icon: Home Assistant's changes with the state
            entity("switch", "paused", "Pause", speaker, state_topic=f"{base}/paused", command_topic=f"{base}/pause/set",
                   icon="mdi:play-pause"),
            entity("button", "skip", "Skip", speaker, command_topic=f"{base}/skip/press", icon="mdi:skip-next"),
            entity("button", "like", "Like", speaker, command_topic=f"{base}/like/press", icon="mdi:thumb-up"),
            entity("button", "resume", "Mood music", speaker, command_topic=f"{base}/resume/press",
                   icon="mdi:emoticon-happy-outline"),
            entity("number", "volume", "Volume", speaker, state_topic=f"{base}/volume",
                   command_topic=f"{base}/volume/set", min=0, max=self.volume_max, step=1, mode="slider",
                   unit_of_measurement="%", icon="mdi:volume-high"),
        ])


def _on_off(on: bool) -> str:
    return "ON" if on else "OFF"
