"""A cached Debian root file system, booted under systemd-nspawn, and commands run inside it.

The root is built once by debootstrap from Debian's archive and kept under CACHE (outside any checkout); each run
boots a fresh copy of it. apt's downloaded packages and pip's wheels are cached there too, so a warm run
downloads nothing. The container shares the host's network (no veth setup needed, apt and pip work as on the
host), so every port the tests use is chosen free on the host.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

CACHE = Path(os.environ.get("MOODSPEAKER_SYSTEM_CACHE", "/var/cache/moodspeaker-system-test"))
WORK = Path(os.environ.get("MOODSPEAKER_SYSTEM_WORK", "/var/tmp/moodspeaker-system-test"))
MIRROR = os.environ.get("MOODSPEAKER_SYSTEM_MIRROR", "http://deb.debian.org/debian")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the test needs beyond a minimal Debian; install.sh installs the rest. mpd is in the base so the test can
# move it off port 6600 before install.sh starts it (the container shares the host's ports); its /var/lib/mpd is
# removed again, as a fresh Debian may not have it.
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "ca-certificates", "git", "python3", "openssh-server",
                 "openssh-client", "sudo", "mpd")
PIP_CONFIG_FILES = (Path("/etc/pip.conf"), Path("/etc/xdg/pip"), Path.home() / ".config/pip")


def nice(cmd: list[str]) -> list[str]:
    """Heavy host-side steps run at low priority: the machine may be shared."""
    return ["nice", "-n", "10", *cmd]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_root(suite: str, arch: str, log, packages: tuple[str, ...] = BASE_PACKAGES) -> Path:
    """The cached debootstrap root for suite/arch, built if missing (a half-built one is never used)."""
    key = hashlib.sha256(" ".join((suite, arch, MIRROR, *packages)).encode()).hexdigest()[:10]
    root = CACHE / f"{suite}-{arch}-{key}"
    if (root / ".complete").is_file():
        log(f"base root {root} (cached)")
        return root
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    log(f"building base root {root} with debootstrap from {MIRROR} (once; minutes)")
    started = time.monotonic()
    subprocess.run(nice(["debootstrap", "--variant=minbase", f"--arch={arch}", f"--include={','.join(packages)}",
                         suite, str(tmp), MIRROR]), check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(tmp / "var/lib/mpd", ignore_errors=True)  # as on a fresh Debian where mpd was never started (#10, item 3)
    for leftover in (tmp / "var/cache/apt/archives").glob("*.deb"):
        leftover.unlink()
    (tmp / ".complete").write_text(f"debootstrap {suite} {arch} in {time.monotonic() - started:.0f} s\n")
    tmp.rename(root)
    return root


def pip_host_paths() -> list[Path]:
    """Local folders the host's pip config points at (find-links, file:// indexes): bound read-only into the root."""
    paths = []
    texts = [os.environ.get(k, "") for k in os.environ if k.startswith("PIP_")]
    for conf in PIP_CONFIG_FILES:
        files = sorted(conf.rglob("*")) if conf.is_dir() else [conf]
        texts += [f.read_text(errors="replace") for f in files if f.is_file()]
    for text in texts:
        for match in re.findall(r"(?:file://)?(/[\w./+-]+)", text):
            p = Path(match)
            if p.is_dir() and p != Path("/") and not str(p).startswith(("/etc", "/usr", "/var")):
                paths.append(p.parent if p.name == "simple" else p)  # an index's files lie beside its simple/
    return sorted(set(paths))


def copy_host_config(root: Path) -> None:
    """The host's pip configuration, CA certificates and apt settings, so pip and apt inside work as they do here."""
    for conf in PIP_CONFIG_FILES:
        if conf.exists():
            target = root / ("root" / conf.relative_to(Path.home()) if conf.is_relative_to(Path.home())
                             else conf.relative_to("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            if conf.is_dir():
                shutil.copytree(conf, target, dirs_exist_ok=True)
            else:
                shutil.copy(conf, target)
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.is_file():
        shutil.copy(bundle, root / "etc/ssl/certs/ca-certificates.crt")
    for conf in Path("/etc/apt/apt.conf.d").glob("*"):
        if conf.is_file() and "Acquire" in conf.read_text(errors="replace"):  # proxies, snapshot date checks
            shutil.copy(conf, root / "etc/apt/apt.conf.d" / conf.name)


class Container:
    """One booted copy of a base root. `sh(cmd)` runs a shell command inside it as root, with a clean environment."""

    def __init__(self, base: Path, name: str, log) -> None:
        self.base, self.name, self.log = base, name, log
        self.root = WORK / name
        self.proc: subprocess.Popen | None = None
        self.init_pid = 0
        self.console = WORK / f"{name}.console.log"

    # -- the root file system ------------------------------------------------------------------------------
    def fresh_copy(self) -> None:
        if self.root.exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(self.root)], check=True)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(nice(["cp", "-a", "--reflink=auto", str(self.base), str(self.root)]), check=True)
        copy_host_config(self.root)

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    # -- boot and power ----------------------------------------------------------------------------------------
    def boot(self, timeout: float = 120) -> None:
        apt_cache, pip_cache = CACHE / f"apt-{self.base.name}", CACHE / "pip"
        for d in (apt_cache / "partial", pip_cache):
            d.mkdir(parents=True, exist_ok=True)
        binds = [f"--bind={apt_cache}:/var/cache/apt/archives", f"--bind={pip_cache}:/root/.cache/pip"]
        binds += [f"--bind-ro={p}" for p in pip_host_paths()]
        cmd = ["systemd-nspawn", "-D", str(self.root), "--boot", "--register=no", "--keep-unit", "--console=passive",
               "--capability=CAP_NET_ADMIN", f"--machine={self.name}", *binds]
        console = self.console.open("ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited with {self.proc.returncode}; see {self.console}")
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            if pids and Path(f"/proc/{pids[0]}/comm").read_text().strip() == "systemd":
                self.init_pid = int(pids[0])
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the container's systemd did not start within {timeout:.0f} s; see {self.console}")
        while time.monotonic() < deadline:
            state = self.sh("systemctl is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the container did not finish booting within {timeout:.0f} s (state {state!r})")

    def power_cut(self) -> None:
        """SIGKILL the container's init: every process in it dies at once, nothing is shut down or synced."""
        if self.init_pid:
            os.kill(self.init_pid, signal.SIGKILL)
        self._reap()

    def shutdown(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.init_pid, signal.SIGRTMIN + 4)  # systemd: poweroff
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.power_cut()
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc, self.init_pid = None, 0

    def remove(self) -> None:
        self.shutdown()
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.root)], check=False)

    # -- commands -----------------------------------------------------------------------------------------------
    def sh(self, command: str, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess:
        """Run `command` with bash inside the container, in all of its namespaces, with a clean environment."""
        variables = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", **(env or {})}
        cmd = ["nsenter", "-t", str(self.init_pid), "-a", "env", "-i", *(f"{k}={v}" for k, v in variables.items()),
               "bash", "-c", command]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"timed out after {timeout:.0f} s: {command}") from exc
        if check and out.returncode != 0:
            raise RuntimeError(f"exit {out.returncode}: {command}\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        return out
