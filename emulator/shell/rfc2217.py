"""The port served over TCP as RFC 2217 (telnet COM port control), for pyserial's
``rfc2217://host:port`` and other RFC 2217 clients.

pyserial's own ``PortManager`` answers the options; this module frames the telnet stream itself
(``TelnetFilter``), so that a malformed or endless subnegotiation is ignored without losing a data
byte, gives the manager a serial line whose DTR and RTS are the modem's inputs and whose CTS, DSR,
RI and DCD are its outputs (told to the client in NOTIFY-MODEMSTATE), and carries the bytes.
One client at a time holds the port (``tcp_host.TcpServerHost``), as with a real serial port.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable, Iterator

from serial.rfc2217 import DO, DONT, IAC, SB, SE, WILL, WONT, PortManager

from .tcp_host import Peer, TcpServerHost, socket_owner

if TYPE_CHECKING:
    from ..core.uart import LineFormat

__all__ = ["Rfc2217Host", "TelnetFilter", "socket_owner"]

log = logging.getLogger(__name__)

# With boot on open: how long after a client connects the module powers on unless the client
# purges the buffers first (pyserial does once it has negotiated, a few tenths of a second after
# connecting, and the module then powers on at once).
OPEN_SETTLE = 1.0
# The longest subnegotiation an RFC 2217 client sends is a few bytes (SET-BAUDRATE: 6); a longer
# one is read to its end and ignored, without keeping it.
SUBNEGOTIATION_LIMIT = 64

_IAC, _SB, _SE = IAC[0], SB[0], SE[0]
_NEGOTIATIONS = {DO[0], DONT[0], WILL[0], WONT[0]}


class TelnetFilter:
    """Splits the client's stream into data bytes and telnet commands, in bounded memory. Every
    data byte comes out; options go to the manager, and one it cannot take (a short SET-BAUDRATE,
    an unknown parity, an SE with no SB) is ignored with a log line instead of ending the
    connection (chosen: RFC 854 asks a receiver to ignore what it does not understand)."""

    NORMAL, IAC_SEEN, NEGOTIATE, SUB, SUB_IAC = range(5)

    def __init__(self, manager: PortManager):
        self.manager = manager
        self.state = self.NORMAL
        self.negotiation = 0
        self.suboption = bytearray()
        self.sub_overflow = False

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._data(data))

    def _data(self, data: bytes) -> Iterator[bytes]:
        index, end = 0, len(data)
        while index < end:
            state = self.state
            if state == self.NORMAL:  # a run of data up to the next IAC, in one piece
                stop = data.find(IAC, index)
                if stop < 0:
                    yield data[index:]
                    return
                yield data[index:stop]
                self.state = self.IAC_SEEN
                index = stop + 1
                continue
            if state == self.SUB:  # the option's bytes up to the next IAC, kept while short
                stop = data.find(IAC, index)
                self._keep(data[index:end if stop < 0 else stop])
                if stop < 0:
                    return
                self.state = self.SUB_IAC
                index = stop + 1
                continue
            byte = data[index]
            index += 1
            if state == self.IAC_SEEN:
                if byte == _IAC:
                    yield IAC
                    self.state = self.NORMAL
                elif byte == _SB:
                    self.suboption.clear()
                    self.sub_overflow = False
                    self.state = self.SUB
                elif byte in _NEGOTIATIONS:
                    self.negotiation = byte
                    self.state = self.NEGOTIATE
                else:  # SE with no SB, NOP, BREAK, ...: nothing RFC 2217 needs
                    self.state = self.NORMAL
            elif state == self.NEGOTIATE:
                self._apply(self.manager._telnet_negotiate_option, bytes((self.negotiation,)), bytes((byte,)))
                self.state = self.NORMAL
            elif state == self.SUB_IAC:
                if byte == _SE:
                    if not self.sub_overflow and self.suboption:
                        self._apply(self.manager._telnet_process_subnegotiation, bytes(self.suboption))
                    self.suboption.clear()
                    self.state = self.NORMAL
                else:  # IAC IAC is a 0xFF inside the option; anything else is kept as it is
                    self._keep(bytes((byte,)))
                    self.state = self.SUB

    def _keep(self, chunk: bytes) -> None:
        if len(self.suboption) + len(chunk) <= SUBNEGOTIATION_LIMIT:
            self.suboption += chunk
        elif chunk:
            self.sub_overflow = True

    @staticmethod
    def _apply(handler, *args) -> None:
        try:
            handler(*args)
        except Exception as exc:  # struct.error, KeyError, ValueError from a malformed option
            log.info("RFC 2217: ignoring a malformed option %r: %r", args, exc)


class _Line:
    """The serial line PortManager reads and sets: DTR and RTS reported to the modem, its output
    lines as the module drives them, the rate and framing as the client sets them (kept)."""

    def __init__(self, on_dtr: Callable[[bool], None], on_purge: Callable[[], None],
                 on_rts: Callable[[bool], None]):
        self.on_dtr = on_dtr
        self.on_purge = on_purge
        self.on_rts = on_rts
        self.baudrate = 115200
        self.bytesize = 8
        self.parity = "N"
        self.stopbits = 1
        self.rtscts = False
        self.xonxoff = False
        self._rts = True
        self.break_condition = False
        self.cts = True
        self.dsr = True
        self.ri = False
        self.cd = True
        self._dtr = True

    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self._dtr = bool(value)
        self.on_dtr(self._dtr)

    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, value: bool) -> None:
        self._rts = bool(value)
        self.on_rts(self._rts)

    def reset_input_buffer(self) -> None:
        pass

    def reset_output_buffer(self) -> None:
        # pyserial ends its open with two purges, the port's output first; it empties its own
        # read buffer only once that one is acknowledged, so the module powers on (boot on open)
        # at the second, after which nothing it prints is thrown away.
        self.on_purge()


class Rfc2217Host(TcpServerHost):
    """``--tcp [HOST:]PORT``: the port as an RFC 2217 server."""

    open_settle = OPEN_SETTLE
    scheme = "rfc2217"
    name = "RFC 2217"

    def __init__(self, bind_host: str, bind_port: int):
        super().__init__(bind_host, bind_port)
        self.manager: PortManager | None = None
        self.telnet: TelnetFilter | None = None
        self.line: _Line | None = None
        self._module_lines = {"ri": False, "dcd": False, "cts": False, "dsr": False}  # until power-on

    def peer_came(self, peer: Peer) -> None:
        runner = self.runner
        self.line = _Line(runner.set_dtr, runner.host_flushed_input, runner.set_rts)
        for name, active in self._module_lines.items():
            setattr(self.line, _LINE_ATTRIBUTES[name], active)
        self.manager = PortManager(self.line, _Writer(peer.transport))
        self.telnet = TelnetFilter(self.manager)

    def peer_left(self, peer: Peer) -> None:
        if self.peer is peer:
            self.manager = self.telnet = self.line = None
        super().peer_left(peer)

    def decode(self, data: bytes) -> bytes:
        return self.telnet.feed(data) if self.telnet is not None else b""

    def encode(self, data: bytes) -> bytes:
        return data.replace(IAC, IAC + IAC)

    def set_module_line(self, line: str, active: bool) -> None:
        """The client hears of CTS, DSR, RI and DCD in NOTIFY-MODEMSTATE, as far as its modem
        state mask asks (RFC 2217: a suboption the server sends when a line changes)."""
        self._module_lines[line] = active
        if self.line is not None and self.manager is not None:
            setattr(self.line, _LINE_ATTRIBUTES[line], active)
            self.manager.check_modem_lines()

    def set_format(self, line_format: "LineFormat") -> None:
        if self.line is not None:
            self.line.baudrate = line_format.baud


# The module's output lines by the names pyserial's PortManager reads from its serial line.
_LINE_ATTRIBUTES = {"ri": "ri", "dcd": "cd", "cts": "cts", "dsr": "dsr"}


class _Writer:
    """What PortManager writes its telnet answers to: the client's connection."""

    def __init__(self, transport: asyncio.Transport):
        self.transport = transport

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)
