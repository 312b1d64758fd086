"""The Home Assistant bridge against a real mosquitto: discovery, states, commands, last will, reconnect; what a
Home Assistant user would trip over (a stale mood shown as live, a privacy flip at start, an empty track, replayed
retained commands, one payload that ends the client's network thread); the command parser under hypothesis."""

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
from hypothesis import given
from hypothesis import strategies as st

from moodspeaker import __version__
from moodspeaker.adapters.mqtt_bridge import (
    COMMAND_TOPICS,
    IDLE_GRACE_S,
    NOTHING_PLAYING,
    BridgeCommands,
    Command,
    MqttBridge,
    SpeakerState,
    VisionPresence,
    parse_command,
)
from moodspeaker.config import MqttConfig
from moodspeaker.core.mood import MOODS
from moodspeaker.errors import MoodspeakerError


class Listener:
    """Home Assistant's side: subscribes to everything, keeps the last message per topic, can send commands."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: queue.Queue[tuple[str, str, bool]] = queue.Queue()
        self.log: list[tuple[str, str]] = []  # every (topic, payload), in the order they arrived
        self.last: dict[str, str] = {}
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-home-assistant")
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.subscribe([("homeassistant/#", 1), ("moodspeaker/#", 1)])
        self._client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        payload = message.payload.decode("utf-8", "replace")
        self.log.append((message.topic, payload))
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

    def send(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def payloads(self, topic: str) -> list[str]:
        return [payload for t, payload in list(self.log) if t == topic]

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
                              like=lambda: self.seen.put(("like", None)), volume=lambda v: self.seen.put(("volume", v)),
                              pause=lambda on: self.seen.put(("pause", on)), resume=lambda: self.seen.put(("resume", None)))

    def next(self) -> tuple[str, object]:
        return self.seen.get(timeout=5)


def _bridge(mosquitto, commands: Commands, **overrides) -> MqttBridge:
    config = MqttConfig(host=mosquitto.host, port=mosquitto.port, node_id="living-room", **overrides)
    bridge = MqttBridge(config, commands.bridge_commands(), volume_max=80)
    bridge.start()
    assert bridge.connected.wait(10)
    return bridge


def state(**changes) -> SpeakerState:
    """A speaker with vision seen, playing, privacy off, volume 40 of 80; `changes` override."""
    values = {"mood": "happy", "confidence": 0.834, "track": "Happy song 1", "control": "speaker", "paused": False,
              "privacy": False, "volume": 40, "volume_max": 80}
    return SpeakerState(**{**values, **changes})


def wait_until(condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.02)


def test_discovery_configs_are_retained_and_describe_every_entity(mosquitto, listener: Listener) -> None:
    bridge = _bridge(mosquitto, Commands())
    try:
        expected = {"sensor/living-room/mood", "sensor/living-room/confidence", "sensor/living-room/track",
                    "sensor/living-room/control", "switch/living-room/privacy", "switch/living-room/paused",
                    "button/living-room/skip", "button/living-room/like", "button/living-room/resume",
                    "number/living-room/volume"}
        configs = {entity: json.loads(listener.wait_for(f"homeassistant/{entity}/config")) for entity in expected}
        for entity, config in configs.items():
            assert config["device"]["identifiers"] == ["moodspeaker-living-room"]
            assert config["device"]["sw_version"] == __version__
            assert config["origin"] == {"name": "moodspeaker", "sw_version": __version__}
            assert config["unique_id"].startswith("moodspeaker_living-room_")
            if entity.startswith("sensor/living-room/mood") or entity.endswith("confidence"):
                # the mood is live only while both the speaker and vision are
                assert config["availability"] == [{"topic": "moodspeaker/living-room/availability"},
                                                  {"topic": "moodspeaker/living-room/vision"}]
                assert config["availability_mode"] == "all"
            else:
                assert config["availability_topic"] == "moodspeaker/living-room/availability"
        mood = configs["sensor/living-room/mood"]
        assert (mood["device_class"], mood["options"]) == ("enum", list(MOODS))
        assert "unit_of_measurement" not in mood and "state_class" not in mood  # Home Assistant refuses them with enum
        confidence = configs["sensor/living-room/confidence"]
        assert (confidence["unit_of_measurement"], confidence["entity_category"]) == ("%", "diagnostic")
        volume = configs["number/living-room/volume"]
        assert (volume["min"], volume["max"], volume["unit_of_measurement"], volume["command_topic"]) == \
            (0, 80, "%", "moodspeaker/living-room/volume/set")
        assert configs["switch/living-room/paused"]["command_topic"] == "moodspeaker/living-room/pause/set"
        bridge.publish_state(state(), now=0.0)
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
        bridge.publish_state(state(), now=0.0)
        assert listener.wait_for("moodspeaker/living-room/mood") == "happy"
        assert listener.wait_for("moodspeaker/living-room/confidence") == "83"
        assert listener.wait_for("moodspeaker/living-room/track") == "Happy song 1"
        assert listener.wait_for("moodspeaker/living-room/privacy") == "OFF"
        assert listener.wait_for("moodspeaker/living-room/paused") == "OFF"
        assert listener.wait_for("moodspeaker/living-room/control") == "speaker"
        assert listener.wait_for("moodspeaker/living-room/volume") == "40"
        assert listener.wait_for("moodspeaker/living-room/vision") == "online"
        bridge.publish_state(state(mood="no_face", confidence=0.0, privacy=True), now=1.0)
        bridge.publish_state(state(mood="sad", confidence=0.5, privacy=True, paused=True), now=2.0)
        assert listener.wait_for("moodspeaker/living-room/mood", "sad") == "sad"
        assert listener.wait_for("moodspeaker/living-room/paused", "ON") == "ON"
        assert listener.payloads("moodspeaker/living-room/mood") == ["happy", "no_face", "sad"]
        assert listener.payloads("moodspeaker/living-room/privacy") == ["OFF", "ON"]
        assert listener.payloads("moodspeaker/living-room/track") == ["Happy song 1"]  # unchanged: sent once
        state_topics = {t for t in listener.last if t.startswith("moodspeaker/") and t != bridge.availability}
        assert state_topics == {f"moodspeaker/living-room/{k}"
                                for k in ("mood", "confidence", "track", "control", "privacy", "paused", "volume",
                                          "vision")}
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
        listener.send("moodspeaker/living-room/pause/set", "ON")
        assert commands.next() == ("pause", True)
        listener.send("moodspeaker/living-room/resume/press", "PRESS")
        assert commands.next() == ("resume", None)
        assert bridge.ignored == 1
    finally:
        bridge.close()


BRIDGE_PROCESS = textwrap.dedent("""
    import sys, threading
    from moodspeaker.adapters.mqtt_bridge import BridgeCommands, MqttBridge
    from moodspeaker.config import MqttConfig
    from moodspeaker.adapters.mqtt_bridge import SpeakerState
    noop = lambda *args: None
    bridge = MqttBridge(MqttConfig(host="127.0.0.1", port=int(sys.argv[1]), node_id="crashy"),
                        BridgeCommands(noop, noop, noop, noop, noop, noop))
    bridge.start()
    bridge.connected.wait(10)
    bridge.publish_state(SpeakerState(None, 0.0, "", "speaker", False, False, 50, 100), now=0.0)
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
        bridge.publish_state(state(mood="sad", confidence=0.7, track="Sad song 2", volume=30), now=0.0)
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


