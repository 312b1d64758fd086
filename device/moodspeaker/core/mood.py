"""Mood events: what the vision process tells the player process (JSON datagrams, versioned).

A mood is an emotion the smoother has settled on, or NO_FACE when nobody has been seen for a while.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from moodspeaker.core.checks import finite_number
from moodspeaker.core.emotions import EMOTIONS

PROTOCOL_VERSION = 1
NO_FACE = "no_face"
MOODS: tuple[str, ...] = (*EMOTIONS, NO_FACE)
MAX_DATAGRAM = 4096  # bytes; anything larger is rejected unread
EVENT_KINDS = ("mood", "heartbeat")


class MalformedEvent(ValueError):
    """A datagram that is not a valid mood event; the receiver drops it with one log line. The parser raises
    nothing else, whatever the bytes (core imports nothing outside core, so this is core's error, not errors.py's)."""


@dataclass(frozen=True)
class MoodEvent:
    kind: str  # "mood" on a change, "heartbeat" periodically (carries the current mood)
    mood: str  # one of MOODS
    confidence: float  # smoothed probability of `mood`, 0..1 (0 for no_face)
    t: float  # sender's monotonic seconds
    seq: int = 0
    probs: dict[str, float] = field(default_factory=dict)  # smoothed per-emotion probabilities
    fps: float = 0.0

    def to_bytes(self) -> bytes:
        body = {"v": PROTOCOL_VERSION, "kind": self.kind, "mood": self.mood, "confidence": round(self.confidence, 4),
                "t": round(self.t, 3), "seq": self.seq, "probs": {k: round(v, 4) for k, v in self.probs.items()},
                "fps": round(self.fps, 2)}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> MoodEvent:
        """Parse and validate one datagram; raises MalformedEvent saying what is wrong."""
        if len(data) > MAX_DATAGRAM:
            raise MalformedEvent(f"datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
        try:
            body: Any = json.loads(data.decode("utf-8"))
        except RecursionError:  # e.g. 4000 bytes of "[[[[": deeper than the parser's stack
            raise MalformedEvent("not JSON: nested too deeply") from None
        except ValueError as exc:  # not UTF-8, not JSON, an integer too long to convert
            raise MalformedEvent(f"not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise MalformedEvent("not a JSON object")
        if body.get("v") != PROTOCOL_VERSION:
            raise MalformedEvent(f"unsupported protocol version {body.get('v')!r} (this side speaks {PROTOCOL_VERSION})")
        kind, mood = body.get("kind"), body.get("mood")
        if kind not in EVENT_KINDS:
            raise MalformedEvent(f"unknown kind {kind!r}")
        if mood not in MOODS:
            raise MalformedEvent(f"unknown mood {mood!r}")
        conf, t, seq, fps = body.get("confidence"), body.get("t"), body.get("seq", 0), body.get("fps", 0.0)
        if not finite_number(conf) or not 0.0 <= conf <= 1.0:
            raise MalformedEvent(f"confidence must be a number in 0..1, got {conf!r}")
        if not finite_number(t) or not finite_number(fps) or not isinstance(seq, int) or isinstance(seq, bool):
            raise MalformedEvent("t and fps must be finite numbers and seq an integer")
        probs = body.get("probs", {})
        if not isinstance(probs, dict) or any(k not in EMOTIONS or not finite_number(v) for k, v in probs.items()):
            raise MalformedEvent("probs must map emotion names to numbers")
        return cls(kind=kind, mood=mood, confidence=float(conf), t=float(t), seq=seq,
                   probs={k: float(v) for k, v in probs.items()}, fps=float(fps))

