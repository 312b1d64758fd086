"""Home Assistant over MQTT (paho-mqtt): the speaker as one device with a mood sensor, a confidence sensor, the
track, a privacy switch, skip and like buttons and a volume number.

Topics, for node_id N and discovery prefix P (Home Assistant's MQTT discovery):
- P/<component>/N/<entity>/config: one discovery config per entity, retained, sent on every (re)connect;
- moodspeaker/N/availability: "online", retained; the last will (and a clean stop) sets "offline";
- moodspeaker/N/{mood,confidence,track,privacy,volume}: the states, retained, sent when they change;
- moodspeaker/N/{privacy/set, skip/press, like/press, volume/set}: commands from Home Assistant.
What leaves the speaker is the mood's name (an emotion or no_face), its confidence in percent, the playing
track's title and the two control states (privacy ON/OFF, volume): never a frame, never probabilities.

paho's network thread keeps the connection and reconnects with an exponential back-off (1 s to 60 s); the
command callbacks run on that thread, so they must be thread-safe (PlayerService.submit_* are).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moodspeaker.config import MqttConfig
from moodspeaker.errors import SetupError

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 60
KEEPALIVE_S = 30


@dataclass(frozen=True)
class BridgeCommands:
    """What Home Assistant can ask for; each runs on paho's thread."""

    privacy: Callable[[bool], None]
    skip: Callable[[], None]
    like: Callable[[], None]
    volume: Callable[[int], None]


class MqttBridge:
    def __init__(self, config: MqttConfig, commands: BridgeCommands, *, volume_max: int = 100) -> None:
        import paho.mqtt.client as mqtt

        self.config, self.commands, self.volume_max = config, commands, volume_max
        self.base = f"moodspeaker/{config.node_id}"
        self.availability = f"{self.base}/availability"
        self.last_error: str | None = None
        self.connected = threading.Event()  # connected and subscribed: commands are heard
        self._online = threading.Event()  # connected: states are published as they change
        self._lock = threading.Lock()
        self._state: dict[str, str] = {}  # topic suffix -> the payload last published (sent again on reconnect)
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"moodspeaker-{config.node_id}")
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
        if self._online.is_set():
            self._client.publish(self.availability, "offline", qos=1, retain=True).wait_for_publish(2)
        self._client.disconnect()
        self._client.loop_stop()

    def describe(self) -> str:
        """One line for `moodspeaker status`: connected, or why not."""
        where = f"{self.config.host}:{self.config.port}"
        if self.connected.is_set():
            return f"connected to {where} (Home Assistant discovery under {self.config.discovery_prefix}/)"
        return self.last_error or f"connecting to {where}"

    def publish_state(self, *, mood: str, confidence: float, track: str, privacy: bool, volume: int | None) -> None:
        """Publish what changed since the last call (each retained)."""
        state = {"mood": mood, "confidence": str(round(confidence * 100)), "track": track,
                 "privacy": "ON" if privacy else "OFF"}
        if volume is not None:
            state["volume"] = str(volume)
        with self._lock:
            changed = {k: v for k, v in state.items() if self._state.get(k) != v}
            self._state.update(changed)
        if self._online.is_set():
            for key, payload in changed.items():
                self._client.publish(f"{self.base}/{key}", payload, qos=0, retain=True)

    # --- paho's thread ---------------------------------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if reason.is_failure:
            self.last_error = f"MQTT broker {self.config.host}:{self.config.port} refused the connection ({reason})"
            log.error("%s; check [mqtt] username/password", self.last_error)
            return
        self.last_error = None
        for topic, payload in self.discovery().items():
            client.publish(topic, json.dumps(payload), qos=1, retain=True)
        client.publish(self.availability, "online", qos=1, retain=True)
        self._online.set()  # a state that changes from now on is published by publish_state, the rest here
        with self._lock:
            state = dict(self._state)
        for key, payload in state.items():
            client.publish(f"{self.base}/{key}", payload, qos=0, retain=True)
        client.subscribe([(f"{self.base}/{name}", 1) for name in ("privacy/set", "skip/press", "like/press",
                                                                   "volume/set")])
        log.info("MQTT: connected to %s:%d, Home Assistant discovery under %s/", self.config.host, self.config.port,
                 self.config.discovery_prefix)

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reasons: Any, properties: Any = None) -> None:
        self.connected.set()  # commands are heard from now on

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if self.connected.is_set():
            log.warning("MQTT: lost the broker (%s); reconnecting", reason)
        self._online.clear()
        self.connected.clear()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        command = message.topic.removeprefix(f"{self.base}/")
        payload = message.payload.decode("utf-8", "replace").strip()
        try:
            if command == "privacy/set" and payload in ("ON", "OFF"):
                self.commands.privacy(payload == "ON")
            elif command == "skip/press":
                self.commands.skip()
            elif command == "like/press":
                self.commands.like()
            elif command == "volume/set":
                self.commands.volume(max(0, min(self.volume_max, round(float(payload)))))
            else:
                log.warning("MQTT: ignored %r on %s", payload[:40], message.topic)
        except ValueError:
            log.warning("MQTT: ignored %r on %s (not a number)", payload[:40], message.topic)

    # --- discovery -----------------------------------------------------------------------------------------

    def discovery(self) -> dict[str, dict[str, Any]]:
        """Home Assistant discovery topic -> config, one per entity."""
        node, prefix = self.config.node_id, self.config.discovery_prefix
        device = {"identifiers": [f"moodspeaker-{node}"], "name": self.config.device_name, "manufacturer": "moodspeaker",
                  "model": "emotion-aware speaker"}

        def entity(component: str, key: str, name: str, **extra: Any) -> tuple[str, dict[str, Any]]:
            return (f"{prefix}/{component}/{node}/{key}/config",
                    {"name": name, "unique_id": f"moodspeaker_{node}_{key}", "availability_topic": self.availability,
                     "device": device, **extra})

        return dict([
            entity("sensor", "mood", "Mood", state_topic=f"{self.base}/mood", icon="mdi:emoticon-outline"),
            entity("sensor", "confidence", "Mood confidence", state_topic=f"{self.base}/confidence",
                   unit_of_measurement="%", state_class="measurement"),
            entity("sensor", "track", "Track", state_topic=f"{self.base}/track", icon="mdi:music"),
            entity("switch", "privacy", "Privacy mode", state_topic=f"{self.base}/privacy",
                   command_topic=f"{self.base}/privacy/set", icon="mdi:camera-off"),
            entity("button", "skip", "Skip", command_topic=f"{self.base}/skip/press", icon="mdi:skip-next"),
            entity("button", "like", "Like", command_topic=f"{self.base}/like/press", icon="mdi:thumb-up"),
            entity("number", "volume", "Volume", state_topic=f"{self.base}/volume",
                   command_topic=f"{self.base}/volume/set", min=0, max=self.volume_max, step=1, mode="slider"),
        ])
