"""The models installed on the device: a new model is fully checked before it can run, then switched in atomically.

Layout of the models directory (/var/lib/moodspeaker/models on a Pi):

    versions/<sha12>/emotion.tflite, emotion.json, golden_faces.npz
    current  -> versions/<sha12>    what the vision daemon loads (see paths.models_dir())
    previous -> versions/<sha12>    what `moodspeaker model rollback` returns to

A candidate is checked where it lies, then copied into a staging folder whose files must hash to what was
checked, then renamed into versions/; `current` only moves once all of that has succeeded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodspeaker.errors import ModelError
from moodspeaker.model_card import ModelCard, load_card, sha256_file

MODEL_FILE = "emotion.tflite"
CARD_FILE = "emotion.json"
VERSIONS = "versions"


@dataclass(frozen=True)
class GoldenResult:
    n: int
    accuracy: float  # measured now, on this device's code
    claimed: float  # what the card says the model scored on the same faces
    tolerance: float


@dataclass(frozen=True)
class InstalledVersion:
    sha12: str
    path: Path
    card: ModelCard | None  # None when the card in the version folder is unreadable
    current: bool
    previous: bool


@dataclass(frozen=True)
class GoldenSpec:
    file: str
    sha256: str
    n: int
    accuracy: float
    tolerance: float


def golden_spec(card: ModelCard, where: Path) -> GoldenSpec:
    raw = card.raw.get("golden")
    if not isinstance(raw, dict):
        raise ModelError(f"{where}: the card has no \"golden\" entry; write the card with `moodspeaker-train report`")
    try:
        spec = GoldenSpec(file=str(raw["file"]), sha256=str(raw["sha256"]), n=int(raw["n"]),
                          accuracy=float(raw["accuracy"]), tolerance=float(raw["tolerance"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{where}: the card's \"golden\" entry is missing or has a bad field ({exc!r})") from None
    if Path(spec.file).name != spec.file:
        raise ModelError(f"{where}: golden.file must be a plain file name, got {spec.file!r}")
    return spec


def check_golden(model: Path, card_path: Path, golden: Path, spec: GoldenSpec) -> GoldenResult:
    """Run the golden faces through the device's classifier; the accuracy must match the card's claim."""
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier
    from moodspeaker.evaluation import evaluate_crops

    if sha256_file(golden) != spec.sha256:
        raise ModelError(f"{golden}: golden faces do not match the card's SHA-256; copy the golden_faces.npz that "
                         "`moodspeaker-train report` wrote next to this model")
    try:
        with np.load(golden) as data:
            images, labels = data["images"], data["labels"].astype(np.int64)
    except (KeyError, ValueError, OSError) as exc:
        raise ModelError(f"{golden}: not a golden-faces file with images and labels ({exc})") from None
    if len(images) != spec.n:
        raise ModelError(f"{golden}: {len(images)} golden faces, the card says {spec.n}")
    classifier = LiteRTClassifier(model, card_path)  # checks SHA-256, loads in LiteRT, checks shapes/dtype/labels
    measured = evaluate_crops(classifier.classify, classifier.labels, images, labels)["accuracy"]
    result = GoldenResult(n=spec.n, accuracy=measured, claimed=spec.accuracy, tolerance=spec.tolerance)
    if abs(measured - spec.accuracy) > spec.tolerance:
        raise ModelError(f"{model}: accuracy on the {spec.n} golden faces is {measured:.4f}, the card claims "
                         f"{spec.accuracy:.4f} (tolerance {spec.tolerance}); the labels or preprocessing in the card "
                         "do not fit this model, or the file is not the model the card was written for")
    return result


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _link(self, name: str) -> Path | None:
        link = self.root / name
        return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None

    def current(self) -> Path | None:
        return self._link("current")

    def previous(self) -> Path | None:
        return self._link("previous")

    def install(self, model: Path, card: Path, golden: Path | None = None) -> tuple[Path, GoldenResult]:
        """Check `model` with `card` and the golden faces, then make it current (the old current becomes previous).

        `golden` defaults to the card's golden file beside the card, else the one the current model came with.
        Raises ModelError, leaving `current` untouched, if anything does not match.
        """
        parsed = load_card(card)
        spec = golden_spec(parsed, card)
        golden = golden or self._find_golden(card, spec)
        for path in (model, golden):
            if not path.is_file():
                raise ModelError(f"{path}: no such file")
        result = check_golden(model, card, golden, spec)
        versions = self.root / VERSIONS
        versions.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=versions))
        try:
            for src, name, sha in ((model, MODEL_FILE, parsed.sha256), (card, CARD_FILE, sha256_file(card)),
                                   (golden, spec.file, spec.sha256)):
                _copy_synced(src, staging / name)
                if sha256_file(staging / name) != sha:
                    raise ModelError(f"{src}: changed while it was being installed; run the install again")
            target = versions / parsed.sha256[:12]
            if target.is_dir():
                shutil.rmtree(staging)  # this exact model (same SHA-256) is already installed
            else:
                staging.chmod(0o755)
                os.replace(staging, target)
                _fsync_dir(versions)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._switch_to(target)
        return target, result

    def rollback(self) -> Path:
        """Make `previous` current again (and the current one previous), after re-checking its file."""
        from moodspeaker.adapters.litert_classifier import LiteRTClassifier

        previous = self.previous()
        if previous is None:
            raise ModelError(f"{self.root}: no previous model to roll back to")
        LiteRTClassifier(previous / MODEL_FILE, previous / CARD_FILE)
        self._switch_to(previous)
        return previous

    def versions(self) -> list[InstalledVersion]:
        current, previous = self.current(), self.previous()
        found = []
        folder = self.root / VERSIONS
        for path in sorted(folder.iterdir() if folder.is_dir() else [], key=lambda p: p.stat().st_mtime):
            if path.name.startswith(".") or not path.is_dir():
                continue
            try:
                card: ModelCard | None = load_card(path / CARD_FILE)
            except ModelError:
                card = None
            found.append(InstalledVersion(sha12=path.name, path=path, card=card, current=path.resolve() == current,
                                          previous=path.resolve() == previous))
        return found

    def _find_golden(self, card: Path, spec: GoldenSpec) -> Path:
        candidates = [card.parent / spec.file]
        if (current := self.current()) is not None:
            candidates.append(current / spec.file)
        for path in candidates:
            if path.is_file() and sha256_file(path) == spec.sha256:
                return path
        raise ModelError(f"{card}: no golden faces matching the card (looked for {', '.join(map(str, candidates))}); "
                         f"copy {spec.file} from the training report next to the card")

    def _switch_to(self, target: Path) -> None:
        """previous := current (if it changes), then current := target; each link is replaced in one rename."""
        current = self.current()
        if current == target.resolve():
            return
        if current is not None:
            _point(self.root / "previous", current)
        _point(self.root / "current", target)


def _point(link: Path, target: Path) -> None:
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)
    _fsync_dir(link.parent)


def _copy_synced(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    dst.chmod(0o644)
    with dst.open("rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
