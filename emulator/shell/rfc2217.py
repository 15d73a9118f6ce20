"""The port served over TCP as RFC 2217 (telnet COM port control), for pyserial's
``rfc2217://host:port`` and other RFC 2217 clients.

pyserial's own ``PortManager`` answers the options; this module frames the telnet stream itself
(``TelnetFilter``), so that a malformed or endless subnegotiation is ignored without losing a data
byte, gives the manager a serial line whose DTR drives the modem (AT&D), and carries the bytes.
One client at a time holds the port, as with a real serial port; a second one is refused while
the first is connected. On a loopback address only the user running the emulator may connect
(``peer_is_same_user``); on any other address anyone who can reach the port drives the module.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import struct
from typing import TYPE_CHECKING, Callable, Iterator

from serial.rfc2217 import DO, DONT, IAC, SB, SE, WILL, WONT, PortManager

if TYPE_CHECKING:
    from ecemu.shell.runner import ModemRunner

log = logging.getLogger(__name__)

# Output kept for the first client when it connects (the boot URCs), as a pty keeps it too.
EARLY_OUTPUT_LIMIT = 64 * 1024
# With boot on open: how long after a client connects the module powers on unless the client
# purges the buffers first (pyserial does once it has negotiated, a few tenths of a second after
# connecting, and the module then powers on at once).
OPEN_SETTLE = 1.0
# Bytes queued in the socket above which the module's output waits in the runner's queue.
SOCKET_QUEUE_HIGH = 256 * 1024
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


def _proc_net_address(address: str, port: int) -> str:
    """An address as /proc/net/tcp{,6} writes it: the address's 32-bit words in host order."""
    packed = ipaddress.ip_address(address).packed
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"


def socket_owner(local: tuple, remote: tuple) -> int | None:
    """The uid owning the TCP socket bound to ``local`` and connected to ``remote`` on this
    machine (from /proc/net/tcp and tcp6), or None when there is none."""
    wanted = (_proc_net_address(*local[:2]), _proc_net_address(*remote[:2]))
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if (fields[1], fields[2]) == wanted:
                        return int(fields[7])
        except OSError:
            continue
    return None


def peer_is_same_user(sock: socket.socket) -> bool:
    """Whether the peer of a loopback connection is a socket of the user running the emulator."""
    return socket_owner(sock.getpeername(), sock.getsockname()) == os.geteuid()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _Line:
    """The serial line PortManager reads and sets: fixed settings, DTR reported to the modem."""

    def __init__(self, on_dtr: Callable[[bool], None], on_purge: Callable[[], None]):
        self.on_dtr = on_dtr
        self.on_purge = on_purge
        self.baudrate = 115200
        self.bytesize = 8
        self.parity = "N"
        self.stopbits = 1
        self.rtscts = False
        self.xonxoff = False
        self.rts = True
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

    def reset_input_buffer(self) -> None:
        pass

    def reset_output_buffer(self) -> None:
        # pyserial ends its open with two purges, the port's output first; it empties its own
        # read buffer only once that one is acknowledged, so the module powers on (boot on open)
        # at the second, after which nothing it prints is thrown away.
        self.on_purge()


class _Client(asyncio.Protocol):
    def __init__(self, host: "Rfc2217Host"):
        self.host = host
        self.transport: asyncio.Transport  # from connection_made, before anything else
        self.manager: PortManager | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP connection's
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if self.host.client is not None:
            log.info("RFC 2217: port busy, refusing %s", peer)
            transport.close()
            return
        if self.host.loopback_only_own_user and not peer_is_same_user(transport.get_extra_info("socket")):
            log.warning("RFC 2217: refusing %s, a socket of another user", peer)
            transport.abort()
            return
        self.transport.set_write_buffer_limits(high=SOCKET_QUEUE_HIGH)
        self.host.client = self
        self.manager = PortManager(_Line(self.host.runner.set_dtr, self.host.runner.host_flushed_input), self)
        self.telnet = TelnetFilter(self.manager)
        self.host.client_attached()

    def write(self, data: bytes) -> None:  # PortManager's connection
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self.manager is not None:
            self.host.runner.host_data(self.telnet.feed(data))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.host.client is self:
            self.host.client = None
            self.host.socket_full = False
            self.host.runner.host_left()

    def pause_writing(self) -> None:
        self.host.socket_full = True

    def resume_writing(self) -> None:
        self.host.socket_full = False
        if self.host.wants_writable:
            self.host.runner.host_writable()


class Rfc2217Host:
    open_settle = OPEN_SETTLE
    def __init__(self, bind_host: str, bind_port: int):
        self.bind_host = bind_host
        self.bind_port = bind_port
        self.runner: ModemRunner  # from start()
        self.client: _Client | None = None
        self._sock: socket.socket  # from start()
        self._server: asyncio.AbstractServer | None = None
        self._early = bytearray()
        self._attached_once = False
        # A loopback port is reachable by every local user: only our own may drive the module.
        self.loopback_only_own_user = is_loopback(bind_host)
        self.socket_full = False  # the client's socket holds SOCKET_QUEUE_HIGH unsent bytes
        self.wants_writable = False

    @property
    def address(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"rfc2217://{host}:{port}"

    def start(self, runner: "ModemRunner") -> None:
        self.runner = runner
        # Bound here, synchronously, so that the address can be announced at once.
        sock = self._sock = socket.create_server((self.bind_host, self.bind_port), reuse_port=False)
        sock.setblocking(False)
        loop = runner.loop
        loop.create_task(self._serve(loop, sock))

    async def _serve(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self._server = await loop.create_server(lambda: _Client(self), sock=sock)

    def client_attached(self) -> None:
        # What the module said before the first client came (RDY) goes out before anything the
        # runner writes as it hears of the client: attaching raises DTR and carries out what the
        # modem produced since (a boot URC due by now), straight to the client.
        if not self._attached_once:
            self._attached_once = True
            early, self._early = bytes(self._early), bytearray()
            self.write(early)
        self.runner.host_attached()

    def write(self, data: bytes) -> int:
        client = self.client
        if client is None or client.manager is None:
            if not self._attached_once:
                self._early += data[: max(0, EARLY_OUTPUT_LIMIT - len(self._early))]
            return len(data)
        if self.socket_full or client.transport.is_closing():
            return 0  # waits in the runner's bounded queue until the client reads
        if data:
            client.transport.write(data.replace(IAC, IAC + IAC))
        return len(data)

    def want_writable(self, on: bool) -> None:
        self.wants_writable = on

    def discard_unread(self) -> None:
        pass  # bytes already on their way through TCP cannot be called back

    def pause_reading(self, paused: bool) -> None:
        client = self.client
        if client is not None and client.transport is not None and not client.transport.is_closing():
            if paused:
                client.transport.pause_reading()
            else:
                client.transport.resume_reading()

    def close(self) -> None:
        if self.client is not None and self.client.transport is not None:
            self.client.transport.close()
        if self._server is not None:
            self._server.close()
        elif self._sock is not None:
            self._sock.close()
