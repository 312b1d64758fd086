"""The smoother as pure logic: a scripted timeline of probabilities in, mood events out."""

from __future__ import annotations

import numpy as np
import pytest

from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.mood import NO_FACE, MoodEvent
from moodspeaker.core.smoother import Smoother, SmootherParams

FPS = 10
DT = 1.0 / FPS


def peaked(emotion: str, p: float = 0.8, labels: tuple[str, ...] = EMOTIONS) -> np.ndarray:
    """Probabilities with `p` on one emotion and the rest spread evenly."""
    out = np.full(len(labels), (1.0 - p) / (len(labels) - 1))
    out[labels.index(emotion)] = p
    return out


def feed(smoother: Smoother, t0: float, seconds: float, probs: np.ndarray | None) -> list[MoodEvent]:
    """Frames at FPS from t0 for `seconds`; returns the events emitted."""
    events = []
    for i in range(round(seconds * FPS)):
        if (event := smoother.update(t0 + i * DT, probs)) is not None:
            events.append(event)
    return events


def moods(events: list[MoodEvent]) -> list[tuple[str, str]]:
    return [(e.kind, e.mood) for e in events]


def changes(events: list[MoodEvent]) -> list[str]:
    return [e.mood for e in events if e.kind == "mood"]


def test_a_steady_emotion_becomes_the_mood_after_the_dwell_time() -> None:
    s = Smoother(EMOTIONS, SmootherParams(ema_tau_s=0.0, dwell_s=1.0, heartbeat_s=100))
    events = feed(s, 0.0, 3.0, peaked("happy"))
    assert changes(events) == ["happy"]
    change = next(e for e in events if e.kind == "mood")
    assert change.t == pytest.approx(1.0)  # leader from t=0, dwell 1 s
    assert change.confidence == pytest.approx(0.8)
    assert change.probs["happy"] == pytest.approx(0.8)
    assert set(change.probs) == set(EMOTIONS)
    assert s.mood == "happy"


def test_a_blip_shorter_than_the_dwell_time_does_not_change_the_mood() -> None:
    s = Smoother(EMOTIONS, SmootherParams(ema_tau_s=0.0, dwell_s=1.0, heartbeat_s=100))
    feed(s, 0.0, 2.0, peaked("happy"))
    blip = feed(s, 2.0, 0.5, peaked("sad"))
    assert changes(blip) == []
    after = feed(s, 2.5, 2.0, peaked("happy"))
    assert changes(after) == []
    assert s.mood == "happy"


def test_dwell_restarts_when_the_challenger_loses_the_lead() -> None:
    s = Smoother(EMOTIONS, SmootherParams(ema_tau_s=0.0, dwell_s=1.0, heartbeat_s=100))
    feed(s, 0.0, 2.0, peaked("happy"))
    events = feed(s, 2.0, 0.8, peaked("sad")) + feed(s, 2.8, 0.1, peaked("happy")) + feed(s, 2.9, 0.8, peaked("sad"))
    assert changes(events) == []  # 0.8 s + 0.8 s of sad, never 1 s in a row
    events = feed(s, 3.7, 0.5, peaked("sad"))
    assert changes(events) == ["sad"]


def test_hysteresis_a_challenger_must_beat_the_current_mood_by_the_margin() -> None:
    s = Smoother(EMOTIONS, SmootherParams(ema_tau_s=0.0, dwell_s=0.5, margin=0.2, min_confidence=0.3, heartbeat_s=100))
    feed(s, 0.0, 1.0, peaked("happy"))
    assert s.mood == "happy"
    close = np.zeros(len(EMOTIONS))
    close[EMOTIONS.index("sad")], close[EMOTIONS.index("happy")] = 0.5, 0.35
    close[EMOTIONS.index("neutral")] = 0.15
    assert changes(feed(s, 1.0, 3.0, close)) == []  # sad leads, but only by 0.15 < 0.2
    clear = close.copy()
    clear[EMOTIONS.index("sad")], clear[EMOTIONS.index("happy")] = 0.6, 0.25
    assert changes(feed(s, 4.0, 3.0, clear)) == ["sad"]  # leads by 0.35


def test_below_the_confidence_threshold_nothing_takes_over() -> None:
    s = Smoother(EMOTIONS, SmootherParams(ema_tau_s=0.0, dwell_s=0.5, min_confidence=0.5, heartbeat_s=100))
    assert changes(feed(s, 0.0, 5.0, peaked("fear", p=0.45))) == []
    assert s.mood == NO_FACE
    assert changes(feed(s, 5.0, 2.0, peaked("fear", p=0.55))) == ["fear"]


