"""The virtual serial port: a pseudo-terminal in raw mode.

The emulator keeps its own descriptor of the slave side open for its whole life. That is what
lets a host open, close and reopen the port as often as it likes: with no slave open the master
would report EIO (Linux) and the port would vanish for the next opener.
"""

from __future__ import annotations

import os
import termios
import tty
from pathlib import Path


class PtyPort:
    def __init__(self, link: Path | None = None):
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave, termios.TCSANOW)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self.link = Path(link) if link else None
        if self.link is not None:
            self._make_link()

    def _make_link(self) -> None:
        link = self.link
        if link.is_symlink():
            link.unlink()  # a stale link from an earlier run that did not end cleanly
        elif link.exists():
            raise FileExistsError(f"{link} exists and is not a symbolic link")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(self.path)

    def read(self, size: int = 65536) -> bytes:
        """What the host wrote; b"" when there is nothing to read now."""
        try:
            return os.read(self.master, size)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            # EIO would mean no slave is open; ours always is, so this is a passing condition.
            return b""

    def write(self, data: bytes) -> int:
        """Write what the pty takes now; returns the count written (0 when its buffer is full)."""
        try:
            return os.write(self.master, data)
        except (BlockingIOError, InterruptedError):
            return 0

    def discard_unread(self) -> None:
        """Drop what the emulator wrote that no host has read."""
        termios.tcflush(self._slave, termios.TCIFLUSH)

    def close(self) -> None:
        if self.link is not None and self.link.is_symlink() and os.readlink(self.link) == self.path:
            self.link.unlink()
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
