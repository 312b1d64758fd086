"""`moodspeaker volume N` (and `moodspeaker resume`) -> the player daemon: a one-line file in the runtime folder
that the player takes.

The same way as the privacy flag: the command needs no socket and no network, only the right to write in the
runtime folder (root, or the moodspeaker user); the player looks for the file about twice a second.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

REQUEST_NAME = "volume-request"
RESUME_NAME = "resume-request"


class _RequestFile:
    """One request file: written whole (a rename), taken once (read, then removed)."""

    what = "request"

    def __init__(self, runtime_dir: str | Path, name: str) -> None:
        self.path = Path(runtime_dir) / name

    def _ask(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)

    def pending(self) -> bool:
        return self.path.exists()

    def _take(self) -> str | None:
        """The file's text, once (the file is removed); None when nothing is asked or it cannot be taken."""
        try:
            text = self.path.read_text()
            self.path.unlink()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("%s: cannot take the %s (%s)", self.path, self.what, exc)
            return None
        return text


class VolumeRequest(_RequestFile):
    what = "volume request"

    def __init__(self, runtime_dir: str | Path) -> None:
        super().__init__(runtime_dir, REQUEST_NAME)

    def ask(self, level: int) -> None:
        self._ask(f"{level}\n")

    def take(self) -> int | None:
        """The level asked for, once (the file is removed); None when nothing is asked or the file is not a number."""
        text = self._take()
        if text is None:
            return None
        try:
            return int(text.strip())
        except ValueError:
            log.warning("%s: %r is not a volume; ignored", self.path, text[:20])
            return None


class ResumeRequest(_RequestFile):
    """`moodspeaker resume`: the owner hands control back to the speaker (see core.session)."""

    what = "resume request"

    def __init__(self, runtime_dir: str | Path) -> None:
        super().__init__(runtime_dir, RESUME_NAME)

    def ask(self) -> None:
        self._ask("resume\n")

    def take(self) -> bool:
        """True once per request (the file is removed)."""
        return self._take() is not None
