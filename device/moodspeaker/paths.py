"""Where things live: in a git checkout, next to the code; on an installed Pi, under /var/lib and /etc."""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
INSTALLED_MODELS = Path("/var/lib/moodspeaker/models")  # `moodspeaker model install` keeps versions here


def models_dir() -> Path:
    """`MOODSPEAKER_MODELS` if set; the installed models' `current` link; else the checkout's models/."""
    if env := os.environ.get("MOODSPEAKER_MODELS"):
        return Path(env)
    installed = INSTALLED_MODELS / "current"
    if installed.is_dir():
        return installed
    return CHECKOUT / "models"


def default_model() -> Path:
    return models_dir() / "emotion.tflite"
