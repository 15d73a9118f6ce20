"""The virtual serial port: a pseudo-terminal in raw mode, and the hosts behind it (``PtyHost``).

The emulator holds no descriptor of a pty's slave side: its master then hangs up (POLLHUP) exactly
when no host holds the slave, and that, not a count of inotify's opens and closes, says whether a
host is there. The kernel folds an inotify event into the one before it when both are the same and
the first is still unread, so two opens (or two closes) back to back arrive as one: counted, a
reader and a writer that opened the port together would be one descriptor, and the host would seem
gone when the writer closed. inotify's events (``opens.py``) only tell when to look, and whether a
host left and the next opened the pty before the emulator looked. Hosts may open, close and reopen
the port as often as they like: the pty stays, raw, while its master is open.

Until the first host opens the port the module's output waits in the pty for it (``RDY`` with boot
at start); what was written for a host that left is flushed once it is seen leaving; a host whose
whole session fell between two looks is taken all at once (its bytes, then its leaving). Where
inotify is not available the emulator holds the slave itself while no host is known, takes a
host's first byte as its open and then lets go, so that the hangup tells when that host leaves.
"""

from __future__ import annotations

import array
import collections
import fcntl
import functools
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
            break  # EIO: no host holds the slave (the master hung up), what it wrote has been read
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
    """A pty in raw mode. The emulator holds no descriptor of its slave side (unless ``hold``):
    the master then hangs up exactly when no host holds the slave (``host_holds``)."""

    def __init__(self, link: Path | None = None):
        self.master, slave = os.openpty()
        # Kept by the pty while its master is open: every host that opens the slave finds it raw,
        # however often all of them closed it before.
        tty.setraw(slave, termios.TCSANOW)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(slave)
        os.close(slave)
        self.link = Path(link) if link else None
        self._slave: int | None = None  # the emulator's own descriptor, while it holds the slave
        self._hangup = select.poll()
        self._hangup.register(self.master, 0)  # POLLHUP is reported whatever is asked

    def host_holds(self) -> bool:
        """Whether any host holds the slave side now (while the emulator does not hold it). The
        master hangs up (POLLHUP) when the last descriptor of the slave closes, and the next open
        ends that, however many opens and closes inotify folded into one event."""
        return not self._hangup.poll(0)

    @property
    def emulator_holds(self) -> bool:
        """The emulator holds the slave itself (``hold``): its hangup says nothing of hosts."""
        return self._slave is not None

    def hold(self) -> None:
        """Hold a descriptor of the slave side: the master does not hang up meanwhile, so it can
        be read (for a host's first byte) while no host holds the slave."""
        if self._slave is None:
            self._slave = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

    def let_go(self) -> None:
        """Close the emulator's own descriptor of the slave (``hold``)."""
        slave, self._slave = self._slave, None
        if slave is not None:
            os.close(slave)

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

    def discard_unread(self) -> bool:
        """Drop what the emulator wrote that no host has read; whether the emulator opened the
        slave for it (an open and a close inotify reports as a host's)."""
        if self._slave is not None:
            termios.tcflush(self._slave, termios.TCIFLUSH)
            return False
        try:
            slave = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            termios.tcflush(slave, termios.TCIFLUSH)
        finally:
            os.close(slave)
        return True

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




class Seat:
    """One pty, and whether a host holds it as the emulator last looked."""

    __slots__ = ("port", "wd", "held", "opens", "reading", "closed", "own_opens", "own_closes")

    def __init__(self, port: PtyPort, wd: int):
        self.port, self.wd = port, wd
        self.held = False
        self.opens = 0  # descriptors hosts hold, as inotify's events tell (a hint: see ``hints``)
        # The emulator's own opens and closes of the slave (a flush), whose events are not a host's.
        self.own_opens = self.own_closes = 0
        # The loop reads its master: only while a host holds it (a hung-up master is always
        # readable, so a reader on a pty nobody holds would wake the loop forever).
        self.reading = False
        self.closed = False

    def hints(self, changes: list[int]) -> tuple[int, bool, bool]:
        """What the opens (+1) and closes (-1) since the last look say: the descriptors hosts
        hold, whether a host opened the pty, and whether a host left it and another opened it
        (the last host's close, then an open). Hints, never a count to trust: inotify folds an
        event into the one before it when both are the same."""
        opens, opened, emptied, left_then_came = self.opens, False, False, False
        for change in changes:
            if change > 0:
                left_then_came |= emptied
                opened = True
                opens += 1
            else:
                opens = max(0, opens - 1)
                emptied |= opens == 0 and (self.held or opened)
        return opens, opened, left_then_came

    def flush(self) -> None:
        """Drop what the emulator wrote that no host has read (its own open and close of the
        slave, if it made them, are not taken for a host's)."""
        if self.port.discard_unread():
            self.own_opens += 1
            self.own_closes += 1


