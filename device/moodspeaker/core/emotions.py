"""The emotion vocabulary, in FER2013 class order (the order of every model's output)."""

from __future__ import annotations

from enum import StrEnum


class Emotion(StrEnum):
    ANGRY = "angry"
    DISGUST = "disgust"
    FEAR = "fear"
    HAPPY = "happy"
    SAD = "sad"
    SURPRISE = "surprise"
    NEUTRAL = "neutral"


EMOTIONS: tuple[str, ...] = tuple(e.value for e in Emotion)
