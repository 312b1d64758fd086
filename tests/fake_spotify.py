"""A local stand-in for the Spotify Web API and the accounts token endpoint, for spotipy to talk to.

http.server on 127.0.0.1 (free port) in a thread. It keeps a tiny player state (devices, active device,
queue, position, library, playlists) and a log of every request, and can be told to fail:
`fail("PUT", "/v1/me/player/play", 429, retry_after=2)` answers the next matching request(s) that way, and
status 0 drops the connection without an answer (network loss); `fail(..., 200, body=b"<html>")` answers with
that raw body; `delay_s` holds the answer back (a slow server).
Without an active device, player commands answer 404 NO_ACTIVE_DEVICE, as Spotify does. As the real API does, a
playlist page of more than 50 items is 400 and a start-playback request with more than 100 URIs is 413.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DROP = 0  # a failure status that closes the connection unanswered
MAX_PAGE = 50  # the largest playlist page Spotify serves
MAX_START_URIS = 100  # the most URIs one start-playback request may carry
SCOPE = ("user-read-playback-state user-modify-playback-state user-library-modify playlist-read-private "
         "playlist-read-collaborative")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    token: str | None  # the bearer token of an API call
    time: float


@dataclass
class Failure:
    method: str
    path: str
    status: int
    reason: str | None
    headers: dict[str, str]
    times: int
    body: bytes | None = None  # a raw answer instead of the JSON error
    delay_s: float = 0.0


@dataclass
class FakeSpotify:
    client_id: str = "test-client"
    client_secret: str = "test-secret"
    devices: list[dict[str, Any]] = field(default_factory=lambda: [
        {"id": "dev-phone", "name": "Pixel", "type": "Smartphone"},
        {"id": "dev-speaker", "name": "Moodspeaker", "type": "Speaker"},
    ])
    tracks: dict[str, dict[str, Any]] = field(default_factory=dict)  # uri -> track object
    playlists: dict[str, list[str]] = field(default_factory=dict)  # playlist id -> track uris
    page_size: int = 2  # small, so clients must follow `next`
    active_device: str | None = None
    queue: list[str] = field(default_factory=list)
    position: int = 0
    is_playing: bool = False
    context: str | None = None  # the playlist (album, ...) playing, as the phone's app starts one; None for a list of URIs
    progress_ms: int = 1000
    volume_percent: int = 50
    library: list[str] = field(default_factory=list)
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    codes: dict[str, str | None] = field(default_factory=dict)  # authorisation code -> PKCE challenge (or None)
    requests: list[Request] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[int, str] = {}
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    # --- test control ----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_prefix(self) -> str:
        return f"{self.url}/v1/"

    @property
    def token_url(self) -> str:
        return f"{self.url}/api/token"

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/authorize"

    def start(self) -> FakeSpotify:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends held-back answers now, not seconds into a later test
        self._server.shutdown()
        self._server.server_close()

    def add_playlist(self, playlist_id: str, n_tracks: int) -> list[str]:
        uris = []
        for i in range(n_tracks):
            uri = f"spotify:track:{playlist_id}{i:03d}"
            self.tracks[uri] = {"type": "track", "uri": uri, "name": f"Song {i}", "is_local": False,
                                "duration_ms": 180_000, "artists": [{"name": f"Artist {i}"}]}
            uris.append(uri)
        self.playlists[playlist_id] = uris
        return uris

    def issue_token(self, expires_in: int = 3600) -> dict[str, Any]:
        """A token_info as spotipy caches it, valid here."""
        access, refresh = secrets.token_hex(8), secrets.token_hex(8)
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return {"access_token": access, "token_type": "Bearer", "expires_in": expires_in, "scope": SCOPE,
                "refresh_token": refresh, "expires_at": int(time.time()) + expires_in}

    def new_code(self, code_challenge: str | None = None) -> str:
        code = secrets.token_hex(6)
        self.codes[code] = code_challenge
        return code

    def fail(self, method: str, path: str, status: int, *, reason: str | None = None, retry_after: float | None = None,
             times: int = 1, message: str = "scripted failure", body: bytes | None = None, delay_s: float = 0.0) -> None:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        self.failures.append(Failure(method, path, status, reason, headers, times, body, delay_s))
        self._messages[id(self.failures[-1])] = message

    def calls(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]

    @property
    def current(self) -> str | None:
        return self.queue[self.position] if self.position < len(self.queue) else None

    # --- request handling (under the lock) --------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any,
               headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """(status, payload, headers); payload bytes are sent as they are, anything else as JSON."""
        delay = 0.0
        with self._lock:
            token = headers.get("authorization", "").removeprefix("Bearer ") or None
            self.requests.append(Request(method, path, query, body, token, time.monotonic()))
            answer = None
            for failure in self.failures:
                if failure.times > 0 and failure.method == method and failure.path == path:
                    failure.times -= 1
                    delay = failure.delay_s
                    if failure.body is not None:
                        answer = failure.status, failure.body, failure.headers
                    else:
                        error = {"status": failure.status, "message": self._messages[id(failure)]}
                        if failure.reason:
                            error["reason"] = failure.reason
                        answer = failure.status, {"error": error}, failure.headers
                    break
        if delay and self._stopping.wait(delay):  # outside the lock: other requests are answered meanwhile
            return DROP, None, {}
        if answer is not None:
            return answer
        with self._lock:
            if path == "/api/token":
                return self._token(body, headers)
            if token not in self.access_tokens:
                return 401, {"error": {"status": 401, "message": "The access token expired"}}, {}
            return self._api(method, path, query, body)

    def _token(self, form: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        grant = form.get("grant_type", [""])[0]
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        pkce = form.get("client_id", [""])[0] == self.client_id
        if headers.get("authorization") != f"Basic {basic}" and not pkce:
            return 401, {"error": "invalid_client", "error_description": "Invalid client"}, {}
        if grant == "authorization_code":
            code = form.get("code", [""])[0]
            if code not in self.codes:
                return 400, {"error": "invalid_grant", "error_description": "Invalid authorization code"}, {}
            challenge = self.codes.pop(code)
            if challenge is not None:
                verifier = form.get("code_verifier", [""])[0].encode()
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).decode().rstrip("=")
                if digest != challenge:
                    return 400, {"error": "invalid_grant", "error_description": "code_verifier was incorrect"}, {}
        elif grant == "refresh_token":
            if form.get("refresh_token", [""])[0] not in self.refresh_tokens:
                return 400, {"error": "invalid_grant", "error_description": "Refresh token revoked"}, {}
        else:
            return 400, {"error": "unsupported_grant_type"}, {}
        info = self.issue_token()
        info.pop("expires_at")
        if grant == "refresh_token":
            info.pop("refresh_token")  # Spotify usually keeps the refresh token; spotipy then reuses the old one
        return 200, info, {}

    def _api(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any, dict[str, str]]:
        no_device = (404, {"error": {"status": 404, "message": "Player command failed: No active device found",
                                     "reason": "NO_ACTIVE_DEVICE"}}, {})
        if (method, path) == ("GET", "/v1/me/player/devices"):
            return 200, {"devices": [{**d, "is_active": d["id"] == self.active_device} for d in self.devices]}, {}
        if (method, path) == ("PUT", "/v1/me/player"):
            device = body["device_ids"][0]
            if device not in {d["id"] for d in self.devices}:
                return 404, {"error": {"status": 404, "message": "Device not found"}}, {}
            self.active_device = device
            self.is_playing = bool(body.get("play")) and self.current is not None
            return 204, None, {}
        if (method, path) == ("GET", "/v1/me/player"):
            if self.active_device is None:
                return 204, None, {}
            item = self.tracks.get(self.current) if self.current else None
            name = next(d["name"] for d in self.devices if d["id"] == self.active_device)
            return 200, {"device": {"id": self.active_device, "name": name, "volume_percent": self.volume_percent},
                         "is_playing": self.is_playing, "progress_ms": self.progress_ms, "item": item,
                         "context": {"uri": self.context} if self.context else None}, {}
        if path.startswith("/v1/me/player/"):
            if self.active_device is None:
                return no_device
            command = path.removeprefix("/v1/me/player/")
            if (method, command) == ("PUT", "play"):
                if body and len(body.get("uris", [])) > MAX_START_URIS:
                    return 413, {"error": {"status": 413, "message": "Payload too large"}}, {}
                if body and "uris" in body:
                    self.queue, self.position, self.context = list(body["uris"]), 0, None
                self.is_playing = self.current is not None
            elif (method, command) == ("PUT", "volume"):
                self.volume_percent = int(query["volume_percent"][0])
            elif (method, command) == ("POST", "queue"):
                self.queue.append(query["uri"][0])
            elif (method, command) == ("PUT", "pause"):
                self.is_playing = False
            elif (method, command) == ("POST", "next"):
                self.position += 1
                self.is_playing = self.current is not None
            else:
                return 404, {"error": {"status": 404, "message": "Service not found"}}, {}
            return 204, None, {}
        if (method, path) == ("PUT", "/v1/me/library"):
            self.library += query.get("uris", [""])[0].split(",")
            return 200, None, {}
        if method == "GET" and path.startswith("/v1/playlists/") and path.endswith("/items"):
            playlist = path.split("/")[3]
            if playlist not in self.playlists:
                return 404, {"error": {"status": 404, "message": "Resource not found"}}, {}
            offset = int(query.get("offset", ["0"])[0])
            asked = int(query.get("limit", ["20"])[0])
            if not 1 <= asked <= MAX_PAGE:
                return 400, {"error": {"status": 400, "message": "Invalid limit"}}, {}
            limit = min(asked, self.page_size)
            uris = self.playlists[playlist]
            items = [{"track": self.tracks[u]} for u in uris[offset:offset + limit]]
            more = offset + limit < len(uris)
            following = f"{self.url}{path}?offset={offset + limit}&limit={limit}" if more else None
            return 200, {"items": items, "next": following, "total": len(uris)}, {}
        return 404, {"error": {"status": 404, "message": "Service not found"}}, {}


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up on a held-back answer (its time budget ran out) is what a slow server sees, not an
        error; anything else is a bug in the fake and is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(fake: FakeSpotify) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if url.path == "/api/token":
                body: Any = parse_qs(raw)
            else:
                body = json.loads(raw) if raw else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload, extra = fake.handle(self.command, url.path, parse_qs(url.query), body, headers)
            if status == DROP:
                self.close_connection = True
                return
            data = payload if isinstance(payload, bytes) else b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            if data:
                self.send_header("Content-Type", "text/html" if isinstance(payload, bytes) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

    return Handler
