"""Where the program finds its model and its Haar cascade: the cascade belongs to the program, and a checkout
uses its own models even on a speaker where a model is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from moodspeaker import paths
from moodspeaker.adapters.haar_detector import CASCADE_NAME, HaarFaceDetector, default_cascade

PACKAGE = Path(paths.__file__).resolve().parent


def test_the_cascade_is_package_data_not_part_of_a_model_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_cascade() == PACKAGE / "data" / CASCADE_NAME
    monkeypatch.setenv("MOODSPEAKER_MODELS", str(tmp_path))  # a models dir without any cascade in it
    assert HaarFaceDetector().cascade_path == PACKAGE / "data" / CASCADE_NAME
    shipped = Path(__file__).resolve().parents[1] / "pyproject.toml"
    assert '"data/*.xml"' in shipped.read_text()  # so a non-editable install (the Pi's venv) ships it too


def test_a_checkout_uses_its_own_models_even_where_a_model_is_installed(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOODSPEAKER_MODELS", raising=False)
    (tmp_path / "installed" / "current").mkdir(parents=True)
    monkeypatch.setattr(paths, "INSTALLED_MODELS", tmp_path / "installed")
    assert paths.running_from_checkout()
    assert paths.models_dir() == paths.CHECKOUT / "models"


def test_an_installed_package_uses_the_installed_current_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOODSPEAKER_MODELS", raising=False)
    monkeypatch.setattr(paths, "CHECKOUT", tmp_path / "venv" / "lib")  # site-packages/moodspeaker/../..: no pyproject
    monkeypatch.setattr(paths, "INSTALLED_MODELS", tmp_path / "installed")
    assert paths.models_dir() == tmp_path / "installed" / "current"
    assert paths.default_model() == tmp_path / "installed" / "current" / "emotion.tflite"
    monkeypatch.setenv("MOODSPEAKER_MODELS", str(tmp_path / "mine"))
    assert paths.models_dir() == tmp_path / "mine"
