#!/usr/bin/env python3
"""`make system-test-ha` (root, optional, not in CI): the speaker as a Home Assistant user keeps it.

A real Home Assistant Core (HA_VERSION, Python 3.13 from Debian trixie) in the cached trixie root of
`make system-test`, booted under systemd-nspawn with a mosquitto broker and the speaker installed by the real
scripts/install.sh (the demo clip as a looping camera, MPD on a small library). Home Assistant is installed into a
venv with `pip install -c` its own package_constraints.txt (gcc and python3-dev for wheels missing on 3.13); the venv
is built once into CACHE/home-assistant-<version>/ (`--prepare` builds only that, so it can run outside the
system-test lock) and copied into each run's root. Onboarding and the MQTT config flow go through Home
Assistant's REST API; then every check looks from Home Assistant's side (REST /api/states, /api/services,
/api/history) and is reported by name; the last line is `N passed, M failed`.

  --prepare   build the cached Home Assistant venv, nothing else
  --keep      leave the container's root in place after the run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from container import CACHE, Container, base_root, free_port, nice
from run import Failed, SystemTest, expect, log, preflight, wait_for

HA_VERSION = os.environ.get("MOODSPEAKER_HA_VERSION", "2026.2.3")
HA_DIR = "/srv/ha"  # the venv and the config inside the container
HA_CACHE = CACHE / f"home-assistant-{HA_VERSION}"
HA_APT = ("python3-venv", "python3-dev", "gcc", "unzip")
PAHO = "paho-mqtt==2.1.0"  # what HA's mqtt manifest requires (installed up front: HA runs with --skip-pip)
NODE = "moodspeaker"
MOODS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "no_face")
ENTITIES = {"mood": "sensor.moodspeaker_mood", "confidence": "sensor.moodspeaker_mood_confidence",
            "track": "sensor.moodspeaker_track", "control": "sensor.moodspeaker_control",
            "privacy": "switch.moodspeaker_privacy_mode", "pause": "switch.moodspeaker_pause",
            "skip": "button.moodspeaker_skip", "like": "button.moodspeaker_like", "resume": "button.moodspeaker_mood_music",
            "volume": "number.moodspeaker_volume"}


def ha_venv(base: Path) -> Path:
    """CACHE/home-assistant-<version>/venv, built once in a container of its own (minutes; no lock needed)."""
    venv = HA_CACHE / "venv"
    if (HA_CACHE / ".complete").is_file():
        log(f"Home Assistant {HA_VERSION} venv {venv} (cached)")
        return venv
    started = time.monotonic()
    c = Container(base, f"moodspeaker-ha-build-{os.getpid()}", log)
    try:
        c.fresh_copy()
        c.boot()
        log(f"building the Home Assistant {HA_VERSION} venv (once; minutes)")
        pip_env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
        c.sh(f"apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {' '.join(HA_APT)}",
             timeout=900)
        c.sh(f"python3 -m venv {HA_DIR}/venv && {HA_DIR}/venv/bin/pip install -q --upgrade pip", timeout=600, env=pip_env)
        # HA's own pins: package_constraints.txt from the very wheel that is installed
        c.sh(f"cd /tmp && {HA_DIR}/venv/bin/pip download -q --no-deps homeassistant=={HA_VERSION} -d /tmp/ha-wheel && "
             "unzip -o -q /tmp/ha-wheel/*.whl homeassistant/package_constraints.txt -d /tmp/ha-constraints",
             timeout=600, env=pip_env)
        out = c.sh(f"{HA_DIR}/venv/bin/pip install -c /tmp/ha-constraints/homeassistant/package_constraints.txt "
                   f"/tmp/ha-wheel/*.whl {PAHO} 2>&1 | tail -5", timeout=3000, env=pip_env)
        log(out.stdout.strip()[-500:])
        version = c.sh(f"{HA_DIR}/venv/bin/hass --version").stdout.strip()
        expect(version == HA_VERSION, f"hass --version says {version!r}")
        c.shutdown()
        tmp = HA_CACHE.with_name(HA_CACHE.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        subprocess.run(nice(["cp", "-a", str(c.root / HA_DIR.lstrip("/") / "venv"), str(tmp / "venv")]), check=True)
        (tmp / ".complete").write_text(f"Home Assistant {version} in {time.monotonic() - started:.0f} s\n")
        shutil.rmtree(HA_CACHE, ignore_errors=True)
        tmp.rename(HA_CACHE)
    finally:
        c.remove()
    log(f"Home Assistant venv built in {time.monotonic() - started:.0f} s")
    return venv



def ha_config(port: int) -> str:
    """Home Assistant's configuration.yaml: the HTTP API on loopback, onboarding, config flows, history."""
    return textwrap.dedent(f"""\
        homeassistant:
          name: Home
          latitude: 52.37
          longitude: 4.89
          elevation: 0
          unit_system: metric
          time_zone: UTC
          country: NL
          currency: EUR
        http:
          server_host: 127.0.0.1
          server_port: {port}
        api:
        config:
        onboarding:
        recorder:
          commit_interval: 0
        history:
        logger:
          default: warning
          logs:
            homeassistant.components.mqtt: info
        """)


