"""The mood policy: strategies, cool-down, no_face, track-end vs at-once switching (pure, time passed in)."""

from __future__ import annotations

import pytest

from moodspeaker.config import parse_config
from moodspeaker.core.policy import LIFT, MoodPolicy, Selection, Switch
from moodspeaker.errors import ConfigError

PLAYLISTS = {"happy": "pl-happy", "sad": "pl-sad", "neutral": "pl-neutral", "calm": "pl-calm", "uplifting": "pl-up"}


def test_match_plays_the_moods_own_playlist_and_starts_at_once_when_nothing_plays() -> None:
    policy = MoodPolicy(PLAYLISTS, cooldown_s=10)
    assert policy.on_mood("sad", now=0.0) == Switch(Selection("sad", ("pl-sad",)), at_once=True)


def test_lift_leads_sad_to_calm_then_uplifting_and_matches_moods_without_a_lift() -> None:
    policy = MoodPolicy(PLAYLISTS, strategy="lift", cooldown_s=0)
    assert policy.on_mood("sad", 0.0).selection == Selection("sad", ("pl-calm", "pl-up"))
    assert policy.on_mood("happy", 1.0).selection == Selection("happy", ("pl-happy",))


def test_lift_table_is_overridable_per_emotion() -> None:
    policy = MoodPolicy(PLAYLISTS, strategy="lift", lift={"sad": ("uplifting",)}, cooldown_s=0)
    assert policy.on_mood("sad", 0.0).selection.playlists == ("pl-up",)
    assert LIFT["sad"] == ("calm", "uplifting")  # the override did not leak into the built-in table


def test_no_face_and_moods_without_a_playlist_keep_the_music() -> None:
    policy = MoodPolicy(PLAYLISTS, cooldown_s=0)
    policy.on_mood("happy", 0.0)
    assert policy.on_mood("no_face", 5.0) is None
    assert policy.on_mood("angry", 6.0) is None  # no playlist for angry under match
    assert policy.current == Selection("happy", ("pl-happy",))


def test_a_change_waits_for_the_track_end_unless_configured_to_switch_at_once() -> None:
    waits = MoodPolicy(PLAYLISTS, cooldown_s=0)
    waits.on_mood("happy", 0.0)
    assert waits.on_mood("sad", 50.0) == Switch(Selection("sad", ("pl-sad",)), at_once=False)
    at_once = MoodPolicy(PLAYLISTS, cooldown_s=0, switch_at_once=True)
    at_once.on_mood("happy", 0.0)
    assert at_once.on_mood("sad", 50.0).at_once


def test_a_flickering_mood_never_restarts_the_music_within_the_cooldown() -> None:
    policy = MoodPolicy(PLAYLISTS, cooldown_s=30, switch_at_once=True)
    assert policy.on_mood("happy", 0.0) is not None
    decisions = [policy.on_mood(mood, t) for t, mood in [(2, "sad"), (3, "happy"), (4, "sad"), (5, "happy"), (6, "sad")]]
    assert decisions == [None] * 5
    assert policy.pending == "sad"
    assert policy.tick(20.0) is None  # still cooling down
    assert policy.tick(30.0) == Switch(Selection("sad", ("pl-sad",)), at_once=True)
    assert policy.tick(31.0) is None


def test_a_flicker_back_to_the_playing_mood_cancels_the_pending_change() -> None:
    policy = MoodPolicy(PLAYLISTS, cooldown_s=30)
    policy.on_mood("happy", 0.0)
    policy.on_mood("sad", 1.0)
    policy.on_mood("happy", 2.0)
    assert policy.pending is None
    assert policy.tick(100.0) is None


def test_same_playlists_for_a_new_mood_do_not_restart() -> None:
    policy = MoodPolicy(PLAYLISTS, strategy="lift", lift={"angry": ("calm", "uplifting")}, cooldown_s=0)
    policy.on_mood("sad", 0.0)
    assert policy.on_mood("angry", 100.0) is None


def test_queue_end_replays_the_current_selection_or_starts_the_pending_one() -> None:
    policy = MoodPolicy(PLAYLISTS, cooldown_s=30)
    assert policy.on_queue_end(0.0) is None  # nothing chosen yet
    policy.on_mood("happy", 0.0)
    assert policy.on_queue_end(10.0) == Switch(Selection("happy", ("pl-happy",)), at_once=True)
    policy.on_mood("sad", 12.0)  # within the cool-down: pending
    assert policy.on_queue_end(13.0) == Switch(Selection("sad", ("pl-sad",)), at_once=True)


@pytest.mark.parametrize(("toml", "message"), [
    ('[player]\nstrategy = "lift"\nplaylists = {sad = "x"}\n', "add playlists.calm"),
    ('[player]\nlift = {sadd = ["calm"]}\n', "'sadd' is not an emotion"),
    ('[player]\nstrategy = "lifted"\n', "did you mean 'lift'"),
    ('[player]\nswitch = "now"\n', "track_end"),
    ('[player]\ncooldown_s = -1\n', ">= 0"),
])
def test_bad_player_config_says_what_to_fix(toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(toml)


def test_player_config_defaults_build_a_policy_for_every_emotion() -> None:
    cfg = parse_config("").player
    policy = MoodPolicy(cfg.playlists, cfg.strategy, cfg.lift, cfg.cooldown_s, cfg.switch == "at_once")
    assert policy.on_mood("fear", 0.0).selection == Selection("fear", ("mood-fear",))


def test_a_switch_the_player_could_not_carry_out_is_retried_after_the_cooldown() -> None:
    policy = MoodPolicy(PLAYLISTS, cooldown_s=10, switch_at_once=True)
    policy.on_mood("happy", 0.0)
    switch = policy.on_mood("sad", 20.0)
    policy.failed(switch)
    assert policy.current == Selection("happy", ("pl-happy",))
    assert policy.tick(25.0) is None
    assert policy.tick(30.0) == switch
