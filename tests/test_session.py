"""The player session's rules, pure and in milliseconds: moods, track changes and buttons in, commands out."""

from __future__ import annotations

from moodspeaker.core.domain import ButtonAction, Track
from moodspeaker.core.policy import MoodPolicy
from moodspeaker.core.session import Like, Next, PlaySwitch, Record, Session, SetPrivacy, TogglePause

PLAYLISTS = {"happy": "mood-happy", "sad": "mood-sad", "calm": "mood-calm", "uplifting": "mood-uplifting"}


def session(**policy: object) -> Session:
    return Session(MoodPolicy(PLAYLISTS, **{"cooldown_s": 10.0, **policy}), early_skip_s=30.0)  # type: ignore[arg-type]


def play(s: Session, mood: str, now: float, uris: list[str]) -> PlaySwitch:
    """A mood that starts music, carried out by an imagined backend with these tracks; the first one starts."""
    (command,) = s.on_mood(mood, 0.9, now)
    assert isinstance(command, PlaySwitch)
    s.queued(command.switch, [Track(u) for u in uris])
    s.on_track(Track(uris[0]), now, 1e9 + now)
    return command


def test_a_mood_plays_its_playlist_at_once_when_nothing_plays() -> None:
    s = session()
    command = play(s, "happy", 0.0, ["h1", "h2"])
    assert command.switch.at_once and command.switch.selection.playlists == ("mood-happy",)
    assert s.playing is not None and s.playing.emotion == "happy" and s.tracks_started == 1 and s.mood_changes == 1


def test_no_face_and_the_same_mood_change_nothing() -> None:
    s = session()
    play(s, "happy", 0.0, ["h1"])
    assert s.on_mood("happy", 0.7, 1.0) == [] and s.confidence == 0.7
    assert s.on_mood("no_face", 0.0, 2.0) == [] and s.mood == "no_face"


def test_a_change_within_the_cooldown_waits_and_then_queues_after_the_track() -> None:
    s = session()
    play(s, "happy", 0.0, ["h1"])
    assert s.on_mood("sad", 0.8, 5.0) == []
    assert s.tick(9.0) == []
    (command,) = s.tick(10.0)
    assert isinstance(command, PlaySwitch) and command.switch.selection.emotion == "sad" and not command.switch.at_once


def test_a_track_that_ends_by_itself_is_a_full_play_for_the_mood_it_was_queued_for() -> None:
    s = session()
    play(s, "happy", 0.0, ["h1", "h2"])
    assert s.on_track(Track("h2"), 200.0, 5000.0) == [Record("happy", "h1", "full_play", 5000.0)]
    assert s.playing is not None and s.playing.track.uri == "h2" and s.tracks_started == 2


def test_skips_early_and_late_and_the_change_they_cause_is_not_a_full_play() -> None:
    s = session()
    play(s, "happy", 0.0, ["h1", "h2", "h3"])
    assert s.on_action(ButtonAction.SKIP, 10.0, 7.0) == [Record("happy", "h1", "early_skip", 7.0), Next()]
    assert s.on_track(Track("h2"), 10.1, 7.1) == []
    assert s.on_action(ButtonAction.SKIP, 50.0, 8.0) == [Record("happy", "h2", "skip", 8.0), Next()]


def test_a_failed_skip_does_not_hide_the_next_full_play() -> None:
    s = session()
    play(s, "happy", 0.0, ["h1", "h2"])
    s.failed(s.on_action(ButtonAction.SKIP, 10.0, 7.0)[-1], transient=True)
    assert s.on_track(Track("h2"), 200.0, 9.0) == [Record("happy", "h1", "full_play", 9.0)]


def test_like_records_and_saves_and_does_nothing_without_a_track() -> None:
    s = session()
    assert s.on_action(ButtonAction.LIKE, 0.0, 1.0) == []
    play(s, "sad", 0.0, ["s1"])
    assert s.on_action(ButtonAction.LIKE, 3.0, 4.0) == [Record("sad", "s1", "like", 4.0), Like(Track("s1"))]


def test_a_track_we_did_not_queue_gets_no_feedback() -> None:
    s = session()
    s.on_track(Track("someone-elses"), 0.0, 0.0)
    assert s.on_action(ButtonAction.LIKE, 1.0, 1.0) == [Like(Track("someone-elses"))]
    assert s.on_track(Track("next"), 300.0, 300.0) == []


