"""TCP connections, UDP sockets, listeners and DNS look-ups for the core's effects, and the events
they produce.

The core speaks TLS itself (over memory BIOs); what crosses this layer is ciphertext only.

A module's server socket (a "TCP LISTENER", a "UDP SERVICE") is reachable from the machine the
emulator runs on at 127.0.0.1: on the module's own port when that is free there, else on a port the
system picks; ``Listening`` / ``UdpOpened`` tell the core which, and the log says it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import socket
import struct
import time
from collections import deque
from typing import Callable

from ..core import events as ev
from .dns import MalformedAnswer, NameRefused, NetworkPolicy, resolve_a

# Every way a name fails to resolve: the module's DNS failure (565), a server's unreadable answer
# included.
RESOLVE_FAILURES = (socket.gaierror, UnicodeError, OSError, asyncio.TimeoutError, MalformedAnswer)

log = logging.getLogger(__name__)

ECHO_PORT = 7  # what AT+QPING connects to (RFC 862)
DNS_TIMEOUT = 60.0  # seconds a look-up of AT+QIDNSGIP or a UDP open may take (chosen)


class _Eof(bytes):
    """A marker queued behind a connection's bytes: its end, carried out when its turn comes, so
    that with latency or a bandwidth cap an end never overtakes the data sent before it."""


EOF = _Eof()  # outbound: send FIN (ShutdownTcp); inbound: the peer's FIN
RESET = _Eof()  # inbound: the peer reset the connection
CLOSE = _Eof()  # outbound: close the socket (an orderly CloseTcp)

# What the simulated network (latency, a bandwidth cap) holds for one connection in one direction:
# beyond it a TCP socket is not read until half of it has gone on (the server's bytes wait in the
# kernel, and TCP's flow control slows the server down), a UDP socket drops the datagram (counted).
# Bytes the core sends are bounded by the core (its send buffer), so the outbound way never
# exceeds what the module accepted. The figure is the module's receive buffer (64 KiB, chosen).
NETWORK_HOLD = 64 * 1024
# How long one connection may keep the event loop in one turn before the others (every other
# modem's port, connection and timer) get theirs: its bytes reach the core in pieces, each sized so
# that it takes about a quarter of this, and the rest waits for the loop's next turn.
TURN = 0.002
PIECE_MIN, PIECE_FIRST, PIECE_MAX = 256, 16 * 1024, 256 * 1024


class _Delay:
    """Bytes held back for latency and a bandwidth cap, released in order (a FIFO, O(1) each
    way), at most ``TURN`` of the event loop at a time, and not at all while the receiver holds
    them back (``hold``: the core paused the connection). With ``packets`` each push is one
    packet (a data call's IP packets), delivered whole, never cut into pieces."""

    __slots__ = ("net", "deliver", "queue", "size", "next_free", "timer", "held", "piece", "full",
                 "on_room", "packets")

    def __init__(self, net: "Network", deliver: Callable[[bytes], None],
                 on_room: Callable[[], None] | None = None, packets: bool = False):
        self.net = net
        self.deliver = deliver
        self.packets = packets
        self.on_room = on_room  # told when ``full`` has just cleared
        self.queue: deque[list] = deque()  # [due, data, offset]: a long chunk goes out in pieces
        self.size = 0  # bytes queued (what is left of each chunk)
        self.next_free = 0.0
        self.timer: asyncio.Handle | None = None
        self.held = False
        self.piece = PIECE_FIRST
        self.full = False  # above NETWORK_HOLD until it is back under half of it

    def push(self, data: bytes) -> None:
        net = self.net
        loop = asyncio.get_running_loop()
        delay = net.one_way_delay
        now = loop.time()
        if self.queue or delay or net.bandwidth:
            due = max(now + delay, self.next_free)
            if net.bandwidth:
                due += len(data) / net.bandwidth
            self.next_free = due
        else:
            due = now
        self.queue.append([due, data, 0])
        self.size += len(data)
        if self.size > NETWORK_HOLD:
            self.full = True
        if due <= now and self.timer is None and not self.held:
            self._release()
        else:
            self._arm(loop)

    def push_eof(self) -> None:
        """Half-close once every byte queued before it has gone (latency and caps included)."""
        self.push(EOF)

    def hold(self, held: bool) -> None:
        """Deliver nothing while held; what is due goes on the loop's next turn once released."""
        self.held = held
        if held:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
        else:
            self._arm(asyncio.get_running_loop())

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.timer is not None or not self.queue or self.held:
            return
        due = self.queue[0][0]
        if due <= loop.time():
            self.timer = loop.call_soon(self._release)
        else:
            self.timer = loop.call_at(due, self._release)

    def _release(self) -> None:
        self.timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        queue = self.queue
        clock = time.perf_counter
        turn_ends = clock() + TURN
        while queue and queue[0][0] <= now and not self.held:
            entry = queue[0]
            data, offset = entry[1], entry[2]
            if type(data) is bytes and len(data) - offset > self.piece and not self.packets:
                piece = data[offset:offset + self.piece]
                entry[2] = offset + len(piece)
            else:
                piece = data[offset:] if offset else data
                queue.popleft()
            self.size -= len(piece)
            started = clock()
            self.deliver(piece)
            ended = clock()
            if len(piece) >= self.piece // 2:  # a piece cut to size: fit the next to the time it took
                # About a quarter of a turn each, at most halved or doubled at a time.
                wanted = self.piece * (TURN / 4) / max(ended - started, 1e-7)
                self.piece = int(min(PIECE_MAX, self.piece * 2, max(PIECE_MIN, self.piece // 2, wanted)))
            if ended >= turn_ends:
                break  # the rest on the loop's next turn, after everyone else's
        if self.full and self.size <= NETWORK_HOLD // 2:
            self.full = False
            if self.on_room is not None:
                self.on_room()
        self._arm(loop)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.size = 0
        self.full = False


class _Connection(asyncio.Protocol):
    def __init__(self, net: "Network", conn_id: int | None, listener: int | None = None):
        self.net = net
        self.conn_id = conn_id  # None: accepted by a listener, until the core takes it (AcceptTcp)
        self.listener = listener
        # What arrived before the core knew the connection (TcpConnected, AcceptTcp): a server that
        # speaks first (a banner) can be read before the connect's coroutine resumes.
        self.announced = False
        self.held: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.closed_reported = False
        self.closing = False
        self.stalled = False
        self.stalled_out: list[bytes] = []  # what a stall holds back, the FIN marker included, in order
        self.drained_due = False  # a TcpDrained is on its way (one per loop turn is enough)
        self.inbound = _Delay(net, self._deliver, on_room=self.update_reading)
        self.outbound = _Delay(net, self._write_now)

    def update_reading(self) -> None:
        """Read the socket unless something says not to: the core (its buffer is full), the host
        (it does not take the module's output), a stall, the simulated network holding its bound,
        or a connection no core socket has taken yet."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        net = self.net
        if (not self.announced or self.stalled or net.host_backpressure or self.inbound.full
                or self.conn_id in net.paused_by_core):
            transport.pause_reading()
        else:
            transport.resume_reading()

    def _deliver(self, data: bytes) -> None:
        if not self.announced:
            self.held.append(data)
            return
        if isinstance(data, _Eof):
            self._report_closed(reset=data is RESET)
            if self.conn_id is not None and self.net.connections.get(self.conn_id) is self \
                    and (self.transport is None or self.transport.is_closing()):
                del self.net.connections[self.conn_id]  # its end is out: nothing more to carry
        elif self.conn_id is not None:  # announced: the core knows the connection
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
        if self.transport.get_write_buffer_size() == 0 and self.conn_id is not None and not self.drained_due:
            # Reported on the next loop turn: the caller may still be handing out effects.
            self.drained_due = True
            asyncio.get_running_loop().call_soon(self._report_drained)

    def _report_drained(self) -> None:
        self.drained_due = False
        if not self.closing and self.conn_id is not None:
            self.net.report(ev.TcpDrained(self.conn_id))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP connection's
        self.transport = transport
        # high=0: pause_writing as soon as anything is queued, resume_writing when all is sent;
        # that is exactly when the core is told its bytes have left (TcpDrained).
        self.transport.set_write_buffer_limits(high=0, low=0)
        if self.listener is not None:
            self.net._incoming(self)

    def announced_as(self, conn_id: int) -> None:
        """The core knows this connection as ``conn_id`` now: what arrived meanwhile goes to it."""
        self.conn_id = conn_id
        self.announced = True
        held, self.held = self.held, []
        for data in held:
            self._deliver(data)
        self.update_reading()

    def data_received(self, data: bytes) -> None:
        self.inbound.push(data)
        if self.inbound.full:
            self.update_reading()

    def eof_received(self) -> bool:
        self.inbound.push(EOF)  # behind the bytes latency still holds: the core sees them first
        if self.outbound.queue:
            # The peer only stopped sending: what the module already took (SEND OK) and latency
            # still holds goes out before the socket closes, instead of with it.
            self.outbound.push(CLOSE)
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        # Its end goes behind what the simulated network still holds for the core, which the
        # connection stays known for (``_deliver`` forgets it once the end is out).
        self.inbound.push(RESET if isinstance(exc, ConnectionResetError) else EOF)
        self.outbound.cancel()

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        if not self.closing and self.conn_id is not None:
            self.net.report(ev.TcpDrained(self.conn_id))

    def _report_closed(self, reset: bool) -> None:
        if not self.closed_reported and not self.closing and self.conn_id is not None:
            self.closed_reported = True
            self.net.report(ev.TcpClosed(self.conn_id, reset=reset))


class _Addressed(bytes):
    """A datagram with its peer, as it waits in a ``_Delay`` (latency, a bandwidth cap)."""

    peer: tuple[str, int] | None = None


def _addressed(data: bytes, peer: tuple[str, int] | None) -> _Addressed:
    datagram = _Addressed(data)
    datagram.peer = peer
    return datagram


class _Datagrams(asyncio.DatagramProtocol):
    """A UDP socket of the module: every datagram goes to the core with its sender, each way through
    the same latency and bandwidth faults as a TCP connection's bytes. UDP has no flow control: a
    datagram that would take either way's simulated network past ``NETWORK_HOLD`` is dropped,
    counted, and the count reported to the core (``UdpDropped``, in the trace)."""

    def __init__(self, net: "Network", conn_id: int):
        self.net = net
        self.conn_id = conn_id
        self.transport: asyncio.DatagramTransport | None = None
        self.inbound = _Delay(net, self._deliver)
        self.outbound = _Delay(net, self._send_now)
        self.dropped_in = self.dropped_out = 0
        self._drops_due = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr) -> None:
        if self.inbound.size + len(data) > NETWORK_HOLD:
            self._dropped(inbound=True)
            return
        self.inbound.push(_addressed(data, (addr[0], addr[1])))

    def send(self, data: bytes, peer: tuple[str, int] | None) -> None:
        if self.outbound.size + len(data) > NETWORK_HOLD:
            self._dropped(inbound=False)
            return
        self.outbound.push(_addressed(data, peer))

    def _dropped(self, inbound: bool) -> None:
        if inbound:
            self.dropped_in += 1
        else:
            self.dropped_out += 1
        if not self._drops_due:  # one report per loop turn, however many went
            self._drops_due = True
            asyncio.get_running_loop().call_soon(self._report_drops)

    def _report_drops(self) -> None:
        self._drops_due = False
        log.info("UDP socket %d: the simulated network dropped %d datagrams in, %d out so far", self.conn_id,
                 self.dropped_in, self.dropped_out)
        self.net.report(ev.UdpDropped(self.conn_id, self.dropped_in, self.dropped_out))

    def _deliver(self, datagram: bytes) -> None:
        peer = getattr(datagram, "peer", None) or ("", 0)
        self.net.report(ev.UdpDatagram(self.conn_id, bytes(datagram), peer[0], peer[1]))

    def _send_now(self, datagram: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        peer = getattr(datagram, "peer", None)
        if peer is not None:
            self.transport.sendto(bytes(datagram), peer)
        else:
            self.transport.sendto(bytes(datagram))

    def close(self) -> None:
        self.inbound.cancel()
        self.outbound.cancel()
        if self.transport is not None:
            self.transport.close()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: UDP does not report them to the module's host.
        log.info("UDP socket %d: %s", self.conn_id, exc)


class Network:
    """Carries out the core's effects (``ecemu.core.events``); reports events."""

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
        self.datagram_sockets: dict[int, _Datagrams] = {}
        self.servers: dict[int, asyncio.Server] = {}
        self._incoming_tokens = itertools.count(1)
        self.pending_accepts: dict[int, _Connection] = {}  # token: accepted, not yet taken by the core
        # The user's rules (hosts map, local SNTP, loopback only), and the module clock's UTC time
        # for the SNTP answers the emulator gives itself: see ``use_policy``.
        self.policy = NetworkPolicy()
        self.module_utc: Callable[[], float] = time.time

    def use_policy(self, policy: NetworkPolicy, module_utc: Callable[[], float] | None = None) -> None:
        """Follow ``policy`` from now on; SNTP answers of the emulator's own read ``module_utc``
        (seconds since 1970: the module clock), the machine's clock when not given."""
        self.policy = policy
        if module_utc is not None:
            self.module_utc = module_utc
        if policy != NetworkPolicy():
            log.info("network: %s", policy.describe())

    @property
    def opening(self) -> int:
        """Tasks under way for the module: TCP connects, UDP sockets and listeners being opened,
        name lookups, pings and NTP queries (none once every connection is up or closed)."""
        return len(self._opening)

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
        if isinstance(effect, (ev.OpenUdp, ev.Listen, ev.Resolve, ev.Ping, ev.QueryNtp)):
            self._start(effect.conn_id, self._run(effect))
            return
        if isinstance(effect, ev.SendDatagram):
            self._send_datagram(effect)
            return
        if isinstance(effect, (ev.AcceptTcp, ev.RefuseTcp)):
            self._answer_incoming(effect)
            return
        if isinstance(effect, ev.CloseTcp):
            opening = self._opening.pop(effect.conn_id, None)
            if opening is not None:
                opening.cancel()
            if self._close_server_socket(effect.conn_id):
                return
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
            conn.inbound.cancel()  # nobody is left to take it
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
            # Nothing more reaches the core, not even what the simulated network already holds:
            # the module's buffer is full, and what is still "on the way" stays on the way.
            self.paused_by_core.add(effect.conn_id)
            conn.inbound.hold(True)
            conn.update_reading()
        elif isinstance(effect, ev.ResumeReading):
            self.paused_by_core.discard(effect.conn_id)
            conn.inbound.hold(False)
            conn.update_reading()

    def _opened(self, conn_id: int, task: asyncio.Task) -> None:
        """An attempt ended. One that died of an unforeseen error is a bug, logged as one, and
        still ends for the module as a failed connection, so that its command gets an answer."""
        self._opening.pop(conn_id, None)
        if task.cancelled() or task.exception() is None:
            return
        log.error("connection %d: opening failed unexpectedly", conn_id, exc_info=task.exception())
        self.report(ev.TcpConnectFailed(conn_id, "unreachable"))

    # --- UDP, listeners, look-ups ---------------------------------------------------------------

    def _start(self, conn_id: int, work) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._opening[conn_id] = task
        task.add_done_callback(lambda t: self._ended(conn_id, t))

    def _ended(self, conn_id: int, task: asyncio.Task) -> None:
        """A UDP socket, listener or look-up task ended; one that died of an unforeseen error is
        a bug, logged as one (never an exception left unretrieved in a task)."""
        self._opening.pop(conn_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("network task %d failed unexpectedly", conn_id, exc_info=task.exception())

    async def _run(self, effect: ev.OpenUdp | ev.Listen | ev.Resolve | ev.Ping | ev.QueryNtp) -> None:
        if isinstance(effect, ev.OpenUdp):
            await self._open_udp(effect)
        elif isinstance(effect, ev.Listen):
            await self._listen(effect)
        elif isinstance(effect, ev.Ping):
            await self._ping(effect)
        elif isinstance(effect, ev.QueryNtp):
            await self._query_ntp(effect)
        else:
            await self._look_up(effect)

    async def _ping(self, effect: ev.Ping) -> None:
        """A TCP connection to the echo port stands in for ICMP: accepted or refused, the host
        answered; no answer within the timeout, it did not."""
        loop = asyncio.get_running_loop()
        try:
            address, _ = await asyncio.wait_for(self.resolve(effect.host, ECHO_PORT, effect.dns_servers),
                                                timeout=DNS_TIMEOUT)
        except RESOLVE_FAILURES as exc:
            self.cannot_resolve(f"ping {effect.conn_id}", effect.host, exc)
            self.report(ev.PingReply(effect.conn_id, "", None, "dns"))
            return
        if self.refuses(f"ping {effect.conn_id}", address, ECHO_PORT, "no echo comes back"):
            self.report(ev.PingReply(effect.conn_id, address, None, "timeout"))
            return
        started = loop.time()
        if self.round_trip or self.latency:
            await asyncio.sleep(self.round_trip + 2 * self.latency)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(address, ECHO_PORT), timeout=effect.timeout)
            writer.transport.abort()
        except ConnectionRefusedError:
            pass  # the RST came back: the host is there
        except (OSError, asyncio.TimeoutError):
            self.report(ev.PingReply(effect.conn_id, address, None, "timeout"))
            return
        self.report(ev.PingReply(effect.conn_id, address, max(1, round((loop.time() - started) * 1000))))

    async def _query_ntp(self, effect: ev.QueryNtp) -> None:
        from .sntp import SntpError, query

        if self.policy.answers_ntp(effect.host):
            # The emulator's own SNTP server (--local-ntp): the module clock's time, after the radio's
            # round trip, and not a byte leaves the machine.
            if self.round_trip or self.latency:
                await asyncio.sleep(self.round_trip + 2 * self.latency)
            log.info("SNTP %s: answered by the emulator from the module clock", effect.host)
            self.report(ev.NtpTime(effect.conn_id, self.module_utc()))
            return
        try:
            address, port = await asyncio.wait_for(self.resolve(effect.host, effect.port, effect.dns_servers),
                                                   timeout=DNS_TIMEOUT)
        except RESOLVE_FAILURES as exc:
            self.cannot_resolve(f"SNTP {effect.conn_id}", effect.host, exc)
            self.report(ev.NtpTime(effect.conn_id, None, "dns"))
            return
        if self.refuses(f"SNTP {effect.conn_id}", address, port, "no answer (569)"):
            self.report(ev.NtpTime(effect.conn_id, None, "timeout"))
            return
        try:
            utc = await asyncio.wait_for(query(address, port), timeout=effect.timeout)
        except asyncio.TimeoutError:
            self.report(ev.NtpTime(effect.conn_id, None, "timeout"))
            return
        except (SntpError, OSError) as exc:
            log.info("SNTP %s:%d: %s", address, port, exc)
            self.report(ev.NtpTime(effect.conn_id, None, "bad answer"))
            return
        self.report(ev.NtpTime(effect.conn_id, utc))

    async def _open_udp(self, effect: ev.OpenUdp) -> None:
        loop = asyncio.get_running_loop()
        remote = None
        if effect.host:
            try:
                remote = await asyncio.wait_for(self.resolve(effect.host, effect.port, effect.dns_servers),
                                                timeout=DNS_TIMEOUT)
            except RESOLVE_FAILURES as exc:
                self.cannot_resolve(f"UDP socket {effect.conn_id}", effect.host, exc)
                self.report(ev.UdpOpenFailed(effect.conn_id, "dns"))
                return
            if self.refuses(f"UDP socket {effect.conn_id}", *remote, "the open fails"):
                self.report(ev.UdpOpenFailed(effect.conn_id, "unreachable"))
                return
        # A service listens on 127.0.0.1; a client may reach anywhere. The module's port when free.
        host = "0.0.0.0" if remote else "127.0.0.1"
        for port in dict.fromkeys((effect.local_port, 0)):
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(self, effect.conn_id), local_addr=(host, port), remote_addr=remote)
                break
            except OSError as exc:
                log.info("UDP socket %d: cannot bind port %d: %s", effect.conn_id, port, exc)
        else:
            self.report(ev.UdpOpenFailed(effect.conn_id, "bind"))
            return
        self.datagram_sockets[effect.conn_id] = protocol
        bound = transport.get_extra_info("sockname")[1]
        if not remote:
            log.info("UDP SERVICE on the module's port %d: 127.0.0.1:%d", effect.local_port, bound)
        self.report(ev.UdpOpened(effect.conn_id, remote[0] if remote else "", bound))

    def _send_datagram(self, effect: ev.SendDatagram) -> None:
        endpoint = self.datagram_sockets.get(effect.conn_id)
        if effect.host and self.refuses(f"UDP socket {effect.conn_id}", effect.host, effect.port,
                                         "the datagram is dropped"):
            return
        if endpoint is not None:
            endpoint.send(effect.data, (effect.host, effect.port) if effect.host else None)

    async def _listen(self, effect: ev.Listen) -> None:
        loop = asyncio.get_running_loop()
        for port in dict.fromkeys((effect.port, 0)):
            try:
                server = await loop.create_server(lambda: _Connection(self, None, listener=effect.conn_id),
                                                  "127.0.0.1", port)
                break
            except OSError as exc:
                log.info("listener %d: 127.0.0.1:%d is taken (%s)", effect.conn_id, port, exc)
        else:
            self.report(ev.ListenFailed(effect.conn_id, "bind"))
            return
        self.servers[effect.conn_id] = server
        bound = server.sockets[0].getsockname()[1]
        log.info("TCP LISTENER on the module's port %d: 127.0.0.1:%d", effect.port, bound)
        self.report(ev.Listening(effect.conn_id, bound))

    def _incoming(self, conn: _Connection) -> None:
        assert conn.transport is not None and conn.listener is not None
        conn.transport.pause_reading()  # until the core has a socket for it
        token = next(self._incoming_tokens)
        self.pending_accepts[token] = conn
        peer = conn.transport.get_extra_info("peername")
        local = conn.transport.get_extra_info("sockname")
        self.report(ev.TcpIncoming(conn.listener, token, peer[0], peer[1], local[1]))

    def _answer_incoming(self, effect: ev.AcceptTcp | ev.RefuseTcp) -> None:
        conn = self.pending_accepts.pop(effect.token, None)
        if conn is None or conn.transport is None:
            return
        if isinstance(effect, ev.RefuseTcp):
            conn.closing = True
            conn.transport.close()
            return
        self.connections[effect.conn_id] = conn
        conn.announced_as(effect.conn_id)  # read from now on, unless the host holds everything back

    def _close_server_socket(self, conn_id: int) -> bool:
        """A UDP socket or a listener named by CloseTcp; False when it names neither."""
        endpoint = self.datagram_sockets.pop(conn_id, None)
        if endpoint is not None:
            endpoint.close()
            return True
        server = self.servers.pop(conn_id, None)
        if server is None:
            return False
        server.close()
        for token, conn in list(self.pending_accepts.items()):
            if conn.listener == conn_id and conn.transport is not None:
                del self.pending_accepts[token]
                conn.transport.close()
        return True

    async def _look_up(self, effect: ev.Resolve) -> None:
        """Every IPv4 address of the name (the host's resolver), or the one the AT+QIDNSCFG
        servers answer."""
        try:
            policy = self.policy
            if effect.dns_servers or policy.lookup(effect.host) is not None or policy.local_only:
                address, _ = await asyncio.wait_for(self.resolve(effect.host, 0, effect.dns_servers),
                                                    timeout=DNS_TIMEOUT)
                addresses: tuple[str, ...] = (address,)
            else:
                infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
                    effect.host, None, family=socket.AF_INET, type=socket.SOCK_STREAM), timeout=DNS_TIMEOUT)
                addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))  # AF_INET: (address, port)
        except RESOLVE_FAILURES as exc:
            self.cannot_resolve(f"look-up {effect.conn_id}", effect.host, exc)
            addresses = ()
        self.report(ev.Resolved(effect.conn_id, addresses))

    def set_host_backpressure(self, on: bool) -> None:
        """Stop reading every socket while the host is not taking the bytes already sent to it."""
        if on == self.host_backpressure:
            return
        self.host_backpressure = on
        for conn in self.connections.values():
            conn.update_reading()

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
        if not conn.closed_reported and conn.conn_id is not None:
            conn.closed_reported = True
            self.report(ev.TcpClosed(conn.conn_id, reset=reset))

    def fault_stall(self, conn_id: int, seconds: float) -> None:
        """Nothing moves either way; after ``seconds`` (if not 0) traffic resumes, in order."""
        conn = self.connections.get(conn_id)
        if conn is None or conn.transport is None:
            return
        conn.stalled = True
        conn.update_reading()
        if seconds:
            asyncio.get_running_loop().call_later(seconds, self._unstall, conn)

    def _unstall(self, conn: _Connection) -> None:
        if not conn.stalled or conn.transport is None or conn.transport.is_closing():
            return
        conn.stalled = False
        held, conn.stalled_out = conn.stalled_out, []
        for chunk in held:
            conn._write_now(chunk)
        conn.update_reading()

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
            address, port = await asyncio.wait_for(self.resolve(effect.host, effect.port, effect.dns_servers),
                                                   timeout=effect.timeout)
        except RESOLVE_FAILURES as exc:
            # Every way a name fails to resolve is the module's DNS failure (565), a server's
            # unreadable answer included.
            self.cannot_resolve(f"connection {effect.conn_id}", effect.host, exc)
            self.report(ev.TcpConnectFailed(effect.conn_id, "dns"))
            return
        if self.refuses(f"connection {effect.conn_id}", address, port, "the connect fails"):
            self.report(ev.TcpConnectFailed(effect.conn_id, "unreachable"))
            return
        if self.round_trip:
            await asyncio.sleep(self.round_trip)  # SYN and SYN-ACK over the radio network
        try:
            transport, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self, effect.conn_id), address, port),
                timeout=effect.timeout,
            )
        except asyncio.TimeoutError:
            self.report(ev.TcpConnectFailed(effect.conn_id, "timeout"))
            return
        except ConnectionRefusedError:
            self.report(ev.TcpConnectFailed(effect.conn_id, "refused"))
            return
        except OSError as exc:
            log.info("connection %d: cannot connect to %s:%d: %s", effect.conn_id, address, port, exc)
            self.report(ev.TcpConnectFailed(effect.conn_id, "unreachable"))
            return
        self.connections[effect.conn_id] = conn
        if self.host_backpressure:
            transport.pause_reading()
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        # The module's own port, not the hosts map's (--resolve NAME=ADDR:PORT): the map is the
        # network's business, invisible to the module, which shows the port it asked for.
        self.report(ev.TcpConnected(effect.conn_id, peer[0], effect.port, local[1]))
        conn.announced_as(effect.conn_id)
        if injected == "handshake":
            # The server answers the ClientHello with a reset: the handshake fails.
            self.fault_reset(effect.conn_id)
        elif injected == "silent":
            # The server accepts and then says nothing, for as long as the module waits.
            self.fault_stall(effect.conn_id, 0.0)

    async def resolve(self, host: str, port: int, dns_servers: tuple[str, ...]) -> tuple[str, int]:
        """Where ``host``:``port`` is reached: the hosts map first (its port, when it names one,
        replaces the module's), an IPv4 address as it is, then AT+QIDNSCFG's servers or the
        machine's resolver. A local-only network asks no resolver of the machine's and no server
        outside what it allows: a name not in the hosts map (localhost aside) is NameRefused."""
        policy = self.policy
        entry = policy.lookup(host)
        if entry is not None:
            return entry.address, port if entry.port is None else entry.port
        try:
            socket.inet_pton(socket.AF_INET, host)
            return host, port
        except OSError:
            pass
        if policy.local_only:
            if policy.is_local_name(host):
                return "127.0.0.1", port
            servers = tuple(server for server in dns_servers if policy.allows(server.partition("#")[0]))
            if not servers:
                raise NameRefused(socket.EAI_NONAME, "not in the hosts map (--resolve, --hosts-file) and the "
                                                     "network is local only (--local-only)")
            return await resolve_a(host, servers, fallback=False), port
        if dns_servers:
            return await resolve_a(host, dns_servers), port
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
        return str(infos[0][4][0]), port  # AF_INET: (address, port)

    @staticmethod
    def cannot_resolve(what: str, host: str, exc: BaseException) -> None:
        """The log line of a name that did not resolve; a refusal of the user's rules is a warning,
        so that a hermetic run says plainly what it kept from the network."""
        if isinstance(exc, NameRefused):
            log.warning("%s: %s refused (DNS failure for the module): %s", what, host, exc.strerror or exc)
        else:
            log.info("%s: cannot resolve %s: %s", what, host, exc)

    def refuses(self, what: str, address: str, port: int, outcome: str) -> bool:
        """Whether the policy keeps ``address`` off limits (local only), saying so in the log."""
        if self.policy.allows(address):
            return False
        allowed = "".join(f", {network}" for network in self.policy.allowed)
        log.warning("%s: %s:%d is outside loopback%s (--local-only): refused, %s", what, address, port,
                    allowed, outcome)
        return True

    def close_all(self) -> None:
        for task in list(self._opening.values()):
            task.cancel()
        for conn in list(self.connections.values()):
            if conn.transport is not None:
                conn.closing = True
                conn.transport.abort()
        self.connections.clear()
        for conn_id in list(self.datagram_sockets) + list(self.servers):
            self._close_server_socket(conn_id)
        for conn in self.pending_accepts.values():
            if conn.transport is not None:
                conn.transport.abort()
        self.pending_accepts.clear()
