"""Pack FER2013 train/val small enough to travel to a lent GPU with the repository (64 MiB in all), and unpack it.

shared/data/fer2013/packed (left-neighbour differences, 56 MB) plus the repository's ~12 MB do not fit;
this packing predicts each pixel from its left, upper and upper-left neighbours (the LOCO-I/JPEG-LS median
predictor) and lzma-compresses the residuals: about 51 MB, bit-identical images (checked when packing).
Only the standard library and numpy are needed, so it runs where TensorFlow does not.

    python3 scripts/pack_fer2013.py pack ../shared/data/fer2013 runs/packed    # here, once
    python3 scripts/pack_fer2013.py unpack runs/packed DATA_DIR                 # there: DATA_DIR/{train,val}.npz
    python3 scripts/pack_fer2013.py unpack runs/packed DATA_DIR --limit 300     # a few faces per split, for a try
"""

from __future__ import annotations

import argparse
import lzma
from pathlib import Path

import numpy as np

SPLITS = ("train", "val")


def _predict(w: np.ndarray, n: np.ndarray, nw: np.ndarray) -> np.ndarray:
    """The median edge detector: min(W, N) above an edge, max(W, N) below one, else W + N - NW."""
    return np.where(nw >= np.maximum(w, n), np.minimum(w, n),
                    np.where(nw <= np.minimum(w, n), np.maximum(w, n), w + n - nw))


def residuals(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.int16)
    padded = np.pad(x, ((0, 0), (1, 0), (1, 0)))
    return (x - _predict(padded[:, 1:, :-1], padded[:, :-1, 1:], padded[:, :-1, :-1])).astype(np.uint8)


def reconstruct(res: np.ndarray) -> np.ndarray:
    """The inverse of `residuals`, pixel by pixel in raster order (each over all faces at once)."""
    n, h, w = res.shape
    out = np.zeros((n, h + 1, w + 1), np.int16)  # a zero row and column above and left, as packed
    r = res.astype(np.int16)
    for i in range(1, h + 1):
        for j in range(1, w + 1):
            pred = _predict(out[:, i, j - 1], out[:, i - 1, j], out[:, i - 1, j - 1])
            out[:, i, j] = (pred + r[:, i - 1, j - 1]) & 0xFF
    return out[:, 1:, 1:].astype(np.uint8)


def pack(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        with np.load(src / f"{split}.npz") as d:
            images, labels, votes = d["images"], d["labels"], d["ferplus_votes"]
        res = residuals(images)
        if not np.array_equal(reconstruct(res), images):
            raise SystemExit(f"{split}: packing is not lossless")
        (dst / f"{split}.images.xz").write_bytes(lzma.compress(res.tobytes(), preset=9 | lzma.PRESET_EXTREME))
        np.savez(dst / f"{split}.meta.npz", shape=np.array(images.shape), labels=labels, ferplus_votes=votes)
        print(f"{split}: {len(images)} faces -> {dst / (split + '.images.xz')}")


def unpack(src: Path, dst: Path, limit: int | None = None) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        meta = np.load(src / f"{split}.meta.npz")
        res = np.frombuffer(lzma.decompress((src / f"{split}.images.xz").read_bytes()), np.uint8)
        res = res.reshape(tuple(meta["shape"]))[:limit]
        images = reconstruct(res)
        np.savez(dst / f"{split}.npz", images=images, labels=meta["labels"][:limit],
                 ferplus_votes=meta["ferplus_votes"][:limit])
        print(f"{split}: {len(images)} faces -> {dst / (split + '.npz')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--limit", type=int, help="unpack: only the first N faces of each split (a quick try)")
    args = parser.parse_args()
    if args.action == "pack":
        pack(args.src, args.dst)
    else:
        unpack(args.src, args.dst, args.limit)


if __name__ == "__main__":
    main()
