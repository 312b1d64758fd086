#!/usr/bin/env python3
"""`make system-test` (root): the appliance as an owner installs it, under a real systemd.

A cached Debian trixie root (debootstrap, outside the checkout) is copied and booted with systemd-nspawn; the
checkout is copied in and the real scripts/install.sh runs there, as root, with the real units. Vision gets the
demo clip as a looping video file, MPD a small library (generated tones) with the mood playlists. Then the checks
of issue #10 run in order, each reported by name; the last line is `N passed, M failed`; the exit status is 1 when
any failed that is not in KNOWN_FAILURES (2 when the machine cannot run the test at all).

Needs only the host's python3, systemd-nspawn (apt: systemd-container) and debootstrap; no venv.
  --keep        leave the container's root in place after the run (for a look inside)
  --only 1,2,4  run only these checks (a check that needs an earlier one's state may then fail)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from container import WORK, Container, base_root, free_port

REPO = Path(__file__).resolve().parents[2]
CLONE = "/root/moodspeaker"  # the owner's clone inside the container
FIXTURES = "/srv/moodspeaker-test"  # the looping clip (ProtectHome= hides /root from the daemons)
UNITS = ("moodspeaker-vision", "moodspeaker-player")
MOODS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "calm", "uplifting")
TRACK_SECONDS = 90  # long enough that no track ends by itself during a reload or restart check
MAX_EXPOSURE = {"moodspeaker-vision": 1.0, "moodspeaker-player": 2.0}
# Checks that fail for a reason another open issue fixes: still run and reported as FAIL with the reason, but they
# do not fail the run (CI) until then. A known failure that passes is reported, so its line here can go.
KNOWN_FAILURES: dict[int, str] = {}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Failed(Exception):
    """A check's assertion: the message says what was expected and what was seen."""


def expect(ok: bool, message: str) -> None:
    if not ok:
        raise Failed(message)


