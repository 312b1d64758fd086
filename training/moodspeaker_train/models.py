"""The Keras twin of the shipped architecture, for the int8 TFLite export only (training is PyTorch:
torch_models.py builds the same network layer for layer, and `export.set_twin_weights` hands its weights over).

It takes raw grayscale pixels (float 0..255, shape (S, S, 1)) and scales them inside the graph, so the int8
model's input quantisation is exactly `pixel - 128` and the device does no float maths. Every block is
Conv-BN(-ReLU) so batch norm folds away at export.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

NUM_CLASSES = 7


def _conv_bn(x, filters: int, kernel: int = 3, strides: int = 1, act: str | None = "relu"):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation(act)(x) if act else x


def _stem(size: int) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input((size, size, 1), name="pixels")
    return inputs, layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inputs)


def _head(x, dropout: float) -> keras.KerasTensor:
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return layers.Dense(NUM_CLASSES, name="logits")(x)


def _separable(x, filters: int, act: str | None = "relu"):
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return _conv_bn(x, filters, kernel=1, act=act)


def _xception_down(x, filters: int):
    """Two separable convs and a stride-2 max-pool, plus a projected stride-2 shortcut."""
    shortcut = _conv_bn(x, filters, kernel=1, strides=2, act=None)
    y = _separable(x, filters)
    y = _separable(y, filters, act=None)
    y = layers.MaxPooling2D(3, strides=2, padding="same")(y)
    return layers.Activation("relu")(layers.Add()([y, shortcut]))


def _xception_residual(x):
    y = _separable(x, x.shape[-1])
    y = _separable(y, x.shape[-1], act=None)
    return layers.Activation("relu")(layers.Add()([x, y]))


def xception(
    size: int = 48,
    stem: tuple[int, int] = (16, 32),
    widths: tuple[int, ...] = (64, 128, 256),
    extra: tuple[int, ...] = (0, 1, 1),
    dropout: float = 0.2,
) -> keras.Model:
    """Xception-style net cut for XNNPACK int8 latency.

    One thin full-resolution conv, a stride-2 conv, then per stage a separable downsampling block
    and `extra` separable residual blocks. Depthwise-separable convs buy depth and width for few MACs,
    so the int8 model is cheap per face. Latency depends on the CPU's int8 instructions: xception48 takes 0.62 ms
    on an AVX-only x86 (the mini-Xception peer: 0.46 ms) but 0.19 ms on one with AVX-512 VNNI (peer: 0.38 ms),
    where the wider xception80 (widths 80/160/320) takes 0.28 ms.
    """
    inputs, x = _stem(size)
    x = _conv_bn(x, stem[0])
    x = _conv_bn(x, stem[1], strides=2)
    for width, repeats in zip(widths, extra, strict=True):
        x = _xception_down(x, width)
        for _ in range(repeats):
            x = _xception_residual(x)
    return keras.Model(inputs, _head(x, dropout), name="xception")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {"xception": xception}


def build(arch: str, size: int, **kwargs) -> keras.Model:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](size=size, **kwargs)


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass (conv, depthwise and dense layers)."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            macs += h * w * c * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c = layer.output.shape
            cin = layer.input.shape[-1]
            macs += h * w * c * cin * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return int(macs)
