"""The trainer, with PyTorch on a GPU or a CPU: big teachers from scratch, students distilled from them (live, or
from their cached logits), fine-tunes from float weights.

A lent GPU box has PyTorch and no TensorFlow, and only minutes to spare; so this trainer keeps the whole data
set on the device, augments batches there (geometry, light, the camera model of camera_model.py), and fits its
epoch count to `--minutes` after timing the second epoch (the first includes cuDNN's autotuning). A run directory
holds recipe.json, history.csv, state.json, curves.png, best.pt and last.pt (for `--resume`); a student whose
architecture has a Keras twin also gets best.weights.npz (weights in Keras layouts, see
`torch_models.keras_weights`), which `moodspeaker-train import` turns into the best.keras that `export` and
`report` read.

Student loss per face: (1 - a) * cross-entropy on the recipe's soft targets + a * T^2 * KL(teachers
|| student) at temperature T, where the teachers' logits are averaged over the teachers and over a
horizontal flip, computed on the clean face while the student sees the augmented one; weighted by class.
Imports numpy, torch, tqdm and matplotlib (and the device's numpy-only enhancement) only.
"""

from __future__ import annotations

import copy
import json
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from moodspeaker_train import torch_models
from moodspeaker_train.camera_model import blur_kernels, dct_matrix, jpeg_table
from moodspeaker_train.data import LABELS, FaceSet
from moodspeaker_train.plots import record_epoch
from moodspeaker_train.recipe import AugmentConfig, Recipe, recipe_from_dict
from moodspeaker_train.targets import class_weights, load_logits, soft_targets

ARCHITECTURES = {"xception": torch_models.Xception, "resnet_teacher": torch_models.ResNetTeacher}
KERAS_TWINS = {"xception"}  # architectures `moodspeaker-train import` can turn into a Keras model
EVAL_BATCH = 1024


def build(recipe: Recipe) -> nn.Module:
    if recipe.arch not in ARCHITECTURES:
        raise ValueError(f"distill trains {sorted(ARCHITECTURES)}, not {recipe.arch!r}")
    if recipe.size != 48:
        raise ValueError("distill trains 48x48 models only")
    return ARCHITECTURES[recipe.arch](**recipe.arch_args)


