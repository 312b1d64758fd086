"""Property-based tests (hypothesis) of the parsers that take outside input: mood datagrams (core/mood.py), the
config file (config.py), model cards (model_card.py, model_store.golden_spec) and Spotify's answers. Whatever the input (arbitrary
JSON or TOML values, huge and non-finite numbers, deep nesting, odd types, raw bytes), the only outcomes are a
value or our error: MalformedEvent for a datagram (core's own), ConfigError, ModelError. Anything else (an
OverflowError, RecursionError, TypeError) would be an "internal error" or a dead daemon.

Each suite is bounded (max_examples) so that all of them together take a few seconds in the full suite.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moodspeaker.config import Config, _sections, parse_config
from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.mood import MOODS, MalformedEvent, MoodEvent
from moodspeaker.errors import ConfigError, ModelError
from moodspeaker.model_card import CARD_FORMAT, ModelCard, load_card
from moodspeaker.model_store import GoldenSpec, golden_spec

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Numbers a hostile sender would try: huge integers (beyond a float), huge, tiny and non-finite floats.
numbers = st.one_of(st.integers(), st.integers(min_value=10**300, max_value=10**400), st.floats(),
                    st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -1e308, 5e-324, 0, -1, 2**31, 2**63]))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


def _deeply_nested(depth: int, opener: str) -> str:
    return opener * depth


# --- mood datagrams ---

def _parse_datagram(data: bytes) -> MoodEvent | None:
    try:
        return MoodEvent.from_bytes(data)
    except MalformedEvent:
        return None


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


datagram_fields = st.fixed_dictionaries(
    {"v": st.one_of(st.just(1), json_values), "kind": st.one_of(st.sampled_from(["mood", "heartbeat"]), json_values),
     "mood": st.one_of(st.sampled_from(MOODS), json_values), "confidence": st.one_of(numbers, json_values)},
    optional={"t": st.one_of(numbers, json_values), "seq": st.one_of(numbers, json_values),
              "fps": st.one_of(numbers, json_values),
              "probs": st.one_of(st.dictionaries(st.sampled_from(EMOTIONS), numbers, max_size=7), json_values)})


@FAST
@given(datagram_fields)
def test_a_datagram_of_any_fields_is_an_event_or_malformed(body: dict) -> None:
    event = _parse_datagram(_json_bytes(body))
    if event is not None:  # what is accepted is a usable event: finite numbers, known names
        assert event.mood in MOODS and 0 <= event.confidence <= 1
        assert all(math.isfinite(x) for x in (event.t, event.fps, *event.probs.values()))
        assert MoodEvent.from_bytes(event.to_bytes()).mood == event.mood


@FAST
@given(st.one_of(st.binary(max_size=5000), json_values.map(_json_bytes),
                 st.integers(1, 5000).map(lambda n: _deeply_nested(n, "[").encode()),
                 st.integers(1, 5000).map(lambda n: ('{"a":' * n).encode())))
def test_any_bytes_are_an_event_or_malformed(data: bytes) -> None:
    _parse_datagram(data)


# --- the config file ---

section_names = st.sampled_from(sorted(_sections()))


@st.composite
def config_tables(draw: st.DrawFn) -> dict:
    """A config: known sections with known and unknown keys holding arbitrary values."""
    sections = _sections()
    tables = {}
    for name in draw(st.lists(section_names, max_size=4, unique=True)):
        keys = list(sections[name].__dataclass_fields__)
        tables[name] = draw(st.dictionaries(st.one_of(st.sampled_from(keys), st.text(min_size=1, max_size=8)),
                                            toml_values, max_size=4))
    return tables


toml_scalars = st.one_of(st.booleans(), numbers.filter(lambda x: not isinstance(x, int) or abs(x) < 10**4000),
                         st.text(max_size=20))
toml_values = st.recursive(toml_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3), max_leaves=12)


def _toml(value: object) -> str:
    """`value` as a TOML value (inline tables and arrays), numbers written as Python writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _parse_config(text: str) -> Config | None:
    try:
        return parse_config(text)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and len(p) < 2000 for p in exc.problems)
        return None


