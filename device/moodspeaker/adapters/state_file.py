"""Each daemon's state as a small JSON file, <runtime_dir>/<service>.json, for `moodspeaker status` and for a
unit's ExecReload helper.

Written atomically (temporary file in the same directory, then rename), so a reader never sees half a file;
mode 0640: the mood is personal, so only the daemons' group may read it. The keys (app/lifecycle.py writes them):

- `service`, `pid`, `started_at`, `updated_at` (wall-clock seconds): rewritten about once a `status_interval`;
- `phase`: starting | running | reloading | stopping | failed ("failed": the daemon died of `last_error`;
  a clean stop removes the file instead);
- `status`: the daemon's own figures (mood, fps, model, track, ...);
- `errors`: source -> message of each problem now (camera, backend, reload, ...); `last_error` /
  `last_error_at`: the newest of them, null when nothing is wrong;
- `reloads`: how many SIGHUP reloads have finished since the daemon started; `last_reload`: null, or
  {"ok": bool, "error": message or null, "finished_at": wall seconds} of the latest; `reload_error`: its error
  while the running setup is the old one.

Waiting for a reload: read `pid` and `reloads`, send SIGHUP to `pid`, then poll until `reloads` grows (the
reload finished: `last_reload` says how) or `pid` changes (the daemon restarted).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from moodspeaker.errors import MoodspeakerError

STATE_FILE_MODE = 0o640


class StateFileError(MoodspeakerError):
    """A state file exists but cannot be read as one; the message names the file."""


def state_path(runtime_dir: Path, service: str) -> Path:
    return runtime_dir / f"{service}.json"


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Replace `path` with `state` as JSON in one rename, readable by the owner and its group only."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, separators=(",", ":"))
        os.chmod(tmp, STATE_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def process_alive(pid: object) -> bool:
    """Whether process `pid` exists and has not died (a zombie, dead but not yet reaped by its parent, counts as
    dead), under any user."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    except OverflowError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc to ask (or it went just now): the signal said it exists
    return stat[stat.rfind(")") + 2:][:1] not in ("Z", "X")


def read_state(path: Path) -> dict[str, Any] | None:
    """The state in `path`, or None when the daemon has not written one (not running, or never started)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        state = json.loads(data)
    except ValueError as exc:  # not JSON, or not UTF-8
        raise StateFileError(f"{path}: not a moodspeaker state file ({exc})") from None
    if not isinstance(state, dict):
        raise StateFileError(f"{path}: not a moodspeaker state file (not a JSON object)")
    return state
