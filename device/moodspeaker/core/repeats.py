"""Which failures are logged: a new one at once, the same one again at most once per interval, with its count (a
Spotify rate limit of an hour is a few lines, not thousands). Pure: time is passed in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RepeatLog:
    every_s: float = 60.0
    last: str = ""  # the failure seen last ("" once it was mended: the same one again is new)
    count: int = 0  # times it came again since it was last logged
    since: float = 0.0  # when it was last logged

    def line(self, why: str, now: float) -> str | None:
        """What to log for the failure `why` seen at `now`: None to stay quiet."""
        if why != self.last:
            self.last, self.count, self.since = why, 0, now
            return why
        self.count += 1
        if now - self.since < self.every_s:
            return None
        line = f"{why} ({self.count} times in {now - self.since:.0f} s)"
        self.count, self.since = 0, now
        return line
