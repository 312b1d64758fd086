"""The pure feedback model: events -> Beta posteriors -> Thompson-sampled queue order."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from moodspeaker.core.domain import Track
from moodspeaker.core.feedback import (
    EARLY_SKIP,
    EARLY_SKIP_S,
    FULL_PLAY,
    LIKE,
    SKIP,
    FeedbackState,
    Weights,
    posterior,
    rank,
    skip_event,
)


def test_prior_for_a_track_without_feedback_is_flat() -> None:
    p = posterior({})
    assert (p.alpha, p.beta, p.mean) == (1.0, 1.0, 0.5)


def test_events_add_their_documented_pseudo_counts() -> None:
    w = Weights()
    p = posterior({LIKE: 2, FULL_PLAY: 3, SKIP: 1, EARLY_SKIP: 4}, w)
    assert p.alpha == w.prior_alpha + 2 * w.like + 3 * w.full_play
    assert p.beta == w.prior_beta + 1 * w.skip + 4 * w.early_skip


def test_an_early_skip_counts_more_against_a_track_than_a_late_one() -> None:
    assert skip_event(EARLY_SKIP_S - 0.1) == EARLY_SKIP
    assert skip_event(EARLY_SKIP_S) == SKIP
    assert posterior({EARLY_SKIP: 1}).mean < posterior({SKIP: 1}).mean < posterior({}).mean


def test_weights_reject_a_non_positive_prior() -> None:
    with pytest.raises(ValueError, match="prior"):
        Weights(prior_alpha=0)


def test_rank_puts_liked_tracks_first_and_skipped_last_most_of_the_time() -> None:
    tracks = [Track("a"), Track("b"), Track("c")]
    counts = {"a": {EARLY_SKIP: 5}, "c": {LIKE: 3, FULL_PLAY: 5}}
    rng = random.Random(1)
    firsts = Counter(rank(tracks, counts, rng)[0].uri for _ in range(500))
    lasts = Counter(rank(tracks, counts, rng)[-1].uri for _ in range(500))
    assert firsts.most_common(1)[0][0] == "c" and firsts["c"] > 400
    assert lasts.most_common(1)[0][0] == "a" and lasts["a"] > 400


def test_rank_still_gives_a_new_track_a_turn() -> None:
    tracks = ["old-1", "old-2", "old-3", "new"]
    counts = {t: {FULL_PLAY: 3, SKIP: 3} for t in tracks[:3]}  # middling tracks, often heard
    rng = random.Random(2)
    firsts = Counter(rank(tracks, counts, rng)[0] for _ in range(1000))
    assert firsts["new"] > 100  # the flat prior wins the draw often enough to be tried
    assert firsts["new"] < 900  # but it does not monopolise the queue either


def test_rank_is_a_permutation_and_reproducible_with_the_same_seed() -> None:
    tracks = [f"t{i}" for i in range(30)]
    counts = {"t3": {LIKE: 1}, "t7": {SKIP: 2}}
    first = rank(tracks, counts, random.Random(5))
    assert sorted(first) == sorted(tracks)
    assert rank(tracks, counts, random.Random(5)) == first


def test_state_round_trips_through_json_and_recomputes_posteriors() -> None:
    state = FeedbackState()
    state.record("sad", "spotify:track:1", LIKE)
    state.record("sad", "spotify:track:1", FULL_PLAY, 2)
    state.record("happy", "x.mp3", EARLY_SKIP)
    data = json.loads(json.dumps(state.to_dict()))
    assert data["emotions"]["sad"]["spotify:track:1"]["mean"] == pytest.approx(posterior({LIKE: 1, FULL_PLAY: 2}).mean,
                                                                               abs=1e-6)
    again = FeedbackState.from_dict(data)
    assert again.counts("sad") == {"spotify:track:1": {LIKE: 1, FULL_PLAY: 2}}
    assert again.counts("happy") == {"x.mp3": {EARLY_SKIP: 1}}
    assert again.emotions() == ["happy", "sad"]


def test_state_rejects_unknown_events_and_bad_documents() -> None:
    with pytest.raises(ValueError, match="unknown feedback event"):
        FeedbackState().record("sad", "t", "love")
    with pytest.raises(ValueError, match="version"):
        FeedbackState.from_dict({"version": 99, "emotions": {}})
    with pytest.raises(ValueError, match="negative"):
        FeedbackState.from_dict({"version": 1, "emotions": {"sad": {"t": {"like": -1}}}})
