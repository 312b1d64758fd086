"""Volume rules (pure): maximum, quiet hours across midnight, the camera in quiet hours, the mood-change fade."""

from __future__ import annotations

import itertools

import pytest

from moodspeaker.core.volume import VolumeRules, fade, parse_window


def _at(hh_mm: str) -> int:
    h, m = map(int, hh_mm.split(":"))
    return h * 60 + m


def test_a_window_across_midnight_contains_the_night_and_not_the_day() -> None:
    night = parse_window("22:00-07:00")
    assert [night.contains(_at(t)) for t in ("21:59", "22:00", "03:00", "06:59", "07:00", "12:00")] == [
        False, True, True, True, False, False]
    nap = parse_window("13:30-14:15")
    assert [nap.contains(_at(t)) for t in ("13:29", "13:30", "14:14", "14:15")] == [False, True, True, False]


@pytest.mark.parametrize("text", ["22-07", "25:00-07:00", "22:00 to 07:00", "07:00-07:00", ""])
def test_a_bad_window_says_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"22:00-07:00|same minute"):
        parse_window(text)


def test_the_cap_is_the_maximum_by_day_and_the_quiet_cap_at_night() -> None:
    rules = VolumeRules(maximum=80, quiet=(parse_window("22:00-07:00"),), quiet_max=25, quiet_camera_off=True)
    assert rules.cap(_at("12:00")) == 80 and rules.cap(_at("23:30")) == 25
    assert rules.allowed(100, _at("12:00")) == 80 and rules.allowed(60, _at("06:00")) == 25
    assert rules.allowed(-5, _at("12:00")) == 0
    assert rules.camera_off(_at("02:00")) and not rules.camera_off(_at("08:00"))
    assert not VolumeRules(quiet=(parse_window("22:00-07:00"),)).camera_off(_at("02:00"))
    assert rules.quiet_window(_at("23:00")).text == "22:00-07:00" and rules.quiet_window(_at("09:00")) is None


def test_a_quiet_cap_above_the_maximum_never_raises_it() -> None:
    assert VolumeRules(maximum=50, quiet=(parse_window("00:00-06:00"),), quiet_max=70).cap(_at("01:00")) == 50


def test_fade_steps_are_linear_monotonic_and_end_on_the_target() -> None:
    down = fade(60, 20, 1.0, step_s=0.1)
    assert down[-1] == (1.0, 20) and len(down) == 10
    assert all(a[0] < b[0] and a[1] > b[1] for a, b in itertools.pairwise(down))
    up = fade(0, 3, 1.0, step_s=0.1)  # fewer volume steps than time steps: each volume once
    assert [v for _, v in up] == [1, 2, 3] and up[-1][0] <= 1.0
    assert fade(40, 40, 1.0) == [(0.0, 40)] and fade(10, 50, 0) == [(0.0, 50)]


def test_the_plan_keeps_the_latest_choice_of_any_client_under_the_cap_of_the_time() -> None:
    from moodspeaker.core.volume import VolumePlan

    plan = VolumePlan(VolumeRules(maximum=80, quiet=(parse_window("22:00-07:00"),), quiet_max=30))
    noon, night = _at("12:00"), _at("23:00")
    assert plan.correction(noon) is None  # nothing asked, nothing known: the backend's volume is left alone
    plan.was_read(100)  # MPD was at 100 when the speaker started
    assert plan.correction(noon) == (80, "[volume] maximum")
    plan.was_set(80)
    plan.was_read(20)  # the owner's phone app: the new choice, kept
    assert plan.correction(noon) is None and plan.wanted == 20
    plan.ask(60, noon)
    assert plan.correction(noon) == (60, "kept")
    plan.was_set(60)
    plan.was_read(90)  # `mpc volume 90` at night: back to the quiet hours' cap
    assert plan.correction(night) == (30, "quiet hours 22:00-07:00")
    plan.was_set(30)
    assert plan.correction(noon) is None  # the morning does not raise it again


def test_a_volume_the_speaker_set_itself_is_not_mistaken_for_another_clients() -> None:
    from moodspeaker.core.volume import VolumePlan

    plan = VolumePlan(VolumeRules())
    plan.ask(50, 0)
    plan.was_set(50)
    for level in (30, 10, 0):  # a fade out, then the play fails
        plan.was_set(level)
    plan.was_read(0)
    assert plan.correction(0) == (50, "kept")  # the planned level comes back


def test_the_plan_says_when_to_read_and_set_and_waits_after_a_failure() -> None:
    """The service's volume bookkeeping, decided here: re-read every check_s, a request set before the next read
    (not replaced by what the backend has), and after a failed call nothing until check_s later or a backend
    command works (ten requests during a hang cost one attempt)."""
    from moodspeaker.core.volume import VolumePlan

    plan = VolumePlan(VolumeRules(maximum=80), check_s=5.0)
    assert plan.step(0.0, 0) == "read"  # the first turn learns the backend's volume
    plan.was_read(40)
    assert plan.step(1.0, 0) is None  # nothing to set, no read due
    plan.ask(90, 0)
    assert plan.step(6.0, 0) == "set" and plan.correction(0) == (80, "kept")  # asked (capped): no read first
    plan.failed(6.0)  # the set timed out: the backend's volume is unknown now
    assert plan.backend is None
    for level in (10, 20, 30):  # requests during the hang
        plan.ask(level, 0)
    assert plan.step(10.9, 0) is None  # waiting out the failure
    assert plan.step(11.0, 0) == "set" and plan.correction(0) == (30, "kept")  # the latest request, once
    plan.failed(11.0)
    plan.backend_works()  # another command worked: the volume goes at the next turn
    assert plan.step(11.1, 0) == "read"
    plan.was_read(30)
    assert plan.correction(0) is None


def test_the_fade_goes_down_from_the_backends_volume_and_up_to_the_planned_one() -> None:
    from moodspeaker.core.volume import VolumePlan

    plan = VolumePlan(VolumeRules())
    assert plan.fade(1.0, 0.1) == ([], [])  # the backend's volume unknown: nothing to fade
    plan.ask(60, 0)
    plan.was_set(60)
    plan.was_read(40)  # another client turned it down: that is the level to come back to
    fade_out, fade_in = plan.fade(1.0, 0.1)
    assert fade_out[-1] == (0.5, 0) and [v for _, v in fade_out] == sorted((v for _, v in fade_out), reverse=True)
    assert fade_in[-1] == (0.5, 40) and fade_out[0][1] < 40
