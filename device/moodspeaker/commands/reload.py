"""`moodspeaker reload vision|player`: the units' ExecReload=. Sends SIGHUP to the daemon and waits for its rebuild.

`systemctl reload` then returns only once the daemon has reloaded, and fails (with the daemon's reason) when the
reload failed and the daemon kept its previous setup. One unit file works on every systemd: `Type=notify-reload`
(systemd 253+) has no way to report a failed reload, and `/bin/kill` needs procps, which minimal images lack.
The daemon counts its finished rebuilds in its state file (`reloads`, `reload_error`); this command waits for the
count to grow, and says at once if the daemon died meanwhile.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from moodspeaker.adapters.state_file import StateFileError, process_alive, read_state, state_path
from moodspeaker.config import ServiceConfig

POLL_S = 0.1


def reload_daemon(runtime_dir: Path, name: str, pid: int | None, timeout: float) -> tuple[bool, str]:
    """(ok, message). `pid`: the main PID systemd knows ($MAINPID); default the one in the state file."""
    path = state_path(runtime_dir, name)
    try:
        before = read_state(path)
    except StateFileError as exc:
        return False, str(exc)
    if before is None:
        return False, f"{path}: no state file; is moodspeaker-{name} running?"
    pid = pid or before.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False, f"{path}: no daemon PID in the state file"
    if before.get("pid") != pid:
        return False, f"{path} belongs to PID {before.get('pid')}, not {pid}; the daemon is still starting"
    count = before.get("reloads", 0)
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return False, f"moodspeaker-{name} (PID {pid}) is not running"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(POLL_S)
        if not process_alive(pid):  # it died in the rebuild: its state file stays as it was, so say so now
            return False, (f"moodspeaker-{name} (PID {pid}) died while reloading; see `journalctl -u "
                           f"moodspeaker-{name}` (systemd restarts it)")
        try:
            state = read_state(path)
        except StateFileError:
            continue  # rewritten as we read it; the next poll sees the whole file
        if state is None or state.get("pid") != pid:
            return False, f"moodspeaker-{name} (PID {pid}) stopped while reloading"
        if state.get("reloads", 0) > count:
            if state.get("reload_error"):
                return False, f"reload failed, still running the previous setup: {state['reload_error']}"
            return True, f"moodspeaker-{name}: reloaded"
    return False, f"moodspeaker-{name} (PID {pid}) did not finish reloading within {timeout:g} s"


def _run(args: argparse.Namespace) -> int:
    ok, message = reload_daemon(args.runtime_dir, args.service, args.pid, args.timeout)
    print(f"moodspeaker reload: {message}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reload", help="reload a running daemon (SIGHUP) and wait until it has; fails if the reload did",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("service", choices=("vision", "player"))
    p.add_argument("--pid", type=int, default=None, help="the daemon's PID (the units pass $MAINPID); default: from "
                                                         "its state file")
    p.add_argument("--runtime-dir", type=Path, default=Path(ServiceConfig().runtime_dir),
                   help="where the daemons write their state files (default %(default)s, [service] runtime_dir)")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the rebuild (default %(default)s)")
    p.set_defaults(func=_run)
