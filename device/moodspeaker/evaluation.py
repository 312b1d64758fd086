"""Accuracy of a classifier on labelled face crops, through the device's own preprocessing."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.metrics import confusion_matrix, summarize

Classify = Callable[[np.ndarray], np.ndarray]


def evaluate_crops(classify: Classify, model_labels: tuple[str, ...], images: np.ndarray, labels: np.ndarray) -> dict:
    """Run `classify` on each (H, W) uint8 crop; labels are FER2013 class indices.

    Returns the DESIGN.md eval object: n, accuracy, macro_f1, per_class_recall, confusion, ms_per_face
    (+ per-class precision and F1). Predictions are mapped from the model's label order to FER2013's.
    """
    to_fer = np.array([EMOTIONS.index(lab) for lab in model_labels])
    preds = np.empty(len(images), np.int64)
    t0 = time.perf_counter()
    for i, face in enumerate(images):
        preds[i] = to_fer[int(np.argmax(classify(face)))]
    elapsed = time.perf_counter() - t0
    out = summarize(confusion_matrix(labels, preds, len(EMOTIONS)), EMOTIONS)
    out["ms_per_face"] = round(1000 * elapsed / max(len(images), 1), 4)
    return out