def start_ha(c: Container, port: int, timeout: float = 900) -> None:
    """Home Assistant as a transient unit; up when its HTTP API answers. A first start installs what its default
    integrations need (frontend, backup, ...) into the venv."""
    c.write(f"{HA_DIR}/config/configuration.yaml", ha_config(port))
    # uv (what Home Assistant installs with) trusts only its own CA list unless told to use the system's
    c.sh("systemd-run --unit=home-assistant --property=Restart=no --setenv=UV_NATIVE_TLS=1 "
         f"--setenv=SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt {HA_DIR}/venv/bin/hass -c {HA_DIR}/config")

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/onboarding", timeout=5) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            said = c.sh("journalctl -u home-assistant -o cat --no-pager", check=False).stdout
            if "failed to initialize" in said or c.sh("systemctl is-active home-assistant",
                                                      check=False).stdout.strip() not in ("active", "activating"):
                raise Failed(f"Home Assistant did not start:\n{said[-3000:]}") from None
            return False

    wait_for("Home Assistant's HTTP API", answers, timeout, every=2)


def warm_ha(base: Path) -> None:
    """Start Home Assistant once in the cached venv, so that what it installs at its first start is cached too."""
    if (HA_CACHE / ".warm").is_file():
        return
    started = time.monotonic()
    c = Container(base, f"moodspeaker-ha-warm-{os.getpid()}", log)
    try:
        c.fresh_copy()
        copy_venv(c)
        c.boot()
        log("first start of Home Assistant (installs its default integrations' requirements; minutes)")
        start_ha(c, free_port())
        c.sh("systemctl stop home-assistant", timeout=120)
        c.shutdown()
        shutil.rmtree(HA_CACHE / "venv.new", ignore_errors=True)
        subprocess.run(nice(["cp", "-a", str(c.root / HA_DIR.lstrip("/") / "venv"), str(HA_CACHE / "venv.new")]), check=True)
        shutil.rmtree(HA_CACHE / "venv")
        (HA_CACHE / "venv.new").rename(HA_CACHE / "venv")
        (HA_CACHE / ".warm").write_text(f"first start in {time.monotonic() - started:.0f} s\n")
    finally:
        c.remove()
    log(f"Home Assistant warmed up in {time.monotonic() - started:.0f} s")



