"""The module's UART as a host sees it: what the module reports to the shell about its port.

The core decides, the shell carries out: a power cycle loses what the UART had received and not
read (``DropInput``); AT+IPR and AT+ICF change the line's format (``LineFormat``); the module
drives its output lines RI, DCD, CTS and DSR (``LineLevel``, see ``control_lines.py``) and stops
sending while the host's RTS says so (``TransmitHold``). The shell takes these records with
``Modem.take_port_changes`` and maps them onto whatever carries the port (a pty, a serial device,
RFC 2217, raw TCP), which the core never knows.
"""

from __future__ import annotations

from dataclasses import dataclass

# AT+ICF <format> (V.250 6.2.11): data bits, whether a parity bit is sent, stop bits.
CHARACTER_FORMATS = {1: (8, False, 2), 2: (8, True, 1), 3: (8, False, 1), 4: (7, False, 2),
                     5: (7, True, 1), 6: (7, False, 1)}
# AT+ICF <parity> (V.250 6.2.11): odd, even, mark, space.
PARITIES = {0: "odd", 1: "even", 2: "mark", 3: "space"}


@dataclass(frozen=True)
class DropInput:
    """What the host sent that the module had not read yet is gone (a reboot, a power-off)."""


@dataclass(frozen=True)
class LineFormat:
    """The UART's rate and character framing (AT+IPR, AT+ICF); takes effect after the bytes
    already on their way to the host, as the module answers AT+IPR at the old rate."""

    baud: int = 115200
    data_bits: int = 8
    parity: str = "none"  # none, odd, even, mark, space
    stop_bits: int = 1

    @classmethod
    def of(cls, baud: int, framing: tuple[int, int]) -> "LineFormat":
        data_bits, with_parity, stop_bits = CHARACTER_FORMATS[framing[0]]
        return cls(baud, data_bits, PARITIES[framing[1]] if with_parity else "none", stop_bits)

    @property
    def bits_per_character(self) -> int:
        """On the wire: the start bit, the data bits, the parity bit if any, the stop bits."""
        return 1 + self.data_bits + (self.parity != "none") + self.stop_bits

    @property
    def seconds_per_byte(self) -> float:
        return self.bits_per_character / self.baud

    def describe(self) -> str:
        return f"{self.baud} {self.data_bits}{self.parity[0].upper()}{self.stop_bits}"


@dataclass(frozen=True)
class LineLevel:
    """One of the module's output lines changed: ``ri``, ``dcd``, ``cts`` or ``dsr``."""

    line: str
    active: bool


@dataclass(frozen=True)
class TransmitHold:
    """With AT+IFC=2,2 the host's RTS is off: nothing may go to the host (held, not lost) until
    it is on again (``held`` False)."""

    held: bool


PortChange = DropInput | LineFormat | LineLevel | TransmitHold
