"""The `moodspeaker` commands, one module per group, each with `register(subparsers)`; shared arguments here."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="config file (default /etc/moodspeaker/config.toml)")


def add_source_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", type=Path, default=None,
                        help="analyse this video file, npz of frames (images (N,H,W) uint8) or image folder "
                             "instead of the camera")


def source_exists(command: str, source: Path | None) -> bool:
    """False, after saying so on stderr, when `--source` names nothing (no source means the camera)."""
    if source is None or source.exists():
        return True
    print(f"moodspeaker {command}: {source}: no such video file, npz or folder of images", file=sys.stderr)
    return False
