"""TCP connections for the core's effects, and the events they produce.

The core speaks TLS itself (over memory BIOs); what crosses this layer is ciphertext only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Callable

from emulator.core import events as ev

log = logging.getLogger(__name__)


class _Connection(asyncio.Protocol):
    def __init__(self, net: "Network", conn_id: int):
        self.net = net
        self.conn_id = conn_id
        self.transport: asyncio.Transport | None = None
        self.closed_reported = False
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # high=0: pause_writing as soon as anything is queued, resume_writing when all is sent;
        # that is exactly when the core is told its bytes have left (TcpDrained).
        self.transport.set_write_buffer_limits(high=0, low=0)

    def data_received(self, data: bytes) -> None:
        self.net.report(ev.TcpData(self.conn_id, data))

    def eof_received(self) -> bool:
        self._report_closed(reset=False)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._report_closed(reset=isinstance(exc, ConnectionResetError))
        self.net.connections.pop(self.conn_id, None)

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        if not self.closing:
            self.net.report(ev.TcpDrained(self.conn_id))

    def _report_closed(self, reset: bool) -> None:
        if not self.closed_reported and not self.closing:
            self.closed_reported = True
            self.net.report(ev.TcpClosed(self.conn_id, reset=reset))


class Network:
    """Carries out OpenTcp/SendTcp/CloseTcp/PauseReading/ResumeReading; reports events."""

    def __init__(self, report: Callable[[ev.NetworkEvent], None]):
        self.report = report
        self.connections: dict[int, _Connection] = {}
        self._opening: dict[int, asyncio.Task] = {}
        self.paused_by_core: set[int] = set()
        self.host_backpressure = False

    def execute(self, effect: ev.Effect) -> None:
        if isinstance(effect, ev.OpenTcp):
            task = asyncio.get_running_loop().create_task(self._open(effect))
            self._opening[effect.conn_id] = task
            task.add_done_callback(lambda _t, cid=effect.conn_id: self._opening.pop(cid, None))
            return
        if isinstance(effect, ev.CloseTcp):
            task = self._opening.pop(effect.conn_id, None)
            if task is not None:
                task.cancel()
        conn = self.connections.get(effect.conn_id)
        if conn is None or conn.transport is None:
            return
        transport = conn.transport
        if isinstance(effect, ev.SendTcp):
            if not transport.is_closing():
                transport.write(effect.data)
                if transport.get_write_buffer_size() == 0:
                    # Reported on the next loop turn: the caller is still busy handing out effects.
                    asyncio.get_running_loop().call_soon(self.report, ev.TcpDrained(effect.conn_id))
        elif isinstance(effect, ev.CloseTcp):
            conn.closing = True
            self.connections.pop(effect.conn_id, None)
            self.paused_by_core.discard(effect.conn_id)
            if effect.abort:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    # SO_LINGER 0 turns the close into a reset, as the module's abort does.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            else:
                transport.close()
        elif isinstance(effect, ev.PauseReading):
            self.paused_by_core.add(effect.conn_id)
            transport.pause_reading()
        elif isinstance(effect, ev.ResumeReading):
            self.paused_by_core.discard(effect.conn_id)
            if not self.host_backpressure:
                transport.resume_reading()

    def set_host_backpressure(self, on: bool) -> None:
        """Stop reading every socket while the host is not taking the bytes already sent to it."""
        if on == self.host_backpressure:
            return
        self.host_backpressure = on
        for conn_id, conn in self.connections.items():
            if conn.transport is None or conn.transport.is_closing():
                continue
            if on:
                conn.transport.pause_reading()
            elif conn_id not in self.paused_by_core:
                conn.transport.resume_reading()

    async def _open(self, effect: ev.OpenTcp) -> None:
        loop = asyncio.get_running_loop()
        try:
            address = await asyncio.wait_for(self._resolve(effect), timeout=effect.timeout)
        except (socket.gaierror, UnicodeError, OSError, asyncio.TimeoutError) as exc:
            log.info("connection %d: cannot resolve %s: %s", effect.conn_id, effect.host, exc)
            self.report(ev.TcpConnectFailed(effect.conn_id, "dns"))
            return
        try:
            transport, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self, effect.conn_id), address, effect.port),
                timeout=effect.timeout,
            )
        except asyncio.TimeoutError:
            self.report(ev.TcpConnectFailed(effect.conn_id, "timeout"))
            return
        except ConnectionRefusedError:
            self.report(ev.TcpConnectFailed(effect.conn_id, "refused"))
            return
        except OSError as exc:
            log.info("connection %d: cannot connect to %s:%d: %s", effect.conn_id, address, effect.port, exc)
            self.report(ev.TcpConnectFailed(effect.conn_id, "unreachable"))
            return
        self.connections[effect.conn_id] = conn
        if self.host_backpressure:
            transport.pause_reading()
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.report(ev.TcpConnected(effect.conn_id, peer[0], peer[1], local[1]))

    async def _resolve(self, effect: ev.OpenTcp) -> str:
        try:
            socket.inet_pton(socket.AF_INET, effect.host)
            return effect.host
        except OSError:
            pass
        if effect.dns_servers:
            from emulator.shell.dns import resolve_a

            return await resolve_a(effect.host, effect.dns_servers)
        infos = await asyncio.get_running_loop().getaddrinfo(
            effect.host, effect.port, family=socket.AF_INET, type=socket.SOCK_STREAM)
        return infos[0][4][0]

    def close_all(self) -> None:
        for task in list(self._opening.values()):
            task.cancel()
        for conn in list(self.connections.values()):
            if conn.transport is not None:
                conn.closing = True
                conn.transport.abort()
        self.connections.clear()
