"""Where things live: in a git checkout, next to the code; on an installed Pi, under /var/lib and /etc."""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
INSTALLED_MODELS = Path("/var/lib/moodspeaker/models")  # `moodspeaker model install` keeps versions here


def running_from_checkout() -> bool:
    """True when this package is imported from a source checkout (editable install, PYTHONPATH), not from an
    installed venv: the checkout's pyproject.toml and models/ then lie two folders up."""
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "models").is_dir()


def models_dir() -> Path:
    """`MOODSPEAKER_MODELS` if set; a checkout's own models/ when running from one (so tests and the demo in a
    checkout on an installed speaker use the checkout's model); else the installed models' `current` link."""
    if env := os.environ.get("MOODSPEAKER_MODELS"):
        return Path(env)
    if running_from_checkout():
        return CHECKOUT / "models"
    return INSTALLED_MODELS / "current"


def default_model() -> Path:
    return models_dir() / "emotion.tflite"
