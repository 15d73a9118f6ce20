"""The data a command takes after its ``>`` prompt (AT+QSSLSEND, AT+QISEND, AT+QMTPUB, AT+QMTPUBEX):
exactly ``length`` bytes when the command gave a length; else the bytes up to Ctrl+Z, which ends
them, or ESC, which cancels the command (SSL note 2.2.3; MQTT note 3.2.8). What each family answers
to a cancel, to too much data and to the data itself is its own (``PromptedData``'s subclasses).
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
    ESC (``_cancelled``); more than ``limit`` before Ctrl+Z is ``_too_long``."""

    def __init__(self, length: int | None, limit: int):
        self.length = length
        self.counted = length is not None  # the length rule: bytes past it are dropped (core/data_entry.py)
        self.limit = limit
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
                return index + 1, self._cancelled()
            if len(self.data) == self.limit:
                # The byte that overflowed is not taken: it starts the next command line.
                return index, self._too_long()
            self.data.append(byte)
        return len(data), None

    def _finish(self, modem: "Modem") -> Outcome | CommandFailed:
        """The data is complete (``self.data``): what the command answers."""
        raise NotImplementedError

    def _cancelled(self) -> CommandFailed:
        """ESC: nothing is sent."""
        raise NotImplementedError

    def _too_long(self) -> CommandFailed:
        """More than ``limit`` bytes before Ctrl+Z: refused whole."""
        raise NotImplementedError

    def deadline(self) -> float | None:
        return None

    def expire(self, modem: "Modem") -> Outcome:
        return Reply(final=ERROR)
