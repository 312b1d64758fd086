"""Full-integer int8 TFLite export: int8 input and output, calibrated on train faces."""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from moodspeaker_train.data import FaceSet
from moodspeaker_train.fit import to_input


def export_int8(checkpoint: Path, calibration: FaceSet, out: Path, n_calibration: int = 1000, seed: int = 0) -> int:
    """Convert a Keras checkpoint; returns the file size in bytes.

    The representative set is a seeded random sample of *train* faces (never val). Since the model
    scales pixels itself, calibration sees inputs 0..255 and the input quantisation is pixel - 128.
    """
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no checkpoint; train first with `moodspeaker-train fit`")
    model = keras.models.load_model(checkpoint)
    size = model.input_shape[1]
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(calibration), min(n_calibration, len(calibration)), replace=False)
    faces = to_input(tf.constant(calibration.images[idx]), size).numpy()

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
