"""On-the-fly augmentation of whole batches, in the tf.data pipeline (never before the split).

One projective warp per batch does flip, rotation, scale and shift together, then
brightness/contrast jitter and random erasing; all vectorised so two CPU cores keep up.
"""

from __future__ import annotations

import math

import tensorflow as tf

from moodspeaker_train.recipe import AugmentConfig


def _uniform(n: tf.Tensor, lo: float, hi: float) -> tf.Tensor:
    return tf.random.uniform((n,), lo, hi)


def _warp(images: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    n = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    c = (size - 1.0) / 2.0
    theta = _uniform(n, -1.0, 1.0) * (cfg.rotate_deg * math.pi / 180.0)
    s = 1.0 + _uniform(n, -cfg.scale, cfg.scale)
    flip = tf.where(_uniform(n, 0.0, 1.0) < 0.5, -1.0, 1.0) if cfg.flip else tf.ones((n,))
    tx = _uniform(n, -cfg.shift, cfg.shift) * size
    ty = _uniform(n, -cfg.shift, cfg.shift) * size
    # Output pixel (x, y) samples input at A @ (x - c, y - c) + c + t, with A = R(theta) diag(flip, 1) / s.
    cos, sin = tf.cos(theta) / s, tf.sin(theta) / s
    a0, a1 = cos * flip, -sin
    b0, b1 = sin * flip, cos
    a2 = c - a0 * c - a1 * c + tx
    b2 = c - b0 * c - b1 * c + ty
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT",
    )


def _photometric(images: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    n = tf.shape(images)[0]
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    contrast = tf.reshape(1.0 + _uniform(n, -cfg.contrast, cfg.contrast), (-1, 1, 1, 1))
    bright = tf.reshape(_uniform(n, -cfg.brightness, cfg.brightness) * 255.0, (-1, 1, 1, 1))
    return tf.clip_by_value((images - mean) * contrast + mean + bright, 0.0, 255.0)


def _erase(images: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    """Random erasing: one rectangle per chosen image filled with uniform noise."""
    n = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    area = _uniform(n, *cfg.erase_area) * size * size
    aspect = tf.exp(_uniform(n, math.log(0.3), math.log(3.3)))
    h = tf.minimum(tf.sqrt(area * aspect), size)
    w = tf.minimum(tf.sqrt(area / aspect), size)
    y0 = _uniform(n, 0.0, 1.0) * (size - h)
    x0 = _uniform(n, 0.0, 1.0) * (size - w)
    grid = tf.range(size)
    in_y = (grid[None, :] >= y0[:, None]) & (grid[None, :] < (y0 + h)[:, None])
    in_x = (grid[None, :] >= x0[:, None]) & (grid[None, :] < (x0 + w)[:, None])
    chosen = _uniform(n, 0.0, 1.0) < cfg.erase_prob
    mask = in_y[:, :, None] & in_x[:, None, :] & chosen[:, None, None]
    noise = tf.random.uniform(tf.shape(images), 0.0, 255.0)
    return tf.where(mask[..., None], noise, images)


def augment_batch(images: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    """images: (B, S, S, 1) float32 pixels 0..255 -> augmented, same shape and range."""
    images = _warp(images, cfg)
    images = _photometric(images, cfg)
    if cfg.erase_prob > 0:
        images = _erase(images, cfg)
    return images
