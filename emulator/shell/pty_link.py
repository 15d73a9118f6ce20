"""Behind ``--link``: every host that opens the link gets a pty of its own (``LinkedPtyHost``).

With one pty for all hosts, what the module wrote for a host that closed the port waits in the
pty's buffer until the emulator hears of the close (inotify, a moment later) and flushes it; a host
that opens the port in that moment reads it. Here the link never points at a pty a host has
opened: as soon as a host is seen opening the pty behind the link, a fresh pty is made and the link
is moved to it (a new symbolic link renamed over the old, so the link is never missing). The next
opener gets the fresh pty, which holds nothing; what the module wrote to the old one dies with it
when its host has left and the emulator closes it.

Opening the link at the moment of the swap gives the old pty or the new one: the old one is swapped
away once its host is seen on it, while that host still holds it, so an opener that gets it shares
the port with that host (the same session, as two descriptors of one pty always did) until the
last of them closes it. The emulator holds no descriptor of these ptys' slaves: a pty's master
hangs up exactly when no host holds it, which is what decides; inotify's events only say when to
look. A host whose whole session ended before the emulator looked is taken all at once (its bytes,
then its leaving), and the link stays on its pty, flushed: the next host may have found it there
already. Hosts that hold
several ptys at once (a reader and a writer that each opened the link) are one session: the bytes
of each are taken, the module's output goes to the pty of the one that came first, and when that
one leaves while another stays, that is a host leaving (its unread output dies with its pty, the
DTR drop as on any close) and the next host in line gets the output from then on.

Where inotify is not available nobody can tell when a host opened the link, so the one pty stays
(``PtyHost``). A host that opens the pty's own ``/dev/pts/N`` instead of the link is on that
session's pty, which closes when the session ends.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from .opens import OpenWatcher
from .pty_port import PtyHost, PtyPort

if TYPE_CHECKING:
    from .runner import ModemRunner

log = logging.getLogger(__name__)


def point_link(link: Path, target: str) -> None:
    """Make ``link`` a symbolic link to ``target`` in one step: a new link under a name nobody can
    guess, renamed over the old one, so an opener finds either the old target or the new one."""
    draft = link.with_name(f".{link.name}.{secrets.token_hex(8)}")
    os.symlink(target, draft)
    try:
        os.replace(draft, link)
    except BaseException:
        draft.unlink(missing_ok=True)
        raise


class Seat:
    """One pty behind the link, and whether a host holds it as the emulator last looked."""

    __slots__ = ("port", "wd", "held", "opens", "reading", "closed", "own_opens")

    def __init__(self, port: PtyPort, wd: int):
        self.port, self.wd = port, wd
        self.held = False
        self.opens = 0  # descriptors hosts hold, as inotify's events tell (a hint: see _look_at)
        self.own_opens = 0  # the emulator's own opens (a flush), whose events are not a host's
        # The loop reads its master: only while a host holds it (a hung-up master is always
        # readable, so a reader on a pty nobody holds would wake the loop forever).
        self.reading = False
        self.closed = False


class LinkedPtyHost(PtyHost):
    """A pty of its own for each host that opens the link (see the module's docstring)."""

    def __init__(self, link: Path):
        super().__init__(link)
        self.link: Path = Path(link)
        self._fresh = False  # ptys are being swapped (inotify works); else PtyHost's one pty
        self._seats: dict[int, Seat] = {}  # by inotify watch
        self._waiting: Seat | None = None  # the pty the link points to
        self._held: list[Seat] = []  # seats hosts hold, in the order they came
        self._primary: Seat | None = None  # the first of them: the module's output goes there
        self._writer_fd: int | None = None
        self._wants_writable = False
        self._reading_paused = False
        self._events: collections.deque[tuple[int, int]] = collections.deque()  # read, not yet handled
        self.swaps = 0  # ptys made for the link after the first (for tests and the benchmark)

    @property
    def address(self) -> str:
        return str(self.link)

    def start(self, runner: "ModemRunner") -> None:
        """The first pty and the watch on it, then the link: a host opening the link the moment
        it appears is seen."""
        watcher = OpenWatcher(runner.loop, self._settle)
        if watcher.fd is None:
            super().start(runner)
            return
        self._fresh = True
        self.runner = runner
        self._watcher = watcher
        self._poll_news = watcher.poll_news
        self._news = watcher.news
        self._wait_on_fresh_pty(first=True)
        self.port = self._waiting.port if self._waiting is not None else None

    def _wait_on_fresh_pty(self, first: bool = False) -> None:
        """A new pty, watched and read, then the link moved to it (made, the first time: a
        program waiting for the link to be created sees it)."""
        watcher = self._watcher
        assert watcher is not None
        # The emulator holds no descriptor of its slave: the master's hangup then tells exactly
        # whether a host holds it. inotify's events only say when to look: the kernel folds an
        # event into the one before it when both are the same, so two hosts opening (or closing)
        # one after the other give one event, and counting them would let a pty close under a
        # host that still holds it.
        port = PtyPort(self.link if first else None, hold_slave=False)
        try:
            wd = watcher.watch(port.path)
        except OSError:
            port.close()
            raise
        seat = Seat(port, wd)
        try:
            if first:
                port.make_link()
                port.link = None  # the link moves on; closing this pty leaves it alone
            else:
                point_link(self.link, port.path)
        except BaseException:
            watcher.unwatch(wd)
            port.close()
            raise
        self._seats[wd] = seat
        if not first:
            self.swaps += 1
        self._waiting = seat

    # --- hosts coming and going ------------------------------------------------------------

    def _settle(self) -> None:
        """Look at every pty a host opened or closed since the last look, in the order of the
        first news of each."""
        pending = self._events
        pending.extend(self._read_events())
        news: dict[Seat, list[int]] = {}
        overflowed = False
        while pending:
            wd, change = pending.popleft()
            if wd < 0:  # the queue overflowed: news may be lost for any of them
                overflowed = True
                continue
            seat = self._seats.get(wd)
            if seat is None:
                continue
            if change > 0 and seat.own_opens:
                seat.own_opens -= 1  # the emulator's own flush, not a host
                continue
            news.setdefault(seat, []).append(change)
        if overflowed:
            for seat in self._seats.values():
                news.setdefault(seat, [])
        for seat, changes in news.items():
            self._look_at(seat, changes)

    def _read_events(self) -> list[tuple[int, int]]:
        watcher = self._watcher
        events: list[tuple[int, int]] = []
        while watcher is not None:
            more = watcher.read_events()
            if not more:
                break
            events += more
        return events

    def _look_at(self, seat: Seat, changes: list[int]) -> None:
        """Bring what the emulator knows of ``seat`` up to what the pty says now. Its master's
        hangup says whether a host holds it; the opens (+1) and closes (-1) since the last look
        say whether a host came, and whether one left and another opened it before the emulator
        looked (a host that found the link still there). They are hints, never a count to trust:
        inotify folds an event into the one before it when both are the same."""
        if seat.closed:
            return  # a pty already closed: its last events
        opens, opened, emptied, left_then_came = seat.opens, False, False, False
        for change in changes:
            if change > 0:
                left_then_came |= emptied
                opened = True
                opens += 1
            else:
                opens = max(0, opens - 1)
                emptied |= opens == 0 and (seat.held or opened)
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
            # all at once. The link stays on this pty, now flushed: the next host may already have
            # found the link there, and must not find the pty gone under it.
            self._opened(seat, move_link=False)
            self._closed(seat)

    def _left_and_came(self, seat: Seat) -> None:
        """A host left ``seat`` and another opened it before the emulator looked: for the module a
        host leaving (the DTR drop; what it left unread is flushed) and the next one coming. What
        waits from the host side goes to the new host (chosen, as on one pty: no command of the new
        host is taken as the old one's data)."""
        if seat is not self._primary:
            return
        log.debug("a host left %s and the next opened it at once (%s)", self.link, seat.port.path)
        self.runner.host_left()
        self.runner.host_attached()

    def _opened(self, seat: Seat, move_link: bool = True) -> None:
        seat.held = True
        self._read_from(seat)
        if seat is self._waiting and move_link:
            try:
                self._wait_on_fresh_pty()  # the next opener of the link gets a pty of its own
            except OSError as exc:  # out of ptys or descriptors: the link stays on this one
                log.warning("cannot make a fresh pty for %s (%s): the next host shares this one", self.link, exc)
        self._held.append(seat)
        if self._primary is None:
            self._make_primary(seat)
            log.debug("a host opened %s (%s)", self.link, seat.port.path)
            self.runner.host_attached()

    def _closed(self, seat: Seat) -> None:
        seat.held = False
        self._stop_reading(seat)
        self._held.remove(seat)
        # Nobody holds the pty: all it still holds from the host side is the leaving host's.
        last_words = seat.port.read_to_hangup()
        # The pty stays, as the one pty always did, with what the module wrote on it for the host
        # that left flushed, when the link is still on it (it could not be moved, or the host's
        # whole session fell between two looks) or when a host opened it since the look (it found
        # the link there before it moved: closing the pty would hang that host up; its open is
        # news still to come). The rare cases the swap cannot cover; robustness.md.
        kept = seat is self._waiting or seat.port.host_holds()
        if seat is not self._primary:
            if not kept:
                self._close_seat(seat)
            if last_words:
                self.runner.host_data(last_words)
            return
        log.debug("the host on %s (%s) left", self.link, seat.port.path)
        self._primary = None
        self.port = None
        self._apply_writer()
        if kept:
            self.runner.host_left(last_words)
            seat.own_opens += 1  # the flush opens the slave
            seat.port.discard_unread()
        else:
            self._close_seat(seat)
            self.runner.host_left(last_words)
        if self._held and self._primary is None:
            self._make_primary(self._held[0])
            self.runner.host_attached()

    def _make_primary(self, seat: Seat) -> None:
        self._primary = seat
        self.port = seat.port
        self._apply_writer()

    def _close_seat(self, seat: Seat) -> None:
        """Stop watching and reading a pty no host holds, and close it with what it still held."""
        seat.closed = True
        del self._seats[seat.wd]
        loop = self.runner.loop
        self._stop_reading(seat)
        if self._writer_fd == seat.port.master:
            loop.remove_writer(seat.port.master)
            self._writer_fd = None
        if self._watcher is not None:
            self._watcher.unwatch(seat.wd)
        seat.port.close()

    # --- bytes ------------------------------------------------------------------------------

    def _read_from(self, seat: Seat) -> None:
        if seat.held and not seat.reading and not self._reading_paused:
            self.runner.loop.add_reader(seat.port.master, functools.partial(self._on_seat_readable, seat))
            seat.reading = True

    def _stop_reading(self, seat: Seat) -> None:
        if seat.reading:
            self.runner.loop.remove_reader(seat.port.master)
            seat.reading = False

    def _on_seat_readable(self, seat: Seat) -> None:
        # Opens and closes first: a host opens the port before it writes.
        poll_news = self._poll_news
        if self._events or self._news or (poll_news is not None and poll_news(0)):
            self._settle()
        if not seat.held:
            return  # its host left (seen just now)
        data = seat.port.read()
        if data:
            self.runner.host_data(data)
        elif not seat.port.host_holds():
            self._closed(seat)  # the master hung up: its host closed the pty

    def write(self, data: bytes) -> int:
        if not self._fresh:
            return super().write(data)
        port = self.port
        if port is None:
            return len(data)  # no host: for nobody
        return port.write(data)

    def want_writable(self, on: bool) -> None:
        if not self._fresh:
            super().want_writable(on)
            return
        self._wants_writable = on
        self._apply_writer()

    def _apply_writer(self) -> None:
        # Only while a host holds the pty: before the first one opens it nobody holds its slave,
        # and a hung-up master reads as writable even when full, which would wake the loop
        # forever; the output waits in the runner until the host comes (_make_primary).
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
        if not self._fresh:
            super()._on_writable()
            return
        self._settle()
        self.runner.host_writable()

    def discard_unread(self) -> None:
        if not self._fresh:
            super().discard_unread()
            return
        seat = self._primary
        if seat is not None:
            seat.own_opens += 1  # the flush opens the slave
            seat.port.discard_unread()

    def discard_input(self) -> None:
        if not self._fresh:
            super().discard_input()
            return
        dropped = sum(seat.port.discard_input() for seat in list(self._seats.values()))
        if dropped:
            log.info("the module rebooted: %d bytes the host had sent were lost with its UART", dropped)

    def pause_reading(self, paused: bool) -> None:
        if not self._fresh:
            super().pause_reading(paused)
            return
        if paused == self._reading_paused:
            return
        self._reading_paused = paused
        for seat in self._seats.values():
            if paused:
                self._stop_reading(seat)
            else:
                self._read_from(seat)

    def close(self) -> None:
        if not self._fresh:
            super().close()
            return
        self._fresh = False
        link = self.link
        paths = {seat.port.path for seat in self._seats.values()}
        if link.is_symlink() and os.readlink(link) in paths:
            link.unlink()
        for seat in list(self._seats.values()):
            self._close_seat(seat)
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
            self._poll_news = None
        self._held.clear()
        self._primary = self._waiting = None
        self.port = None


def pty_host(link: Path | None) -> PtyHost:
    """The host side on a pty: behind a link, a pty of its own for each opener."""
    return LinkedPtyHost(link) if link is not None else PtyHost()
