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


# What one read of a pty gives at most on Linux (N_TTY_BUF_SIZE less one).
LINE_DISCIPLINE_BUFFER = 4095
# What the kernel hands a pty in one piece (tty_write's chunk): a write of more is split into
# pieces with a possible pause between them.
TTY_WRITE_CHUNK = 2048


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
        assert link is not None  # called only with a link
        if link.is_symlink():
            link.unlink()  # a stale link from an earlier run that did not end cleanly
        elif link.exists():
            raise FileExistsError(f"{link} exists and is not a symbolic link")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(self.path)

    def read(self, size: int = 65536) -> bytes:
        """What the host wrote, up to ``size`` bytes; b"" when there is nothing to read now."""
        # One read of a pty gives at most the line discipline's buffer (4 KiB) although the host
        # may have written much more; reading on while reads come back full hands the modem bigger
        # batches, so transparent mode makes fewer TLS records, socket writes and trips through
        # the core. A shorter read found the pty drained: asking again would only cost an EAGAIN.
        chunks = []
        left = size
        while left > 0:
            try:
                chunk = os.read(self.master, left)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                # EIO would mean no slave is open; ours always is, so this is a passing condition.
                break
            chunks.append(chunk)
            left -= len(chunk)
            if len(chunk) < LINE_DISCIPLINE_BUFFER:
                break
        return b"".join(chunks)

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
