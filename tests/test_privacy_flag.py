"""Privacy mode across the two daemons: the player's flag file, polled by vision."""

from __future__ import annotations

from moodspeaker.adapters.privacy_flag import PrivacyFlag


def test_set_and_clear_the_flag(tmp_path):
    flag = PrivacyFlag(tmp_path / "run")
    assert not flag.is_on()
    flag.set(True)
    assert flag.is_on() and flag.path.parent == tmp_path / "run"
    flag.set(True)  # idempotent
    flag.set(False)
    flag.set(False)
    assert not flag.is_on()


def test_changed_reports_each_change_once_and_polls_at_most_once_per_interval(tmp_path):
    now = [0.0]
    writer, reader = PrivacyFlag(tmp_path), PrivacyFlag(tmp_path, poll_s=1.0, clock=lambda: now[0])
    assert reader.changed() is False  # first poll: the state as it is
    writer.set(True)
    now[0] = 0.5
    assert reader.changed() is None  # too soon to look again
    now[0] = 1.0
    assert reader.changed() is True
    now[0] = 2.0
    assert reader.changed() is None  # unchanged
    writer.set(False)
    now[0] = 3.0
    assert reader.changed() is False
