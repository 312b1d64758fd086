"""`moodspeaker status [--json]`: what the two daemons are doing, read from the state files they write.

Each daemon's `ServiceRuntime` rewrites <runtime_dir>/<service>.json about once a second; a file whose process is
gone means the daemon crashed (a clean stop removes it), one not rewritten for a while that it is stuck. A daemon
that runs without a state file (a full runtime folder) is found among the processes and reported with the cause.
A broken config file does not stop `status`: it says what is wrong with it and reads the state files anyway.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

from moodspeaker.adapters.state_file import StateFileError, process_alive, read_state, state_path
from moodspeaker.commands import add_config_argument
from moodspeaker.config import Config, load_config
from moodspeaker.errors import ConfigError, ModelError
from moodspeaker.model_card import card_path_for, load_card
from moodspeaker.paths import default_model

SERVICES = ("vision", "player")
STALE_INTERVALS = 10  # no state update for this many status intervals (at least 10 s): the daemon is stuck


def service_state(runtime_dir: Path, name: str, stale_after: float, now: float) -> dict[str, Any]:
    """One daemon: `state` is running | stuck | stopped | crashed, plus what its state file says."""
    try:
        raw = read_state(state_path(runtime_dir, name))
    except StateFileError as exc:
        return {"state": "unreadable", "error": str(exc)}
    if raw is None:
        pid = find_daemon(name, runtime_dir)
        if pid is None:
            return {"state": "stopped"}
        why = (f"it cannot write its state file {state_path(runtime_dir, name)}: "
               f"{_runtime_dir_problem(runtime_dir, name)}")
        return {"state": "running", "phase": None, "pid": pid, "uptime_s": None, "updated_at": None,
                "updated_s_ago": None, "status": {}, "last_error": why, "last_error_at": None, "reload_error": None,
                "no_state_file": True}
    status = raw.get("status") if isinstance(raw.get("status"), dict) else {}
    started, updated = raw.get("started_at"), raw.get("updated_at")
    if not process_alive(raw.get("pid")):
        state = "crashed"  # a clean stop removes the file; the process is gone without doing so
    elif isinstance(updated, int | float) and now - updated > stale_after:
        state = "stuck"
    else:
        state = "running"
    return {"state": state, "phase": raw.get("phase"), "pid": raw.get("pid"),
            "uptime_s": round(now - started) if isinstance(started, int | float) else None,
            "updated_at": updated, "updated_s_ago": round(now - updated, 1) if isinstance(updated, int | float) else None,
            "status": status, "last_error": raw.get("last_error"), "last_error_at": raw.get("last_error_at"),
            "reload_error": raw.get("reload_error")}


def find_daemon(name: str, runtime_dir: Path, proc: Path = Path("/proc")) -> int | None:
    """The PID of a running `moodspeaker NAME` (or `python -m moodspeaker.cli NAME`) whose config puts its state
    file in `runtime_dir`, found by its command line; None if there is none (or /proc cannot tell)."""
    try:
        entries = [p for p in proc.iterdir() if p.name.isdigit() and int(p.name) != os.getpid()]
    except OSError:
        return None
    for entry in entries:
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        for i, arg in enumerate(argv):
            if os.path.basename(arg) == "moodspeaker" or arg == "moodspeaker.cli":
                command = next((a for a in argv[i + 1:] if not a.startswith("-")), None)
                if command == name and _runtime_dir_of(argv[i + 1:], entry) == runtime_dir.resolve() and \
                        process_alive(int(entry.name)):
                    return int(entry.name)
                break
    return None


def _runtime_dir_of(args: list[str], process: Path) -> Path | None:
    """The runtime folder of the daemon `process` (its /proc entry), started with `args`: its --config file's
    [service] runtime_dir (a relative --config and runtime_dir are taken from the daemon's working folder)."""
    config = next((b for a, b in itertools.pairwise(args) if a == "--config"), None)
    config = next((a.split("=", 1)[1] for a in args if a.startswith("--config=")), config)
    try:
        cwd = Path(os.readlink(process / "cwd"))
    except OSError:
        cwd = Path("/")
    try:
        return (cwd / load_config(cwd / config if config else None).service.runtime_dir).resolve()
    except (ConfigError, OSError):
        return None


def _runtime_dir_problem(runtime_dir: Path, name: str) -> str:
    try:
        fs = os.statvfs(runtime_dir)
    except OSError as exc:
        return f"{runtime_dir}: {exc.strerror}"
    if fs.f_bavail == 0 or fs.f_favail == 0:
        return f"the runtime folder {runtime_dir} is full; free space there"
    return f"see `journalctl -u moodspeaker-{name}`"


def model_info(config: Config, vision_status: dict[str, Any]) -> dict[str, Any]:
    """The model vision reports it runs, else the one it would load; SHA-256 and val accuracy from its card."""
    path = Path(vision_status.get("model_path") or config.model.path or default_model())
    try:
        card = load_card(card_path_for(path))
    except ModelError as exc:
        return {"path": str(path), "error": str(exc)}
    return {"path": str(path), "name": card.name, "sha256": card.sha256, "val_accuracy": card.val_accuracy}


def gather(config: Config, runtime_dir: Path, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    stale_after = max(10.0, STALE_INTERVALS * config.service.status_interval)
    services = {name: service_state(runtime_dir, name, stale_after, now) for name in SERVICES}
    vision, player = (services[name].get("status", {}) for name in SERVICES)
    errors = [(s.get("last_error_at") or 0, f"{name}: {s['last_error']}") for name, s in services.items()
              if s.get("last_error")]
    errors += [(s.get("updated_at") or 0, f"{name}: {s['status']['last_error']}") for name, s in services.items()
               if s.get("status", {}).get("last_error")]
    if feedback := player.get("feedback_problem"):
        errors.append((services["player"].get("updated_at") or 0, f"player: {feedback}"))
    return {
        "mood": vision.get("mood", player.get("mood")),
        "confidence": vision.get("confidence", player.get("confidence")),
        "face": vision.get("face"),
        "fps": vision.get("fps"),
        "model": model_info(config, vision),
        "backend": player.get("backend"),
        "track": player.get("track"),
        "volume": player.get("volume"),
        "watch_failures": player.get("watch_failures"),
        "control": player.get("control"),
        "mqtt": player.get("mqtt"),
        "feedback": player.get("feedback_problem"),
        "privacy": bool(vision.get("privacy") or player.get("privacy")),
        "spotify_login": spotify_login(config, now),
        "last_error": max(errors)[1] if errors else None,
        "uptime_s": {name: s.get("uptime_s") for name, s in services.items()},
        "services": services,
    }


def spotify_login(config: Config, now: float) -> dict[str, Any] | None:
    """With the Spotify backend: when its login ends (six months after `spotify-login`) and whether to warn."""
    if config.player.backend != "spotify":
        return None
    from moodspeaker.adapters.spotify_auth import LOGIN_WARN_S, TokenFile

    ends = TokenFile(Path(config.spotify.token_cache)).login_ends_at()
    return {"ends_at": ends, "warn": ends is None or ends - now < LOGIN_WARN_S,
            "days_left": None if ends is None else round((ends - now) / 86400, 1)}


def _render_spotify_login(login: dict[str, Any]) -> str:
    if login["ends_at"] is None:
        return ("spotify no dated login (none yet, or from before logins were dated): run "
                "`sudo -u moodspeaker moodspeaker spotify-login`")
    day = time.strftime("%Y-%m-%d", time.localtime(login["ends_at"]))
    if login["days_left"] <= 0:
        return f"spotify login ended on {day} (Spotify ends logins after six months): run `moodspeaker spotify-login`"
    if login["warn"]:
        return (f"spotify login ends on {day}, in {login['days_left']:g} days (six months after it was made): "
                "log in again now with `sudo -u moodspeaker moodspeaker spotify-login`")
    return f"spotify login until {day}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    return f"{days}d {h}h" if days else f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"


def render(report: dict[str, Any]) -> str:
    lines = []
    for name, s in report["services"].items():
        state = s["state"]
        detail = f" for {_duration(s.get('uptime_s'))} (pid {s.get('pid')})" if state == "running" else ""
        if s.get("no_state_file"):
            detail = f" (pid {s.get('pid')}), but {s['last_error']}"
        if state == "crashed" and s.get("last_error"):
            detail = f": {s['last_error']}"
        if state == "stuck":
            detail = f": no update for {s.get('updated_s_ago')} s (pid {s.get('pid')}); the watchdog will restart it"
        if s.get("reload_error"):
            detail += f"; last reload failed, still on the previous config: {s['reload_error']}"
        lines.append(f"{name:8s}{state}{detail}")
    if report["mood"] is not None:
        conf, fps = report["confidence"], report["fps"]
        lines.append(f"mood    {report['mood']}" + (f" ({conf:.2f})" if isinstance(conf, int | float) else "")
                     + (f", {fps:.1f} fps" if isinstance(fps, int | float) else "")
                     + (f"; {report['face']}" if report.get("face") not in (None, "ok", "none") else ""))
    model = report["model"]
    if "error" in model:
        lines.append(f"model   {model['error']}")
    else:
        acc = model["val_accuracy"]
        lines.append(f"model   {model['sha256'][:12]} {model['name'] or ''} val accuracy "
                     f"{'?' if acc is None else f'{acc:.4f}'} ({model['path']})")
    if report["backend"] is not None:
        volume = f", volume {report['volume']}" if isinstance(report.get("volume"), int) else ""
        failures = report.get("watch_failures")
        failures = f", watching for track changes failed {failures} times" if failures else ""
        lines.append(f"player  {report['backend']}: {report['track'] or 'nothing playing'}{volume}{failures}")
        if report.get("control", "speaker") not in (None, "speaker"):
            lines.append(f"control {report['control']}; `moodspeaker resume` or a button press hands back")
    if report.get("mqtt"):
        lines.append(f"mqtt    {report['mqtt']}")
    if report.get("feedback"):
        lines.append(f"feedback {report['feedback']}")
    lines.append(f"privacy {'on: camera off' if report['privacy'] else 'off'}")
    if report.get("spotify_login"):
        lines.append(_render_spotify_login(report["spotify_login"]))
    lines.append(f"error   {report['last_error'] or 'none'}")
    if report.get("config_error"):
        lines.append(f"config  broken, a restart or reload would fail: {report['config_error']}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    try:
        config, config_error = load_config(args.config), None
    except ConfigError as exc:  # the daemons may still run on the config they read before; show both
        config, config_error = Config(), str(exc)
    report = gather(config, args.runtime_dir or Path(config.service.runtime_dir))
    report["config_error"] = config_error
    print(json.dumps(report) if args.json else render(report))
    running = all(s["state"] == "running" for s in report["services"].values())
    return 0 if running and config_error is None else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="mood, fps, model, player and errors of the running daemons "
                       "(exit status 1 unless both run and the config file is good)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_argument(p)
    p.add_argument("--runtime-dir", type=Path, default=None, help="where the daemons write their state "
                   "(default: [service] runtime_dir)")
    p.set_defaults(func=_run)
