"""Data mode: the raw bytes after a ``>`` prompt or a CONNECT go to the command's ``DataSink``.

The sink says how many bytes it took and, once its data is complete, the command's outcome; it
may time out (its ``deadline``, read again after every feed, so that it can move with the data:
AT+QFUPL's does).

The length rule: a sink that takes a counted number of bytes (``counted`` true: AT+QMTPUBEX,
AT+QMTPUB, AT+QSSLSEND and AT+QISEND with a length, AT+QFUPL, AT+QHTTPURL, AT+QHTTPPOST's body)
ends its data mode at the last counted byte, and whatever else the host had already sent by then
is dropped: it is neither data nor a command line. An EC800M given 135 bytes after
``AT+QMTPUBEX=...,30`` published the first 30, echoed those only, and answered ``OK`` and
``+QMTPUBEX: 0,0,0`` with no ``ERROR`` for the rest (REFERENCE.md "Data after a prompt", seen).
Bytes that arrive after that are command lines again. A sink ended by a character (Ctrl+Z) keeps
what follows it as command bytes.
"""

from __future__ import annotations

from typing import Callable

from .registry import CommandFailed, DataSink, HandlerModem, Outcome
from .timers import Timer


class DataEntry:
    """The sink taking the host's bytes, whether they are echoed, and its timeout."""

    def __init__(self, sink: DataSink, echo: bool, call_at: Callable[[float, Callable[[], None]], Timer],
                 on_expired: Callable[[], None]):
        self.sink = sink
        self.counted = bool(getattr(sink, "counted", False))  # the length rule (module docstring)
        self.echo = echo  # whether the host's data is echoed while ATE1 is on
        self._call_at = call_at
        self._on_expired = on_expired
        self._timer: Timer | None = None
        self._arm()

    def feed(self, modem: HandlerModem, data: bytearray, echo_on: bool,
             write: Callable[[bytes], None]) -> "Outcome | CommandFailed | None":
        """Give the sink what it takes of ``data`` (removed from it, echoed when due)."""
        consumed, outcome = self.sink.feed(modem, bytes(data))
        if consumed and echo_on and self.echo:
            write(bytes(data[:consumed]))
        del data[:consumed]
        if outcome is not None:
            if self.counted:
                data.clear()  # the bytes past the length: dropped (module docstring)
            self.end()
        elif consumed:
            self._arm()  # a sink's deadline may move with its data (AT+QFUPL's does)
        return outcome

    def expire(self, modem: HandlerModem) -> "Outcome | CommandFailed":
        self._timer = None
        self.end()
        return self.sink.expire(modem)

    def end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        deadline = self.sink.deadline()
        timer = self._timer
        if timer is not None:
            if timer.deadline == deadline:
                return
            timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self._call_at(deadline, self._on_expired)
