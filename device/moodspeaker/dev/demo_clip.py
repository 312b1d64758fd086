"""The bundled demo clip (dev/clip/clip.mp4, package data) and its ground truth (clip.json), and scoring against it.

The ground truth lists segments (start, end, mood: an emotion or no_face) and, per frame, the pasted
face's [x, y, side] or null. Scores: `face_accuracy` (per frame, the largest face's top label; a face
segment frame with no face found is wrong, a no-face frame is right only when nothing was found),
`mood_accuracy` (per frame, the smoothed mood) and `segments_right` (segments whose smoothed mood over
their second half is mostly the true one: the smoother needs a moment to settle after each change); and as
an owner counts on a clip of many faces (scripts/make_sofa_clips.py): `faces_reached` of `faces` (face
segments in which the smoothed mood was the true one at some frame), `wrong_moods` (changes to an emotion
that is neither the true one nor, within `LAG_S`, the one just before: a late arrival is not wrong) and
`first_mood_s` (seconds from the first face to the first emotion shown: a cold start).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from moodspeaker.core.mood import MOODS, NO_FACE
from moodspeaker.errors import UsageError

DEMO_DIR = Path(__file__).resolve().parent / "clip"  # installed with the package, so `moodspeaker bench` runs anywhere
DEFAULT_TRUTH = DEMO_DIR / "clip.json"
LAG_S = 1.0  # a mood that arrives this long after its face left is late, not wrong


class ClipError(UsageError):
    pass


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    mood: str


@dataclass(frozen=True)
class ClipTruth:
    video: Path
    fps: float
    width: int
    height: int
    frames: int
    segments: tuple[Segment, ...]

    def mood_at(self, t: float) -> str:
        for seg in self.segments:
            if seg.start <= t < seg.end:
                return seg.mood
        return NO_FACE


def load_clip_truth(path: Path = DEFAULT_TRUTH) -> ClipTruth:
    """Read clip.json; the video it names lies beside it."""
    if not path.is_file():
        raise ClipError(f"{path}: demo clip ground truth not found (regenerate with scripts/make_demo_clip.py)")
    try:
        raw = json.loads(path.read_text())
        segments = tuple(Segment(float(s["start"]), float(s["end"]), str(s["mood"])) for s in raw["segments"])
        truth = ClipTruth(video=path.parent / raw["video"], fps=float(raw["fps"]), width=int(raw["width"]),
                          height=int(raw["height"]), frames=int(raw["frames"]), segments=segments)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ClipError(f"{path}: not a demo clip ground truth file ({exc!r})") from None
    if unknown := [s.mood for s in segments if s.mood not in MOODS]:
        raise ClipError(f"{path}: unknown moods {unknown}")
    if not truth.video.is_file():
        raise ClipError(f"{truth.video}: the demo clip named by {path.name} is missing")
    return truth


def score(truth: ClipTruth, times: list[float], face_labels: list[str], moods: list[str]) -> dict:
    """Per-frame `face_labels` (top label of the largest face, or no_face) and smoothed `moods` vs the truth."""
    if not times:
        raise ClipError("no frames to score")
    expected = [truth.mood_at(t) for t in times]
    settled: dict[Segment, Counter[str]] = {seg: Counter() for seg in truth.segments}
    for t, mood in zip(times, moods, strict=True):
        for seg in truth.segments:
            if (seg.start + seg.end) / 2 <= t < seg.end:
                settled[seg][mood] += 1
    right = [seg for seg, counts in settled.items() if counts and counts.most_common(1)[0][0] == seg.mood]
    faces = [seg for seg in truth.segments if seg.mood != NO_FACE]
    reached = {seg for seg in faces for t, mood in zip(times, moods, strict=True) if seg.start <= t < seg.end
               and mood == seg.mood}
    changes = _changes(times, moods)
    wrong = [t for t, mood in changes if mood != NO_FACE and mood not in (truth.mood_at(t), truth.mood_at(t - LAG_S))]
    first_face = min((seg.start for seg in faces), default=None)
    first_mood = next((t for t, mood in changes if mood != NO_FACE), None)
    return {
        "face_accuracy": round(sum(a == b for a, b in zip(face_labels, expected, strict=True)) / len(times), 4),
        "mood_accuracy": round(sum(a == b for a, b in zip(moods, expected, strict=True)) / len(times), 4),
        "segments_right": len(right),
        "segments": len(truth.segments),
        "faces": len(faces),
        "faces_reached": len(reached),
        "wrong_moods": len(wrong),
        "first_mood_s": None if first_mood is None or first_face is None else round(first_mood - first_face, 2),
        "mood_changes": changes,
    }


def _changes(times: list[float], moods: list[str]) -> list[list]:
    """[[t, mood], ...] at each change of the smoothed mood (starting from no_face)."""
    out, last = [], NO_FACE
    for t, mood in zip(times, moods, strict=True):
        if mood != last:
            out.append([round(t, 2), mood])
            last = mood
    return out


@dataclass(frozen=True)
class Verdict:
    """Which of the clip's segments the speaker's mood reached, against what the model's recall predicts."""

    found: tuple[Segment, ...]
    missed: tuple[Segment, ...]
    expected_found: float  # the model card's validation recall summed over the face segments, 1 per empty one

    @property
    def as_expected(self) -> bool:
        """At most one miss more than the recall predicts (rounded up): a face read wrongly is a missed mood."""
        return len(self.missed) <= math.ceil(len(self.found) + len(self.missed) - self.expected_found) + 1

    def line(self) -> str:
        total = len(self.found) + len(self.missed)
        missed = f" (missed {', '.join(s.mood for s in self.missed)})" if self.missed else ""
        judgement = ("so this is as expected" if self.as_expected else
                     "so it missed more than the model's accuracy explains: is the machine busy? try --speed 1")
        return (f"found {len(self.found)} of {total}{missed}; the model finds about {self.expected_found:.1f} of {total} "
                f"on average (its recall on validation), {judgement}")


def verdict(truth: ClipTruth, changes: list[tuple[float, str]], recall: dict[str, float]) -> Verdict:
    """`changes`: (clip time, mood) of each mood event, in order; the speaker starts at no_face. A segment is
    found when the speaker's mood is the segment's at some moment inside it."""
    found, missed = [], []
    for seg in truth.segments:
        before = [mood for t, mood in changes if t <= seg.start]
        during = [mood for t, mood in changes if seg.start < t < seg.end]
        (found if seg.mood in [before[-1] if before else NO_FACE, *during] else missed).append(seg)
    expected = sum(1.0 if seg.mood == NO_FACE else recall.get(seg.mood, 0.0) for seg in truth.segments)
    return Verdict(tuple(found), tuple(missed), expected)
