"""A small synthesised music library with tags and per-mood stored playlists, for the demo and the tests.

Tracks are short mono WAV files (a few chords in a major or minor key) with RIFF INFO tags (title,
artist, album), which MPD reads through libsndfile; playlists are .m3u files named `mood-<key>`.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

RATE = 8000  # Hz; tiny files, plenty for a null output
ARTIST = "moodspeaker demo"
# Per playlist key: the chord roots' semitone offsets and whether the key is minor; tempo comes from the track.
_CHARACTER: dict[str, tuple[tuple[int, ...], bool]] = {
    "happy": ((0, 5, 7, 0), False), "surprise": ((0, 7, 9, 5), False), "uplifting": ((0, 7, 5, 7), False),
    "neutral": ((0, 5, 0, 5), False), "calm": ((0, 5, 3, 0), False), "sad": ((0, 8, 3, 7), True),
    "angry": ((0, 1, 0, 6), True), "fear": ((0, 6, 1, 6), True), "disgust": ((0, 1, 6, 1), True),
}


def synth_track(key: str, index: int, seconds: float) -> np.ndarray:
    """int16 samples: four chords in the key's character, a different root per track."""
    roots, minor = _CHARACTER.get(key, ((0, 5, 7, 0), False))
    base = 220.0 * 2 ** (index * 2 / 12)
    third = 3 if minor else 4
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    out = np.zeros(n)
    per_chord = n // len(roots) + 1
    for i, root in enumerate(roots):
        seg = slice(i * per_chord, min(n, (i + 1) * per_chord))
        for step in (0, third, 7):
            out[seg] += np.sin(2 * np.pi * base * 2 ** ((root + step) / 12) * t[seg])
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) * 20)  # 50 ms fades, no clicks
    return (out / 3 * 0.4 * envelope * 32767).astype("<i2")


def write_wav(path: Path, samples: np.ndarray, tags: dict[str, str]) -> None:
    """Mono 16-bit PCM WAV with a LIST/INFO chunk (INAM title, IART artist, IPRD album)."""
    fmt = struct.pack("<HHIIHH", 1, 1, RATE, RATE * 2, 2, 16)
    info = b"INFO"
    for tag_id, value in tags.items():
        data = value.encode() + b"\0"
        data += b"\0" * (len(data) % 2)
        info += tag_id.encode() + struct.pack("<I", len(data)) + data
    pcm = samples.tobytes()
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
            + b"LIST" + struct.pack("<I", len(info)) + info)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def write_library(music_dir: Path, playlist_dir: Path, tracks_per_key: dict[str, int],
                  seconds: float = 4.0) -> dict[str, list[str]]:
    """Write `<key>/<key>-<n>.wav` per key and a stored playlist `mood-<key>` per key.

    Returns playlist name -> the MPD URIs (paths relative to `music_dir`) in stored order.
    """
    playlists: dict[str, list[str]] = {}
    for key, count in tracks_per_key.items():
        (music_dir / key).mkdir(parents=True, exist_ok=True)
        uris = []
        for i in range(count):
            uri = f"{key}/{key}-{i + 1}.wav"
            tags = {"INAM": f"{key.capitalize()} song {i + 1}", "IART": ARTIST, "IPRD": f"{key} moods"}
            write_wav(music_dir / uri, synth_track(key, i, seconds), tags)
            uris.append(uri)
        name = f"mood-{key}"
        playlist_dir.mkdir(parents=True, exist_ok=True)
        (playlist_dir / f"{name}.m3u").write_text("".join(f"{u}\n" for u in uris))
        playlists[name] = uris
    return playlists
