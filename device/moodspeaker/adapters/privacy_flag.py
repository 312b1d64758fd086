"""Privacy mode shared by the two daemons as a flag file in the runtime directory: present = camera off.

The player owns the button and writes the flag; the vision daemon, which has no network and talks to
nobody, polls it with one stat() a second. The player reads it when it starts (privacy mode survives a reload
and a restart; the runtime folder, and with it the flag, is gone after a reboot) and follows it from then on,
so `moodspeaker privacy on|off` (which writes or removes it) reaches both daemons.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

FLAG_NAME = "privacy"


class PrivacyFlag:
    def __init__(self, runtime_dir: str | Path, poll_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(runtime_dir) / FLAG_NAME
        self._poll_s, self._clock = poll_s, clock
        self._last_poll: float | None = None
        self._last_state: bool | None = None

    def set(self, on: bool) -> None:
        if on:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("camera off: privacy mode (like button, `moodspeaker privacy on`, Home Assistant, quiet hours)\n")
            os.replace(tmp, self.path)
        else:
            self.path.unlink(missing_ok=True)

    def is_on(self) -> bool:
        return self.path.exists()

    def changed(self) -> bool | None:
        """For a main loop: the state if it changed since the last poll (first poll: always), else None."""
        now = self._clock()
        if self._last_poll is not None and now - self._last_poll < self._poll_s:
            return None
        self._last_poll = now
        state = self.is_on()
        if state == self._last_state:
            return None
        self._last_state = state
        return state
