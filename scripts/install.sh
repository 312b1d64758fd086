#!/usr/bin/env bash
# Install moodspeaker on Raspberry Pi OS Bookworm or Trixie (64-bit), from this checkout. Plain Debian/Ubuntu works
# too (a USB camera or a video file, no buttons): the Raspberry Pi packages are skipped, and it says so. Safe to run
# again: it updates code, units and firmware lines, and keeps your config, your installed model and your feedback.
# It also creates, configures (sound output) and enables MPD.
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
APT_PACKAGES=(python3-venv python3-pip python3-numpy mpd mpc alsa-utils)
# Only in the Raspberry Pi archive (Raspberry Pi OS); Debian's own gpiozero (1.6) is too old, pip's 2.x is used there.
PI_APT_PACKAGES=(python3-picamera2 python3-lgpio python3-gpiozero)
UNITS=(moodspeaker-vision.service moodspeaker-player.service)
USER_NAME=moodspeaker
MARK_BEGIN="# BEGIN moodspeaker (scripts/install.sh)"
MARK_END="# END moodspeaker"
MPD_CONF=/etc/mpd.conf

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
if [ "$DO_SYSTEMCTL" = 1 ] && [ -z "$ROOT" ]; then
  command -v systemctl >/dev/null \
    || die "systemctl not found: moodspeaker runs as two systemd services and this system has no systemd. Install and boot systemd, or pass --no-systemctl to install the files only"
  [ -d /run/systemd/system ] \
    || die "systemd is installed but not running as init here (a chroot or a plain container?); boot with systemd, or pass --no-systemctl to install the files only"
fi

PREFIX=$ROOT/opt/moodspeaker
VENV=$PREFIX/venv
ETC=$ROOT/etc/moodspeaker
STATE=$ROOT/var/lib/moodspeaker
UNIT_DIR=$ROOT/etc/systemd/system
SYSUSERS=$ROOT/etc/sysusers.d/moodspeaker.conf
GPIO_DROPIN=$UNIT_DIR/moodspeaker-player.service.d/gpio.conf
BOOT_RECORD=$STATE/installed-boot-config  # names a boot config this script created (removed again on uninstall)
# Raspberry Pi OS: /boot/firmware/config.txt (Bookworm and later), /boot/config.txt before. Elsewhere there is none.
if [ -d "$ROOT/boot/firmware" ]; then BOOT_CONFIG=$ROOT/boot/firmware/config.txt
elif [ -f "$ROOT/boot/config.txt" ]; then BOOT_CONFIG=$ROOT/boot/config.txt
else BOOT_CONFIG=""; fi
SYSTEMCTL=(systemctl); [ -n "$ROOT" ] && SYSTEMCTL=(systemctl "--root=$ROOT")

strip_block() {  # remove our marked lines from a config file, leaving everything else as it was
  local file=$1 tmp
  [ -f "$file" ] || return 0
  tmp=$(mktemp "$file.XXXXXX")
  awk -v b="$MARK_BEGIN" -v e="$MARK_END" '$0==b{skip=1; next} $0==e{skip=0; next} !skip' "$file" >"$tmp"
  chmod --reference="$file" "$tmp" && mv "$tmp" "$file"
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
  echo "[all]"  # our lines apply to every Pi model, whatever conditional section ([pi4], [cm5], ...) ends the file
  awk -v cam="$camera" '/^camera_auto_detect=/{print cam; next} {print}' "$REPO/firmware-config/config.txt"
  echo "$MARK_END"
}

mpd_output() {  # the audio_output block for MPD: the first sound card `aplay -L` lists (a USB or HAT card and the
  # Pi 4's jack before HDMI: the Pi 5 has no jack), or a null output where there is no card
  local cards card
  cards=$(aplay -L 2>/dev/null | grep '^hw:CARD=' | sed 's/,DEV=.*//' | sort -u || true)
  card=$(echo "$cards" | grep -v -i 'hdmi' | head -n1)
  [ -n "$card" ] || card=$(echo "$cards" | head -n1)
  if [ -n "$card" ]; then
    printf 'audio_output {\n\ttype "alsa"\n\tname "moodspeaker (%s)"\n\tdevice "%s"\n\tmixer_type "software"\n}\n' \
      "${card#hw:CARD=}" "$card"
  else
    # a software mixer all the same: the volume, its cap and the quiet hours work as on a card
    printf 'audio_output {\n\ttype "null"\n\tname "moodspeaker (no sound card found)"\n\tmixer_type "software"\n}\n'
  fi
}

