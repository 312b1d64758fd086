"""What Spotify's Web API answers, read defensively for the Spotify adapter: tracks and playback states (an
answer that is not what the endpoint returns is BadAnswer, never a crash), and its refusals told apart (each 403
has its own fix; a 429's Retry-After). Pure functions of the answers, so they are tested on their own.
"""

from __future__ import annotations

import math
from typing import Any

import requests
from spotipy.exceptions import SpotifyException

from moodspeaker.adapters.spotify_auth import RELOGIN
from moodspeaker.core.domain import Track
from moodspeaker.errors import MoodspeakerError, PlayerError, PlayerUnavailable

RETRY_AFTER_MAX_S = 86_400.0  # the longest rate limit believed (Spotify's are up to hours)


class BadAnswer(Exception):
    """Spotify answered, but not with what the endpoint returns."""


def refuse_unreadable(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
    """A requests response hook: a GET answered 200 with a body that is not JSON (a captive portal, a proxy's page)
    is BadAnswer; spotipy would read it as None, which for GET /me/player means "nothing plays"."""
    if response.request.method == "GET" and response.status_code == 200 and response.content.strip():
        try:
            response.json()
        except ValueError:
            raise BadAnswer(f"HTTP 200 with a body that is not JSON: {response.text[:60]!r}") from None


class Forbidden(PlayerError):
    """A 403; `why` is premium | login | other (for a playlist, other means one the account may not read)."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


def track_of(item: Any) -> Track | None:
    if not isinstance(item, dict) or item.get("type", "track") != "track" or item.get("is_local"):
        return None
    uri = item.get("uri")
    if not isinstance(uri, str) or not uri:
        return None
    artists = item.get("artists")
    names = [a.get("name", "") for a in artists if isinstance(a, dict)] if isinstance(artists, list) else []
    return Track(uri=uri, title=str(item.get("name", "")), artist=", ".join(map(str, names)))


def playback_state(state: Any) -> dict[str, Any] | None:
    """GET /me/player: None for nothing playing (204); a dict with a bool is_playing; else BadAnswer."""
    if state is None:
        return None
    if not isinstance(state, dict) or not isinstance(state.get("is_playing"), bool):
        raise BadAnswer(f"playback state without is_playing: {str(state)[:80]!r}")
    progress = state.get("progress_ms")
    if progress is not None and not isinstance(progress, int | float):
        raise BadAnswer(f"playback state with progress_ms {progress!r}")
    item = state.get("item")
    if isinstance(item, dict) and item.get("type", "track") == "track" and not item.get("is_local") and (
            track_of(item) is None or not isinstance(item.get("duration_ms"), int | float)):
        raise BadAnswer(f"playing item without a uri or duration: {str(item)[:80]!r}")
    return state


def retry_after(exc: SpotifyException) -> float | None:
    """The Retry-After header in seconds, at most RETRY_AFTER_MAX_S; None where there is no usable number (then the
    back-off applies): "inf" or "1e400" would otherwise block Spotify until the player restarts."""
    value = (exc.headers or {}).get("Retry-After")
    try:
        seconds = float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return None
    return min(max(0.0, seconds), RETRY_AFTER_MAX_S) if math.isfinite(seconds) else None


def spotify_message(exc: SpotifyException) -> str:
    """Spotify's error message without the request URL spotipy puts in front of it."""
    return str(exc.msg).splitlines()[-1].strip()


def forbidden(what: str, exc: SpotifyException) -> Forbidden:
    """Spotify's 403s, told apart: each has a different fix."""
    message = spotify_message(exc)
    lowered = message.lower()
    if exc.reason == "PREMIUM_REQUIRED" or "premium" in lowered:
        return Forbidden(f"Spotify refused to {what} (403: {message}): the account needs Spotify Premium to control "
                           "playback, and a development-mode app works only while its owner's Premium is active; "
                           "renew Premium, then the speaker carries on by itself", "premium")
    if "scope" in lowered or "registered" in lowered or "user may not" in lowered:
        return Forbidden(f"Spotify refused to {what} (403: {message}): the login lacks a permission or the account "
                           "is not in the app's User Management list (at most 5 users in development mode); add it "
                           f"there if needed, then {RELOGIN}", "login")
    return Forbidden(f"Spotify refused to {what} (403: {message}); if this keeps happening, {RELOGIN}", "other")


def translate(exc: Exception) -> MoodspeakerError | None:
    """The boundary: what spotipy and requests raise, and what no rule in _call covers, leaves as ours."""
    if isinstance(exc, BadAnswer):
        return PlayerUnavailable(f"Spotify sent an answer the speaker cannot read ({exc})")
    if isinstance(exc, SpotifyException):  # a refusal no rule covers (a like's 404 or 400)
        return PlayerError(f"Spotify refused ({exc.http_status}: {spotify_message(exc)})")
    if isinstance(exc, requests.RequestException):
        return PlayerUnavailable(f"Spotify could not be asked ({type(exc).__name__})")
    return None
