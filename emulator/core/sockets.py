"""The socket core: one client connection of a TCP/IP-style command family, whatever runs on it.

The SSL clients (AT+QSSLOPEN ...) are sockets with TLS as their stream layer; the TCP/UDP family
builds on the same class, and the HTTP and MQTT stacks' sockets hold the same connection. A socket
is made of parts it holds:

- its connection (``socket.connection``, a ``Connection``, ``connection.py``): the life cycle
  table ``SOCKET_LIFECYCLE``, the stream layer on the TCP connection (nothing for plain TCP, TLS
  for SSL), open and close, and its ``ReadGate`` (``read_gate.py``). It tells the socket what
  happened through ``ConnectionOwner``, and nothing else;
- what the host sees (``Socket``, here): its access mode (SSL note 1.4, Quectel TCP/IP note):
  received data waits in the buffer with one ``"recv"`` URC until read (buffer access), goes out as
  ``"recv",<id>,<len>`` URCs whenever the port is idle (direct push), or goes straight to the host
  while the port is the socket's (transparent: ``TransparentSession``, ``transparent.py``);
- flow control: nothing received is dropped; when the buffer fills, the inbox holds the gate and
  the socket stops reading from the server (``PauseReading``) until the host has taken enough, and
  TCP's flow control does the rest; bytes for the server wait in the host's input while the send
  buffer is full.

The inbox and the transparent session see the socket through Protocols of their own
(``InboxOwner``, ``OnlineSocket``): the modules import one way only. A family's socket subclass
gives the names of its URCs and, for TLS, its connection's ``layer_maker``; its ``SocketFamily``
holds its sockets.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from . import events as ev

from .connection import (
    CONNECT_FAILURES,
    SHOWN_STATE,
    SOCKET_LIFECYCLE,
    Connection,
    ConnectionOwner,
    LayerStep,
    OpenFailed,
    PdpContexts,
    Phase,
    PlainStep,
    PlainStream,
    SocketState,
    StreamLayer,
)
from .inbox import AccessMode, DatagramInbox, Inbox
from .registry import CommandFailed, FamilyState, Reply
from .results import CONNECT, NO_CARRIER, QiError
from .transparent import TransparentSession

__all__ = ["CONNECT_FAILURES", "SHOWN_STATE", "SOCKET_LIFECYCLE", "AccessMode", "Connection", "ConnectionOwner",
           "DatagramSocket", "FamilySocket", "LayerStep",
           "OpenFailed", "Phase", "PlainStep", "PlainStream", "Socket", "SocketFamily", "SocketState", "StreamLayer",
           "TransparentSession", "pool_sockets", "socket_in_pool"]

if TYPE_CHECKING:
    from .modem import Modem
    from ..profile import Limits

log = logging.getLogger(__name__)


def pool_sockets(modem: "Modem", pool: str) -> "list[Socket]":
    """Every socket of the families whose IDs are one pool (``SocketFamily.id_pool``)."""
    return [socket for state in modem.families.values()
            if isinstance(state, SocketFamily) and state.id_pool == pool for socket in state.clients
            if isinstance(socket, Socket)]


def socket_in_pool(modem: "Modem", pool: str, socket_id: int) -> "Socket | None":
    """The socket in use under ``socket_id`` in ``pool``, whichever family opened it."""
    for socket in pool_sockets(modem, pool):
        if socket.client_id == socket_id and socket.connection.phase is not Phase.INITIAL:
            return socket
    return None


class FamilySocket(ConnectionOwner, Protocol):
    """What a family's socket is to its ``SocketFamily`` (``Socket``, the application stacks'
    ``AppSocket``): the connection it holds, and what it does when its PDP context goes down."""

    @property
    def connection(self) -> Connection: ...

    def pdp_down(self, by_network: bool) -> None: ...


ClientT = TypeVar("ClientT", bound=FamilySocket, covariant=True)


class SocketFamily(FamilyState, Generic[ClientT]):
    """A family's sockets: what the modem and the control interface reach them through.

    Families with the same ``id_pool`` share their socket IDs: an ID in use in one is in use in
    all (the TCP/IP and SSL families, whose connectIDs and clientIDs are one set of sockets).
    """

    id_pool: str | None = None

    def __init__(self, modem: "Modem", sockets: list[ClientT]):
        self.modem = modem
        self.limits: Limits = modem.profile.limits  # the family's sockets' (AT+QICFG may change them)
        self.clients = sockets
        self.last_transparent: Socket | None = None  # what ATO returns to (SSL note 1.4)
        pdp = modem.families.get("pdp")
        if isinstance(pdp, PdpContexts):
            pdp.listeners.append(self._pdp_down)

    def client(self, client_id: int) -> ClientT:
        return self.clients[client_id]

    def id_in_use(self, client_id: int) -> bool:
        """The ID is in use in this family's pool, by whichever family."""
        pool = self.id_pool
        return pool is not None and socket_in_pool(self.modem, pool, client_id) is not None

    def conn_id_of(self, client_id: int) -> int | None:
        """The live connection of a client, for faults injected by the control interface."""
        if not 0 <= client_id < len(self.clients):
            return None
        connection = self.clients[client_id].connection
        return connection.conn_id if connection.phase is not Phase.INITIAL else None

    def set_send_buffer_full(self, client_id: int, full: bool) -> None:
        """A fault: the client's send buffer reads full (True) or as it is (False)."""
        if not 0 <= client_id < len(self.clients):
            raise LookupError(f"no client {client_id}")
        self.clients[client_id].connection.send_buffer_forced_full = full

    # FamilyState ---------------------------------------------------------------------------------

    def resume_online(self) -> Reply | None:
        """ATO (SSL note 1.4): back to the connection that last left transparent mode."""
        client = self.last_transparent
        if client is None or client.connection.phase is not Phase.CONNECTED:
            return None
        return client.enter_transparent()

    def port_idle(self) -> None:
        """Direct push data and the closed URCs queued behind it, now that the port is idle."""
        # Only the connections that marked themselves (``Connection.wait_for_idle``) are looked
        # at, this family's in client order, as they would be met walking the clients.
        waiting = self.modem.idle_waiting
        mine = [waiter for waiter in waiting if isinstance(waiter, Connection) and waiter.family is self]
        for connection in sorted(mine, key=_client_id_of):
            owner = connection.owner
            if any(client is owner for client in self.clients) and owner.when_port_idle():
                continue
            waiting.pop(connection, None)  # done, or replaced: a socket of this family's past

    def power_off(self) -> None:
        for client in self.clients:
            client.connection.drop_silently()

    def _pdp_down(self, pdp_ctx: int, by_network: bool) -> None:
        for client in self.clients:
            connection = client.connection
            if connection.phase is not Phase.INITIAL and connection.pdp_ctx == pdp_ctx:
                client.pdp_down(by_network)


