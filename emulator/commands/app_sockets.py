"""The connection under the module's application stacks (HTTP(S), MQTT(S)): a socket of the socket
core that is plain TCP, or TLS on one of the SSL family's contexts made as AT+QSSLOPEN makes it
(``ecemu.commands.ssl_state.ContextTls``: the same version, suites, SNI, certificate checks,
session cache and negotiation timeout). Faults, the trace and the key log reach it as they reach
the SSL clients, since it is the same socket with the same layers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from .ssl_state import ContextTls, SslFamily
from ..core.inbox import DIGESTING, STACK, Inbox
from ..core.results import QiError
from ..core.sockets import AccessMode, OpenFailed, Phase, PlainStream, Socket, StreamLayer
from ..core.tls import TlsClient, TlsUnavailable

if TYPE_CHECKING:
    from ..core.timers import Timer

log = logging.getLogger(__name__)

# What an application stack handles of what arrived in one go (MQTT packets, HTTP events) before
# the rest waits for the event loop's next turn, the socket unread meanwhile: a flood of small
# packets (a QoS 0 storm, 100-Continue answers, 1-byte chunks) never holds every other modem,
# connection and timer up for more than a few milliseconds, and each costs the same however long
# the flood runs.
STEP = 128
# The next step is a timer this far ahead: the others get their turn first (seconds).
NEXT_TURN = 1e-6


class AppInbox(Inbox):
    """An application stack takes what arrives itself (MQTT packets, an HTTP response): its inbox
    holds no data, only the flow control, and hands the connection's end to the stack."""

    socket: "AppSocket"

    def closed_by_peer(self, pushing: bool) -> None:
        self.socket.peer_closed()

    def report_closed(self) -> None:
        self.socket.peer_closed()

    def push(self) -> None:
        self.socket.resume_if_room()

    def pause(self) -> None:
        """Stop reading from the server until ``resume`` (the stack holds enough)."""
        self.hold(STACK)

    def resume(self) -> None:
        self.lift(STACK)


class AppSocket(Socket):
    """A socket an application stack opens itself; ``family_name`` names it in the trace."""

    family_name = "app"
    inbox: AppInbox

    def __init__(self, family, client_id: int):
        super().__init__(family, client_id)
        self.inbox = AppInbox(self)
        self.tls_context: ContextTls | None = None
        self._negotiation_timer: Timer | None = None
        self._next_step: Timer | None = None

    # --- a bounded step at a time (STEP) ----------------------------------------------------------

    def go_on_later(self, step: Callable[[], None]) -> None:
        """The stack has done a step's work and more is there: ``step`` runs on the event loop's
        next turn; the socket is not read until the stack says ``caught_up``."""
        self.inbox.hold(DIGESTING)
        if self._next_step is None:
            modem = self.modem
            self._next_step = modem.call_at(modem.now + NEXT_TURN, lambda: self._step_due(step))

    def _step_due(self, step: Callable[[], None]) -> None:
        self._next_step = None
        if self.phase is not Phase.INITIAL:
            step()

    def caught_up(self) -> None:
        """Everything that arrived has been handled: read on."""
        self.inbox.lift(DIGESTING)

    # --- what the stack gives -------------------------------------------------------------------

    def peer_closed(self) -> None:
        """The server or the network ended the connection."""
        raise NotImplementedError

    def resume_if_room(self) -> None:
        """The port is idle: read from the server again if the stack has room."""

    def open_on(self, pdp_ctx: int, address: str, port: int, ssl_ctx: int | None) -> None:
        """Start connecting, over TLS on SSL context ``ssl_ctx`` unless it is None. The outcome comes
        through ``_report_open``; OpenFailed when the attempt cannot even start."""
        pdp = self._may_open(pdp_ctx)
        self.tls_context = None
        if ssl_ctx is not None:
            ssl = self.modem.families.get("ssl")
            assert isinstance(ssl, SslFamily)
            try:
                self.tls_context = ContextTls(ssl, ssl_ctx)
            except TlsUnavailable as exc:
                log.warning("%s %d: SSL context %d cannot be used: %s", self.family_name, self.client_id, ssl_ctx, exc)
                raise OpenFailed(QiError.CONNECT_FAILED, str(exc)) from None
        self._start_open(pdp, pdp_ctx, address, port, AccessMode.BUFFER)

    @property
    def tls(self) -> TlsClient | None:
        return self.layer if isinstance(self.layer, TlsClient) else None

    def _new_layer(self) -> StreamLayer:
        if self.tls_context is None:
            return PlainStream()
        modem = self.modem
        self._negotiation_timer = modem.call_at(modem.now + self.tls_context.settings.negotiatetime,
                                                self._negotiation_expired)
        return self.tls_context.layer(self.address, self.remote_port)

    def _negotiation_expired(self) -> None:
        self._negotiation_timer = None
        if self.phase is Phase.OPENING:
            log.warning("%s %d: handshake with %s:%d took longer than negotiatetime", self.family_name,
                        self.client_id, self.address, self.remote_port)
            self._open_failed(QiError.TIMEOUT)

    def _layer_up(self) -> None:
        self._cancel_negotiation_timer()
        tls = self.tls
        if tls is None or self.tls_context is None:
            return
        self.modem.observe("tls", client=self.client_id, family=self.family_name, event="established",
                           detail=tls.describe(), forgiven=list(tls.forgiven))
        log.info("%s %d: connected to %s:%d with %s", self.family_name, self.client_id, self.address,
                 self.remote_port, tls.describe())
        self.tls_context.established(tls)

    def _layer_failed(self, detail: str) -> None:
        self.modem.observe("tls", client=self.client_id, family=self.family_name, event="failed", detail=detail)
        log.warning("%s %d: TLS with %s:%d failed: %s", self.family_name, self.client_id, self.address,
                    self.remote_port, detail)

    def _gone_quietly(self) -> None:
        self._cancel_negotiation_timer()
        if self._next_step is not None:
            self._next_step.cancel()
            self._next_step = None

    def _cancel_negotiation_timer(self) -> None:
        if self._negotiation_timer is not None:
            self._negotiation_timer.cancel()
            self._negotiation_timer = None
