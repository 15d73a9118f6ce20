"""The data a command takes after its ``>`` prompt (AT+QSSLSEND, AT+QISEND, AT+QMTPUB, AT+QMTPUBEX):
exactly ``length`` bytes when the command gave a length; else the bytes up to Ctrl+Z, which ends
them, or ESC, which cancels the command (SSL note 2.2.3; MQTT note 3.2.8). What each family answers
to a cancel and to too much data is given to ``PromptedData``; what it does with the data is its
subclass's ``_finish``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.registry import CommandFailed, Outcome, Reply
from ..core.results import ERROR

if TYPE_CHECKING:
    from ..core.modem import Modem

CTRL_Z = 0x1A
ESC = 0x1B


class PromptedData:
    """A ``DataSink`` for the data after ``>``: ``length`` bytes, or up to Ctrl+Z (``_finish``) or
    ESC (the failure ``cancelled``: nothing is sent); more than ``limit`` before Ctrl+Z is the
    failure ``too_long`` (refused whole; the byte that overflowed starts the next command line)."""

    def __init__(self, length: int | None, limit: int, cancelled: CommandFailed, too_long: CommandFailed):
        self.length = length
        self.counted = length is not None  # the length rule: bytes past it are dropped (core/data_entry.py)
        self.limit = limit
        self.cancelled = cancelled
        self.too_long = too_long
        self.data = bytearray()

    def feed(self, modem: "Modem", data: bytes) -> tuple[int, Outcome | CommandFailed | None]:
        if self.length is not None:
            take = data[: self.length - len(self.data)]
            self.data += take
            if len(self.data) == self.length:
                return len(take), self._finish(modem)
            return len(take), None
        for index, byte in enumerate(data):
            if byte == CTRL_Z:
                return index + 1, self._finish(modem)
            if byte == ESC:
                return index + 1, self.cancelled
            if len(self.data) == self.limit:
                # The byte that overflowed is not taken: it starts the next command line.
                return index, self.too_long
            self.data.append(byte)
        return len(data), None

    def _finish(self, modem: "Modem") -> Outcome | CommandFailed:
        """The data is complete (``self.data``): what the command answers."""
        raise NotImplementedError

    def deadline(self) -> float | None:
        return None

    def expire(self, modem: "Modem") -> Outcome:
        return Reply(final=ERROR)
