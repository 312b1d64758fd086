"""Volume rules: the owner's maximum, quiet hours (a daily schedule with a lower cap, optionally camera off)
and the fade that replaces a hard cut when a mood change switches the music. Pure: local time is passed in.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MINUTES_PER_DAY = 24 * 60
_WINDOW = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)-([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Window:
    """A daily stretch of local time, [start, end) in minutes after midnight; it may run past midnight."""

    start: int
    end: int
    text: str

    def contains(self, minute: int) -> bool:
        if self.start <= self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


def parse_window(text: str) -> Window:
    """"22:00-07:00" -> Window; ValueError with the expected form otherwise."""
    match = _WINDOW.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a daily window like \"22:00-07:00\" (24-hour HH:MM-HH:MM)")
    h1, m1, h2, m2 = map(int, match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"{text!r} starts and ends at the same minute")
    return Window(start, end, text.strip())


@dataclass(frozen=True)
class VolumeRules:
    maximum: int = 100  # never above this
    quiet: tuple[Window, ...] = ()
    quiet_max: int = 100  # the cap inside a quiet window
    quiet_camera_off: bool = False  # privacy mode inside a quiet window

    def quiet_window(self, minute: int) -> Window | None:
        """The quiet window `minute` (local minutes after midnight) falls in, if any."""
        return next((w for w in self.quiet if w.contains(minute % MINUTES_PER_DAY)), None)

    def cap(self, minute: int) -> int:
        """The highest volume allowed at `minute`."""
        return min(self.maximum, self.quiet_max) if self.quiet_window(minute) else self.maximum

    def allowed(self, wanted: int, minute: int) -> int:
        """`wanted` (a button, `moodspeaker volume`, Home Assistant) clipped to 0..cap."""
        return max(0, min(wanted, self.cap(minute)))

    def camera_off(self, minute: int) -> bool:
        return self.quiet_camera_off and self.quiet_window(minute) is not None


@dataclass
class VolumePlan:
    """The volume the speaker keeps: the latest choice of whoever made it (the start volume, `moodspeaker volume`,
    Home Assistant, or another client such as the owner's phone app, seen when the backend's volume is re-read),
    never above the cap of the time. Quiet hours lower it to their cap; their end does not raise it again.

    The service asks `step` at every turn what to do (re-read the backend's volume every `check_s`, set the
    `correction`), reports what it set (`was_set`) and read (`was_read`), so a fade that ended at 0 before a failed
    play is brought back, and a volume raised past the cap by any client is lowered to it. After a failed volume
    call (`failed`) nothing is tried for `check_s`: requests during a hang wait here, the latest one wins, and cost
    one attempt, not one each.
    """

    rules: VolumeRules
    wanted: int | None = None  # None: the backend's volume is left as it is until it is known
    backend: int | None = None  # the backend's volume as last set or read (None: unknown)
    check_s: float = 5.0  # the backend's volume is re-read this often (and after a failure, tried again this late)
    read_at: float = -math.inf  # the next re-read is due then (the service's monotonic seconds)
    retry_at: float = -math.inf  # after a failed volume call, nothing before then
    asked: bool = False  # a level was asked for since the last turn: set it, do not re-read (and replace) it first

    def ask(self, level: int, minute: int) -> None:
        """Someone asked the speaker for `level` (the start volume, `moodspeaker volume`, Home Assistant)."""
        self.wanted = self.rules.allowed(level, minute)
        self.asked = True

    def step(self, now: float, minute: int) -> str | None:
        """What the service does with the backend's volume at this turn: "read" it first (then set the
        correction), "set" the correction only, or None (nothing to do, or the pause after a failure)."""
        if now < self.retry_at:
            return None
        if now >= self.read_at and not self.asked:
            self.read_at = now + self.check_s
            return "read"
        self.asked = False
        return "set" if self.correction(minute) is not None else None

    def failed(self, now: float) -> None:
        """A volume call failed or timed out: nothing before `check_s` from now, and the backend's volume is unknown
        (a set that timed out may still land, and is not another client's)."""
        self.retry_at, self.backend = now + self.check_s, None

    def backend_works(self) -> None:
        """A backend command worked again: a volume that waits since a failed call goes at the next turn."""
        self.retry_at = -math.inf

    def was_set(self, level: int) -> None:
        self.backend = level

    def was_read(self, level: int | None) -> None:
        """The backend's volume now; one that changed since it was last set or read was set by another client."""
        if level is None:
            return
        if self.wanted is None or (self.backend is not None and level != self.backend):
            self.wanted = level
        self.backend = level

    def correction(self, minute: int) -> tuple[int, str] | None:
        """(level, why) to set now, or None when the backend has the volume it should have."""
        if self.wanted is None:
            return None
        cap, why = self.rules.cap(minute), "kept"
        if self.wanted > cap:
            window = self.rules.quiet_window(minute)
            self.wanted, why = cap, f"quiet hours {window.text}" if window else "[volume] maximum"
        return None if self.backend == self.wanted else (self.wanted, why)

    def fade(self, seconds: float, step_s: float) -> tuple[list[tuple[float, int]], list[tuple[float, int]]]:
        """The steps of a fade across a track change instead of a hard cut: from the backend's volume down to 0 in
        half of `seconds`, then up to the planned level; none while the backend's volume is unknown or 0."""
        if not self.backend:
            return [], []
        level = self.wanted or self.backend
        return fade(self.backend, 0, seconds / 2, step_s), fade(0, level, seconds / 2, step_s)


def fade(start: int, end: int, seconds: float, step_s: float = 0.1) -> list[tuple[float, int]]:
    """(seconds from now, volume) steps from `start` to `end`, linear over `seconds`, each volume once, ending
    at `end`. No steps for 0 s or no change but the last."""
    if seconds <= 0 or start == end:
        return [(0.0, end)]
    n = max(1, round(seconds / step_s))
    steps: list[tuple[float, int]] = []
    last = start
    for i in range(1, n + 1):
        level = round(start + (end - start) * i / n)
        if level != last:
            steps.append((round(seconds * i / n, 3), level))
            last = level
    return steps
