"""The SSL family's state: six SSL contexts, twelve clients, and each client's connection.

A client (SSL note 2.2.2 - 2.3) goes INITIAL -> OPENING -> CONNECTED -> (CLOSING) -> INITIAL. Its
connection is a TCP connection that the shell carries out (effects and events, see
``emulator.core.events``) with TLS spoken here, in the core, by ``emulator.core.tls``.

Received data goes where the client's access mode says (SSL note 1.4): into the client's buffer
with one ``+QSSLURC: "recv"`` until the host has read it all (buffer access), out as
``+QSSLURC: "recv",<id>,<len>`` URCs whenever the port is idle (direct push), or straight to the
host while the port is this client's (transparent). Whatever the mode, nothing received is dropped:
when a buffer fills, the client stops reading from the server (``PauseReading``) until the host
has taken enough, and TCP's flow control does the rest.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from emulator.core import events as ev
from emulator.core.escape import EscapeDetector
from emulator.core.registry import CommandFailed, Reply
from emulator.core.results import CONNECT, NO_CARRIER, OK
from emulator.core.tls import (
    ContextSettings,
    TlsClient,
    TlsStep,
    TlsUnavailable,
    VerifyPolicy,
    build_context,
    is_ip_literal,
)
from emulator.core.ufs import strip_ufs_prefix

if TYPE_CHECKING:
    from emulator.core.modem import Modem, Timer

log = logging.getLogger(__name__)

# Access modes (SSL note 2.2.2 <access_mode>).
BUFFER, DIRECT_PUSH, TRANSPARENT = 0, 1, 2

# Result codes of SSL note chapter 5 that the SSL commands give.
ERR_UNKNOWN = 550
ERR_INVALID_PARAMETER = 552
ERR_SOCKET_IN_USE = 563
ERR_DNS = 565
ERR_CONNECT = 566  # connect, handshake and certificate failures alike (REFERENCE.md, seen)
ERR_SOCKET_CLOSED = 567
ERR_TIMEOUT = 569
ERR_PDP_BROKEN = 570
ERR_CANCEL_SEND = 571
ERR_NOT_ALLOWED = 572
ERR_OPEN_PDP = 561

CONNECT_FAILURES = {"dns": ERR_DNS, "refused": ERR_CONNECT, "unreachable": ERR_CONNECT, "timeout": ERR_TIMEOUT}

# Below this share of the buffer limit a paused client reads from the server again.
RESUME_FRACTION = 0.5


class ClientState(enum.IntEnum):
    """<socket_state> of SSL note 2.2.6."""

    INITIAL = 0
    OPENING = 1
    CONNECTED = 2
    CLOSING = 4


@dataclass
class SslSettings:
    """One SSL context's AT+QSSLCFG values (SSL note 2.2.1). The defaults are the module's
    (REFERENCE.md "SSL, as real modules show it": note ``ignorelocaltime`` 1 and ``sni`` 0)."""

    sslversion: int = 4
    ciphersuite: int = 0xFFFF
    cacert: str = "cacert.pem"
    clientcert: str = "client.pem"
    clientkey: str = "user_key.pem"
    secllevel: int = 0
    ignorelocaltime: int = 1
    negotiatetime: int = 300
    sni: int = 0
    closetimemode: int = 0
    ignoremulticertchainverify: int = 0
    ignoreinvalidcertsign: int = 0
    session_cache: int = 0


class OpenFailed(Exception):
    """An open that fails before any network work; ``code`` is the chapter 5 result code."""

    def __init__(self, code: int, why: str):
        super().__init__(why)
        self.code = code


class SslFamily:
    """``modem.network["ssl"]``: every SSL context and client of one module."""

    def __init__(self, modem: "Modem"):
        self.modem = modem
        limits = modem.profile.limits
        self.contexts = [SslSettings() for _ in range(limits.ssl_contexts)]
        self.clients = [SslClient(self, client_id) for client_id in range(limits.clients)]
        # One OpenSSL context per SSL context ID and settings: sessions resume only on the
        # OpenSSL context that made them (REFERENCE.md "TLS engines").
        self._openssl: dict[int, tuple[ContextSettings, object]] = {}
        self.sessions: dict[tuple[int, str, int], object] = {}
        self.last_transparent: SslClient | None = None  # what ATO returns to (SSL note 1.4)
        modem.reset_hooks.append(self._power_off)
        modem.idle_hooks.append(self.push_pending)
        pdp = modem.network.get("pdp")
        if pdp is not None:
            pdp.listeners.append(self._pdp_down)

    # --- what the commands and the control interface use ---------------------------------------

    def client(self, client_id: int) -> "SslClient":
        return self.clients[client_id]

    def conn_id_of(self, client_id: int) -> int | None:
        """The live connection of a client, for faults injected by the control interface."""
        if not 0 <= client_id < len(self.clients):
            return None
        client = self.clients[client_id]
        return client.conn_id if client.state is not ClientState.INITIAL else None

    def set_send_buffer_full(self, client_id: int, full: bool) -> None:
        from emulator.control import ControlError

        if not 0 <= client_id < len(self.clients):
            raise ControlError(f"no client {client_id}")
        self.clients[client_id].send_buffer_forced_full = full

    def resume_online(self) -> Reply | None:
        """ATO (SSL note 1.4): back to the connection that last left transparent mode."""
        client = self.last_transparent
        if client is None or client.state is not ClientState.CONNECTED:
            return None
        return client.enter_transparent()

    def push_pending(self) -> None:
        """Direct push data and the closed URCs queued behind it, now that the port is idle."""
        # This runs after every command line; most clients have nothing waiting, and skipping
        # them here (the same test SslClient.push_pending makes, inlined) is a fifth of an AT
        # round trip's work in the core.
        for client in self.clients:
            if client.received or client.closed_to_report or client.reading_paused:
                client.push_pending()

    def openssl_context(self, ctx_id: int, settings: ContextSettings):
        cached = self._openssl.get(ctx_id)
        if cached is not None and cached[0] == settings:
            return cached[1]
        context = build_context(settings, keylog=self._keylog)
        self._openssl[ctx_id] = (settings, context)
        self.sessions = {key: value for key, value in self.sessions.items() if key[0] != ctx_id}
        return context

    def _keylog(self, line: bytes) -> None:
        if self.modem.keylog is not None:
            self.modem.keylog(line)

    def _power_off(self) -> None:
        for client in self.clients:
            client.drop_silently()

    def _pdp_down(self, pdp_ctx: int, by_network: bool) -> None:
        for client in self.clients:
            if client.state is not ClientState.INITIAL and client.pdp_ctx == pdp_ctx:
                client.pdp_down(by_network)


@dataclass
class SslClient:
    """One <clientID>: its connection, its buffers, its access mode."""

    family: SslFamily
    client_id: int
    state: ClientState = ClientState.INITIAL
    pdp_ctx: int = 0
    ssl_ctx: int = 0
    address: str = ""  # as the host gave it
    remote_ip: str = ""  # resolved, as AT+QSSLSTATE shows it (REFERENCE.md, seen)
    remote_port: int = 0
    local_port: int = 0
    access_mode: int = BUFFER
    conn_id: int | None = None
    tls: TlsClient | None = None
    received: bytearray = field(default_factory=bytearray)  # unread (buffer) or unpushed (push)
    recv_reported: bool = False  # a "recv" URC is out and the buffer has not been emptied since
    closed_to_report: bool = False  # a "closed" URC waits behind direct push data
    reading_paused: bool = False
    unsent: int = 0  # ciphertext handed to the shell and not yet drained
    send_buffer_forced_full: bool = False  # a fault: AT+QSSLSEND answers SEND FAIL
    opening_transparent: bool = False  # AT+QSSLOPEN with access mode 2 waits for CONNECT/ERROR
    online: "TransparentSession | None" = None
    _negotiation_timer: "Timer | None" = None
    _settings: SslSettings | None = None  # the context's settings as they were at open time
    _context: object = None  # the OpenSSL context the connection uses
    _close_waiting: bool = False
    _close_timer: "Timer | None" = None
    _session_key: tuple[int, str, int] | None = None
    # The last +QSSLSTATE line and the fields it shows: hosts poll AT+QSSLSTATE, and formatting
    # twelve lines afresh each time was a third of its answer's work.
    _state_line: bytes = b""
    _state_line_of: tuple | None = None

    @property
    def modem(self) -> "Modem":
        return self.family.modem

    @property
    def limits(self):
        return self.modem.profile.limits

    # --- opening (SSL note 2.2.2) ------------------------------------------------------------

    def open(self, pdp_ctx: int, ssl_ctx: int, address: str, port: int, access_mode: int) -> None:
        """Start connecting; the result comes later (URC, or CONNECT/ERROR in transparent mode).
        Raises OpenFailed when the attempt cannot even start."""
        if self.state is not ClientState.INITIAL:
            raise OpenFailed(ERR_SOCKET_IN_USE, f"client {self.client_id} is in use")
        pdp = self.modem.network.get("pdp")
        if pdp is None or not pdp.is_active(pdp_ctx):
            # chosen: the module tries to use the context and reports that it cannot (561); the
            # SSL note's chapter 4 tells the host to check AT+QIACT? first for this reason.
            raise OpenFailed(ERR_OPEN_PDP, f"PDP context {pdp_ctx} is not active")
        settings = replace(self.family.contexts[ssl_ctx])  # as they are now, at open time
        self.pdp_ctx, self.ssl_ctx, self.address, self.remote_port = pdp_ctx, ssl_ctx, address, port
        self.remote_ip, self.local_port = address, 0
        self.access_mode = access_mode
        self.opening_transparent = access_mode == TRANSPARENT
        self.state = ClientState.OPENING
        self._settings = settings
        try:
            self._context = self.family.openssl_context(ssl_ctx, self._context_settings(settings))
        except TlsUnavailable as exc:
            self.state = ClientState.INITIAL
            log.warning("client %d: SSL context %d cannot be used: %s", self.client_id, ssl_ctx, exc)
            raise OpenFailed(ERR_CONNECT, str(exc)) from None
        self.conn_id = self.modem.new_conn_id(self._on_event)
        dns = pdp.dns_servers(pdp_ctx)
        self.modem.effect(ev.OpenTcp(self.conn_id, address, port, dns_servers=dns))

    def _context_settings(self, settings: SslSettings) -> ContextSettings:
        """The OpenSSL side of the settings, with the certificate files read from UFS now, at
        open time, as the module reads them (SSL note chapter 4)."""
        verify = settings.secllevel >= 1
        ca = self._read_file(settings.cacert, "CA certificate (cacert)") if verify else None
        cert = key = None
        if settings.secllevel == 2:
            cert = self._read_file(settings.clientcert, "client certificate (clientcert)")
            key = self._read_file(settings.clientkey, "client key (clientkey)")
        return ContextSettings(settings.sslversion, settings.ciphersuite, verify, ca, cert, key)

    def _read_file(self, path: str, what: str) -> bytes:
        try:
            return self.modem.files.read(strip_ufs_prefix(path))
        except (FileNotFoundError, OSError):
            # REFERENCE.md (seen): secllevel 1 with no CA file fails the open as 566.
            raise TlsUnavailable(f"{what} {path!r} is not in UFS") from None

    def _on_event(self, event: ev.NetworkEvent) -> None:
        if isinstance(event, ev.TcpConnected):
            self._connected(event)
        elif isinstance(event, ev.TcpConnectFailed):
            log.info("client %d: cannot connect to %s:%d (%s)", self.client_id, self.address,
                     self.remote_port, event.reason)
            self._open_failed(CONNECT_FAILURES.get(event.reason, ERR_CONNECT), close=False)
        elif isinstance(event, ev.TcpData):
            self._ciphertext(event.data)
        elif isinstance(event, ev.TcpClosed):
            self._tcp_closed(event.reset)
        elif isinstance(event, ev.TcpDrained):
            self.unsent = 0
            if self.online is not None:
                self.modem.resume_input()

    def _connected(self, event: ev.TcpConnected) -> None:
        if self.state is not ClientState.OPENING:
            return
        self.remote_ip, self.remote_port, self.local_port = event.remote_ip, event.remote_port, event.local_port
        settings = self._settings
        policy = None
        if settings.secllevel >= 1:
            policy = VerifyPolicy(
                server_name=self.address,
                at=self.modem.clock.utc(self.modem.now),
                check_time=not settings.ignorelocaltime,
                forgive_chain=bool(settings.ignoremulticertchainverify),
                forgive_signature=bool(settings.ignoreinvalidcertsign),
            )
        # SNI only for names (SSL note 1.6; an IP literal is never a server name, RFC 6066 3).
        sni = self.address if settings.sni and not is_ip_literal(self.address) else None
        session = None
        if settings.session_cache:
            self._session_key = (self.ssl_ctx, self.address, self.remote_port)
            session = self.family.sessions.get(self._session_key)
        self.tls = TlsClient(self._context, policy, sni=sni, session=session)
        self._negotiation_timer = self.modem.call_at(self.modem.now + settings.negotiatetime,
                                                     self._negotiation_expired)
        self._apply(self.tls.start())

    def _negotiation_expired(self) -> None:
        if self.state is ClientState.OPENING:
            log.warning("client %d: handshake with %s:%d took longer than negotiatetime (%d s)",
                        self.client_id, self.address, self.remote_port, self._settings.negotiatetime)
            self._open_failed(ERR_TIMEOUT)

    def _ciphertext(self, data: bytes) -> None:
        if self.tls is None or self.state not in (ClientState.OPENING, ClientState.CONNECTED):
            return  # closing: whatever still arrives is of no use to anyone
        self._apply(self.tls.feed(data))

    def _apply(self, step: TlsStep) -> None:
        if step.outgoing:
            self._send_ciphertext(step.outgoing)
        if step.failure is not None:
            self.modem.observe("tls", client=self.client_id, event="failed", detail=step.failure)
            if self.state is ClientState.OPENING:
                log.warning("client %d: TLS to %s:%d failed: %s", self.client_id, self.address,
                            self.remote_port, step.failure)
                self._open_failed(ERR_CONNECT)
            else:
                log.warning("client %d: connection broken: %s", self.client_id, step.failure)
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
        if step.peer_closed and self.state is ClientState.CONNECTED:
            self._peer_gone()

    def _established(self) -> None:
        self._cancel_negotiation_timer()
        self.state = ClientState.CONNECTED
        self.modem.observe("tls", client=self.client_id, event="established", detail=self.tls.describe(),
                           forgiven=list(self.tls.forgiven))
        log.info("client %d: connected to %s:%d with %s%s", self.client_id, self.address, self.remote_port,
                 self.tls.describe(), f" (forgiven: {'; '.join(self.tls.forgiven)})" if self.tls.forgiven else "")
        if self._session_key is not None:
            self.family.sessions[self._session_key] = self.tls.session
        if self.opening_transparent:
            self.opening_transparent = False
            self.modem.finish_pending(self.enter_transparent())
        else:
            self.modem.emit_urc(f"+QSSLOPEN: {self.client_id},0")

    def _open_failed(self, code: int, close: bool = True) -> None:
        if close:
            self._abort_connection()
        self._release()
        if self.opening_transparent:
            self.opening_transparent = False
            self.modem.finish_pending(CommandFailed(qi_error=code))
        else:
            self.modem.emit_urc(f"+QSSLOPEN: {self.client_id},{code}")

    def _cancel_negotiation_timer(self) -> None:
        if self._negotiation_timer is not None:
            self._negotiation_timer.cancel()
            self._negotiation_timer = None

    # --- receiving (SSL note 1.4, 2.2.4, 2.3.1) ------------------------------------------------

    def _received(self, data: bytes) -> None:
        self.modem.observe("received", client=self.client_id, size=len(data))
        if self.online is not None:
            self.modem.write_host(data)
            return
        self.received += data
        if self.access_mode == DIRECT_PUSH:
            self.push_pending()
        elif not self.recv_reported:
            self._report_recv()
        self._pause_if_full()

    def _report_recv(self) -> None:
        """Buffer access mode's "recv" (SSL note 2.3.1), once until the buffer has been emptied."""
        self.recv_reported = True
        self.modem.emit_urc(f'+QSSLURC: "recv",{self.client_id}')

    def _report_closed(self) -> None:
        """SSL note 2.3.2."""
        self.modem.emit_urc(f'+QSSLURC: "closed",{self.client_id}')

    def _pause_if_full(self) -> None:
        if not self.reading_paused and len(self.received) >= self.limits.recv_buffer and self.conn_id:
            self.reading_paused = True
            self.modem.effect(ev.PauseReading(self.conn_id))

    def _resume_if_room(self) -> None:
        if self.reading_paused and len(self.received) < self.limits.recv_buffer * RESUME_FRACTION:
            self.reading_paused = False
            if self.conn_id is not None and self.state is not ClientState.INITIAL:
                self.modem.effect(ev.ResumeReading(self.conn_id))

    def read(self, length: int) -> bytes:
        """AT+QSSLRECV: up to ``length`` bytes from the buffer."""
        data = bytes(self.received[:length])
        del self.received[:length]
        if not self.received:
            # Quectel's TCP/IP notes: no new "recv" URC until everything received has been read.
            self.recv_reported = False
        self._resume_if_room()
        return data

    def push_pending(self) -> None:
        """Direct push: URCs of up to recv_max bytes while the port is idle, then a held closed URC."""
        if self.online is not None:
            return
        modem = self.modem
        # Not while DTR is low: no host has the port, and data pushed now would be lost without a
        # word. It waits, as in the buffer, and goes out at the first idle moment once DTR is back
        # (after the host's first command: a host opening the port flushes what came before).
        while self.access_mode == DIRECT_PUSH and self.received and modem.idle and modem.dtr:
            chunk = bytes(self.received[: self.limits.recv_max])
            del self.received[: len(chunk)]
            modem.emit_urc(f'+QSSLURC: "recv",{self.client_id},{len(chunk)}'.encode(), chunk)
        if self.closed_to_report and not (self.access_mode == DIRECT_PUSH and self.received):
            self.closed_to_report = False
            self._report_closed()
        self._resume_if_room()

    # --- sending (SSL note 2.2.3) ---------------------------------------------------------------

    def send_buffer_has_room(self, length: int) -> bool:
        return not self.send_buffer_forced_full and self.unsent + length <= self.limits.send_buffer

    def send(self, data: bytes) -> None:
        self._send_ciphertext(self.tls.send(data))

    def _send_ciphertext(self, data: bytes) -> None:
        if self.conn_id is None:
            return
        self.unsent += len(data)
        self.modem.effect(ev.SendTcp(self.conn_id, data))

    # --- closing (SSL note 2.2.5, 2.3.2) --------------------------------------------------------

    def _tcp_closed(self, reset: bool) -> None:
        if self.state is ClientState.OPENING:
            log.info("client %d: %s closed the connection during the handshake", self.client_id, self.address)
            self._open_failed(ERR_CONNECT, close=False)
            return
        if self._close_waiting:
            self._finish_close()
            return
        if self.state is ClientState.CONNECTED:
            log.info("client %d: the server %s the connection", self.client_id, "reset" if reset else "closed")
            self._peer_gone()

    def _peer_gone(self) -> None:
        """The server or the network ended the connection (SSL note 2.3.2): the client waits in
        "closing" for AT+QSSLCLOSE; unread data stays readable."""
        self.state = ClientState.CLOSING
        self.modem.observe("tls", client=self.client_id, event="closed by peer or network", detail="")
        if self.online is not None:
            self.online.lost(NO_CARRIER)
            return
        if self.access_mode == DIRECT_PUSH and self.received:
            self.closed_to_report = True
            self.push_pending()
            return
        self._report_closed()

    def close(self, timeout: float) -> Reply | None:
        """AT+QSSLCLOSE. Returns the reply now, or None when the command waits for the peer."""
        if self.state is ClientState.OPENING:
            self._abort_connection()  # the host gave up waiting for +QSSLOPEN (SSL note 2.2.2)
        elif self.state is ClientState.CLOSING:
            if self.conn_id is not None:
                if self.tls is not None and self.tls.peer_closed:  # Mbed TLS answers close_notify (README, "TLS")
                    self._send_ciphertext(self.tls.close_notify())
                self.modem.effect(ev.CloseTcp(self.conn_id))
        elif self.state is ClientState.CONNECTED:
            self._send_ciphertext(self.tls.close_notify())
            if timeout > 0:
                # Orderly: close_notify, FIN, then the server's FIN, for up to <close_timeout>.
                self.modem.effect(ev.ShutdownTcp(self.conn_id))
                self.state = ClientState.CLOSING
                self._close_waiting = True
                self._close_timer = self.modem.call_at(self.modem.now + timeout, self._close_timed_out)
                return None
            self.modem.effect(ev.CloseTcp(self.conn_id))  # 0: "closing immediately"
        self._release()
        return Reply()

    def _close_timed_out(self) -> None:
        if self._close_waiting:
            log.info("client %d: no FIN from the server within close_timeout; closing anyway", self.client_id)
            self._abort_connection()
            self._finish_close()

    def _finish_close(self) -> None:
        self._close_waiting = False
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
        self._cancel_negotiation_timer()
        if self.conn_id is not None:
            self.modem.forget_conn(self.conn_id)
        self.state = ClientState.INITIAL
        self.conn_id = None
        self.tls = None
        self.received.clear()
        self.recv_reported = self.closed_to_report = self.reading_paused = False
        self.unsent = 0
        self.online = None
        self._session_key = None
        if self.family.last_transparent is self:
            self.family.last_transparent = None

    def drop_silently(self) -> None:
        """Power off: the connection just goes, with no URC (nobody is left to tell)."""
        if self.state is not ClientState.INITIAL:
            self._abort_connection()
            self._release()

    def pdp_down(self, by_network: bool) -> None:
        """The client's PDP context went down: by the network (SSL note 2.3.2: the client waits in
        "closing" for AT+QSSLCLOSE, its unread data still readable) or by AT+QIDEACT (the sockets
        are closed with it, each with its closed URC; REFERENCE.md)."""
        if self.state is ClientState.OPENING:
            self._open_failed(ERR_PDP_BROKEN)
            return
        self._abort_connection()
        if self._close_waiting:
            self._finish_close()
            return
        if self.state is ClientState.CONNECTED:
            self._peer_gone()
        if not by_network:
            if self.closed_to_report:
                # Its closed URC was waiting behind direct push data for an idle port; the data
                # goes with the socket, the URC must not.
                self._report_closed()
            self._release()

    # --- transparent mode (SSL note 1.4, 3.5) ---------------------------------------------------

    def enter_transparent(self) -> Reply:
        """CONNECT, and the port is this client's: what waited in the buffer comes first."""
        self.access_mode = TRANSPARENT
        self.recv_reported = False
        self.online = TransparentSession(self)
        self.family.last_transparent = self
        return Reply(final=CONNECT, online=self.online)

    def switch_mode(self, mode: int) -> Reply:
        """AT+QISWTMD (Quectel TCP/IP note): OK for 0/1, CONNECT for 2."""
        if mode == TRANSPARENT:
            return self.enter_transparent()
        self.access_mode = mode
        if mode == DIRECT_PUSH:
            self.recv_reported = False
            self.push_pending()
        elif self.received and not self.recv_reported:
            # Data that was waiting to be pushed now waits to be read: say so, once.
            self._report_recv()
        return Reply()

    def state_line(self) -> bytes:
        """One +QSSLSTATE line (SSL note 2.2.6). <serverID> is reserved; the note's and the seen
        examples show the client ID there, so it does too."""
        shown = (self.remote_ip, self.remote_port, self.local_port, self.state, self.pdp_ctx,
                 self.access_mode, self.ssl_ctx)
        if shown != self._state_line_of:
            at_port = self.modem.profile.defaults.at_port
            self._state_line_of = shown
            self._state_line = (
                f'+QSSLSTATE: {self.client_id},"SSLClient","{self.remote_ip}",{self.remote_port},'
                f'{self.local_port},{int(self.state)},{self.pdp_ctx},{self.client_id},{self.access_mode},'
                f'"{at_port}",{self.ssl_ctx}').encode("latin-1")
        return self._state_line


