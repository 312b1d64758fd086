"""Headless Spotify login: spotipy's auth managers with a 0600 token file, and a token source that never prompts.

`moodspeaker spotify-login` runs the authorisation once over SSH; after that the player only reads the cached
token, which spotipy refreshes silently shortly before it expires.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from spotipy.cache_handler import CacheHandler
from spotipy.exceptions import SpotifyOauthError
from spotipy.oauth2 import SpotifyOAuth, SpotifyPKCE

from moodspeaker.config import SpotifyConfig
from moodspeaker.errors import PlayerError

log = logging.getLogger(__name__)
# spotipy's debug lines carry the bearer token, the refresh token and the app's secret (request headers, token
# bodies): never let them reach the journal, even with -v. Its warnings and errors name only URLs.
logging.getLogger("spotipy").setLevel(logging.INFO)

SCOPES = (
    "user-read-playback-state",  # devices, what is playing
    "user-modify-playback-state",  # transfer, play, next, pause
    "user-library-modify",  # the like button: PUT /me/library
    "playlist-read-private",  # the mood playlists' tracks
    "playlist-read-collaborative",
)
LOGIN_LIFETIME_S = 182 * 86400  # Spotify ends a refresh token six months after the login, however often it is used
LOGIN_WARN_S = 14 * 86400  # `moodspeaker status` warns this long before
REQUEST_TIMEOUT_S = 5  # per HTTP request; a port call allows two within its budget (backend_call.BUDGET_S)
RELOGIN = "run `moodspeaker spotify-login` on the speaker"


class TokenFile(CacheHandler):
    """spotipy's token cache as one JSON file, created 0600 (never readable by others, not even for a moment)
    and replaced atomically with an fsync of the file and of its folder, so a power cut leaves the old token or
    the new one: with PKCE each refresh token works once, and losing the new one would mean logging in again.

    `logged_in_at` (Unix time, written by `record_login`) is carried over every refresh: it dates the login.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def get_cached_token(self) -> dict[str, Any] | None:
        try:
            token = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("%s: cannot read the Spotify token (%s); %s", self.path, exc, RELOGIN)
            return None
        return token if isinstance(token, dict) else None

    def save_token_to_cache(self, token_info: dict[str, Any]) -> None:
        previous = self.get_cached_token() or {}
        if "logged_in_at" not in token_info and "logged_in_at" in previous:
            token_info = {**token_info, "logged_in_at": previous["logged_in_at"]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode only applies to a new file
            os.write(fd, json.dumps(token_info).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)  # the rename itself is durable only once the folder is
        finally:
            os.close(folder)

    def record_login(self, now: float) -> float:
        """Date a fresh login; returns when Spotify will end it (LOGIN_LIFETIME_S later)."""
        token = self.get_cached_token()
        if token is None:
            raise PlayerError(f"{self.path}: no token to date; {RELOGIN}")
        self.save_token_to_cache({**token, "logged_in_at": now})
        return now + LOGIN_LIFETIME_S

    def login_ends_at(self) -> float | None:
        """When the refresh token stops working (None: no token, or a login from before this was recorded)."""
        token = self.get_cached_token()
        logged_in = token.get("logged_in_at") if token else None
        return float(logged_in) + LOGIN_LIFETIME_S if isinstance(logged_in, int | float) else None


def make_auth_manager(cfg: SpotifyConfig, *, state: str | None = None) -> SpotifyOAuth | SpotifyPKCE:
    """Authorization-code flow with the app's secret, or PKCE when [spotify] client_secret is empty."""
    if not cfg.client_id:
        raise PlayerError("[spotify] client_id is empty: create an app at https://developer.spotify.com/dashboard, "
                          f"add {cfg.redirect_uri} as its redirect URI and put its client ID in the config")
    common: dict[str, Any] = {"client_id": cfg.client_id, "redirect_uri": cfg.redirect_uri, "scope": " ".join(SCOPES),
                              "state": state, "open_browser": False, "cache_handler": TokenFile(Path(cfg.token_cache)),
                              "requests_timeout": REQUEST_TIMEOUT_S}
    if cfg.client_secret:
        return SpotifyOAuth(client_secret=cfg.client_secret, **common)
    return SpotifyPKCE(**common)


def new_state() -> str:
    """A fresh OAuth `state`, so a pasted URL from another login attempt is refused."""
    return secrets.token_urlsafe(16)


class HeadlessToken:
    """The auth_manager spotipy calls for every request: the cached token, refreshed when it is about to expire.

    Unlike spotipy's managers it never falls back to an interactive login (nobody reads a daemon's stdin);
    a missing or rejected login becomes a PlayerError that says to run `moodspeaker spotify-login`.
    """

    def __init__(self, manager: SpotifyOAuth | SpotifyPKCE) -> None:
        self.manager = manager

    @property
    def cache(self) -> TokenFile:
        return self.manager.cache_handler

    def get_access_token(self, as_dict: bool = False) -> str:
        cached = self.cache.get_cached_token()
        if cached is None:
            raise PlayerError(f"not logged in to Spotify (no readable token in {self.cache.path}): {RELOGIN} "
                              "as the user the player runs as")
        try:
            token = self.manager.validate_token(cached)
        except SpotifyOauthError as exc:
            raise PlayerError(f"Spotify refused to refresh the login ({exc.error}): {RELOGIN}") from None
        if token is None:
            raise PlayerError(f"the Spotify login in {self.cache.path} lacks permissions this version needs: {RELOGIN}")
        return token["access_token"]

    def refresh(self) -> None:
        """Get a new access token now (after the API said 401 to one that had not expired by the clock)."""
        cached = self.cache.get_cached_token()
        if not cached or "refresh_token" not in cached:
            raise PlayerError(f"not logged in to Spotify (no refresh token in {self.cache.path}): {RELOGIN}")
        try:
            self.manager.refresh_access_token(cached["refresh_token"])
        except SpotifyOauthError as exc:
            raise PlayerError(f"Spotify refused to refresh the login ({exc.error}): {RELOGIN}") from None
