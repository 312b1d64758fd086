#!/usr/bin/env bash
# Install moodspeaker on Raspberry Pi OS Bookworm or Trixie (64-bit), from this checkout. Safe to run again:
# it updates code, units and firmware lines, and keeps your config, your installed model and your feedback.
#
#   sudo scripts/install.sh [--camera MODULE]      install or update, enable and (re)start both services
#   sudo scripts/install.sh --uninstall [--purge]  remove it (--purge also removes config, models, feedback, user)
#   scripts/install.sh --root DIR ...              stage every file under DIR instead of / (no apt, no pip)
#
# Options:
#   --camera MODULE   camera_auto_detect (default: auto) or an explicit overlay: ov5647, imx219, imx477, imx708,
#                     imx296, imx500; append ",cam0" / ",cam1" for a Pi 5 port
#   --no-apt          skip the apt packages          --no-pip        skip the venv and pip packages
#   --no-systemctl    do not enable/start units      --no-firmware   leave the boot config.txt alone
#   --moodspeaker CMD the moodspeaker command that installs the bundled model (default: the venv's)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APT_PACKAGES=(python3-venv python3-pip python3-numpy python3-picamera2 python3-lgpio python3-gpiozero mpd mpc)
UNITS=(moodspeaker-vision.service moodspeaker-player.service)
USER_NAME=moodspeaker
MARK_BEGIN="# BEGIN moodspeaker (scripts/install.sh)"
MARK_END="# END moodspeaker"

ROOT="" CAMERA=auto UNINSTALL=0 PURGE=0 DO_APT=1 DO_PIP=1 DO_SYSTEMCTL=1 DO_FIRMWARE=1 MOODSPEAKER=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$(realpath -m "${2:?--root needs a folder}"); shift ;;
    --camera) CAMERA=${2:?--camera needs a module name}; shift ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    --no-apt) DO_APT=0 ;;
    --no-pip) DO_PIP=0 ;;
    --no-systemctl) DO_SYSTEMCTL=0 ;;
    --no-firmware) DO_FIRMWARE=0 ;;
    --moodspeaker) MOODSPEAKER=${2:?--moodspeaker needs a command}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "moodspeaker: $*"; }
die() { echo "moodspeaker: $*" >&2; exit 1; }

if [ -n "$ROOT" ]; then
  # A staged venv would point at DIR/opt/... and break when moved; apt cannot install into a folder.
  DO_APT=0 DO_PIP=0
  mkdir -p "$ROOT"
elif [ "$(id -u)" -ne 0 ]; then
  die "run as root: sudo $0 $*"
fi

PREFIX=$ROOT/opt/moodspeaker
VENV=$PREFIX/venv
ETC=$ROOT/etc/moodspeaker
STATE=$ROOT/var/lib/moodspeaker
UNIT_DIR=$ROOT/etc/systemd/system
SYSUSERS=$ROOT/etc/sysusers.d/moodspeaker.conf
if [ -d "$ROOT/boot/firmware" ] || [ -n "$ROOT" ]; then BOOT_CONFIG=$ROOT/boot/firmware/config.txt
else BOOT_CONFIG=$ROOT/boot/config.txt; fi
SYSTEMCTL=(systemctl); [ -n "$ROOT" ] && SYSTEMCTL=(systemctl "--root=$ROOT")

strip_firmware_block() {  # remove our lines from the boot config, leaving everything else as it was
  [ -f "$BOOT_CONFIG" ] || return 0
  local tmp; tmp=$(mktemp "$BOOT_CONFIG.XXXXXX")
  awk -v b="$MARK_BEGIN" -v e="$MARK_END" '$0==b{skip=1; next} $0==e{skip=0; next} !skip' "$BOOT_CONFIG" >"$tmp"
  chmod --reference="$BOOT_CONFIG" "$tmp" && mv "$tmp" "$BOOT_CONFIG"
}

firmware_block() {  # firmware-config/config.txt between our markers, with the camera line for --camera
  local camera
  case "$CAMERA" in
    auto) camera="camera_auto_detect=1" ;;
    ov5647|imx219|imx477|imx708|imx296|imx500|ov5647,cam[01]|imx219,cam[01]|imx477,cam[01]|imx708,cam[01]|imx296,cam[01]|imx500,cam[01])
      camera="camera_auto_detect=0\ndtoverlay=$CAMERA" ;;
    *) die "--camera $CAMERA: use auto or one of ov5647, imx219, imx477, imx708, imx296, imx500 (optionally ,cam0/,cam1)" ;;
  esac
  echo "$MARK_BEGIN"
  awk -v cam="$camera" '/^camera_auto_detect=/{print cam; next} {print}' "$REPO/firmware-config/config.txt"
  echo "$MARK_END"
}

