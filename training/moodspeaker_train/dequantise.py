"""Float weights and soft targets recovered from a shipped int8 model, for retraining without its lost run.

`dequantise` reads every int8 weight and int32 bias of the `.tflite` (the converter folded each batch norm
into the convolution before it) and loads them into the PyTorch twin (`torch_models.Xception`), conv/dense
op by op in graph order, which for this architecture is the order the twin creates its layers. A folded
layer has a bias where the twin has a batch norm; the batch norm is then set up so that it changes nothing
in inference (`(x - m) / sqrt(v + eps) * g + b == x + bias`) while its running statistics and scale are
those the convolution's output really has on train faces (`calibrate_batch_norm`), so that training mode,
which normalises with the batch's statistics, starts from (almost) the same function.

`shipped_logits` runs the int8 model itself, as the device does, on every face and its mirror image and
averages the two: the soft targets for a student where there are no teacher logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from moodspeaker_train import torch_models

_WEIGHT_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def _interpreter(model: Path):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(model))
    it.allocate_tensors()
    return it


def _dequantised(it, index: int) -> np.ndarray:
    detail = next(t for t in it.get_tensor_details() if t["index"] == index)
    q = it.get_tensor(index).astype(np.float64)
    params = detail["quantization_parameters"]
    scales, zeros, axis = params["scales"], params["zero_points"], params["quantized_dimension"]
    if len(scales) == 0:  # already float
        return q.astype(np.float32)
    shape = [1] * q.ndim
    if len(scales) > 1:
        shape[axis] = len(scales)
    return ((q - zeros.reshape(shape)) * scales.reshape(shape)).astype(np.float32)


def int8_layers(model: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(op name, float weight, float bias) for every conv, depthwise conv and dense op, in graph order."""
    it = _interpreter(model)
    layers = []
    for op in it._get_ops_details():
        if op["op_name"] in _WEIGHT_OPS:
            _, weight, bias = op["inputs"]
            layers.append((op["op_name"], _dequantised(it, weight), _dequantised(it, bias)))
    return layers


def input_scaling(model: Path) -> tuple[float, float]:
    """The model's own pixel scaling (MUL then ADD constants before the first conv): (1/127.5, -1) expected."""
    it = _interpreter(model)
    ops = it._get_ops_details()
    if [op["op_name"] for op in ops[:2]] != ["MUL", "ADD"]:
        raise ValueError(f"{model}: expected the pixel scaling (MUL, ADD) first, got {[o['op_name'] for o in ops[:3]]}")
    consts = [float(_dequantised(it, op["inputs"][1]).reshape(())) for op in ops[:2]]
    return consts[0], consts[1]


