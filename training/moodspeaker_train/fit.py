"""Training: soft targets, class weights in the loss, on-the-fly augmentation, resumable runs.

A run directory holds recipe.json, history.csv, last.keras (every epoch, with optimizer state),
best.keras (best val accuracy so far), state.json and curves.png.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from moodspeaker_train import models
from moodspeaker_train.augment import augment_batch
from moodspeaker_train.data import LABELS, FaceSet
from moodspeaker_train.plots import record_epoch
from moodspeaker_train.recipe import Recipe, recipe_from_dict
from moodspeaker_train.targets import class_weights, soft_targets

K = len(LABELS)


def to_input(images: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 (B,48,48) -> float (B,size,size,1) pixels 0..255, as the model expects."""
    x = tf.cast(images, tf.float32)[..., None]
    return x if size == 48 else tf.image.resize(x, (size, size), method="area")


def train_dataset(faces: FaceSet, recipe: Recipe) -> tf.data.Dataset:
    targets = soft_targets(faces, recipe.ferplus_weight)
    weights = class_weights(faces.class_counts(), recipe.class_weighting)[faces.labels]
    ds = tf.data.Dataset.from_tensor_slices((faces.images, targets, weights))
    ds = ds.shuffle(len(faces), seed=recipe.seed, reshuffle_each_iteration=True)
    ds = ds.batch(recipe.batch_size, drop_remainder=len(faces) >= recipe.batch_size)

    def prep(x, y, w):
        return augment_batch(to_input(x, recipe.size), recipe.augment), y, w

    return ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def eval_dataset(faces: FaceSet, size: int, batch_size: int = 256) -> tf.data.Dataset:
    onehot = np.eye(K, dtype=np.float32)[faces.labels]
    ds = tf.data.Dataset.from_tensor_slices((faces.images, onehot)).batch(batch_size)
    return ds.map(lambda x, y: (to_input(x, size), y)).prefetch(2)


def compile_model(model: keras.Model, recipe: Recipe, steps_per_epoch: int) -> None:
    total = max(1, recipe.epochs * steps_per_epoch)
    warmup = min(recipe.warmup_epochs * steps_per_epoch, total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=recipe.lr / 10 if warmup else recipe.lr,
        decay_steps=total - warmup,
        warmup_target=recipe.lr if warmup else None,
        warmup_steps=warmup,
        alpha=0.01,
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=recipe.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


class _RunKeeper(keras.callbacks.Callback):
    """Per epoch: history row, last/best checkpoints, state for --resume, early stopping, curves."""

    def __init__(self, run: Path, recipe: Recipe, state: dict, steps: int) -> None:
        super().__init__()
        self.run, self.recipe, self.state, self.steps = run, recipe, state, steps
        self.bar: tqdm | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.time()
        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.recipe.epochs}", unit="batch",
                        leave=False, mininterval=0.5 if sys.stderr.isatty() else 60)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        if logs and batch % 20 == 0:
            self.bar.set_postfix(loss=f"{logs['loss']:.3f}", acc=f"{logs['accuracy']:.3f}")

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()
        row = {"epoch": epoch + 1, "seconds": round(time.time() - self.t0, 1),
               "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
               **{k: round(float(v), 5) for k, v in logs.items() if k != "learning_rate"}}
        record_epoch(self.run, row)
        improved = row["val_accuracy"] > self.state["best_val_accuracy"]
        if improved:
            self.state.update(best_val_accuracy=row["val_accuracy"], best_epoch=epoch + 1, wait=0)
            self.model.save(self.run / "best.keras")
        else:
            self.state["wait"] += 1
        self.state["epoch"] = epoch + 1
        self.model.save(self.run / "last.keras")
        (self.run / "state.json").write_text(json.dumps(self.state, indent=1))
        print(f"epoch {epoch + 1}: loss {row['loss']:.4f} acc {row['accuracy']:.4f} "
              f"val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.4f} ({row['seconds']:.0f}s)"
              + (" *best*" if improved else ""), flush=True)
        if self.state["wait"] >= self.recipe.patience:
            print(f"early stop: no val improvement in {self.recipe.patience} epochs", flush=True)
            self.model.stop_training = True


def fit(recipe: Recipe, train: FaceSet, val: FaceSet, run: Path, resume: bool = False,
        init_from: Path | None = None) -> dict:
    """Train into `run`; returns the final state (best epoch and val accuracy).

    `init_from` starts a new run from another run's weights (a warm restart with this recipe's schedule).
    """
    if recipe.distill_weight or recipe.mixup or recipe.ema_decay or recipe.select_on != "val":
        raise ValueError("this recipe distils, mixes up, averages weights or selects on the camera sets: train it "
                         "with `moodspeaker-train distill`")
    if (recipe.augment.shadow_prob or recipe.augment.crush_prob or recipe.augment.clean_prob
            or recipe.augment.enhance != "none"):
        raise ValueError("this recipe's camera model has side light, crushed blacks, clean faces or the device's "
                         "enhancement, which only "
                         "`moodspeaker-train distill` applies: train it with distill")
    run.mkdir(parents=True, exist_ok=True)
    state_file = run / "state.json"
    if resume and (run / "last.keras").exists() and state_file.exists():
        saved = recipe_from_dict(json.loads((run / "recipe.json").read_text()))
        if saved != recipe:
            raise ValueError(f"{run}: recipe differs from the one this run started with; use a new --out")
        state = json.loads(state_file.read_text())
        model = keras.models.load_model(run / "last.keras")
        print(f"resuming {run} after epoch {state['epoch']} (best val {state['best_val_accuracy']:.4f})")
    else:
        if any(run.glob("*.keras")) and not resume:
            raise FileExistsError(f"{run} already holds a run; pass --resume to continue it or pick a new --out")
        keras.utils.set_random_seed(recipe.seed)
        model = models.build(recipe.arch, recipe.size, **recipe.arch_args)
        if init_from is not None:
            model.set_weights(keras.models.load_model(init_from).get_weights())
            print(f"starting from the weights of {init_from}")
        state = {"epoch": 0, "best_val_accuracy": -1.0, "best_epoch": 0, "wait": 0}
        (run / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=1))
        (run / "history.csv").unlink(missing_ok=True)
    if state["epoch"] >= recipe.epochs or state["wait"] >= recipe.patience:
        print(f"{run}: already finished")
        return state
    keras.utils.set_random_seed(recipe.seed + state["epoch"])
    train_ds = train_dataset(train, recipe)
    steps = int(train_ds.cardinality())
    if state["epoch"] == 0:
        compile_model(model, recipe, steps)
    print(f"{model.name}: {model.count_params():,} parameters, {models.count_macs(model) / 1e6:.1f} M MACs; "
          f"{len(train)} train / {len(val)} val faces; {steps} steps per epoch", flush=True)
    model.fit(train_ds, validation_data=eval_dataset(val, recipe.size), epochs=recipe.epochs,
              initial_epoch=state["epoch"], verbose=0, callbacks=[_RunKeeper(run, recipe, state, steps)])
    return state
