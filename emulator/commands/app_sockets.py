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
from ..core.connection import Connection
from ..core.read_gate import DIGESTING, STACK
from ..core.results import QiError
from ..core.sockets import AccessMode, OpenFailed, Phase, SocketFamily
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


class AppSocket(Connection):
    """The connection an application stack opens itself: the stack takes what arrives (MQTT
    packets, an HTTP response) and holds the connection's ``gate`` while the host has not taken
    what it made of it; no inbox, no access modes. ``family_name`` names it in the trace."""

    family_name = "app"

    def __init__(self, family: "SocketFamily[AppSocket]", client_id: int):
        super().__init__(family, client_id)
        self._next_step: Timer | None = None

    # --- the host's pace ----------------------------------------------------------------------------

    def pause(self) -> None:
        """Stop reading from the server until ``resume`` (the stack holds what it can)."""
        self.gate.hold(STACK)

    def resume(self) -> None:
        self.gate.lift(STACK)

    def when_port_idle(self) -> bool:
        self.resume_if_room()
        return self.gate.waits_for_idle

    # --- a bounded step at a time (STEP) ----------------------------------------------------------

    def go_on_later(self, step: Callable[[], None]) -> None:
        """The stack has done a step's work and more is there: ``step`` runs on the event loop's
        next turn; the socket is not read until the stack says ``caught_up``."""
        self.gate.hold(DIGESTING)
        if self._next_step is None:
            modem = self.modem
            self._next_step = modem.call_at(modem.now + NEXT_TURN, lambda: self._step_due(step))

    def _step_due(self, step: Callable[[], None]) -> None:
        self._next_step = None
        if self.phase is not Phase.INITIAL:
            step()

    def caught_up(self) -> None:
        """Everything that arrived has been handled: read on."""
        self.gate.lift(DIGESTING)

    # --- what the stack gives -------------------------------------------------------------------

    def peer_closed(self) -> None:
        """The server or the network ended the connection."""
        raise NotImplementedError

    def _closed_under_host(self) -> None:
        self.peer_closed()

    def resume_if_room(self) -> None:
        """The port is idle: read from the server again if the stack has room."""

    def open_on(self, pdp_ctx: int, address: str, port: int, ssl_ctx: int | None) -> None:
        """Start connecting, over TLS on SSL context ``ssl_ctx`` unless it is None. The outcome comes
        through ``_report_open``; OpenFailed when the attempt cannot even start."""
        pdp = self._may_open(pdp_ctx)
        self.layer_maker = None
        if ssl_ctx is not None:
            ssl = self.modem.families.get("ssl")
            assert isinstance(ssl, SslFamily)
            try:
                self.layer_maker = ContextTls(ssl, ssl_ctx, self.client_id, self.family_name)
            except TlsUnavailable as exc:
                log.warning("%s %d: SSL context %d cannot be used: %s", self.family_name, self.client_id, ssl_ctx, exc)
                raise OpenFailed(QiError.CONNECT_FAILED, str(exc)) from None
        self._start_open(pdp, pdp_ctx, address, port, AccessMode.BUFFER)

    @property
    def tls(self) -> TlsClient | None:
        return self.layer if isinstance(self.layer, TlsClient) else None

    def _gone_quietly(self) -> None:
        if self._next_step is not None:
            self._next_step.cancel()
            self._next_step = None
