"""PyTorch twins of the exported Keras architecture, and the (never exported) teacher, for GPU training.

A GPU box lent for a while has PyTorch but no TensorFlow; the int8 export needs a Keras model. So the
student is built here layer for layer like `models.xception` (TF "same" padding, Keras batch-norm
epsilon), and `keras_weights` hands its weights over in Keras layouts for `export.set_twin_weights`.
Only numpy and torch are imported: this file runs where TensorFlow does not.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 7
KERAS_BN_EPS = 1e-3  # keras.layers.BatchNormalization's default epsilon
KERAS_BN_MOMENTUM = 0.01  # Keras momentum 0.99, in PyTorch's convention


class SamePad(nn.Module):
    """TensorFlow's "same" padding for a stride-2 window: the odd pixel goes to the bottom/right."""

    def __init__(self, kernel: int, stride: int, value: float = 0.0) -> None:
        super().__init__()
        self.kernel, self.stride, self.value = kernel, stride, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):
            out = -(-size // self.stride)
            total = max((out - 1) * self.stride + self.kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads, value=self.value) if any(pads) else x


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)


class ConvBN(nn.Module):
    """Conv2D(no bias) + BatchNorm + optional ReLU, padded like Keras' padding="same"."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.pad = SamePad(kernel, stride) if stride > 1 else nn.Identity()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=0 if stride > 1 else kernel // 2, bias=False)
        self.bn = _bn(cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(self.pad(x)))
        return F.relu(x) if self.relu else x


class Separable(nn.Module):
    """DepthwiseConv2D 3x3 + BN, then a 1x1 ConvBN: `models._separable`."""

    def __init__(self, cin: int, cout: int, relu: bool = True) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.dw_bn = _bn(cin)
        self.pw = ConvBN(cin, cout, kernel=1, relu=relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw_bn(self.dw(x)))


class XceptionDown(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.shortcut = ConvBN(cin, cout, kernel=1, stride=2, relu=False)  # built first, as in Keras
        self.sep1 = Separable(cin, cout)
        self.sep2 = Separable(cout, cout, relu=False)
        self.pool_pad = SamePad(3, 2, value=float("-inf"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.max_pool2d(self.pool_pad(self.sep2(self.sep1(x))), 3, 2)
        return F.relu(y + self.shortcut(x))


class XceptionResidual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.sep1 = Separable(channels, channels)
        self.sep2 = Separable(channels, channels, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.sep2(self.sep1(x)))


class PixelClassifier(nn.Module):
    """Features, global average pooling, dropout, 7 logits; raw pixels 0..255 in, scaled to -1..1 inside."""

    def __init__(self, features: nn.Module, channels: int, dropout: float) -> None:
        super().__init__()
        self.features = features
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Linear(channels, NUM_CLASSES)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.features(pixels / 127.5 - 1.0)
        return self.logits(self.dropout(x.mean(dim=(2, 3))))


class Xception(PixelClassifier):
    """The twin of `models.xception`; input (B, 1, S, S) raw pixels 0..255, output 7 logits."""

    def __init__(self, stem: tuple[int, int] = (16, 32), widths: tuple[int, ...] = (64, 128, 256),
                 extra: tuple[int, ...] = (0, 1, 1), dropout: float = 0.2) -> None:
        blocks: list[nn.Module] = [ConvBN(1, stem[0]), ConvBN(stem[0], stem[1], stride=2)]
        cin = stem[1]
        for width, repeats in zip(widths, extra, strict=True):
            blocks.append(XceptionDown(cin, width))
            blocks += [XceptionResidual(width) for _ in range(repeats)]
            cin = width
        super().__init__(nn.Sequential(*blocks), cin, dropout)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNetTeacher(PixelClassifier):
    """ResNet-18 for 48 px faces (stride-1 stem, no early pooling): a GPU-sized teacher, never shipped."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512), blocks: int = 2, dropout: float = 0.3) -> None:
        layers: list[nn.Module] = [nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
        cin = widths[0]
        for i, width in enumerate(widths):
            for b in range(blocks):
                layers.append(BasicBlock(cin, width, 2 if (b == 0 and i > 0) else 1))
                cin = width
        super().__init__(nn.Sequential(*layers), cin, dropout)


def keras_weights(model: Xception) -> dict[str, np.ndarray]:
    """The student's weights in Keras layouts, keyed by layer kind and creation order ("conv_003", ...).

    Keras lists a functional model's layers in graph order, not in the order they were made, so the
    importer matches each kind (conv, depthwise, batchnorm, dense) by creation order, which this module
    shares with `models.xception`. Conv kernels go (out, in, kh, kw) -> (kh, kw, in, out), depthwise
    (C, 1, kh, kw) -> (kh, kw, C, 1), dense transposed; batch norm is gamma, beta, moving mean, variance.
    """
    out: dict[str, np.ndarray] = {}
    counts = {"conv": 0, "depthwise": 0, "batchnorm": 0, "dense": 0}

    def add(kind: str, *arrays: torch.Tensor) -> None:
        for j, a in enumerate(arrays):
            out[f"{kind}_{counts[kind]:03d}_{j}"] = np.ascontiguousarray(a.detach().cpu().float().numpy())
        counts[kind] += 1

    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.groups > 1:
            add("depthwise", module.weight.permute(2, 3, 0, 1))
        elif isinstance(module, nn.Conv2d):
            add("conv", module.weight.permute(2, 3, 1, 0))
        elif isinstance(module, nn.BatchNorm2d):
            add("batchnorm", module.weight, module.bias, module.running_mean, module.running_var)
        elif isinstance(module, nn.Linear):
            add("dense", module.weight.T, module.bias)
    return out


def load_keras_weights(model: Xception, weights: dict[str, np.ndarray], source: str) -> Xception:
    """The inverse of `keras_weights`: load a best.weights.npz (Keras layouts) into the twin."""
    counts = {"conv": 0, "depthwise": 0, "batchnorm": 0, "dense": 0}
    used = 0

    def take(kind: str, n: int) -> list[torch.Tensor]:
        nonlocal used
        arrays = [weights.get(f"{kind}_{counts[kind]:03d}_{j}") for j in range(n)]
        if any(a is None for a in arrays):
            raise ValueError(f"{source}: no {kind} layer {counts[kind]} (architecture arguments differ?)")
        counts[kind] += 1
        used += n
        return [torch.from_numpy(np.asarray(a, np.float32)) for a in arrays]

    def put(param: torch.Tensor, value: torch.Tensor) -> None:
        if tuple(param.shape) != tuple(value.shape):
            raise ValueError(f"{source}: shape {tuple(value.shape)} does not fit {tuple(param.shape)} "
                             "(architecture arguments differ?)")
        param.copy_(value)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module.groups > 1:
                put(module.weight, take("depthwise", 1)[0].permute(2, 3, 0, 1))
            elif isinstance(module, nn.Conv2d):
                put(module.weight, take("conv", 1)[0].permute(3, 2, 0, 1))
            elif isinstance(module, nn.BatchNorm2d):
                for param, value in zip((module.weight, module.bias, module.running_mean, module.running_var),
                                        take("batchnorm", 4), strict=True):
                    put(param, value)
            elif isinstance(module, nn.Linear):
                w, b = take("dense", 2)
                put(module.weight, w.T)
                put(module.bias, b)
    if used != len(weights):
        raise ValueError(f"{source}: holds {len(weights)} arrays, the twin takes {used}")
    return model