def _client_id_of(connection: Connection) -> int:
    return connection.client_id


class Socket:
    """One <clientID> / <connectID> the host reads: its connection (``connection``, whose
    ``ConnectionOwner`` it is), its inbox, its access mode, transparent mode. A family's socket
    gives the names of its URCs and, for TLS, the connection's ``layer_maker``."""

    OPEN_URC = "+QIOPEN"  # the open result: +QIOPEN: <id>,<err>
    EVENT_URC = "+QIURC"  # "recv" and "closed"
    # Whether AT+QIDEACT tells the socket that it closed before freeing it (``Connection``).
    CLOSED_URC_ON_DEACT = True

    def __init__(self, family: "SocketFamily[Socket]", client_id: int):
        self.family = family
        self.client_id = client_id
        self.connection = Connection(self, family, self.CLOSED_URC_ON_DEACT)
        self.access_mode = AccessMode.BUFFER
        self.inbox = Inbox(self, self.connection.gate)  # received, not yet taken by the host
        self.session: TransparentSession | None = None  # while the port is this socket's

    @property
    def modem(self) -> "Modem":
        return self.family.modem

    @property
    def limits(self) -> "Limits":
        return self.family.limits

    @property
    def online(self) -> "TransparentSession | None":
        return self.session

    @property
    def unsent(self) -> int:
        """Bytes handed to the network and not yet drained (the transparent session's pace)."""
        return self.connection.unsent

    def wait_for_idle(self) -> None:
        self.connection.wait_for_idle()

    def take_received(self) -> bytes:
        """Everything received and not yet taken (transparent mode: it goes to the host first)."""
        return self.inbox.take_all()

    def session_ended(self) -> None:
        """The connection ended under the host in transparent mode: the port is no longer its."""
        self.session = None

    # --- opening --------------------------------------------------------------------------------

    def open(self, pdp_ctx: int, address: str, port: int, access_mode: AccessMode) -> None:
        """Start connecting; the result comes later (the open URC, or CONNECT/ERROR in transparent
        mode). Raises OpenFailed when the attempt cannot even start."""
        connection = self.connection
        pdp = connection.may_open(pdp_ctx)
        self.access_mode = access_mode
        connection.open(pdp, pdp_ctx, address, port)

    def opened(self, code: QiError) -> None:
        """The open URC (SSL note 2.2.2); in transparent mode the open's command answers instead:
        CONNECT, and the port is the socket's, or its error."""
        if self.access_mode is not AccessMode.TRANSPARENT:
            self.report_open(code)
        elif code is QiError.OK:
            self.modem.host.finish_pending(self.enter_transparent())
        else:
            self.modem.host.finish_pending(CommandFailed(code))

    def report_open(self, code: QiError) -> None:
        """The open URC: +QIOPEN: <id>,<err> under the family's name (SSL note 2.2.2)."""
        self.modem.emit_urc(f"{self.OPEN_URC}: {self.client_id},{int(code)}")

    # --- receiving (ecemu.core.inbox) --------------------------------------------------------

    def arrived(self, data: bytes) -> None:
        self.modem.observe("received", client=self.client_id, size=len(data))
        if self.session is not None:
            self.modem.write_host(data)
            return
        self.inbox.add(data, pushing=self.access_mode is AccessMode.DIRECT_PUSH)

    @property
    def received(self) -> bytearray:
        return self.inbox.data

    def read(self, length: int) -> bytes:
        """The inbox's first ``length`` bytes, for the host's read command."""
        return self.inbox.read(length)

    def push_pending(self) -> None:
        self.inbox.push()

    def when_port_idle(self) -> bool:
        inbox = self.inbox
        inbox.push()
        return inbox.waiting

    # --- sending and closing ----------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.connection.send(data)

    def send_packets(self, data: bytes, packet_size: int) -> None:
        """Transparent mode's packets (``Connection.send_packets``)."""
        self.connection.send_packets(data, packet_size)

    def close(self, timeout: float) -> Reply | None:
        """The host's close: the reply now, or None when the command waits for the peer."""
        return self.connection.close(timeout)

    def hang_up(self, before_close: bytes) -> None:
        """DTR with AT&D2 in transparent mode: ``before_close`` goes out, then the socket closes."""
        self.connection.hang_up(before_close)

    # --- what the connection tells (ConnectionOwner) ----------------------------------------------

    def peer_gone(self) -> None:
        if self.session is not None:
            self.session.lost(NO_CARRIER)
            return
        self.inbox.closed_by_peer(pushing=self.access_mode is AccessMode.DIRECT_PUSH)

    def drained(self) -> None:
        if self.session is not None:
            self.modem.host.process_input()

    def host_close_done(self) -> None:
        """Nothing more to say: the close's OK was the answer."""

    def released(self) -> None:
        """Back to "initial": nothing received is kept."""
        self.inbox.clear()
        self.session = None
        if self.family.last_transparent is self:
            self.family.last_transparent = None

    def pdp_down(self, by_network: bool) -> None:
        if self.connection.pdp_down(by_network):
            if self.inbox.closed_due:
                # Its closed URC was waiting behind direct push data for an idle port; the data
                # goes with the socket, the URC must not.
                self.inbox.report_closed()
            self.connection.release()

    # --- access modes (SSL note 1.4) --------------------------------------------------------------

    def enter_transparent(self) -> Reply:
        """CONNECT, and the port is this socket's: what waited in the buffer comes first."""
        self.access_mode = AccessMode.TRANSPARENT
        self.inbox.recv_reported = False
        self.session = TransparentSession(self)
        self.family.last_transparent = self
        return Reply(final=CONNECT, online=self.session)

    def left_transparent(self) -> None:
        """+++ or DTR with AT&D1: the connection carries on in buffer access mode."""
        self.session = None
        self.access_mode = AccessMode.BUFFER

    def switch_mode(self, mode: AccessMode) -> Reply:
        """AT+QISWTMD (Quectel TCP/IP note): OK for 0/1, CONNECT for 2."""
        if mode is AccessMode.TRANSPARENT:
            return self.enter_transparent()
        self.access_mode = mode
        inbox = self.inbox
        if mode is AccessMode.DIRECT_PUSH:
            inbox.recv_reported = False
            inbox.push()
        elif inbox.data and not inbox.recv_reported:
            # Data that was waiting to be pushed now waits to be read: say so, once.
            inbox.report_recv()
        return Reply()


