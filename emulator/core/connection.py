"""The connection side of a socket: its life cycle, the layer on its TCP connection, open and close.

A socket's life is ``SOCKET_LIFECYCLE`` (below): every change of phase is an event of the table.
Its connection is a TCP connection the shell carries out (effects and events,
``ecemu.core.events``); a ``StreamLayer`` sits on it: nothing for plain TCP (``PlainStream``),
TLS (``ecemu.core.tls.TlsClient``) for SSL. Closing is orderly (FIN, then wait for the server's,
up to a timeout) or at once.

A connection owns its one state (``phase``), its ``ReadGate`` (why the connection is not read
now, ``read_gate.py``) and its ``LayerMaker`` (none for plain TCP; ``ContextTls`` for TLS); it
reaches its family through ``SocketHome``. It is a part of the socket that holds it
(``socket.connection``): ``ecemu.core.sockets.Socket``, which adds what the host reads (the inbox,
access modes, transparent mode), or the application stacks' ``AppSocket``, which take what arrives
themselves. The connection tells its holder what happened through one seam, ``ConnectionOwner``
(what arrived, how the open went, that the peer went, that it is free again); the holder asks the
connection to open, send and close through its public methods.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

from . import events as ev
from .lifecycle import Transitions
from .read_gate import SENDING, ReadGate
from .registry import Reply
from .results import QiError

if TYPE_CHECKING:
    from .modem import Modem
    from .timers import Timer
    from ..profile import Limits

log = logging.getLogger("ecemu.core.sockets")

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
    """What the stream layer made of some input (``ecemu.core.tls.TlsStep``)."""

    plaintext: bytes  # for the host
    outgoing: bytes  # for the server
    established: bool  # the layer is up (the TLS handshake completed)
    peer_closed: bool  # the server closed the layer (close_notify)
    failure: str | None  # the connection is dead; why


class StreamLayer(Protocol):
    """What runs on the TCP connection: TLS for SSL (``TlsClient``)."""

    def start(self) -> LayerStep: ...

    def feed(self, data: bytes) -> LayerStep: ...

    @property
    def peer_closed(self) -> bool:
        """The server closed the layer (TLS: its close_notify came)."""

    def send(self, data: bytes, record_size: int = ...) -> bytes:
        """What goes on the connection for ``data``; a layer with records (TLS) makes them
        ``record_size`` bytes at most."""

    def close_notify(self) -> bytes: ...


class LayerMaker(Protocol):
    """What makes the stream layer of each connection a socket makes, and hears how it went: TLS
    on an SSL context (``ecemu.commands.ssl_state.ContextTls``). A socket without one is plain."""

    def make(self, address: str, port: int, timed_out: Callable[[], None]) -> StreamLayer:
        """The layer for a connection to ``address`` (as the host gave it) just made; ``timed_out``
        is called when it is not up in time."""

    def up(self) -> None:
        """The layer is up (the TLS handshake completed)."""

    def failed(self, detail: str, opening: bool) -> None:
        """The layer broke (an alert, a bad record, a certificate refused)."""

    def stop(self) -> None:
        """The connection is gone."""


@runtime_checkable
class PdpContexts(Protocol):
    """What sockets need of the PDP family (``ecemu.commands.pdp.PdpState``)."""

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

    def send(self, data: bytes, record_size: int = 0) -> bytes:
        return data

    def close_notify(self) -> bytes:
        return b""


class OpenFailed(Exception):
    """An open that fails before any network work; ``code`` is the chapter 5 result code."""

    def __init__(self, code: QiError, why: str):
        super().__init__(why)
        self.code = code




class SocketHome(Protocol):
    """What a connection needs of its family (``ecemu.core.sockets.SocketFamily``)."""

    @property
    def modem(self) -> "Modem": ...

    @property
    def limits(self) -> "Limits": ...

    def id_in_use(self, client_id: int) -> bool:
        """Another family's socket uses this ID (the families share one pool of IDs)."""


