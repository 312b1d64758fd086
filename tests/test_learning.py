"""The speaker learns, measured: a simulated listener's skips and likes reshape what the queue plays.

The issue's bar: after 200 feedback events, tracks the listener skips start in under 10% of track starts and
tracks they like in over half. Measured over the 150 starts that follow, for several seeds.
"""

from __future__ import annotations

import random

import pytest

from moodspeaker.core.feedback import Weights
from moodspeaker.dev.listener_sim import default_listener, playlist, simulate

AFTER_EVENTS = 200
WINDOW = 150


@pytest.mark.parametrize("seed", range(5))
def test_after_200_events_skipped_tracks_are_rare_and_liked_ones_dominate(seed: int) -> None:
    tracks = playlist(20)
    listener = default_listener(tracks, n_liked=4, n_disliked=4)
    result = simulate(tracks, listener, random.Random(seed), n_starts=600)
    disliked_share, liked_share = result.rates(listener, AFTER_EVENTS, WINDOW)
    assert disliked_share < 0.10
    assert liked_share > 0.50


def test_without_learning_the_same_listener_hears_skipped_tracks_at_their_share_of_the_playlist() -> None:
    """Control: with every event weighing nothing the queue is a random shuffle, and the bar above is not met."""
    tracks = playlist(20)
    listener = default_listener(tracks, n_liked=4, n_disliked=4)
    no_learning = Weights(like=0, full_play=0, skip=0, early_skip=0)
    result = simulate(tracks, listener, random.Random(0), n_starts=1200, weights=no_learning)
    disliked_share, liked_share = result.rates(listener, AFTER_EVENTS, 900)
    assert disliked_share == pytest.approx(4 / 20, abs=0.05)
    assert liked_share == pytest.approx(4 / 20, abs=0.05)