def test_privacy_ignores_moods_until_turned_off_and_pause_toggles() -> None:
    s = session()
    play(s, "happy", 0.0, ["h1"])
    assert s.on_action(ButtonAction.PRIVACY, 1.0, 1.0) == [SetPrivacy(True)]
    assert s.on_mood("sad", 0.9, 100.0) == [] and s.mood == "happy"
    assert s.on_action(ButtonAction.PRIVACY, 2.0, 2.0) == [SetPrivacy(False)]
    assert s.on_action(ButtonAction.PAUSE, 3.0, 3.0) == [TogglePause()] and s.paused
    s.failed(TogglePause(), transient=True)
    assert not s.paused


def test_a_switch_at_once_is_not_a_full_play_of_the_interrupted_track() -> None:
    s = session(cooldown_s=0.0, switch_at_once=True)
    play(s, "happy", 0.0, ["h1"])
    (command,) = s.on_mood("sad", 0.9, 1.0)
    assert isinstance(command, PlaySwitch) and command.switch.at_once
    s.queued(command.switch, [Track("s1")])
    assert s.on_track(Track("s1"), 1.1, 1.1) == []
    assert s.playing is not None and s.playing.emotion == "sad"


def test_the_queue_running_out_plays_the_mood_again() -> None:
    s = session()
    play(s, "happy", 0.0, ["h1"])
    record, again = s.on_track(None, 200.0, 200.0)
    assert record == Record("happy", "h1", "full_play", 200.0)
    assert isinstance(again, PlaySwitch) and again.switch.selection.emotion == "happy" and again.switch.at_once


def test_a_transient_failure_retries_the_mood_after_the_cooldown() -> None:
    s = session()
    (command,) = s.on_mood("happy", 0.9, 0.0)
    s.failed(command, transient=True)
    assert s.tick(5.0) == []
    (retry,) = s.tick(10.0)
    assert isinstance(retry, PlaySwitch) and retry.switch.selection.emotion == "happy"


def test_the_same_track_reported_again_is_no_change() -> None:
    """A new backend after a reload (or a reconnect) reports what already plays: not a full play, not a start."""
    s = session()
    play(s, "happy", 0.0, ["h1", "h2"])
    assert s.on_track(Track("h1"), 50.0, 50.0) == [] and s.tracks_started == 1


def test_a_reload_keeps_what_plays_privacy_and_counters_and_applies_new_playlists_after_the_cooldown() -> None:
    s = session()
    play(s, "happy", 0.0, ["h1"])
    s.on_action(ButtonAction.PRIVACY, 1.0, 1.0)
    s.reconfigure(MoodPolicy({**PLAYLISTS, "happy": "new-happy"}, cooldown_s=10.0), early_skip_s=5.0)
    assert s.privacy and s.playing is not None and s.playing.track.uri == "h1" and s.mood_changes == 1
    assert s.tick(5.0) == []  # the cool-down carried over too
    (command,) = s.tick(10.0)
    assert isinstance(command, PlaySwitch) and command.switch.selection.playlists == ("new-happy",)
    assert not command.switch.at_once  # waits for the track to end, like any change
    unchanged = session()
    play(unchanged, "happy", 0.0, ["h1"])
    unchanged.reconfigure(MoodPolicy(PLAYLISTS, cooldown_s=10.0), early_skip_s=30.0)
    assert unchanged.tick(100.0) == []


def test_set_privacy_is_a_command_only_when_it_changes_and_a_toggle_still_follows_it() -> None:
    s = session()
    assert s.set_privacy(True) == [SetPrivacy(True)] and s.privacy
    assert s.set_privacy(True) == []  # already on: nothing to do
    assert s.on_mood("happy", 0.9, 0.0) == []  # the camera is off: moods are ignored
    assert s.on_action(ButtonAction.PRIVACY, 1.0, 1e9) == [SetPrivacy(False)]  # the button toggles from there
    assert s.set_privacy(False) == []


def test_the_owners_privacy_choice_wins_over_quiet_hours_until_their_window_ends() -> None:
    s = session()
    assert s.quiet_hours(False) == []
    assert s.quiet_hours(True) == [SetPrivacy(True)]  # quiet hours begin: camera off
    assert s.set_privacy(False) == [SetPrivacy(False)]  # the owner wants the camera on tonight
    assert [s.quiet_hours(True) for _ in range(3)] == [[], [], []]  # not overridden within the window
    assert s.quiet_hours(False) == [] and not s.privacy  # the window ends: nothing to undo
    assert s.quiet_hours(True) == [SetPrivacy(True)]  # the next night: quiet hours again
    assert s.quiet_hours(False) == [SetPrivacy(False)]  # and they turn off what they turned on