def test_a_broker_gone_while_closing_is_a_warning_not_pahos_error(tmp_path: Path, caplog) -> None:
    """H: the broker went away between close()'s connected check and its "offline" publish: paho's RuntimeError
    ("The client is not currently connected.") escaped close(), and ended the player's stop with a traceback."""
    from mosquitto_broker import Mosquitto

    broker = Mosquitto(tmp_path / "broker").start()
    bridge = _bridge(broker, Commands())
    broker.stop()
    wait_until(lambda: not bridge.connected.is_set(), what="paho sees the broker gone")
    bridge.connected.set()  # the moment before paho noticed: close() believes it is still connected
    bridge.close()
    assert any(r.levelname == "WARNING" and "could not say offline" in r.getMessage() for r in caplog.records)


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
    _bridge(mosquitto, Commands()).close()  # paho's loop_stop joins its network thread
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


# --- what anyone on the broker could do to the speaker (cases 7 and 8) ----------------------------------------------

NASTY_VOLUMES = ["inf", "-inf", "1e999", "nan", "9" * 400, "0x10", "", " ", "\x00", "½", "1_0", "٣"]


def test_no_payload_ends_the_clients_network_thread(mosquitto, listener: Listener, caplog) -> None:
    """`volume/set inf` used to raise OverflowError on paho's thread: no more commands, no reconnect, ever."""
    commands = Commands()
    bridge = _bridge(mosquitto, commands)
    try:
        for payload in NASTY_VOLUMES:
            listener.send("moodspeaker/living-room/volume/set", payload)
        listener.send("moodspeaker/living-room/volume/set", b"\xff\xfe\x00")  # not UTF-8
        listener.send("moodspeaker/living-room/volume/set", b"5" * 100_000)  # far too long
        listener.send("moodspeaker/living-room/privacy/set", "on")  # HA's payloads are ON/OFF
        wait_until(lambda: bridge.ignored == len(NASTY_VOLUMES) + 3, what="every bad payload counted as ignored")
        listener.send("moodspeaker/living-room/volume/set", "1" + "0" * 60)  # finite: the cap
        assert commands.next() == ("volume", 80)  # still listening
        listener.send("moodspeaker/living-room/volume/set", "30")
        assert commands.next() == ("volume", 30)
        assert commands.seen.empty() and bridge.connected.is_set()
    finally:
        bridge.close()