def wait_for(what: str, probe: Callable[[], object], timeout: float, every: float = 1.0) -> object:
    """Poll `probe` until it returns something true; Failed after `timeout` seconds, naming `what`."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (RuntimeError, json.JSONDecodeError, KeyError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise Failed(f"{what}: not within {timeout:.0f} s (last: {str(last)[:300]})")


class SystemTest:
    def __init__(self, c: Container, mpd_port: int, ssh_port: int) -> None:
        self.c, self.mpd_port, self.ssh_port = c, mpd_port, ssh_port
        self.notes: list[str] = []

    # -- helpers inside the container ---------------------------------------------------------------------------
    def sh(self, command: str, **kw) -> subprocess.CompletedProcess:
        return self.c.sh(command, **kw)

    def unit(self, name: str) -> dict[str, str]:
        out = self.sh(f"systemctl show {name} -p ActiveState -p SubState -p MainPID -p NRestarts -p Result").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def active(self, name: str) -> dict[str, str] | None:
        u = self.unit(name)
        return u if u["ActiveState"] == "active" and u["MainPID"] != "0" else None

    def status(self) -> dict:
        out = self.sh("moodspeaker status --json", check=False)
        return json.loads(out.stdout)

    def mpc(self, args: str = "status") -> str:
        return self.sh(f"mpc -q --port {self.mpd_port} {args}; mpc --port {self.mpd_port} status", check=False).stdout

    def playing(self) -> str | None:
        out = self.sh(f"mpc --port {self.mpd_port} -f '%file%' status", check=False).stdout
        lines = out.splitlines()
        return lines[0] if len(lines) >= 2 and "[playing]" in lines[1] else None

    def elapsed(self) -> tuple[str, int]:
        """(file, seconds into it) of what MPD plays now."""
        out = self.sh(f"mpc --port {self.mpd_port} -f '%file%' status", check=False).stdout.splitlines()
        expect(len(out) >= 2 and "[playing]" in out[1], f"MPD is not playing: {out}")
        seconds = out[1].split()[2].split("/")[0]  # [playing] #1/3   0:12/1:30 (13%)
        m, s = seconds.split(":")
        return out[0], int(m) * 60 + int(s)

    def journal(self, unit: str, since: str = "") -> str:
        return self.sh(f"journalctl -u {unit} --no-pager -o cat {since}", check=False).stdout

    def feedback_rows(self) -> int:
        out = self.sh("python3 -c \"import sqlite3; print(sqlite3.connect('file:/var/lib/moodspeaker/feedback.db?mode=ro',"
                      " uri=True).execute('select count(*) from events').fetchone()[0])\"", check=False)
        return int(out.stdout.strip()) if out.returncode == 0 else 0

    def both_up(self, timeout: float = 120) -> dict[str, dict[str, str]]:
        return {name: wait_for(f"{name} active", lambda n=name: self.active(n), timeout) for name in UNITS}

    # -- preparation --------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Before the first boot: the owner's clone, the camera clip, the music, the config, ports off the host's."""
        c = self.c
        files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "-co", "--exclude-standard"],
                               capture_output=True, check=True).stdout.split(b"\0")
        clone = c.root / CLONE.lstrip("/")
        for name in filter(None, files):
            src = REPO / name.decode()
            if src.is_file() and not src.is_symlink():
                (clone / name.decode()).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, clone / name.decode())
        fixtures = c.root / FIXTURES.lstrip("/")
        fixtures.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "device/moodspeaker/dev/clip/clip.mp4", fixtures / "clip.mp4")
        _write_music(c.root / "var/lib/mpd")
        c.write("/etc/moodspeaker/config.toml", textwrap.dedent(f"""\
            # system test: the demo clip as a looping camera, MPD moved off the host's port 6600, no buttons
            [camera]
            kind = "opencv"
            device = "{FIXTURES}/clip.mp4"
            loop = true

            [mpd]
            port = {self.mpd_port}

            [buttons]
            enabled = false

            [player]
            cooldown_s = 5.0
            switch = "at_once"
            """), 0o640)
        # The container shares the host's network: MPD and sshd listen on free ports of the host, on loopback.
        c.write("/etc/systemd/system/mpd.socket.d/port.conf",
                f"[Socket]\nListenStream=\nListenStream=%t/mpd/socket\nListenStream=127.0.0.1:{self.mpd_port}\n")
        conf = c.root / "etc/mpd.conf"
        conf.write_text(conf.read_text() + f'\n# system test: off the host\'s port 6600\nport "{self.mpd_port}"\n')
        c.write("/etc/ssh/sshd_config.d/system-test.conf", f"Port {self.ssh_port}\nListenAddress 127.0.0.1\n")
        c.write("/root/.ssh/config", f"Host speaker\n  HostName 127.0.0.1\n  Port {self.ssh_port}\n  User root\n"
                "  StrictHostKeyChecking accept-new\n  UserKnownHostsFile /root/.ssh/known_hosts\n", 0o600)
        (c.root / "root/.ssh").chmod(0o700)

    def install(self, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
        pip_env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
        return self.sh(f"cd {CLONE} && scripts/install.sh {' '.join(map(shlex.quote, args))}", timeout=timeout,
                       check=False, env=pip_env)

    # -- the checks ---------------------------------------------------------------------------------------------
    def check_01_fresh_install(self) -> str:
        started = time.monotonic()
        out = self.install()
        self.install_log = out.stdout + out.stderr
        (WORK / "install.log").write_text(self.install_log)
        expect(out.returncode == 0, f"install.sh exited {out.returncode}:\n{self.install_log[-3000:]}")
        took = time.monotonic() - started
        self.sh(f"mpc --port {self.mpd_port} --wait update", timeout=120)
        first = self.both_up()
        time.sleep(15)
        for name in UNITS:
            now = self.unit(name)
            expect(now["ActiveState"] == "active" and now["MainPID"] == first[name]["MainPID"]
                   and now["NRestarts"] == "0", f"{name} did not stay up: {now}; journal:\n{self.journal(name)[-1500:]}")
        skipped = [line for line in self.install_log.splitlines() if "skipped" in line or "no gpio group" in line]
        return f"install.sh took {took:.0f} s; both active (READY=1), same PIDs 15 s later; it said: {' / '.join(skipped)}"

    def check_02_mood_reaches_the_player_and_mpd_plays(self) -> str:
        wait_for("MPD playing", self.playing, 120)
        def complete() -> dict | None:
            st = self.status()
            return st if st.get("mood") and st.get("track") and st["model"].get("sha256") else None

        s = wait_for("status with mood, track and model", complete, 60)
        text = self.sh("moodspeaker status", check=False).stdout
        expect("mood" in text and "player  mpd:" in text, f"`moodspeaker status` lacks mood/track:\n{text}")
        return f"mood {s['mood']}, track {s['track']}, model {s['model']['sha256'][:12]}"

    def check_03_vision_keeps_running_past_the_clip_end(self) -> str:
        u = self.unit("moodspeaker-vision")
        up = float(self.sh("echo $(( $(cut -d. -f1 /proc/uptime) - $(systemctl show -p ExecMainStartTimestampMonotonic "
                           "--value moodspeaker-vision) / 1000000 ))").stdout.strip())
        clip_s = json.loads((REPO / "device/moodspeaker/dev/clip/clip.json").read_text())["frames"] / 10
        if up < clip_s + 15:
            time.sleep(clip_s + 15 - up)
            up = clip_s + 15
        frames = self.status()["services"]["vision"]["status"]["frames"]
        time.sleep(3)
        now = self.unit("moodspeaker-vision")
        later = self.status()["services"]["vision"]["status"]["frames"]
        expect(now["MainPID"] == u["MainPID"] and now["NRestarts"] == "0", f"vision restarted: {now}")
        expect(later > frames, f"vision stopped analysing ({frames} -> {later} frames)")
        expect("video file source stopped" not in self.journal("moodspeaker-vision"), "the clip ended instead of looping")
        return f"{clip_s:.0f} s clip, vision up {up + 3:.0f} s on one PID, {later} frames analysed and counting"

    def _music_across(self, reload: Callable[[], None], what: str) -> tuple[str, int, str, int]:
        """The song and its elapsed seconds before and after `reload`. The clip's mood changes every few seconds and
        the config cuts tracks at once (switch = "at_once"): a try during which the player logged a mood change
        proves nothing about the music either way and is made again, 3 tries in all."""
        for _ in range(3):
            since = self.sh("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
            song, t0 = self.elapsed()
            reload()
            song2, t1 = self.elapsed()
            if "mood: " not in self.journal("moodspeaker-player", f"--since '{since}'"):
                return song, t0, song2, t1
        raise Failed(f"the player logged a mood change during each of 3 {what}")

    def check_04_reload_keeps_pids_and_music(self) -> str:
        before = {n: self.active(n)["MainPID"] for n in UNITS}

        def reload() -> None:
            # procps's kill hidden for the reload: minimal images lack it, and the units must not need it
            out = self.sh("mv /usr/bin/kill /usr/bin/kill.hidden; systemctl reload " + " ".join(UNITS) + "; rc=$?; "
                          "mv /usr/bin/kill.hidden /usr/bin/kill; exit $rc", check=False, timeout=200)
            expect(out.returncode == 0, f"systemctl reload (without /usr/bin/kill) exited {out.returncode}: {out.stderr}")
            after = {n: self.active(n)["MainPID"] for n in UNITS}
            expect(before == after, f"PIDs changed: {before} -> {after}")

        song, t0, song2, t1 = self._music_across(reload, "reloads")
        expect(song2 == song and t1 >= t0, f"music interrupted: {song}@{t0}s -> {song2}@{t1}s")
        st = self.status()["services"]
        expect(all(st[n]["reload_error"] is None for n in ("vision", "player")), f"reload errors: {st}")
        return f"without /usr/bin/kill; PIDs {before} unchanged; {song} went on from {t0} s to {t1} s"

    def check_05_broken_config_reload_keeps_the_old_setup(self) -> str:
        config = "/etc/moodspeaker/config.toml"
        self.sh(f"cp -p {config} /root/config.good && printf '\\n[camera]\\nfps = 1000\\n' >> {config}")
        pids = {n: self.active(n)["MainPID"] for n in UNITS}
        out = self.sh("systemctl reload moodspeaker-vision", check=False, timeout=200)
        said = self.sh("systemctl status moodspeaker-vision --no-pager -n 5", check=False).stdout
        text = self.sh("moodspeaker status", check=False)
        why = out.stderr + said + text.stdout + text.stderr
        expect(out.returncode != 0, "systemctl reload returned 0 for a broken config")
        expect("fps" in why, f"neither systemctl nor status says why:\n{why[-1500:]}")
        expect(self.active("moodspeaker-vision")["MainPID"] == pids["moodspeaker-vision"], "vision restarted")
        expect(self.playing() is not None, "music stopped")
        self.sh(f"cp -p /root/config.good {config}")
        out = self.sh("systemctl reload moodspeaker-vision", check=False, timeout=200)
        expect(out.returncode == 0, f"the good reload failed: {out.stderr}")
        st = self.status()["services"]["vision"]
        expect(st["reload_error"] is None, f"the reload error stayed after a good reload: {st['reload_error']}")
        return "reload exit != 0 and the reason shown; old setup kept; error gone after a good reload"

    def check_06_kill_9_restarts_and_music_resumes(self) -> str:
        took = {}
        for name in UNITS:
            old = self.active(name)["MainPID"]
            started = time.monotonic()
            self.sh(f"kill -9 {old}")
            wait_for(f"{name} restarted", lambda n=name, o=old: (u := self.active(n)) and u["MainPID"] != o, 60)
            took[name] = round(time.monotonic() - started)
        wait_for("music after the restarts", self.playing, 90)
        return f"restarted after {took} s; MPD plays"

    def check_07_watchdog_and_hung_mpd(self) -> str:
        old = self.active("moodspeaker-vision")["MainPID"]
        started = time.monotonic()
        self.sh(f"kill -STOP {old}")
        wait_for("vision restarted by the watchdog", lambda: (u := self.active("moodspeaker-vision"))
                 and u["MainPID"] != old, 120)
        vision_s = time.monotonic() - started
        expect("watchdog" in self.journal("moodspeaker-vision").lower(), "the journal does not name the watchdog")
        player = self.active("moodspeaker-player")["MainPID"]
        mpd = self.sh("systemctl show -p MainPID --value mpd").stdout.strip()
        self.sh(f"kill -STOP {mpd}")
        try:
            time.sleep(45)  # longer than WatchdogSec=30
            now = self.active("moodspeaker-player")
            expect(now is not None and now["MainPID"] == player, f"the player died while MPD hung: {now}")
            st = self.status()
            said = json.dumps(st["services"]["player"]).lower()
            expect(any(w in said for w in ("unavailable", "mpd", "timed out", "timeout")),
                   f"the player does not report MPD as unavailable: {st['services']['player']}")
        finally:
            self.sh(f"kill -CONT {mpd}", check=False)
        wait_for("music after MPD resumed", self.playing, 90)
        return f"vision restarted {vision_s:.0f} s after SIGSTOP; player kept PID {player} through a 45 s MPD hang"

    def check_08_vision_has_no_network(self) -> str:
        pid = self.active("moodspeaker-vision")["MainPID"]
        with socket.create_server(("0.0.0.0", 0)) as listener:  # the host's network is the container's
            return self._no_network(pid, listener.getsockname()[1])

    def _no_network(self, pid: str, port: int) -> str:
        probe = textwrap.dedent(f"""\
            import socket
            names = [l.split(':')[0].strip() for l in open('/proc/self/net/dev').read().splitlines()[2:]]
            s = socket.socket(); s.settimeout(3)
            try:
                s.connect(('{self.host_ip}', {port})); tcp = 'connected'
            except OSError as e:
                tcp = 'failed: ' + str(e)
            print(','.join(names)); print(tcp)
            """)
        inside = self.sh(f"nsenter -t {pid} -n python3 -c {shlex.quote(probe)}").stdout.splitlines()
        outside = self.sh(f"python3 -c {shlex.quote(probe)}").stdout.splitlines()
        expect(inside[0] == "lo", f"vision's namespace has {inside[0]}")
        expect(inside[1].startswith("failed"), f"a TCP connect from vision's namespace: {inside[1]}")
        expect(outside[1] == "connected", f"control: the same connect outside vision's namespace: {outside[1]}")
        cgroup2 = self.sh("test -e /sys/fs/cgroup/cgroup.controllers", check=False).returncode == 0
        note = "" if cgroup2 else ("; cgroup v1 here: IPAddressDeny= and DevicePolicy= are not enforced in this "
                                   "container and are NOT tested (a Pi runs cgroup v2)")
        return f"interfaces {inside[0]}; connect {inside[1]}; outside: {outside[1]}{note}"

    def check_09_privacy_mode(self) -> str:
        has = self.sh("moodspeaker privacy --help", check=False)
        expect(has.returncode == 0, "there is no `moodspeaker privacy on` command, and no GPIO in the container "
               "to hold the like button: privacy mode cannot be switched on here")
        self.sh("moodspeaker privacy on")
        wait_for("vision closes the camera", lambda: self.status()["services"]["vision"]["status"].get("privacy"), 15)
        self.sh("systemctl reload moodspeaker-player", timeout=200)
        time.sleep(3)
        expect(self.status()["privacy"], "privacy turned off by a player reload")
        self.sh("systemctl restart moodspeaker-player", timeout=200)
        self.both_up()
        time.sleep(3)
        expect(self.status()["privacy"], "privacy turned off by a player restart")
        self.sh("moodspeaker privacy off")
        return "camera closed; stayed on across a player reload and a restart"

    def check_10_model_update_over_ssh(self) -> str:
        self.sh("test -f /root/.ssh/id_ed25519 || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519 && "
                "cat /root/.ssh/id_ed25519.pub >> /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys")
        self.sh("systemctl restart ssh")
        old = self.status()["model"]["sha256"]
        # A new version: the shipped model with 16 bytes appended (LiteRT ignores them; a new SHA-256), its card
        # saying so. A corrupt one: its first half only, its card naming that file's SHA-256.
        make = textwrap.dedent(f"""\
            import hashlib, json, shutil
            from pathlib import Path
            src = Path('{CLONE}/models'); card = json.loads((src / 'emotion.json').read_text())
            for name, change in (('good', lambda b: b + bytes(16)),
                                 ('corrupt', lambda b: b[:len(b) // 2])):  # cut off mid-copy
                out = Path('/root/' + name); out.mkdir(exist_ok=True)
                data = change((src / 'emotion.tflite').read_bytes())
                (out / 'emotion.tflite').write_bytes(data)
                card['sha256'] = hashlib.sha256(data).hexdigest()
                (out / 'emotion.json').write_text(json.dumps(card))
                shutil.copy(src / card['golden']['file'], out / card['golden']['file'])
                print(card['sha256'])
            """)
        good, _corrupt = self.sh(f"python3 -c {shlex.quote(make)}").stdout.split()
        up = self.sh(f"cd {CLONE} && scripts/update-model speaker /root/good/emotion.tflite /root/good/emotion.json",
                     check=False, timeout=300)
        expect(up.returncode == 0, f"update-model of a good model failed: {up.stdout}{up.stderr}")
        wait_for("vision reloaded to the new SHA", lambda: self.status()["services"]["vision"]["status"]
                 .get("model_sha") == good, 60)
        bad = self.sh(f"cd {CLONE} && scripts/update-model speaker /root/corrupt/emotion.tflite "
                      "/root/corrupt/emotion.json", check=False, timeout=300)
        expect(bad.returncode != 0, "update-model accepted a corrupt model")
        time.sleep(3)
        expect(self.status()["services"]["vision"]["status"].get("model_sha") == good, "the corrupt model replaced it")
        expect(self.active("moodspeaker-vision") is not None, "vision is not running after the refused model")
        self.sh("moodspeaker model rollback", timeout=200)
        wait_for("vision back on the old SHA", lambda: self.status()["services"]["vision"]["status"]
                 .get("model_sha") == old, 60)
        refused = (bad.stdout + bad.stderr).strip().splitlines()[-1:]
        return f"{old[:12]} -> {good[:12]} over ssh; corrupt refused ({' '.join(refused)[:120]}); rolled back to {old[:12]}"

    def check_15_a_model_that_crashes_litert_is_refused_over_ssh(self) -> str:
        """Issue 20, case 1: a model whose card carries its file's SHA-256 but that aborts LiteRT (one weight scale
        set to 1e30, tests/crashing_model.py) is refused by `update-model` over SSH and by a vision reload onto it;
        vision keeps its PID and its model."""
        self.sh("test -f /root/.ssh/id_ed25519 || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519 && "
                "cat /root/.ssh/id_ed25519.pub >> /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys")
        self.sh("systemctl restart ssh")
        vision = wait_for("vision active", lambda: self.active("moodspeaker-vision"), 120)
        sha = wait_for("vision's model", lambda: self.status()["services"]["vision"]["status"].get("model_sha"), 60)
        crash = f"{FIXTURES}/crash"  # readable by the daemon (ProtectHome= hides /root)
        make = textwrap.dedent(f"""\
            import hashlib, json, shutil, sys
            from pathlib import Path
            sys.path.insert(0, '{CLONE}/tests')
            from crashing_model import crashing_copy
            src, out = Path('{CLONE}/models'), Path('{crash}')
            out.mkdir(mode=0o755, exist_ok=True)
            card = json.loads((src / 'emotion.json').read_text())
            data = crashing_copy((src / 'emotion.tflite').read_bytes())
            (out / 'emotion.tflite').write_bytes(data)
            card['sha256'] = hashlib.sha256(data).hexdigest()
            (out / 'emotion.json').write_text(json.dumps(card))
            shutil.copy(src / card['golden']['file'], out / card['golden']['file'])
            for f in out.iterdir():
                f.chmod(0o644)
            """)
        self.sh(f"python3 -c {shlex.quote(make)}")
        bad = self.sh(f"cd {CLONE} && scripts/update-model speaker {crash}/emotion.tflite {crash}/emotion.json",
                      check=False, timeout=300)
        said = (bad.stdout + bad.stderr).strip()
        expect(bad.returncode != 0 and "crashed the interpreter" in said, f"update-model: exit {bad.returncode}: {said}")
        config = "/etc/moodspeaker/config.toml"
        self.sh(f"cp -p {config} {config}.before && printf '\\n[model]\\npath = \"{crash}/emotion.tflite\"\\n' >> {config}")
        try:
            reload = self.sh("systemctl reload moodspeaker-vision", check=False, timeout=200)
            expect(reload.returncode != 0, "a vision reload onto the crashing model succeeded")
            reason = self.status()["services"]["vision"].get("reload_error") or ""
            expect("crashed the interpreter" in reason, f"the reload failed, but not for the crash: {reason!r}")
        finally:
            self.sh(f"mv {config}.before {config}")
        after = self.active("moodspeaker-vision")
        expect(after is not None and after["MainPID"] == vision["MainPID"] and after["NRestarts"] == vision["NRestarts"],
               f"vision did not survive: before {vision}, after {after}")
        expect(self.status()["services"]["vision"]["status"].get("model_sha") == sha, "vision's model changed")
        self.sh("systemctl reload moodspeaker-vision", timeout=200)  # back on the config without the bad model
        return (f"update-model refused it ({said.splitlines()[-1][:100]}); a reload onto it refused ({reason[:80]}); "
                f"vision PID {vision['MainPID']} unchanged, still on {sha[:12]}")

    def check_11_power_cut_while_feedback_is_written(self) -> str:
        self.sh(f"systemd-run --unit=skipper bash -c 'while sleep 0.4; do mpc -q --port {self.mpd_port} next; done'")
        wait_for("feedback being written", lambda: self.feedback_rows() > 3, 60, every=0.5)
        acknowledged = self.feedback_rows()  # committed rows: what the player has acknowledged writing
        self.c.power_cut()
        log(f"power cut with {acknowledged} feedback events committed; booting again")
        self.c.boot()
        self.sh("systemctl stop skipper 2>/dev/null; systemctl reset-failed skipper 2>/dev/null", check=False)
        self.both_up()
        check = self.sh("python3 -c \"import sqlite3; print(sqlite3.connect('/var/lib/moodspeaker/feedback.db')"
                        ".execute('pragma integrity_check').fetchone()[0])\"").stdout.strip()
        rows = self.feedback_rows()
        expect(check == "ok", f"integrity_check: {check}")
        expect(rows >= acknowledged, f"{acknowledged} events acknowledged before the cut, {rows} after")
        wait_for("music after the power cut", self.playing, 120)
        return (f"{acknowledged} events before the SIGKILL, {rows} after; integrity_check ok; both units back "
                "(the host's page cache survives a container kill: a real power cut also loses unsynced pages)")

    def check_12_second_install_changes_nothing(self) -> str:
        # First drive vision into its start limit (a config it refuses at start), then fix the config: the second
        # install must start it again (reset-failed), not be refused.
        config = "/etc/moodspeaker/config.toml"
        self.sh(f"cp -p {config} /root/config.good && printf '\\n[camera]\\nfps = 1000\\n' >> {config} && "
                "systemctl restart moodspeaker-vision", check=False)
        wait_for("vision at its start limit", lambda: self.unit("moodspeaker-vision")["ActiveState"] == "failed"
                 and "repeated too quickly" in self.journal("moodspeaker-vision"), 120)
        self.sh(f"cp -p /root/config.good {config}")
        snapshot = ("sha256sum /etc/moodspeaker/config.toml; readlink /var/lib/moodspeaker/models/current; "
                    "sha256sum /etc/systemd/system/moodspeaker-*.service /etc/mpd.conf")
        before, rows = self.sh(snapshot).stdout, self.feedback_rows()
        out = self.install()
        expect(out.returncode == 0, f"second install.sh exited {out.returncode}:\n{(out.stdout + out.stderr)[-2000:]}")
        after = self.sh(snapshot).stdout
        expect(before == after, f"changed:\n{before}\n->\n{after}")
        expect(self.feedback_rows() >= rows, "feedback lost")
        expect("kept your" in out.stdout and "kept the installed model" in out.stdout, out.stdout[-1500:])
        self.both_up()
        wait_for("music after the reinstall", self.playing, 120)
        # An OS upgrade changes the system Python (Bookworm 3.11 -> Trixie 3.13): the venv must be rebuilt.
        self.sh("sed -i 's/^version.*/version = 3.11.2/' /opt/moodspeaker/venv/pyvenv.cfg")
        out = self.install()
        expect(out.returncode == 0 and "rebuilding the venv" in out.stdout,
               f"a venv of another Python was not rebuilt:\n{(out.stdout + out.stderr)[-1500:]}")
        self.both_up()
        return ("vision started again after its start limit; config, model, units and mpd.conf unchanged; "
                "feedback kept; both units up again; a venv of another Python is rebuilt")

    def check_13_uninstall_then_purge(self) -> str:
        out = self.install("--uninstall")
        expect(out.returncode == 0, f"--uninstall exited {out.returncode}: {out.stderr}")
        left = self.sh("test -e /opt/moodspeaker && echo /opt/moodspeaker; ls /etc/systemd/system | grep moodspeaker; "
                       "systemctl list-units --all --no-legend 'moodspeaker*'", check=False).stdout.strip()
        expect(not left, f"after --uninstall: {left}")
        kept = self.sh("test -f /etc/moodspeaker/config.toml && test -e /var/lib/moodspeaker/models/current && echo kept",
                       check=False).stdout.strip()
        expect(kept == "kept", "--uninstall removed the config or the models")
        out = self.install("--uninstall", "--purge")
        expect(out.returncode == 0, f"--purge exited {out.returncode}: {out.stderr}")
        left = self.sh("find / -xdev \\( -path /proc -o -path /sys -o -path /root/moodspeaker -o -path /srv "
                       "-o -path /root/.cache \\) -prune -o -iname '*moodspeaker*' -print; getent passwd moodspeaker; "
                       "grep -l 'BEGIN moodspeaker' /etc/mpd.conf /boot/firmware/config.txt /boot/config.txt 2>/dev/null; "
                       "ls /run/moodspeaker 2>/dev/null", check=False).stdout.strip()
        expect(not left, f"left after --purge:\n{left}")
        return "--uninstall kept config and models; after --purge nothing of ours is left"

    def check_14_systemd_analyze_security_and_verify(self) -> str:
        scores = {}
        for name, limit in MAX_EXPOSURE.items():
            out = self.sh(f"systemd-analyze security --no-pager {name}.service", check=False).stdout
            score = float(out.rsplit("Overall exposure level for", 1)[1].split(":")[1].split()[0])
            scores[name] = score
            expect(score <= limit, f"{name}: exposure {score} > {limit}")
        out = self.sh("systemd-analyze verify /etc/systemd/system/moodspeaker-vision.service "
                      "/etc/systemd/system/moodspeaker-player.service", check=False)
        ours = [line for line in (out.stdout + out.stderr).splitlines() if "moodspeaker" in line]
        expect(out.returncode == 0 and not ours, f"verify: exit {out.returncode}\n" + "\n".join(ours))
        return f"exposure {scores}; verify clean"


    # -- issue 18: a player that cannot wedge, and the owner's hand wins -----------------------------------------
    def _player_status(self) -> dict:
        return self.status()["services"]["player"].get("status") or {}

    def check_20_mpd_down_90_s_then_back_resumes_without_a_restart(self) -> str:
        wait_for("MPD playing", self.playing, 120)
        pid = self.active("moodspeaker-player")["MainPID"]
        self.sh("systemctl stop mpd.socket mpd.service")
        wait_for("the player reports MPD down", lambda: self._player_status().get("last_error"), 60)
        time.sleep(90)  # the back-off grows past the 10 s call budget
        started = time.monotonic()
        self.sh("systemctl start mpd.socket mpd.service")
        wait_for("music and no player error within 35 s of MPD's start",
                 lambda: self.playing() and not self._player_status().get("last_error"), 35)
        took = time.monotonic() - started
        now = self.active("moodspeaker-player")
        expect(now is not None and now["MainPID"] == pid, f"the player restarted: {now}")
        return f"MPD stopped 90 s; music and a clean status {took:.0f} s after it started; player PID {pid} kept"

    def check_21_a_reload_that_fails_half_way_keeps_the_old_setup(self) -> str:
        config = "/etc/moodspeaker/config.toml"
        pid = self.active("moodspeaker-player")["MainPID"]
        took = 0.0

        def failing_reload() -> None:
            nonlocal took
            self.sh(f"cp -p {config} /root/config.good && printf '\\n[mqtt]\\nhost = \"127.0.0.1\"\\ntls = true\\n"
                    f"ca_file = \"/nonexistent/ca.pem\"\\n' >> {config}")  # the bridge fails as the new setup swaps in
            try:
                started = time.monotonic()
                out = self.sh("systemctl reload moodspeaker-player", check=False, timeout=120)
                took = time.monotonic() - started
                text = self.sh("moodspeaker status", check=False)
                why = out.stderr + text.stdout + text.stderr
            finally:
                self.sh(f"cp -p /root/config.good {config}")
            expect(out.returncode != 0, "systemctl reload returned 0 for a setup that failed half-way")
            expect(took < 15, f"systemctl reload took {took:.0f} s")
            expect("ca.pem" in why or "ca file" in why.lower(), f"neither systemctl nor status says why:\n{why[-1500:]}")
            expect(self.active("moodspeaker-player")["MainPID"] == pid, "the player restarted")

        song, t0, song2, t1 = self._music_across(failing_reload, "failed reloads")
        expect(song2 == song and t1 >= t0, f"music interrupted: {song}@{t0}s -> {song2}@{t1}s")
        out = self.sh("systemctl reload moodspeaker-player", check=False, timeout=120)
        expect(out.returncode == 0, f"the good reload failed: {out.stderr}")
        return f"reload failed in {took:.0f} s with the reason; PID {pid} and {song} played on; a good reload works"

    def check_22_volume_requests_during_an_mpd_hang_do_not_kill_the_player(self) -> str:
        wait_for("MPD playing", self.playing, 120)
        pid = self.active("moodspeaker-player")["MainPID"]
        restarts = self.unit("moodspeaker-player")["NRestarts"]
        mpd = self.sh("systemctl show -p MainPID --value mpd").stdout.strip()
        since = self.sh("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
        self.sh(f"kill -STOP {mpd}")
        try:
            started = time.monotonic()
            for level in range(30, 40):  # ten taps on Home Assistant's slider, over the hang
                self.sh(f"timeout 5 moodspeaker volume {level}", check=False)
                time.sleep(max(0.0, started + 6 * (level - 29) - time.monotonic()))
            while time.monotonic() - started < 60:
                time.sleep(1)
            now = self.unit("moodspeaker-player")
        finally:
            self.sh(f"kill -CONT {mpd}", check=False)
        expect(now["MainPID"] == pid and now["NRestarts"] == restarts, f"the player was restarted: {now}")
        expect("watchdog" not in self.journal("moodspeaker-player", f"--since '{since}'").lower(),
               "the journal names the watchdog")
        # The player tries MPD again at its back-off's pace (the next attempt at most [mpd] reconnect_max_s after the
        # hang; a command before it is refused at once, `moodspeaker volume` then says "volume unknown"): wait for it.
        wait_for("music after MPD resumed, seen by the player",
                 lambda: self.playing() and not self._player_status().get("last_error"), 90)
        # `moodspeaker volume` withdraws a request the player did not take within 3 s (as during the hang): ask again
        out = self.sh("moodspeaker volume 39", check=False, timeout=30)
        expect(out.returncode == 0 and "volume 39" in out.stdout, f"after the hang: {out.stdout}{out.stderr}")
        wait_for("MPD at 39", lambda: "volume: 39%" in self.mpc(), 30)
        return f"10 requests during a 60 s hang; PID {pid} kept, no watchdog; `moodspeaker volume 39` works after"

    def check_23_a_volume_raised_in_quiet_hours_comes_back_to_the_cap(self) -> str:
        config = "/etc/moodspeaker/config.toml"
        hh, mm = map(int, self.sh("date +%H:%M").stdout.strip().split(":"))
        start, end = (hh * 60 + mm - 1) % 1440, (hh * 60 + mm + 60) % 1440
        window = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
        self.sh(f"cp -p {config} /root/config.good && printf '\\n[volume]\\nquiet_hours = [\"{window}\"]\\n"
                f"quiet_max = 30\\n' >> {config}")
        try:
            out = self.sh("systemctl reload moodspeaker-player", check=False, timeout=120)
            expect(out.returncode == 0, f"the reload into quiet hours failed: {out.stderr}")
            wait_for("the volume at the quiet hours' cap", lambda: "volume: 30%" in self.mpc(), 30)
            self.mpc("volume 90")  # the owner's phone app
            started = time.monotonic()
            wait_for("the volume back at the cap within a minute", lambda: "volume: 30%" in self.mpc(), 60)
            took = time.monotonic() - started
        finally:
            self.sh(f"cp -p /root/config.good {config}")
            self.sh("systemctl reload moodspeaker-player", check=False, timeout=120)
        return f"quiet hours {window}, cap 30: `mpc volume 90` brought back to 30 after {took:.0f} s"

    def check_24_the_owner_stops_the_music_and_it_stays_stopped(self) -> str:
        wait_for("MPD playing", self.playing, 120)
        since = self.sh("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
        self.mpc("stop")  # another client: the owner's phone
        try:
            wait_for("status says the owner is in control",
                     lambda: str(self.status().get("control")).startswith("owner"), 15)
        except Failed as exc:
            raise Failed(f"{exc}; mpc: {self.mpc()}; the player since the stop:\n"
                         f"{self.journal('moodspeaker-player', f'--since {since!r}')[-2500:]}") from None
        changes = self._player_status().get("mood_changes", 0)
        wait_for("a mood change", lambda: self._player_status().get("mood_changes", 0) > changes, 180)
        time.sleep(3)
        expect(self.playing() is None, f"the speaker started its music again: {self.mpc()}")
        control = self.status().get("control")
        text = self.sh("moodspeaker status", check=False).stdout
        expect("control owner" in text, f"`moodspeaker status` does not say who is in control:\n{text}")
        out = self.sh("moodspeaker resume", check=False)
        expect(out.returncode == 0, f"moodspeaker resume: {out.stdout}{out.stderr}")
        wait_for("music after `moodspeaker resume`", self.playing, 30)
        return f"stopped through a mood change; status: {control}; `moodspeaker resume` handed back"


def _write_music(mpd_dir: Path) -> None:
    """Four tones of TRACK_SECONDS (8 kHz mono WAV) and a mood-<key>.m3u for every playlist key."""
    import math
    import struct
    import wave

    music, playlists = mpd_dir / "music", mpd_dir / "playlists"
    music.mkdir(parents=True, exist_ok=True)
    playlists.mkdir(parents=True, exist_ok=True)
    rate = 8000
    names = []
    for i, hz in enumerate((220, 277, 330, 392)):
        name = f"tone-{hz}.wav"
        one_second = b"".join(struct.pack("<h", int(3000 * math.sin(2 * math.pi * hz * t / rate))) for t in range(rate))
        with wave.open(str(music / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(one_second * TRACK_SECONDS)
        names.append(name)
        del i
    for k, mood in enumerate(MOODS):
        order = names[k % 4:] + names[:k % 4]
        (playlists / f"mood-{mood}.m3u").write_text("\n".join(order) + "\n")


def host_ip() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface's address
        return s.getsockname()[0]


def preflight() -> str:
    """Why this machine cannot run the system test, or '' when it can."""
    if os.geteuid() != 0:
        return "not root"
    missing = [tool for tool in ("systemd-nspawn", "debootstrap", "nsenter") if not shutil.which(tool)]
    if missing:
        return f"missing {', '.join(missing)} (apt install systemd-container debootstrap)"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--suite", default="trixie")
    args = parser.parse_args()
    if why := preflight():
        print(f"system test: cannot run here: {why}", file=sys.stderr)
        return 2
    started = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run still removes its container
    base = base_root(args.suite, "amd64", log)
    c = Container(base, f"moodspeaker-st-{os.getpid()}", log)
    t = SystemTest(c, mpd_port=free_port(), ssh_port=free_port())
    t.host_ip = host_ip()
    checks = sorted((name for name in dir(t) if name.startswith("check_")), key=lambda n: n.split("_")[1])
    order = [n for n in checks if not n.startswith(("check_11", "check_12", "check_13", "check_14"))]
    order += [n for n in checks if n.startswith("check_14")] + [n for n in checks if n.startswith(("check_11", "check_12"))]
    order += [n for n in checks if n.startswith("check_13")]  # 14 needs the units installed; 13 removes them
    wanted = {int(x) for x in args.only.split(",") if x}
    results: list[tuple[int, bool, str]] = []
    try:
        log(f"copying the root to {c.root}; MPD port {t.mpd_port}, sshd port {t.ssh_port}")
        c.fresh_copy()
        t.prepare()
        c.boot()
        log(f"booted (init PID {c.init_pid}); setup took {time.monotonic() - started:.0f} s")
        for name in order:
            number = int(name.split("_")[1])
            if wanted and number not in wanted:
                continue
            title = f"{number:2d} " + " ".join(name.split("_")[2:])
            t0 = time.monotonic()
            try:
                detail = getattr(t, name)()
                ok = True
            except Failed as exc:
                ok, detail = False, str(exc)
            except Exception as exc:  # a broken harness step is a failed check too, with where it broke
                ok, detail = False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
            results.append((number, ok, detail))
            known = f" [known: {KNOWN_FAILURES[number]}]" if not ok and number in KNOWN_FAILURES else ""
            if ok and number in KNOWN_FAILURES:
                known = " [listed as a known failure: remove it from KNOWN_FAILURES]"
            print(f"{'PASS' if ok else 'FAIL'} {title} ({time.monotonic() - t0:.0f} s): {detail}{known}", flush=True)
    finally:
        if not args.keep:
            c.remove()
        else:
            c.shutdown()
    passed = sum(ok for _, ok, _ in results)
    known = [n for n, ok, _ in results if not ok and n in KNOWN_FAILURES]
    log(f"system test took {time.monotonic() - started:.0f} s")
    print(f"{passed} passed, {len(results) - passed} failed"
          + (f" ({len(known)} known, listed in KNOWN_FAILURES: {', '.join(map(str, known))})" if known else ""))
    return 0 if results and passed + len(known) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
