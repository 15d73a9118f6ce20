"""The UART line (``ecemu run --line uart``): bytes take the time they take on the wire.

A pty, a socket or USB moves bytes at memory speed; a module's UART moves one character per
``bits / rate`` seconds (115200 8N1: 10 bits, 86.8 µs). With the UART line the runner sends the
host's bytes through ``incoming`` and the module's through ``outgoing``: each byte reaches the
other side when its last bit has, at the current AT+IPR rate and AT+ICF framing, both ways at
once (full duplex). The module processes what it receives as it arrives (so ``+++`` guard
times and timeouts see the real spacing), and what it says leaves at the line's pace.

The schedule is kept in absolute times: a hand-over that comes late (a busy loop) delivers late,
together with every byte whose last bit has come since, and the bytes after it are not delayed
further, so a long transfer takes its exact line time.

All the lines of one event loop (every modem of an ``ecemu run --count`` fleet) share one pacer
with one asyncio timer, for the earliest slice due: a streaming modem's two directions would
otherwise cost two thousand timers a second, and at fleet scale the timers, not the bytes, were
what the loop spent its time on.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from typing import Callable

from ..core.uart import LineFormat

# Bytes are handed over in slices of about this long on the wire (at least one byte): fine
# enough for guard times, coarse enough to keep the hand-overs few.
SLICE_SECONDS = 0.001
LINE_KINDS = ("usb", "uart")


class LinePacer:
    """The one timer of a loop's lines: it fires when the earliest slice is due and hands over
    every slice due by then, earliest first. Slices due within the loop's own wake-up granularity
    (its selector waits in whole milliseconds) thus go together without a tick of our own, which
    could only make them later."""

    _of_loop: dict[asyncio.AbstractEventLoop, LinePacer] = {}

    @classmethod
    def join(cls, loop: asyncio.AbstractEventLoop) -> LinePacer:
        """The loop's pacer, for one more line; ``leave`` when the line closes."""
        pacer = cls._of_loop.get(loop)
        if pacer is None:
            pacer = cls._of_loop[loop] = cls(loop)
        pacer.lines += 1
        return pacer

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.lines = 0
        # (done, order, direction): a direction's slice on the wire, earliest first, and among
        # slices due at the same time the one scheduled first. A slice its direction dropped
        # (cleared) stays here until due, and is then skipped: its order no longer matches.
        self._due: list[tuple[float, int, PacedDirection]] = []
        self._orders = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._handing_over = False

    def leave(self) -> None:
        self.lines -= 1
        if self.lines == 0:  # the loop's last line: nothing to pace, and the loop may be gone soon
            if self._timer is not None:
                self._timer.cancel()
            self._due.clear()
            del self._of_loop[self.loop]

    def schedule(self, direction: PacedDirection, done: float) -> int:
        """Hand the direction's slice over at ``done``; returns the slice's order, its ticket."""
        order = next(self._orders)
        heapq.heappush(self._due, (done, order, direction))
        if done < self._timer_at and not self._handing_over:  # during a hand-over, re-armed after it
            self._set_timer(done)
        return order

    def _set_timer(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_at(at, self._hand_over_due)

    def _hand_over_due(self) -> None:
        # The loop ran the timer, so its slice is due even if the clock reads a hair before it.
        now = max(self.loop.time(), self._timer_at)
        self._timer = None
        self._timer_at = math.inf
        ready = []
        while self._due and self._due[0][0] <= now:
            ready.append(heapq.heappop(self._due))
        # Slices armed by these hand-overs wait for the next turn of the loop even when already
        # due (a direction catching up after a late timer), so the loop's I/O goes on in between,
        # as it did with a timer per slice.
        self._handing_over = True
        try:
            for _, order, direction in ready:
                try:
                    direction.hand_over(order)
                except Exception as exc:  # as the loop does with a failing callback: logged, the rest go on
                    self.loop.call_exception_handler({"message": "UART line hand-over failed",
                                                      "exception": exc})
        finally:
            self._handing_over = False
            if self._due and self.lines:
                self._set_timer(self._due[0][0])


class PacedDirection:
    """One direction of the line: what was pushed comes out of ``deliver`` at the line's pace."""

    def __init__(self, pacer: LinePacer, deliver: Callable[[bytes], None], line_format: LineFormat):
        self.pacer = pacer
        self.loop = pacer.loop
        self.deliver = deliver
        self.queue = bytearray()  # on the wire or waiting for it, in order
        self.free_at = 0.0  # when the last byte handed over finished
        self.held = False  # flow control: nothing leaves while held (RTS off, AT+IFC=2,2)
        # The slice on the wire: its bytes, when its last bit arrives, and its ticket with the
        # pacer; counted and timed when it started, so a format change applies after it.
        self._on_the_wire: tuple[int, float, int] | None = None
        self.set_format(line_format)

    def set_format(self, line_format: LineFormat) -> None:
        self.seconds_per_byte = line_format.seconds_per_byte
        self.slice = max(1, round(SLICE_SECONDS / self.seconds_per_byte))

    def __len__(self) -> int:
        return len(self.queue)

    def push(self, data: bytes) -> None:
        if not self.queue:
            self._idle_until_now()
        self.queue += data
        self._arm()

    def _idle_until_now(self) -> None:
        """The line had nothing to send: the next byte starts now, not where the last one ended."""
        self.free_at = max(self.free_at, self.loop.time())

    def hold(self, held: bool) -> None:
        """Stop sending after the byte on the wire (held), or go on (not held)."""
        if self.held and not held:
            self._idle_until_now()
        self.held = held
        if not held:
            self._arm()

    def clear(self) -> None:
        self.queue.clear()
        self._on_the_wire = None  # the pacer's ticket for it no longer matches: skipped

    def _arm(self) -> None:
        if self._on_the_wire is not None or not self.queue or self.held:
            return
        count = min(len(self.queue), self.slice)
        done = self.free_at + count * self.seconds_per_byte  # back to back while bytes wait
        self._on_the_wire = (count, done, self.pacer.schedule(self, done))

    def hand_over(self, order: int) -> None:
        """The pacer's call: the slice with this ticket is due, unless it was dropped since."""
        on_the_wire = self._on_the_wire
        if on_the_wire is None or on_the_wire[2] != order:
            return
        count, done, _ = on_the_wire
        self._on_the_wire = None
        # Handed over late (a busy loop): the bytes whose last bit has come since go along, as
        # their own slices would have a moment later, none before its last bit and the schedule
        # exact; a busy loop catches up in one hand-over instead of falling further behind.
        behind = int((self.loop.time() - done) / self.seconds_per_byte)
        if behind > 0 and not self.held:
            caught_up = min(len(self.queue) - count, behind)
            count += caught_up
            done += caught_up * self.seconds_per_byte
        chunk = bytes(self.queue[:count])
        del self.queue[:count]
        self.free_at = done
        self.deliver(chunk)
        self._arm()


class UartLine:
    """Both directions of the line; the runner's ``host_data`` feeds ``incoming`` and its output
    goes through ``outgoing``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, line_format: LineFormat,
                 to_module: Callable[[bytes], None], to_host: Callable[[bytes], None]):
        self.pacer: LinePacer | None = LinePacer.join(loop)
        self.incoming = PacedDirection(self.pacer, to_module, line_format)
        self.outgoing = PacedDirection(self.pacer, to_host, line_format)

    def set_format(self, line_format: LineFormat) -> None:
        self.incoming.set_format(line_format)
        self.outgoing.set_format(line_format)

    def close(self) -> None:
        self.incoming.clear()
        self.outgoing.clear()
        if self.pacer is not None:  # closed once, however often asked
            self.pacer.leave()
            self.pacer = None