def test_a_failing_command_handler_is_logged_and_the_bridge_keeps_listening(mosquitto, listener: Listener,
                                                                             caplog) -> None:
    commands = Commands()
    config = MqttConfig(host=mosquitto.host, port=mosquitto.port, node_id="living-room")

    def broken(level: int) -> None:
        raise OverflowError("a bug in the player")

    bridge = MqttBridge(config, BridgeCommands(privacy=lambda on: commands.seen.put(("privacy", on)), skip=lambda: None,
                                               like=lambda: None, volume=broken, pause=lambda on: None,
                                               resume=lambda: None))
    bridge.start()
    try:
        assert bridge.connected.wait(10)
        listener.send("moodspeaker/living-room/volume/set", "20")
        wait_until(lambda: bridge.ignored == 1, what="the failed command counted")
        listener.send("moodspeaker/living-room/privacy/set", "ON")
        assert commands.next() == ("privacy", True)
        assert "a bug in the player" in caplog.text
    finally:
        bridge.close()


def test_retained_commands_are_not_replayed_at_connect(mosquitto, listener: Listener) -> None:
    """A stale retained `privacy/set OFF` used to undo the owner's privacy at every start and reconnect."""
    retained = {"privacy/set": "OFF", "volume/set": "10", "like/press": "PRESS", "skip/press": "PRESS",
                "pause/set": "ON", "resume/press": "PRESS"}
    for topic, payload in retained.items():
        listener.send(f"moodspeaker/living-room/{topic}", payload, retain=True)
    commands = Commands()
    bridge = _bridge(mosquitto, commands)
    try:
        wait_until(lambda: bridge.ignored == len(retained), what="the retained commands ignored")
        listener.send("moodspeaker/living-room/privacy/set", "ON")  # a live one is heard
        assert commands.next() == ("privacy", True)
        assert commands.seen.empty()
    finally:
        bridge.close()


@given(topic=st.sampled_from([*COMMAND_TOPICS, "volume", "set", "privacy/set/x", ""]),
       payload=st.one_of(st.binary(max_size=200), st.text(max_size=80).map(str.encode),
                         st.floats().map(lambda x: repr(x).encode()),
                         st.integers(min_value=-10**400, max_value=10**400).map(lambda x: str(x).encode())),
       volume_max=st.integers(min_value=0, max_value=100))
def test_the_command_parser_answers_any_payload_with_a_command_or_our_error(topic: str, payload: bytes,
                                                                            volume_max: int) -> None:
    try:
        command = parse_command(topic, payload, volume_max)
    except MoodspeakerError:
        return
    assert topic in COMMAND_TOPICS
    if command.name == "volume":
        assert isinstance(command.value, int) and 0 <= command.value <= volume_max
    elif command.name in ("privacy", "pause"):
        assert isinstance(command.value, bool)
    else:
        assert command == Command(topic.split("/")[0])


# --- what Home Assistant shows (cases 1-4 and 6) -------------------------------------------------------------------

