"""The player session: moods, track changes and button presses in, commands out. Pure: no I/O, time passed in.

The rules: a mood change (outside privacy mode) asks the mood policy for music; a track that ends by itself
was a full play; a skip is a skip (early within `early_skip_s`); a like is a like; a playlist change or a
skip is not the end of a track; a held like button toggles privacy mode (camera off, music on). Feedback is
recorded only for tracks the session queued for a mood. The player service executes the commands against
the backend and the feedback store and reports back what happened (`queued`, `failed`).

The owner's hand wins: when another client stops or pauses the speaker's music or changes its queue
(`on_owner`), the owner is in control: moods still update the mood (and the policy's choice), but no music is
started, replaced or un-paused, and nothing is restarted when playback stops. Control comes back with a button
press or `moodspeaker resume` (`resume`), or by itself when the owner's queue has run out and the speaker has
been silent for `owner_quiet_s` (five minutes by default); then the current mood's music starts at once.

What should be playing is the session's: the speaker's queue (what it asked the backend to play, in order), which
of its tracks plays, and how far into it (the time it has played, not counting pauses). A backend that lost its
connection and has it again, or a reload's new one, reports so (`returned`); the session then tells it what to
play (`Restore`): the track that played, where it would be had it played on until the connection was lost (the
music stopped then, at the latest), paused or not. A backend that carried on by itself is left alone; nothing is
restored while the owner is in control or after the speaker's queue ran out.

Privacy, who wins: the owner's latest choice (the like button held, `moodspeaker privacy`, Home Assistant) wins
over quiet hours until the quiet window it was made in ends. Quiet hours with `quiet_camera_off` turn privacy on
when they begin (unless the owner chose within this window) and off when they end only if they turned it on.
"""

from __future__ import annotations

from dataclasses import dataclass

from moodspeaker.core.domain import ButtonAction, OwnerTookOver, Track
from moodspeaker.core.feedback import FULL_PLAY, LIKE, skip_event
from moodspeaker.core.mood import NO_FACE
from moodspeaker.core.policy import MoodPolicy, Switch


@dataclass(frozen=True)
class PlaySwitch:
    """Fetch the switch's playlists, rank them by the mood's feedback, then play now or after this track;
    report the queued tracks back with `Session.queued`."""

    switch: Switch


@dataclass(frozen=True)
class Next:
    pass


@dataclass(frozen=True)
class TogglePause:
    pass


@dataclass(frozen=True)
class Like:
    track: Track


@dataclass(frozen=True)
class Record:
    emotion: str
    track_uri: str
    event: str  # like | skip | early_skip | full_play
    at: float  # wall-clock seconds


@dataclass(frozen=True)
class SetPrivacy:
    on: bool


@dataclass(frozen=True)
class Restore:
    """Make a backend that came back play `tracks` (the speaker's queue) from `index`, `elapsed_s` into that track,
    paused or not; a backend that already plays this queue in that state carried on by itself and is left alone."""

    tracks: tuple[Track, ...]
    index: int
    elapsed_s: float
    paused: bool


Command = PlaySwitch | Next | TogglePause | Like | Record | SetPrivacy | Restore


@dataclass(frozen=True)
class Playing:
    track: Track
    emotion: str | None  # the mood it was queued for (None: not queued by us, no feedback)
    started_at: float  # monotonic seconds


