"""Each daemon's state as a small JSON file under the runtime directory, for `moodspeaker status`.

Written atomically (temporary file in the same directory, then rename), so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from moodspeaker.errors import MoodspeakerError


class StateFileError(MoodspeakerError):
    """A state file exists but cannot be read as one; the message names the file."""


def state_path(runtime_dir: Path, service: str) -> Path:
    return runtime_dir / f"{service}.json"


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Replace `path` with `state` as JSON in one rename; the file is world-readable (it holds no secrets)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, separators=(",", ":"))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_state(path: Path) -> dict[str, Any] | None:
    """The state in `path`, or None when the daemon has not written one (not running, or never started)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(f"{path}: not a moodspeaker state file ({exc})") from None
    if not isinstance(state, dict):
        raise StateFileError(f"{path}: not a moodspeaker state file (not a JSON object)")
    return state
