"""The SSL family's state: six SSL contexts and twelve clients (SSL note 2.2).

A client is a socket of the socket core (``ecemu.core.sockets``: life cycle, access modes,
buffers, flow control, transparent mode, closing) with TLS as its stream layer, spoken here, in the
core, by ``ecemu.core.tls``. What is the SSL family's own: the contexts' settings (AT+QSSLCFG),
the OpenSSL context and session cache per SSL context, the certificate files read from UFS at open
time, the negotiation timeout, and the names of its URCs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from ..core.results import QiError
from ..core.sockets import AccessMode, OpenFailed, Phase, Socket, SocketFamily
from ..core.tls import (
    ClientContext,
    ContextSettings,
    TlsClient,
    TlsUnavailable,
    build_context,
    is_ip_literal,
)
from ..core.ufs import strip_ufs_prefix

if TYPE_CHECKING:
    from ..core.modem import Modem
    from ..core.timers import Timer

log = logging.getLogger(__name__)

__all__ = ["ContextTls", "OpenFailed", "SslClient", "SslFamily", "SslSettings"]


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


class SslFamily(SocketFamily["SslClient"]):
    """``modem.families["ssl"]``: every SSL context and client of one module."""

    id_pool = "connectID"  # one set of socket IDs with the TCP/IP family (ecemu.commands.tcpip_state)

    def __init__(self, modem: "Modem"):
        limits = modem.profile.limits
        super().__init__(modem, [])
        self.clients = [SslClient(self, client_id) for client_id in range(limits.clients)]
        self.contexts = [SslSettings() for _ in range(limits.ssl_contexts)]
        # One OpenSSL context per SSL context ID and settings: sessions resume only on the
        # OpenSSL context that made them (REFERENCE.md "TLS engines").
        self._openssl: dict[int, tuple[ContextSettings, ClientContext]] = {}
        self.sessions: dict[tuple[int, str, int], object] = {}
        # The last +QSSLSTATE lines and the fields they show: hosts poll AT+QSSLSTATE, and making
        # twelve lines afresh each time was a third of its answer's work.
        self._state_lines: list[bytes] = []
        self._state_lines_of: list[tuple] | None = None

    def client(self, client_id: int) -> "SslClient":
        return self.clients[client_id]

    def state_lines(self) -> list[bytes]:
        """+QSSLSTATE's lines, one per client in use (SSL note 2.2.6), made again only when a
        field one of them shows has changed."""
        shown = []
        for client in self.clients:
            conn = client.connection
            shown.append((conn.remote_ip, conn.remote_port, conn.local_port, conn.phase, conn.pdp_ctx,
                          client.access_mode, client.ssl_ctx))
        if shown != self._state_lines_of:
            self._state_lines_of = shown
            initial = Phase.INITIAL  # looked up once: an enum member costs a hook call each time (3.11)
            self._state_lines = [c.state_line() for c in self.clients if c.connection.phase is not initial]
        return list(self._state_lines)

    def openssl_context(self, ctx_id: int, settings: ContextSettings) -> "ClientContext":
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


class ContextTls:
    """TLS on one SSL context for one connection, made as AT+QSSLOPEN makes it (SSL note 2.2.1,
    2.2.2, chapter 4): the context's settings as they are at open time, its certificate files read
    from UFS then, the OpenSSL context and session cache of that SSL context ID, the certificate
    checks, SNI. The SSL clients use it, and so do HTTP(S) (AT+QHTTPCFG="sslctxid") and MQTT(S)
    (AT+QMTCFG="ssl"): one TLS path for every family. Raises TlsUnavailable when the context cannot
    be used (a certificate file missing from UFS ...).

    It is the socket's ``LayerMaker``: it makes the TLS client, runs the negotiation timer
    (<negotiatetime>) and tells the trace and the log how the handshake went, for ``client_id``
    of ``family_name`` (None: the SSL family's own clients)."""

    def __init__(self, ssl: SslFamily, ctx_id: int, client_id: int, family_name: str | None = None):
        self.ssl = ssl
        self.ctx_id = ctx_id
        self.settings = replace(ssl.contexts[ctx_id])  # as they are now, at open time
        self.context = ssl.openssl_context(ctx_id, self._context_settings())
        self._session_key: tuple[int, str, int] | None = None
        self._trace: dict[str, object] = {"client": client_id}
        if family_name is not None:
            self._trace["family"] = family_name
        self._label = f"{family_name or 'client'} {client_id}"
        self.tls: TlsClient | None = None
        self._negotiation_timer: Timer | None = None

    def _context_settings(self) -> ContextSettings:
        """The OpenSSL side of the settings, with the certificate files read from UFS now.

        secllevel 2 is "server and client authentication if requested by the remote server" (SSL
        note 2.2.1); chapter 4 asks for the client certificate and key only where the server has
        "SSLVerifyClient required". So the client files are offered when both are in UFS, and
        their absence is not a failure: the handshake goes on without them, and fails (566) only
        when the server asks for a certificate and gets none (REFERENCE.md "SSL, as real modules
        show it"). Host code that sets 2 to mean "check the server" connects, as on the module.
        """
        settings = self.settings
        verify = settings.secllevel >= 1
        ca = self._read_file(settings.cacert, "CA certificate (cacert)") if verify else None
        cert = key = None
        if settings.secllevel == 2:
            cert = self._read_optional(settings.clientcert)
            key = self._read_optional(settings.clientkey)
            if cert is None or key is None:
                log.info("SSL context %d: secllevel 2 without %s in UFS: no client certificate is offered",
                         self.ctx_id, "clientcert" if cert is None else "clientkey")
                cert = key = None
        return ContextSettings(settings.sslversion, settings.ciphersuite, verify, ca, cert, key)

    def _read_optional(self, path: str) -> bytes | None:
        try:
            return self.ssl.modem.files.read(strip_ufs_prefix(path))
        except (FileNotFoundError, OSError):
            return None

    def _read_file(self, path: str, what: str) -> bytes:
        try:
            return self.ssl.modem.files.read(strip_ufs_prefix(path))
        except (FileNotFoundError, OSError):
            # REFERENCE.md (seen): secllevel 1 with no CA file fails the open as 566.
            raise TlsUnavailable(f"{what} {path!r} is not in UFS") from None

    # LayerMaker ---------------------------------------------------------------------------------

    def make(self, address: str, port: int, timed_out: Callable[[], None]) -> TlsClient:
        """The TLS client for a connection to ``address`` (as the host gave it) just made; the
        handshake has <negotiatetime> seconds, then ``timed_out``."""
        modem = self.ssl.modem
        self.tls = self._client(address, port)
        self._negotiation_timer = modem.call_at(modem.now + self.settings.negotiatetime, timed_out)
        return self.tls

    def up(self) -> None:
        """The handshake completed: the trace says with what; its session is kept for the next
        connection, when caching."""
        self.stop()
        tls = self.tls
        assert tls is not None
        self.ssl.modem.observe("tls", **self._trace, event="established", detail=tls.describe(),
                               forgiven=list(tls.forgiven))
        log.info("%s: connected with %s%s", self._label, tls.describe(),
                 f" (forgiven: {'; '.join(tls.forgiven)})" if tls.forgiven else "")
        if self._session_key is not None:
            self.ssl.sessions[self._session_key] = tls.session

    def failed(self, detail: str, opening: bool) -> None:
        self.ssl.modem.observe("tls", **self._trace, event="failed", detail=detail)
        if opening:
            log.warning("%s: TLS handshake failed: %s", self._label, detail)
        else:
            log.warning("%s: connection broken: %s", self._label, detail)

    def stop(self) -> None:
        if self._negotiation_timer is not None:
            self._negotiation_timer.cancel()
            self._negotiation_timer = None

    def _client(self, address: str, port: int) -> TlsClient:
        """The TLS client for a connection to ``address`` (as the host gave it) just made."""
        settings = self.settings
        modem = self.ssl.modem
        policy = None
        if settings.secllevel >= 1:
            from ..core.tls_verify import VerifyPolicy  # with cryptography, when first verifying

            policy = VerifyPolicy(
                server_name=address,
                at=modem.clock.utc(modem.now),
                check_time=not settings.ignorelocaltime,
                forgive_chain=bool(settings.ignoremulticertchainverify),
                forgive_signature=bool(settings.ignoreinvalidcertsign),
            )
        # SNI only for names (SSL note 1.6; an IP literal is never a server name, RFC 6066 3).
        sni = address if settings.sni and not is_ip_literal(address) else None
        session = None
        if settings.session_cache:
            self._session_key = (self.ctx_id, address, port)
            session = self.ssl.sessions.get(self._session_key)
        return TlsClient(self.context, policy, sni=sni, session=session)


class SslClient(Socket):
    """One <clientID>: a socket with TLS on it (its ``layer_maker``, a ``ContextTls``)."""

    OPEN_URC = "+QSSLOPEN"
    EVENT_URC = "+QSSLURC"

    family: SslFamily

    def __init__(self, family: SslFamily, client_id: int):
        super().__init__(family, client_id)
        self.ssl_ctx = 0

    # --- opening (SSL note 2.2.2) ------------------------------------------------------------

    def open_tls(self, pdp_ctx: int, ssl_ctx: int, address: str, port: int, access_mode: AccessMode) -> None:
        """Start connecting; the result comes later (URC, or CONNECT/ERROR in transparent mode).
        Raises OpenFailed when the attempt cannot even start."""
        connection = self.connection
        pdp = connection.may_open(pdp_ctx)
        try:
            tls = ContextTls(self.family, ssl_ctx, self.client_id)
        except TlsUnavailable as exc:
            log.warning("client %d: SSL context %d cannot be used: %s", self.client_id, ssl_ctx, exc)
            raise OpenFailed(QiError.CONNECT_FAILED, str(exc)) from None
        self.ssl_ctx, connection.layer_maker, self.access_mode = ssl_ctx, tls, access_mode
        connection.open(pdp, pdp_ctx, address, port)

    # --- AT+QSSLSTATE (SSL note 2.2.6) ----------------------------------------------------------

    def state_line(self) -> bytes:
        """One +QSSLSTATE line (SSL note 2.2.6). <serverID> is reserved; the note's and the seen
        examples show the client ID there, so it does too."""
        conn = self.connection
        at_port = self.modem.profile.defaults.at_port
        return (f'+QSSLSTATE: {self.client_id},"SSLClient","{conn.remote_ip}",{conn.remote_port},'
                f'{conn.local_port},{int(conn.shown_state)},{conn.pdp_ctx},{self.client_id},{int(self.access_mode)},'
                f'"{at_port}",{self.ssl_ctx}').encode("latin-1")
