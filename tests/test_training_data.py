"""Loading FER2013 in its three layouts, FER+ vote mapping, and class weighting."""

from __future__ import annotations

import numpy as np
import pytest

from moodspeaker_train.data import DataError, FaceSet, ferplus_to_fer, load_split
from moodspeaker_train.targets import class_weights, soft_targets


def test_npz_layout_loads_both_splits(fer_tiny):
    train, val = load_split(fer_tiny, "train"), load_split(fer_tiny, "val")
    assert train.images.shape[1:] == (48, 48) and train.images.dtype == np.uint8
    assert len(train) == 420 and len(val) == 210
    assert set(np.unique(train.labels)) == set(range(7))
    assert train.votes is not None and train.votes.shape == (420, 7)


def test_ferplus_columns_map_to_fer2013_order():
    # FER+ columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
    votes = np.array([[0, 6, 0, 0, 2, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]], np.uint8)
    shares = ferplus_to_fer(votes)
    assert shares[0].tolist() == pytest.approx([0.25, 0, 0, 0.75, 0, 0, 0])  # anger -> 0, happiness -> 3
    assert shares[1].sum() == 0  # only "not a face" votes: no soft target


def test_soft_targets_mix_votes_and_keep_rows_without_votes_one_hot():
    votes = np.zeros((2, 7), np.float32)
    votes[0, 6] = 1.0
    faces = FaceSet(np.zeros((2, 48, 48), np.uint8), np.array([3, 2], np.uint8), votes)
    t = soft_targets(faces, 0.25)
    assert t[0, 3] == pytest.approx(0.75) and t[0, 6] == pytest.approx(0.25)
    assert t[1].tolist() == [0, 0, 1, 0, 0, 0, 0]
    assert np.allclose(t.sum(axis=1), 1)


def test_class_weights_favour_rare_classes_and_average_one():
    counts = np.array([400, 40, 400, 800, 400, 300, 500])
    for mode in ("sqrt", "balanced"):
        w = class_weights(counts, mode)
        assert w[1] > w[0] > w[3]
        assert (w * counts).sum() / counts.sum() == pytest.approx(1.0)
    assert np.allclose(class_weights(counts, "none"), 1.0)


def test_kaggle_csv_layout(tmp_path, fer_tiny):
    val = load_split(fer_tiny, "val")
    rows = ["emotion,pixels,Usage"]
    for img, lab, usage in zip(val.images[:6], val.labels[:6], ["Training", "PublicTest"] * 3, strict=True):
        rows.append(f"{lab},{' '.join(map(str, img.ravel()))},{usage}")
    csv = tmp_path / "fer2013.csv"
    csv.write_text("\n".join(rows) + "\n")
    got = load_split(csv, "val")
    assert len(got) == 3
    assert np.array_equal(got.images[0], val.images[1])


def test_image_folder_layout(tmp_path, fer_tiny):
    import cv2

    val = load_split(fer_tiny, "val")
    for i in range(4):
        folder = tmp_path / "train" / ["angry", "happy"][i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), val.images[i])
    got = load_split(tmp_path, "train")
    assert len(got) == 4 and sorted(set(got.labels.tolist())) == [0, 3]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "no such file or directory"),
        (lambda p: (p.mkdir(), p)[1], "found neither train.npz"),
        (lambda p: (p.mkdir(), (p / "train.npz").write_bytes(b"not a zip"), p)[2], "not a readable npz"),
        (lambda p: (p.mkdir(), np.savez(p / "train.npz", images=np.zeros((3, 48, 48), np.uint8)), p)[2],
         "missing arrays ['labels']"),
        (lambda p: (p.mkdir(), np.savez(p / "train.npz", images=np.zeros((3, 32, 32), np.uint8),
                                        labels=np.zeros(3, np.uint8)), p)[2], "(N, 48, 48)"),
        (lambda p: (p.mkdir(), np.savez(p / "train.npz", images=np.zeros((3, 48, 48), np.uint8),
                                        labels=np.full(3, 9, np.uint8)), p)[2], "labels must be 0..6"),
    ],
)
def test_bad_data_gets_a_clear_error(tmp_path, make, message):
    path = make(tmp_path / "data")
    with pytest.raises(DataError, match=None) as err:
        load_split(path, "train")
    assert message in str(err.value)
