"""Unsolicited result codes: framed as the settings say, held while they would cut into something.

A URC reaches the host at once only while the port is idle (command mode, no command running,
nothing held before it); otherwise it waits and follows the final result, in order. With ATQ1 no
URC is sent at all (V.250 6.2.5).
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Protocol

from .results import FinalResult, encode_block


class FramingSettings(Protocol):
    verbose: bool
    quiet: bool
    s_registers: dict[int, int]


def frame_block(settings: FramingSettings, lines: list[bytes]) -> bytes:
    """An information response or URC, framed per ATV, S3 and S4."""
    registers = settings.s_registers
    return encode_block(lines, settings.verbose, registers[3], registers[4])


def frame_after_data(settings: FramingSettings, line: bytes) -> bytes:
    """An information line that answers the host's data (AT+QFUPL's, AT+QFWRITE's): the module
    writes it straight after the last byte it took, with no S3 S4 before it, and ends it with S3
    S4 whatever ATV says (REFERENCE.md "Data after a prompt", seen)."""
    registers = settings.s_registers
    return line + bytes((registers[3], registers[4]))


def frame_result(settings: FramingSettings, final: FinalResult) -> bytes:
    """A result code as the host gets it: framed per ATV, S3 and S4; nothing at all with ATQ1
    (V.250 6.2.5: no part of a final, intermediate or unsolicited result code is sent)."""
    if settings.quiet:
        return b""
    registers = settings.s_registers
    return final.encode(settings.verbose, registers[3], registers[4])


# Bytes of URCs the module holds for the host at most (REFERENCE.md "A host that does not read",
# chosen): while a command runs, or while the host does not take the module's output, URCs wait; one
# that would take them past this bound is dropped and counted (a real module's URC cache is finite too). Data never travels in a held URC:
# direct push data and MQTT messages wait in their socket instead, which then stops reading.
HELD_URCS_LIMIT = 64 * 1024


class HeldUrcs:
    """URCs waiting for the port to be idle, in the order they came, up to ``limit`` bytes."""

    __slots__ = ("_queue", "size", "limit", "dropped")

    def __init__(self, limit: int = HELD_URCS_LIMIT):
        self._queue: deque[bytes] = deque()
        self.size = 0
        self.limit = limit
        self.dropped = 0  # URCs that found no room, since the power cycle began

    def __bool__(self) -> bool:
        return bool(self._queue)

    def __len__(self) -> int:
        return len(self._queue)

    def hold(self, data: bytes) -> bool:
        """Keep ``data`` for later; False (and counted) when there is no room for it."""
        if self.size + len(data) > self.limit:
            self.dropped += 1
            return False
        self._queue.append(data)
        self.size += len(data)
        return True

    def release(self, write: Callable[[bytes], None]) -> None:
        """Every held URC, in order."""
        queue = self._queue
        while queue:
            data = queue.popleft()
            self.size -= len(data)
            write(data)
