"""Classification metrics on plain integer arrays (no sklearn on the device)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    conf = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(conf, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return conf


def summarize(conf: np.ndarray, labels: tuple[str, ...]) -> dict:
    """accuracy, macro-F1, per-class precision/recall/F1 from a confusion matrix."""
    conf = np.asarray(conf, np.float64)
    tp = np.diag(conf)
    support, predicted = conf.sum(axis=1), conf.sum(axis=0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    return {
        "n": int(conf.sum()),
        "accuracy": float(tp.sum() / max(conf.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_recall": {lab: round(float(r), 4) for lab, r in zip(labels, recall, strict=True)},
        "per_class_precision": {lab: round(float(p), 4) for lab, p in zip(labels, precision, strict=True)},
        "per_class_f1": {lab: round(float(f), 4) for lab, f in zip(labels, f1, strict=True)},
        "confusion": conf.astype(np.int64).tolist(),
    }
