"""Noticing when a host opens and closes the port, through inotify on the pty slave's path.

A pty has no carrier or DTR line. Its master hangs up when the last descriptor of the slave closes,
which says whether a host holds it, but not when to look; inotify's open and close events on
/dev/pts/N say that (they are hints, never a count: the kernel folds an event into the one before
it when both are the same). Where inotify is not available the watcher reports nothing and the
port takes a host's first byte as its open (``pty_port.py``).

All the ports of one event loop share one inotify instance (``_SharedInstance``): Linux allows a
user 128 instances across all of their processes (``fs.inotify.max_user_instances``), while one
instance holds a watch per pty by the thousand. Each port's ``OpenWatcher`` sees only the events
of its own ptys, in the order they happened; whichever port reads the instance queues the others'
events for them and has their handlers run on the next loop turn.
"""

from __future__ import annotations

import asyncio
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
IN_Q_OVERFLOW = 0x4000
# What a watcher is given for a queue overflow: its events may be lost, each of its ptys is to be
# looked at again (watch -1 is no watch; the change 0 moves no count).
OVERFLOW = (-1, 0)
_EVENT_HEADER = struct.Struct("iIII")
# Room for a few hundred events per read (each is 16 bytes: the ptys' events carry no name).
_READ_SIZE = 16384


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library the interpreter is linked with (its symbols are the process's own): no
    ``find_library``, which runs ldconfig in a subprocess, once per modem."""
    return ctypes.CDLL(None, use_errno=True)


class _SharedInstance:
    """One inotify instance for every port of one event loop: its descriptor is read by the loop
    once for all, and each event goes to the watcher of the pty it is about (by watch number)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        libc = _libc()
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.loop, self.libc, self.fd = loop, libc, fd
        self._pending = select.poll()
        self._pending.register(fd, select.POLLIN)
        # Asked before every read of a port: poll(0) says "nothing" for a third of the cost of a
        # read that fails with EAGAIN (a Python exception each time).
        self.poll_news: Callable[[int], list] = self._pending.poll
        self._by_watch: dict[int, OpenWatcher] = {}
        self.watchers: set[OpenWatcher] = set()
        # Watchers that were given events by another's read: their handlers run on the next turn
        # (the descriptor will not become readable again for events already read).
        self._due: dict[OpenWatcher, None] = {}
        self._delivery_scheduled = False
        try:
            loop.add_reader(fd, self._on_readable)
        except BaseException:
            os.close(fd)
            raise

    def add_watch(self, watcher: OpenWatcher, path: str) -> int:
        wd = self.libc.inotify_add_watch(self.fd, path.encode(), IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        self._by_watch[wd] = watcher
        return wd

    def rm_watch(self, wd: int) -> None:
        # Events of this watch still in the instance are dropped when read (nobody's).
        if self._by_watch.pop(wd, None) is not None:
            self.libc.inotify_rm_watch(self.fd, wd)

    def read_into_queues(self, reader: OpenWatcher | None) -> None:
        """Read every event so far and queue each for its watcher. The watchers other than
        ``reader`` that got some are due a call of their handler."""
        by_watch, due = self._by_watch, self._due
        while self._pending.poll(0):
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                break
            offset = 0
            while offset + _EVENT_HEADER.size <= len(data):
                wd, mask, _cookie, name_len = _EVENT_HEADER.unpack_from(data, offset)
                offset += _EVENT_HEADER.size + name_len
                if mask & IN_Q_OVERFLOW:
                    # Events were lost (the queue holds 16384 by default; a fleet of busy hosts
                    # can pass that): every watcher looks at its ptys again.
                    log.warning("the inotify queue overflowed: every port looks at its hosts again")
                    for each in self.watchers:
                        each.news.append(OVERFLOW)
                        if each is not reader:
                            due[each] = None
                    continue
                watcher = by_watch.get(wd)
                if watcher is None:
                    continue  # a watch removed since (its pty closed)
                if mask & IN_OPEN:
                    watcher.news.append((wd, +1))
                if mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE):
                    watcher.news.append((wd, -1))
                if watcher is not reader and watcher.news:
                    due[watcher] = None
        if due and reader is not None and not self._delivery_scheduled:
            self._delivery_scheduled = True
            self.loop.call_soon(self._deliver)

    def _on_readable(self) -> None:
        self.read_into_queues(None)
        self._deliver()

    def _deliver(self) -> None:
        """Run the handler of each watcher with events queued (each port's own reader callback,
        as when each had an instance of its own)."""
        self._delivery_scheduled = False
        due, self._due = self._due, {}
        for watcher in due:
            if watcher.news and watcher.on_news is not None:
                try:
                    watcher.on_news()
                except Exception as exc:
                    self.loop.call_exception_handler({
                        "message": "Exception while handling a port's opens and closes", "exception": exc,
                    })

    def close(self) -> None:
        self.loop.remove_reader(self.fd)
        os.close(self.fd)


_shared: dict[asyncio.AbstractEventLoop, _SharedInstance] = {}


class OpenWatcher:
    """One port's view of its loop's inotify instance: ``watch`` adds a pty's path (``--link``
    gives each opener a pty of its own, all watched by one port, so their opens and closes arrive
    in the order they happened), ``on_news`` runs when events for it arrive, ``read_events``
    gives them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_news: Callable[[], object] | None,
                 path: str | None = None):
        self.fd: int | None = None  # the shared instance's; None where inotify is not available
        # Asked with 0 on the hot path: whether the instance has events unread (anybody's); with
        # ``news``, whether this watcher may have some. None without inotify.
        self.poll_news: Callable[[int], list] | None = None
        # Events of this watcher's ptys read by another watcher, not yet given by ``read_events``
        # (the same list for the watcher's whole life, emptied in place).
        self.news: list[tuple[int, int]] = []
        self.on_news = on_news
        self._instance: _SharedInstance | None = None
        self._watches: set[int] = set()
        try:
            instance = _shared.get(loop)
            if instance is None:
                instance = _shared[loop] = _SharedInstance(loop)
            instance.watchers.add(self)
            self._instance, self.fd, self.poll_news = instance, instance.fd, instance.poll_news
            if path is not None:
                self.watch(path)
        except (OSError, AttributeError) as exc:
            self.close()
            log.warning("cannot watch %s for opens and closes (%s): a host is noticed by its first byte",
                        path or "the port", exc)

    def watch(self, path: str) -> int:
        """Report opens and closes of ``path`` from now on; the watch's number (``read_events``)."""
        assert self._instance is not None
        wd = self._instance.add_watch(self, path)
        self._watches.add(wd)
        return wd

    def unwatch(self, wd: int) -> None:
        """Stop watching (before the emulator closes its own descriptors of that pty)."""
        if self._instance is not None and wd in self._watches:
            self._watches.discard(wd)
            self._instance.rm_watch(wd)

    def read(self) -> list[int]:
        """+1 for each open and -1 for each close since the last call, in order (an overflow,
        which a count cannot recover from, is left out)."""
        return [change for wd, change in self.read_events() if wd >= 0]

    def read_events(self) -> list[tuple[int, int]]:
        """(watch, +1) for each open and (watch, -1) for each close since the last call, in order."""
        instance = self._instance
        if instance is None:
            return []
        if instance.poll_news(0):
            instance.read_into_queues(self)
        news = self.news
        if not news:
            return []
        changes = news[:]
        news.clear()
        return changes

    def close(self) -> None:
        """Remove this watcher's watches; the instance closes with the last watcher of its loop."""
        instance, self._instance = self._instance, None
        self.fd = self.poll_news = None
        self.news.clear()
        if instance is None:
            return
        for wd in self._watches:
            instance.rm_watch(wd)
        self._watches.clear()
        instance.watchers.discard(self)
        if not instance.watchers:
            if _shared.get(instance.loop) is instance:
                del _shared[instance.loop]
            instance.close()
