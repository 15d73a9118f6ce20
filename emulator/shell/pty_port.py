"""The virtual serial port: a pseudo-terminal in raw mode, and the host behind it (``PtyHost``).

The emulator keeps its own descriptor of the slave side open for its whole life. That is what
lets a host open, close and reopen the port as often as it likes: with no slave open the master
would report EIO (Linux) and the port would vanish for the next opener.
"""

from __future__ import annotations

import array
import fcntl
import logging
import os
import select
import termios
import tty
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from .host_link import QuietLink
from .opens import OpenWatcher

if TYPE_CHECKING:
    from .runner import ModemRunner

log = logging.getLogger(__name__)

# What one read of a pty gives at most on Linux (N_TTY_BUF_SIZE less one).
LINE_DISCIPLINE_BUFFER = 4095
# What the kernel hands a pty in one piece (tty_write's chunk): a write of more is split into
# pieces with a possible pause between them.
TTY_WRITE_CHUNK = 2048
# The most a reboot reads and throws away from the port: what a pty holds, many times over (a
# host that keeps writing refills it; what it writes after the reboot is the new power cycle's).
DISCARD_LIMIT = 1024 * 1024


def read_available(fd: int, size: int = 65536) -> bytes:
    """What waits on a non-blocking tty, up to ``size`` bytes; b"" when there is nothing now."""
    # One read of a pty gives at most the line discipline's buffer (4 KiB) although the host
    # may have written much more; reading on while reads come back full hands the modem bigger
    # batches, so transparent mode makes fewer TLS records, socket writes and trips through
    # the core. A shorter read found the pty drained: asking again would only cost an EAGAIN.
    chunks = []
    left = size
    while left > 0:
        try:
            chunk = os.read(fd, left)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            # EIO would mean no slave is open; ours always is, so this is a passing condition.
            break
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
        if len(chunk) < LINE_DISCIPLINE_BUFFER:
            break
    return b"".join(chunks)


def drain_available(fd: int) -> Iterator[bytes]:
    """What waits on a non-blocking tty, read until it is empty (at most ``DISCARD_LIMIT``: a host
    that keeps writing refills it)."""
    taken = 0
    while taken < DISCARD_LIMIT:
        chunk = read_available(fd)
        if not chunk:
            return
        taken += len(chunk)
        yield chunk


def discard_available(fd: int) -> int:
    """Read and drop what waits on a non-blocking tty (at most ``DISCARD_LIMIT``); the count."""
    return sum(len(chunk) for chunk in drain_available(fd))


class PtyPort:
    """A pty in raw mode. With ``hold_slave`` the emulator keeps a descriptor of the slave side
    (see the module's docstring); without, nobody holds the slave until a host opens it, and the
    master's hangup says exactly whether some host holds it now (``host_holds``)."""

    def __init__(self, link: Path | None = None, hold_slave: bool = True):
        self.master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)  # kept by the pty while its master is open
        os.set_blocking(self.master, False)
        self.path = os.ttyname(slave)
        self.link = Path(link) if link else None
        self._slave: int | None = slave
        self._hangup: select.poll | None = None
        if not hold_slave:
            os.close(slave)
            self._slave = None
            self._hangup = select.poll()
            self._hangup.register(self.master, 0)  # POLLHUP is reported whatever is asked

    def host_holds(self) -> bool:
        """Whether any host holds the slave side now (a port made without ``hold_slave``). The
        master hangs up (POLLHUP) when the last descriptor of the slave closes, and the next open
        ends that, however many opens and closes inotify folded into one event."""
        assert self._hangup is not None
        return not self._hangup.poll(0)

    def make_link(self) -> None:
        """The symbolic link to the port, made last: a host that opens it at once is seen."""
        link = self.link
        if link is None:
            return
        if link.is_symlink():
            link.unlink()  # a stale link from an earlier run that did not end cleanly
        elif link.exists():
            raise FileExistsError(f"{link} exists and is not a symbolic link")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(self.path)

    def read(self, size: int = 65536) -> bytes:
        """What the host wrote, up to ``size`` bytes; b"" when there is nothing to read now."""
        return read_available(self.master, size)

    def read_to_hangup(self) -> bytes:
        """All a host wrote before the last host closed the slave (nothing more can come then;
        at most ``DISCARD_LIMIT``, which a pty never holds)."""
        return b"".join(drain_available(self.master))

    def has_input(self) -> bool:
        """Whether a host's bytes wait to be read (a hung-up master reads as ready regardless)."""
        waiting = array.array("i", [0])
        try:
            fcntl.ioctl(self.master, termios.FIONREAD, waiting)
        except OSError:
            return False
        return waiting[0] > 0

    def write(self, data: bytes) -> int:
        """Write what the pty takes now; returns the count written (0 when its buffer is full)."""
        try:
            return os.write(self.master, data)
        except (BlockingIOError, InterruptedError):
            return 0

    def discard_unread(self) -> None:
        """Drop what the emulator wrote that no host has read."""
        if self._slave is not None:
            termios.tcflush(self._slave, termios.TCIFLUSH)
            return
        try:
            slave = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            termios.tcflush(slave, termios.TCIFLUSH)
        finally:
            os.close(slave)

    def discard_input(self) -> int:
        """Drop what the host wrote that the emulator has not read; the count dropped."""
        return discard_available(self.master)

    def close(self) -> None:
        if self.link is not None and self.link.is_symlink() and os.readlink(self.link) == self.path:
            self.link.unlink()
        for fd in (self.master, self._slave):
            if fd is None:
                continue
            try:
                os.close(fd)
            except OSError:
                pass


