"""The Home Assistant bridge against a real mosquitto: discovery, states, commands, last will, reconnect."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from moodspeaker.adapters.mqtt_bridge import BridgeCommands, MqttBridge
from moodspeaker.config import MqttConfig


class Listener:
    """Home Assistant's side: subscribes to everything, keeps the last message per topic, can send commands."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: queue.Queue[tuple[str, str, bool]] = queue.Queue()
        self.last: dict[str, str] = {}
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-home-assistant")
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.subscribe([("homeassistant/#", 1), ("moodspeaker/#", 1)])
        self._client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        payload = message.payload.decode()
        self.last[message.topic] = payload
        self.messages.put((message.topic, payload, bool(message.retain)))

    def wait_for(self, topic: str, payload: str | None = None, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            if topic in self.last and (payload is None or self.last[topic] == payload):
                return self.last[topic]
            try:
                self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {payload!r} on {topic} within {timeout} s; saw {self.last}") from None

    def send(self, topic: str, payload: str) -> None:
        self._client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def listener(mosquitto) -> Iterator[Listener]:
    client = Listener(mosquitto.host, mosquitto.port)
    yield client
    client.close()


class Commands:
    def __init__(self) -> None:
        self.seen: queue.Queue[tuple[str, object]] = queue.Queue()

    def bridge_commands(self) -> BridgeCommands:
        return BridgeCommands(privacy=lambda on: self.seen.put(("privacy", on)), skip=lambda: self.seen.put(("skip", None)),
                              like=lambda: self.seen.put(("like", None)), volume=lambda v: self.seen.put(("volume", v)))

    def next(self) -> tuple[str, object]:
        return self.seen.get(timeout=5)


def _bridge(mosquitto, commands: Commands, **overrides) -> MqttBridge:
    config = MqttConfig(host=mosquitto.host, port=mosquitto.port, node_id="living-room", **overrides)
    bridge = MqttBridge(config, commands.bridge_commands(), volume_max=80)
    bridge.start()
    assert bridge.connected.wait(10)
    return bridge


def test_discovery_configs_are_retained_and_describe_every_entity(mosquitto, listener: Listener) -> None:
    bridge = _bridge(mosquitto, Commands())
    try:
        expected = {"sensor/living-room/mood", "sensor/living-room/confidence", "sensor/living-room/track",
                    "switch/living-room/privacy", "button/living-room/skip", "button/living-room/like",
                    "number/living-room/volume"}
        for entity in expected:
            config = json.loads(listener.wait_for(f"homeassistant/{entity}/config"))
            assert config["availability_topic"] == "moodspeaker/living-room/availability"
            assert config["device"]["identifiers"] == ["moodspeaker-living-room"]
            assert config["unique_id"].startswith("moodspeaker_living-room_")
        volume = json.loads(listener.last["homeassistant/number/living-room/volume/config"])
        assert (volume["min"], volume["max"], volume["command_topic"]) == (0, 80, "moodspeaker/living-room/volume/set")
        assert listener.wait_for("moodspeaker/living-room/availability") == "online"
    finally:
        bridge.close()
    # A new subscriber (Home Assistant restarting) gets them from the broker: retained.
    late = Listener(mosquitto.host, mosquitto.port)
    try:
        assert json.loads(late.wait_for("homeassistant/sensor/living-room/mood/config"))["name"] == "Mood"
        assert late.wait_for("moodspeaker/living-room/availability") == "offline"  # a clean stop says so
    finally:
        late.close()


def test_states_are_published_when_they_change_and_only_label_confidence_and_title(mosquitto,
                                                                                    listener: Listener) -> None:
    bridge = _bridge(mosquitto, Commands())
    try:
        bridge.publish_state(mood="happy", confidence=0.834, track="Happy song 1", privacy=False, volume=40)
        assert listener.wait_for("moodspeaker/living-room/mood") == "happy"
        assert listener.wait_for("moodspeaker/living-room/confidence") == "83"
        assert listener.wait_for("moodspeaker/living-room/track") == "Happy song 1"
        assert listener.wait_for("moodspeaker/living-room/privacy") == "OFF"
        assert listener.wait_for("moodspeaker/living-room/volume") == "40"
        bridge.publish_state(mood="no_face", confidence=0.0, track="Happy song 1", privacy=True, volume=40)
        assert listener.wait_for("moodspeaker/living-room/privacy", "ON") == "ON"
        assert listener.last["moodspeaker/living-room/mood"] == "no_face"
        time.sleep(0.3)
        state_topics = {t for t in listener.last if t.startswith("moodspeaker/") and t != bridge.availability}
        assert state_topics == {f"moodspeaker/living-room/{k}" for k in ("mood", "confidence", "track", "privacy", "volume")}
        sent = []
        while not listener.messages.empty():
            sent.append(listener.messages.get())
        assert [t for t, _, _ in sent if t.endswith("/track")].count("moodspeaker/living-room/track") <= 1  # unchanged
    finally:
        bridge.close()


def test_commands_from_home_assistant_reach_the_player(mosquitto, listener: Listener) -> None:
    commands = Commands()
    bridge = _bridge(mosquitto, commands)
    try:
        listener.send("moodspeaker/living-room/privacy/set", "ON")
        assert commands.next() == ("privacy", True)
        listener.send("moodspeaker/living-room/skip/press", "PRESS")
        assert commands.next() == ("skip", None)
        listener.send("moodspeaker/living-room/like/press", "PRESS")
        assert commands.next() == ("like", None)
        listener.send("moodspeaker/living-room/volume/set", "95.0")  # above [volume] maximum: clipped
        assert commands.next() == ("volume", 80)
        listener.send("moodspeaker/living-room/volume/set", "loud")  # ignored, not a crash
        listener.send("moodspeaker/living-room/privacy/set", "OFF")
        assert commands.next() == ("privacy", False)
    finally:
        bridge.close()


BRIDGE_PROCESS = textwrap.dedent("""
    import sys, threading
    from moodspeaker.adapters.mqtt_bridge import BridgeCommands, MqttBridge
    from moodspeaker.config import MqttConfig
    noop = lambda *args: None
    bridge = MqttBridge(MqttConfig(host="127.0.0.1", port=int(sys.argv[1]), node_id="crashy"),
                        BridgeCommands(noop, noop, noop, noop))
    bridge.start()
    bridge.connected.wait(10)
    print("up", flush=True)
    threading.Event().wait()
""")


def test_a_crash_leaves_the_last_will_offline(mosquitto, listener: Listener) -> None:
    proc = subprocess.Popen([sys.executable, "-c", BRIDGE_PROCESS, str(mosquitto.port)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        assert listener.wait_for("moodspeaker/crashy/availability") == "online"
        proc.kill()  # kill -9: no goodbye; the broker publishes the will
        assert listener.wait_for("moodspeaker/crashy/availability", "offline") == "offline"
    finally:
        proc.kill()
        proc.wait()


def test_the_bridge_reconnects_after_the_broker_restarts_and_sends_everything_again(tmp_path: Path) -> None:
    from mosquitto_broker import Mosquitto

    broker = Mosquitto(tmp_path / "broker").start()
    bridge = _bridge(broker, Commands())
    try:
        bridge.publish_state(mood="sad", confidence=0.7, track="Sad song 2", privacy=False, volume=30)
        broker.stop()  # no persistence: everything retained is gone with it
        deadline = time.monotonic() + 5
        while bridge.connected.is_set():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        broker.start()
        assert bridge.connected.wait(15)  # paho's back-off starts at 1 s
        late = Listener(broker.host, broker.port)
        try:
            assert late.wait_for("moodspeaker/living-room/availability") == "online"
            assert late.wait_for("moodspeaker/living-room/mood") == "sad"  # the state, sent again
            assert json.loads(late.wait_for("homeassistant/switch/living-room/privacy/config"))["name"] == "Privacy mode"
        finally:
            late.close()
    finally:
        bridge.close()
        broker.stop()


def test_a_refused_login_is_reported_not_fatal(tmp_path: Path) -> None:
    from mosquitto_broker import Mosquitto

    broker = Mosquitto(tmp_path / "broker", anonymous=False).start()
    try:
        config = MqttConfig(host=broker.host, port=broker.port, username="speaker", password="wrong")
        bridge = MqttBridge(config, Commands().bridge_commands())
        bridge.start()
        deadline = time.monotonic() + 10
        while bridge.last_error is None:
            assert time.monotonic() < deadline, f"no error for a refused login; see {broker.state_dir}"
            time.sleep(0.05)
        assert "refused the connection" in bridge.last_error and not bridge.connected.is_set()
        assert bridge.describe() == bridge.last_error  # what `moodspeaker status` shows
        bridge.close()
    finally:
        broker.stop()


def test_the_listener_thread_is_not_left_running(mosquitto) -> None:
    before = threading.active_count()
    _bridge(mosquitto, Commands()).close()
    time.sleep(0.2)
    assert threading.active_count() <= before


def test_the_player_speaks_to_home_assistant_end_to_end(mpd_server, mosquitto, listener: Listener,
                                                        tmp_path: Path) -> None:
    import asyncio

    from test_player_service import mood, serve, until
    from test_volume_service import mpd_volume

    from moodspeaker.app.player import PlayerApp
    from moodspeaker.config import parse_config

    config = parse_config(f'[mpd]\nhost = "{mpd_server.host}"\nport = {mpd_server.port}\n[feedback]\n'
                          f'path = "{tmp_path / "fb.db"}"\n[buttons]\nenabled = false\n[player]\ncooldown_s = 0.0\n'
                          f'[volume]\nstart = 50\nmaximum = 90\n'
                          f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\nnode_id = "den"\n')
    app = PlayerApp(config)

    async def scenario() -> None:
        await until(lambda: app.bridge.connected.is_set(), timeout=10)
        app.service.send(mood("happy", 0.87))
        await asyncio.to_thread(listener.wait_for, "moodspeaker/den/mood", "happy")
        await until(lambda: listener.last.get("moodspeaker/den/track", "").startswith("Happy song"))
        assert listener.last["moodspeaker/den/track"].count(" - ") == 0  # the title only, not the artist or file
        assert listener.last["moodspeaker/den/confidence"] == "87"
        assert listener.last["moodspeaker/den/volume"] == "50"
        listener.send("moodspeaker/den/volume/set", "30")
        await until(lambda: mpd_volume(mpd_server) == 30)
        await asyncio.to_thread(listener.wait_for, "moodspeaker/den/volume", "30")
        listener.send("moodspeaker/den/privacy/set", "ON")
        await until(lambda: app.service.session.privacy)
        await asyncio.to_thread(listener.wait_for, "moodspeaker/den/privacy", "ON")
        listener.send("moodspeaker/den/skip/press", "PRESS")
        await until(lambda: app.service.session.tracks_started == 2)

    statuses: list[dict] = []
    app._on_iteration = statuses.append
    try:
        serve(app.service, scenario)
    finally:
        app.close()
    assert listener.wait_for("moodspeaker/den/availability", "offline") == "offline"
    assert statuses[-1]["mqtt"].startswith(f"connected to {mosquitto.host}:{mosquitto.port}")  # in the state file