class DatagramSocket(Socket):
    """A UDP socket: the socket core with datagrams instead of a stream (``DatagramInbox``).

    A client (``bound_only`` False) sends to the address it was opened with; a bound-only socket
    (a service) sends where each send says, and its direct push URCs name each datagram's sender.
    """

    def __init__(self, family: "SocketFamily[Socket]", client_id: int, bound_only: bool = False):
        super().__init__(family, client_id)
        self.bound_only = bound_only
        self.host_port = 0  # where the socket is bound on the machine the emulator runs on
        self.inbox = DatagramInbox(self, self.connection.gate)
        self.dropped = 0  # datagrams that found the receive buffer full (UDP has no flow control)

    def open_datagram(self, pdp_ctx: int, address: str, port: int, local_port: int,
                      access_mode: AccessMode) -> None:
        """Bind (and for a client, aim at ``address``:``port``); the result comes as the open URC."""
        connection = self.connection
        pdp = connection.may_open(pdp_ctx)
        self.access_mode = access_mode
        conn_id = connection.begin(pdp_ctx, address, port, local_port, self._on_event)
        self.modem.effect(ev.OpenUdp(conn_id, "" if self.bound_only else address, port, local_port,
                                     dns_servers=pdp.dns_servers(pdp_ctx)))

    def _on_event(self, event: ev.NetworkEvent) -> None:
        connection = self.connection
        if isinstance(event, ev.UdpDatagram):
            if connection.phase in (Phase.CONNECTED, Phase.LISTENING):
                self._datagram(event.data, event.remote_ip, event.remote_port)
        elif isinstance(event, ev.UdpOpened):
            if connection.phase is not Phase.OPENING:
                return
            self.host_port = event.local_port
            connection.local_port = connection.local_port or event.local_port
            if event.remote_ip:
                connection.remote_ip = event.remote_ip
            connection.make_layer()
            if self.bound_only:
                connection.to("listening")
                self.report_open(QiError.OK)
            else:
                connection.established()
        elif isinstance(event, ev.UdpOpenFailed):
            log.info("socket %d: cannot open UDP to %s (%s)", self.client_id, connection.address, event.reason)
            connection.open_failed(CONNECT_FAILURES.get(event.reason, QiError.CONNECT_FAILED), close=False)
        # UdpDropped (the simulated network's own drops) is in the trace as the event itself.

    def _datagram(self, data: bytes, ip: str, port: int) -> None:
        inbox = self.inbox
        assert isinstance(inbox, DatagramInbox)
        if self.session is None:
            if not inbox.fits(len(data)):
                # The host does not read (buffer access) or does not take the pushed URCs (direct
                # push with its output full): the datagram is dropped, counted in the trace
                # (REFERENCE.md "TCP/IP": UDP has no flow control).
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.info("socket %d: receive buffer full, %d datagrams dropped so far (the last, %d "
                             "bytes from %s:%d)", self.client_id, self.dropped, len(data), ip, port)
                self.modem.observe("datagram_dropped", client=self.client_id, size=len(data), dropped=self.dropped)
                return
            inbox.sender(ip, port, len(data))
        self.arrived(data)

    def read_datagram(self, length: int) -> tuple[bytes, str, int]:
        """Up to ``length`` bytes of the first datagram, and its sender."""
        inbox = self.inbox
        assert isinstance(inbox, DatagramInbox)
        return inbox.read_datagram(length)

    def send(self, data: bytes) -> None:
        """One datagram to the address the client was opened with."""
        self.send_to(data, "", 0)

    def send_packets(self, data: bytes, packet_size: int) -> None:
        """Transparent mode's packets: a datagram each (chosen: the TCP/IP note's <transpktsize>
        is the size of what is sent at once, which for UDP is one datagram)."""
        for start in range(0, len(data), packet_size):
            self.send(data[start:start + packet_size])

    def send_to(self, data: bytes, ip: str, port: int) -> None:
        connection = self.connection
        if data and connection.conn_id is not None and connection.phase in (Phase.CONNECTED, Phase.LISTENING):
            self.modem.effect(ev.SendDatagram(connection.conn_id, data, ip, port))

    def close(self, timeout: float) -> Reply | None:
        """UDP has nothing to wait for: closed at once."""
        return self.connection.close_at_once()