class PtyHost(QuietLink):
    """The hosts behind one pseudo-terminal, all on the same pty (see the module's docstring)."""

    open_settle = 0.1  # see ``runner.OPEN_SETTLE``

    def __init__(self, link: Path | None = None):
        self.link = link
        # Where the module's output goes: the one pty from start() until close() (behind a link,
        # the pty of the host that came first, None while none holds one).
        self.port: PtyPort | None = None
        self.runner: ModemRunner  # from start()
        self._watcher: OpenWatcher | None = None
        # poll_news(0): opens or closes are waiting in the loop's inotify instance (a system
        # call, no Python frame: it is asked twice for every command line); None without a
        # watcher. ``_news``: this port's events another port read from it, not yet read here.
        self._poll_news: Callable[[int], list] | None = None
        self._news: list[tuple[int, int]] = []
        self._events: collections.deque[tuple[int, int]] = collections.deque()  # read, not yet handled
        self._seats: dict[int, Seat] = {}  # by inotify watch (-1: the one pty, without inotify)
        self._primary: Seat | None = None  # the seat of the host that gets the module's output
        self._writer_fd: int | None = None
        self._wants_writable = False
        self._reading_paused = False
        # Opens and closes were just looked for (before reading the host's bytes): the first
        # write of their answer need not look again before it, only after.
        self._just_checked = False
        # A look is due on the next loop turn (``_settle_later``); at every pty with ``_everyone_due``.
        self._settle_due = self._everyone_due = False

    @property
    def address(self) -> str:
        seat = next(iter(self._seats.values()), None)
        return seat.port.path if seat is not None else ""

    def start(self, runner: "ModemRunner") -> None:
        """The pty, then the watch on it, then its link: a host opening the link the moment it
        appears (``ecemu run --link L & firmware L``) is seen opening it."""
        self.runner = runner
        port = self.port = PtyPort(self.link)
        watcher = self._watcher = OpenWatcher(runner.loop, self._settle)
        try:
            wd = watcher.watch(port.path) if watcher.fd is not None else -1
        except OSError as exc:
            log.warning("cannot watch %s for opens and closes (%s): a host is noticed by its first byte",
                        port.path, exc)
            watcher.close()
            wd = -1
        if watcher.fd is None:
            self._watcher = None
            # Nobody can tell when a host opens the port: the emulator holds the slave, so the
            # master can be read for the first byte of a host, which counts as its open (from
            # then on the master's hangup tells when it leaves).
            port.hold()
        else:
            self._poll_news, self._news = watcher.poll_news, watcher.news
        seat = self._seats[wd] = Seat(port, wd)
        self._read_from(seat)
        port.make_link()

    # --- hosts coming and going ------------------------------------------------------------

    def _settle(self, everyone: bool = False) -> None:
        """Look at every pty a host opened or closed since the last look (at all of them with
        ``everyone``), in the order of the first news of each."""
        pending = self._events
        self._take_events()
        news: dict[Seat, list[int]] = {}
        overflowed = everyone
        while pending:
            wd, change = pending.popleft()
            if wd < 0:  # the queue overflowed: news may be lost for any of them
                overflowed = True
                continue
            seat = self._seats.get(wd)
            if seat is not None:
                news.setdefault(seat, []).append(change)
        if overflowed:
            for seat in list(self._seats.values()):
                news.setdefault(seat, [])
        for seat, changes in news.items():
            self._look_at(seat, changes)

    def _settle_later(self, everyone: bool = False) -> None:
        """Have the look happen on the next loop turn: events read outside of it are not
        announced again by the inotify descriptor, and the runner must not hear of comings and
        goings in the middle of a write."""
        self._everyone_due |= everyone
        if not self._settle_due:
            self._settle_due = True
            self.runner.loop.call_soon(self._settle_when_due)

    def _settle_when_due(self) -> None:
        everyone, self._everyone_due, self._settle_due = self._everyone_due, False, False
        self._settle(everyone)

    def _read_ahead(self) -> None:
        """Read the events so far outside of a look (they are looked at on the next turn)."""
        before = len(self._events)
        self._take_events()
        if len(self._events) > before:
            self._settle_later()

    def _flush(self, seat: Seat) -> None:
        """Drop what the emulator wrote on ``seat`` that no host has read. The events so far are
        read first: the flush's own open must not be folded into a host's unread one."""
        self._read_ahead()
        seat.flush()
        port = seat.port
        if not port.emulator_holds and (port.host_holds() != seat.held or not seat.held and port.has_input()):
            # A host opened or closed the pty in the instant of the flush (or both, and wrote):
            # its events may have been folded into the flush's own and taken for them. The pty
            # says what happened.
            self._settle_later(everyone=True)

    def _take_events(self) -> None:
        """Read the opens and closes so far into ``_events``, less the emulator's own."""
        watcher, seats = self._watcher, self._seats
        while watcher is not None:
            events = watcher.read_events()
            if not events:
                return
            for wd, change in events:
                seat = seats.get(wd)
                if wd < 0:  # the queue overflowed: the emulator's own events may be lost too
                    for each in seats.values():
                        each.own_opens = each.own_closes = 0
                if seat is not None and change > 0 and seat.own_opens:
                    seat.own_opens -= 1
                elif seat is not None and change < 0 and seat.own_closes:
                    seat.own_closes -= 1
                else:
                    self._events.append((wd, change))

    def _look_at(self, seat: Seat, changes: list[int]) -> None:
        """Bring what the emulator knows of ``seat`` up to what the pty says now. Its master's
        hangup says whether a host holds it; the opens and closes since the last look say
        whether a host came, and whether one left and another opened it before the emulator
        looked (``Seat.hints``)."""
        if seat.closed or seat.port.emulator_holds:
            return  # a pty already closed (its last events), or one the emulator holds itself
        opens, opened, left_then_came = seat.hints(changes)
        holds = seat.port.host_holds()
        seat.opens = max(opens, 1) if holds else 0
        if holds:
            if not seat.held:
                self._opened(seat)
            if left_then_came:
                self._left_and_came(seat)
        elif seat.held:
            self._closed(seat)
        elif opened or seat.port.has_input():
            # A host opened it (and read or wrote) and closed it between two looks: its session,
            # all at once (its bytes, then its leaving).
            self._opened(seat, move_link=False)
            self._closed(seat)

    def _opened(self, seat: Seat, move_link: bool = True) -> None:
        """A host came to ``seat`` (``move_link``: behind a link, whether the link moves on)."""
        seat.held = True
        self._read_from(seat)
        self._primary = seat
        self._apply_writer()
        log.debug("a host opened %s", seat.port.path)
        self.runner.host_attached()

    def _closed(self, seat: Seat) -> None:
        seat.held = False
        self._primary = None
        self._apply_writer()
        # Nobody holds the pty: all it still holds from the host side is the leaving host's.
        last_words = seat.port.read_to_hangup()
        log.debug("the host on %s left", seat.port.path)
        if self._watcher is None:
            self._hold(seat)  # for the next host's first byte
        elif seat.port.host_holds():
            # The next host opened it since the look (its open is news still to come): what was
            # read may be partly its own. Chosen: all of it goes to the new host, once the one
            # that left has been let go, so that no command of the new host is ever taken as
            # the old one's data or answered to nobody.
            self.runner.host_left()
            self._opened(seat)
            self.runner.host_data(last_words)
            return
        else:
            self._stop_reading(seat)
        self.runner.host_left(last_words)

    def _left_and_came(self, seat: Seat) -> None:
        """A host left ``seat`` and another opened it before the emulator looked: for the module a
        host leaving (the DTR drop; what it left unread is flushed) and the next one coming. What
        waits from the host side goes to the new host (chosen: no command of the new host is
        taken as the old one's data)."""
        if seat is not self._primary:
            return
        log.debug("a host left %s and the next opened it at once", seat.port.path)
        self.runner.host_left()
        self.runner.host_attached()

    def _hold(self, seat: Seat) -> None:
        try:
            seat.port.hold()
        except OSError as exc:  # out of descriptors: no next host can be noticed
            log.warning("cannot hold %s (%s): the next host is not noticed", seat.port.path, exc)
            self._stop_reading(seat)

    # --- bytes ------------------------------------------------------------------------------

    def _read_from(self, seat: Seat) -> None:
        if (seat.held or seat.port.emulator_holds) and not seat.reading and not self._reading_paused:
            self.runner.loop.add_reader(seat.port.master, functools.partial(self._on_seat_readable, seat))
            seat.reading = True

    def _stop_reading(self, seat: Seat) -> None:
        if seat.reading:
            self.runner.loop.remove_reader(seat.port.master)
            seat.reading = False

    def _on_seat_readable(self, seat: Seat) -> None:
        # Opens and closes first: a host opens the port before it writes, so this keeps the
        # order in which the two reach the emulator through separate channels.
        poll_news = self._poll_news
        if self._events or self._news or (poll_news is not None and poll_news(0)):
            self._settle()
        port = seat.port
        if not seat.held:
            if not port.emulator_holds:
                return  # its host left (seen just now)
            data = port.read()
            if not data:
                return
            # Bytes with no host known to hold the port: nobody can tell when a host opens it
            # (no inotify). A host writes only after opening: the first byte counts as one.
            log.debug("bytes from a host whose open was not seen: counted as an open")
            port.let_go()  # from now on the master's hangup tells when the host leaves
            self._opened(seat)
        else:
            data = port.read()
        if data:
            # Not asked again before the answer's first write (asked after it): a host that came
            # or went in the moment since is noticed there, and what was written for the one
            # that left is flushed.
            self._just_checked = True
            try:
                self.runner.host_data(data)
            finally:
                self._just_checked = False
        elif not port.host_holds():
            self._look_at(seat, [])  # the master hung up: its host closed the pty

    def write(self, data: bytes) -> int:
        """Write in pieces the kernel writes in one go, checking before and after each for a
        host that left. A bigger write is split by the kernel, which may pause between the
        pieces: the next host could open the port and flush it in the pause, and get the rest.
        Nothing is written once a host is known to have left, and what went in while it left
        is flushed at once; the runner hears of the comings and goings on the next loop turn."""
        port = self.port
        if port is None:
            return len(data)  # no host, or closed: for nobody
        written = 0
        just_checked, self._just_checked = self._just_checked, False
        while written < len(data):
            if not just_checked and self._noticed_a_leave():
                return len(data)  # for nobody: the runner drops the rest when it hears
            just_checked = False
            count = port.write(data[written:written + TTY_WRITE_CHUNK])
            written += count
            if count and self._noticed_a_leave():
                seat = self._primary
                if seat is not None:
                    self._flush(seat)
                return len(data)
            if count < TTY_WRITE_CHUNK:
                break
        return written

    def _noticed_a_leave(self) -> bool:
        """Whether the host that gets the output has left since the emulator last looked
        (perhaps to be replaced by the next at once); the look is then due on the next turn.
        Before the first host nobody can leave: the output waits in the pty for it."""
        seat = self._primary
        if seat is None:
            return False
        poll_news = self._poll_news
        if self._news or (poll_news is not None and poll_news(0)):
            self._read_ahead()
        if poll_news is not None and not self._events:
            return False  # the last close is news before the master hangs up: none, no leave
        left = not seat.port.host_holds()
        if not left and self._events:
            left = seat.hints([change for wd, change in self._events if wd == seat.wd])[2]
        if left:
            self._settle_later(everyone=True)
        return left

    def want_writable(self, on: bool) -> None:
        self._wants_writable = on
        self._apply_writer()

    def _apply_writer(self) -> None:
        # Only while a host holds the pty: before the first one opens it nobody holds its slave,
        # and a hung-up master reads as writable even when full, which would wake the loop
        # forever; the output waits in the runner until the host comes (``_opened``).
        port = self.port
        wanted = port.master if self._wants_writable and port is not None and self._primary is not None else None
        if wanted == self._writer_fd:
            return
        loop = self.runner.loop
        if self._writer_fd is not None:
            loop.remove_writer(self._writer_fd)
        if wanted is not None:
            loop.add_writer(wanted, self._on_writable)
        self._writer_fd = wanted

    def _on_writable(self) -> None:
        # Opens and closes first: when a host closed the port and the next opened it, what was
        # queued for the one that left is dropped before any of it reaches the new one.
        self._settle()
        self.runner.host_writable()

    def discard_unread(self) -> None:
        for seat in self._seats.values():
            self._flush(seat)

    def discard_input(self) -> None:
        dropped = sum(seat.port.discard_input() for seat in self._seats.values())
        if dropped:
            log.info("the module rebooted: %d bytes the host had sent were lost with its UART", dropped)

    def pause_reading(self, paused: bool) -> None:
        if paused == self._reading_paused:
            return
        self._reading_paused = paused
        for seat in self._seats.values():
            if paused:
                self._stop_reading(seat)
            else:
                self._read_from(seat)

    def _close_seat(self, seat: Seat) -> None:
        """Stop watching and reading a pty, and close it with what it still held."""
        seat.closed = True
        del self._seats[seat.wd]
        self._stop_reading(seat)
        if self._writer_fd == seat.port.master:
            self.runner.loop.remove_writer(seat.port.master)
            self._writer_fd = None
        if self._watcher is not None:
            self._watcher.unwatch(seat.wd)
        seat.port.close()

    def close(self) -> None:
        for seat in list(self._seats.values()):
            self._close_seat(seat)
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
            self._poll_news = None
        self._events.clear()
        self._primary = None
        self.port = None