configure_mpd() {  # Debian's mpd ships disabled, may lack /var/lib/mpd, and has no audio output configured
  command -v mpd >/dev/null || { say "warning: mpd is not installed; the MPD backend will not play"; return 0; }
  local output; output=$(mpd_output)
  say "MPD: $(echo "$output" | sed -n 's/.*name "\(.*\)"/\1/p'), library /var/lib/mpd/music, playlists /var/lib/mpd/playlists"
  install -d -m 0755 -o mpd -g audio /var/lib/mpd /var/lib/mpd/music /var/lib/mpd/playlists
  touch "$MPD_CONF"
  local before; before=$(sha256sum <"$MPD_CONF")
  strip_block "$MPD_CONF"
  { echo "$MARK_BEGIN"; echo "$output"; echo "$MARK_END"; } >>"$MPD_CONF"
  if [ "$DO_SYSTEMCTL" = 1 ]; then
    systemctl enable mpd.service 2>/dev/null
    if [ "$before" != "$(sha256sum <"$MPD_CONF")" ] || ! systemctl is-active --quiet mpd.service; then
      systemctl reset-failed mpd.service 2>/dev/null || true
      systemctl restart mpd.service  # a running MPD with an unchanged config keeps playing
    fi
  fi
}

uninstall() {
  if [ "$DO_SYSTEMCTL" = 1 ]; then
    if [ -z "$ROOT" ]; then "${SYSTEMCTL[@]}" disable --now "${UNITS[@]}" 2>/dev/null || true
    else "${SYSTEMCTL[@]}" disable "${UNITS[@]}" 2>/dev/null || true; fi
  fi
  for unit in "${UNITS[@]}"; do rm -f "$UNIT_DIR/$unit"; done
  rm -rf "$UNIT_DIR/moodspeaker-player.service.d"
  if [ -z "$ROOT" ] && [ "$DO_SYSTEMCTL" = 1 ]; then
    systemctl daemon-reload
    systemctl reset-failed "${UNITS[@]}" 2>/dev/null || true
  fi
  if [ -z "$ROOT" ] && [ -f "$MPD_CONF" ] && grep -qxF "$MARK_BEGIN" "$MPD_CONF"; then
    strip_block "$MPD_CONF"
    [ "$DO_SYSTEMCTL" = 1 ] && systemctl try-restart mpd.service 2>/dev/null || true
  fi
  if [ "$DO_FIRMWARE" = 1 ] && [ -n "$BOOT_CONFIG" ]; then
    strip_block "$BOOT_CONFIG"
    # a boot config this script created, now empty again, goes too
    if [ -f "$BOOT_RECORD" ] && [ "$(cat "$BOOT_RECORD")" = "${BOOT_CONFIG#"$ROOT"}" ] && [ ! -s "$BOOT_CONFIG" ]; then
      rm -f "$BOOT_CONFIG" "$BOOT_RECORD"
    fi
  fi
  rm -rf "$PREFIX"
  [ -L "$ROOT/usr/local/bin/moodspeaker" ] && rm -f "$ROOT/usr/local/bin/moodspeaker"
  rm -f "$ETC/config.toml.example"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$ETC" "$STATE" "$SYSUSERS" "$ROOT/run/moodspeaker"
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

apt_has() {  # whether apt can install the package (it is in this system's sources)
  [ -n "$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | grep -v '(none)')" ]
}

PI_PACKAGES=0  # picamera2, lgpio and gpiozero come from apt (Raspberry Pi OS)
if [ "$DO_APT" = 1 ]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  case "$codename" in bookworm|trixie) ;; *) say "warning: made for Raspberry Pi OS bookworm/trixie, this is '$codename'" ;; esac
  apt-get update -qq
  packages=("${APT_PACKAGES[@]}")
  if apt_has python3-picamera2; then
    packages+=("${PI_APT_PACKAGES[@]}") PI_PACKAGES=1
  else
    say "skipped ${PI_APT_PACKAGES[*]}: not in this system's apt sources (not Raspberry Pi OS). Use a USB camera or a"
    say "  video file ([camera] kind = \"opencv\"); the buttons and the LED need lgpio and stay off"
  fi
  say "apt: ${packages[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
elif [ -z "$ROOT" ] && dpkg-query -W -f='${Status}' python3-picamera2 2>/dev/null | grep -q 'ok installed'; then
  PI_PACKAGES=1
fi