class PtyHost(QuietLink):
    """The host behind a pseudo-terminal; inotify on its path tells when hosts come and go."""

    open_settle = 0.1  # see ``runner.OPEN_SETTLE``

    def __init__(self, link: Path | None = None):
        self.link = link
        self.port: PtyPort | None = None  # from start() until close()
        self.runner: ModemRunner  # from start()
        self._watcher: OpenWatcher | None = None
        self.opens = 0  # descriptors hosts hold on the port now
        self._unprocessed: list[int] = []  # opens and closes read by write(), not yet handled
        # poll_news(0): opens or closes are waiting in the loop's inotify instance (a system
        # call, no Python frame: it is asked twice for every command line); None without a
        # watcher. ``_news``: this port's events another port read from it, not yet read here.
        self._poll_news: Callable[[int], list] | None = None
        self._news: list[tuple[int, int]] = []
        # Opens and closes were just looked for (before reading the host's bytes): the first
        # write of their answer need not look again before it, only after.
        self._just_checked = False

    @property
    def address(self) -> str:
        return self.port.path if self.port is not None else ""

    def start(self, runner: "ModemRunner") -> None:
        """The pty, then the watch on it, then its link: a host opening the link the moment it
        appears (``ecemu run --link L & firmware L``) is seen opening it."""
        self.runner = runner
        port = self.port = PtyPort(self.link)
        loop = runner.loop
        self._watcher = OpenWatcher(loop, self._on_open_or_close, port.path)
        self._poll_news = self._watcher.poll_news
        self._news = self._watcher.news
        loop.add_reader(port.master, self._on_readable)
        port.make_link()

    def write(self, data: bytes) -> int:
        """Write in pieces the kernel writes in one go, checking before and after each for a
        host that left. A bigger write is split by the kernel, which may pause between the
        pieces: the next host could open the port and flush it in the pause, and get the rest.
        Nothing is written once a host is known to have left, and what went in while it left
        is flushed at once; the runner hears of the comings and goings on the next loop turn."""
        port = self.port
        if port is None:
            return len(data)  # closed: for nobody
        written = 0
        just_checked, self._just_checked = self._just_checked, False
        while written < len(data):
            if not just_checked and self._noticed_a_leave():
                return len(data)  # for nobody: the runner drops the rest when it hears
            just_checked = False
            count = port.write(data[written:written + TTY_WRITE_CHUNK])
            written += count
            if count and self._noticed_a_leave():
                port.discard_unread()
                return len(data)
            if count < TTY_WRITE_CHUNK:
                break
        return written

    def _noticed_a_leave(self) -> bool:
        """Read opens and closes (kept for ``_on_open_or_close``); whether the last host has
        left since the runner last heard (perhaps to be replaced by the next at once)."""
        poll_news = self._poll_news
        if poll_news is None:
            return False
        if self._news or poll_news(0):
            assert self._watcher is not None  # poll_news is its
            changes = self._watcher.read()
            if changes:
                if not self._unprocessed:
                    self.runner.loop.call_soon(self._settle_comings_and_goings)
                self._unprocessed += changes
        return bool(self._unprocessed) and self._somebody_leaves(self._unprocessed)

    def _somebody_leaves(self, changes: list[int]) -> bool:
        opens = self.opens
        for change in changes:
            opens = max(0, opens + change)
            if opens == 0:
                return True
        return False

    def want_writable(self, on: bool) -> None:
        if self.port is None:
            return
        if on:
            self.runner.loop.add_writer(self.port.master, self._on_writable)
        else:
            self.runner.loop.remove_writer(self.port.master)

    def _on_writable(self) -> None:
        # Opens and closes first: when a host closed the port and the next opened it, what was
        # queued for the one that left is dropped before any of it reaches the new one.
        self._settle_comings_and_goings()
        self.runner.host_writable()

    def _settle_comings_and_goings(self) -> None:
        """Handle every open and close so far, those that happen while handling them included
        (a write or a read in the middle may notice more). Each round empties ``_unprocessed``
        (a closed port too), so this ends."""
        self._on_open_or_close()
        while self._unprocessed:
            self._on_open_or_close()

    def discard_unread(self) -> None:
        if self.port is not None:
            self.port.discard_unread()

    def discard_input(self) -> None:
        if self.port is not None:
            dropped = self.port.discard_input()
            if dropped:
                log.info("the module rebooted: %d bytes the host had sent were lost with its UART", dropped)

    def pause_reading(self, paused: bool) -> None:
        if self.port is None:
            return
        if paused:
            self.runner.loop.remove_reader(self.port.master)
        else:
            self.runner.loop.add_reader(self.port.master, self._on_readable)

    def _on_readable(self) -> None:
        # Opens and closes first: a host opens the port before it writes, so this keeps the
        # order in which the two reach the emulator through separate channels.
        poll_news = self._poll_news
        if self._unprocessed or self._news or (poll_news is not None and poll_news(0)):
            self._settle_comings_and_goings()
        data = self._read()
        if data and self.opens == 0:
            # Bytes with no host known to hold the port: its open was missed (no inotify, or its
            # queue overflowed). A host writes only after opening: the first byte counts as one.
            log.debug("bytes from a host whose open was not seen: counted as an open")
            self.opens = 1
            self.runner.host_attached()
        # Not asked again before the answer's first write (asked after it): a host that came or
        # went in the moment since is noticed there, and what was written for the one that left
        # is flushed.
        self._just_checked = True
        try:
            self.runner.host_data(data)
        finally:
            self._just_checked = False

    def _read(self) -> bytes:
        return self.port.read() if self.port is not None else b""

    def _count(self, changes: list[int]) -> tuple[bool, bool]:
        """Apply opens (+1) and closes (-1); returns (a host was there before, someone left)."""
        was_open = self.opens > 0
        someone_left = False
        for change in changes:
            self.opens = max(0, self.opens + change)
            someone_left |= self.opens == 0
        return was_open, someone_left

    def _on_open_or_close(self) -> None:
        watcher = self._watcher
        changes = self._unprocessed + (watcher.read() if watcher is not None else [])
        self._unprocessed = []
        if self.port is None or not changes:
            return  # closed: a check scheduled by a last write comes too late
        was_open, someone_left = self._count(changes)
        log.debug("port opens/closes %s: %d host descriptors now", changes, self.opens)
        if self.opens == 0 or someone_left:
            last_words = self._read()
            # A host opens before it writes: if nobody opened since, all of ``last_words`` came
            # from the host that left; otherwise part may be the next host's (chosen: all of it
            # goes to the next host, after the one that left has been let go, so that no command
            # of the new host is ever taken as the old one's data or answered to nobody).
            self._count(watcher.read() if watcher is not None else [])
            if self.opens == 0:
                self.runner.host_left(last_words)
                return
            self.runner.host_left()
            self.runner.host_attached()
            self.runner.host_data(last_words)
        elif not was_open:
            self.runner.host_attached()

    def close(self) -> None:
        loop = self.runner.loop if self.port is not None else None  # started, not closed
        if self.port is not None and loop is not None:
            loop.remove_reader(self.port.master)
            loop.remove_writer(self.port.master)
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
            self._poll_news = None
        if self.port is not None:
            self.port.close()
            self.port = None
        self._unprocessed = []
