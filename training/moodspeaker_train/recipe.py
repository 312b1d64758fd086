"""A training recipe: one TOML file (training/configs/*.toml) parsed into a frozen dataclass."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    rotate_deg: float = 10.0
    scale: float = 0.10  # zoom in/out by up to this fraction
    shift: float = 0.10  # translate by up to this fraction of the side
    brightness: float = 0.20  # additive, fraction of 255
    contrast: float = 0.25  # multiplicative around the image mean
    erase_prob: float = 0.5
    erase_area: tuple[float, float] = (0.02, 0.15)
    # The camera model (camera_model.py), each step applied to a face with its own probability (0 = off),
    # except for a share `clean_prob` of the faces that skip it altogether:
    clean_prob: float = 0.0
    blur_prob: float = 0.0  # defocus or motion blur, one of camera_model.blur_kernels() at random
    lowlight_prob: float = 0.0  # exposure times a gain drawn from [gain_min, 1]
    gain_min: float = 0.25
    downscale_prob: float = 0.0  # a distant face: shrunk to a side in [downscale_min, size) px, enlarged again (linear)
    downscale_min: int = 16
    noise_prob: float = 0.0  # Poisson-Gaussian sensor noise: variance shot * pixel + read^2, both drawn up to their max
    shot_noise_max: float = 1.0
    read_noise_max: float = 10.0
    jpeg_prob: float = 0.0  # JPEG's 8x8 DCT quantisation at a quality drawn from [jpeg_quality_min, 95]
    jpeg_quality_min: int = 30
    occlude_prob: float = 0.0  # a flat object (hand, mug) over the lower 20-45% of the face
    # The device's crop enhancement (the card's preprocessing.device.enhance: "none" or "denoise-stretch",
    # moodspeaker.core.enhance), applied to every face after the camera model, as the device applies it to
    # every crop before the model (val is enhanced too).
    enhance: str = "none"
    # Real low light: one lamp to the side, and a cheap sensor's dark end.
    shadow_prob: float = 0.0  # light from one side: gain falls to [shadow_min, 1] across the face, soft or hard edge
    shadow_min: float = 0.1
    crush_prob: float = 0.0  # black level up to black_max grey levels clipped away (after the noise), then a
    black_max: float = 40.0  # tone curve with gamma in [gamma_min, gamma_max] (the sensor's response to grey)
    gamma_min: float = 0.7
    gamma_max: float = 2.5


@dataclass(frozen=True)
class Recipe:
    arch: str = "vgg"
    arch_args: dict[str, Any] = field(default_factory=dict)
    size: int = 48  # input side in pixels (the trainer takes 48)
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05  # AdamW, decoupled
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    ferplus_weight: float = 0.0  # 0 = FER2013 hard labels; 1 = FER+ vote shares as soft targets
    class_weighting: str = "sqrt"  # none | sqrt | balanced (inverse frequency), applied in the loss only
    patience: int = 8  # early stopping on val accuracy
    seed: int = 1234
    # The share of the loss spent on matching the teachers' softened outputs, their temperature, mixup
    # (Beta(a, a)) on the shared batch, and the decay of an exponential moving average of the weights (0 = none)
    # that is evaluated and kept instead.
    distill_weight: float = 0.0
    distill_temperature: float = 4.0
    mixup: float = 0.0
    ema_decay: float = 0.0
    # Which epoch's weights are kept as best: "val" (clean val accuracy) or "camera" (the mean of clean val,
    # val dimmed x0.3 with noise sigma 8, and val blurred sigma 2: the living-room targets).
    select_on: str = "val"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class RecipeError(ValueError):
    pass


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    """TOML and JSON give lists; recipes hold tuples so that two equal recipes compare equal."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _build(cls: type, values: dict[str, Any], where: str):
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise RecipeError(f"{where}: unknown keys {unknown}; known: {sorted(names)}")
    return cls(**_tuples(values))


def load_recipe(path: Path, overrides: dict[str, Any] | None = None) -> Recipe:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe; see training/configs/") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML ({exc})") from None
    raw.update(overrides or {})
    augment = _build(AugmentConfig, raw.pop("augment", {}), f"{path} [augment]")
    recipe = _build(Recipe, {**raw, "augment": augment, "arch_args": _tuples(raw.pop("arch_args", {}))}, str(path))
    if recipe.class_weighting not in {"none", "sqrt", "balanced"}:
        raise RecipeError(f"{path}: class_weighting must be none, sqrt or balanced")
    if not 0.0 <= recipe.ferplus_weight <= 1.0:
        raise RecipeError(f"{path}: ferplus_weight must be within 0..1")
    if recipe.augment.enhance not in {"none", "denoise-stretch"}:
        raise RecipeError(f"{path}: [augment] enhance must be none or denoise-stretch (moodspeaker.core.enhance)")
    if recipe.select_on not in {"val", "camera"}:
        raise RecipeError(f"{path}: select_on must be val or camera")
    if not 0.0 <= recipe.distill_weight <= 1.0:
        raise RecipeError(f"{path}: distill_weight must be within 0..1")
    return recipe


def recipe_from_dict(values: dict[str, Any]) -> Recipe:
    values = dict(values)
    augment = _build(AugmentConfig, values.pop("augment", {}), "recipe [augment]")
    return _build(Recipe, {**values, "augment": augment, "arch_args": _tuples(values.pop("arch_args", {}))}, "recipe")
