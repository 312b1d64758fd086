"""scripts/install.sh staged with --root into a temporary folder: what a Pi would get, without touching this system.

apt and pip are skipped (--root implies it); the bundled model is installed with this checkout's `moodspeaker`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moodspeaker.model_card import sha256_file

REPO = Path(__file__).resolve().parents[1]
UNITS = ("moodspeaker-vision.service", "moodspeaker-player.service")
MOODSPEAKER = str(Path(sys.executable).with_name("moodspeaker"))


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, shipped_model, fer_tiny) -> Path:
    """A copy of the parts of the repo install.sh reads; the model card gets a golden set if it has none yet."""
    out = tmp_path_factory.mktemp("checkout")
    for part in ("scripts", "systemd", "firmware-config"):
        shutil.copytree(REPO / part, out / part, ignore=shutil.ignore_patterns("demo", "__pycache__"))
    shutil.copy(REPO / "README.md", out / "README.md")
    (out / "models").mkdir()
    shutil.copy(shipped_model, out / "models" / "emotion.tflite")
    card = json.loads((REPO / "models" / "emotion.json").read_text())
    if card.get("golden") and (REPO / "models" / card["golden"]["file"]).is_file():
        shutil.copy(REPO / "models" / card["golden"]["file"], out / "models" / card["golden"]["file"])
    else:
        card["golden"] = _golden_from_fixture(out / "models", fer_tiny / "val.npz")
    (out / "models" / "emotion.json").write_text(json.dumps(card))
    return out


def _golden_from_fixture(models: Path, val: Path) -> dict:
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier
    from moodspeaker.evaluation import evaluate_crops

    with np.load(val) as d:
        images, labels = d["images"], d["labels"]
    np.savez_compressed(models / "golden_faces.npz", images=images, labels=labels)
    clf = LiteRTClassifier(REPO / "models" / "emotion.tflite")
    accuracy = evaluate_crops(clf.classify, clf.labels, images, labels.astype(np.int64))["accuracy"]
    return {"file": "golden_faces.npz", "sha256": sha256_file(models / "golden_faces.npz"), "n": len(images),
            "accuracy": accuracy, "tolerance": 0.02}


def _install(checkout: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(checkout / "scripts" / "install.sh"), "--root", str(root),
                           "--moodspeaker", MOODSPEAKER, *args], capture_output=True, text=True, timeout=120)


def _tree(root: Path) -> dict[str, str]:
    """Every file and link under root -> its content hash or link target (directories implied)."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = "-> " + str(path.readlink())
        elif path.is_file():
            out[key] = sha256_file(path)
    return out


@pytest.fixture()
def staged(checkout, tmp_path) -> Path:
    root = tmp_path / "root"
    (root / "boot" / "firmware").mkdir(parents=True)
    (root / "boot" / "firmware" / "config.txt").write_text("dtparam=audio=on\n")
    result = _install(checkout, root)
    assert result.returncode == 0, result.stderr
    return root