def copy_venv(c: Container) -> None:
    (c.root / HA_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
    subprocess.run(nice(["cp", "-a", "--reflink=auto", str(HA_CACHE / "venv"), str(c.root / HA_DIR.lstrip("/") / "venv")]),
                   check=True)


class HaTest(SystemTest):
    """The checks, from Home Assistant's side; the speaker's side through SystemTest's helpers."""

    def __init__(self, c: Container, mpd_port: int, ssh_port: int, mqtt_port: int, ha_port: int) -> None:
        super().__init__(c, mpd_port, ssh_port)
        self.mqtt_port, self.ha_port = mqtt_port, ha_port
        self.token = ""

    def prepare(self) -> None:
        super().prepare()
        c = self.c
        config = c.root / "etc/moodspeaker/config.toml"
        config.write_text(config.read_text() + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {self.mqtt_port}\nnode_id = "{NODE}"\n'
                          '\n[smoother]\nheartbeat_s = 2.0\n')
        c.write("/etc/mosquitto/conf.d/system-test.conf", f"listener {self.mqtt_port} 127.0.0.1\nallow_anonymous true\n")
        copy_venv(c)

    # -- Home Assistant's REST API -------------------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None, form: dict[str, str] | None = None) -> Any:
        data, headers = None, {}
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(f"http://127.0.0.1:{self.ha_port}{path}", data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise Failed(f"{method} {path}: HTTP {exc.code} {exc.read()[:500]!r}") from None
        return json.loads(raw) if raw else None

    def state(self, key: str) -> dict[str, Any]:
        return self.api("GET", f"/api/states/{ENTITIES[key]}")

    def service(self, domain: str, name: str, key: str, **data: Any) -> None:
        self.api("POST", f"/api/services/{domain}/{name}", {"entity_id": ENTITIES[key], **data})

    def history(self, key: str, since: str) -> list[str]:
        """The states Home Assistant recorded for the entity since the ISO time `since`, in order."""
        query = urllib.parse.urlencode({"filter_entity_id": ENTITIES[key], "minimal_response": "",
                                        "no_attributes": ""})
        rows = self.api("GET", f"/api/history/period/{urllib.parse.quote(since)}?{query}")
        return [row["state"] for row in rows[0]] if rows else []

    def now_iso(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())

    def live(self, key: str) -> dict[str, Any] | None:
        st = self.state(key)
        return st if st["state"] not in ("unavailable", "unknown") else None

    def mosquitto_pub(self, topic: str, payload: str, retain: bool = False) -> None:
        self.sh(f"mosquitto_pub -p {self.mqtt_port} -q 1 {'-r ' if retain else ''}-t {topic} -m {json.dumps(payload)}")

    # -- the checks -----------------------------------------------------------------------------------------------
    def check_01_home_assistant_starts_and_is_onboarded(self) -> str:
        started = time.monotonic()
        self.started_iso = self.now_iso()
        self.sh("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients",
                timeout=600)
        start_ha(self.c, self.ha_port, timeout=600)
        base = f"http://127.0.0.1:{self.ha_port}/"
        code = self.api("POST", "/api/onboarding/users", {"client_id": base, "name": "Owner", "username": "owner",
                                                          "password": "moodspeaker-system-test", "language": "en"})
        token = self.api("POST", "/auth/token", form={"grant_type": "authorization_code", "code": code["auth_code"],
                                                       "client_id": base})
        self.token = token["access_token"]
        config = self.api("GET", "/api/config")
        expect(config["version"] == HA_VERSION, f"Home Assistant says version {config['version']}")
        return f"Home Assistant {config['version']} up and onboarded in {time.monotonic() - started:.0f} s"

    def check_02_mqtt_added_through_the_config_flow(self) -> str:
        flow = self.api("POST", "/api/config/config_entries/flow", {"handler": "mqtt", "show_advanced_options": False})
        expect(flow.get("step_id") == "broker", f"the MQTT flow starts with {flow}")
        done = self.api("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                        {"broker": "127.0.0.1", "port": self.mqtt_port})
        expect(done.get("type") == "create_entry", f"the MQTT flow ended with {done}")
        return f"config entry {done['result']['entry_id']} for the broker on 127.0.0.1:{self.mqtt_port}"

    def check_03_speaker_installed_and_playing(self) -> str:
        out = self.install()
        (Path("/var/tmp") / "moodspeaker-ha-install.log").write_text(out.stdout + out.stderr)
        expect(out.returncode == 0, f"install.sh exited {out.returncode}:\n{(out.stdout + out.stderr)[-3000:]}")
        self.sh(f"mpc --port {self.mpd_port} --wait update", timeout=120)
        self.both_up()
        wait_for("MPD playing", self.playing, 120)
        return f"both units active, MPD plays {self.playing()}"

    def check_04_entities_as_a_user_expects_them(self) -> str:
        wait_for("every entity in Home Assistant", lambda: all(self.api("GET", "/api/states/" + e) for e in
                                                                ENTITIES.values()), 60, every=2)
        mood = wait_for("the mood live", lambda: self.live("mood"), 90, every=1)
        a = mood["attributes"]
        expect(a.get("device_class") == "enum" and a.get("options") == list(MOODS), f"mood attributes {a}")
        expect(mood["state"] in MOODS, f"mood {mood['state']!r}")
        conf = wait_for("the confidence live", lambda: self.live("confidence"), 30)
        expect(conf["attributes"].get("unit_of_measurement") == "%" and 0 <= float(conf["state"]) <= 100,
               f"confidence {conf}")
        vol = self.state("volume")["attributes"]
        expect((vol.get("min"), vol.get("max"), vol.get("step"), vol.get("unit_of_measurement")) == (0, 100, 1, "%"),
               f"volume attributes {vol}")
        track = wait_for("the track live", lambda: self.live("track"), 30)
        return (f"{len(ENTITIES)} entities; mood {mood['state']} ({conf['state']} %), track {track['state']!r}; "
                f"mood options {len(a['options'])}")

    def check_05_volume_from_home_assistant(self) -> str:
        self.service("number", "set_value", "volume", value=30)
        wait_for("MPD at volume 30", lambda: "volume: 30%" in self.mpc() and self.mpc(), 15, every=0.5)
        wait_for("HA shows 30", lambda: float(self.state("volume")["state"]) == 30, 15, every=0.5)
        return "number.set_value 30 -> MPD volume 30 -> state 30"

    def check_06_pause_and_resume_from_home_assistant(self) -> str:
        self.service("switch", "turn_on", "pause")
        wait_for("MPD paused", lambda: "[paused]" in self.mpc(), 15, every=0.5)
        wait_for("HA shows paused", lambda: self.state("pause")["state"] == "on", 15, every=0.5)
        self.service("switch", "turn_off", "pause")
        wait_for("MPD playing again", self.playing, 15, every=0.5)
        wait_for("HA shows playing", lambda: self.state("pause")["state"] == "off", 15, every=0.5)
        return "switch.turn_on/off pause -> MPD paused/playing, state followed"

    def check_07_skip_from_home_assistant(self) -> str:
        before = self.playing()
        self.service("button", "press", "skip")
        after = wait_for("another track", lambda: (p := self.playing()) and p != before and p, 15, every=0.5)
        return f"{before} -> {after}"

    def check_08_privacy_from_home_assistant_makes_the_mood_unavailable(self) -> str:
        self.service("switch", "turn_on", "privacy")
        wait_for("`moodspeaker privacy status` on", lambda: "privacy on" in self.sh("moodspeaker privacy status").stdout,
                 15, every=0.5)
        t0 = time.monotonic()
        wait_for("mood unavailable", lambda: self.state("mood")["state"] == "unavailable", 30, every=0.5)
        gone = time.monotonic() - t0
        self.service("switch", "turn_off", "privacy")
        t1 = time.monotonic()
        mood = wait_for("mood back", lambda: self.live("mood"), 60, every=0.5)
        return f"mood unavailable {gone:.1f} s after privacy on; {mood['state']} again {time.monotonic() - t1:.1f} s after off"

    def check_09_a_stopped_vision_makes_the_mood_unavailable(self) -> str:
        self.sh("systemctl stop moodspeaker-vision")
        t0 = time.monotonic()
        wait_for("mood unavailable", lambda: self.state("mood")["state"] == "unavailable", 30, every=0.5)
        gone = time.monotonic() - t0
        player_side = {k: self.state(k)["state"] for k in ("track", "control", "volume", "privacy")}
        expect("unavailable" not in player_side.values(), f"the player's entities went with vision: {player_side}")
        self.sh("systemctl start moodspeaker-vision")
        wait_for("mood back", lambda: self.live("mood"), 90, every=1)
        return f"mood unavailable {gone:.1f} s after vision stopped, the player's entities stayed; back after start"

    def check_10_player_restart_in_privacy_mode_never_shows_privacy_off(self) -> str:
        self.sh("moodspeaker privacy on")
        wait_for("HA privacy on", lambda: self.state("privacy")["state"] == "on", 15, every=0.5)
        # the history starts with the state before `since`: take it just after privacy went on
        since = (datetime.fromisoformat(self.state("privacy")["last_changed"]) + timedelta(seconds=0.5)).isoformat()
        self.sh("systemctl restart moodspeaker-player", timeout=120)
        wait_for("player back", lambda: self.active("moodspeaker-player"), 60)
        wait_for("HA privacy on again", lambda: self.state("privacy")["state"] == "on", 30, every=0.5)
        time.sleep(3)  # what the start might publish after its first state
        seen = self.history("privacy", since)
        expect("off" not in seen, f"the privacy switch showed off during the restart: {seen}")
        return f"privacy switch states since the restart: {seen}"

    def check_11_a_retained_command_is_not_replayed(self) -> str:
        topic = f"moodspeaker/{NODE}/privacy/set"
        self.sh("systemctl stop moodspeaker-player", timeout=120)  # a running player would take it as a live command
        self.mosquitto_pub(topic, "OFF", retain=True)  # someone's stale retained command
        try:
            self.sh("systemctl start moodspeaker-player", timeout=120)
            try:
                wait_for("HA privacy on after the restart", lambda: self.state("privacy")["state"] == "on", 30, every=0.5)
            except Failed as exc:
                raise Failed(f"{exc}; HA: {self.state('privacy')}; `privacy status`: "
                             f"{self.sh('moodspeaker privacy status', check=False).stdout.strip()}; player:\n"
                             f"{self.journal('moodspeaker-player', '--since -1min')[-2000:]}") from None
            time.sleep(3)
            expect(self.state("privacy")["state"] == "on" and "privacy on" in self.sh("moodspeaker privacy status").stdout,
                   "the retained privacy/set OFF turned privacy off")
            said = self.journal("moodspeaker-player", "--since '-1min'")
            expect("retained message" in said, f"the player did not say it ignored it:\n{said[-1500:]}")
        finally:
            self.sh(f"mosquitto_pub -p {self.mqtt_port} -r -n -t {topic}")
            self.sh("moodspeaker privacy off")
        return "privacy stayed on; the player logged the ignored retained message"

    def check_12_an_infinite_volume_does_not_cut_home_assistant_off(self) -> str:
        for payload in ("inf", "1e999", "nan", "9" * 400):
            self.mosquitto_pub(f"moodspeaker/{NODE}/volume/set", payload)
        self.service("number", "set_value", "volume", value=40)
        wait_for("MPD at volume 40", lambda: "volume: 40%" in self.mpc(), 15, every=0.5)
        wait_for("HA shows 40", lambda: float(self.state("volume")["state"]) == 40, 15, every=0.5)
        return "after inf, 1e999, nan and 400 nines: number.set_value 40 still reaches MPD and comes back"

    def check_13_the_track_is_never_empty(self) -> str:
        seen = self.history("track", self.started_iso)
        expect("" not in seen, f"an empty track state: {seen}")
        return f"{len(seen)} track states recorded, none empty ({sorted(set(seen))[:4]})"

    def check_07b_the_owner_in_control_shows_and_hands_back_from_home_assistant(self) -> str:
        wait_for("the speaker in control", lambda: self.state("control")["state"] == "speaker", 15, every=0.5)
        wait_for("mood music playing", self.playing, 90)
        self.sh(f"mpc -q --port {self.mpd_port} stop")  # the owner's phone app
        owner = wait_for("HA shows the owner in control",
                         lambda: (st := self.state("control")["state"]).startswith("owner") and st, 30, every=0.5)
        self.service("button", "press", "resume")
        wait_for("HA shows the speaker in control", lambda: self.state("control")["state"] == "speaker", 30, every=0.5)
        wait_for("mood music again", self.playing, 30, every=0.5)
        return f"after `mpc stop`: {owner!r}; the Mood music button handed it back and MPD plays"

    def check_14_a_clean_stop_makes_everything_unavailable_without_a_warning(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        self.sh("systemctl stop moodspeaker-player", timeout=120)
        wait_for("every entity unavailable", lambda: all(self.state(k)["state"] == "unavailable" for k in ENTITIES),
                 30, every=0.5)
        said = self.journal("moodspeaker-player", f"--since '{since}'")
        expect("lost the broker" not in said, f"a clean stop logged a lost broker:\n{said[-1500:]}")
        self.sh("systemctl start moodspeaker-player", timeout=120)
        wait_for("entities back", lambda: self.live("volume"), 60)
        return "all unavailable after the stop, no warning; back after the start"


def run_checks(base: Path, keep: bool) -> int:
    started = time.monotonic()
    c = Container(base, f"moodspeaker-ha-{os.getpid()}", log)
    t = HaTest(c, mpd_port=free_port(), ssh_port=free_port(), mqtt_port=free_port(), ha_port=free_port())
    results: list[tuple[str, bool, str, float]] = []
    try:
        c.fresh_copy()
        t.prepare()
        c.boot()
        log(f"booted; HA port {t.ha_port}, MQTT port {t.mqtt_port}, MPD port {t.mpd_port}")
        for name in sorted(n for n in vars(HaTest) if n.startswith("check_")):  # not SystemTest's own checks
            title = name.removeprefix("check_").replace("_", " ")
            t0 = time.monotonic()
            try:
                ok, detail = True, getattr(t, name)()
            except Failed as exc:
                ok, detail = False, str(exc)
            except Exception as exc:  # a broken harness step is a failed check too
                ok, detail = False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
            took = time.monotonic() - t0
            results.append((title, ok, detail, took))
            print(f"{'PASS' if ok else 'FAIL'} {title} ({took:.0f} s): {detail}", flush=True)
            if not ok and name <= "check_03":
                break  # nothing after these can work
    finally:
        if keep:
            c.shutdown()
        else:
            c.remove()
    passed = sum(ok for _, ok, _, _ in results)
    log(f"system-test-ha took {time.monotonic() - started:.0f} s")
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if results and passed == len(results) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if why := preflight():
        print(f"system-test-ha: cannot run here: {why}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run still removes its container
    base = base_root("trixie", "amd64", log)
    ha_venv(base)
    warm_ha(base)
    if args.prepare:
        return 0
    return run_checks(base, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
