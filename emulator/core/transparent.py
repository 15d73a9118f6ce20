"""Transparent mode (SSL note 1.4): the port belongs to one socket; host bytes go to its server,
less the ``+++`` escape with its guard times (``EscapeDetector``), and server bytes go to the host."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from .escape import EscapeDetector
from .inbox import SocketSide
from .results import NO_CARRIER, OK, FinalResult

if TYPE_CHECKING:
    from .modem import Modem
    from .timers import Timer

log = logging.getLogger("ecemu.core.sockets")


class OnlineSocket(SocketSide, Protocol):
    """What a transparent session needs of its socket (``ecemu.core.sockets.Socket``)."""

    @property
    def unsent(self) -> int:
        """Bytes handed to the network and not yet drained."""

    def take_received(self) -> bytes:
        """Everything received and not yet taken: it goes to the host first."""

    def send(self, data: bytes) -> None: ...

    def left_transparent(self) -> None:
        """+++ or DTR with AT&D1: the connection goes on in buffer access mode."""

    def hang_up(self, before_close: bytes) -> None:
        """DTR with AT&D2: ``before_close`` goes out, then the connection closes."""

    def session_ended(self) -> None:
        """The connection ended under the host: the port is no longer the socket's."""


class TransparentSession:
    """The port while it belongs to one socket (SSL note 1.4): host bytes go to the server, less
    the ``+++`` escape (guard times: ``EscapeDetector``), server bytes go to the host."""

    def __init__(self, socket: OnlineSocket):
        self.socket = socket
        modem = socket.modem
        self.escape = EscapeDetector(modem.escape_guard, modem.now)
        self._timer: Timer | None = None

    # OnlineSession ------------------------------------------------------------------------------

    def entered(self, modem: "Modem") -> None:
        data = self.socket.take_received()
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
        self.socket.send(self.escape.flush() + modem.host.take_input())
        self.socket.left_transparent()
        modem.host.leave_online(OK)

    def hang_up(self, modem: "Modem") -> None:
        """DTR with AT&D2: the connection is closed and the port back in command mode."""
        self._stop()
        self.socket.hang_up(self.escape.flush() + modem.host.take_input())
        modem.host.leave_online(NO_CARRIER)

    # ---------------------------------------------------------------------------------------------

    def lost(self, result: FinalResult) -> None:
        """The connection ended under the host: NO CARRIER, and command mode (SSL note 3.5)."""
        self._stop()
        modem = self.socket.modem
        # Bytes the host sent that still waited for room in the send buffer go with the connection;
        # NO CARRIER tells the host so. Left in place they would be read as command lines.
        lost = len(modem.host.take_input())
        if lost:
            log.info("client %d: %d bytes from the host lost with the connection", self.socket.client_id, lost)
        self.socket.session_ended()
        modem.host.leave_online(result)

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
        if modem.host.online is not self:
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
