"""On-the-fly augmentation of whole batches, in the tf.data pipeline (never before the split).

One projective warp per batch does flip, rotation, scale and shift together, then brightness/contrast
jitter, the camera model (camera_model.py: blur, low light, distance, sensor noise, JPEG, occlusion) and
random erasing; all vectorised so two CPU cores keep up. distill.augment is the PyTorch twin.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from moodspeaker_train.camera_model import blur_kernels, dct_matrix, jpeg_table
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


def _chosen(n: tf.Tensor, prob: float) -> tf.Tensor:
    return tf.reshape(_uniform(n, 0.0, 1.0) < prob, (-1, 1, 1, 1))


def _jpeg(images: tf.Tensor, quality: tf.Tensor) -> tf.Tensor:
    """JPEG's lossy step on grayscale: 8x8 block DCT, quantised with libjpeg's luminance table at `quality`
    (an int32 scalar tensor, 1..100)."""
    table = tf.gather(tf.constant(np.stack([jpeg_table(q) for q in range(1, 101)])), quality - 1)
    d = tf.constant(dct_matrix())
    n, size = tf.shape(images)[0], tf.shape(images)[1]
    blocks = tf.transpose(tf.reshape(images[..., 0] - 128.0, (n, size // 8, 8, size // 8, 8)), (0, 1, 3, 2, 4))
    coef = tf.einsum("ij,bxyjk,lk->bxyil", d, blocks, d)
    coef = tf.round(coef / table) * table
    back = tf.einsum("ji,bxyjk,kl->bxyil", d, coef, d)
    return tf.reshape(tf.transpose(back, (0, 1, 3, 2, 4)), (n, size, size, 1)) + 128.0


def _camera(images: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    """Each step of the camera model on the faces its probability picks (see camera_model.py for the order)."""
    n, size = tf.shape(images)[0], tf.shape(images)[1]
    if cfg.blur_prob > 0:
        bank = blur_kernels()
        kernels = tf.constant(bank.transpose(1, 2, 0)[:, :, None, :])  # (9, 9, 1, K)
        pad = bank.shape[1] // 2
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        every = tf.nn.conv2d(padded, kernels, strides=1, padding="VALID")  # (B, S, S, K)
        pick = tf.one_hot(tf.random.uniform((n,), 0, len(bank), dtype=tf.int32), len(bank))
        blurred = tf.reduce_sum(every * pick[:, None, None, :], axis=-1, keepdims=True)
        images = tf.where(_chosen(n, cfg.blur_prob), blurred, images)
    if cfg.lowlight_prob > 0:
        gain = tf.reshape(_uniform(n, cfg.gain_min, 1.0), (-1, 1, 1, 1))
        images = tf.where(_chosen(n, cfg.lowlight_prob), images * gain, images)
    if cfg.downscale_prob > 0:
        small = tf.random.uniform((), cfg.downscale_min, size, dtype=tf.int32)
        down = tf.image.resize(images, tf.stack([small, small]), method="area")
        up = tf.image.resize(down, tf.stack([size, size]), method="bilinear")
        images = tf.where(_chosen(n, cfg.downscale_prob), up, images)
    if cfg.noise_prob > 0:
        shot = tf.reshape(_uniform(n, 0.0, cfg.shot_noise_max), (-1, 1, 1, 1))
        read = tf.reshape(_uniform(n, 0.0, cfg.read_noise_max), (-1, 1, 1, 1))
        noisy = images + tf.sqrt(shot * images + read * read) * tf.random.normal(tf.shape(images))
        images = tf.clip_by_value(tf.where(_chosen(n, cfg.noise_prob), noisy, images), 0.0, 255.0)
    if cfg.jpeg_prob > 0:
        quality = tf.random.uniform((), int(cfg.jpeg_quality_min), 96, dtype=tf.int32)
        images = tf.where(_chosen(n, cfg.jpeg_prob), _jpeg(images, quality), images)
    if cfg.occlude_prob > 0:
        top = _uniform(n, 0.55, 0.8) * tf.cast(size, tf.float32)
        below = tf.range(tf.cast(size, tf.float32))[None, :] >= top[:, None]  # (B, S): rows under the object
        level = tf.reshape(_uniform(n, 20.0, 235.0), (-1, 1, 1, 1))
        patch = level + 3.0 * tf.random.normal(tf.shape(images))
        mask = below[:, :, None, None] & _chosen(n, cfg.occlude_prob)
        images = tf.where(mask, patch, images)
    return tf.clip_by_value(images, 0.0, 255.0)


def augment_batch(images: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    """images: (B, S, S, 1) float32 pixels 0..255 -> augmented, same shape and range."""
    images = _warp(images, cfg)
    images = _photometric(images, cfg)
    images = _camera(images, cfg)
    if cfg.erase_prob > 0:
        images = _erase(images, cfg)
    return images
