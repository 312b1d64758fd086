"""The camera model in training augmentation (distill.camera, distill.augment): each step does what it models,
on real val faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: `make torch` adds it (README: Training the model)")

from moodspeaker.core.crop_quality import noise_sigma  # noqa: E402
from moodspeaker_train.camera_model import blur_kernels, jpeg_table  # noqa: E402
from moodspeaker_train.distill import augment, camera, jpeg  # noqa: E402
from moodspeaker_train.recipe import AugmentConfig  # noqa: E402

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def faces(fer_tiny: Path) -> np.ndarray:
    with np.load(fer_tiny / "val.npz") as data:
        return data["images"][:32].astype(np.float32)


def _camera(faces: np.ndarray, **steps) -> np.ndarray:
    """(B, S, S) output of the camera model with only `steps` switched on."""
    return camera(torch.from_numpy(faces[:, None].copy()), AugmentConfig(**steps)).numpy()[:, 0]


def _detail(images: np.ndarray) -> float:
    return float(np.mean([noise_sigma(im) for im in images]))


def test_everything_off_leaves_faces_alone(faces: np.ndarray) -> None:
    out = _camera(faces)
    np.testing.assert_allclose(out, faces)


def test_blur_removes_fine_detail(faces: np.ndarray) -> None:
    out = _camera(faces, blur_prob=1.0)
    assert out.shape == faces.shape and out.min() >= 0 and out.max() <= 255
    assert _detail(out) < 0.5 * _detail(faces)
    assert np.allclose(blur_kernels().sum(axis=(1, 2)), 1.0)  # blur keeps the brightness


def test_low_light_darkens_within_the_gain_range(faces: np.ndarray) -> None:
    out = _camera(faces, lowlight_prob=1.0, gain_min=0.25)
    ratio = out.mean(axis=(1, 2)) / faces.mean(axis=(1, 2))
    assert (ratio >= 0.25 - 1e-4).all() and (ratio <= 1 + 1e-4).all() and ratio.mean() < 0.8


def test_a_distant_face_is_shrunk_and_enlarged_smoothly(faces: np.ndarray) -> None:
    out = _camera(faces, downscale_prob=1.0, downscale_min=16)
    assert out.shape == faces.shape and _detail(out) < 0.8 * _detail(faces)
    assert abs(out.mean() - faces.mean()) < 2.0


def test_sensor_noise_is_added(faces: np.ndarray) -> None:
    flat = np.full_like(faces, 100.0)
    out = _camera(flat, noise_prob=1.0, read_noise_max=10.0, shot_noise_max=0.0)
    sigma = out.std(axis=(1, 2))
    assert 0 < sigma.mean() < 10 and sigma.max() <= 10.5


def test_jpeg_quantises_in_8x8_blocks(faces: np.ndarray) -> None:
    out = jpeg(torch.from_numpy(faces[:, None].copy()), 30).numpy()[:, 0]
    assert 1.0 < np.abs(out - faces).mean() < 12.0
    blocks = np.kron(np.arange(36, dtype=np.float32).reshape(6, 6) * 7, np.ones((8, 8), np.float32))[None]
    flat = jpeg(torch.from_numpy(blocks[:, None].copy()), 30).numpy()[0, 0].reshape(6, 8, 6, 8)
    assert flat.std(axis=(1, 3)).max() < 1e-3  # a flat 8x8 block stays flat (only its level is quantised)
    assert np.abs(flat.mean(axis=(1, 3)) - blocks[0, ::8, ::8]).max() <= jpeg_table(30)[0, 0] / 16 + 1e-3
    assert jpeg_table(95).max() < jpeg_table(30).min() * 4 and jpeg_table(100).min() == 1


def test_occlusion_covers_only_the_lower_part(faces: np.ndarray) -> None:
    out = _camera(faces, occlude_prob=1.0)
    np.testing.assert_allclose(out[:, :26], faces[:, :26])  # the object starts at 55-80% of the height
    assert (out[:, 40:].std(axis=(1, 2)) < 4).all()  # the bottom rows are the flat object


def test_the_whole_augmentation_runs_with_the_camera_on(faces: np.ndarray) -> None:
    cfg = AugmentConfig(blur_prob=0.5, lowlight_prob=0.5, downscale_prob=0.5, noise_prob=0.5, jpeg_prob=0.5,
                        occlude_prob=0.2, shadow_prob=0.3, crush_prob=0.3)
    out = augment(torch.from_numpy(faces[:, None].copy()), cfg).numpy()[:, 0]
    assert out.shape == faces.shape and out.min() >= 0 and out.max() <= 255 and not np.allclose(out, faces)


def test_side_light_darkens_one_side_of_the_face_only(faces: np.ndarray) -> None:
    torch.manual_seed(0)  # the light's direction is random: unseeded, about 1 draw in 30 has a median under 0.2
    out = camera(torch.from_numpy(faces[:, None].copy()), AugmentConfig(shadow_prob=1.0, shadow_min=0.1)).numpy()[:, 0]
    gain = (out + 1.0) / (faces + 1.0)
    assert (gain <= 1.0 + 1e-4).all()  # light only taken away
    # Per face, the darkest and the brightest quarter of the face sit on opposite sides: a gradient, not a dimming.
    quarters = [gain[:, :24, :24], gain[:, :24, 24:], gain[:, 24:, :24], gain[:, 24:, 24:]]
    means = np.stack([q.mean(axis=(1, 2)) for q in quarters], axis=1)
    assert np.median(means.max(axis=1) - means.min(axis=1)) > 0.2


def test_crushed_blacks_clip_the_dark_end_and_clean_prob_keeps_faces_clean(faces: np.ndarray) -> None:
    dark = faces * 0.2  # a dim face: most pixels below 50
    out = camera(torch.from_numpy(dark[:, None].copy()), AugmentConfig(crush_prob=1.0, black_max=40.0,
                                                                       gamma_min=1.0, gamma_max=1.0)).numpy()[:, 0]
    assert (out == 0).mean() > 2 * (dark == 0).mean() + 0.05  # shadow detail clipped to black
    cfg = AugmentConfig(flip=False, rotate_deg=0, scale=0, shift=0, brightness=0, contrast=0, erase_prob=0,
                        clean_prob=0.5, lowlight_prob=1.0, gain_min=0.2)
    x = torch.from_numpy(np.repeat(faces, 8, axis=0)[:, None].copy())
    clean = torch.isclose(augment(x, cfg), x, atol=1e-3).flatten(1).all(1).float().mean()
    assert 0.35 < float(clean) < 0.65


def test_training_enhances_each_face_as_the_device_does(faces: np.ndarray) -> None:
    from moodspeaker.core.enhance import enhance_crop
    dark = np.clip(np.rint(faces * 0.3 + np.random.default_rng(3).normal(0, 8, faces.shape)), 0, 255)
    still = dict(flip=False, rotate_deg=0, scale=0, shift=0, brightness=0, contrast=0, erase_prob=0)
    out = augment(torch.from_numpy(dark[:, None].astype(np.float32)), AugmentConfig(enhance="denoise-stretch",
                                                                                    **still)).numpy()[:, 0]
    expected = np.stack([enhance_crop(face) for face in dark.astype(np.uint8)])
    np.testing.assert_array_equal(out, expected)
    assert out.std(axis=(1, 2)).mean() > 1.5 * dark.std(axis=(1, 2)).mean()  # it did stretch the dark faces


def test_on_a_many_core_machine_the_enhancement_runs_in_worker_processes_with_the_same_result(faces, monkeypatch):
    from moodspeaker_train import distill

    dark = torch.from_numpy(np.repeat(np.rint(faces * 0.3), 2, axis=0)[:, None].astype(np.float32))
    alone = distill.device_enhance(dark)
    monkeypatch.setattr(distill.os, "cpu_count", lambda: 6)
    try:
        pooled = distill.device_enhance(dark)
        assert distill._enhance_pool is not None  # it did take the pool's way
    finally:
        if distill._enhance_pool is not None:
            distill._enhance_pool.shutdown()
        monkeypatch.setattr(distill, "_enhance_pool", None)
    assert torch.equal(alone, pooled)
