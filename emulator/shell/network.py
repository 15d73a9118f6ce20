"""TCP connections for the core's effects, and the events they produce.

The core speaks TLS itself (over memory BIOs); what crosses this layer is ciphertext only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import struct
from typing import Callable

from emulator.core import events as ev
from emulator.shell.dns import MalformedAnswer, resolve_a

log = logging.getLogger(__name__)


class _Eof(bytes):
    """A marker queued behind a connection's bytes: its end, carried out when its turn comes, so
    that with latency or a bandwidth cap an end never overtakes the data sent before it."""


EOF = _Eof()  # outbound: send FIN (ShutdownTcp); inbound: the peer's FIN
RESET = _Eof()  # inbound: the peer reset the connection
CLOSE = _Eof()  # outbound: close the socket (an orderly CloseTcp)


class _Delay:
    """Bytes held back for latency and a bandwidth cap, released in order."""

    def __init__(self, net: "Network", deliver):
        self.net = net
        self.deliver = deliver
        self.queue: list[tuple[float, bytes]] = []
        self.next_free = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def push(self, data: bytes) -> None:
        net = self.net
        loop = asyncio.get_running_loop()
        delay = net.one_way_delay
        if not self.queue and not delay and not net.bandwidth:
            self.deliver(data)
            return
        due = max(loop.time() + delay, self.next_free)
        if net.bandwidth:
            due += len(data) / net.bandwidth
        self.next_free = due
        self.queue.append((due, data))
        self._arm(loop)

    def push_eof(self) -> None:
        """Half-close once every byte queued before it has gone (latency and caps included)."""
        self.push(EOF)

    def _arm(self, loop) -> None:
        if self.timer is None and self.queue:
            self.timer = loop.call_at(self.queue[0][0], self._release)

    def _release(self) -> None:
        self.timer = None
        loop = asyncio.get_running_loop()
        while self.queue and self.queue[0][0] <= loop.time():
            self.deliver(self.queue.pop(0)[1])
        self._arm(loop)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()


class _Connection(asyncio.Protocol):
    def __init__(self, net: "Network", conn_id: int):
        self.net = net
        self.conn_id = conn_id
        self.transport: asyncio.Transport | None = None
        self.closed_reported = False
        self.closing = False
        self.stalled = False
        self.stalled_out: list[bytes] = []  # what a stall holds back, the FIN marker included, in order
        self.inbound = _Delay(net, self._deliver)
        self.outbound = _Delay(net, self._write_now)

    def _deliver(self, data: bytes) -> None:
        if isinstance(data, _Eof):
            self._report_closed(reset=data is RESET)
        else:
            self.net.report(ev.TcpData(self.conn_id, data))

    def _write_now(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if data is CLOSE:
            self.transport.close()
            return
        if self.stalled:
            self.stalled_out.append(data)
            return
        if data is EOF:
            if self.transport.can_write_eof():
                self.transport.write_eof()
            return
        self.transport.write(data)
        if self.transport.get_write_buffer_size() == 0:
            # Reported on the next loop turn: the caller may still be handing out effects.
            asyncio.get_running_loop().call_soon(self.net.report, ev.TcpDrained(self.conn_id))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP connection's
        self.transport = transport
        # high=0: pause_writing as soon as anything is queued, resume_writing when all is sent;
        # that is exactly when the core is told its bytes have left (TcpDrained).
        self.transport.set_write_buffer_limits(high=0, low=0)

    def data_received(self, data: bytes) -> None:
        self.inbound.push(data)

    def eof_received(self) -> bool:
        self.inbound.push(EOF)  # behind the bytes latency still holds: the core sees them first
        if self.outbound.queue:
            # The peer only stopped sending: what the module already took (SEND OK) and latency
            # still holds goes out before the socket closes, instead of with it.
            self.outbound.push(CLOSE)
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.inbound.push(RESET if isinstance(exc, ConnectionResetError) else EOF)
        self.net.connections.pop(self.conn_id, None)
        self.outbound.cancel()

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

    def __init__(self, report: Callable[[ev.NetworkEvent], None],
                 on_effect: Callable[[ev.Effect], None] | None = None, round_trip: float = 0.0):
        self.report = report
        self.on_effect = on_effect
        # The radio network's own round trip (the profile's round_trip_ms): half of it added to every
        # byte each way, a whole one to every connect, as a TCP handshake over LTE takes.
        self.round_trip = round_trip
        self.latency = 0.0  # seconds added to every byte, each way (fault injection), on top
        self.bandwidth = 0  # bytes per second per connection and direction; 0: no cap
        self._failing_opens: list[tuple[str, float | None]] = []  # (reason, seconds) for the next opens
        self.connections: dict[int, _Connection] = {}
        self._opening: dict[int, asyncio.Task] = {}
        self.paused_by_core: set[int] = set()
        self.host_backpressure = False

    @property
    def one_way_delay(self) -> float:
        return self.round_trip / 2 + self.latency

    def execute(self, effect: ev.Effect) -> None:
        if self.on_effect is not None:
            self.on_effect(effect)
        if isinstance(effect, ev.OpenTcp):
            task = asyncio.get_running_loop().create_task(self._open(effect))
            self._opening[effect.conn_id] = task
            task.add_done_callback(functools.partial(self._opened, effect.conn_id))
            return
        if isinstance(effect, ev.CloseTcp):
            opening = self._opening.pop(effect.conn_id, None)
            if opening is not None:
                opening.cancel()
        conn = self.connections.get(effect.conn_id)
        if conn is None or conn.transport is None:
            return
        transport = conn.transport
        if isinstance(effect, ev.SendTcp):
            conn.outbound.push(effect.data)
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
            elif conn.outbound.queue and not conn.stalled:
                # Bytes the latency or bandwidth faults hold back go first, as a socket's close
                # sends what it has queued.
                conn.outbound.push(CLOSE)
            else:
                transport.close()
        elif isinstance(effect, ev.ShutdownTcp):
            conn.outbound.push_eof()
        elif isinstance(effect, ev.PauseReading):
            self.paused_by_core.add(effect.conn_id)
            transport.pause_reading()
        elif isinstance(effect, ev.ResumeReading):
            self.paused_by_core.discard(effect.conn_id)
            if not self.host_backpressure and not conn.stalled:
                transport.resume_reading()

    def _opened(self, conn_id: int, task: asyncio.Task) -> None:
        """An attempt ended. One that died of an unforeseen error is a bug, logged as one, and
        still ends for the module as a failed connection, so that its command gets an answer."""
        self._opening.pop(conn_id, None)
        if task.cancelled() or task.exception() is None:
            return
        log.error("connection %d: opening failed unexpectedly", conn_id, exc_info=task.exception())
        self.report(ev.TcpConnectFailed(conn_id, "unreachable"))

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
            elif conn_id not in self.paused_by_core and not conn.stalled:
                conn.transport.resume_reading()

    # --- faults ----------------------------------------------------------------------------

    def fail_next_opens(self, count: int, reason: str, seconds: float | None = None) -> None:
        """The next ``count`` connection attempts fail: dns, connect, timeout (after ``seconds``, or
        the module's own connect timeout), handshake (the server resets it) or silent (the server
        accepts and never says a word)."""
        self._failing_opens = [(reason, seconds)] * count

    def fault_reset(self, conn_id: int) -> None:
        """The server resets the connection: RST on the wire, TcpClosed(reset) to the core."""
        conn = self.connections.pop(conn_id, None)
        if conn is None or conn.transport is None:
            return
        self._report_closed_now(conn, reset=True)
        sock = conn.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.transport.abort()

    def fault_close(self, conn_id: int) -> None:
        """The server closes the connection cleanly: the core sees the peer's FIN."""
        conn = self.connections.pop(conn_id, None)
        if conn is None or conn.transport is None:
            return
        self._report_closed_now(conn, reset=False)
        conn.transport.close()

    def _report_closed_now(self, conn: _Connection, reset: bool) -> None:
        conn.inbound.cancel()
        conn.outbound.cancel()
        conn.closing = True  # nothing more reaches the core from this socket
        if not conn.closed_reported:
            conn.closed_reported = True
            self.report(ev.TcpClosed(conn.conn_id, reset=reset))

    def fault_stall(self, conn_id: int, seconds: float) -> None:
        """Nothing moves either way; after ``seconds`` (if not 0) traffic resumes, in order."""
        conn = self.connections.get(conn_id)
        if conn is None or conn.transport is None:
            return
        conn.stalled = True
        conn.transport.pause_reading()
        if seconds:
            asyncio.get_running_loop().call_later(seconds, self._unstall, conn)

    def _unstall(self, conn: _Connection) -> None:
        if not conn.stalled or conn.transport is None or conn.transport.is_closing():
            return
        conn.stalled = False
        held, conn.stalled_out = conn.stalled_out, []
        for chunk in held:
            conn._write_now(chunk)
        if conn.conn_id not in self.paused_by_core and not self.host_backpressure:
            conn.transport.resume_reading()

    async def _open(self, effect: ev.OpenTcp) -> None:
        loop = asyncio.get_running_loop()
        injected, seconds = self._failing_opens.pop(0) if self._failing_opens else (None, None)
        if injected == "dns":
            self.report(ev.TcpConnectFailed(effect.conn_id, "dns"))
            return
        if injected == "connect":
            self.report(ev.TcpConnectFailed(effect.conn_id, "refused"))
            return
        if injected == "timeout":
            # The attempt hangs as an unanswered SYN would, until the module gives up.
            await asyncio.sleep(effect.timeout if seconds is None else min(seconds, effect.timeout))
            self.report(ev.TcpConnectFailed(effect.conn_id, "timeout"))
            return
        try:
            address = await asyncio.wait_for(self._resolve(effect), timeout=effect.timeout)
        except (socket.gaierror, UnicodeError, OSError, asyncio.TimeoutError, MalformedAnswer) as exc:
            # Every way a name fails to resolve is the module's DNS failure (565), a server's
            # unreadable answer included.
            log.info("connection %d: cannot resolve %s: %s", effect.conn_id, effect.host, exc)
            self.report(ev.TcpConnectFailed(effect.conn_id, "dns"))
            return
        if self.round_trip:
            await asyncio.sleep(self.round_trip)  # SYN and SYN-ACK over the radio network
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
        if injected == "handshake":
            # The server answers the ClientHello with a reset: the handshake fails.
            self.fault_reset(effect.conn_id)
        elif injected == "silent":
            # The server accepts and then says nothing, for as long as the module waits.
            self.fault_stall(effect.conn_id, 0.0)

    async def _resolve(self, effect: ev.OpenTcp) -> str:
        try:
            socket.inet_pton(socket.AF_INET, effect.host)
            return effect.host
        except OSError:
            pass
        if effect.dns_servers:
            return await resolve_a(effect.host, effect.dns_servers)
        infos = await asyncio.get_running_loop().getaddrinfo(
            effect.host, effect.port, family=socket.AF_INET, type=socket.SOCK_STREAM)
        return str(infos[0][4][0])  # AF_INET: (address, port)

    def close_all(self) -> None:
        for task in list(self._opening.values()):
            task.cancel()
        for conn in list(self.connections.values()):
            if conn.transport is not None:
                conn.closing = True
                conn.transport.abort()
        self.connections.clear()
