#!/usr/bin/env python3
"""`make system-test-arm64` (root): the Raspberry Pi side of install.sh, emulated. For Debian trixie (Python 3.13)
and bookworm (3.11, apt's numpy 1.24), a cached arm64 root (debootstrap) runs under qemu-user through binfmt_misc,
as a Pi 4 (QEMU_CPU=cortex-a72) and a Pi 5 (cortex-a76) with a Pi's /proc/cpuinfo bound in:

- scripts/install.sh up to and with its pip step picks aarch64 wheels and installs the bundled model (its golden
  faces are checked by LiteRT running on ARM);
- the int8 outputs on up to 500 validation-like faces are compared with this x86 machine's: every face whose class
  differs is listed, and the largest int8 difference is reported; the Haar boxes on identical frames must match;
- the demo clip, decoded on ARM, must produce moods (ARM's decoder differs by a few grey levels: moods, not pixels).

Emulated timings mean nothing and are not reported. Last line: `N passed, M failed`.
Without a Pi's cpuinfo, qemu 7.2 shows the host's /proc/cpuinfo and LiteRT crashes creating its interpreter; with
qemu's default `max` CPU, int8 results are wrong: neither happens on a real Pi, whose cpuinfo and CPU are real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np  # the host's venv (make system-test-arm64 runs this with .venv/bin/python)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from container import CACHE, WORK, base_root, copy_host_config, nice, pip_host_paths

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("python3", "python3-venv", "python3-pip", "python3-numpy", "ca-certificates")  # what install.sh's apt adds
CPUS = {"pi4": ("cortex-a72", "0xd08", "0x0", "3", "fp asimd evtstrm crc32 cpuid"),
        "pi5": ("cortex-a76", "0xd0b", "0x4", "1",
                "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp")}
N_FACES = 500


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cpuinfo(part: str, variant: str, revision: str, features: str) -> str:
    """/proc/cpuinfo of a 4-core Pi (Cortex-A72 or -A76), as the kernel prints it."""
    core = (f"BogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
            f"CPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n\n")
    return "".join(f"processor\t: {i}\n{core}" for i in range(4))


def enable_binfmt() -> None:
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "status").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], check=True)
    if not (binfmt / "qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=True)
    flags = (binfmt / "qemu-aarch64").read_text()
    if "enabled" not in flags or "F" not in flags.split("flags:")[1].split()[0]:
        raise RuntimeError(f"qemu-aarch64 binfmt is not enabled with the F flag:\n{flags}")


def faces() -> tuple[np.ndarray, str]:
    """Up to N_FACES validation-like faces: FER2013's val split when the shared data lies beside the checkout,
    else the model's golden faces and the test fixture's faces."""
    val = REPO.parent / "shared/data/fer2013/val.npz"
    if val.is_file():
        with np.load(val) as d:
            return d["images"][:N_FACES], f"the first {N_FACES} of {val}"
    parts = []
    for f in (REPO / "models/golden_faces.npz", REPO / "tests/fixtures/fer_tiny/val.npz"):
        with np.load(f) as d:
            parts.append(d["images"])
    return np.concatenate(parts)[:N_FACES], "models/golden_faces.npz + tests/fixtures/fer_tiny/val.npz"


def frames(clip: Path) -> np.ndarray:
    """Every 12th frame of the clip at 320x240, decoded here: both machines detect on these same pixels."""
    import cv2

    cap, out, i = cv2.VideoCapture(str(clip)), [], 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        if i % 12 == 0:
            out.append(cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (320, 240), interpolation=cv2.INTER_AREA))
        i += 1
    return np.stack(out)


def in_root(root: Path, command: str, cpu: str, cpuinfo_file: Path, timeout: float = 3600) -> subprocess.CompletedProcess:
    """`command` (bash) in the arm64 root, in a private mount namespace: /proc with a Pi's cpuinfo over it, the
    pip cache and the host's local pip indexes bound in, and QEMU_CPU set for every ARM process."""
    binds = [(CACHE / "pip", Path("/root/.cache/pip")), *((p, p) for p in pip_host_paths())]
    mounts = [f"mount -t proc proc {root}/proc", f"mount --bind {cpuinfo_file} {root}/proc/cpuinfo",
              f"mount --bind /dev {root}/dev", f"mount --bind /sys {root}/sys"]
    for src, dst in binds:
        (root / dst.relative_to("/")).mkdir(parents=True, exist_ok=True)
        mounts.append(f"mount --bind {src} {root}{dst}")
    env = f"env -i QEMU_CPU={cpu} PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root LANG=C.UTF-8"
    pip_env = " ".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith("PIP_"))
    script = " && ".join(mounts) + f" && QEMU_CPU={cpu} chroot {root} {env} {pip_env} bash -c {json.dumps(command)}"
    return subprocess.run(nice(["unshare", "--mount", "--propagation", "private", "--fork", "bash", "-c", script]),
                          capture_output=True, text=True, timeout=timeout)


