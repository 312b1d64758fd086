"""The bundled demo clip (dev/clip/clip.mp4, package data) and its ground truth (clip.json), and scoring against it.

The ground truth lists segments (start, end, mood: an emotion or no_face) and, per frame, the pasted
face's [x, y, side] or null. Scores: `face_accuracy` (per frame, the largest face's top label; a face
segment frame with no face found is wrong, a no-face frame is right only when nothing was found),
`mood_accuracy` (per frame, the smoothed mood) and `segments_right` (segments whose smoothed mood over
their second half is mostly the true one: the smoother needs a moment to settle after each change); and as
an owner counts on a clip of many faces (scripts/make_sofa_clips.py): `faces_reached` of `faces` (face
segments in which the smoothed mood was the true one at some frame), `wrong_moods` (changes to an emotion
that is neither the true one nor, within `LAG_S`, the one just before: a late arrival is not wrong) and
`first_mood_s` (seconds from the first face to the first emotion shown: a cold start). Given the boxes the
pipeline found, per box: `boxes` (frames with a box), `boxes_on_no_face` (a box that lies on no face: in a frame
without one, its centre outside the pasted face, or its side under half the face's, such as an eye or a mouth
inside it), `boxes_on_no_face_counted` (those whose crop reached the smoother: each can show a wrong mood) and
`boxes_misframed` (on the face but over `ON_FACE_MAX` times its side: the face and much of what is around it).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from moodspeaker.core.domain import Box
from moodspeaker.core.mood import MOODS, NO_FACE
from moodspeaker.errors import UsageError

DEMO_DIR = Path(__file__).resolve().parent / "clip"  # installed with the package, so `moodspeaker bench` runs anywhere
DEFAULT_TRUTH = DEMO_DIR / "clip.json"
LAG_S = 1.0  # a mood that arrives this long after its face left is late, not wrong
ON_FACE_MAX = 1.6  # a box over this many times the face's side is mostly not face (the face fills under 40%)


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
    face_boxes: tuple[tuple[int, int, int] | None, ...] = ()  # per frame: the pasted face's x, y, side (or none)

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
                          height=int(raw["height"]), frames=int(raw["frames"]), segments=segments,
                          face_boxes=tuple(None if b is None else (int(b[0]), int(b[1]), int(b[2]))
                                           for b in raw.get("face_boxes", ())))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ClipError(f"{path}: not a demo clip ground truth file ({exc!r})") from None
    if unknown := [s.mood for s in segments if s.mood not in MOODS]:
        raise ClipError(f"{path}: unknown moods {unknown}")
    if not truth.video.is_file():
        raise ClipError(f"{truth.video}: the demo clip named by {path.name} is missing")
    return truth


def box_placement(box: Box, face: tuple[int, int, int] | None) -> str:
    """Where a found box lies against the pasted face (x, y, side): "on face" (its centre inside the face, its side
    between half and ON_FACE_MAX times the face's: a detector's box and the peer's padded one), "misframed" (centred
    on the face but larger) or "no face" (no face in the frame, the centre outside it, or an eye or a mouth)."""
    if face is None:
        return "no face"
    x, y, side = face
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    if not (x <= cx <= x + side and y <= cy <= y + side) or max(box.w, box.h) < side / 2:
        return "no face"
    return "on face" if max(box.w, box.h) <= ON_FACE_MAX * side else "misframed"


def score_boxes(truth: ClipTruth, frame_size: tuple[int, int], times: list[float], boxes: list[Box | None],
                counted: list[bool]) -> dict:
    """Per box found (`boxes`, in a frame of `frame_size` (width, height)), how many lie on no face and how many
    are misframed; `counted`: whether each frame's crop reached the smoother with any weight."""
    if not truth.face_boxes:
        raise ClipError(f"{truth.video}: the clip's description has no face_boxes to score boxes against")
    k = frame_size[0] / truth.width
    placed: list[str | None] = [None] * len(boxes)
    for i, (t, box) in enumerate(zip(times, boxes, strict=True)):
        if box is None:
            continue
        face = truth.face_boxes[min(round(t * truth.fps), len(truth.face_boxes) - 1)]
        placed[i] = box_placement(box, None if face is None else (round(face[0] * k), round(face[1] * k),
                                                                   round(face[2] * k)))
    n = sum(b is not None for b in boxes)
    no_face = placed.count("no face")
    return {"boxes": n, "boxes_on_no_face": no_face, "boxes_on_no_face_rate": round(no_face / max(n, 1), 4),
            "boxes_on_no_face_counted": sum(p == "no face" and c for p, c in zip(placed, counted, strict=True)),
            "boxes_misframed": placed.count("misframed")}


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
