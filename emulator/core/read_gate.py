"""Whether a socket's connection is read from its server: nothing received is ever dropped, so a
socket that cannot take more stops reading (``PauseReading``) and TCP's flow control does the rest.

Several reasons can stop it at once; each is held and lifted on its own, and the connection is
read again once none is left. Every socket has one gate (``Connection.gate``); the inbox holds it
when the host does not read, an application stack when it holds what it can.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from . import events as ev

if TYPE_CHECKING:
    from .modem import Modem

# Why a socket is not read from its server.
FULL = "full"  # the module's receive buffer is full: the host has not read it
STACK = "stack"  # the application stack (MQTT, HTTP) holds what it can: the host has not taken it
SENDING = "sending"  # what the module answers the server (acks, TLS) waits: the server does not read
DIGESTING = "digesting"  # the stack works through what came, a bounded part per turn (fairness)
# The reasons the port's next idle moment may lift (the family's port_idle hook: the host may have
# taken something by then).
LIFTED_WHEN_IDLE = frozenset((FULL, STACK))


class GateOwner(Protocol):
    """What a gate needs of its connection (``Connection``): its conn_id, and a way to be looked at
    when idle."""

    @property
    def modem(self) -> "Modem": ...

    @property
    def conn_id(self) -> int | None: ...

    @property
    def is_open(self) -> bool: ...

    def wait_for_idle(self) -> None:
        """Be looked at when the port is next idle (``SocketFamily.port_idle``)."""


class ReadGate:
    """The reasons a socket's connection is not read now (``PauseReading`` while there is any)."""

    __slots__ = ("owner", "holds")

    def __init__(self, owner: GateOwner):
        self.owner = owner
        self.holds: set[str] = set()

    @property
    def paused(self) -> bool:
        return bool(self.holds)

    @property
    def waits_for_idle(self) -> bool:
        """A reason the port's next idle moment may lift is held."""
        return not self.holds.isdisjoint(LIFTED_WHEN_IDLE)

    def hold(self, reason: str) -> None:
        """Stop reading from the server for ``reason`` (until ``lift``)."""
        owner = self.owner
        conn_id = owner.conn_id
        if reason in self.holds or conn_id is None:
            return
        self.holds.add(reason)
        if reason in LIFTED_WHEN_IDLE:
            owner.wait_for_idle()
        if len(self.holds) == 1:
            owner.modem.effect(ev.PauseReading(conn_id))

    def lift(self, reason: str) -> None:
        if reason not in self.holds:
            return
        self.holds.discard(reason)
        owner = self.owner
        conn_id = owner.conn_id
        if not self.holds and conn_id is not None and owner.is_open:
            owner.modem.effect(ev.ResumeReading(conn_id))

    def clear(self) -> None:
        """The connection is gone: nothing holds it any more."""
        self.holds.clear()
