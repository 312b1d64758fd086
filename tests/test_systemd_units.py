"""The shipped systemd units: hardened enough (systemd-analyze security) and valid (systemd-analyze verify)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "systemd"
MAX_EXPOSURE = {"moodspeaker-vision.service": 2.0, "moodspeaker-player.service": 4.0}
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _unit(name: str) -> dict[str, list[str]]:
    """`Section.Key` -> its values in order (a unit may repeat a key)."""
    unit: dict[str, list[str]] = {}
    section = ""
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif line and not line.startswith("#"):
            key, value = line.split("=", 1)
            unit.setdefault(f"{section}.{key}", []).append(value)
    return unit


@pytest.mark.parametrize("name", sorted(MAX_EXPOSURE))
def test_units_run_as_notify_services_with_a_watchdog_and_reload_by_sighup(name: str) -> None:
    unit = _unit(name)
    assert unit["Service.Type"] == ["notify"]
    assert int(unit["Service.WatchdogSec"][0]) > 0
    assert unit["Service.Restart"] == ["on-failure"]
    assert int(unit["Unit.StartLimitBurst"][0]) > 0
    # no /bin/kill (procps is missing from minimal images); waits for the rebuild and fails when it failed
    assert unit["Service.ExecReload"] == [f"/opt/moodspeaker/venv/bin/moodspeaker reload {name.split('-')[1].split('.')[0]} "
                                          "--pid $MAINPID"]
    assert unit["Service.User"] == ["moodspeaker"]
    assert unit["Service.CapabilityBoundingSet"] == [""]


def test_player_unit_names_no_group_that_plain_debian_lacks() -> None:
    """SupplementaryGroups=gpio fails the unit with 216/GROUP where there is no gpio group; install.sh adds it in a
    drop-in only where the group exists (tests/test_install_script.py)."""
    assert "Service.SupplementaryGroups" not in _unit("moodspeaker-player.service")
    assert _unit("moodspeaker-vision.service")["Service.SupplementaryGroups"] == ["video"]  # every Debian has it


def test_vision_unit_has_no_network_and_only_camera_devices() -> None:
    unit = _unit("moodspeaker-vision.service")
    assert unit["Service.PrivateNetwork"] == ["yes"]
    assert unit["Service.IPAddressDeny"] == ["any"]
    assert unit["Service.RestrictAddressFamilies"] == ["AF_UNIX"]
    assert unit["Service.DevicePolicy"] == ["closed"]
    devices = {line.split()[0] for line in unit["Service.DeviceAllow"]}
    assert devices == {"char-video4linux", "char-media", "char-dma_heap"}


@needs_analyze
@pytest.mark.parametrize("name", sorted(MAX_EXPOSURE))
def test_security_exposure_is_within_target(name: str) -> None:
    out = subprocess.run([ANALYZE, "security", "--offline=yes", str(UNITS / name)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    overall = float(out.stdout.rsplit("Overall exposure level for", 1)[1].split(":")[1].split()[0])
    assert overall <= MAX_EXPOSURE[name], out.stdout



def _staged_root(tmp: Path) -> Path:
    """A root with the units installed where install.sh puts them, the system's own units (for the targets they
    reference) and the executable ExecStart=/ExecReload= name, so `verify --root` checks them honestly."""
    root = tmp / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in MAX_EXPOSURE:
        shutil.copy(UNITS / unit, root / "etc/systemd/system" / unit)
    system_units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir())
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "usr/bin").mkdir(parents=True)
    os.symlink("usr/bin", root / "bin")
    daemon = root / "opt/moodspeaker/venv/bin/moodspeaker"
    daemon.parent.mkdir(parents=True)
    daemon.write_text("#!/bin/sh\n")
    daemon.chmod(0o755)
    return root


@needs_analyze
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    root = _staged_root(tmp_path)
    out = subprocess.run([ANALYZE, "verify", f"--root={root}", *MAX_EXPOSURE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ours = [line for line in out.stderr.splitlines() if "moodspeaker" in line]
    assert ours == [], "\n".join(ours)  # unknown keys are only warnings, with exit status 0
