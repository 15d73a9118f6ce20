"""Data mode: the raw bytes after a ``>`` prompt or a CONNECT go to the command's ``DataSink``.

The sink says how many bytes it took and, once its data is complete, the command's outcome; it
may time out (its ``deadline``, read again after every feed, so that it can move with the data:
AT+QFUPL's does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ecemu.core.registry import CommandFailed, DataSink, Outcome

if TYPE_CHECKING:
    from ecemu.core.modem import Modem
    from ecemu.core.timers import Timer


class DataEntry:
    """The sink taking the host's bytes, whether they are echoed, and its timeout."""

    def __init__(self, sink: DataSink, echo: bool, call_at: Callable[[float, Callable[[], None]], "Timer"],
                 on_expired: Callable[[], None]):
        self.sink = sink
        self.echo = echo  # whether the host's data is echoed while ATE1 is on
        self._call_at = call_at
        self._on_expired = on_expired
        self._timer: Timer | None = None
        self._arm()

    def feed(self, modem: "Modem", data: bytearray, echo_on: bool,
             write: Callable[[bytes], None]) -> "Outcome | CommandFailed | None":
        """Give the sink what it takes of ``data`` (removed from it, echoed when due)."""
        consumed, outcome = self.sink.feed(modem, bytes(data))
        if consumed and echo_on and self.echo:
            write(bytes(data[:consumed]))
        del data[:consumed]
        if outcome is not None:
            self.end()
        elif consumed:
            self._arm()  # a sink's deadline may move with its data (AT+QFUPL's does)
        return outcome

    def expire(self, modem: "Modem") -> "Outcome | CommandFailed":
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
