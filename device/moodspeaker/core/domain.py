"""The appliance's domain types that cross the ports: a camera frame, a face box, a track, a button action.

Emotions and moods live in `emotions` and `mood`; everything here is plain data with no behaviour beyond
what describes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np


@dataclass(frozen=True)
class Frame:
    gray: np.ndarray  # (H, W) uint8, the luminance plane faces are looked for in
    t: float  # monotonic seconds when captured
    main: np.ndarray | None = None  # the same moment's larger luminance plane (the Pi camera's main stream), if any


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h


@dataclass(frozen=True)
class Track:
    uri: str  # backend id: MPD file path or Spotify track URI
    title: str = ""
    artist: str = ""

    @property
    def label(self) -> str:
        """How logs and status name it: "artist - title", or its uri for a file without a title tag."""
        return f"{self.artist} - {self.title}" if self.title else self.uri


@dataclass(frozen=True)
class OwnerTookOver:
    """What a backend reports instead of a track change when another client (the owner's phone app, `mpc`)
    stopped or paused the speaker's music or changed its queue."""

    what: str  # "stopped" | "paused" | "changed the queue"


@dataclass(frozen=True)
class BackendReturned:
    """What a backend reports (instead of a track change) when it is reachable again after losing its connection,
    and as a reload's new backend: what it plays now may not be what the session wants (Session.returned says)."""


class ButtonAction(StrEnum):
    SKIP = "skip"  # skip press: next track, negative feedback
    PAUSE = "pause"  # skip hold: pause/resume
    LIKE = "like"  # like press
    PRIVACY = "privacy"  # like hold: privacy mode on/off
