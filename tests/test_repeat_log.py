"""Which repeated failures are logged (pure): a new one at once, the same one once per interval with its count."""

from __future__ import annotations

from moodspeaker.core.repeats import RepeatLog


def test_a_failure_is_logged_when_new_then_once_a_minute_with_its_count() -> None:
    repeats = RepeatLog(every_s=60.0)
    assert repeats.line("MPD refused", 0.0) == "MPD refused"
    assert [repeats.line("MPD refused", t) for t in (10.0, 30.0, 59.0)] == [None, None, None]
    assert repeats.line("MPD refused", 61.0) == "MPD refused (4 times in 61 s)"
    assert repeats.line("MPD refused", 62.0) is None
    assert repeats.line("Spotify rate-limits", 63.0) == "Spotify rate-limits"  # another failure: at once
    assert repeats.line("MPD refused", 64.0) == "MPD refused"  # and the first is new again after it
    repeats.last = ""  # it worked again in between
    assert repeats.line("MPD refused", 65.0) == "MPD refused"