def load_int8(model_file: Path, twin: torch_models.Xception) -> torch_models.Xception:
    """Set the twin's weights from the int8 model (see the module docstring); batch norms left as identity."""
    scale, offset = input_scaling(model_file)
    if abs(scale - 1 / 127.5) > 1e-6 or abs(offset + 1) > 1e-6:
        raise ValueError(f"{model_file}: pixel scaling x*{scale}+{offset} is not the twin's x/127.5-1")
    layers = int8_layers(model_file)
    targets = [m for m in twin.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(layers) != len(targets):
        raise ValueError(f"{model_file}: {len(layers)} conv/dense ops, the twin has {len(targets)} layers")
    norms = {id(conv): bn for conv, bn in _conv_norm_pairs(twin)}
    with torch.no_grad():
        for (op, weight, bias), module in zip(layers, targets, strict=True):
            if isinstance(module, nn.Linear):
                expected = "FULLY_CONNECTED"
                w = torch.from_numpy(weight)  # (out, in) in both
            elif module.groups > 1:
                expected = "DEPTHWISE_CONV_2D"
                w = torch.from_numpy(weight).permute(3, 0, 1, 2)  # (1, kh, kw, C) -> (C, 1, kh, kw)
            else:
                expected = "CONV_2D"
                w = torch.from_numpy(weight).permute(0, 3, 1, 2)  # (out, kh, kw, in) -> (out, in, kh, kw)
            if op != expected or tuple(w.shape) != tuple(module.weight.shape):
                raise ValueError(f"{model_file}: op {op} {tuple(w.shape)} does not fit the twin's "
                                 f"{type(module).__name__} {tuple(module.weight.shape)}")
            module.weight.copy_(w)
            b = torch.from_numpy(bias)
            if isinstance(module, nn.Linear):
                module.bias.copy_(b)
                continue
            bn = norms[id(module)]
            bn.weight.fill_(1.0)
            bn.bias.copy_(b)
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
    return twin


def _conv_norm_pairs(twin: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Each convolution with the batch norm that follows it (the twin creates them in that order)."""
    pairs, conv = [], None
    for module in twin.modules():
        if isinstance(module, nn.Conv2d):
            conv = module
        elif isinstance(module, nn.BatchNorm2d):
            if conv is None or conv.out_channels != module.num_features:
                raise ValueError("the twin has a batch norm that does not follow its convolution")
            pairs.append((conv, module))
            conv = None
    return pairs


@torch.no_grad()
def calibrate_batch_norm(twin: nn.Module, images: np.ndarray, batch: int = 512) -> None:
    """Give each identity batch norm the statistics of its input on `images` without changing the function.

    With mean m and variance v measured, setting running stats (m, v), scale sqrt(v + eps) and shift
    bias + m gives the same output in inference mode, and in training mode the batch's own statistics are
    close to (m, v): fine-tuning starts where the int8 model is.
    """
    twin.eval()
    sums: dict[int, list[torch.Tensor]] = {}

    def hook(module: nn.BatchNorm2d, inputs: tuple[torch.Tensor], _output: torch.Tensor) -> None:
        x = inputs[0].double()
        s = sums.setdefault(id(module), [torch.zeros(x.shape[1], dtype=torch.float64)] * 2 + [0])
        s[0] = s[0] + x.sum(dim=(0, 2, 3))
        s[1] = s[1] + (x * x).sum(dim=(0, 2, 3))
        s[2] += x.shape[0] * x.shape[2] * x.shape[3]

    norms = [m for m in twin.modules() if isinstance(m, nn.BatchNorm2d)]
    handles = [m.register_forward_hook(hook) for m in norms]
    try:
        for i in range(0, len(images), batch):
            twin(torch.from_numpy(images[i:i + batch, None].astype(np.float32)))
    finally:
        for h in handles:
            h.remove()
    for bn in norms:
        total, squares, n = sums[id(bn)]
        mean = total / n
        var = (squares / n - mean * mean).clamp(min=1e-8)
        bn.running_mean.copy_(mean.float())
        bn.running_var.copy_(var.float())
        bn.bias.add_(mean.float())
        bn.weight.copy_(torch.sqrt(var + bn.eps).float())


def shipped_logits(model: Path, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, 7) float32: the int8 model's dequantised logits, averaged over each face and its mirror image."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(model), num_threads=1)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    side = inp["shape"][1]
    it.resize_tensor_input(inp["index"], [batch, side, side, 1])
    it.allocate_tensors()
    result = np.zeros((len(images), torch_models.NUM_CLASSES), np.float32)
    for flip in (False, True):
        faces = images[:, :, ::-1] if flip else images
        for i in range(0, len(faces), batch):
            chunk = faces[i:i + batch].astype(np.float32)
            n = len(chunk)
            padded = np.zeros((batch, side, side), np.float32)
            padded[:n] = chunk
            q = np.clip(np.round(padded / in_scale + in_zero), -128, 127).astype(np.int8)
            it.set_tensor(inp["index"], q[..., None])
            it.invoke()
            logits = (it.get_tensor(out["index"])[:n].astype(np.float32) - out_zero) * out_scale
            result[i:i + n] += logits / 2
    return result
