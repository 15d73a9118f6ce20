"""Noticing when a host opens and closes the port, through inotify on the pty slave's path.

A pty has no carrier or DTR line, and because the emulator keeps the slave open itself it never
sees a hangup; inotify's open and close events on /dev/pts/N are what tell it that a host came
or went. Where inotify is not available the watcher reports nothing and the port simply keeps
its output for the next opener.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import select
import struct
from typing import Callable

log = logging.getLogger(__name__)

IN_CLOSE_WRITE = 0x08
IN_CLOSE_NOWRITE = 0x10
IN_OPEN = 0x20
_EVENT_HEADER = struct.Struct("iIII")


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library the interpreter is linked with (its symbols are the process's own): no
    ``find_library``, which runs ldconfig in a subprocess, once per modem."""
    return ctypes.CDLL(None, use_errno=True)


class OpenWatcher:
    """One inotify instance; ``watch`` adds a pty's path (``--link`` gives each opener a pty of its
    own, all watched here, so their opens and closes arrive in the order they happened)."""

    def __init__(self, path: str | None = None):
        self.fd: int | None = None
        self.poll_news: Callable[[int], list] | None = None
        self._libc = None
        try:
            libc = _libc()
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1")
            self._libc, self.fd = libc, fd
            if path is not None:
                self.watch(path)
            # Asked before every read of the port: poll(0) says "nothing" for a third of the cost
            # of a read that fails with EAGAIN (a Python exception each time).
            self._pending = select.poll()
            self._pending.register(fd, select.POLLIN)
            self.poll_news = self._pending.poll  # poll_news(0): whether read() has anything
        except (OSError, AttributeError) as exc:
            self.close()
            log.info("cannot watch %s for opens and closes (%s); output is kept for the next opener", path, exc)

    def watch(self, path: str) -> int:
        """Report opens and closes of ``path`` from now on; the watch's number (``read_events``)."""
        assert self._libc is not None and self.fd is not None
        wd = self._libc.inotify_add_watch(self.fd, path.encode(), IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        return wd

    def unwatch(self, wd: int) -> None:
        """Stop watching (before the emulator closes its own descriptors of that pty)."""
        if self._libc is not None and self.fd is not None:
            self._libc.inotify_rm_watch(self.fd, wd)

    def read(self) -> list[int]:
        """+1 for each open and -1 for each close since the last call, in order."""
        return [change for _wd, change in self.read_events()]

    def read_events(self) -> list[tuple[int, int]]:
        """(watch, +1) for each open and (watch, -1) for each close since the last call, in order."""
        if self.fd is None or not self._pending.poll(0):
            return []
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return []
        changes = []
        offset = 0
        while offset + _EVENT_HEADER.size <= len(data):
            wd, mask, _cookie, name_len = _EVENT_HEADER.unpack_from(data, offset)
            offset += _EVENT_HEADER.size + name_len
            if mask & IN_OPEN:
                changes.append((wd, +1))
            if mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE):
                changes.append((wd, -1))
        return changes

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