class TransparentSession:
    """The port while it belongs to one client (SSL note 1.4): host bytes go to the server, less
    the ``+++`` escape (guard times: ``EscapeDetector``), server bytes go to the host."""

    def __init__(self, client: SslClient):
        self.client = client
        modem = client.modem
        self.escape = EscapeDetector(modem.escape_guard, modem.now)
        self._timer: "Timer | None" = None

    # OnlineSession ------------------------------------------------------------------------------

    def entered(self, modem: "Modem") -> None:
        client = self.client
        if client.received:
            modem.write_host(bytes(client.received))
            client.received.clear()
            client._resume_if_room()

    def ready_for_host(self) -> bool:
        return self.client.unsent < self.client.limits.send_buffer

    def feed_host(self, modem: "Modem", data: bytes) -> None:
        self._forward(self.escape.feed(data, modem.now))
        self._arm(modem)

    def leave(self, modem: "Modem") -> None:
        """+++ or DTR with AT&D1: command mode, the connection carries on in buffer access mode."""
        self._stop()
        # What the host sent before a DTR drop is still the connection's: a "+" held as the start
        # of a possible escape, and the bytes waiting for room in the send buffer.
        self._forward(self.escape.flush() + modem.take_input())
        client = self.client
        client.online = None
        client.access_mode = BUFFER
        modem.leave_online(OK)

    def hang_up(self, modem: "Modem") -> None:
        """DTR with AT&D2: the connection is closed and the port back in command mode."""
        self._stop()
        client = self.client
        sent_before_the_drop = self.escape.flush() + modem.take_input()
        if client.tls is not None and client.conn_id is not None:
            self._forward(sent_before_the_drop)  # ahead of close_notify, as an orderly close sends it
            client._send_ciphertext(client.tls.close_notify())
            modem.effect(ev.CloseTcp(client.conn_id))
        client._release()
        modem.leave_online(NO_CARRIER)

    # ---------------------------------------------------------------------------------------------

    def lost(self, result) -> None:
        """The connection ended under the host: NO CARRIER, and command mode (SSL note 3.5)."""
        self._stop()
        # Bytes the host sent that still waited for room in the send buffer go with the connection;
        # NO CARRIER tells the host so. Left in place they would be read as command lines.
        lost = len(self.client.modem.take_input())
        if lost:
            log.info("client %d: %d bytes from the host lost with the connection", self.client.client_id, lost)
        self.client.online = None
        self.client.modem.leave_online(result)

    def _forward(self, data: bytes) -> None:
        client = self.client
        if data and client.state is ClientState.CONNECTED and client.tls is not None:
            client.send(data)

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
        modem = self.client.modem
        if modem.online is not self:
            return
        released, escaped = self.escape.poll(modem.now)
        self._forward(released)
        if escaped:
            self.leave(modem)
        else:
            self._arm(modem)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
