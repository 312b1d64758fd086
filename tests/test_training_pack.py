"""scripts/pack_fer2013.py: the data a lent GPU receives is the data here, pixel for pixel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pack_fer2013.py"


def _run(*args: str) -> None:
    subprocess.run([sys.executable, str(SCRIPT), *args], check=True, capture_output=True)


def test_packing_is_lossless_smaller_and_a_limit_takes_the_first_faces(fer_tiny: Path, tmp_path: Path) -> None:
    _run("pack", str(fer_tiny), str(tmp_path / "packed"))
    _run("unpack", str(tmp_path / "packed"), str(tmp_path / "all"))
    _run("unpack", str(tmp_path / "packed"), str(tmp_path / "few"), "--limit", "50")
    for split in ("train", "val"):
        with np.load(fer_tiny / f"{split}.npz") as original, np.load(tmp_path / "all" / f"{split}.npz") as back, \
                np.load(tmp_path / "few" / f"{split}.npz") as few:
            for key in ("images", "labels", "ferplus_votes"):
                np.testing.assert_array_equal(back[key], original[key])
                np.testing.assert_array_equal(few[key], original[key][:50])
            raw = original["images"].nbytes
        assert (tmp_path / "packed" / f"{split}.images.xz").stat().st_size < 0.8 * raw
