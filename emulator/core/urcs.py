"""Unsolicited result codes: framed as the settings say, held while they would cut into something.

A URC reaches the host at once only while the port is idle (command mode, no command running,
nothing held before it); otherwise it waits and follows the final result, in order. With ATQ1 no
URC is sent at all (V.250 6.2.5).
"""

from __future__ import annotations

from typing import Callable, Protocol

from ecemu.core.results import FinalResult, encode_block


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


class HeldUrcs(list[bytes]):
    """URCs waiting for the port to be idle, in the order they came (a list: it is tested for
    emptiness after every command line)."""

    hold = list.append

    def release(self, write: Callable[[bytes], None]) -> None:
        """Every held URC, in order."""
        while self:
            write(self.pop(0))
