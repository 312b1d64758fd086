"""A simulated listener, to measure how fast the Thompson-sampled queue learns (tests/test_learning.py and
scripts/learning_curve.py run this same code).

One mood, one playlist. Each session (a mood start) ranks the playlist with the feedback so far, as the player
does, and the listener hears its first `session_len` tracks in that order, reacting to each: liked tracks are
played in full (and often liked with the button), disliked ones skipped (mostly in the first 30 s), the rest
mostly played in full. Every reaction is a feedback event that counts from the next session on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from moodspeaker.core.feedback import DEFAULT_WEIGHTS, EARLY_SKIP, FULL_PLAY, LIKE, SKIP, FeedbackState, Weights, rank

EMOTION = "sad"  # the one mood simulated; any emotion behaves the same


@dataclass(frozen=True)
class Listener:
    liked: frozenset[str]
    disliked: frozenset[str]
    like_press_p: float = 0.5  # a liked track is played in full, and the like button pressed this often
    early_skip_p: float = 0.9  # a disliked track is skipped, within 30 s this often
    neutral_full_play_p: float = 0.6  # any other track is played in full this often, else skipped after 30 s

    def react(self, track: str, rng: random.Random) -> list[str]:
        if track in self.liked:
            return [FULL_PLAY, LIKE] if rng.random() < self.like_press_p else [FULL_PLAY]
        if track in self.disliked:
            return [EARLY_SKIP if rng.random() < self.early_skip_p else SKIP]
        return [FULL_PLAY if rng.random() < self.neutral_full_play_p else SKIP]


@dataclass
class SimResult:
    starts: list[str] = field(default_factory=list)  # the track started, in order
    events_before: list[int] = field(default_factory=list)  # feedback events recorded before each start

    def rates(self, listener: Listener, after_events: int, window: int) -> tuple[float, float]:
        """(disliked share, liked share) of the `window` track starts that follow the first `after_events` events."""
        first = next((i for i, n in enumerate(self.events_before) if n >= after_events), None)
        if first is None or first + window > len(self.starts):
            raise ValueError(f"the simulation has fewer than {window} starts after {after_events} events")
        picked = self.starts[first:first + window]
        return (sum(t in listener.disliked for t in picked) / window, sum(t in listener.liked for t in picked) / window)


def default_listener(tracks: Sequence[str], n_liked: int = 4, n_disliked: int = 4) -> Listener:
    """Likes the first `n_liked` tracks, dislikes the last `n_disliked`; the playlist order itself is shuffled
    by `simulate()`, so position says nothing."""
    return Listener(liked=frozenset(tracks[:n_liked]), disliked=frozenset(tracks[len(tracks) - n_disliked:]))


def playlist(n_tracks: int = 20) -> list[str]:
    return [f"track-{i:02d}" for i in range(n_tracks)]


def simulate(tracks: Sequence[str], listener: Listener, rng: random.Random, *, n_starts: int,
             session_len: int = 3, weights: Weights = DEFAULT_WEIGHTS) -> SimResult:
    """Run sessions until `n_starts` tracks have started; the stored playlist order is shuffled once."""
    stored = list(tracks)
    rng.shuffle(stored)
    state = FeedbackState(weights)
    result, n_events = SimResult(), 0
    while len(result.starts) < n_starts:
        queue = rank(stored, state.counts(EMOTION), rng, weights=weights)
        for track in queue[:min(session_len, n_starts - len(result.starts))]:
            result.starts.append(track)
            result.events_before.append(n_events)
            for event in listener.react(track, rng):
                state.record(EMOTION, track, event)
                n_events += 1
    return result
