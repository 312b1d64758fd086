"""One error tree for the whole appliance.

Adapters translate their library's exceptions (mpd, spotipy, sqlite3, cv2, LiteRT, OS errors) into one of
these kinds at their own boundary, so nothing foreign crosses a port. `cli.main` turns a MoodspeakerError
into one line on stderr and its `exit_code`; anything else is a bug (exit 1, traceback with `-v`).
Adapters may subclass a kind to name their part (DetectorError is a SetupError); callers catch the kind.
"""

from __future__ import annotations

from typing import Any, ClassVar

EXIT_BUG = 1  # an unexpected exception: a bug in moodspeaker
EXIT_OWNER = 2  # a mistake the owner can fix: config, arguments, files, permissions
EXIT_MODEL = 3  # the model or its card is missing, corrupt or mismatched


class MoodspeakerError(Exception):
    """Base of every error moodspeaker raises on purpose; the message says what happened and what to do."""

    exit_code: ClassVar[int] = EXIT_BUG


class ConfigError(MoodspeakerError, ValueError):
    """A bad config file: one or more `problems`, each naming the file and key and saying what to do."""

    exit_code = EXIT_OWNER

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class UsageError(MoodspeakerError):
    """A bad command-line argument or input file (a data set, a clip) named on the command line."""

    exit_code = EXIT_OWNER


class SetupError(MoodspeakerError):
    """Something on this machine the owner must fix before a daemon can start: a missing file, a path that
    cannot be written, a permission, no GPIO."""

    exit_code = EXIT_OWNER


class ModelError(MoodspeakerError):
    """A model or its card is missing, corrupt or mismatched; the message says what to do."""

    exit_code = EXIT_MODEL


class PlayerError(MoodspeakerError):
    """The music backend refuses in a way the owner must fix (auth, config, a missing device); the message says how."""

    exit_code = EXIT_OWNER


class PlayerUnavailable(MoodspeakerError):
    """The music backend cannot be reached right now (restart, network); it keeps retrying by itself."""


class SourceError(MoodspeakerError):
    """The camera or video vanished or hung; the vision loop backs off and reopens."""


class FrameError(MoodspeakerError):
    """The face detector or the emotion classifier failed on one frame (OpenCV, LiteRT); vision counts the
    frame as failed and goes on with the next."""


def library_reason(exc: BaseException) -> str:
    """A library's message on one line (OpenCV's spans several, with its source file first)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def quote(value: Any, limit: int = 60) -> str:
    """`value` as an error message quotes it: its repr on one short line, whatever it is (a 1 MiB list, a list
    nested a thousand deep, an integer too long to print)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        text = f"a {type(value).__name__} too large to show"
    return text if len(text) <= limit else f"{text[:limit - 10]}… ({len(text)} characters)"