def test_privacy_the_owner_turned_on_outlasts_the_quiet_hours() -> None:
    s = session()
    assert s.on_action(ButtonAction.PRIVACY, 0.0, 0.0) == [SetPrivacy(True)]  # the like button held, by day
    assert s.quiet_hours(True) == [] and s.quiet_hours(False) == [] and s.privacy


def test_what_a_mood_queued_after_the_track_is_handed_to_a_backend_a_reload_brings() -> None:
    """E: a reload dropped what play_next() left waiting. The new backend is told the whole queue."""
    from moodspeaker.core.session import Restore

    s = session(cooldown_s=0.0)
    play(s, "happy", 0.0, ["h1", "h2"])
    (command,) = s.on_mood("sad", 0.9, 1.0)
    assert isinstance(command, PlaySwitch) and not command.switch.at_once
    s.queued(command.switch, [Track("s1"), Track("s2")])
    assert s.returned(2.0) == [Restore((Track("h1"), Track("s1"), Track("s2")), 0, 2.0, False)]


def test_the_owner_stops_the_music_and_the_speaker_stays_stopped_through_mood_changes() -> None:
    """I: after `mpc stop` the speaker restarted its playlist within 0.1 s; a mood change replaced the owner's queue."""
    from moodspeaker.core.domain import OwnerTookOver

    s = session(cooldown_s=0.0)
    play(s, "happy", 0.0, ["h1", "h2"])
    assert s.on_owner(OwnerTookOver("stopped")) == [] and s.owner == OwnerTookOver("stopped")
    assert s.on_track(None, 1.0, 1.0) == []  # stopped: not restarted
    assert s.on_mood("sad", 0.9, 2.0) == [] and s.mood == "sad"  # the mood is followed, the music is not touched
    assert [s.tick(t) for t in (3.0, 200.0)] == [[], []]
    (command,) = s.on_action(ButtonAction.SKIP, 300.0, 300.0)  # a press hands back: the mood's music, at once
    assert isinstance(command, PlaySwitch) and command.switch.at_once
    assert command.switch.selection.playlists == ("mood-sad",) and s.owner is None


def test_the_owners_queue_ending_hands_back_after_the_quiet_period() -> None:
    from moodspeaker.core.domain import OwnerTookOver

    s = Session(MoodPolicy(PLAYLISTS, cooldown_s=0.0), owner_quiet_s=300.0)
    play(s, "happy", 0.0, ["h1"])
    s.on_owner(OwnerTookOver("changed the queue"))
    assert s.on_track(Track("owner-1"), 10.0, 10.0) == []  # the owner's own track: no feedback for it
    assert s.on_track(None, 200.0, 200.0) == []  # the owner's queue ran out
    assert s.tick(499.0) == []
    assert s.on_track(Track("owner-2"), 450.0, 450.0) == []  # the owner plays on: the quiet starts over
    assert s.on_track(None, 460.0, 460.0) == [] and s.tick(700.0) == []
    (command,) = s.tick(760.0)
    assert isinstance(command, PlaySwitch) and command.switch.selection.playlists == ("mood-happy",)


def test_moodspeaker_resume_hands_back_and_privacy_stays_a_privacy_press() -> None:
    from moodspeaker.core.domain import OwnerTookOver

    s = session(cooldown_s=0.0)
    play(s, "happy", 0.0, ["h1"])
    s.on_owner(OwnerTookOver("paused"))
    assert s.paused
    assert s.on_action(ButtonAction.PRIVACY, 1.0, 1.0) == [SetPrivacy(True)] and s.owner is not None
    (command,) = s.resume(2.0)
    assert isinstance(command, PlaySwitch) and s.owner is None and s.resume(3.0) == []


def test_status_names_the_track_and_who_is_in_control() -> None:
    from moodspeaker.core.domain import OwnerTookOver

    s = session()
    assert s.status()["track"] == "" and s.status()["control"] == "speaker"
    play(s, "happy", 0.0, ["happy/h1.wav"])
    assert s.status()["track"] == "happy/h1.wav" and s.status()["title"] == ""  # a file without tags: its name
    s.on_track(Track("happy/h2.wav", title="Sunny", artist="Band"), 300.0, 1e9)
    assert (s.status()["track"], s.status()["title"]) == ("Band - Sunny", "Sunny")
    s.on_owner(OwnerTookOver("paused"))
    assert s.status()["control"] == "owner (paused from another client)" and s.status()["paused"] is True