def test_install_stages_units_config_model_user_and_boot_config(staged, checkout):
    for unit in UNITS:
        assert (staged / "etc/systemd/system" / unit).read_text() == (REPO / "systemd" / unit).read_text()
        if shutil.which("systemctl"):
            assert (staged / "etc/systemd/system/multi-user.target.wants" / unit).is_symlink()
    config = staged / "etc/moodspeaker/config.toml"
    assert config.read_text() == (REPO / "systemd/config.toml.example").read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    check = subprocess.run([MOODSPEAKER, "config", "check", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    current = staged / "var/lib/moodspeaker/models/current"
    assert sha256_file(current / "emotion.tflite") == sha256_file(checkout / "models/emotion.tflite")
    assert (current / "emotion.json").is_file() and (current / "golden_faces.npz").is_file()
    assert "u moodspeaker" in (staged / "etc/sysusers.d/moodspeaker.conf").read_text()
    if shutil.which("systemd-sysusers"):
        assert any(line.startswith("moodspeaker:") for line in (staged / "etc/passwd").read_text().splitlines())
    boot = (staged / "boot/firmware/config.txt").read_text()
    assert boot.startswith("dtparam=audio=on\n# BEGIN moodspeaker (scripts/install.sh)\n[all]\n")
    assert "camera_auto_detect=1" in boot and "gpio=17,27=ip,pu" in boot and "gpio=22=op,dl" in boot
    assert (staged / "opt/moodspeaker/README.md").is_file()
    assert (staged / "usr/local/bin/moodspeaker").readlink() == Path("/opt/moodspeaker/venv/bin/moodspeaker")


def test_running_it_again_changes_nothing_and_keeps_the_owners_config(staged, checkout):
    config = staged / "etc/moodspeaker/config.toml"
    config.write_text('[player]\nbackend = "spotify"\n')
    before = _tree(staged)
    result = _install(checkout, staged)
    assert result.returncode == 0, result.stderr
    assert _tree(staged) == before
    assert "kept your" in result.stdout and "kept the installed model" in result.stdout


def test_explicit_camera_overlay_replaces_auto_detect(staged, checkout):
    assert _install(checkout, staged, "--camera", "imx708,cam0").returncode == 0
    boot = (staged / "boot/firmware/config.txt").read_text()
    assert "camera_auto_detect=0\ndtoverlay=imx708,cam0\n" in boot and "camera_auto_detect=1" not in boot
    assert boot.count("# BEGIN moodspeaker") == 1


def test_unknown_camera_is_refused_before_anything_changes(staged, checkout):
    before = _tree(staged)
    result = _install(checkout, staged, "--camera", "imx999")
    assert result.returncode != 0 and "--camera imx999" in result.stderr
    assert _tree(staged) == before


def test_uninstall_removes_the_program_and_keeps_config_and_models_unless_purged(staged, checkout):
    result = _install(checkout, staged, "--uninstall")
    assert result.returncode == 0, result.stderr
    assert not any((staged / "etc/systemd/system" / unit).exists() for unit in UNITS)
    assert not list((staged / "etc/systemd/system").rglob("moodspeaker-*"))
    assert not (staged / "opt/moodspeaker").exists() and not (staged / "usr/local/bin/moodspeaker").is_symlink()
    assert (staged / "boot/firmware/config.txt").read_text() == "dtparam=audio=on\n"
    assert (staged / "etc/moodspeaker/config.toml").is_file() and (staged / "var/lib/moodspeaker/models/current").exists()
    assert _install(checkout, staged, "--uninstall", "--purge").returncode == 0
    assert not (staged / "etc/moodspeaker").exists() and not (staged / "var/lib/moodspeaker").exists()


def test_the_gpio_group_is_added_to_the_player_only_where_it_exists(checkout, tmp_path):
    plain = tmp_path / "debian"
    result = _install(checkout, plain)
    assert result.returncode == 0, result.stderr
    assert not (plain / "etc/systemd/system/moodspeaker-player.service.d").exists()
    assert "no gpio group" in result.stdout
    pi = tmp_path / "pios"
    (pi / "etc").mkdir(parents=True)
    (pi / "etc/group").write_text("root:x:0:\ngpio:x:997:\n")
    assert _install(checkout, pi).returncode == 0
    dropin = (pi / "etc/systemd/system/moodspeaker-player.service.d/gpio.conf").read_text()
    assert "[Service]\nSupplementaryGroups=gpio\n" in dropin
    assert _install(checkout, pi, "--uninstall").returncode == 0
    assert not (pi / "etc/systemd/system/moodspeaker-player.service.d").exists()


def test_without_a_pi_boot_config_none_is_created_and_it_says_so(checkout, tmp_path):
    root = tmp_path / "debian"
    result = _install(checkout, root)
    assert result.returncode == 0, result.stderr
    assert not (root / "boot").exists()
    assert "skipped the camera and GPIO lines" in result.stdout


def test_a_boot_config_it_created_goes_again_on_uninstall(checkout, tmp_path):
    root = tmp_path / "pi"
    (root / "boot/firmware").mkdir(parents=True)  # a Pi boot partition without a config.txt
    assert _install(checkout, root).returncode == 0
    assert "# BEGIN moodspeaker" in (root / "boot/firmware/config.txt").read_text()
    assert _install(checkout, root, "--uninstall", "--purge").returncode == 0
    assert not (root / "boot/firmware/config.txt").exists()


def test_purge_removes_the_runtime_dir_too(staged, checkout):
    (staged / "run/moodspeaker").mkdir(parents=True)
    (staged / "run/moodspeaker/vision.json").write_text("{}")  # left by daemons of a deleted user
    assert _install(checkout, staged, "--uninstall", "--purge").returncode == 0
    assert not (staged / "run/moodspeaker").exists()
    assert not (staged / "etc/sysusers.d/moodspeaker.conf").exists()


def test_the_bundled_model_installs_without_a_cascade_beside_it(checkout, tmp_path):
    """The cascade is the program's (package data): the model store holds only model versions."""
    root = tmp_path / "root"
    assert not list(checkout.rglob("haarcascade*"))
    assert _install(checkout, root).returncode == 0
    assert not list((root / "var/lib/moodspeaker").rglob("haarcascade*"))


@pytest.mark.skipif(os.geteuid() != 0, reason="install.sh checks for root before it looks for systemctl")
def test_a_system_without_systemctl_is_told_so_before_anything_changes(checkout, tmp_path):
    bin_dir = tmp_path / "bin"  # the tools the script needs before its checks, and no systemctl
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "id", "realpath", "sed", "mkdir"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    result = subprocess.run([str(bin_dir / "bash"), str(checkout / "scripts/install.sh"), "--no-apt", "--no-pip"],
                            capture_output=True, text=True, timeout=60, env={"PATH": str(bin_dir)})
    assert result.returncode == 1
    assert "systemctl not found" in result.stderr and "--no-systemctl" in result.stderr