uninstall() {
  if [ "$DO_SYSTEMCTL" = 1 ]; then
    if [ -z "$ROOT" ]; then "${SYSTEMCTL[@]}" disable --now "${UNITS[@]}" 2>/dev/null || true
    else "${SYSTEMCTL[@]}" disable "${UNITS[@]}" 2>/dev/null || true; fi
  fi
  for unit in "${UNITS[@]}"; do rm -f "$UNIT_DIR/$unit"; done
  [ -z "$ROOT" ] && [ "$DO_SYSTEMCTL" = 1 ] && systemctl daemon-reload
  [ "$DO_FIRMWARE" = 1 ] && strip_firmware_block
  rm -rf "$PREFIX"
  [ -L "$ROOT/usr/local/bin/moodspeaker" ] && rm -f "$ROOT/usr/local/bin/moodspeaker"
  rm -f "$ETC/config.toml.example"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$ETC" "$STATE" "$SYSUSERS"
    if [ -z "$ROOT" ] && id "$USER_NAME" >/dev/null 2>&1; then userdel "$USER_NAME"; fi
    say "removed, including config, models, feedback and the $USER_NAME user"
  else
    say "removed; kept $ETC and $STATE (use --purge to remove them and the $USER_NAME user)"
  fi
}

if [ "$UNINSTALL" = 1 ]; then uninstall; exit 0; fi

[ -f "$REPO/models/emotion.tflite" ] && [ -f "$REPO/models/emotion.json" ] \
  || die "$REPO/models has no emotion.tflite + emotion.json; train or fetch the model first"
firmware_block >/dev/null  # rejects a bad --camera before anything changes

if [ "$DO_APT" = 1 ]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  case "$codename" in bookworm|trixie) ;; *) say "warning: made for Raspberry Pi OS bookworm/trixie, this is '$codename'" ;; esac
  say "apt: ${APT_PACKAGES[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}"
fi

say "system user $USER_NAME"
mkdir -p "$(dirname "$SYSUSERS")"
printf 'u %s - "moodspeaker daemons" /var/lib/moodspeaker -\n' "$USER_NAME" >"$SYSUSERS"
if command -v systemd-sysusers >/dev/null; then
  if [ -n "$ROOT" ]; then systemd-sysusers "--root=$ROOT" >/dev/null; else systemd-sysusers "$SYSUSERS"; fi
fi

if [ "$DO_PIP" = 1 ]; then
  say "venv $VENV (with apt's picamera2, lgpio and numpy)"
  [ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV"
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  # numpy must stay apt's: picamera2 and simplejpeg are built against it. pi-constraints.txt pins the rest to it.
  echo "numpy==$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')" >"$constraints"
  cat "$REPO/scripts/pi-constraints.txt" >>"$constraints"
  "$VENV/bin/pip" install --quiet --upgrade --constraint "$constraints" "$REPO"
fi
install -d -m 0755 "$PREFIX" "$ROOT/usr/local/bin"
install -m 0644 "$REPO/README.md" "$PREFIX/README.md"
ln -sfn /opt/moodspeaker/venv/bin/moodspeaker "$ROOT/usr/local/bin/moodspeaker"

say "config $ETC/config.toml"
install -d -m 0755 "$ETC"
install -m 0644 "$REPO/systemd/config.toml.example" "$ETC/config.toml.example"
if [ ! -e "$ETC/config.toml" ]; then
  install -m 0640 "$REPO/systemd/config.toml.example" "$ETC/config.toml"
  [ -z "$ROOT" ] && chgrp "$USER_NAME" "$ETC/config.toml"  # may hold the Spotify app secret
else
  say "kept your $ETC/config.toml (the new template is config.toml.example)"
fi

install -d -m 0755 "$STATE" "$STATE/models"
if [ -e "$STATE/models/current" ]; then
  say "kept the installed model ($(readlink "$STATE/models/current")); update it with scripts/update-model"
else
  say "model: installing the bundled one"
  ${MOODSPEAKER:-$VENV/bin/moodspeaker} model install "$REPO/models/emotion.tflite" --card "$REPO/models/emotion.json" \
    --models-dir "$STATE/models" --no-reload
fi
[ -z "$ROOT" ] && chown -R "$USER_NAME:$USER_NAME" "$STATE"

say "units in $UNIT_DIR"
install -d -m 0755 "$UNIT_DIR"
for unit in "${UNITS[@]}"; do install -m 0644 "$REPO/systemd/$unit" "$UNIT_DIR/$unit"; done

if [ "$DO_FIRMWARE" = 1 ]; then
  say "boot config $BOOT_CONFIG (camera: $CAMERA)"
  mkdir -p "$(dirname "$BOOT_CONFIG")"
  touch "$BOOT_CONFIG"
  strip_firmware_block
  firmware_block >>"$BOOT_CONFIG"
fi

if [ "$DO_SYSTEMCTL" = 1 ]; then
  if [ -n "$ROOT" ]; then
    "${SYSTEMCTL[@]}" enable "${UNITS[@]}" 2>/dev/null
  else
    systemctl daemon-reload
    systemctl enable "${UNITS[@]}"
    systemctl restart "${UNITS[@]}"
  fi
fi

say "done. Next: edit $ETC/config.toml, check it with \`sudo moodspeaker config check\`,"
say "reload with \`sudo systemctl reload ${UNITS[*]}\`; a changed boot config needs a reboot."
