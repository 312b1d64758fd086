"""How much a face crop can be trusted: size, brightness, noise and sharpness, from its pixels alone.

A dark, noisy, blurred or tiny crop still makes the model answer, and its answer is biased (in a dim room
most faces come out "sad"). So the smoother weights each frame by the crop's quality, and a crop below
`QualityParams.skip_below` is not averaged at all: it cannot flip the mood. The status line shows the
main reason ("face too dark", "too far").

Everything is measured on the crop brought to about the model's scale (whole blocks of pixels averaged,
no interpolation), so a large, sharp face in the frame is not penalised for its camera noise, which the
model's resize averages away, and blur is judged relative to the face, not to the frame. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REASONS = ("too far", "face too dark", "too noisy", "too blurred")
UNCONFIRMED = "new face"  # the status while a face is not yet confirmed over consecutive frames (core.fusion)


@dataclass(frozen=True)
class QualityParams:
    """Thresholds, each as (poor, good): at `poor` the factor is 0, at `good` it is 1, linear between (`poor`
    may be above `good` for measures where less is better). Set for the crop the model sees: fused over time
    (core.fusion) and then denoised and stretched (core.enhance), which reads a dim, noisy crop far better
    than the model alone (val dim ×0.3 + σ8: 0.55 instead of 0.23). Clean, rotated and gamma-darkened crops
    keep weight 1, dim ×0.3 crops count less the noisier they are (σ4 about 0.95, σ8 about 0.4), blur σ2 is
    skipped. Chosen on the sofa clips (scripts/make_sofa_clips.py): with the earlier (10, 20) and
    (0.28, 0.18), every lamp-lit crop was skipped and a lamp-lit listener got a mood after 50 s, if ever."""

    side_px: tuple[float, float] = (18.0, 30.0)  # face side in the frame, px
    contrast: tuple[float, float] = (4.0, 10.0)  # grey-level standard deviation over the face
    noise: tuple[float, float] = (0.6, 0.25)  # fine-scale response (noise and texture) / contrast
    sharpness: tuple[float, float] = (0.02, 0.06)  # detail at half the model's scale / contrast
    dark_below: float = 70.0  # mean grey level under which low signal-to-noise is reported as "face too dark"
    low_light: tuple[float, float] = (12.0, 25.0)  # contrast: `low_light` is 1 at the first, 0 from the second on
    far: tuple[float, float] = (36.0, 60.0)  # face side in the image cut from, px: `far` is 1 at the first, 0 from the second on
    skip_below: float = 0.25  # a crop whose weight is below this is not averaged at all
    scale_px: int = 48  # the scale the measures are taken at (the model's input side)

    def __post_init__(self) -> None:
        for name in ("side_px", "contrast", "noise", "sharpness", "low_light", "far"):
            poor, good = getattr(self, name)
            if poor == good or min(poor, good) < 0:
                raise ValueError(f"{name}: need two different non-negative thresholds, got ({poor}, {good})")
        if not 0 <= self.skip_below <= 1:
            raise ValueError("skip_below must be between 0 and 1")
        if self.scale_px < 8:
            raise ValueError("scale_px must be >= 8")


@dataclass(frozen=True)
class CropQuality:
    side_px: int  # the crop's side in the frame
    brightness: float  # mean grey level, 0..255
    contrast: float  # grey-level standard deviation at the model's scale
    noise: float  # fine-scale response at the model's scale (Immerkaer sigma: sensor noise plus finest texture)
    sharpness: float  # detail at half the model's scale, relative to contrast
    weight: float  # 0..1: how much this crop counts in the smoother (0: skipped)
    reason: str | None  # the weakest factor when the weight is below 1 (one of REASONS)
    low_light: float = 0.0  # 0..1: how far the face's contrast lies below full light's (lamp-lit sofa clips: most crops 0.5-1,
    # full light: 0, val faces: 0 for 99%); the smoother asks such a crop for more confidence (core.smoother)
    far: float = 0.0  # 0..1: how far the face's side lies below what the model reads as well as a near face (a 36 px
    # face: 1, 48 px: 0.5, 60 px and larger: 0); the smoother asks such a crop for more confidence too


def _ramp(value: float, poor_good: tuple[float, float]) -> float:
    poor, good = poor_good
    return min(max((value - poor) / (good - poor), 0.0), 1.0)


def _shrink(img: np.ndarray, k: int) -> np.ndarray:
    """Means of whole k x k blocks (the ragged edge dropped)."""
    if k <= 1:
        return img
    h, w = (img.shape[0] // k) * k, (img.shape[1] // k) * k
    return img[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def noise_sigma(img: np.ndarray) -> float:
    """Immerkaer's fast noise estimate: the mean absolute response to a kernel that cancels smooth structure.

    (J. Immerkaer, "Fast noise variance estimation", CVIU 1996.) On a face it also picks up the finest texture,
    so it is judged relative to the contrast. Grey levels; 0 for images under 3x3."""
    if min(img.shape) < 3:
        return 0.0
    f = img.astype(np.float32)
    # [[1, -2, 1], [-2, 4, -2], [1, -2, 1]] as a separable [1, -2, 1] x [1, -2, 1]
    rows = f[:, :-2] - 2 * f[:, 1:-1] + f[:, 2:]
    both = rows[:-2] - 2 * rows[1:-1] + rows[2:]
    return float(math.sqrt(math.pi / 2) * np.abs(both).mean() / 6)


def assess(crop: np.ndarray, params: QualityParams | None = None, side_px: int | None = None) -> CropQuality:
    """Quality of one uint8 grayscale face crop (as cut from the frame, before the model's resize; or several
    such crops fused at the model's scale, core.fusion, with `side_px` the face's side in the frame)."""
    if crop.ndim != 2 or crop.dtype != np.uint8 or min(crop.shape) < 1:
        raise ValueError(f"expected a non-empty 2-D uint8 crop, got {crop.dtype} {crop.shape}")
    p = params or QualityParams()
    side = min(crop.shape)
    img = _shrink(crop.astype(np.float32), max(1, round(side / p.scale_px)))
    brightness, contrast = float(img.mean()), float(img.std())
    noise = noise_sigma(img)
    detail = noise_sigma(_shrink(img, 2))
    sharpness = detail / contrast if contrast > 0 else 0.0
    if side_px is not None:
        side = side_px
    factors = {
        "too far": _ramp(side, p.side_px),
        "face too dark": _ramp(contrast, p.contrast),
        "too noisy": _ramp(noise / contrast, p.noise) if contrast > 0 else 0.0,
        "too blurred": _ramp(sharpness, p.sharpness),
    }
    weight = math.prod(factors.values())
    reason = None if weight >= 1.0 else min(factors, key=factors.__getitem__)
    if reason == "too noisy" and brightness < p.dark_below:
        reason = "face too dark"  # in a dim room the sensor's noise swamps the face: say what the listener can fix
    if weight < p.skip_below:
        weight = 0.0
    return CropQuality(side_px=side, brightness=round(brightness, 2), contrast=round(contrast, 2), noise=round(noise, 3),
                       sharpness=round(sharpness, 4), weight=round(weight, 4), reason=reason,
                       low_light=round(1.0 - _ramp(contrast, p.low_light), 4), far=round(1.0 - _ramp(side, p.far), 4))
