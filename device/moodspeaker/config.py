"""The appliance's one TOML config file, parsed into frozen dataclasses.

Every section is a dataclass below; every key has a default, so an empty file is a valid config.
Unknown sections/keys and bad values are rejected with the file, the key and a suggestion, every problem in
the file at once; numbers must be finite (TOML allows nan and inf) and fit a float. `check_across` holds the checks
that span sections. The daemons and `moodspeaker config check` run this same code, so what the check accepts the
daemons accept. To add a setting: add a field to its section's dataclass (with a default and a comment); mark a
path or name that must not be empty `metadata=NOT_EMPTY`, and a password or secret `metadata=SECRET` (its value is
never repeated in an error message).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import stat
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from moodspeaker.core.checks import InvalidSettings, raise_problems
from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.policy import check_settings
from moodspeaker.core.smoother import SmootherParams
from moodspeaker.core.volume import VolumeRules, parse_window
from moodspeaker.errors import ConfigError, quote

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/moodspeaker/config.toml")
MAX_CONFIG_BYTES = 1 << 20  # a config is a few KiB; a larger "file" is a mistake (or /dev/zero)
NOT_EMPTY = {"not_empty": True}  # field metadata: "" is refused (an empty path would mean the current folder)
SECRET = {"secret": True}  # field metadata: the value never appears in an error message


@dataclass(frozen=True)
class ModelConfig:
    path: str = ""  # .tflite with its .json card beside it; empty = the installed/checkout default
    threads: int = 1  # LiteRT threads

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= 16:
            raise ValueError(f"threads must be 1..16, got {self.threads}")


@dataclass(frozen=True)
class MoodSocketConfig:
    path: str = field(default="/run/moodspeaker/mood.sock", metadata=NOT_EMPTY)  # unix datagram socket: vision -> player


@dataclass(frozen=True)
class ServiceConfig:
    # where each daemon writes its state file for `moodspeaker status`
    runtime_dir: str = field(default="/run/moodspeaker", metadata=NOT_EMPTY)
    status_interval: float = 1.0  # seconds between state-file writes and systemd STATUS= updates

    def __post_init__(self) -> None:
        if not 0.1 <= self.status_interval <= 60:
            raise ValueError("status_interval must be between 0.1 and 60 seconds")


LIBRARY_TAGS = ("genre", "mood", "comment", "grouping", "album", "artist", "title", "work", "label")


def _default_playlists() -> dict[str, str]:
    return {key: f"mood-{key}" for key in (*EMOTIONS, "calm", "uplifting")}


@dataclass(frozen=True)
class PlayerConfig:
    backend: Literal["mpd", "spotify"] = "mpd"  # which [mpd] or [spotify] section drives the music
    strategy: Literal["match", "lift"] = "match"  # match: sad -> sad songs; lift: sad -> calm, then uplifting
    playlists: dict[str, str] = field(default_factory=_default_playlists)  # key (emotion, calm, ...) -> MPD name or Spotify URI
    lift: dict[str, tuple[str, ...]] = field(default_factory=dict)  # emotion -> playlist keys in order; overrides built-ins
    cooldown_s: float = 30.0  # at most one playlist change per this many seconds, so a flickering mood never restarts the music
    switch: Literal["track_end", "at_once"] = "track_end"  # a mood change waits for the track to end, or switches at once
    early_skip_s: float = 30.0  # a skip within this many seconds of a track's start counts as an early skip

    def __post_init__(self) -> None:
        problems = []
        try:
            check_settings(self.strategy, self.playlists, self.lift)
        except InvalidSettings as exc:
            problems += exc.problems
        if self.cooldown_s < 0 or self.early_skip_s < 0:
            problems.append("cooldown_s and early_skip_s must be >= 0 seconds")
        raise_problems(problems)


@dataclass(frozen=True)
class MpdConfig:
    host: str = "localhost"  # host name or IP, or the path of MPD's unix socket (starts with /)
    port: int = 6600  # TCP port; ignored for a unix socket
    password: str = field(default="", metadata=SECRET)  # MPD's password, if it has one
    liked_playlist: str = "liked"  # stored playlist that the like button adds to
    # longest wait between reconnect attempts: MPD back after a restart plays again within this (plus a command)
    reconnect_max_s: float = 15.0
    library: Literal["playlists", "folders", "tags"] = "playlists"  # a mood's music: stored playlists, a folder, a tag
    library_dir: str = "moods"  # folders: <music_directory>/moods/<name>/... for each [player] playlists name
    library_tag: str = "genre"  # tags: songs whose tag equals the name (any case): genre, mood, comment, ...

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.port <= 65535:
            problems.append(f"port must be 1..65535, got {self.port}")
        if self.library_tag not in LIBRARY_TAGS:
            problems.append(f"library_tag must be one of MPD's tags {list(LIBRARY_TAGS)}, got {self.library_tag!r}")
        if not self.liked_playlist:
            problems.append("liked_playlist must name a stored playlist")
        if self.reconnect_max_s <= 0:
            problems.append("reconnect_max_s must be > 0")
        raise_problems(problems)


@dataclass(frozen=True)
class VolumeConfig:
    start: int = -1  # volume (0-100) the player sets when it starts; -1 = leave the backend's volume as it is
    maximum: int = 100  # never above this: not at start, not from `moodspeaker volume`, not from Home Assistant
    fade_s: float = 1.0  # a mood change that cuts a track fades it out and the new music in; 0 = a hard cut
    quiet_hours: tuple[str, ...] = ()  # daily windows in local time, e.g. ["22:00-07:00"]; none = no quiet hours
    quiet_max: int = 30  # the volume cap inside the quiet hours (the volume is lowered to it when they begin)
    quiet_camera_off: bool = False  # also privacy mode (camera off) inside the quiet hours

    def __post_init__(self) -> None:
        problems = []
        if not -1 <= self.start <= 100 or not 0 <= self.maximum <= 100 or not 0 <= self.quiet_max <= 100:
            problems.append("start (-1 or 0..100), maximum and quiet_max (0..100) are volume percentages")
        elif self.start > self.maximum:
            problems.append(f"start ({self.start}) must not be above maximum ({self.maximum})")
        if not 0 <= self.fade_s <= 3:  # the fade is part of one backend command, within the player's time limit
            problems.append("fade_s must be 0..3 seconds")
        for window in self.quiet_hours:  # a bad window is an error now, not in the player
            try:
                parse_window(window)
            except ValueError as exc:
                problems.append(f"quiet_hours: {exc}")
        raise_problems(problems)

    def rules(self) -> VolumeRules:
        return VolumeRules(self.maximum, tuple(parse_window(w) for w in self.quiet_hours), self.quiet_max,
                           self.quiet_camera_off)


@dataclass(frozen=True)
class MqttConfig:
    host: str = ""  # the MQTT broker (Home Assistant's Mosquitto add-on, say); empty = no MQTT
    port: int = 1883  # 8883 is usual with tls = true
    username: str = ""  # the broker's user for the speaker, if it needs one
    password: str = field(default="", metadata=SECRET)
    tls: bool = False  # encrypt the connection (the broker's certificate is checked)
    ca_file: str = ""  # CA certificate for tls; empty = the system's CAs
    discovery_prefix: str = "homeassistant"  # Home Assistant's MQTT discovery prefix
    node_id: str = "moodspeaker"  # names this speaker's topics (moodspeaker/<node_id>/...): one per speaker
    device_name: str = "Moodspeaker"  # the device's name in Home Assistant

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.port <= 65535:
            problems.append(f"port must be 1..65535, got {self.port}")
        if not self.node_id or not all(c.isalnum() or c in "_-" for c in self.node_id):
            problems.append(f"node_id must be letters, digits, _ or -, got {self.node_id!r}")
        if not self.discovery_prefix or any(c in self.discovery_prefix for c in "#+ "):
            problems.append(f"discovery_prefix must be an MQTT topic without wildcards, got {self.discovery_prefix!r}")
        raise_problems(problems)


@dataclass(frozen=True)
class ButtonsConfig:
    enabled: bool = True  # false on a speaker without buttons
    skip_pin: int = 17  # BCM number; press = next track, hold = pause/resume
    like_pin: int = 27  # BCM number; press = like, hold = privacy mode (camera and LED off)
    led_pin: int = 22  # BCM number of the status LED, lit while the camera captures; -1 = no LED
    hold_s: float = 1.0  # a press at least this long is a hold
    debounce_s: float = 0.05  # a pulse shorter than this is contact bounce, not a press

    def __post_init__(self) -> None:
        problems = []
        pins = [self.skip_pin, self.like_pin] + ([self.led_pin] if self.led_pin != -1 else [])
        if any(not 0 <= pin <= 27 for pin in pins):
            problems.append(f"pins must be BCM GPIO numbers 0..27 (led_pin may be -1), got {pins}")
        if len(set(pins)) != len(pins):
            problems.append(f"skip_pin, like_pin and led_pin must differ, got {pins}")
        if not 0 <= self.debounce_s < self.hold_s:
            problems.append("need 0 <= debounce_s < hold_s")
        raise_problems(problems)


@dataclass(frozen=True)
class FeedbackConfig:
    # SQLite database of likes/skips/full plays per (emotion, track)
    path: str = field(default="/var/lib/moodspeaker/feedback.db", metadata=NOT_EMPTY)


@dataclass(frozen=True)
class SpotifyConfig:
    client_id: str = ""  # from your app at developer.spotify.com (needed for the spotify backend)
    # the app's secret; empty = PKCE login, which needs no secret on the device
    client_secret: str = field(default="", metadata=SECRET)
    redirect_uri: str = "http://127.0.0.1:8888/callback"  # a loopback IP, not localhost; listed in the app; nothing listens
    device_name: str = "moodspeaker"  # the Spotify Connect device to play on (raspotify/spotifyd name), case-insensitive
    # written 0600 by `moodspeaker spotify-login`
    token_cache: str = field(default="/var/lib/moodspeaker/spotify-token.json", metadata=NOT_EMPTY)
    poll_s: float = 2.0  # how often to ask Spotify what is playing (it has no push for track changes)

    def __post_init__(self) -> None:
        problems = []
        if not self.device_name:
            problems.append("device_name must name the Spotify Connect device to play on")
        url = urlsplit(self.redirect_uri)
        try:
            port = url.port
        except ValueError:
            port = None
        if url.scheme != "http" or url.hostname not in ("127.0.0.1", "::1") or port is None:
            problems.append("redirect_uri must be a loopback IP address with a port, such as "
                            "http://127.0.0.1:8888/callback, registered with the app (Spotify refuses localhost "
                            f"and plain-http addresses other than loopback IPs), got {self.redirect_uri!r}")
        if not 0.2 <= self.poll_s <= 60:
            problems.append("poll_s must be between 0.2 and 60 seconds")
        raise_problems(problems)


@dataclass(frozen=True)
class CameraConfig:
    kind: Literal["picamera2", "opencv"] = "picamera2"  # Pi camera (libcamera), or OpenCV: a USB camera or a video file
    # picamera2: camera number; opencv: camera index or the path of a video file
    device: str = field(default="0", metadata=NOT_EMPTY)
    width: int = 640  # frame width the pipeline analyses (the Pi camera's ISP scales to it for free)
    height: int = 480  # frame height: at 480 lines a face 3.2 m away is 36 px (the detector's floor is 24 px)
    fps: float = 5.0  # frames per second captured and analysed; 5 keeps the vision process near 10% of a core
    capture_timeout: float = 2.0  # seconds without a frame before the camera counts as hung and is reopened
    loop: bool = False  # opencv with a video file: play it in a loop (demos, shop displays, system tests)
    # The Pi camera only (picamera2); see adapters/picamera2_source.py for why each.
    main_width: int = 1280  # faces are found in the width x height stream and cut from this larger one of the
    main_height: int = 960  # same instant (more pixels per face at a distance); 0 x 0: cut from the small one
    max_exposure_ms: float = 100.0  # longest exposure the camera may choose in a dim room (motion blur limit)
    denoise: Literal["high_quality", "fast", "off"] = "high_quality"  # the camera's (ISP's) own noise reduction
    binned: bool = True  # run the sensor in its 2x2-binned full-view mode: four pixels' light in one, less noise

    def __post_init__(self) -> None:
        problems = []
        if not (32 <= self.width <= 1920 and 32 <= self.height <= 1080) or self.width % 2 or self.height % 2:
            problems.append(f"width and height must be even, 32..1920 x 32..1080, got {self.width}x{self.height}")
        if (self.main_width, self.main_height) != (0, 0) and (
                self.main_width % 2 or self.main_height % 2 or self.main_width < self.width
                or self.main_height < self.height or self.main_width > 4608 or self.main_height > 3456):
            problems.append(f"main_width x main_height must be even, at least width x height and at most 4608x3456, "
                            f"or 0 x 0 (no main stream), got {self.main_width}x{self.main_height}")
        if not 10 <= self.max_exposure_ms <= 1000:
            problems.append(f"max_exposure_ms must be between 10 and 1000, got {self.max_exposure_ms}")
        if not 0.5 <= self.fps <= 60:
            problems.append(f"fps must be between 0.5 and 60, got {self.fps}")
        if self.kind == "picamera2" and not self.device.isdigit():
            problems.append(f"device must be a camera number for kind = \"picamera2\", got {self.device!r}")
        if self.capture_timeout <= 0:
            problems.append("capture_timeout must be > 0 seconds")
        raise_problems(problems)


@dataclass(frozen=True)
class DetectorConfig:
    scale_factor: float = 1.1  # Haar image-pyramid step; larger is faster but misses more faces
    min_neighbors: int = 3  # overlapping hits needed to accept a face; larger = fewer false faces, more misses
    min_size: float = 0.05  # smallest face side, fraction of the frame height (never below the cascade's 24 px)
    max_size: float = 0.9  # largest face side, fraction of the frame height
    track: bool = True  # search around the last face first (much cheaper than a full scan)
    track_margin: float = 0.3  # how far around the last face to search, in face sizes
    full_every: int = 10  # scan the whole frame at least every this many frames while tracking
    fine_every: int = 3  # with nobody in view, look for small (distant) faces every this many frames, and every
    # second time for a leaning head (on the frame turned 12.7 degrees one way, then the other)

    def __post_init__(self) -> None:
        problems = []
        if self.scale_factor <= 1.0:
            problems.append(f"scale_factor must be greater than 1, got {self.scale_factor}")
        if not 0 < self.min_size < self.max_size <= 1:
            problems.append(f"need 0 < min_size < max_size <= 1, got {self.min_size} and {self.max_size}")
        if self.min_neighbors < 0 or self.track_margin < 0 or self.full_every < 1 or self.fine_every < 1:
            problems.append("min_neighbors and track_margin must be >= 0, full_every and fine_every >= 1")
        raise_problems(problems)


@dataclass(frozen=True)
class VisionConfig:
    reopen_initial_s: float = 0.5  # first wait before reopening a failed camera; doubles on each failure in a row
    reopen_max_s: float = 30.0  # longest wait between reopen attempts

    def __post_init__(self) -> None:
        if not 0 < self.reopen_initial_s <= self.reopen_max_s:
            raise ValueError("need 0 < reopen_initial_s <= reopen_max_s")


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    mood_socket: MoodSocketConfig = field(default_factory=MoodSocketConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    player: PlayerConfig = field(default_factory=PlayerConfig)
    mpd: MpdConfig = field(default_factory=MpdConfig)
    buttons: ButtonsConfig = field(default_factory=ButtonsConfig)
    volume: VolumeConfig = field(default_factory=VolumeConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    spotify: SpotifyConfig = field(default_factory=SpotifyConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    smoother: SmootherParams = field(default_factory=SmootherParams)  # core's parameters: the [smoother] section
    source: Path | None = field(default=None, compare=False)


def _suggest(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(options))}"


MAX_WHOLE = 2**31 - 1  # whole numbers beyond a C int are never meant, and overflow where they reach C code
MAX_NUMBER = 1e9  # seconds, ratios, rates: nothing here is meant to reach a billion
_KINDS = {bool: "true/false", int: "whole number", float: "number", str: "string", list: "list", dict: "table"}


def _show(value: Any, secret: bool = False) -> str:
    """`value` as an error message quotes it: one short line, and for a secret only its kind."""
    if secret:
        return f"a {_KINDS.get(type(value), type(value).__name__)} (not shown: the key holds a secret)"
    return quote(value)


def _coerce(value: Any, tp: Any, where: str, secret: bool = False) -> Any:
    """Check `value` against a field type: bool, int, float, str, Literal, tuple[X, ...], dict[str, X]."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {_show(value, secret)} is not one of {list(args)}"
                              f"{_suggest(_show(value, secret), map(str, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for alt in args:
            if alt is type(None) and value is None:
                return None
            try:
                return _coerce(value, alt, where, secret)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {_show(value, secret)}")
        return tuple(_coerce(v, args[0], f"{where}[{i}]", secret) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {_show(value, secret)}")
        return {str(k): _coerce(v, args[1], f"{where}.{k}", secret) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {_show(value, secret)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {_show(value, secret)}")
        if not -MAX_WHOLE <= value <= MAX_WHOLE:
            raise ConfigError(f"{where}: {_show(value, secret)} is out of range (at most {MAX_WHOLE} either way)")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {_show(value, secret)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {_show(value, secret)}")
        if not -MAX_NUMBER <= value <= MAX_NUMBER:
            raise ConfigError(f"{where}: {_show(value, secret)} is out of range (at most {MAX_NUMBER:g} either way)")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_show(value, secret)}")
        return value
    raise TypeError(f"config field type {tp!r} is not supported")


# Keys an earlier release read and this one no longer needs: a config that still sets one loads, with a warning
# that says why it can go (an upgrade must not stop a speaker over a setting that does nothing now).
RETIRED_KEYS: dict[type, dict[str, str]] = {
    SpotifyConfig: {"max_attempts": "a failing Spotify call is now retried at the back-off's pace, "
                                    "within one time budget per command"},
}


def parse_section(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build section dataclass `cls` from a TOML table; a ConfigError lists every unknown key and bad value."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a [table]")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs, problems = {}, []
    retired = RETIRED_KEYS.get(cls, {})
    for key, value in values.items():
        if key in retired:
            log.warning("%s: %r is no longer used (%s); remove it", where, key, retired[key])
            continue
        if key not in fields:
            problems.append(f"{where}: unknown key {key!r}{_suggest(key, fields)}")
            continue
        meta = fields[key].metadata
        try:
            kwargs[key] = _coerce(value, hints[key], f"{where}.{key}", secret=bool(meta.get("secret")))
        except ConfigError as exc:
            problems += exc.problems
            continue
        if meta.get("not_empty") and value == "":
            problems.append(f"{where}.{key}: must not be empty (the default is {fields[key].default!r})")
    if problems:
        raise ConfigError(*problems)
    try:
        return cls(**kwargs)
    except InvalidSettings as exc:
        raise ConfigError(*(f"{where}: {problem}" for problem in exc.problems)) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config) if f.name != "source"}


def parse_config(text: str, source: Path | None = None) -> Config:
    name = str(source) if source else "<config>"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from None
    except RecursionError:  # e.g. 200,000 "[": deeper than the parser's stack
        raise ConfigError(f"{name}: not valid TOML: lists or tables nested too deeply") from None
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise ConfigError(f"{name}: not valid TOML: a number has thousands of digits") from None
    sections = _sections()
    parsed, problems = {}, []
    for key, table in raw.items():
        if key not in sections:
            problems.append(f"{name}: unknown section [{key}]{_suggest(key, sections)}")
            continue
        try:
            parsed[key] = parse_section(sections[key], table, f"{name} [{key}]")
        except ConfigError as exc:
            problems += exc.problems
    config = Config(**parsed, source=source)
    problems += check_across(config, name, failed={key for key in raw if key not in parsed})
    if problems:
        raise ConfigError(*problems)
    return config


def check_across(config: Config, name: str, failed: set[str]) -> list[str]:
    """Problems that span sections (a section in `failed` did not parse and is not judged again)."""
    problems = []
    if config.player.backend == "spotify" and not config.spotify.client_id and not failed & {"player", "spotify"}:
        problems.append(f"{name} [spotify].client_id: the spotify backend ([player] backend) needs the client id of "
                        "your app at developer.spotify.com; or set [player] backend = \"mpd\"")
    return problems


def load_config(path: Path | None) -> Config:
    """Read the config file; a missing default file means all defaults, a missing explicit file is an error."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return Config()
        path = DEFAULT_CONFIG_PATH
    data = _read_config_file(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}); "
                          "save the file as UTF-8") from None
    return parse_config(text, path)


def _read_config_file(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_CONFIG_BYTES; a FIFO or device is refused unread (opened
    non-blocking, so a FIFO cannot hang the open)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file; copy the template from systemd/config.toml.example") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a socket"
                    if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else
                    "not a regular file")
            raise ConfigError(f"{path}: is {kind}, not a config file; point --config at the TOML file")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MiB, too large for a config file; point "
                          "--config at the TOML file")
    return data
