"""The socket core: one client connection of a TCP/IP-style command family, whatever runs on it.

The SSL clients (AT+QSSLOPEN ...) are sockets with TLS as their stream layer; the TCP/UDP, HTTP and
MQTT families build on the same class. A socket owns:

- its life cycle, in ``SOCKET_LIFECYCLE`` (below): every change of state is an event of the table;
- its access mode (SSL note 1.4, Quectel TCP/IP note): received data waits in the buffer with one
  ``"recv"`` URC until read (buffer access), goes out as ``"recv",<id>,<len>`` URCs whenever the
  port is idle (direct push), or goes straight to the host while the port is the socket's
  (transparent: ``TransparentSession``);
- flow control: nothing received is dropped; when the buffer fills, the socket stops reading from
  the server (``PauseReading``) until the host has taken enough, and TCP's flow control does the
  rest; bytes for the server wait in the host's input while the send buffer is full;
- closing: orderly (FIN, then wait for the server's, up to a timeout) or at once.

Its connection is a TCP connection the shell carries out (effects and events,
``emulator.core.events``); a ``StreamLayer`` sits on it: nothing for plain TCP, TLS
(``emulator.core.tls.TlsClient``) for SSL. A family's socket subclass gives the layer, the names
of its URCs and what happens when the layer is up.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

from emulator.core import events as ev
from emulator.core.escape import EscapeDetector
from emulator.core.inbox import AccessMode, DatagramInbox, Inbox
from emulator.core.lifecycle import Transitions
from emulator.core.registry import CommandFailed, FamilyState, Reply
from emulator.core.results import CONNECT, NO_CARRIER, OK, FinalResult, QiError

__all__ = ["AccessMode", "DatagramSocket", "OpenFailed", "Phase", "PlainStream", "Socket", "SocketFamily",
           "SocketState", "TransparentSession", "pool_sockets", "socket_in_pool"]

if TYPE_CHECKING:
    from emulator.core.modem import Modem
    from emulator.core.timers import Timer
    from emulator.profile import Limits

log = logging.getLogger(__name__)

# How each way a connection attempt fails is reported (SSL note chapter 5).
CONNECT_FAILURES = {"dns": QiError.DNS_FAILED, "refused": QiError.CONNECT_FAILED,
                    "unreachable": QiError.CONNECT_FAILED, "timeout": QiError.TIMEOUT}


class SocketState(enum.IntEnum):
    """<socket_state> as AT+QSSLSTATE / AT+QISTATE show it (SSL note 2.2.6)."""

    INITIAL = 0
    OPENING = 1
    CONNECTED = 2
    LISTENING = 3  # a server socket (TCP/IP note: "TCP LISTENER", "UDP SERVICE")
    CLOSING = 4


class Phase(enum.Enum):
    """Where a socket is in its life; two phases show as "closing"."""

    INITIAL = SocketState.INITIAL
    OPENING = SocketState.OPENING
    CONNECTED = SocketState.CONNECTED
    LISTENING = SocketState.LISTENING
    PEER_CLOSED = "the server or the network ended it; waits for the host's close"
    HOST_CLOSING = "the host's close waits for the server's FIN"


SHOWN_STATE = {Phase.INITIAL: SocketState.INITIAL, Phase.OPENING: SocketState.OPENING,
               Phase.CONNECTED: SocketState.CONNECTED, Phase.LISTENING: SocketState.LISTENING,
               Phase.PEER_CLOSED: SocketState.CLOSING,
               Phase.HOST_CLOSING: SocketState.CLOSING}

SOCKET_LIFECYCLE = Transitions("socket", {
    (Phase.INITIAL, "open"): Phase.OPENING,
    (Phase.OPENING, "established"): Phase.CONNECTED,
    (Phase.INITIAL, "accepted"): Phase.CONNECTED,  # a server socket's incoming connection
    (Phase.OPENING, "listening"): Phase.LISTENING,  # a server socket is bound
    (Phase.LISTENING, "release"): Phase.INITIAL,
    (Phase.LISTENING, "peer_gone"): Phase.PEER_CLOSED,  # its PDP context dropped
    (Phase.OPENING, "release"): Phase.INITIAL,  # failed, given up, or dropped
    (Phase.CONNECTED, "peer_gone"): Phase.PEER_CLOSED,
    (Phase.CONNECTED, "close"): Phase.HOST_CLOSING,  # orderly: waits for the server's FIN
    (Phase.CONNECTED, "release"): Phase.INITIAL,  # closed at once, hung up, dropped
    (Phase.PEER_CLOSED, "release"): Phase.INITIAL,
    (Phase.HOST_CLOSING, "release"): Phase.INITIAL,
})


class LayerStep(Protocol):
    """What the stream layer made of some input (``emulator.core.tls.TlsStep``)."""

    plaintext: bytes  # for the host
    outgoing: bytes  # for the server
    established: bool  # the layer is up (the TLS handshake completed)
    peer_closed: bool  # the server closed the layer (close_notify)
    failure: str | None  # the connection is dead; why


class StreamLayer(Protocol):
    """What runs on the TCP connection: TLS for SSL (``TlsClient``)."""

    def start(self) -> LayerStep: ...

    def feed(self, data: bytes) -> LayerStep: ...

    peer_closed: bool  # the server closed the layer (TLS: its close_notify came)

    def send(self, data: bytes) -> bytes: ...

    def close_notify(self) -> bytes: ...


@runtime_checkable
class PdpContexts(Protocol):
    """What sockets need of the PDP family (``emulator.commands.pdp.PdpState``)."""

    listeners: list[Callable[[int, bool], None]]  # (context, by the network) when one goes down

    def is_active(self, cid: int) -> bool: ...

    def dns_servers(self, cid: int) -> tuple[str, ...]: ...


class PlainStep:
    """A step of ``PlainStream``: the bytes, as they are."""

    __slots__ = ("plaintext", "outgoing", "established", "peer_closed", "failure")

    def __init__(self, plaintext: bytes = b"", established: bool = False):
        self.plaintext = plaintext
        self.outgoing = b""
        self.established = established
        self.peer_closed = False
        self.failure: str | None = None


class PlainStream:
    """No layer at all: plain TCP (AT+QIOPEN's "TCP" sockets)."""

    peer_closed = False

    def start(self) -> PlainStep:
        return PlainStep(established=True)

    def feed(self, data: bytes) -> PlainStep:
        return PlainStep(data)

    def send(self, data: bytes) -> bytes:
        return data

    def close_notify(self) -> bytes:
        return b""


class OpenFailed(Exception):
    """An open that fails before any network work; ``code`` is the chapter 5 result code."""

    def __init__(self, code: QiError, why: str):
        super().__init__(why)
        self.code = code


def pool_sockets(modem: "Modem", pool: str) -> "list[Socket]":
    """Every socket of the families whose IDs are one pool (``SocketFamily.id_pool``)."""
    return [socket for state in modem.families.values()
            if isinstance(state, SocketFamily) and state.id_pool == pool for socket in state.clients]


def socket_in_pool(modem: "Modem", pool: str, socket_id: int) -> "Socket | None":
    """The socket in use under ``socket_id`` in ``pool``, whichever family opened it."""
    for socket in pool_sockets(modem, pool):
        if socket.client_id == socket_id and socket.phase is not Phase.INITIAL:
            return socket
    return None


class SocketFamily(FamilyState):
    """A family's sockets: what the modem and the control interface reach them through.

    Families with the same ``id_pool`` share their socket IDs: an ID in use in one is in use in
    all (the TCP/IP and SSL families, whose connectIDs and clientIDs are one set of sockets).
    """

    id_pool: str | None = None

    def __init__(self, modem: "Modem", sockets: "list[Socket]"):
        self.modem = modem
        self.clients = sockets
        self.last_transparent: Socket | None = None  # what ATO returns to (SSL note 1.4)
        pdp = modem.families.get("pdp")
        if isinstance(pdp, PdpContexts):
            pdp.listeners.append(self._pdp_down)

    def client(self, client_id: int) -> "Socket":
        return self.clients[client_id]

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
        # This runs after every command line; most clients have nothing waiting, and skipping
        # them here (the test Socket.push_pending makes) is a fifth of an AT round trip's work.
        for client in self.clients:
            inbox = client.inbox
            if inbox.data or inbox.closed_due or inbox.paused:
                inbox.push()

    def power_off(self) -> None:
        for client in self.clients:
            client.drop_silently()

    def _pdp_down(self, pdp_ctx: int, by_network: bool) -> None:
        for client in self.clients:
            if client.phase is not Phase.INITIAL and client.pdp_ctx == pdp_ctx:
                client.pdp_down(by_network)


class Socket:
    """One <clientID> / <connectID>: its connection, its buffers, its access mode."""

    OPEN_URC = "+QIOPEN"  # the open result: +QIOPEN: <id>,<err>
    EVENT_URC = "+QIURC"  # "recv" and "closed"

    def __init__(self, family: SocketFamily, client_id: int):
        self.family = family
        self.client_id = client_id
        self.phase = Phase.INITIAL
        self.state = SocketState.INITIAL  # the phase as the state query shows it
        self.pdp_ctx = 0
        self.address = ""  # as the host gave it
        self.remote_ip = ""  # resolved, as the state query shows it (REFERENCE.md, seen)
        self.remote_port = 0
        self.local_port = 0
        self.access_mode = AccessMode.BUFFER
        self.conn_id: int | None = None
        self.layer: StreamLayer | None = None
        self.inbox = Inbox(self)  # received, not yet taken by the host
        self.unsent = 0  # bytes handed to the shell and not yet drained
        self.send_buffer_forced_full = False  # a fault: sends answer SEND FAIL
        self.session: TransparentSession | None = None  # while the port is this socket's
        self._close_timer: Timer | None = None

    @property
    def modem(self) -> "Modem":
        return self.family.modem

    @property
    def limits(self) -> "Limits":
        return self.modem.profile.limits

    @property
    def online(self) -> "TransparentSession | None":
        return self.session

    def _to(self, event: str) -> None:
        self.phase = SOCKET_LIFECYCLE.next(self.phase, event)
        self.state = SHOWN_STATE[self.phase]

    # --- what a family's socket gives ---------------------------------------------------------

    def _new_layer(self) -> StreamLayer:
        """The layer for the connection just made (``remote_ip`` ... are set)."""
        raise NotImplementedError

    def _layer_up(self) -> None:
        """The layer is up (TLS: the handshake completed)."""

    def _layer_failed(self, detail: str) -> None:
        """The layer broke (TLS: an alert, a bad record, a certificate refused)."""

    def _gone_quietly(self) -> None:
        """The socket is free again: forget what the family kept for this connection."""

    # --- opening --------------------------------------------------------------------------------

    def open(self, pdp_ctx: int, address: str, port: int, access_mode: AccessMode) -> None:
        """Start connecting; the result comes later (the open URC, or CONNECT/ERROR in transparent
        mode). Raises OpenFailed when the attempt cannot even start."""
        pdp = self._may_open(pdp_ctx)
        self._start_open(pdp, pdp_ctx, address, port, access_mode)

    def _may_open(self, pdp_ctx: int) -> PdpContexts:
        """The PDP contexts, when this socket may open on ``pdp_ctx``; else OpenFailed."""
        if self.phase is not Phase.INITIAL:
            raise OpenFailed(QiError.SOCKET_IN_USE, f"client {self.client_id} is in use")
        pool = self.family.id_pool
        if pool is not None and socket_in_pool(self.modem, pool, self.client_id) is not None:
            raise OpenFailed(QiError.SOCKET_IN_USE, f"socket {self.client_id} is in use by another family")
        pdp = self.modem.families.get("pdp")
        if not isinstance(pdp, PdpContexts) or not pdp.is_active(pdp_ctx):
            # chosen: the module tries to use the context and reports that it cannot (561); the
            # SSL note's chapter 4 tells the host to check AT+QIACT? first for this reason.
            raise OpenFailed(QiError.OPEN_PDP_FAILED, f"PDP context {pdp_ctx} is not active")
        return pdp

    def _start_open(self, pdp: PdpContexts, pdp_ctx: int, address: str, port: int, access_mode: AccessMode) -> None:
        self.pdp_ctx, self.address, self.remote_port = pdp_ctx, address, port
        self.remote_ip, self.local_port = address, 0
        self.access_mode = access_mode
        self._to("open")
        self.conn_id = self.modem.new_conn_id(self._on_event)
        self.modem.effect(ev.OpenTcp(self.conn_id, address, port, dns_servers=pdp.dns_servers(pdp_ctx)))

    def adopt(self, pdp_ctx: int, remote_ip: str, remote_port: int, local_port: int,
              access_mode: AccessMode) -> int:
        """A connection a server socket accepted becomes this socket, connected at once; returns
        the conn_id the shell is to carry it under."""
        self.pdp_ctx, self.address, self.remote_ip = pdp_ctx, remote_ip, remote_ip
        self.remote_port, self.local_port, self.access_mode = remote_port, local_port, access_mode
        self.conn_id = self.modem.new_conn_id(self._on_event)
        self.layer = self._new_layer()
        self._to("accepted")
        return self.conn_id

    @property
    def open_waits_as_command(self) -> bool:
        """Transparent mode's open answers CONNECT or ERROR as its command's final result."""
        return self.phase is Phase.OPENING and self.access_mode is AccessMode.TRANSPARENT

    def _on_event(self, event: ev.NetworkEvent) -> None:
        if isinstance(event, ev.TcpData):
            self._from_server(event.data)
        elif isinstance(event, ev.TcpConnected):
            self._connected(event)
        elif isinstance(event, ev.TcpConnectFailed):
            log.info("client %d: cannot connect to %s:%d (%s)", self.client_id, self.address,
                     self.remote_port, event.reason)
            self._open_failed(CONNECT_FAILURES.get(event.reason, QiError.CONNECT_FAILED), close=False)
        elif isinstance(event, ev.TcpClosed):
            self._tcp_closed(event.reset)
        elif isinstance(event, ev.TcpDrained):
            self.unsent = 0
            if self.session is not None:
                self.modem.resume_input()

    def _connected(self, event: ev.TcpConnected) -> None:
        if self.phase is not Phase.OPENING:
            return
        self.remote_ip, self.remote_port, self.local_port = event.remote_ip, event.remote_port, event.local_port
        self.layer = self._new_layer()
        self._apply(self.layer.start())

    def _from_server(self, data: bytes) -> None:
        if self.layer is None or self.phase not in (Phase.OPENING, Phase.CONNECTED):
            return  # closing: whatever still arrives is of no use to anyone
        self._apply(self.layer.feed(data))

    def _apply(self, step: LayerStep) -> None:
        if step.outgoing:
            self._send_raw(step.outgoing)
        if step.failure is not None:
            self._layer_failed(step.failure)
            if self.phase is Phase.OPENING:
                self._open_failed(QiError.CONNECT_FAILED)
            else:
                if step.plaintext:
                    # The records before the broken one decrypted: they are the server's data and
                    # reach the host ahead of the closed URC, as data before an orderly close does.
                    self._received(step.plaintext)
                self._abort_connection()
                self._peer_gone()
            return
        if step.established:
            self._established()
        if step.plaintext:
            self._received(step.plaintext)
        if step.peer_closed and self.phase is Phase.CONNECTED:
            self._peer_gone()

    def _established(self) -> None:
        waits_as_command = self.open_waits_as_command
        self._to("established")
        self._layer_up()
        if waits_as_command:
            self.modem.finish_pending(self.enter_transparent())
        else:
            self._report_open(QiError.OK)

    def _open_failed(self, code: QiError, close: bool = True) -> None:
        waits_as_command = self.open_waits_as_command
        if close:
            self._abort_connection()
        self._release()
        if waits_as_command:
            self.modem.finish_pending(CommandFailed(code))
        else:
            self._report_open(code)

    def _report_open(self, code: QiError) -> None:
        """The open URC (SSL note 2.2.2); a family whose result codes differ (MQTT) says its own."""
        self.modem.emit_urc(f"{self.OPEN_URC}: {self.client_id},{int(code)}")

    # --- receiving (emulator.core.inbox) --------------------------------------------------------

    def _received(self, data: bytes) -> None:
        self.modem.observe("received", client=self.client_id, size=len(data))
        if self.session is not None:
            self.modem.write_host(data)
            return
        self.inbox.add(data, pushing=self.access_mode is AccessMode.DIRECT_PUSH)

    @property
    def received(self) -> bytearray:
        return self.inbox.data

    @property
    def reading_paused(self) -> bool:
        return self.inbox.paused

    @property
    def is_open(self) -> bool:
        return self.phase is not Phase.INITIAL

    def read(self, length: int) -> bytes:
        """The inbox's first ``length`` bytes, for the host's read command."""
        return self.inbox.read(length)

    def push_pending(self) -> None:
        self.inbox.push()

    # --- sending --------------------------------------------------------------------------------

    def send_buffer_has_room(self, length: int) -> bool:
        return not self.send_buffer_forced_full and self.unsent + length <= self.limits.send_buffer

    def send(self, data: bytes) -> None:
        """Data for the server, through the layer."""
        if data and self.layer is not None and self.phase is Phase.CONNECTED:
            self._send_raw(self.layer.send(data))

    def _send_raw(self, data: bytes) -> None:
        if self.conn_id is None or not data:
            return
        self.unsent += len(data)
        self.modem.effect(ev.SendTcp(self.conn_id, data))

    # --- closing (SSL note 2.2.5, 2.3.2) --------------------------------------------------------

    def _tcp_closed(self, reset: bool) -> None:
        if self.phase is Phase.OPENING:
            log.info("client %d: %s closed the connection while it opened", self.client_id, self.address)
            self._open_failed(QiError.CONNECT_FAILED, close=False)
        elif self.phase is Phase.HOST_CLOSING:
            self._finish_close()
        elif self.phase is Phase.CONNECTED:
            log.info("client %d: the server %s the connection", self.client_id, "reset" if reset else "closed")
            self._peer_gone()

    def _peer_gone(self) -> None:
        """The server or the network ended the connection (SSL note 2.3.2): the socket waits in
        "closing" for the host's close; unread data stays readable."""
        self._to("peer_gone")
        self.modem.observe("tls", client=self.client_id, event="closed by peer or network", detail="")
        if self.session is not None:
            self.session.lost(NO_CARRIER)
            return
        self.inbox.closed_by_peer(pushing=self.access_mode is AccessMode.DIRECT_PUSH)

    def close(self, timeout: float) -> Reply | None:
        """The host's close. Returns the reply now, or None when the command waits for the peer."""
        if self.phase is Phase.INITIAL:
            return Reply()
        if self.phase is Phase.OPENING:
            self._abort_connection()  # the host gave up waiting for the open (SSL note 2.2.2)
        elif self.phase in (Phase.PEER_CLOSED, Phase.HOST_CLOSING):
            if self.conn_id is not None:
                if self.layer is not None and self.layer.peer_closed:  # Mbed TLS answers close_notify (README, "TLS")
                    self._send_raw(self.layer.close_notify())
                self.modem.effect(ev.CloseTcp(self.conn_id))
        elif self.phase is Phase.CONNECTED and self.conn_id is not None and self.layer is not None:
            self._send_raw(self.layer.close_notify())
            if timeout > 0:
                # Orderly: close_notify, FIN, then the server's FIN, for up to <close_timeout>.
                self.modem.effect(ev.ShutdownTcp(self.conn_id))
                self._to("close")
                self._close_timer = self.modem.call_at(self.modem.now + timeout, self._close_timed_out)
                return None
            self.modem.effect(ev.CloseTcp(self.conn_id))  # 0: "closing immediately"
        self._release()
        return Reply()

    def _close_timed_out(self) -> None:
        if self.phase is Phase.HOST_CLOSING:
            log.info("client %d: no FIN from the server within close_timeout; closing anyway", self.client_id)
            self._abort_connection()
            self._finish_close()

    def _finish_close(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self.conn_id is not None:
            self.modem.effect(ev.CloseTcp(self.conn_id))
        self._release()
        self.modem.finish_pending(Reply())

    def _abort_connection(self) -> None:
        if self.conn_id is not None:
            self.modem.effect(ev.CloseTcp(self.conn_id, abort=True))
            self.modem.forget_conn(self.conn_id)

    def _release(self) -> None:
        """Back to "initial": the client ID is free again."""
        if self.conn_id is not None:
            self.modem.forget_conn(self.conn_id)
        if self.phase is not Phase.INITIAL:
            self._to("release")
        self.conn_id = None
        self.layer = None
        self.inbox.clear()
        self.unsent = 0
        self.session = None
        self._gone_quietly()
        if self.family.last_transparent is self:
            self.family.last_transparent = None

    def drop_silently(self) -> None:
        """Power off: the connection just goes, with no URC (nobody is left to tell)."""
        if self.phase is not Phase.INITIAL:
            self._abort_connection()
            self._release()

    def pdp_down(self, by_network: bool) -> None:
        """The socket's PDP context went down: by the network (SSL note 2.3.2: the socket waits in
        "closing" for the host's close, its unread data still readable) or by AT+QIDEACT (the
        sockets are closed with it, each with its closed URC; REFERENCE.md)."""
        if self.phase is Phase.OPENING:
            self._open_failed(QiError.PDP_BROKEN)
            return
        self._abort_connection()
        if self.phase is Phase.HOST_CLOSING:
            self._finish_close()
            return
        if self.phase in (Phase.CONNECTED, Phase.LISTENING):
            self._peer_gone()
        if not by_network:
            if self.inbox.closed_due:
                # Its closed URC was waiting behind direct push data for an idle port; the data
                # goes with the socket, the URC must not.
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


class TransparentSession:
    """The port while it belongs to one socket (SSL note 1.4): host bytes go to the server, less
    the ``+++`` escape (guard times: ``EscapeDetector``), server bytes go to the host."""

    def __init__(self, socket: Socket):
        self.socket = socket
        modem = socket.modem
        self.escape = EscapeDetector(modem.escape_guard, modem.now)
        self._timer: Timer | None = None

    # OnlineSession ------------------------------------------------------------------------------

    def entered(self, modem: "Modem") -> None:
        data = self.socket.inbox.take_all()
        if data:
            modem.write_host(data)

    def ready_for_host(self) -> bool:
        return self.socket.unsent < self.socket.limits.send_buffer

    def feed_host(self, modem: "Modem", data: bytes) -> None:
        self.socket.send(self.escape.feed(data, modem.now))
        self._arm(modem)

    def leave(self, modem: "Modem") -> None:
        """+++ or DTR with AT&D1: command mode, the connection carries on in buffer access mode."""
        self._stop()
        # What the host sent before a DTR drop is still the connection's: a "+" held as the start
        # of a possible escape, and the bytes waiting for room in the send buffer.
        self.socket.send(self.escape.flush() + modem.take_input())
        self.socket.left_transparent()
        modem.leave_online(OK)

    def hang_up(self, modem: "Modem") -> None:
        """DTR with AT&D2: the connection is closed and the port back in command mode."""
        self._stop()
        self.socket.hang_up(self.escape.flush() + modem.take_input())
        modem.leave_online(NO_CARRIER)

    # ---------------------------------------------------------------------------------------------

    def lost(self, result: FinalResult) -> None:
        """The connection ended under the host: NO CARRIER, and command mode (SSL note 3.5)."""
        self._stop()
        modem = self.socket.modem
        # Bytes the host sent that still waited for room in the send buffer go with the connection;
        # NO CARRIER tells the host so. Left in place they would be read as command lines.
        lost = len(modem.take_input())
        if lost:
            log.info("client %d: %d bytes from the host lost with the connection", self.socket.client_id, lost)
        self.socket.session = None
        modem.leave_online(result)

    def _arm(self, modem: "Modem") -> None:
        deadline = self.escape.deadline()
        if self._timer is not None:
            if deadline is not None and self._timer.deadline == deadline:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = modem.call_at(deadline, self._poll)

    def _poll(self) -> None:
        self._timer = None
        modem = self.socket.modem
        if modem.online is not self:
            return
        released, escaped = self.escape.poll(modem.now)
        self.socket.send(released)
        if escaped:
            self.leave(modem)
        else:
            self._arm(modem)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class DatagramSocket(Socket):
    """A UDP socket: the socket core with datagrams instead of a stream (``DatagramInbox``).

    A client (``bound_only`` False) sends to the address it was opened with; a bound-only socket
    (a service) sends where each send says, and its direct push URCs name each datagram's sender.
    """

    def __init__(self, family: SocketFamily, client_id: int, bound_only: bool = False):
        super().__init__(family, client_id)
        self.bound_only = bound_only
        self.host_port = 0  # where the socket is bound on the machine the emulator runs on
        self.inbox = DatagramInbox(self)

    def _new_layer(self) -> StreamLayer:
        return PlainStream()

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
                self.modem.emit_urc(f"{self.OPEN_URC}: {self.client_id},0")
            else:
                self._established()
        elif isinstance(event, ev.UdpOpenFailed):
            log.info("socket %d: cannot open UDP to %s (%s)", self.client_id, self.address, event.reason)
            self._open_failed(CONNECT_FAILURES.get(event.reason, QiError.CONNECT_FAILED), close=False)

    def _datagram(self, data: bytes, ip: str, port: int) -> None:
        inbox = self.inbox
        assert isinstance(inbox, DatagramInbox)
        if self.session is None:
            if not inbox.fits(len(data)):
                log.info("socket %d: receive buffer full, a datagram of %d bytes from %s:%d dropped",
                         self.client_id, len(data), ip, port)
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
