"""Learning from the listener: feedback events -> a Beta posterior per (emotion, track) -> a Thompson-sampled queue.

Each track has, per emotion, a Beta(alpha, beta) belief about "the listener wants this track in this mood".
Events add pseudo-counts (see `Weights`): a full play and a like count for it, a skip against it, and a skip in
the first 30 s ([player] early_skip_s) (the listener did not even give it a chance) counts twice as much against it.
A track nobody has reacted to keeps the flat prior Beta(1, 1), whose samples spread over 0..1, so Thompson
sampling keeps giving new tracks a turn; one the listener keeps skipping sinks to the back of the queue.

Pure: the caller passes the time a track played and the random generator.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

LIKE = "like"
SKIP = "skip"
EARLY_SKIP = "early_skip"
FULL_PLAY = "full_play"
EVENTS: tuple[str, ...] = (LIKE, SKIP, EARLY_SKIP, FULL_PLAY)

EARLY_SKIP_S = 30.0  # default: a skip before this many seconds of the track is an early skip
STATE_VERSION = 1

T = TypeVar("T")
Counts = Mapping[str, Mapping[str, int]]  # track URI -> event -> count (one emotion)


@dataclass(frozen=True)
class Weights:
    """The prior and the pseudo-count each event adds to a track's Beta(alpha, beta).

    alpha gathers evidence the listener wants the track in this mood, beta evidence against.
    A like is a deliberate button press, worth three full plays; an early skip is a clearer "no"
    than a skip after 30 s (the listener may just have heard enough), so it counts double.
    """

    prior_alpha: float = 1.0  # Beta(1, 1): no opinion, every playback probability equally likely
    prior_beta: float = 1.0
    like: float = 3.0  # -> alpha
    full_play: float = 1.0  # -> alpha
    skip: float = 1.0  # -> beta
    early_skip: float = 2.0  # -> beta

    def __post_init__(self) -> None:
        if self.prior_alpha <= 0 or self.prior_beta <= 0:
            raise ValueError("the prior's alpha and beta must be positive")
        if min(self.like, self.full_play, self.skip, self.early_skip) < 0:
            raise ValueError("event weights must not be negative")


DEFAULT_WEIGHTS = Weights()


def check_event(event: str) -> str:
    if event not in EVENTS:
        raise ValueError(f"unknown feedback event {event!r}; known: {', '.join(EVENTS)}")
    return event


def skip_event(played_s: float, early_skip_s: float = EARLY_SKIP_S) -> str:
    """The event for a skip after `played_s` seconds of the track: early within `early_skip_s` ([player] early_skip_s)."""
    return EARLY_SKIP if played_s < early_skip_s else SKIP


@dataclass(frozen=True)
class Posterior:
    alpha: float
    beta: float

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def sample(self, rng: random.Random) -> float:
        return rng.betavariate(self.alpha, self.beta)


def posterior(counts: Mapping[str, int], weights: Weights = DEFAULT_WEIGHTS) -> Posterior:
    """Beta posterior for one (emotion, track) from its event counts."""
    def n(event: str) -> int:
        return int(counts.get(event, 0))

    return Posterior(
        alpha=weights.prior_alpha + weights.like * n(LIKE) + weights.full_play * n(FULL_PLAY),
        beta=weights.prior_beta + weights.skip * n(SKIP) + weights.early_skip * n(EARLY_SKIP),
    )


def track_uri(item: Any) -> str:
    """A track's URI: the item itself if it is a string, else its `.uri` (ports.Track)."""
    return item if isinstance(item, str) else item.uri


def rank(tracks: Sequence[T], counts: Counts, rng: random.Random, *, weights: Weights = DEFAULT_WEIGHTS,
         uri: Callable[[T], str] = track_uri) -> list[T]:
    """Order a mood's tracks by Thompson sampling: one draw from each track's posterior, highest first.

    `counts` are the mood's (emotion's) event counts per track URI; tracks without any are new and keep the prior.
    """
    empty: Mapping[str, int] = {}
    draws = [posterior(counts.get(uri(t), empty), weights).sample(rng) for t in tracks]
    order = sorted(range(len(tracks)), key=lambda i: draws[i], reverse=True)
    return [tracks[i] for i in order]


class FeedbackState:
    """Event counts per (emotion, track): what the SQLite store persists, in memory and as JSON."""

    def __init__(self, weights: Weights = DEFAULT_WEIGHTS) -> None:
        self.weights = weights
        self._counts: dict[str, dict[str, dict[str, int]]] = {}

    def record(self, emotion: str, track: str, event: str, n: int = 1) -> None:
        per_track = self._counts.setdefault(emotion, {}).setdefault(track, {})
        per_track[check_event(event)] = per_track.get(event, 0) + n

    def counts(self, emotion: str) -> dict[str, dict[str, int]]:
        return {track: dict(c) for track, c in self._counts.get(emotion, {}).items()}

    def emotions(self) -> list[str]:
        return sorted(self._counts)

    def posteriors(self, emotion: str) -> dict[str, Posterior]:
        return {track: posterior(c, self.weights) for track, c in self._counts.get(emotion, {}).items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: counts with each track's posterior, plus the weights that produced them."""
        emotions = {}
        for emotion in self.emotions():
            emotions[emotion] = {}
            for track, c in sorted(self._counts[emotion].items()):
                p = posterior(c, self.weights)
                emotions[emotion][track] = {**{e: c.get(e, 0) for e in EVENTS},
                                            "alpha": p.alpha, "beta": p.beta, "mean": round(p.mean, 6)}
        return {"version": STATE_VERSION, "weights": asdict(self.weights), "emotions": emotions}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeedbackState:
        """Inverse of to_dict (posteriors are recomputed from the counts); raises ValueError on bad input."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"feedback state version {data.get('version')!r} is not {STATE_VERSION}")
        try:
            state = cls(Weights(**data.get("weights", {})))
            for emotion, tracks in data["emotions"].items():
                for track, entry in tracks.items():
                    for event in EVENTS:
                        n = int(entry.get(event, 0))
                        if n < 0:
                            raise ValueError(f"negative count for {emotion}/{track}/{event}")
                        if n:
                            state.record(emotion, track, event, n)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a feedback state: {exc!r}") from None
        return state
