"""Waiting for mood events in tests, on the receiver's production API (fileno + receive_nowait)."""

from __future__ import annotations

import select
import time

from moodspeaker.adapters.mood_socket import MoodSocketReceiver
from moodspeaker.core.mood import MoodEvent


def receive(receiver: MoodSocketReceiver, timeout: float) -> MoodEvent | None:
    """The next valid event, or None when `timeout` seconds pass without one (malformed datagrams are dropped
    and counted by the receiver, as in the player)."""
    deadline = time.monotonic() + timeout
    while (event := receiver.receive_nowait()) is None:
        if (left := deadline - time.monotonic()) <= 0:
            return None
        select.select([receiver.fileno()], [], [], left)
    return event
