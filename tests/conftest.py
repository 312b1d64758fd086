"""Shared fixtures: paths to the committed fixtures and the shipped model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
MODELS = REPO / "models"


@pytest.fixture(scope="session")
def fer_tiny() -> Path:
    return FIXTURES / "fer_tiny"


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    model = MODELS / "emotion.tflite"
    if not model.exists():
        pytest.fail("models/emotion.tflite is missing: the shipped model is part of the repo")
    return model


@pytest.fixture(scope="session")
def music_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, list[str]]]:
    """A synthesised library: music dir, playlist dir, and stored playlist name -> file URIs.

    20 s tracks, so that no test under CPU load races a track's natural end; a test that wants a track to end
    by itself seeks near its end (seek_near_the_end).
    """
    from moodspeaker.dev.demo_music import write_library

    root = tmp_path_factory.mktemp("music")
    playlists = write_library(root / "music", root / "playlists",
                              {"happy": 3, "sad": 3, "neutral": 2, "calm": 2, "uplifting": 2}, seconds=20.0)
    return root / "music", root / "playlists", playlists


@pytest.fixture
def mpd_server(tmp_path: Path, music_library: tuple[Path, Path, dict[str, list[str]]]):
    """A private MPD on 127.0.0.1 (free port, null output) over the synthesised library; stopped after the test."""
    from moodspeaker.dev.mpd_server import MpdServer

    music, playlists, _ = music_library
    server = MpdServer(tmp_path / "mpd", music, playlists)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def seek_near_the_end(mpd_server) -> Callable[[], None]:
    """Fast-forward the track MPD is playing to its last second, for a test that waits for it to end by itself."""
    import mpd

    def seek() -> None:
        client = mpd.MPDClient()
        client.connect(mpd_server.host, mpd_server.port)
        try:
            client.seekcur(f"{float(client.currentsong()['duration']) - 1.0:.1f}")  # the tag: known before decoding
        finally:
            client.disconnect()

    return seek


@pytest.fixture
def mosquitto(tmp_path: Path):
    """A private mosquitto broker on 127.0.0.1 (free port); stopped after the test."""
    from mosquitto_broker import Mosquitto

    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()
