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


class TargetsError(ValueError):
    """A logits file that does not belong to the faces it is used with; the message says what to do."""


def images_digest(images: np.ndarray) -> str:
    """SHA-256 of a split's pixels (shape, dtype, bytes): the same for an npz and the packed copy it came from."""
    import hashlib

    digest = hashlib.sha256(f"{images.dtype.str}{images.shape}".encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


def save_logits(path, splits: dict[str, tuple[FaceSet, np.ndarray]], provenance: dict) -> dict:
    """Write (N, 7) logits per split as float16 (`path`.npz) and where they came from (`path` .json beside it).

    The JSON records each split's face count and pixel digest, so that `load_logits` refuses them on
    other faces or in another order.
    """
    import json
    from pathlib import Path

    path = Path(path)
    arrays, meta = {}, dict(provenance)
    meta["splits"] = {}
    for name, (faces, logits) in splits.items():
        if logits.shape != (len(faces), K):
            raise TargetsError(f"{name}: logits shape {logits.shape}, expected ({len(faces)}, {K})")
        arrays[name] = logits.astype(np.float16)
        meta["splits"][name] = {"n": len(faces), "images_sha256": images_digest(faces.images),
                                "accuracy": round(float((logits.argmax(1) == faces.labels).mean()), 4)}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def load_logits(path, split: str, faces: FaceSet) -> np.ndarray:
    """(N, 7) float32 logits of `split` from a file written by `save_logits`, checked against `faces`."""
    import json
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise TargetsError(f"{path}: no such logits file; write one with `moodspeaker-train logits`")
    meta_path = path.with_suffix(".json")
    if not meta_path.is_file():
        raise TargetsError(f"{meta_path}: missing; a logits file needs its provenance beside it")
    meta = json.loads(meta_path.read_text())
    with np.load(path) as saved:
        if split not in saved.files or split not in meta.get("splits", {}):
            raise TargetsError(f"{path}: no {split!r} logits (has {sorted(saved.files)})")
        logits = saved[split].astype(np.float32)
    expected = meta["splits"][split]
    if expected["n"] != len(faces) or expected["images_sha256"] != images_digest(faces.images):
        raise TargetsError(f"{path}: its {split} logits were computed on other faces ({expected['n']} faces, "
                           f"pixels {expected['images_sha256'][:12]}…) than the {len(faces)} given; "
                           "recompute them for this data with `moodspeaker-train logits`")
    return logits