def test_the_speaker_says_online_only_after_its_state_and_never_with_placeholders(mosquitto, listener: Listener) -> None:
    """A restart used to replay the previous run's retained values as live, then no_face/0/'' placeholders."""
    first = _bridge(mosquitto, Commands())
    first.publish_state(state(mood="surprise", confidence=0.81), now=0.0)
    listener.wait_for("moodspeaker/living-room/mood", "surprise")
    first.close()
    listener.wait_for("moodspeaker/living-room/availability", "offline")
    listener.log.clear()
    second = _bridge(mosquitto, Commands())
    try:
        listener.wait_for("homeassistant/number/living-room/volume/config")
        # vision not seen yet (the player just started), nothing playing yet
        second.publish_state(state(mood=None, confidence=0.0, track="", volume=40), now=10.0)
        listener.wait_for("moodspeaker/living-room/availability", "online")
        topics = [t for t, _ in listener.log]
        online = topics.index("moodspeaker/living-room/availability")
        assert "moodspeaker/living-room/vision" in topics[:online]  # the mood is unavailable before the speaker is online
        assert listener.last["moodspeaker/living-room/vision"] == "offline"
        assert listener.payloads("moodspeaker/living-room/mood") == []  # no placeholder
        assert listener.payloads("moodspeaker/living-room/confidence") == []
        assert listener.payloads("moodspeaker/living-room/track") == []  # not yet: a moment of nothing is not news
        second.publish_state(state(mood=None, confidence=0.0, track="", volume=40), now=10.0 + IDLE_GRACE_S)
        assert listener.wait_for("moodspeaker/living-room/track", NOTHING_PLAYING) == NOTHING_PLAYING
        assert all(payload != "" for topic, payload in listener.log if topic.startswith("moodspeaker/"))
    finally:
        second.close()


def test_a_playlist_load_does_not_blank_the_track(mosquitto, listener: Listener) -> None:
    bridge = _bridge(mosquitto, Commands())
    try:
        bridge.publish_state(state(track="Happy song 1"), now=0.0)
        bridge.publish_state(state(track=""), now=1.0)  # MPD between the old queue and the new one
        bridge.publish_state(state(track="Sad song 1", mood="sad"), now=1.5)
        listener.wait_for("moodspeaker/living-room/mood", "sad")
        listener.wait_for("moodspeaker/living-room/track", "Sad song 1")
        assert listener.payloads("moodspeaker/living-room/track") == ["Happy song 1", "Sad song 1"]
        bridge.publish_state(state(track="x" * 400), now=2.0)  # Home Assistant refuses a state over 255 characters
        assert listener.wait_for("moodspeaker/living-room/track", "x" * 255)
    finally:
        bridge.close()


def test_the_volume_sliders_end_follows_the_cap_in_force(mosquitto, listener: Listener) -> None:
    bridge = _bridge(mosquitto, Commands())
    topic = "homeassistant/number/living-room/volume/config"
    try:
        bridge.publish_state(state(volume_max=80), now=0.0)
        assert json.loads(listener.wait_for(topic))["max"] == 80
        bridge.publish_state(state(volume_max=30, volume=30), now=1.0)  # quiet hours began
        wait_until(lambda: json.loads(listener.last[topic])["max"] == 30, what="the slider's max follows the cap")
        assert parse_command("volume/set", b"70", bridge.volume_max) == Command("volume", 30)
    finally:
        bridge.close()


def test_a_clean_stop_is_not_a_warning(mosquitto, caplog) -> None:
    bridge = _bridge(mosquitto, Commands())
    bridge.publish_state(state(), now=0.0)
    with caplog.at_level("INFO", logger="moodspeaker.adapters.mqtt_bridge"):
        bridge.close()
    assert "disconnected from the broker" in caplog.text
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text


def test_vision_presence_needs_a_mood_event_since_the_camera_was_last_off() -> None:
    seen = VisionPresence(stale_s=16.0)
    assert not seen.seen(0.0, heard_at=None, captures=True, privacy=False)  # nothing heard yet
    assert seen.seen(1.0, heard_at=0.5, captures=True, privacy=False)
    assert not seen.seen(20.0, heard_at=0.5, captures=True, privacy=False)  # vision went quiet: stale
    assert seen.seen(21.0, heard_at=20.5, captures=True, privacy=False)
    assert not seen.seen(22.0, heard_at=21.9, captures=True, privacy=True)  # privacy mode
    assert not seen.seen(23.0, heard_at=21.9, captures=True, privacy=False)  # back, but no mood since
    assert seen.seen(24.0, heard_at=23.5, captures=True, privacy=False)
    assert not seen.seen(25.0, heard_at=24.9, captures=False, privacy=False)  # vision stopped or crashed