def test_a_low_light_crop_needs_more_confidence_to_set_the_mood() -> None:
    """On dim crops the model leans towards "sad": what would set it in full light does not in a lamp-lit room."""
    params = SmootherParams(ema_tau_s=0.0, dwell_s=0.5, min_confidence=0.4, dim_confidence=0.0, low_light_confidence=0.2,
                            heartbeat_s=100)
    full, lamp, half = Smoother(EMOTIONS, params), Smoother(EMOTIONS, params), Smoother(EMOTIONS, params)
    sad = peaked("sad", p=0.55)
    for i in range(30):
        full.update(i * DT, sad)
        lamp.update(i * DT, sad, low_light=1.0)  # needs 0.6
        half.update(i * DT, sad, low_light=0.5)  # needs 0.5
    assert (full.mood, lamp.mood, half.mood) == ("sad", NO_FACE, "sad")
    assert changes([e for i in range(30) if (e := lamp.update(3.0 + i * DT, peaked("sad", p=0.65), low_light=1.0))]) \
        == ["sad"]
    happy = Smoother(EMOTIONS, params)  # a class the model does not over-call on dim crops needs no more
    assert changes([e for i in range(30) if (e := happy.update(i * DT, peaked("happy", p=0.55), low_light=1.0))]) \
        == ["happy"]


def test_a_dim_or_distant_crop_needs_more_confidence_for_every_mood() -> None:
    """What the model reads from a dim or a small crop is less often right, whatever it reads: a mood needs
    dim_confidence times low_light and far_confidence times far more, the two added up."""
    params = SmootherParams(ema_tau_s=0.0, dwell_s=0.5, min_confidence=0.4, dim_confidence=0.15, far_confidence=0.1,
                            low_light_confidence=0.0, heartbeat_s=100)

    def mood_after(p: float, **crop: float) -> str:
        s = Smoother(EMOTIONS, params)
        for i in range(30):
            s.update(i * DT, peaked("happy", p=p), **crop)
        return s.mood

    assert mood_after(0.45) == "happy"  # needs 0.4
    assert mood_after(0.45, far=1.0) == NO_FACE  # needs 0.5
    assert mood_after(0.52, far=1.0) == "happy"
    assert mood_after(0.52, low_light=1.0) == NO_FACE  # needs 0.55
    assert mood_after(0.6, low_light=1.0) == "happy"
    assert mood_after(0.6, low_light=1.0, far=1.0) == NO_FACE  # needs 0.65
    assert mood_after(0.6, low_light=0.5, far=0.5) == "happy"  # needs 0.525
    with pytest.raises(ValueError, match="far"):
        Smoother(EMOTIONS, params).update(0.0, peaked("happy"), far=1.5)


def test_confidence_extras_that_ask_for_more_than_certainty_are_refused() -> None:
    with pytest.raises(ValueError, match="must not exceed 1"):
        SmootherParams(min_confidence=0.6, dim_confidence=0.2, far_confidence=0.1, low_light_confidence=0.2)
    with pytest.raises(ValueError, match="far_confidence must be >= 0"):
        SmootherParams(far_confidence=-0.1)


def test_the_average_filters_single_frame_noise() -> None:
    s = Smoother(EMOTIONS, SmootherParams(ema_tau_s=1.0, dwell_s=0.5, heartbeat_s=100))
    feed(s, 0.0, 4.0, peaked("neutral"))
    assert s.mood == "neutral"
    # every third frame a confident "angry": the raw argmax flips, the average never does
    t, events = 4.0, []
    for i in range(60):
        probs = peaked("angry", p=0.95) if i % 3 == 0 else peaked("neutral")
        if (event := s.update(t, probs)) is not None:
            events.append(event)
        t += DT
    assert changes(events) == []
    assert s.probabilities()["neutral"] > s.probabilities()["angry"]


def test_the_average_uses_elapsed_time_not_frame_count() -> None:
    slow = Smoother(EMOTIONS, SmootherParams(ema_tau_s=1.0))
    fast = Smoother(EMOTIONS, SmootherParams(ema_tau_s=1.0))
    for s, fps in ((slow, 2), (fast, 20)):
        s.update(0.0, peaked("neutral"))
        for i in range(1, 2 * fps + 1):
            s.update(i / fps, peaked("happy"))
    assert slow.probabilities()["happy"] == pytest.approx(fast.probabilities()["happy"], abs=0.03)


