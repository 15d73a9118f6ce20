"""One emulator per port link: a lock file next to the link holding the owner's process id.

Terminal programs refuse a serial port another program has locked (picocom, minicom: a lock file
holding the owner's pid, checked for liveness); ``ecemu run --link`` does the same for its link, so
a second emulator started on the same path is refused instead of silently taking over the link and
the control socket of one still running. A lock whose process is gone is stale and taken over.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .private_files import write_private

_HELD: set[Path] = set()  # locks this process holds (an Emulator in a thread, or ``ecemu run``)


class LinkInUse(Exception):
    def __init__(self, link: Path, pid: int):
        super().__init__(f"{link} is in use by pid {pid}")
        self.link, self.pid = link, pid


def lock_path(link: Path) -> Path:
    return link.with_name(link.name + ".lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def _owner(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


class LinkLock:
    """``acquire()`` before making the link, ``release()`` after removing it."""

    def __init__(self, link: Path):
        self.link = Path(link)
        self.path = lock_path(self.link)
        self.held = False

    def acquire(self) -> None:
        """Take the lock, or raise LinkInUse (a live owner) or OSError (the folder is unusable)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The pid is written to a private file first and linked into place, so the lock file
        # never exists without its pid (a reader would take an empty one for stale).
        # Its name is not guessable and it is created exclusively, never through a planted link.
        draft = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(8)}")
        write_private(draft, f"{os.getpid()}\n")
        try:
            for _ in range(5):  # a stale lock is removed and the link tried again
                try:
                    os.link(draft, self.path)
                except FileExistsError:
                    owner = _owner(self.path)
                    mine = owner == os.getpid()
                    if owner is not None and _alive(owner) and (not mine or self.path.resolve() in _HELD):
                        raise LinkInUse(self.link, owner) from None
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                self.held = True
                _HELD.add(self.path.resolve())
                return
        finally:
            draft.unlink(missing_ok=True)
        raise LinkInUse(self.link, _owner(self.path) or 0)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        _HELD.discard(self.path.resolve())
        if _owner(self.path) == os.getpid():
            self.path.unlink(missing_ok=True)
