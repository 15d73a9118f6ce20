"""The connection under the module's application stacks (HTTP(S), MQTT(S)): a socket of the socket
core that is plain TCP, or TLS on one of the SSL family's contexts made as AT+QSSLOPEN makes it
(``ecemu.commands.ssl_state.ContextTls``: the same version, suites, SNI, certificate checks,
session cache and negotiation timeout). Faults, the trace and the key log reach it as they reach
the SSL clients, since it holds the same connection with the same layers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from .ssl_state import ContextTls, SslFamily
from ..core.read_gate import DIGESTING, STACK
from ..core.results import QiError
from ..core.sockets import Connection, OpenFailed, Phase, SocketFamily
from ..core.tls import TlsUnavailable

if TYPE_CHECKING:
    from ..core.modem import Modem
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


class AppSocket:
    """The socket an application stack opens itself: it holds its connection (``connection``,
    whose ``ConnectionOwner`` it is); the stack takes what arrives (MQTT packets, an HTTP
    response) and holds the connection's ``gate`` while the host has not taken what it made of
    it; no inbox, no access modes. ``family_name`` names it in the trace. A stack's socket gives
    ``arrived``, ``peer_gone`` and ``opened``."""

    family_name = "app"

    def __init__(self, family: "SocketFamily[AppSocket]", client_id: int):
        self.family = family
        self.client_id = client_id
        self.connection = Connection(self, family)
        self._next_step: Timer | None = None

    @property
    def modem(self) -> "Modem":
        return self.family.modem

    # --- the host's pace ----------------------------------------------------------------------------

    def pause(self) -> None:
        """Stop reading from the server until ``resume`` (the stack holds what it can)."""
        self.connection.gate.hold(STACK)

    def resume(self) -> None:
        self.connection.gate.lift(STACK)

    def when_port_idle(self) -> bool:
        self.resume_if_room()
        return self.connection.gate.waits_for_idle

    def resume_if_room(self) -> None:
        """The port is idle: read from the server again if the stack has room."""

    # --- a bounded step at a time (STEP) ----------------------------------------------------------

    def go_on_later(self, step: Callable[[], None]) -> None:
        """The stack has done a step's work and more is there: ``step`` runs on the event loop's
        next turn; the socket is not read until the stack says ``caught_up``."""
        self.connection.gate.hold(DIGESTING)
        if self._next_step is None:
            modem = self.modem
            self._next_step = modem.call_at(modem.now + NEXT_TURN, lambda: self._step_due(step))

    def _step_due(self, step: Callable[[], None]) -> None:
        self._next_step = None
        if self.connection.phase is not Phase.INITIAL:
            step()

    def caught_up(self) -> None:
        """Everything that arrived has been handled: read on."""
        self.connection.gate.lift(DIGESTING)

    # --- opening and closing ----------------------------------------------------------------------

    def open_on(self, pdp_ctx: int, address: str, port: int, ssl_ctx: int | None) -> None:
        """Start connecting, over TLS on SSL context ``ssl_ctx`` unless it is None. The outcome comes
        through ``opened``; OpenFailed when the attempt cannot even start."""
        connection = self.connection
        pdp = connection.may_open(pdp_ctx)
        connection.layer_maker = None
        if ssl_ctx is not None:
            ssl = self.modem.families.get("ssl")
            assert isinstance(ssl, SslFamily)
            try:
                connection.layer_maker = ContextTls(ssl, ssl_ctx, self.client_id, self.family_name)
            except TlsUnavailable as exc:
                log.warning("%s %d: SSL context %d cannot be used: %s", self.family_name, self.client_id, ssl_ctx, exc)
                raise OpenFailed(QiError.CONNECT_FAILED, str(exc)) from None
        connection.open(pdp, pdp_ctx, address, port)

    def send(self, data: bytes) -> None:
        self.connection.send(data)

    def close(self, timeout: float) -> None:
        self.connection.close(timeout)

    # --- what the connection tells (ConnectionOwner) ----------------------------------------------

    def arrived(self, data: bytes) -> None:
        """The server's data: the stack's."""
        raise NotImplementedError

    def peer_gone(self) -> None:
        """The server or the network ended the connection: the stack's."""
        raise NotImplementedError

    def opened(self, code: QiError) -> None:
        """How the open went, in the stack's own result codes."""
        raise NotImplementedError

    def drained(self) -> None:
        """Nothing waits for the send buffer to empty."""

    def host_close_done(self) -> None:
        """A stack closes at once: there is no close to finish."""

    def released(self) -> None:
        if self._next_step is not None:
            self._next_step.cancel()
            self._next_step = None

    def pdp_down(self, by_network: bool) -> None:
        if self.connection.pdp_down(by_network):
            self.connection.release()