def augment(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """(B, 1, S, S) float pixels 0..255 -> augmented, same shape and range: one affine warp (flip, rotation,
    scale, shift), brightness and contrast, the camera model, the device's enhancement, random erasing."""
    n, s = x.shape[0], x.shape[-1]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, device=x.device) * (hi - lo) + lo

    theta = uniform(-1.0, 1.0) * math.radians(cfg.rotate_deg)
    scale = 1.0 + uniform(-cfg.scale, cfg.scale)
    flip = torch.where(uniform(0.0, 1.0) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n, device=x.device)
    # affine_grid works in -1..1 coordinates, so a shift by a fraction f of the side is 2f.
    tx, ty = uniform(-cfg.shift, cfg.shift) * 2, uniform(-cfg.shift, cfg.shift) * 2
    cos, sin = torch.cos(theta) / scale, torch.sin(theta) / scale
    affine = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(affine, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = (1.0 + uniform(-cfg.contrast, cfg.contrast)).view(-1, 1, 1, 1)
    bright = (uniform(-cfg.brightness, cfg.brightness) * 255.0).view(-1, 1, 1, 1)
    x = ((x - mean) * contrast + mean + bright).clamp(0.0, 255.0)

    degraded = camera(x, cfg)
    x = torch.where(uniform(0.0, 1.0).view(-1, 1, 1, 1) < cfg.clean_prob, x, degraded) if cfg.clean_prob else degraded
    if cfg.enhance != "none":
        x = device_enhance(x)

    if cfg.erase_prob > 0:
        area = uniform(*cfg.erase_area) * s * s
        aspect = torch.exp(uniform(math.log(0.3), math.log(3.3)))
        h, w = torch.sqrt(area * aspect).clamp(max=s), torch.sqrt(area / aspect).clamp(max=s)
        y0, x0 = uniform(0.0, 1.0) * (s - h), uniform(0.0, 1.0) * (s - w)
        grid1d = torch.arange(s, device=x.device)
        in_y = (grid1d[None] >= y0[:, None]) & (grid1d[None] < (y0 + h)[:, None])
        in_x = (grid1d[None] >= x0[:, None]) & (grid1d[None] < (x0 + w)[:, None])
        chosen = uniform(0.0, 1.0) < cfg.erase_prob
        mask = (in_y[:, :, None] & in_x[:, None, :] & chosen[:, None, None])[:, None]
        x = torch.where(mask, torch.rand_like(x) * 255.0, x)
    return x


def device_enhance(x: torch.Tensor) -> torch.Tensor:
    """What the device does to each crop before the model (`moodspeaker.core.enhance.enhance_crop`: denoise a
    noisy crop, stretch a dark one), on (B, 1, S, S) float pixels: rounded to grey levels as a camera delivers
    them, then enhanced face by face on the CPU (integer numpy, as on the device)."""
    from moodspeaker.core.enhance import enhance_crop

    global _enhance_pool
    faces = x.round().clamp(0.0, 255.0).to(torch.uint8).cpu().numpy()[:, 0]
    workers = (os.cpu_count() or 1) - 2  # a GPU box's cores keep up with its steps; two cores do it in-process
    if workers < 4 or len(faces) < 64:
        out = [enhance_crop(face) for face in faces]
    else:
        if _enhance_pool is None:  # spawned, not forked: the parent may hold a CUDA context
            _enhance_pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        out = list(_enhance_pool.map(enhance_crop, faces, chunksize=-(-len(faces) // workers)))
    return torch.from_numpy(np.stack(out)).to(x.device, torch.float32)[:, None]


_enhance_pool: ProcessPoolExecutor | None = None


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG's lossy step on (B, 1, S, S) grayscale: 8x8 DCT quantised at `quality`."""
    table = torch.from_numpy(jpeg_table(quality)).to(x.device)
    d = torch.from_numpy(dct_matrix()).to(x.device)
    n, s = x.shape[0], x.shape[-1]
    blocks = (x[:, 0] - 128.0).reshape(n, s // 8, 8, s // 8, 8).permute(0, 1, 3, 2, 4)
    coef = torch.einsum("ij,bxyjk,lk->bxyil", d, blocks, d)
    coef = torch.round(coef / table) * table
    back = torch.einsum("ji,bxyjk,kl->bxyil", d, coef, d)
    return back.permute(0, 1, 3, 2, 4).reshape(n, 1, s, s) + 128.0


def camera(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """The camera model (camera_model.py) on (B, 1, S, S) float pixels, each step with its own probability."""
    n, s = x.shape[0], x.shape[-1]

    def chosen(prob: float) -> torch.Tensor:
        return (torch.rand(n, device=x.device) < prob).view(-1, 1, 1, 1)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return (torch.rand(n, device=x.device) * (hi - lo) + lo).view(-1, 1, 1, 1)

    if cfg.blur_prob > 0:
        bank = torch.from_numpy(blur_kernels()).to(x.device)
        pad = bank.shape[1] // 2
        every = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), bank[:, None])  # (B, K, S, S)
        pick = torch.randint(0, len(bank), (n,), device=x.device)
        blurred = every[torch.arange(n, device=x.device), pick][:, None]
        x = torch.where(chosen(cfg.blur_prob), blurred, x)
    if cfg.lowlight_prob > 0:
        x = torch.where(chosen(cfg.lowlight_prob), x * uniform(cfg.gain_min, 1.0), x)
    if cfg.shadow_prob > 0:
        # A lamp to one side: the gain falls from 1 to g across the face along a random direction, over a
        # soft gradient (directional light) or a hard edge near the middle (a half-face in shadow).
        ramp = torch.linspace(-1.0, 1.0, s, device=x.device)
        angle = uniform(0.0, 2 * math.pi)
        t = ramp.view(1, 1, 1, s) * torch.cos(angle) + ramp.view(1, 1, s, 1) * torch.sin(angle) - uniform(-0.4, 0.4)
        lit = torch.sigmoid(t * torch.exp(uniform(math.log(2.0), math.log(30.0))))
        g = uniform(cfg.shadow_min, 1.0)
        x = torch.where(chosen(cfg.shadow_prob), x * (g + (1.0 - g) * lit), x)
    if cfg.downscale_prob > 0:
        small = int(torch.randint(cfg.downscale_min, s, ()).item())
        up = F.interpolate(F.interpolate(x, size=(small, small), mode="area"), size=(s, s), mode="bilinear",
                           align_corners=False)
        x = torch.where(chosen(cfg.downscale_prob), up, x)
    if cfg.noise_prob > 0:
        shot, read = uniform(0.0, cfg.shot_noise_max), uniform(0.0, cfg.read_noise_max)
        noisy = x + torch.sqrt(shot * x + read * read) * torch.randn_like(x)
        x = torch.where(chosen(cfg.noise_prob), noisy, x).clamp(0.0, 255.0)
    if cfg.crush_prob > 0:
        black = uniform(0.0, cfg.black_max)
        gamma = torch.exp(uniform(math.log(cfg.gamma_min), math.log(cfg.gamma_max)))
        crushed = 255.0 * ((x - black).clamp(min=0.0) / (255.0 - black)).clamp(max=1.0) ** gamma
        x = torch.where(chosen(cfg.crush_prob), crushed, x)
    if cfg.jpeg_prob > 0:
        quality = int(torch.randint(int(cfg.jpeg_quality_min), 96, ()).item())
        x = torch.where(chosen(cfg.jpeg_prob), jpeg(x, quality), x)
    if cfg.occlude_prob > 0:
        top = uniform(0.55, 0.8).view(-1, 1) * s
        below = (torch.arange(s, device=x.device, dtype=x.dtype)[None, :] >= top)[:, None, :, None]  # (B, 1, S, 1)
        patch = uniform(20.0, 235.0) + 3.0 * torch.randn_like(x)
        x = torch.where(below & chosen(cfg.occlude_prob), patch, x)
    return x.clamp(0.0, 255.0)


def lr_at(step: int, total: int, warmup: int, lr: float) -> float:
    """Linear warm-up from lr/10, then cosine down to lr/100."""
    if step < warmup:
        return lr / 10 + (lr - lr / 10) * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


class Teachers:
    """Frozen teacher runs; their logits averaged over the runs and over a horizontal flip."""

    def __init__(self, runs: list[Path], device: torch.device) -> None:
        self.models = [load_run_model(run, device).eval() for run in runs]
        for model in self.models:
            model.requires_grad_(False)

    def __bool__(self) -> bool:
        return bool(self.models)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        both = torch.cat([x, x.flip(-1)])
        out = torch.stack([m(both).float() for m in self.models]).mean(0)
        return (out[: len(x)] + out[len(x):]) / 2


@torch.no_grad()
def teacher_logits(runs: list[Path], images: np.ndarray) -> np.ndarray:
    """(N, 7) float32: the teachers' logits on `images` (N, S, S) uint8, averaged over runs and a mirror image."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    teachers = Teachers(runs, device)
    out = []
    for i in range(0, len(images), EVAL_BATCH):
        x = torch.from_numpy(images[i:i + EVAL_BATCH, None]).to(device).float()
        with _autocast(device):
            out.append(teachers.logits(x.contiguous(memory_format=_layout(device))).float().cpu())
    return torch.cat(out).numpy()


def camera_checks(val: FaceSet, seed: int = 11) -> dict[str, torch.Tensor]:
    """Val faces as the living-room targets degrade them, made once (seeded): dimmed x0.3 with read noise
    sigma 8, rounded to grey levels; and a Gaussian blur of sigma 2 (edges replicated). Used to select the
    epoch when the recipe says `select_on = "camera"`; `moodspeaker eval` on the living-room sets has the final say."""
    x = torch.from_numpy(val.images).float()[:, None]
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)) * 8.0
    r = torch.arange(-6, 7, dtype=torch.float32)
    g = torch.exp(-r**2 / 8.0)
    g = g / g.sum()
    blurred = F.conv2d(F.pad(x, (6, 6, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    blurred = F.conv2d(F.pad(blurred, (0, 0, 6, 6), mode="replicate"), g.view(1, 1, -1, 1))
    return {"dim_noise8": (x * 0.3 + noise).round().clamp(0, 255)[:, 0].to(torch.uint8),
            "blur2": blurred.round().clamp(0, 255)[:, 0].to(torch.uint8)}


def load_run_model(run: Path, device: torch.device) -> nn.Module:
    recipe = recipe_from_dict(json.loads((run / "recipe.json").read_text()))
    model = build(recipe)
    model.load_state_dict(torch.load(run / "best.pt", map_location="cpu", weights_only=True))
    return model.to(device, memory_format=_layout(device))


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(loss, accuracy) on FER2013 labels, batch-norm in inference mode."""
    model.eval()
    losses, hits = 0.0, 0
    for i in range(0, len(images), EVAL_BATCH):
        x = images[i:i + EVAL_BATCH, None].float().contiguous(memory_format=_layout(images.device))
        with _autocast(x.device):
            logits = model(x).float()
        y = labels[i:i + EVAL_BATCH]
        losses += F.cross_entropy(logits, y, reduction="sum").item()
        hits += (logits.argmax(1) == y).sum().item()
    model.train()
    return losses / len(images), hits / len(images)


def _layout(device: torch.device) -> torch.memory_format:
    """NHWC on a GPU (tensor cores want it); NCHW on a CPU, where NHWC backward crashed oneDNN (torch 2.13,
    8-channel convs)."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


class _Ema:
    """Exponential moving average of the weights (and of the batch-norm statistics)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)
        # state_dict() tensors share storage with the models, and the optimizer and load_state_dict update
        # them in place: pair them once, not on every step.
        pairs = zip(self.model.state_dict().values(), model.state_dict().values(), strict=True)
        floats = [(e, c) for e, c in pairs if e.dtype.is_floating_point]
        self._averaged, self._live = [e for e, _ in floats], [c for _, c in floats]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self._averaged, self._live, 1.0 - self.decay)


def fit(recipe: Recipe, train: FaceSet, val: FaceSet, run: Path, teacher_runs: list[Path] | None = None,
        minutes: float | None = None, resume: bool = False, targets: Path | None = None,
        init_from: Path | None = None) -> dict:
    """Train into `run`; returns the final state. `minutes` caps the run: the epoch count is fitted to
    it after the second epoch (never above the recipe's, never below 2), and the schedule follows that count.

    A distilling recipe learns from live `teacher_runs` or from `targets`, a logits file (`moodspeaker-train
    logits`) computed on the clean train faces: then no teacher runs per step, and no GPU is needed.
    `init_from` (a best.weights.npz, e.g. training/artifacts/xception80-kd.weights.npz) starts a new run
    from those weights instead of random ones (fine-tuning)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    teacher_runs = teacher_runs or []
    if teacher_runs and targets:
        raise ValueError("pass --teacher RUN or --targets FILE, not both")
    if recipe.distill_weight > 0 and not (teacher_runs or targets):
        raise ValueError(f"the recipe distils (distill_weight {recipe.distill_weight}); pass --targets FILE "
                         "(committed logits, e.g. training/artifacts/*.logits.npz) or --teacher RUN")
    cached = torch.from_numpy(load_logits(targets, "train", train)).to(device) if targets else None
    run.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(recipe.seed)
    model = build(recipe)
    if init_from is not None and not resume:
        if recipe.arch not in KERAS_TWINS:
            raise ValueError(f"--init-from loads best.weights.npz files, which only {sorted(KERAS_TWINS)} have")
        with np.load(init_from) as saved:
            torch_models.load_keras_weights(model, {k: saved[k] for k in saved.files}, str(init_from))
    model = model.to(device, memory_format=_layout(device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    ema = _Ema(model, recipe.ema_decay) if recipe.ema_decay else None
    state = {"epoch": 0, "epochs": recipe.epochs, "best_val_accuracy": -1.0, "best_score": -1.0, "best_epoch": 0,
             "wait": 0, "teachers": [str(p) for p in teacher_runs], "targets": str(targets) if targets else None,
             "init_from": str(init_from) if init_from else None, "device": _device_name(device), "train_seconds": 0.0}
    if resume and (run / "last.pt").exists():
        saved = recipe_from_dict(json.loads((run / "recipe.json").read_text()))
        if saved != recipe:
            raise ValueError(f"{run}: recipe differs from the one this run started with; use a new --out")
        ckpt = torch.load(run / "last.pt", map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ema is not None:
            ema.model.load_state_dict(ckpt["ema"])
        state = ckpt["state"]
        torch.manual_seed(recipe.seed + state["epoch"])
        print(f"resuming {run} after epoch {state['epoch']} of {state['epochs']}", flush=True)
    elif (run / "last.pt").exists():
        raise FileExistsError(f"{run} already holds a run; pass --resume to continue it or pick a new --out")
    else:
        (run / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=1))
        (run / "history.csv").unlink(missing_ok=True)

    teachers = Teachers(teacher_runs, device)
    x_train = torch.from_numpy(train.images).to(device)
    y_train = torch.from_numpy(soft_targets(train, recipe.ferplus_weight)).to(device)
    w_train = torch.from_numpy(class_weights(train.class_counts(), recipe.class_weighting)[train.labels]).to(device)
    x_val = torch.from_numpy(val.images)
    y_val = torch.from_numpy(val.labels.astype(np.int64)).to(device)
    checks = camera_checks(val) if recipe.select_on == "camera" else {}
    if recipe.augment.enhance != "none":  # val as the device sees it
        x_val = device_enhance(x_val[:, None].float())[:, 0].to(torch.uint8)
        checks = {name: device_enhance(faces[:, None].float())[:, 0].to(torch.uint8) for name, faces in checks.items()}
    x_val, checks = x_val.to(device), {name: faces.to(device) for name, faces in checks.items()}
    steps = max(1, len(train) // recipe.batch_size)  # a set smaller than a batch (a try) is one batch
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{recipe.arch}: {n_params:,} parameters on {state['device']}; {len(train)} train / {len(val)} val faces; "
          f"{steps} steps per epoch; " + (f"targets {targets}" if targets else f"{len(teachers.models)} teacher(s)"),
          flush=True)

    eval_model = ema.model if ema is not None else model
    while state["epoch"] < state["epochs"] and state["wait"] < recipe.patience:
        epoch = state["epoch"]
        t0 = time.time()
        loss_sum, hit_sum = 0.0, 0.0
        order = torch.randperm(len(train), device=device)
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{state['epochs']}", unit="batch", leave=False,
                   mininterval=0.5 if sys.stderr.isatty() else 60)
        for i in bar:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch * steps + i, state["epochs"] * steps, recipe.warmup_epochs * steps, recipe.lr)
            idx = order[i * recipe.batch_size:(i + 1) * recipe.batch_size]
            x = augment(x_train[idx, None].float(), recipe.augment).contiguous(memory_format=_layout(device))
            y, w = y_train[idx], w_train[idx]
            if recipe.mixup > 0:
                lam = float(torch.distributions.Beta(recipe.mixup, recipe.mixup).sample())
                perm = torch.randperm(len(x), device=device)
                x, y, w = lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm], lam * w + (1 - lam) * w[perm]
            with _autocast(device):
                logits = model(x).float()
            if cached is not None:
                teacher = cached[idx]
                if recipe.mixup > 0:
                    teacher = lam * teacher + (1 - lam) * teacher[perm]
            elif teachers:
                with _autocast(device):
                    teacher = teachers.logits(x)
            else:
                teacher = None
            loss_each = _loss(logits, y, teacher, recipe)
            loss = (loss_each * w).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update()
            if i % 10 == 0:  # a sample of the steps: .item() waits for the GPU
                loss_sum += loss.item()
                hit_sum += (logits.argmax(1) == y.argmax(1)).float().mean().item()
        bar.close()
        val_loss, val_acc = evaluate(eval_model, x_val, y_val)
        camera_acc = {name: evaluate(eval_model, faces, y_val)[1] for name, faces in checks.items()}
        score = (val_acc + sum(camera_acc.values())) / (1 + len(camera_acc))
        seconds = time.time() - t0
        state["train_seconds"] = round(state.get("train_seconds", 0.0) + seconds, 1)
        if minutes and epoch == 0:
            state["first_epoch_seconds"] = seconds  # includes cuDNN's autotuning: too slow to extrapolate
        elif minutes and epoch == 1:
            left = minutes * 60 - state["first_epoch_seconds"] - seconds
            state["epochs"] = max(2, min(recipe.epochs, 2 + int(left / seconds)))
        sampled = len(range(0, steps, 10))
        row = {"epoch": epoch + 1, "seconds": round(seconds, 1), "lr": optimizer.param_groups[0]["lr"],
               "loss": round(loss_sum / sampled, 5), "accuracy": round(hit_sum / sampled, 5),
               "val_loss": round(val_loss, 5), "val_accuracy": round(val_acc, 5),
               **{f"val_{name}": round(acc, 5) for name, acc in camera_acc.items()}}
        state["epoch"] = epoch + 1
        improved = score > state.get("best_score", state["best_val_accuracy"])
        if improved:
            state.update(best_val_accuracy=val_acc, best_score=score, best_epoch=epoch + 1, wait=0,
                         best_camera_accuracy=camera_acc)
            _save_best(eval_model, recipe, run)
        else:
            state["wait"] += 1
        _log(run, row, state, improved)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state,
                    "ema": ema.model.state_dict() if ema is not None else None}, run / "last.pt")
        (run / "state.json").write_text(json.dumps(state, indent=1))
    return state


def _loss(logits: torch.Tensor, targets: torch.Tensor, teacher: torch.Tensor | None, recipe: Recipe) -> torch.Tensor:
    """Per face: cross-entropy on the soft targets, and when there are teacher logits the distillation term."""
    k = len(LABELS)
    smoothed = targets * (1 - recipe.label_smoothing) + recipe.label_smoothing / k
    ce = -(smoothed * F.log_softmax(logits, 1)).sum(1)
    if teacher is None or recipe.distill_weight == 0:
        return ce
    t = recipe.distill_temperature
    kd = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher / t, 1), log_target=True,
                  reduction="none").sum(1) * t * t
    return (1 - recipe.distill_weight) * ce + recipe.distill_weight * kd


def _save_best(model: nn.Module, recipe: Recipe, run: Path) -> None:
    torch.save(model.state_dict(), run / "best.pt")
    if recipe.arch in KERAS_TWINS:
        np.savez(run / "best.weights.npz", **torch_models.keras_weights(model))


def _log(run: Path, row: dict, state: dict, improved: bool) -> None:
    record_epoch(run, row)
    print(f"epoch {row['epoch']}/{state['epochs']}: loss {row['loss']:.4f} acc {row['accuracy']:.4f} "
          f"val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.4f}"
          + "".join(f" {key} {value:.4f}" for key, value in row.items() if key.startswith("val_") and key not in
                    ("val_loss", "val_accuracy"))
          + f" ({row['seconds']:.0f}s)" + (" *best*" if improved else ""), flush=True)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