@FAST
@given(config_tables())
def test_a_config_of_any_values_is_a_config_or_a_config_error(tables: dict) -> None:
    text = "".join(f"[{name}]\n" + "".join(f"{json.dumps(k)} = {_toml(v)}\n" for k, v in table.items())
                   for name, table in tables.items())
    _parse_config(text)


@FAST
@given(st.one_of(st.text(max_size=300), st.integers(1, 300_000).map(lambda n: "a = " + _deeply_nested(n, "[")),
                 st.integers(1, 3000).map(lambda n: "a = " + "{b = " * n)))
def test_any_text_is_a_config_or_a_config_error(text: str) -> None:
    _parse_config(text)


# --- model cards ---

@st.composite
def cards(draw: st.DrawFn) -> dict:
    """Cards near a valid one: each field valid, or any JSON value."""
    valid = {"format": CARD_FORMAT, "labels": list(EMOTIONS), "sha256": "a" * 64,
             "input": {"height": 48, "width": 48, "channels": 1},
             "preprocessing": {"device": {"face_margin": 0.1, "resize": "area", "enlarge": "cubic", "flip_tta": False,
                                          "enhance": "none"}},
             "golden": {"file": "golden_faces.npz", "sha256": "b" * 64, "n": 100, "accuracy": 0.6, "tolerance": 0.02},
             "metrics": {"val": {"accuracy": 0.7}, "measured": "2026-01-01"}, "name": "x"}
    card = {}
    for key, value in valid.items():
        if isinstance(value, dict) and draw(st.booleans()):
            card[key] = {k: draw(st.one_of(st.just(v), json_values)) for k, v in value.items()}
        else:
            card[key] = draw(st.one_of(st.just(value), json_values))
    return card


def _load(tmp: Path, text: str) -> ModelCard | None:
    path = tmp / "card.json"
    path.write_text(text)
    try:
        card = load_card(path)
    except ModelError:
        return None
    assert card.val_accuracy is None or 0 <= card.val_accuracy <= 1  # what status and `model list` show
    assert card.name is None or isinstance(card.name, str)
    try:
        spec = golden_spec(card, path)
    except ModelError:
        return card
    assert isinstance(spec, GoldenSpec) and math.isfinite(spec.tolerance) and Path(spec.file).name == spec.file
    return card


@FAST
@given(cards())
def test_a_card_of_any_values_is_a_card_or_a_model_error(tmp_path_factory, card: dict) -> None:
    _load(tmp_path_factory.mktemp("card"), json.dumps(card, allow_nan=True))


@FAST
@given(st.one_of(st.text(max_size=300), json_values.map(json.dumps),
                 st.integers(1, 200_000).map(lambda n: _deeply_nested(n, "["))))
def test_any_text_is_a_card_or_a_model_error(tmp_path_factory, text: str) -> None:
    _load(tmp_path_factory.mktemp("card"), text)


# --- Spotify's answers (adapters/spotify_answers.py): a proxy or a broken server may send anything ---

@FAST
@given(json_values)
def test_any_playback_state_is_read_or_refused_as_a_bad_answer(state) -> None:
    from moodspeaker.adapters.spotify_answers import BadAnswer, playback_state, track_of

    with contextlib.suppress(BadAnswer):
        assert playback_state(state) in (None, state)
    track = track_of(state)
    assert track is None or (isinstance(track.uri, str) and track.uri)


@FAST
@given(st.one_of(st.none(), st.text(max_size=30), numbers.map(str)))
def test_any_retry_after_header_is_a_bounded_wait_or_none(header) -> None:
    from spotipy.exceptions import SpotifyException

    from moodspeaker.adapters.spotify_answers import RETRY_AFTER_MAX_S, retry_after

    wait = retry_after(SpotifyException(429, -1, "rate limited", headers={"Retry-After": header}))
    assert wait is None or 0.0 <= wait <= RETRY_AFTER_MAX_S
