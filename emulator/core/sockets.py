"""The socket core: one client connection of a TCP/IP-style command family, whatever runs on it.

The SSL clients (AT+QSSLOPEN ...) are sockets with TLS as their stream layer; the TCP/UDP, HTTP and
MQTT families build on the same class. A socket is made of:

- its connection (``Connection``, ``connection.py``): the life cycle table ``SOCKET_LIFECYCLE``,
  the stream layer on the TCP connection (nothing for plain TCP, TLS for SSL), open and close,
  and its ``ReadGate`` (``read_gate.py``);
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
gives the names of its URCs and, for TLS, its ``layer_maker``; its ``SocketFamily`` holds its
sockets.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Generic, TypeVar

from . import events as ev

from .connection import (
    CONNECT_FAILURES,
    SHOWN_STATE,
    SOCKET_LIFECYCLE,
    Connection,
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
from .registry import FamilyState, Reply
from .results import CONNECT, NO_CARRIER, QiError
from .transparent import TransparentSession

__all__ = ["CONNECT_FAILURES", "SHOWN_STATE", "SOCKET_LIFECYCLE", "AccessMode", "DatagramSocket", "LayerStep",
           "OpenFailed", "Phase", "PlainStep", "PlainStream", "Socket", "SocketFamily", "SocketState", "StreamLayer",
           "TransparentSession", "pool_sockets", "socket_in_pool"]

if TYPE_CHECKING:
    from .modem import Modem

log = logging.getLogger(__name__)


def pool_sockets(modem: "Modem", pool: str) -> "list[Socket]":
    """Every socket of the families whose IDs are one pool (``SocketFamily.id_pool``)."""
    return [socket for state in modem.families.values()
            if isinstance(state, SocketFamily) and state.id_pool == pool for socket in state.clients
            if isinstance(socket, Socket)]


def socket_in_pool(modem: "Modem", pool: str, socket_id: int) -> "Socket | None":
    """The socket in use under ``socket_id`` in ``pool``, whichever family opened it."""
    for socket in pool_sockets(modem, pool):
        if socket.client_id == socket_id and socket.phase is not Phase.INITIAL:
            return socket
    return None


ClientT = TypeVar("ClientT", bound=Connection, covariant=True)


class SocketFamily(FamilyState, Generic[ClientT]):
    """A family's sockets: what the modem and the control interface reach them through.

    Families with the same ``id_pool`` share their socket IDs: an ID in use in one is in use in
    all (the TCP/IP and SSL families, whose connectIDs and clientIDs are one set of sockets).
    """

    id_pool: str | None = None

    def __init__(self, modem: "Modem", sockets: list[ClientT]):
        self.modem = modem
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
        client = self.clients[client_id]
        return client.conn_id if client.phase is not Phase.INITIAL else None

    def set_send_buffer_full(self, client_id: int, full: bool) -> None:
        """A fault: the client's send buffer reads full (True) or as it is (False)."""
        if not 0 <= client_id < len(self.clients):
            raise LookupError(f"no client {client_id}")
        self.clients[client_id].send_buffer_forced_full = full

    # FamilyState ---------------------------------------------------------------------------------

    def resume_online(self) -> Reply | None:
        """ATO (SSL note 1.4): back to the connection that last left transparent mode."""
        client = self.last_transparent
        if client is None or client.phase is not Phase.CONNECTED:
            return None
        return client.enter_transparent()

    def port_idle(self) -> None:
        """Direct push data and the closed URCs queued behind it, now that the port is idle."""
        # Only the sockets that marked themselves (``Connection.wait_for_idle``) are looked at, this
        # family's in client order, as they would be met walking the clients.
        waiting = self.modem.idle_waiting
        mine = [waiter for waiter in waiting if isinstance(waiter, Connection) and waiter.family is self]
        for socket in sorted(mine, key=_client_id_of):
            if any(client is socket for client in self.clients) and socket.when_port_idle():
                continue
            waiting.pop(socket, None)  # done, or replaced: a socket of this family's past

    def power_off(self) -> None:
        for client in self.clients:
            client.drop_silently()

    def _pdp_down(self, pdp_ctx: int, by_network: bool) -> None:
        for client in self.clients:
            if client.phase is not Phase.INITIAL and client.pdp_ctx == pdp_ctx:
                client.pdp_down(by_network)


def _client_id_of(socket: Connection) -> int:
    return socket.client_id


