"""The models installed on the device: a new model is fully checked before it can run, then switched in atomically.

Layout of the models directory (/var/lib/moodspeaker/models on a Pi):

    versions/<sha12>/emotion.tflite, emotion.json, golden_faces.npz
    current  -> versions/<sha12>    what the vision daemon loads (see paths.models_dir())
    previous -> versions/<sha12>    what `moodspeaker model rollback` returns to

A candidate is checked where it lies, then copied into a staging folder whose files must hash to what was
checked, then renamed into versions/; `current` only moves once all of that has succeeded. The card is not
trusted: its golden entry must be well-formed, its tolerance small and its accuracy above a floor, so a card
cannot wave through a model with the wrong labels; files are size-capped; one install or rollback at a time
(a lock file in the models directory).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from moodspeaker.core.checks import finite_number
from moodspeaker.errors import ModelError, quote
from moodspeaker.model_card import ModelCard, load_card, sha256_file
from moodspeaker.model_proof import golden_beside, prove, read_golden

MODEL_FILE = "emotion.tflite"
CARD_FILE = "emotion.json"
VERSIONS = "versions"
LOCK_FILE = ".install.lock"
MAX_TOLERANCE = 0.05  # a card may allow the golden accuracy to differ by at most this (int8 rounding, not labels)
GOLDEN_ACCURACY_FLOOR = 0.4  # on 7 classes chance is 0.14; a model below this is not worth running
MIN_GOLDEN_FACES = 50  # fewer cannot tell a right card from a wrong one
MAX_BYTES = {"model": 64 << 20, "card": 1 << 20, "golden faces": 64 << 20}  # a Pi has little RAM and disk


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
    file, sha, n, accuracy, tolerance = (raw.get(k) for k in ("file", "sha256", "n", "accuracy", "tolerance"))
    if not isinstance(file, str) or file in ("", ".", "..") or "\0" in file or Path(file).name != file:
        raise ModelError(f"{where}: golden.file must be a plain file name, got {quote(file)}")
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelError(f"{where}: golden.sha256 must be 64 hex digits, got {quote(sha)}")
    if not isinstance(n, int) or isinstance(n, bool) or n < MIN_GOLDEN_FACES:
        raise ModelError(f"{where}: golden.n must be a whole number of at least {MIN_GOLDEN_FACES} faces, got {quote(n)}")
    if not finite_number(accuracy) or not GOLDEN_ACCURACY_FLOOR <= accuracy <= 1:
        raise ModelError(f"{where}: golden.accuracy must be a number from {GOLDEN_ACCURACY_FLOOR} (the floor for a "
                         f"model worth running) to 1, got {quote(accuracy)}")
    if not finite_number(tolerance) or not 0 <= tolerance <= MAX_TOLERANCE:
        raise ModelError(f"{where}: golden.tolerance must be a number from 0 to {MAX_TOLERANCE}, got {quote(tolerance)}")
    return GoldenSpec(file=file, sha256=sha, n=n, accuracy=float(accuracy), tolerance=float(tolerance))


def check_golden(model: Path, card_path: Path, golden: Path, spec: GoldenSpec) -> GoldenResult:
    """Run the golden faces through the device's classifier, in a child process (model_proof): the accuracy must
    match the card's claim, and a model that crashes the interpreter kills only that child."""
    if sha256_file(golden) != spec.sha256:
        raise ModelError(f"{golden}: golden faces do not match the card's SHA-256; copy the golden_faces.npz that "
                         "`moodspeaker-train report` wrote next to this model")
    images, _ = read_golden(golden)
    if len(images) != spec.n:
        raise ModelError(f"{golden}: {len(images)} golden faces, the card says {spec.n}")
    proof = prove(model, card_path, golden)  # checks SHA-256, loads in LiteRT, checks shapes/dtype/labels, runs
    if proof.n != spec.n or proof.accuracy is None:
        raise ModelError(f"{golden}: changed while the model was being tested; run the install again")
    measured = proof.accuracy
    result = GoldenResult(n=spec.n, accuracy=measured, claimed=spec.accuracy, tolerance=spec.tolerance)
    if measured < GOLDEN_ACCURACY_FLOOR:
        raise ModelError(f"{model}: accuracy on the {spec.n} golden faces is {measured:.4f}, below the floor of "
                         f"{GOLDEN_ACCURACY_FLOOR}; the card's labels or preprocessing do not fit this model")
    if not abs(measured - spec.accuracy) <= spec.tolerance:
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
        with self._locked():
            return self._install(model, card, golden)

    def _install(self, model: Path, card: Path, golden: Path | None) -> tuple[Path, GoldenResult]:
        _check_size(card, "card")
        parsed = load_card(card)
        spec = golden_spec(parsed, card)
        golden = golden or self._find_golden(card, spec)
        for path, what in ((model, "model"), (golden, "golden faces")):
            _check_size(path, what)
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
        """Make `previous` current again (and the current one previous), after re-checking its file and running it
        in a child process (model_proof)."""
        with self._locked():
            previous = self.previous()
            if previous is None:
                raise ModelError(f"{self.root}: no previous model to roll back to")
            card = load_card(previous / CARD_FILE)
            prove(previous / MODEL_FILE, previous / CARD_FILE, golden_beside(card, previous / CARD_FILE))
            self._switch_to(previous)
            return previous

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One install or rollback at a time: two at once would race on the current/previous links."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ModelError(f"{self.root}: cannot write the models directory ({exc.strerror}); run as root or "
                             "the moodspeaker user") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ModelError(f"{self.root}: another `moodspeaker model install` or `rollback` is running; "
                                 "wait for it to finish, then try again") from None
            yield
        finally:
            os.close(fd)

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


def _check_size(path: Path, what: str) -> None:
    """A regular file of at most MAX_BYTES[what], checked before it is read."""
    if not path.is_file():
        raise ModelError(f"{path}: no such file (the {what})")
    try:
        size, cap = path.stat().st_size, MAX_BYTES[what]
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if size > cap:
        raise ModelError(f"{path}: {size / 2**20:.0f} MiB is too large for a {what} file (at most {cap >> 20} MiB)")


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
