"""Full-integer int8 TFLite export: int8 input and output, calibrated on train faces."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from moodspeaker_train import models
from moodspeaker_train.data import FaceSet
from moodspeaker_train.recipe import recipe_from_dict


def export_int8(checkpoint: Path, calibration: FaceSet, out: Path, n_calibration: int = 1000, seed: int = 0) -> int:
    """Convert a Keras checkpoint; returns the file size in bytes.

    The representative set is a seeded random sample of *train* faces (never val). Since the model
    scales pixels itself, calibration sees inputs 0..255 and the input quantisation is pixel - 128.
    """
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no checkpoint; train with `moodspeaker-train distill`, then `import`")
    model = keras.models.load_model(checkpoint)
    size = model.input_shape[1]
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(calibration), min(n_calibration, len(calibration)), replace=False)
    if size != calibration.images.shape[1]:
        raise ValueError(f"{checkpoint}: the model takes {size}x{size} faces, the data has "
                         f"{calibration.images.shape[1]}x{calibration.images.shape[2]}")
    faces = calibration.images[idx].astype(np.float32)[..., None]

    def representative():
        for face in faces:
            yield [face[None]]

    with tempfile.TemporaryDirectory() as saved:
        model.export(saved, format="tf_saved_model", verbose=False,
                     input_signature=[tf.TensorSpec((1, size, size, 1), tf.float32, name="pixels")])
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        blob = _convert(converter, representative)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(blob)
    return len(blob)


def _convert(converter: tf.lite.TFLiteConverter, representative) -> bytes:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def import_distilled(run: Path) -> Path:
    """Build the Keras twin of a `distill` run's student and load its best.weights.npz; writes best.keras."""
    weights_file = run / "best.weights.npz"
    if not weights_file.is_file():
        raise FileNotFoundError(f"{weights_file}: no distilled student weights; train with `moodspeaker-train distill`")
    recipe = recipe_from_dict(json.loads((run / "recipe.json").read_text()))
    model = models.build(recipe.arch, recipe.size, **recipe.arch_args)
    with np.load(weights_file) as saved:
        set_twin_weights(model, {k: saved[k] for k in saved.files}, str(weights_file))
    out = run / "best.keras"
    model.save(out)
    return out


_KINDS = (("depthwise", keras.layers.DepthwiseConv2D), ("conv", keras.layers.Conv2D),
          ("batchnorm", keras.layers.BatchNormalization), ("dense", keras.layers.Dense))


def _creation_index(layer: keras.layers.Layer) -> int:
    """Keras names layers `conv2d`, `conv2d_1`, ... as it makes them: the suffix orders one kind."""
    suffix = layer.name.rpartition("_")[2]
    return int(suffix) if suffix.isdigit() else 0


def set_twin_weights(model: keras.Model, weights: dict[str, np.ndarray], source: str) -> None:
    """Load `torch_models.keras_weights` output into the Keras twin, kind by kind in creation order."""
    used = 0
    for kind, cls in _KINDS:
        # DepthwiseConv2D subclasses Conv2D in some Keras versions: a layer belongs to the first kind it matches.
        layers = [layer for layer in model.layers if isinstance(layer, cls) and layer.weights
                  and not (kind == "conv" and isinstance(layer, keras.layers.DepthwiseConv2D))]
        for i, layer in enumerate(sorted(layers, key=_creation_index)):
            arrays = [weights.get(f"{kind}_{i:03d}_{j}") for j in range(len(layer.weights))]
            if any(a is None or a.shape != tuple(w.shape) for a, w in zip(arrays, layer.weights, strict=True)):
                raise ValueError(f"{source}: {kind} layer {i} does not match the Keras model {model.name} "
                                 "(architecture arguments differ from the run's recipe?)")
            layer.set_weights(arrays)
            used += len(arrays)
    if used != len(weights):
        raise ValueError(f"{source}: holds {len(weights)} arrays, the Keras model {model.name} takes {used}")
