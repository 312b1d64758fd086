"""The small interfaces between the pure core and the adapters that touch the world: Protocols only.

Each adapter in `adapters/` implements one of these; tests swap in real-but-local parts
(an npz frame source, a private MPD, a fake Spotify HTTP server, gpiozero's MockFactory). The data that
crosses them is core's (`core.domain`, `core.mood`); what an adapter raises is one of `errors`' kinds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from moodspeaker.core.domain import BackendReturned, Box, Frame, OwnerTookOver, Track
from moodspeaker.core.mood import MoodEvent


class FrameSource(Protocol):
    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends (a file) or fails (raises SourceError)."""
        ...

    def close(self) -> None: ...


class FaceDetector(Protocol):
    def detect(self, gray: np.ndarray) -> list[Box]:
        """Faces in a grayscale frame, largest first."""
        ...


class EmotionClassifier(Protocol):
    labels: tuple[str, ...]

    def classify(self, face: np.ndarray) -> np.ndarray:
        """Probabilities per label for one uint8 grayscale face crop."""
        ...

    def resize(self, face: np.ndarray) -> np.ndarray:
        """The uint8 crop at the model's input size, resized the model's way (`prepare` does this first)."""
        ...

    def prepare(self, face: np.ndarray) -> np.ndarray:
        """The crop resized and converted to the model's input: `classify`'s first half, timed apart as 'preprocess'."""
        ...

    def classify_prepared(self, prepared: np.ndarray) -> np.ndarray:
        """Probabilities per label for a `prepare`d crop: `classify`'s second half."""
        ...


class MoodSink(Protocol):
    def send(self, event: MoodEvent) -> None:
        """Deliver an event; never blocks, never raises when nobody listens."""
        ...


class MoodSource(Protocol):
    """Mood events waiting behind a file descriptor, read by an event loop when it is readable."""

    def fileno(self) -> int: ...

    def receive_nowait(self) -> MoodEvent | None:
        """The next valid event if one waits, else None. Malformed datagrams are refused, counted and logged."""
        ...


class Player(Protocol):
    """A music backend (MPD or Spotify Connect). Async because MPD's client is; Spotify runs in a thread.

    Backends reconnect/retry by themselves where that can succeed (a command meanwhile raises
    PlayerUnavailable); they raise PlayerError for what the user must fix. They report what plays and carry out
    one command at a time; what should be playing is core.session's.
    """

    fade_step_s: float  # one volume step per this long while fading (each step is one command)

    async def playlist_tracks(self, playlist: str) -> list[Track]:
        """The tracks of a stored playlist (MPD name or Spotify playlist URI), in stored order."""
        ...

    async def play(self, tracks: list[Track]) -> None:
        """Replace the queue with `tracks` in this order and start playing the first."""
        ...

    async def play_next(self, tracks: list[Track]) -> None:
        """Let the current track finish, then play `tracks` in this order (replacing the rest of the queue).

        How a mood change waits for the track to end without a gap; with nothing playing, the same as play().
        """
        ...

    async def next(self) -> None: ...

    async def toggle_pause(self) -> None: ...

    async def like(self, track: Track) -> None:
        """Save the track to the listener's library (Spotify) or 'liked' playlist (MPD)."""
        ...

    async def set_volume(self, level: int) -> None:
        """Set the volume, 0..100 (PlayerError where the backend cannot: no mixer, a device that refuses)."""
        ...

    async def volume(self) -> int | None:
        """The volume now, 0..100; None where the backend has none."""
        ...

    async def wait_track_change(self) -> Track | OwnerTookOver | BackendReturned | None:
        """Block until the current track changes (or playback stops: None, or another client stopped or paused
        our music or changed our queue: OwnerTookOver, once; then the music is theirs until we play again; or the
        backend is reachable again after losing what it played: BackendReturned, answered with `restore`)."""
        ...

    async def restore(self, tracks: list[Track], index: int, elapsed_s: float, paused: bool) -> None:
        """Play `tracks` from `index`, `elapsed_s` into it, paused or not, and take the queue as ours again;
        a backend that already plays this queue in that state is left alone (it carried on by itself)."""
        ...

    async def close(self) -> None: ...


class FeedbackStore(Protocol):
    def record(self, emotion: str, track_uri: str, event: str, t: float) -> None:
        """Persist one feedback event: 'like', 'skip', 'early_skip' or 'full_play'. If it cannot be written now,
        the event is kept for later and a MoodspeakerError says so."""
        ...

    def counts(self, emotion: str) -> dict[str, dict[str, int]]:
        """Per track URI, event name -> count, for one emotion; never fails (what cannot be read counts as nothing)."""
        ...

    @property
    def problem(self) -> str | None:
        """Why events wait in memory now (a full disk, say), for the status; None while they are stored."""
        ...
