"""`moodspeaker spotify-login`: authorise the speaker once, over SSH, without a browser on the Pi.

Prints the authorise URL; you open it on any computer, allow access, and your browser lands on the redirect URI
(an error page is fine: nothing listens there). Paste that page's full URL back here; the code in it is
exchanged for a token, cached 0600 in [spotify] token_cache and refreshed by the player from then on.
Run it as the user the player runs as (on the Pi: sudo -u moodspeaker moodspeaker spotify-login), or the
player cannot read the token.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from moodspeaker.commands import add_config_argument
from moodspeaker.config import load_config
from moodspeaker.errors import UsageError

if TYPE_CHECKING:  # spotipy is imported only when logging in: `moodspeaker vision` must not load a network client
    from spotipy.oauth2 import SpotifyOAuth, SpotifyPKCE


class LoginError(UsageError):
    pass


def login(manager: SpotifyOAuth | SpotifyPKCE, read_line: Callable[[], str], out: TextIO) -> Path:
    """Run the paste-the-redirect flow with `manager` (built with a `state`); returns the token file written."""
    from spotipy.exceptions import SpotifyOauthError
    from spotipy.oauth2 import SpotifyOAuth

    print("1. Open this URL in a browser on any computer and allow access:\n", file=out)
    print(f"   {manager.get_authorize_url()}\n", file=out)
    print(f"2. The browser then goes to {manager.redirect_uri}?code=... (a page that fails to load is fine).\n"
          "   Copy that whole URL from the address bar and paste it here:", file=out, flush=True)
    pasted = read_line().strip()
    try:
        state, code = manager.parse_auth_response_url(pasted)
    except SpotifyOauthError as exc:
        raise LoginError(f"Spotify did not grant access ({exc.error}); run the login again and press Agree") from None
    if not code:
        raise LoginError(f"that URL has no ?code=...: paste the address the browser went to after you allowed access "
                         f"(it starts with {manager.redirect_uri})")
    if state != manager.state:
        raise LoginError("that URL belongs to another login attempt (state mismatch); open the URL printed above")
    try:
        if isinstance(manager, SpotifyOAuth):
            manager.get_access_token(code=code, as_dict=False, check_cache=False)
        else:
            manager.get_access_token(code=code, check_cache=False)
    except SpotifyOauthError as exc:
        raise LoginError(f"Spotify refused the code ({exc.error}: {exc.error_description}); codes work once and "
                         "expire within minutes, so run the login again") from None
    return manager.cache_handler.path


def _run(args: argparse.Namespace) -> int:
    from moodspeaker.adapters.spotify_auth import make_auth_manager, new_state

    cfg = load_config(args.config).spotify
    manager = make_auth_manager(cfg, state=new_state())
    path = login(manager, sys.stdin.readline, sys.stdout)
    ends = manager.cache_handler.record_login(time.time())
    print(f"Logged in. The token is cached in {path} (mode 0600); the player refreshes it by itself.\n"
          f"Spotify ends this login six months from now, on {time.strftime('%Y-%m-%d', time.localtime(ends))}: "
          "log in again before then (`moodspeaker status` reminds you two weeks ahead).")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spotify-login", help="authorise the speaker's Spotify account once (paste the redirect URL)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_argument(p)
    p.set_defaults(func=_run)
