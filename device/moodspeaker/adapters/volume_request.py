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


class VolumeRequest:
    def __init__(self, runtime_dir: str | Path) -> None:
        self.path = Path(runtime_dir) / REQUEST_NAME

    def ask(self, level: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{level}\n")
        os.replace(tmp, self.path)

    def pending(self) -> bool:
        return self.path.exists()

    def take(self) -> int | None:
        """The level asked for, once (the file is removed); None when nothing is asked or the file is not a number."""
        try:
            text = self.path.read_text()
            self.path.unlink()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("%s: cannot take the volume request (%s)", self.path, exc)
            return None
        try:
            return int(text.strip())
        except ValueError:
            log.warning("%s: %r is not a volume; ignored", self.path, text[:20])
            return None


class ResumeRequest:
    """`moodspeaker resume`: the owner hands control back to the speaker (see core.session)."""

    def __init__(self, runtime_dir: str | Path) -> None:
        self.path = Path(runtime_dir) / RESUME_NAME

    def ask(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("resume\n")

    def pending(self) -> bool:
        return self.path.exists()

    def take(self) -> bool:
        """True once per request (the file is removed)."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning("%s: cannot take the resume request (%s)", self.path, exc)
            return False
        return True
