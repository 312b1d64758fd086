"""Pictures people would rather look at than read: learning curves and confusion matrices."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def record_epoch(run: Path, row: dict) -> None:
    """Append one epoch's row to run/history.csv and redraw run/curves.png from it."""
    history = run / "history.csv"
    new = not history.exists()
    with history.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
    plot_learning_curves(history, run / "curves.png")


def plot_learning_curves(history_csv: Path, out: Path) -> None:
    with history_csv.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
        ax.plot(epochs, [float(r[key]) for r in rows], label="train (augmented, soft targets)")
        ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], label="val (PublicTest)")
        if key == "accuracy":  # val as the camera degrades it, where the run measured it (distill's select_on)
            for extra in (k for k in rows[0] if k.startswith("val_") and k not in ("val_loss", "val_accuracy")):
                ax.plot(epochs, [float(r[extra]) for r in rows], label=extra.replace("_", " ", 1))
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_confusion(confusion: np.ndarray, labels: Sequence[str], title: str, out: Path) -> None:
    """Row-normalised confusion matrix (rows: true class) with counts in each cell."""
    conf = np.asarray(confusion, dtype=np.float64)
    norm = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n{int(conf[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