say "system user $USER_NAME"
mkdir -p "$(dirname "$SYSUSERS")"
printf 'u %s - "moodspeaker daemons" /var/lib/moodspeaker -\n' "$USER_NAME" >"$SYSUSERS"
if command -v systemd-sysusers >/dev/null; then
  if [ -n "$ROOT" ]; then systemd-sysusers "--root=$ROOT" >/dev/null; else systemd-sysusers "$SYSUSERS"; fi
elif [ -z "$ROOT" ] && ! id "$USER_NAME" >/dev/null 2>&1; then  # no systemd (a chroot, --no-systemctl): plain useradd
  useradd --system --user-group --home-dir /var/lib/moodspeaker --no-create-home --shell /usr/sbin/nologin \
    --comment "moodspeaker daemons" "$USER_NAME"
fi

if [ "$DO_PIP" = 1 ]; then
  system_python=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv_python=$(sed -n 's/^version[_info]* *= *\([0-9]*\.[0-9]*\).*/\1/p' "$VENV/pyvenv.cfg" 2>/dev/null | head -n1 || true)
  if [ -d "$VENV" ] && { [ "$venv_python" != "$system_python" ] || ! "$VENV/bin/python" -c '' 2>/dev/null; }; then
    say "the system Python changed (${venv_python:-unknown} -> $system_python, an OS upgrade?): rebuilding the venv"
    rm -rf "$VENV"
  fi
  say "venv $VENV (Python $system_python, with apt's numpy$([ "$PI_PACKAGES" = 1 ] && echo ", picamera2, lgpio and gpiozero"))"
  [ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV"
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  # numpy must stay apt's: picamera2 and simplejpeg are built against it. pi-constraints.txt pins the rest to it.
  echo "numpy==$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')" >"$constraints"
  if [ "$PI_PACKAGES" = 1 ]; then
    # apt's gpiozero has the Pi 5 fixes PyPI's 2.0.1 lacks; pin it so pip keeps it instead of shadowing it
    echo "gpiozero==$(/usr/bin/python3 -c 'from importlib.metadata import version; print(version("gpiozero"))')" >>"$constraints"
  fi
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
else
  say "kept your $ETC/config.toml (the new template is config.toml.example)"
fi
[ -z "$ROOT" ] && chgrp "$USER_NAME" "$ETC/config.toml"  # 0640: it may hold the Spotify app secret; the daemons read it

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
# The buttons and LED need the gpio group, which only Raspberry Pi OS has; a unit naming a missing group fails to start.
if grep -q '^gpio:' "$ROOT/etc/group" 2>/dev/null; then
  install -d -m 0755 "$(dirname "$GPIO_DROPIN")"
  printf '# Written by scripts/install.sh: this system has a gpio group (the buttons and the LED).\n[Service]\nSupplementaryGroups=gpio\n' \
    >"$GPIO_DROPIN"
else
  say "no gpio group on this system: the player runs without GPIO access (no buttons, no LED)"
  rm -rf "$(dirname "$GPIO_DROPIN")"
fi

if [ "$DO_FIRMWARE" = 1 ] && [ -n "$BOOT_CONFIG" ]; then
  say "boot config $BOOT_CONFIG (camera: $CAMERA)"
  [ -e "$BOOT_CONFIG" ] || echo "${BOOT_CONFIG#"$ROOT"}" >"$BOOT_RECORD"
  touch "$BOOT_CONFIG"
  strip_block "$BOOT_CONFIG"
  firmware_block >>"$BOOT_CONFIG"
elif [ "$DO_FIRMWARE" = 1 ]; then
  say "no Raspberry Pi boot config ($ROOT/boot/firmware/config.txt): skipped the camera and GPIO lines"
fi

[ -z "$ROOT" ] && configure_mpd

if [ "$DO_SYSTEMCTL" = 1 ]; then
  if [ -n "$ROOT" ]; then
    "${SYSTEMCTL[@]}" enable "${UNITS[@]}" 2>/dev/null
  else
    systemctl daemon-reload
    systemctl enable "${UNITS[@]}"
    systemctl reset-failed "${UNITS[@]}" 2>/dev/null || true  # a unit that hit its start limit would refuse to start
    systemctl restart "${UNITS[@]}"
  fi
fi

say "done. Next: edit $ETC/config.toml, check it with \`sudo moodspeaker config check\`,"
say "reload with \`sudo systemctl reload ${UNITS[*]}\`; a changed boot config needs a reboot."