class Session:
    """The state that must outlive a reload (mood, privacy, what plays, counters) and the rules above."""

    def __init__(self, policy: MoodPolicy, early_skip_s: float = 30.0, owner_quiet_s: float = 300.0) -> None:
        self.policy = policy
        self.early_skip_s = early_skip_s
        self.owner_quiet_s = owner_quiet_s
        self.owner: OwnerTookOver | None = None  # another client took over: the owner is in control
        self._hand_back_at: float | None = None  # the owner's queue ran out: control comes back then
        self.mood = NO_FACE
        self.confidence = 0.0
        self.privacy = False
        self.paused = False
        self.playing: Playing | None = None
        self.mood_changes = 0
        self.tracks_started = 0
        self._emotion_of: dict[str, str] = {}  # track URI -> the mood it was queued for
        self._expected_change: str | None = None  # "skip" or "switch": the next track change is ours, not an end
        self.queue: tuple[Track, ...] = ()  # the speaker's queue as it asked the backend to play it
        self._index: int | None = None  # which of `queue` plays (None: nothing of the speaker's queue plays)
        self._played_s = 0.0  # how long the current track played until `_running_since` (or until paused)
        self._running_since: float | None = None  # when it last started or resumed (None: paused or stopped)
        self._pause_undo: tuple[float, float | None] | None = None  # the position before a pause, until it worked
        self._lost_at: float | None = None  # when the backend was first found unreachable since it last answered
        self._camera_off_hours = False  # inside quiet hours that turn the camera off (as last told by `quiet_hours`)
        self._privacy_by_quiet_hours = False  # privacy is on because quiet hours turned it on
        self._owner_chose_in_window = False  # the owner set privacy within the current camera-off quiet window

    def status(self) -> dict[str, str | float | bool | int]:
        """What `moodspeaker status`, STATUS= and Home Assistant show of the session."""
        track = self.playing.track if self.playing else None
        return {"mood": self.mood, "confidence": round(self.confidence, 3), "track": track.label if track else "",
                "paused": self.paused, "control": f"owner ({self.owner.what} from another client)" if self.owner else "speaker",
                "privacy": self.privacy, "mood_changes": self.mood_changes, "tracks_started": self.tracks_started,
                "title": track.title if track else ""}

    def reconfigure(self, policy: MoodPolicy, early_skip_s: float) -> None:
        """A reload's new rules; what plays, privacy and the counters stay (see MoodPolicy.carry_over)."""
        policy.carry_over(self.policy)
        self.policy, self.early_skip_s = policy, early_skip_s

    def on_mood(self, mood: str, confidence: float, now: float) -> list[Command]:
        if self.privacy:
            return []
        self.confidence = confidence
        if mood == self.mood:
            return []
        self.mood = mood
        self.mood_changes += 1
        return self._switch(self.policy.on_mood(mood, now))

    def tick(self, now: float) -> list[Command]:
        """Called at least every half second: a mood that waited out the cool-down plays now; after the owner's
        queue ran out and `owner_quiet_s` passed in silence, control comes back."""
        if self._hand_back_at is not None and now >= self._hand_back_at:
            return self.resume(now)
        return self._switch(self.policy.tick(now))

    def on_owner(self, took_over: OwnerTookOver) -> list[Command]:
        """Another client took over: the speaker yields (see the module docstring)."""
        self.owner, self._hand_back_at = took_over, None
        self._expected_change, self._emotion_of = None, {}  # what plays now is not ours to rate
        self.queue, self._index, self._lost_at = (), None, None  # nor ours to restore
        if self.playing is not None:
            self.playing = Playing(self.playing.track, None, self.playing.started_at)
        self.paused = took_over.what == "paused"
        return []

    def resume(self, now: float) -> list[Command]:
        """The owner hands back (a button press, `moodspeaker resume`, or the quiet after their queue ended): the
        current mood's music starts at once."""
        if self.owner is None:
            return []
        self.owner, self._hand_back_at = None, None
        return self._switch(self.policy.on_queue_end(now))

    def on_track(self, track: Track | None, now: float, wall: float) -> list[Command]:
        """The backend's current track changed to `track` (None: playback stopped, the queue ran out)."""
        ended, reason = self.playing, self._expected_change
        if track is not None and ended is not None and reason is None and track.uri == ended.track.uri:
            return []  # the same track reported again (a reconnect, a new backend after a reload), not a change
        self._expected_change, self._lost_at = None, None
        commands: list[Command] = []
        if ended is not None and reason is None and ended.emotion is not None:
            commands.append(Record(ended.emotion, ended.track.uri, FULL_PLAY, wall))
        if track is None:
            self.playing, self._index, self._running_since = None, None, None
            if self.owner is not None:  # the owner's queue ran out: theirs until the quiet has passed
                self._hand_back_at = now + self.owner_quiet_s
                return commands
            return commands + self._switch(self.policy.on_queue_end(now))
        self._hand_back_at = None
        self.playing = Playing(track, self._emotion_of.get(track.uri), now)
        self._index = self._find(track.uri)
        self._played_s, self._running_since = 0.0, None if self.paused else now
        self.tracks_started += 1
        return commands

    def _find(self, uri: str) -> int | None:
        """Where `uri` is in the speaker's queue: the first place after the track before, else the first."""
        places = [i for i, t in enumerate(self.queue) if t.uri == uri]
        after = [i for i in places if self._index is None or i > self._index]
        return (after or places or [None])[0]

    def backend_lost(self, now: float) -> None:
        """The backend could not be reached: music on it stopped by now, at the latest."""
        if self._lost_at is None:
            self._lost_at = now

    def returned(self, now: float) -> list[Command]:
        """The backend is back, or new after a reload: what it should play, if anything is the speaker's to play
        (a mood's tracks queued after the current one included: a reload must not lose them)."""
        lost_at, self._lost_at = self._lost_at, None
        if self.owner is not None or self._index is None:
            return []
        played = self._played(lost_at if lost_at is not None else now)
        self._played_s, self._running_since = played, None if self.paused else now
        return [Restore(self.queue, self._index, played, self.paused)]

    def _played(self, at: float) -> float:
        running = max(0.0, at - self._running_since) if self._running_since is not None else 0.0
        return self._played_s + running

    def _set_paused(self, paused: bool, now: float) -> None:
        if paused and self._running_since is not None:
            self._played_s, self._running_since = self._played(now), None
        elif not paused and self._running_since is None and self.playing is not None:
            self._running_since = now
        self.paused = paused

    def on_action(self, action: ButtonAction, now: float, wall: float) -> list[Command]:
        if self.owner is not None and action != ButtonAction.PRIVACY:  # a press hands back; the owner's track is
            return self.resume(now)                                      # not rated
        playing = self.playing
        if action == ButtonAction.SKIP:
            self._expected_change = "skip"
            if playing is not None and playing.emotion is not None:
                event = skip_event(now - playing.started_at, self.early_skip_s)
                return [Record(playing.emotion, playing.track.uri, event, wall), Next()]
            return [Next()]
        if action == ButtonAction.PAUSE:
            self._pause_undo = (self._played_s, self._running_since)
            self._set_paused(not self.paused, now)
            return [TogglePause()]
        if action == ButtonAction.LIKE:
            if playing is None:
                return []
            record: list[Command] = [Record(playing.emotion, playing.track.uri, LIKE, wall)] if playing.emotion else []
            return [*record, Like(playing.track)]
        return self.set_privacy(not self.privacy)

    def set_privacy(self, on: bool) -> list[Command]:
        """The owner's choice (over SSH, Home Assistant, the button): a command only if it changes privacy."""
        self._privacy_by_quiet_hours = False
        self._owner_chose_in_window = self._camera_off_hours
        return self._privacy(on)

    def quiet_hours(self, camera_off: bool) -> list[Command]:
        """Called every tick: whether quiet hours want the camera off now (see the precedence above)."""
        began, self._camera_off_hours = camera_off and not self._camera_off_hours, camera_off
        if not camera_off:
            self._owner_chose_in_window = False
            if self._privacy_by_quiet_hours:
                self._privacy_by_quiet_hours = False
                return self._privacy(False)
            return []
        if began and not self._owner_chose_in_window and not self.privacy:
            self._privacy_by_quiet_hours = True
            return self._privacy(True)
        return []

    def _privacy(self, on: bool) -> list[Command]:
        if on == self.privacy:
            return []
        self.privacy = on
        return [SetPrivacy(on)]

    def queued(self, switch: Switch, tracks: list[Track]) -> None:
        """The service carried out `switch` with these tracks in this order."""
        track_uris = [t.uri for t in tracks]
        if switch.at_once or self.playing is None:  # the first plays now: ours to restore before it is reported
            self.queue, self._index, self._played_s, self._running_since = tuple(tracks), 0, 0.0, None
        else:  # after the current track: the backend's queue up to it, then these
            head = self.queue[:self._index + 1] if self._index is not None else (self.playing.track,)
            self.queue, self._index = head + tuple(tracks), len(head) - 1
        emotion = switch.selection.emotion
        if switch.at_once:
            self._emotion_of = dict.fromkeys(track_uris, emotion)
            self._expected_change = "switch" if self.playing else None
            self.paused, self._pause_undo = False, None
        else:
            keep = {self.playing.track.uri: self.playing.emotion} if self.playing and self.playing.emotion else {}
            self._emotion_of = {**dict.fromkeys(track_uris, emotion), **keep}

    def failed(self, command: Command, transient: bool) -> None:
        """The service could not carry out `command`; `transient`: the backend may work again by itself."""
        if isinstance(command, PlaySwitch) and transient:
            self.policy.failed(command.switch)  # retried after the cool-down (a lasting error needs the owner)
        elif isinstance(command, Next):
            self._expected_change = None
        elif isinstance(command, TogglePause):
            self.paused = not self.paused
            if self._pause_undo is not None:
                self._played_s, self._running_since = self._pause_undo

    def _switch(self, switch: Switch | None) -> list[Command]:
        """A switch becomes a command, unless the owner is in control (the policy still follows the mood, so the
        music that starts when control comes back is the mood's of then)."""
        return [] if switch is None or self.owner is not None else [PlaySwitch(switch)]