class Socket(Connection):
    """One <clientID> / <connectID> the host reads: its connection (``Connection``), its inbox,
    its access mode, transparent mode."""

    EVENT_URC = "+QIURC"  # "recv" and "closed"

    family: "SocketFamily[Socket]"

    def __init__(self, family: "SocketFamily[Socket]", client_id: int):
        super().__init__(family, client_id)
        self.inbox = Inbox(self, self.gate)  # received, not yet taken by the host
        self.session: TransparentSession | None = None  # while the port is this socket's

    @property
    def online(self) -> "TransparentSession | None":
        return self.session

    def take_received(self) -> bytes:
        """Everything received and not yet taken (transparent mode: it goes to the host first)."""
        return self.inbox.take_all()

    def session_ended(self) -> None:
        """The connection ended under the host in transparent mode: the port is no longer its."""
        self.session = None

    # --- opening (the connection's side: Connection._start_open) ------------------------------------

    def open(self, pdp_ctx: int, address: str, port: int, access_mode: AccessMode) -> None:
        """Start connecting; the result comes later (the open URC, or CONNECT/ERROR in transparent
        mode). Raises OpenFailed when the attempt cannot even start."""
        pdp = self._may_open(pdp_ctx)
        self._start_open(pdp, pdp_ctx, address, port, access_mode)

    # --- receiving (ecemu.core.inbox) --------------------------------------------------------

    def _received(self, data: bytes) -> None:
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

    # --- sending --------------------------------------------------------------------------------

    # --- the connection's hooks (Connection) ----------------------------------------------------

    def _closed_under_host(self) -> None:
        if self.session is not None:
            self.session.lost(NO_CARRIER)
            return
        self.inbox.closed_by_peer(pushing=self.access_mode is AccessMode.DIRECT_PUSH)

    def _drained(self) -> None:
        if self.session is not None:
            self.modem.host.process_input()

    def _release(self) -> None:
        """Back to "initial": the client ID is free again, nothing received is kept."""
        self.inbox.clear()
        self.session = None
        super()._release()
        if self.family.last_transparent is self:
            self.family.last_transparent = None

    def _release_with_context(self) -> None:
        if self.inbox.closed_due:
            # Its closed URC was waiting behind direct push data for an idle port; the data goes
            # with the socket, the URC must not.
            self.inbox.report_closed()
        self._release()

    def hang_up(self, before_close: bytes) -> None:
        """DTR with AT&D2 in transparent mode: ``before_close`` goes out, then the socket closes."""
        if self.layer is not None and self.conn_id is not None:
            self.send(before_close)  # ahead of close_notify, as an orderly close sends it
            self._send_raw(self.layer.close_notify())
            self.modem.effect(ev.CloseTcp(self.conn_id))
        self._release()

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
        self.inbox = DatagramInbox(self, self.gate)
        self.dropped = 0  # datagrams that found the receive buffer full (UDP has no flow control)

    def open_datagram(self, pdp_ctx: int, address: str, port: int, local_port: int,
                      access_mode: AccessMode) -> None:
        """Bind (and for a client, aim at ``address``:``port``); the result comes as the open URC."""
        pdp = self._may_open(pdp_ctx)
        self.pdp_ctx, self.address, self.remote_port = pdp_ctx, address, port
        self.remote_ip, self.local_port, self.access_mode = address, local_port, access_mode
        self._to("open")
        self.conn_id = self.modem.new_conn_id(self._on_event)
        self.modem.effect(ev.OpenUdp(self.conn_id, "" if self.bound_only else address, port, local_port,
                                     dns_servers=pdp.dns_servers(pdp_ctx)))

    def _on_event(self, event: ev.NetworkEvent) -> None:
        if isinstance(event, ev.UdpDatagram):
            if self.phase in (Phase.CONNECTED, Phase.LISTENING):
                self._datagram(event.data, event.remote_ip, event.remote_port)
        elif isinstance(event, ev.UdpOpened):
            if self.phase is not Phase.OPENING:
                return
            self.host_port = event.local_port
            self.local_port = self.local_port or event.local_port
            if event.remote_ip:
                self.remote_ip = event.remote_ip
            self.layer = self._new_layer()
            if self.bound_only:
                self._to("listening")
                self.modem.emit_urc(f"{self.OPEN_URC}: {self.client_id},{int(QiError.OK)}")
            else:
                self._established()
        elif isinstance(event, ev.UdpOpenFailed):
            log.info("socket %d: cannot open UDP to %s (%s)", self.client_id, self.address, event.reason)
            self._open_failed(CONNECT_FAILURES.get(event.reason, QiError.CONNECT_FAILED), close=False)
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
        self._received(data)

    def read_datagram(self, length: int) -> tuple[bytes, str, int]:
        """Up to ``length`` bytes of the first datagram, and its sender."""
        inbox = self.inbox
        assert isinstance(inbox, DatagramInbox)
        return inbox.read_datagram(length)

    def send(self, data: bytes) -> None:
        """One datagram to the address the client was opened with."""
        self.send_to(data, "", 0)

    def send_to(self, data: bytes, ip: str, port: int) -> None:
        if data and self.conn_id is not None and self.phase in (Phase.CONNECTED, Phase.LISTENING):
            self.modem.effect(ev.SendDatagram(self.conn_id, data, ip, port))

    def close(self, timeout: float) -> Reply | None:
        """UDP has nothing to wait for: closed at once."""
        if self.conn_id is not None and self.phase is not Phase.INITIAL:
            self.modem.effect(ev.CloseTcp(self.conn_id))
        self._release()
        return Reply()