class ConnectionOwner(Protocol):
    """What a connection needs of the socket that holds it (``ecemu.core.sockets.Socket``, the
    application stacks' ``AppSocket``): where what arrives goes, and whom to tell how the
    connection went. The connection calls these and nothing else of its owner."""

    @property
    def client_id(self) -> int: ...

    def arrived(self, data: bytes) -> None:
        """The server's data, through the layer."""

    def peer_gone(self) -> None:
        """The server or the network ended the connection: tell the host."""

    def opened(self, code: QiError) -> None:
        """How the open went (``QiError.OK``: connected); the connection is still opening."""

    def drained(self) -> None:
        """Everything sent has left: the send buffer is empty."""

    def host_close_done(self) -> None:
        """The host's orderly close is over (the server's FIN came, or the timeout); its command
        has had its OK."""

    def released(self) -> None:
        """The connection is back to "initial": forget what was kept for it."""

    def when_port_idle(self) -> bool:
        """The port is idle (``Connection.wait_for_idle``): what waited for it goes now; True
        while something still waits."""


class Connection:
    """One <clientID> / <connectID>'s connection: its phase, its layer, opening and closing. A
    socket holds one (``socket.connection``) and is its ``ConnectionOwner``."""

    def __init__(self, owner: ConnectionOwner, family: SocketHome, closed_urc_on_deact: bool = True):
        self.owner = owner
        self.family = family
        # Whether the host's AT+QIDEACT tells the socket that it closed before it is freed (the
        # SSL note: "closed" comes when the PDP context is deactivated); the TCP/IP family's
        # sockets are closed without it (REFERENCE.md "PDP context").
        self.closed_urc_on_deact = closed_urc_on_deact
        self.phase = Phase.INITIAL  # the one state; the queries show it as ``shown_state``
        self.pdp_ctx = 0
        self.address = ""  # as the host gave it
        self.remote_ip = ""  # resolved, as the state query shows it (REFERENCE.md, seen)
        self.remote_port = 0
        self.local_port = 0
        self.conn_id: int | None = None
        self.layer: StreamLayer | None = None
        self.layer_maker: LayerMaker | None = None  # None: plain TCP
        self.unsent = 0  # bytes handed to the shell and not yet drained
        self.send_buffer_forced_full = False  # a fault: sends answer SEND FAIL
        self.gate = ReadGate(self)  # whether the connection is read from its server
        self._close_timer: Timer | None = None

    @property
    def modem(self) -> "Modem":
        return self.family.modem

    @property
    def client_id(self) -> int:
        return self.owner.client_id

    @property
    def is_open(self) -> bool:
        return self.phase is not Phase.INITIAL

    @property
    def shown_state(self) -> SocketState:
        """<socket_state> as AT+QSSLSTATE / AT+QISTATE show the phase."""
        return SHOWN_STATE[self.phase]

    def to(self, event: str) -> None:
        """The next phase (``SOCKET_LIFECYCLE``; ``IllegalTransition`` when it does not allow it)."""
        self.phase = SOCKET_LIFECYCLE.next(self.phase, event)

    def wait_for_idle(self) -> None:
        """Be looked at when the port is next idle: ``SocketFamily.port_idle`` asks the owner
        (``when_port_idle``)."""
        self.modem.mark_idle_waiting(self)

    def send_buffer_has_room(self, length: int) -> bool:
        return not self.send_buffer_forced_full and self.unsent + length <= self.family.limits.send_buffer

    def make_layer(self) -> None:
        """The layer for the connection just made (``remote_ip`` ... are set)."""
        maker = self.layer_maker
        if maker is None:
            self.layer = PlainStream()
        else:
            self.layer = maker.make(self.address, self.remote_port, self._layer_timed_out)

    def _layer_timed_out(self) -> None:
        if self.phase is Phase.OPENING:
            log.warning("client %d: handshake with %s:%d took longer than negotiatetime", self.client_id,
                        self.address, self.remote_port)
            self.open_failed(QiError.TIMEOUT)

    # --- opening --------------------------------------------------------------------------------

    def may_open(self, pdp_ctx: int) -> PdpContexts:
        """The PDP contexts, when this socket may open on ``pdp_ctx``; else OpenFailed."""
        if self.phase is not Phase.INITIAL:
            raise OpenFailed(QiError.SOCKET_IN_USE, f"client {self.client_id} is in use")
        if self.family.id_in_use(self.client_id):
            raise OpenFailed(QiError.SOCKET_IN_USE, f"socket {self.client_id} is in use by another family")
        pdp = self.modem.families.get("pdp")
        if not isinstance(pdp, PdpContexts) or not pdp.is_active(pdp_ctx):
            # chosen: the module tries to use the context and reports that it cannot (561); the
            # SSL note's chapter 4 tells the host to check AT+QIACT? first for this reason.
            raise OpenFailed(QiError.OPEN_PDP_FAILED, f"PDP context {pdp_ctx} is not active")
        return pdp

    def begin(self, pdp_ctx: int, address: str, port: int, local_port: int = 0,
              on_event: Callable[[ev.NetworkEvent], None] | None = None) -> int:
        """Opening starts: the phase is "opening" and the connection has a fresh conn_id, whose
        events go to ``on_event`` (a TCP client's: this connection's own). Returns the conn_id
        for the effect that opens it."""
        self.pdp_ctx, self.address, self.remote_port = pdp_ctx, address, port
        self.remote_ip, self.local_port = address, local_port
        self.to("open")
        self.conn_id = self.modem.new_conn_id(on_event or self._on_event)
        return self.conn_id

    def open(self, pdp: PdpContexts, pdp_ctx: int, address: str, port: int) -> None:
        """Start a TCP connection on ``pdp_ctx``, which ``may_open`` allowed; the result comes to
        the owner (``opened``)."""
        conn_id = self.begin(pdp_ctx, address, port)
        self.modem.effect(ev.OpenTcp(conn_id, address, port, dns_servers=pdp.dns_servers(pdp_ctx)))

    def adopt(self, pdp_ctx: int, remote_ip: str, remote_port: int, local_port: int) -> int:
        """A connection a server socket accepted becomes this socket's, connected at once; returns
        the conn_id the shell is to carry it under."""
        self.pdp_ctx, self.address, self.remote_ip = pdp_ctx, remote_ip, remote_ip
        self.remote_port, self.local_port = remote_port, local_port
        self.conn_id = self.modem.new_conn_id(self._on_event)
        self.make_layer()
        self.to("accepted")
        return self.conn_id

    def _on_event(self, event: ev.NetworkEvent) -> None:
        if isinstance(event, ev.TcpData):
            self._from_server(event.data)
        elif isinstance(event, ev.TcpConnected):
            self._connected(event)
        elif isinstance(event, ev.TcpConnectFailed):
            log.info("client %d: cannot connect to %s:%d (%s)", self.client_id, self.address,
                     self.remote_port, event.reason)
            self.open_failed(CONNECT_FAILURES.get(event.reason, QiError.CONNECT_FAILED), close=False)
        elif isinstance(event, ev.TcpClosed):
            self._tcp_closed(event.reset)
        elif isinstance(event, ev.TcpDrained):
            self.unsent = 0
            self.gate.lift(SENDING)
            self.owner.drained()

    def _connected(self, event: ev.TcpConnected) -> None:
        if self.phase is not Phase.OPENING:
            return
        self.remote_ip, self.remote_port, self.local_port = event.remote_ip, event.remote_port, event.local_port
        self.make_layer()
        assert self.layer is not None
        self._apply(self.layer.start())

    def _from_server(self, data: bytes) -> None:
        if self.layer is None or self.phase not in (Phase.OPENING, Phase.CONNECTED):
            return  # closing: whatever still arrives is of no use to anyone
        self._apply(self.layer.feed(data))

    def _apply(self, step: LayerStep) -> None:
        if step.outgoing:
            self._send_raw(step.outgoing)
            self._hold_if_backed_up()
        if step.failure is not None:
            if self.layer_maker is not None:
                self.layer_maker.failed(step.failure, opening=self.phase is Phase.OPENING)
            if self.phase is Phase.OPENING:
                self.open_failed(QiError.CONNECT_FAILED)
            else:
                if step.plaintext:
                    # The records before the broken one decrypted: they are the server's data and
                    # reach the host ahead of the closed URC, as data before an orderly close does.
                    self.owner.arrived(step.plaintext)
                self._abort_connection()
                self._peer_gone()
            return
        if step.established:
            self.established()
        if step.plaintext:
            self.owner.arrived(step.plaintext)
        if step.peer_closed and self.phase is Phase.CONNECTED:
            self._peer_gone()

    def established(self) -> None:
        """Connected (and the layer up): the owner hears ``QiError.OK``."""
        self.to("established")
        if self.layer_maker is not None:
            self.layer_maker.up()
        self.owner.opened(QiError.OK)

    def open_failed(self, code: QiError, close: bool = True) -> None:
        """The open failed (``close``: the connection made so far goes too); the socket is free
        again when the owner hears ``code``."""
        if close:
            self._abort_connection()
        self.release()
        self.owner.opened(code)

    # --- sending --------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Data for the server, through the layer."""
        if data and self.layer is not None and self.phase is Phase.CONNECTED:
            self._send_raw(self.layer.send(data))

    def send_packets(self, data: bytes, packet_size: int) -> None:
        """Data for the server in sends of ``packet_size`` bytes (transparent mode's packets: a TLS
        record each), handed to the network together: on TCP back-to-back segments, as the peer
        reads them anyway, and one system call instead of one per packet."""
        if data and self.layer is not None and self.phase is Phase.CONNECTED:
            self._send_raw(self.layer.send(data, packet_size))

    def _send_raw(self, data: bytes) -> None:
        if self.conn_id is None or not data:
            return
        self.unsent += len(data)
        self.modem.effect(ev.SendTcp(self.conn_id, data))

    def answer(self, data: bytes) -> None:
        """Send what the module says on its own to what the server sent (TLS records the layer
        answers with, MQTT acknowledgements), through the layer: when the server does not take it
        and more than ``outgoing_limit`` waits, the socket stops reading what makes it say more,
        until all has left (``TcpDrained``). Only answers: a server that does not read while it
        sends (an echo whose own sends are blocked) would otherwise stop both ways for good; what
        the host sends is bounded by the send buffer already."""
        self.send(data)
        self._hold_if_backed_up()

    def _hold_if_backed_up(self) -> None:
        if self.unsent > self.outgoing_limit:
            self.gate.hold(SENDING)

    @property
    def outgoing_limit(self) -> int:
        """Bytes waiting to leave above which answers stop the socket being read: twice the send
        buffer, so the host's own sends (at most one buffer: SEND FAIL beyond) never do it."""
        return 2 * self.family.limits.send_buffer

    # --- closing (SSL note 2.2.5, 2.3.2) --------------------------------------------------------

    def _tcp_closed(self, reset: bool) -> None:
        if self.phase is Phase.OPENING:
            log.info("client %d: %s closed the connection while it opened", self.client_id, self.address)
            self.open_failed(QiError.CONNECT_FAILED, close=False)
        elif self.phase is Phase.HOST_CLOSING:
            self._finish_close()
        elif self.phase is Phase.CONNECTED:
            log.info("client %d: the server %s the connection", self.client_id, "reset" if reset else "closed")
            self._peer_gone()

    def _peer_gone(self) -> None:
        """The server or the network ended the connection (SSL note 2.3.2): the socket waits in
        "closing" for the host's close; unread data stays readable."""
        self.to("peer_gone")
        # The trace tells a TLS connection's end from a plain one's (a TCP socket has no TLS).
        plain = self.layer is None or isinstance(self.layer, PlainStream)
        self.modem.observe("socket" if plain else "tls", client=self.client_id,
                           event="closed by peer or network", detail="")
        self.owner.peer_gone()

    def close(self, timeout: float) -> Reply | None:
        """The host's close. Returns the reply now, or None when the command waits for the peer."""
        if self.phase is Phase.INITIAL:
            return Reply()
        if self.phase is Phase.OPENING:
            self._abort_connection()  # the host gave up waiting for the open (SSL note 2.2.2)
        elif self.phase in (Phase.PEER_CLOSED, Phase.HOST_CLOSING):
            if self.conn_id is not None:
                # Mbed TLS answers close_notify (docs/reference/chosen-behaviour.md "TLS")
                if self.layer is not None and self.layer.peer_closed:
                    self._send_raw(self.layer.close_notify())
                self.modem.effect(ev.CloseTcp(self.conn_id))
        elif self.phase is Phase.CONNECTED and self.conn_id is not None and self.layer is not None:
            self._send_raw(self.layer.close_notify())
            if timeout > 0:
                # Orderly: close_notify, FIN, then the server's FIN, for up to <close_timeout>.
                self.modem.effect(ev.ShutdownTcp(self.conn_id))
                self.to("close")
                self._close_timer = self.modem.call_at(self.modem.now + timeout, self._close_timed_out)
                return None
            self.modem.effect(ev.CloseTcp(self.conn_id))  # 0: "closing immediately"
        self.release()
        return Reply()

    def close_at_once(self) -> Reply:
        """A close with nothing to wait for (UDP, a listener): the connection goes now."""
        if self.conn_id is not None and self.phase is not Phase.INITIAL:
            self.modem.effect(ev.CloseTcp(self.conn_id))
        self.release()
        return Reply()

    def hang_up(self, before_close: bytes) -> None:
        """DTR with AT&D2 in transparent mode: ``before_close`` goes out, then the connection
        closes."""
        if self.layer is not None and self.conn_id is not None:
            self.send(before_close)  # ahead of close_notify, as an orderly close sends it
            self._send_raw(self.layer.close_notify())
            self.modem.effect(ev.CloseTcp(self.conn_id))
        self.release()

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
        self.release()
        self.modem.host.finish_pending(Reply())
        self.owner.host_close_done()

    def _abort_connection(self) -> None:
        if self.conn_id is not None:
            self.modem.effect(ev.CloseTcp(self.conn_id, abort=True))
            self.modem.forget_conn(self.conn_id)

    def release(self) -> None:
        """Back to "initial": the client ID is free again (the owner hears ``released``)."""
        self.gate.clear()
        if self.conn_id is not None:
            self.modem.forget_conn(self.conn_id)
        if self.phase is not Phase.INITIAL:
            self.to("release")
        self.conn_id = None
        self.layer = None
        if self.layer_maker is not None:
            self.layer_maker.stop()
            self.layer_maker = None
        self.unsent = 0
        self.owner.released()

    def pdp_down(self, by_network: bool) -> bool:
        """The socket's PDP context went down: by the network (SSL note 2.3.2: the socket waits in
        "closing" for the host's close, its unread data still readable) or by AT+QIDEACT (the
        sockets are closed with it, told so where ``closed_urc_on_deact``; REFERENCE.md). True
        when the owner is to free the socket with its context (``release``)."""
        if self.phase is Phase.OPENING:
            self.open_failed(QiError.PDP_BROKEN)
            return False
        self._abort_connection()
        if self.phase is Phase.HOST_CLOSING:
            self._finish_close()
            return False
        if self.phase in (Phase.CONNECTED, Phase.LISTENING) and (by_network or self.closed_urc_on_deact):
            self._peer_gone()
        return not by_network

    def drop_silently(self) -> None:
        """Power off: the connection just goes, with no URC (nobody is left to tell)."""
        if self.phase is not Phase.INITIAL:
            self._abort_connection()
            self.release()
