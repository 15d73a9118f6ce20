"""The UART line (``ecemu run --line uart``): bytes take the time they take on the wire.

A pty, a socket or USB moves bytes at memory speed; a module's UART moves one character per
``bits / rate`` seconds (115200 8N1: 10 bits, 86.8 µs). With the UART line the runner sends the
host's bytes through ``incoming`` and the module's through ``outgoing``: each byte reaches the
other side when its last bit has, at the current AT+IPR rate and AT+ICF framing, both ways at
once (full duplex). The module processes what it receives as it arrives (so ``+++`` guard
times and timeouts see the real spacing), and what it says leaves at the line's pace.

The schedule is kept in absolute times: a timer that fires late delivers late, but the bytes
after it are not delayed further, so a long transfer takes its exact line time.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from ..core.uart import LineFormat

# Bytes are handed over in slices of about this long on the wire (at least one byte): fine
# enough for guard times, coarse enough to keep the timers few.
SLICE_SECONDS = 0.001
LINE_KINDS = ("usb", "uart")


class PacedDirection:
    """One direction of the line: what was pushed comes out of ``deliver`` at the line's pace."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Callable[[bytes], None], line_format: LineFormat):
        self.loop = loop
        self.deliver = deliver
        self.queue = bytearray()  # on the wire or waiting for it, in order
        self.free_at = 0.0  # when the last byte handed over finished
        self.held = False  # flow control: nothing leaves while held (RTS off, AT+IFC=2,2)
        self._timer: asyncio.TimerHandle | None = None
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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        if self._timer is not None or not self.queue or self.held:
            return
        count = min(len(self.queue), self.slice)
        done = self.free_at + count * self.seconds_per_byte  # back to back while bytes wait
        self._timer = self.loop.call_at(done, self._hand_over, count, done)

    def _hand_over(self, count: int, done: float) -> None:
        self._timer = None
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
        self.incoming = PacedDirection(loop, to_module, line_format)
        self.outgoing = PacedDirection(loop, to_host, line_format)

    def set_format(self, line_format: LineFormat) -> None:
        self.incoming.set_format(line_format)
        self.outgoing.set_format(line_format)

    def close(self) -> None:
        self.incoming.clear()
        self.outgoing.clear()
