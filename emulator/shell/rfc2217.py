"""The port served over TCP as RFC 2217 (telnet COM port control), for pyserial's
``rfc2217://host:port`` and other RFC 2217 clients.

pyserial's own ``PortManager`` speaks the protocol; this module gives it a serial line to
manage whose DTR drives the modem (AT&D), and carries the bytes. One client at a time holds the
port, as with a real serial port; a second one is refused while the first is connected.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Callable

from serial.rfc2217 import PortManager

if TYPE_CHECKING:
    from emulator.shell.runner import ModemRunner

log = logging.getLogger(__name__)

# Output kept for the first client when it connects (the boot URCs), as a pty keeps it too.
EARLY_OUTPUT_LIMIT = 64 * 1024
# Bytes queued in the socket above which the network stops being read.
SOCKET_QUEUE_HIGH = 256 * 1024


class _Line:
    """The serial line PortManager reads and sets: fixed settings, DTR reported to the modem."""

    def __init__(self, on_dtr: Callable[[bool], None]):
        self.on_dtr = on_dtr
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
        pass


class _Client(asyncio.Protocol):
    def __init__(self, host: "Rfc2217Host"):
        self.host = host
        self.transport: asyncio.Transport | None = None
        self.manager: PortManager | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.host.client is not None:
            log.info("RFC 2217: port busy, refusing %s", transport.get_extra_info("peername"))
            transport.close()
            return
        self.transport.set_write_buffer_limits(high=SOCKET_QUEUE_HIGH)
        self.host.client = self
        self.manager = PortManager(_Line(self.host.runner.set_dtr), self)
        self.host.client_attached()

    def write(self, data: bytes) -> None:  # PortManager's connection
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self.manager is not None:
            self.host.runner.host_data(b"".join(self.manager.filter(data)))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.host.client is self:
            self.host.client = None
            self.host.runner.host_left()

    def pause_writing(self) -> None:
        self.host.runner.network.set_host_backpressure(True)

    def resume_writing(self) -> None:
        self.host.runner.network.set_host_backpressure(False)


class Rfc2217Host:
    def __init__(self, bind_host: str, bind_port: int):
        self.bind_host = bind_host
        self.bind_port = bind_port
        self.runner: ModemRunner | None = None
        self.client: _Client | None = None
        self._sock: socket.socket | None = None
        self._server: asyncio.AbstractServer | None = None
        self._early = bytearray()
        self._attached_once = False

    @property
    def address(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"rfc2217://{host}:{port}"

    def start(self, runner: "ModemRunner") -> None:
        self.runner = runner
        # Bound here, synchronously, so that the address can be announced at once.
        self._sock = socket.create_server((self.bind_host, self.bind_port), reuse_port=False)
        self._sock.setblocking(False)
        loop = runner.loop
        loop.create_task(self._serve(loop))

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        self._server = await loop.create_server(lambda: _Client(self), sock=self._sock)

    def client_attached(self) -> None:
        self.runner.host_attached()
        if not self._attached_once:
            self._attached_once = True
            early, self._early = bytes(self._early), bytearray()
            self.write(early)

    def write(self, data: bytes) -> int:
        client = self.client
        if client is None or client.manager is None:
            if not self._attached_once:
                self._early += data[: max(0, EARLY_OUTPUT_LIMIT - len(self._early))]
            return len(data)
        if data:
            client.transport.write(b"".join(client.manager.escape(data)))
        return len(data)

    def want_writable(self, on: bool) -> None:
        pass  # write() always takes everything; the socket's own buffer applies back-pressure

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