def _player_config(mpd_server, mosquitto, tmp_path: Path, node: str = "den"):
    from moodspeaker.config import parse_config

    return parse_config(f'[mpd]\nhost = "{mpd_server.host}"\nport = {mpd_server.port}\n[feedback]\n'
                        f'path = "{tmp_path / "fb.db"}"\n[buttons]\nenabled = false\n[player]\ncooldown_s = 0.0\n'
                        f'[volume]\nstart = 50\nmaximum = 90\n'
                        f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\nnode_id = "{node}"\n')


def test_a_stopped_vision_makes_the_mood_unavailable(mpd_server, mosquitto, listener: Listener, tmp_path: Path) -> None:
    """Vision stopped: Home Assistant used to show the last mood as live for as long as the player ran."""
    import asyncio

    from test_player_service import mood, serve, until

    from moodspeaker.app.player import PlayerApp

    camera = {"on": True}
    app = PlayerApp(_player_config(mpd_server, mosquitto, tmp_path), camera_on=lambda: camera["on"])

    async def scenario() -> None:
        app.service.send(mood("surprise", 0.81))
        await asyncio.to_thread(listener.wait_for, "moodspeaker/den/mood", "surprise")
        assert listener.last["moodspeaker/den/vision"] == "online"
        camera["on"] = False  # vision stopped (its state file gone), crashed (stale) or paused
        await asyncio.to_thread(listener.wait_for, "moodspeaker/den/vision", "offline")
        camera["on"] = True  # vision is back: the old mood is not news until vision says something
        await until(lambda: app._vision._lost_at is not None and time.monotonic() - app._vision._lost_at > 0.6)
        assert listener.last["moodspeaker/den/vision"] == "offline"
        app.service.send(mood("happy", 0.7))
        await asyncio.to_thread(listener.wait_for, "moodspeaker/den/vision", "online")
        await asyncio.to_thread(listener.wait_for, "moodspeaker/den/mood", "happy")

    try:
        serve(app.service, scenario)
    finally:
        app.close()


def test_a_player_starting_in_privacy_mode_never_shows_privacy_off(mpd_server, mosquitto, listener: Listener,
                                                                    tmp_path: Path) -> None:
    """The switch used to flip off -> on at every start with privacy on (an automation on `to: off` fired)."""
    from test_player_service import serve, until

    from moodspeaker.adapters.privacy_flag import PrivacyFlag
    from moodspeaker.app.player import PlayerApp

    runtime = tmp_path / "run"
    flag = PrivacyFlag(runtime)
    flag.set(True)  # `moodspeaker privacy on`, or the last run's like-button hold
    for _restart in range(2):
        app = PlayerApp(_player_config(mpd_server, mosquitto, tmp_path), on_privacy=flag.set, runtime_dir=str(runtime))

        async def scenario(app=app) -> None:
            await until(lambda: app.service.session.privacy and listener.last.get("moodspeaker/den/availability")
                        == "online", timeout=10)

        try:
            serve(app.service, scenario)
        finally:
            app.close()
        listener.wait_for("moodspeaker/den/availability", "offline")
    assert listener.payloads("moodspeaker/den/privacy") == ["ON", "ON"]  # once per start, never OFF
    assert listener.last["moodspeaker/den/vision"] == "offline"  # privacy mode: no mood


@pytest.mark.parametrize("ca", ["missing", "not-a-certificate"])
def test_a_ca_file_paho_cannot_use_arrives_as_our_setup_error(tmp_path: Path, ca: str) -> None:
    """3: paho's (ssl's) failure on the [mqtt] ca_file arrives as SetupError naming the file, not as ssl.SSLError."""
    from moodspeaker.errors import SetupError

    ca_file = tmp_path / "ca.pem"
    if ca == "not-a-certificate":
        ca_file.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    with pytest.raises(SetupError, match=rf"\[mqtt\] tls: cannot use the CA file '{ca_file}'"):
        MqttBridge(MqttConfig(host="127.0.0.1", tls=True, ca_file=str(ca_file)), Commands().bridge_commands())
