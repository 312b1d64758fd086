"""Loading FER2013-style data sets: our npz layout, Kaggle's fer2013.csv, or an image folder.

Every loader returns `FaceSet`s of 48x48 uint8 grayscale faces with FER2013 labels; where FER+
crowd votes exist they come along, mapped into FER2013 class order.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fer2013"

# FER+ vote columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt,
# unknown, not-a-face. Index = FER+ column, value = FER2013 class (None: no FER2013 class).
_FERPLUS_TO_FER = (6, 3, 5, 4, 0, 1, 2, None, None, None)


class DataError(ValueError):
    """A data set is missing or malformed; the message says what to fix."""


@dataclass(frozen=True)
class FaceSet:
    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) uint8, FER2013 order
    votes: np.ndarray | None = None  # (N, 7) float32 FER+ vote shares in FER2013 order; rows of 0 = none

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(LABELS))


def ferplus_to_fer(votes: np.ndarray) -> np.ndarray:
    """Map (N, 10) FER+ vote counts to (N, 7) vote shares in FER2013 order.

    Contempt, unknown and not-a-face votes are dropped; rows without any emotion vote are zero.
    """
    out = np.zeros((len(votes), len(LABELS)), np.float32)
    for col, fer in enumerate(_FERPLUS_TO_FER):
        if fer is not None:
            out[:, fer] += votes[:, col]
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


def _check(images: np.ndarray, labels: np.ndarray, source: str) -> None:
    if images.ndim != 3 or images.shape[1:] != (48, 48):
        raise DataError(f"{source}: images must have shape (N, 48, 48), got {images.shape}")
    if images.dtype != np.uint8:
        raise DataError(f"{source}: images must be uint8, got {images.dtype}")
    if labels.shape != (len(images),):
        raise DataError(f"{source}: labels must have shape ({len(images)},), got {labels.shape}")
    if len(labels) == 0:
        raise DataError(f"{source}: no images")
    if labels.min() < 0 or labels.max() >= len(LABELS):
        raise DataError(f"{source}: labels must be 0..{len(LABELS) - 1} (FER2013 order {LABELS})")


def load_npz(path: Path) -> FaceSet:
    """One split in the layout of shared/data/fer2013/*.npz."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with np.load(path) as d:
            arrays = {k: d[k] for k in d.files}
    except Exception as exc:  # zipfile/pickle errors differ by corruption kind
        raise DataError(f"{path}: not a readable npz file ({exc})") from exc
    missing = {"images", "labels"} - arrays.keys()
    if missing:
        raise DataError(f"{path}: missing arrays {sorted(missing)}; expected images (N,48,48) uint8 and labels (N,)")
    images, labels = arrays["images"], arrays["labels"].astype(np.int64)
    _check(images, labels, str(path))
    votes = arrays.get("ferplus_votes")
    if votes is not None:
        if votes.shape != (len(images), 10):
            raise DataError(f"{path}: ferplus_votes must have shape ({len(images)}, 10), got {votes.shape}")
        votes = ferplus_to_fer(votes)
    return FaceSet(images, labels.astype(np.uint8), votes)


_CSV_USAGE = {"train": ("Training",), "val": ("PublicTest",), "test": ("PrivateTest",)}


def load_csv(path: Path, split: str) -> FaceSet:
    """Kaggle's fer2013.csv: columns emotion, pixels (2304 space-separated values), Usage."""
    images, labels = [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"emotion", "pixels", "Usage"} <= set(reader.fieldnames):
            raise DataError(f"{path}: expected the Kaggle fer2013.csv header emotion,pixels,Usage")
        for row_no, row in enumerate(reader, start=2):
            if row["Usage"] not in _CSV_USAGE[split]:
                continue
            pixels = np.array(row["pixels"].split(), dtype=np.int64)
            if pixels.size != 48 * 48 or pixels.min() < 0 or pixels.max() > 255:
                raise DataError(f"{path}:{row_no}: pixels must be 2304 values 0..255")
            images.append(pixels.reshape(48, 48).astype(np.uint8))
            labels.append(int(row["emotion"]))
    if not images:
        raise DataError(f"{path}: no rows with Usage {_CSV_USAGE[split]}")
    out = FaceSet(np.stack(images), np.array(labels, np.uint8))
    _check(out.images, out.labels.astype(np.int64), str(path))
    return out


def load_folder(root: Path) -> FaceSet:
    """`root/<class name>/*.{jpg,png}`, class names as in LABELS; any image size (resized to 48x48)."""
    import cv2

    images, labels = [], []
    unknown = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in LABELS)
    if unknown:
        raise DataError(f"{root}: unknown class folders {unknown}; expected {list(LABELS)}")
    for label, name in enumerate(LABELS):
        folder = root / name
        if not folder.is_dir():
            continue
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in {".jpg", ".jpeg", ".png", ".bmp"}:
                continue
            img = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
            if img is None:
                raise DataError(f"{file}: not a readable image")
            if img.shape != (48, 48):
                img = cv2.resize(img, (48, 48), interpolation=cv2.INTER_AREA)
            images.append(img)
            labels.append(label)
    if not images:
        raise DataError(f"{root}: no images found under <class>/*.jpg|png")
    return FaceSet(np.stack(images), np.array(labels, np.uint8))


def load_split(data: Path, split: str) -> FaceSet:
    """Load `split` ("train" or "val") from a directory of npz files, a fer2013.csv, or an image folder.

    Accepted layouts:
      DIR/train.npz + DIR/val.npz        (shared/data/fer2013)
      FILE.csv                           (Kaggle fer2013.csv; Usage picks the split)
      DIR/train/<class>/*.jpg + DIR/val/<class>/*.jpg (val may be named test)
    """
    if split not in _CSV_USAGE:
        raise DataError(f"unknown split {split!r}; use one of {sorted(_CSV_USAGE)}")
    if not data.exists():
        raise DataError(f"{data}: no such file or directory; pass --data DIR|FILE.csv")
    if data.is_file():
        if data.suffix == ".csv":
            return load_csv(data, split)
        raise DataError(f"{data}: a single file must be Kaggle's fer2013.csv; for npz pass their directory")
    if (data / f"{split}.npz").is_file():
        return load_npz(data / f"{split}.npz")
    for name in (split, "test") if split == "val" else (split,):
        if (data / name).is_dir():
            return load_folder(data / name)
    raise DataError(
        f"{data}: found neither {split}.npz nor a {split}/<class>/ image folder; "
        "see `moodspeaker-train distill --help` for the accepted layouts"
    )
