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
last of them closes it. As on the one pty (``pty_port.py``), the emulator holds no descriptor of
these ptys' slaves: a pty's master hangs up exactly when no host holds it, which is what decides;
inotify's events only say when to look. A host whose whole session ended before the emulator looked is taken all at once (its bytes,
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

import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from .opens import OpenWatcher
from .pty_port import PtyHost, PtyPort, Seat

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


class LinkedPtyHost(PtyHost):
    """A pty of its own for each host that opens the link (see the module's docstring). Whether
    a host holds a pty is decided as on one pty (``PtyHost._look_at``); what follows differs."""

    def __init__(self, link: Path):
        super().__init__(link)
        self.link: Path = Path(link)
        self._fresh = False  # ptys are being swapped (inotify works); else PtyHost's one pty
        self._waiting: Seat | None = None  # the pty the link points to
        self._held: list[Seat] = []  # seats hosts hold, in the order they came
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
        """A new pty, watched, then the link moved to it (made, the first time: a program waiting
        for the link to be created sees it)."""
        watcher = self._watcher
        assert watcher is not None
        port = PtyPort(self.link if first else None)
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

    def _opened(self, seat: Seat, move_link: bool = True) -> None:
        if not self._fresh:
            super()._opened(seat)
            return
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
        if not self._fresh:
            super()._closed(seat)
            return
        seat.held = False
        self._stop_reading(seat)
        self._held.remove(seat)
        # Nobody holds the pty: all it still holds from the host side is the leaving host's.
        last_words = seat.port.read_to_hangup()
        # A host opened this pty since the look: it found the link there before it moved; its
        # open is news still to come. Asked once: the pty's answer may change at any moment.
        came_since = seat.port.host_holds()
        # The pty stays, as the one pty always did, with what the module wrote on it for the host
        # that left flushed, when the link is still on it (it could not be moved, or the host's
        # whole session fell between two looks) or when a host came since (closing the pty would
        # hang that host up). The rare cases the swap cannot cover; robustness.md.
        kept = seat is self._waiting or came_since
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
        # With a host come since, what was read may be partly its own: all of it goes to the new
        # host once the one that left has been let go, as on the one pty (``PtyHost._closed``).
        if kept:
            self.runner.host_left(b"" if came_since else last_words)
            self._flush(seat)
        else:
            self._close_seat(seat)
            self.runner.host_left(last_words)
        if self._held and self._primary is None:
            self._make_primary(self._held[0])
            self.runner.host_attached()
        if came_since:
            self._opened(seat)
            if last_words:
                self.runner.host_data(last_words)

    def _make_primary(self, seat: Seat) -> None:
        self._primary = seat
        self.port = seat.port
        self._apply_writer()

    # --- bytes ------------------------------------------------------------------------------

    def write(self, data: bytes) -> int:
        if not self._fresh:
            return super().write(data)
        port = self.port
        if port is None:
            return len(data)  # no host: for nobody
        return port.write(data)

    def discard_unread(self) -> None:
        if not self._fresh:
            super().discard_unread()
            return
        seat = self._primary
        if seat is not None:
            self._flush(seat)

    def close(self) -> None:
        if self._fresh:
            link = self.link
            if link.is_symlink() and os.readlink(link) in {seat.port.path for seat in self._seats.values()}:
                link.unlink()
        self._fresh = False
        super().close()
        self._held.clear()
        self._waiting = None


def pty_host(link: Path | None) -> PtyHost:
    """The host side on a pty: behind a link, a pty of its own for each opener."""
    return LinkedPtyHost(link) if link is not None else PtyHost()
