"""The mood policy: which playlist a mood asks for, and when the music may change.

Pure: no I/O, time passed in. The player service feeds it moods and track ends and carries out its decisions.

- Strategy `match` plays the mood's own playlist; `lift` plays a sequence of playlists that leads
  the listener out of a low mood (sad -> calm, then uplifting), from LIFT overridden by the config.
- "No face" keeps the current music; a mood without a playlist does too.
- A cool-down caps playlist changes to one per `cooldown_s`, so a flickering mood never restarts the
  music; a change that comes too early waits and is applied once the cool-down has passed.
- A change waits for the current track to end (the new playlist is queued after it) unless
  `switch_at_once` is set.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from moodspeaker.core.checks import raise_problems
from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.mood import NO_FACE

STRATEGIES = ("match", "lift")

# Playlist keys per emotion for the `lift` strategy, played in order; emotions not listed are matched.
LIFT: dict[str, tuple[str, ...]] = {
    "sad": ("calm", "uplifting"),
    "angry": ("calm", "uplifting"),
    "fear": ("calm", "uplifting"),
    "disgust": ("calm", "uplifting"),
}


@dataclass(frozen=True)
class Selection:
    """What to play for a mood: the listener's emotion (feedback is keyed by it) and playlists in order."""

    emotion: str
    playlists: tuple[str, ...]  # backend playlist ids (MPD names or Spotify URIs)


@dataclass(frozen=True)
class Switch:
    """A decision to change the music: start `selection` now, or queue it after the current track."""

    selection: Selection
    at_once: bool


def lift_table(overrides: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """The built-in LIFT table with the config's per-emotion overrides applied."""
    return {**LIFT, **overrides}


def check_settings(strategy: str, playlists: Mapping[str, str], lift: Mapping[str, tuple[str, ...]]) -> None:
    """Raise InvalidSettings (a ValueError) saying what to fix, every problem at once, when the playlists and
    lift table do not fit together."""
    problems = []
    if strategy not in STRATEGIES:
        problems.append(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    for emotion, keys in lift.items():
        if emotion not in EMOTIONS:
            problems.append(f"lift: {emotion!r} is not an emotion; use one of {list(EMOTIONS)}")
        if not keys:
            problems.append(f"lift.{emotion}: give at least one playlist key")
    if strategy == "lift":
        for emotion, keys in lift_table(lift).items():
            missing = [k for k in keys if k not in playlists]
            if missing:
                problems.append(f"lift.{emotion} uses {missing} but playlists has no such key; add "
                                f"playlists.{missing[0]} = \"...\" or override lift.{emotion}")
    known = set(EMOTIONS) | {key for keys in lift_table(lift).values() for key in keys}
    for key, playlist in playlists.items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"use an emotion ({', '.join(EMOTIONS)}) or a key lift uses"
            problems.append(f"playlists.{key}: no mood plays this key (a typo would leave that mood silent); {hint}")
        elif not playlist:
            problems.append(f"playlists.{key} is empty; name a playlist or remove the key")
    raise_problems(problems)


class MoodPolicy:
    def __init__(self, playlists: Mapping[str, str], strategy: str = "match",
                 lift: Mapping[str, tuple[str, ...]] | None = None, cooldown_s: float = 30.0,
                 switch_at_once: bool = False) -> None:
        check_settings(strategy, playlists, lift or {})
        if cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0, got {cooldown_s}")
        self._playlists = dict(playlists)
        self._lift = lift_table(lift or {}) if strategy == "lift" else {}
        self._cooldown_s = cooldown_s
        self._switch_at_once = switch_at_once
        self.current: Selection | None = None
        self.pending: str | None = None  # a mood that arrived during the cool-down
        self._last_switch_t = float("-inf")
        self._previous: Selection | None = None

    def selection_for(self, mood: str) -> Selection | None:
        """The playlists for a mood under the strategy; None for no_face or a mood without playlists."""
        if mood == NO_FACE:
            return None
        keys = self._lift.get(mood, (mood,))
        playlists = tuple(self._playlists[k] for k in keys if k in self._playlists)
        return Selection(mood, playlists) if playlists else None

    def on_mood(self, mood: str, now: float) -> Switch | None:
        selection = self.selection_for(mood)
        if selection is None:
            return None
        if self.current is not None and selection.playlists == self.current.playlists:
            self.pending = None
            return None
        if self.current is not None and now - self._last_switch_t < self._cooldown_s:
            self.pending = mood
            return None
        return self._switch(selection, now, at_once=self.current is None or self._switch_at_once)

    def tick(self, now: float) -> Switch | None:
        """Apply a mood that waited out the cool-down."""
        if self.pending is None or now - self._last_switch_t < self._cooldown_s:
            return None
        mood, self.pending = self.pending, None
        return self.on_mood(mood, now)

    def on_queue_end(self, now: float) -> Switch | None:
        """The queue ran out: start what is pending, else the current selection again (freshly ranked)."""
        if self.pending is not None:
            selection = self.selection_for(self.pending)
            self.pending = None
            if selection is not None:
                return self._switch(selection, now, at_once=True)
        if self.current is None:
            return None
        return self._switch(self.current, now, at_once=True)

    def carry_over(self, old: MoodPolicy) -> None:
        """Continue where `old` (the policy before a reload) left off: same music, same cool-down. If the new
        settings give the current mood other playlists, that change waits like any other."""
        self.current, self.pending, self._last_switch_t, self._previous = (old.current, old.pending,
                                                                           old._last_switch_t, old._previous)
        if self.current is not None and self.pending is None:
            selection = self.selection_for(self.current.emotion)
            if selection is not None and selection.playlists != self.current.playlists:
                self.pending = self.current.emotion

    def failed(self, switch: Switch) -> None:
        """The player could not carry out `switch`: the previous music is still current, and the mood is
        retried once the cool-down has passed (or at once by the next matching mood after it)."""
        if self.current == switch.selection:
            self.current = self._previous
            self.pending = switch.selection.emotion

    def _switch(self, selection: Selection, now: float, at_once: bool) -> Switch:
        self._previous = self.current
        self.current, self.pending, self._last_switch_t = selection, None, now
        return Switch(selection, at_once)
