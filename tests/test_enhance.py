"""Crop enhancement (core.enhance) on real val faces (the committed fer_tiny fixture) and through the shipped
int8 model: a clean, well-lit face passes unchanged; a dim, noisy one is denoised and stretched, and the model
reads it far better, without sending most faces to one class."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from moodspeaker.adapters.litert_classifier import LiteRTClassifier
from moodspeaker.core.crop_quality import noise_sigma
from moodspeaker.core.enhance import ENHANCE_NAME, EnhanceParams, enhance_crop, nonlocal_means
from moodspeaker.errors import ModelError


@pytest.fixture(scope="module")
def val(fer_tiny: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(fer_tiny / "val.npz") as data:
        return data["images"], data["labels"].astype(np.int64)


def _dim(images: np.ndarray, sigma: float, seed: int = 3) -> np.ndarray:
    """The living-room benchmark's evening light: ×0.3, then read noise of `sigma` grey levels."""
    rng = np.random.default_rng(seed)
    out = images.astype(np.float32) * 0.3 + rng.normal(0, sigma, images.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def test_a_clean_well_lit_face_passes_unchanged(val) -> None:
    images, _ = val
    contrasty = [face for face in images if face.std() >= EnhanceParams().target_contrast]
    assert len(contrasty) > 100
    unchanged = sum(enhance_crop(face) is face for face in contrasty)
    assert unchanged >= 0.95 * len(contrasty)  # the few others are grainy photographs: 177 of 181 here


def test_a_dim_noisy_face_is_denoised_and_brought_to_a_well_lit_contrast(val) -> None:
    images, _ = val
    clean, dark = images[:40], _dim(images[:40], sigma=8.0)
    for before, face in zip(clean, dark, strict=True):
        out = enhance_crop(face)
        # stretched to a well-lit face's contrast, or as far as max_gain allows once the noise is gone
        assert out.std() >= 0.95 * EnhanceParams().target_contrast or out.std() > 2 * face.std()
        assert noise_sigma(out) / out.std() < noise_sigma(face) / face.std() / 1.5
        # closer to the clean face than a plain stretch of the noisy one is (both compared by correlation)
        stretched = (face.astype(np.float64) - face.mean()) / face.std()
        assert np.corrcoef(out.ravel(), before.ravel())[0, 1] > np.corrcoef(stretched.ravel(), before.ravel())[0, 1]


def test_nonlocal_means_keeps_an_edge_and_removes_noise() -> None:
    rng = np.random.default_rng(0)
    step = np.where(np.arange(48) < 24, 60, 160).astype(np.float32)[None, :].repeat(48, axis=0)
    noisy = np.clip(np.rint(step + rng.normal(0, 10, step.shape)), 0, 255).astype(np.uint8)
    out = nonlocal_means(noisy, h=10.0).astype(np.float32)
    assert np.abs(out - step).mean() < 0.4 * np.abs(noisy - step).mean()
    assert out[:, 26:].mean() - out[:, :22].mean() == pytest.approx(100, abs=3)  # the edge keeps its height
    flat = np.full((20, 30), 77, np.uint8)
    assert np.array_equal(nonlocal_means(flat, h=5.0), flat)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="2-D uint8"):
        enhance_crop(np.zeros((48, 48), np.float32))
    with pytest.raises(ValueError, match="positive"):
        nonlocal_means(np.zeros((8, 8), np.uint8), h=0.0)
    with pytest.raises(ValueError, match="max_gain"):
        EnhanceParams(max_gain=0.5)


def _model_with_enhance(tmp_path: Path, shipped_model: Path, enhance: str) -> Path:
    model = tmp_path / enhance / "emotion.tflite"
    model.parent.mkdir()
    shutil.copy(shipped_model, model)
    card = json.loads(shipped_model.with_suffix(".json").read_text())
    card["preprocessing"]["device"]["enhance"] = enhance
    model.with_suffix(".json").write_text(json.dumps(card))
    return model


def _accuracy_and_top_share(clf: LiteRTClassifier, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    preds = np.array([np.argmax(clf.classify(face)) for face in images])
    return float((preds == labels).mean()), float(np.bincount(preds, minlength=7).max() / len(preds))


def test_the_shipped_model_reads_dim_noisy_faces_far_better_with_enhance(tmp_path, shipped_model, val) -> None:
    images, labels = val
    plain = LiteRTClassifier(_model_with_enhance(tmp_path, shipped_model, "none"))
    enhanced = LiteRTClassifier(_model_with_enhance(tmp_path, shipped_model, ENHANCE_NAME))
    dark = _dim(images, sigma=8.0)
    plain_dark, plain_top = _accuracy_and_top_share(plain, dark, labels)
    enhanced_dark, enhanced_top = _accuracy_and_top_share(enhanced, dark, labels)
    assert enhanced_dark >= 0.40 and enhanced_dark > plain_dark + 0.15  # measured on these 210: 0.22 -> 0.5
    assert enhanced_top <= 0.35 < plain_top
    clean_plain, _ = _accuracy_and_top_share(plain, images, labels)
    clean_enhanced, _ = _accuracy_and_top_share(enhanced, images, labels)
    assert clean_enhanced >= clean_plain - 0.02


def test_the_card_names_the_enhancement_and_refuses_an_unknown_one(tmp_path, shipped_model) -> None:
    assert LiteRTClassifier(shipped_model).card.preprocessing.enhance == ENHANCE_NAME
    with pytest.raises(ModelError, match="enhance must be 'none' or 'denoise-stretch'"):
        LiteRTClassifier(_model_with_enhance(tmp_path, shipped_model, "sharpen"))