def test_a_backend_that_comes_back_is_told_the_track_and_how_far_it_had_played_when_it_was_lost() -> None:
    """Build 1: the restore after a backend comes back is the session's. The position counts play time only: not
    the pause, not the time after the backend was found unreachable (the music stopped then, at the latest)."""
    from moodspeaker.core.session import Restore

    s = session()
    play(s, "happy", 0.0, ["h1", "h2", "h3"])
    s.on_track(Track("h2"), 200.0, 200.0)
    assert s.on_action(ButtonAction.PAUSE, 215.0, 0.0) == [TogglePause()]  # 15 s in
    s.on_action(ButtonAction.PAUSE, 300.0, 0.0)  # resumed after 85 s
    s.backend_lost(310.0)  # 25 s in
    s.backend_lost(330.0)  # still away: the first one counts
    queue = (Track("h1"), Track("h2"), Track("h3"))
    assert s.returned(400.0) == [Restore(queue, 1, 25.0, False)]
    assert s.returned(410.0) == [Restore(queue, 1, 35.0, False)]  # back again without a loss (a reload): 10 s on


def test_a_paused_track_comes_back_paused_where_it_was_and_a_failed_pause_kept_the_clock_running() -> None:
    from moodspeaker.core.session import Restore

    s = session()
    play(s, "happy", 0.0, ["h1", "h2"])
    s.on_action(ButtonAction.PAUSE, 40.0, 0.0)
    s.failed(TogglePause(), transient=True)  # the pause did not happen: the track played on
    s.on_action(ButtonAction.PAUSE, 50.0, 0.0)  # this one did, 50 s in
    s.backend_lost(90.0)
    assert s.returned(95.0) == [Restore((Track("h1"), Track("h2")), 0, 50.0, True)]


def test_after_a_mood_queued_after_the_track_the_restore_has_the_queue_up_to_it_then_the_moods_tracks() -> None:
    from moodspeaker.core.session import Restore

    s = session(cooldown_s=0.0)
    play(s, "happy", 0.0, ["h1", "h2", "h3"])
    s.on_track(Track("h2"), 100.0, 100.0)
    (command,) = s.on_mood("sad", 0.9, 110.0)
    s.queued(command.switch, [Track("s1"), Track("s2")])  # after h2: the backend's queue is h1 h2 s1 s2
    queue = (Track("h1"), Track("h2"), Track("s1"), Track("s2"))
    assert s.returned(120.0) == [Restore(queue, 1, 20.0, False)]
    s.on_track(Track("s1"), 300.0, 300.0)
    assert s.returned(301.0) == [Restore(queue, 2, 1.0, False)]


def test_nothing_is_restored_while_the_owner_is_in_control_after_the_queue_ran_out_or_before_anything_played() -> None:
    """J: after an MPD restart the speaker restored the owner's queue as its own."""
    from moodspeaker.core.domain import OwnerTookOver

    s = session()
    assert s.returned(1.0) == []  # nothing played yet
    play(s, "happy", 0.0, ["h1"])
    s.on_owner(OwnerTookOver("changed the queue"))
    s.on_track(Track("owner-1"), 5.0, 5.0)
    assert s.returned(10.0) == []
    s = session()
    play(s, "happy", 0.0, ["h1"])
    s.on_track(None, 200.0, 200.0)  # ran out; the policy's new music is not queued yet
    assert s.returned(201.0) == []


def test_music_a_mood_just_started_is_restored_before_its_first_track_is_reported() -> None:
    """A reload (or a reconnect) in the moment between a mood's play and the report of its first track: the new
    backend was told nothing, so it never took the queue as ours, and another client's stop right after went
    unseen (system check 24, now and then). With music before and from silence."""
    from dataclasses import replace

    from moodspeaker.core.session import Restore

    for playing_before in (True, False):
        s = session(cooldown_s=0.0)
        if playing_before:
            play(s, "happy", 0.0, ["h1", "h2"])
        (command,) = s.on_mood("sad", 0.9, 50.0)
        assert isinstance(command, PlaySwitch)
        s.queued(replace(command.switch, at_once=True), [Track("s1"), Track("s2")])
        assert s.returned(51.0) == [Restore((Track("s1"), Track("s2")), 0, 0.0, False)]