def main() -> int:
    if os.geteuid() != 0:
        print("system test arm64: cannot run here: not root", file=sys.stderr)
        return 2
    started = time.monotonic()
    enable_binfmt()
    clip = REPO / "device/moodspeaker/dev/clip/clip.mp4"
    images, where = faces()
    WORK.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="arm64-", dir=WORK))
    np.savez_compressed(work / "faces.npz", images=images, labels=np.zeros(len(images), np.uint8))
    np.savez_compressed(work / "frames.npz", images=frames(clip))
    probe = [str(work / "faces.npz"), str(work / "frames.npz"), str(clip)]
    x86 = json.loads(subprocess.run([sys.executable, str(Path(__file__).with_name("arm64_probe.py")),
                                     str(REPO / "models/emotion.tflite"), *probe],
                                    capture_output=True, text=True, check=True).stdout)
    log(f"x86 reference: {len(x86['pred'])} faces from {where}, {sum(map(len, x86['boxes']))} Haar boxes "
        f"on {len(x86['boxes'])} frames, {len(x86['moods'])} mood events")
    results: list[tuple[str, bool, str]] = []

    def report(name: str, ok: bool, detail: str) -> None:
        results.append((name, ok, detail))
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)

    for suite in ("trixie", "bookworm"):
        base = base_root(suite, "arm64", log, PACKAGES)
        root = work / suite
        subprocess.run(nice(["cp", "-a", "--reflink=auto", str(base), str(root)]), check=True)
        copy_host_config(root)
        clone = root / "root/moodspeaker"
        files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "-co", "--exclude-standard"],
                               capture_output=True, check=True).stdout.split(b"\0")
        for name in filter(None, (f.decode() for f in files)):
            if (REPO / name).is_file():
                (clone / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, clone / name)
        for f in (*probe, str(Path(__file__).with_name("arm64_probe.py"))):
            shutil.copy(f, root / "root" / Path(f).name)
        for pi, (cpu, part, variant, revision, features) in CPUS.items():
            name = f"{suite} {pi} ({cpu})"
            info = work / f"cpuinfo-{pi}"
            info.write_text(cpuinfo(part, variant, revision, features))
            t0 = time.monotonic()
            if pi == "pi4":  # the install once per suite; the Pi 5 run reuses its venv
                out = in_root(root, "cd /root/moodspeaker && scripts/install.sh --no-apt --no-systemctl --no-firmware "
                              "&& /opt/moodspeaker/venv/bin/pip list 2>/dev/null | grep -Ei 'litert|opencv|numpy|gpiozero'"
                              " && cat /opt/moodspeaker/venv/lib/python3*/site-packages/*.dist-info/WHEEL"
                              " | sed -n 's/^Tag: //p' | grep -v -- '-any$' | sort -u",
                              cpu, info)
                wheels = " ".join(out.stdout.split())
                tags = [line for line in out.stdout.splitlines() if line.startswith("cp")]  # binary wheels' tags
                aarch64 = bool(tags) and all("aarch64" in tag for tag in tags)
                report(f"{suite}: install.sh with aarch64 wheels", out.returncode == 0 and aarch64,
                       wheels[-600:] if out.returncode == 0 else (out.stdout + out.stderr)[-2500:])
                if out.returncode != 0:
                    break
            out = in_root(root, "cd /root && /opt/moodspeaker/venv/bin/python arm64_probe.py "
                          "/var/lib/moodspeaker/models/current/emotion.tflite faces.npz frames.npz clip.mp4",
                          cpu, info)
            if out.returncode != 0:
                report(f"{name}: eval", False, f"exit {out.returncode}: {out.stderr[-2000:]}")
                continue
            arm = json.loads(out.stdout)
            diff = np.abs(np.array(arm["int8"]) - np.array(x86["int8"]))
            differ = [i for i, (a, b) in enumerate(zip(arm["pred"], x86["pred"], strict=True)) if a != b]
            report(f"{name}: predictions match x86", not differ,
                   f"{len(arm['pred'])} faces, {len(differ)} classes differ {differ[:20]}, largest int8 difference "
                   f"{int(diff.max())} (Python {arm['python']}, numpy {arm['numpy']})")
            report(f"{name}: Haar boxes match x86 on identical frames", arm["boxes"] == x86["boxes"],
                   f"{sum(map(len, arm['boxes']))} boxes on {len(arm['boxes'])} frames")
            moods = [m for m in arm["moods"] if m != "no_face"]
            report(f"{name}: the demo clip produces moods", bool(moods),
                   f"ARM {arm['moods']} / x86 {x86['moods']}")
            log(f"{name} done ({time.monotonic() - t0:.0f} s emulated: not a speed)")
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)
    shutil.rmtree(work, ignore_errors=True)
    passed = sum(ok for _, ok, _ in results)
    log(f"arm64 pass took {time.monotonic() - started:.0f} s")
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if results and passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