def test_no_face_for_long_enough_decays_to_no_face_and_resets_the_average() -> None:
    s = Smoother(EMOTIONS, SmootherParams(ema_tau_s=0.0, dwell_s=0.5, no_face_after_s=3.0, heartbeat_s=100))
    feed(s, 0.0, 2.0, peaked("surprise"))
    assert s.mood == "surprise"
    gap = feed(s, 2.0, 2.5, None)
    assert changes(gap) == []  # 2.6 s since the last face
    gap = feed(s, 4.5, 1.0, None)
    assert changes(gap) == [NO_FACE]
    decay = next(e for e in gap if e.kind == "mood")
    assert decay.t == pytest.approx(1.9 + 3.0)
    assert decay.confidence == 0.0
    assert decay.probs == {}
    assert changes(feed(s, 5.5, 5.0, None)) == []  # decays once
    back = feed(s, 10.5, 1.0, peaked("surprise"))
    assert changes(back) == ["surprise"]  # the new face goes through the dwell time again
    assert next(e for e in back if e.kind == "mood").t == pytest.approx(11.0)


def test_a_short_gap_keeps_the_mood() -> None:
    s = Smoother(EMOTIONS, SmootherParams(ema_tau_s=0.0, dwell_s=0.5, no_face_after_s=3.0, heartbeat_s=100))
    feed(s, 0.0, 1.0, peaked("sad"))
    events = feed(s, 1.0, 2.0, None) + feed(s, 3.0, 1.0, peaked("sad"))
    assert changes(events) == []
    assert s.mood == "sad"


def test_heartbeats_carry_the_current_mood_at_the_configured_interval() -> None:
    s = Smoother(EMOTIONS, SmootherParams(ema_tau_s=0.0, dwell_s=0.5, heartbeat_s=2.0))
    events = feed(s, 0.0, 6.05, peaked("happy"))
    assert moods(events) == [("heartbeat", NO_FACE), ("mood", "happy"), ("heartbeat", "happy"), ("heartbeat", "happy")]
    assert [e.t for e in events] == pytest.approx([0.0, 0.5, 2.5, 4.5])
    assert [e.seq for e in events] == [1, 2, 3, 4]


def test_heartbeats_continue_without_a_face() -> None:
    s = Smoother(EMOTIONS, SmootherParams(heartbeat_s=1.0))
    events = feed(s, 0.0, 3.1, None)  # frames at 0.0 .. 3.0
    assert moods(events) == [("heartbeat", NO_FACE)] * 4


def test_model_label_order_is_respected() -> None:
    labels = ("neutral", "happy", "sad")
    s = Smoother(labels, SmootherParams(ema_tau_s=0.0, dwell_s=0.0, heartbeat_s=100))
    event = s.update(0.0, np.array([0.1, 0.2, 0.7]))
    assert event is not None and (event.kind, event.mood) == ("mood", "sad")
    assert event.probs == pytest.approx({"neutral": 0.1, "happy": 0.2, "sad": 0.7})


def test_events_survive_the_wire_format() -> None:
    s = Smoother(EMOTIONS, SmootherParams(ema_tau_s=0.0, dwell_s=0.0))
    event = s.update(12.5, peaked("disgust"), fps=4.9)
    assert event is not None
    assert MoodEvent.from_bytes(event.to_bytes()) == MoodEvent(
        kind="mood", mood="disgust", confidence=0.8, t=12.5, seq=1, probs=pytest.approx(event.probs, abs=1e-4), fps=4.9)


@pytest.mark.parametrize("kwargs", [{"min_confidence": 1.5}, {"margin": -0.1}, {"dwell_s": -1}, {"heartbeat_s": 0},
                                    {"ema_tau_s": -0.5}, {"no_face_after_s": -2}])
def test_bad_parameters_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SmootherParams(**kwargs)


def test_bad_labels_and_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="labels"):
        Smoother(("happy", "bored"))
    with pytest.raises(ValueError, match="probabilities"):
        Smoother(EMOTIONS).update(0.0, np.array([0.5, 0.5]))


def test_skipped_crops_never_flip_the_mood_and_keep_the_face_present() -> None:
    smoother = Smoother(EMOTIONS)
    feed(smoother, 0.0, 3.0, peaked("happy"))
    assert smoother.mood == "happy"
    events = [smoother.update(3.0 + i * DT, peaked("sad", 0.95), weight=0.0) for i in range(round(20 * FPS))]
    assert smoother.mood == "happy" and changes([e for e in events if e]) == []  # 20 s of untrusted "sad": no change
    assert smoother.probabilities()["happy"] > 0.7  # the average did not move


def test_a_low_weight_crop_moves_the_average_less() -> None:
    full, light = Smoother(EMOTIONS), Smoother(EMOTIONS)
    for smoother, weight in ((full, 1.0), (light, 0.3)):
        feed(smoother, 0.0, 2.0, peaked("happy"))
        smoother.update(2.0, peaked("sad"), weight=weight)
    assert 0 < light.probabilities()["sad"] < full.probabilities()["sad"]
    with pytest.raises(ValueError, match="weight"):
        full.update(3.0, peaked("sad"), weight=1.5)
