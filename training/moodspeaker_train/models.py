"""Pi-sized architectures, built from scratch (no pretrained weights can be fetched here).

All take raw grayscale pixels (float 0..255, shape (S, S, 1)) and scale them inside the graph, so
the int8 model's input quantisation is exactly `pixel - 128` and the device does no float maths.
Every block is Conv-BN-ReLU so batch norm folds away at export.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

NUM_CLASSES = 7


def _conv_bn(x, filters: int, kernel: int = 3, strides: int = 1, act: str | None = "relu", wd: float = 0.0):
    x = layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False,
        kernel_regularizer=keras.regularizers.l2(wd) if wd else None,
    )(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation(act)(x) if act else x


def _stem(size: int) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input((size, size, 1), name="pixels")
    return inputs, layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inputs)


def _head(x, dropout: float) -> keras.KerasTensor:
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return layers.Dense(NUM_CLASSES, name="logits")(x)


def vgg(
    size: int = 48,
    widths: tuple[int, ...] = (32, 64, 128, 256),
    first_convs: int = 2,
    dropout: float = 0.4,
) -> keras.Model:
    """Compact VGG: per block two 3x3 Conv-BN-ReLU and a 2x2 max-pool.

    `first_convs=1` keeps one conv at full resolution, where a CPU spends most of its time.
    """
    inputs, x = _stem(size)
    for i, w in enumerate(widths):
        for _ in range(first_convs if i == 0 else 2):
            x = _conv_bn(x, w)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(0.1 + 0.05 * i)(x)
    x = _conv_bn(x, widths[-1] * 2, kernel=1)
    return keras.Model(inputs, _head(x, dropout), name="vgg")


def _basic_block(x, filters: int, strides: int):
    shortcut = x
    y = _conv_bn(x, filters, strides=strides)
    y = _conv_bn(y, filters, act=None)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, kernel=1, strides=strides, act=None)
    return layers.Activation("relu")(layers.Add()([y, shortcut]))


def resnet(size: int = 48, widths: tuple[int, ...] = (32, 64, 128, 256), blocks: int = 2, dropout: float = 0.3) -> keras.Model:
    """ResNet-18-like with basic blocks; the first stage keeps full resolution."""
    inputs, x = _stem(size)
    x = _conv_bn(x, widths[0])
    for i, w in enumerate(widths):
        for b in range(blocks):
            x = _basic_block(x, w, strides=2 if (b == 0 and i > 0) else 1)
    return keras.Model(inputs, _head(x, dropout), name="resnet")


def _inverted_residual(x, filters: int, strides: int, expand: int):
    inp = x
    hidden = x.shape[-1] * expand
    if expand != 1:
        x = _conv_bn(x, hidden, kernel=1, act="relu6")
    x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu6")(x)
    x = _conv_bn(x, filters, kernel=1, act=None)
    if strides == 1 and inp.shape[-1] == filters:
        x = layers.Add()([inp, x])
    return x


def mobilenetv2(size: int = 48, alpha: float = 1.0, dropout: float = 0.3) -> keras.Model:
    """MobileNetV2 adapted to 48-64 px faces: stride-1 stem, then (expansion, width, repeats, stride)."""
    spec = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1), (6, 160, 2, 2))
    inputs, x = _stem(size)
    x = _conv_bn(x, int(32 * alpha), act="relu6")
    for expand, width, repeats, stride in spec:
        for r in range(repeats):
            x = _inverted_residual(x, max(8, int(width * alpha)), stride if r == 0 else 1, expand)
    x = _conv_bn(x, int(640 * alpha), kernel=1, act="relu6")
    return keras.Model(inputs, _head(x, dropout), name="mobilenetv2")


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


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "vgg": vgg,
    "xception": xception,
    "resnet": resnet,
    "mobilenetv2": mobilenetv2,
}


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
