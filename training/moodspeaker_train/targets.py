"""Training targets shared by the Keras and PyTorch trainers: soft labels and per-class loss weights."""

from __future__ import annotations

import numpy as np

from moodspeaker_train.data import LABELS, FaceSet

K = len(LABELS)


def soft_targets(faces: FaceSet, ferplus_weight: float) -> np.ndarray:
    """(1 - w) * one-hot FER2013 label + w * FER+ vote shares; rows without FER+ votes stay one-hot."""
    onehot = np.eye(K, dtype=np.float32)[faces.labels]
    if ferplus_weight == 0 or faces.votes is None:
        return onehot
    has_votes = faces.votes.sum(axis=1, keepdims=True) > 0
    mixed = (1 - ferplus_weight) * onehot + ferplus_weight * faces.votes
    return np.where(has_votes, mixed, onehot).astype(np.float32)


def class_weights(counts: np.ndarray, mode: str) -> np.ndarray:
    """Per-class loss weights, normalised so the average sample weight is 1."""
    counts = np.maximum(counts.astype(np.float64), 1)
    if mode == "none":
        w = np.ones(K)
    else:
        w = counts.sum() / (K * counts)
        if mode == "sqrt":
            w = np.sqrt(w)
    w /= (w * counts).sum() / counts.sum()
    return w.astype(np.float32)
