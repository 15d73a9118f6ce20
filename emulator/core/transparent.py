"""Transparent mode (SSL note 1.4): the port belongs to one socket; host bytes go to its server,
less the ``+++`` escape with its guard times (``EscapeDetector``), packed as AT+QICFG's
"transpktsize" and "transwaittm" say (``Packing``), and server bytes go to the host."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .escape import EscapeDetector
from .inbox import SocketSide
from .results import NO_CARRIER, OK, FinalResult

if TYPE_CHECKING:
    from .modem import Modem
    from .timers import Timer

log = logging.getLogger("ecemu.core.sockets")


@dataclass(frozen=True)
class Packing:
    """How transparent mode packs the host's bytes into sends (TCP/IP note 2.1.15, AT+QICFG;
    REFERENCE.md "TCP/IP"): a send of ``packet_size`` bytes ("transpktsize", 1-1460) as soon as
    that many have come; fewer go once ``wait`` seconds ("transwaittm", 0-20 in 100 ms) have
    passed. The note says only that data shorter than transpktsize is sent "after exceeding the
    time specified by transwaittm"; chosen: the time counts from the first byte of the send,
    so no byte waits longer than ``wait`` however the host trickles, and 0 sends whatever has
    come at once. A send is one TLS record on an SSL connection."""

    packet_size: int = 1024
    wait: float = 0.2


@runtime_checkable
class PackingSettings(Protocol):
    """Whose AT+QICFG settings say how transparent mode packs (the TCP/IP family's state); the
    SSL commands have no setting of their own, so their transparent mode follows the same (chosen:
    one transparent mode in the module, whichever command opened the connection)."""

    def transparent_packing(self) -> Packing: ...


class OnlineSocket(SocketSide, Protocol):
    """What a transparent session needs of its socket (``ecemu.core.sockets.Socket``)."""

    @property
    def unsent(self) -> int:
        """Bytes handed to the network and not yet drained."""

    def take_received(self) -> bytes:
        """Everything received and not yet taken: it goes to the host first."""

    def send_packets(self, data: bytes, packet_size: int) -> None:
        """``data`` in sends of ``packet_size`` bytes (a TLS record each), handed to the network
        together."""

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
        settings = modem.families.get("tcpip")
        # Read at each entry (AT+QIOPEN, AT+QISWTMD, ATO): the port is the socket's until it
        # leaves, so no AT+QICFG of its own can come in between.
        self.packing = settings.transparent_packing() if isinstance(settings, PackingSettings) else Packing()
        self._collected = bytearray()  # the host's bytes not sent yet: less than a packet
        self._collected_since = 0.0  # when the first of them came

    # OnlineSession ------------------------------------------------------------------------------

    def entered(self, modem: "Modem") -> None:
        data = self.socket.take_received()
        if data:
            modem.write_host(data)

    def ready_for_host(self) -> bool:
        # The bytes collected for the next packet are in the module's send buffer too.
        return self.socket.unsent + len(self._collected) < self.socket.limits.send_buffer

    def feed_host(self, modem: "Modem", data: bytes) -> None:
        self._collect(self.escape.feed(data, modem.now), modem.now)
        self._arm(modem)

    def leave(self, modem: "Modem") -> None:
        """+++ or DTR with AT&D1: command mode, the connection carries on in buffer access mode."""
        self._stop()
        # What the host sent before is still the connection's, and goes now, in packets: the bytes
        # collected for the next packet (after +++ they have waited the guard time already; the
        # note does not say, chosen: the module does not keep data of a socket that is no longer
        # the port's for a wait of its own), and, after a DTR drop, a "+" held as the start of a
        # possible escape and the bytes waiting for room in the send buffer.
        self._collect(self.escape.flush() + modem.host.take_input(), modem.now)
        self._send_collected()
        self.socket.left_transparent()
        modem.host.leave_online(OK)

    def hang_up(self, modem: "Modem") -> None:
        """DTR with AT&D2: the connection is closed and the port back in command mode."""
        self._stop()
        self._collect(self.escape.flush() + modem.host.take_input(), modem.now)
        self._send_collected()  # ahead of the close, as leave() sends it
        self.socket.hang_up(b"")
        modem.host.leave_online(NO_CARRIER)

    # ---------------------------------------------------------------------------------------------

    def lost(self, result: FinalResult) -> None:
        """The connection ended under the host: NO CARRIER, and command mode (SSL note 3.5)."""
        self._stop()
        modem = self.socket.modem
        # Bytes the host sent that still waited for room in the send buffer go with the connection;
        # NO CARRIER tells the host so. Left in place they would be read as command lines.
        lost = len(self._collected) + len(modem.host.take_input())
        self._collected.clear()
        if lost:
            log.info("client %d: %d bytes from the host lost with the connection", self.socket.client_id, lost)
        self.socket.session_ended()
        modem.host.leave_online(result)

    # --- packing (``Packing``) ---------------------------------------------------------------------

    def _collect(self, data: bytes, now: float) -> None:
        """The host's bytes, certain to be data, towards the server: whole packets go at once, the
        rest waits for more or for the packing's wait."""
        if not data:
            return
        collected = self._collected
        if not collected:
            self._collected_since = now
        collected += data
        packing = self.packing
        if packing.wait <= 0:
            self._send_collected()
            return
        whole = len(collected) - len(collected) % packing.packet_size
        if whole:
            self._send_packets(collected[:whole])
            del collected[:whole]
            self._collected_since = now  # what is left came now, with the bytes that filled a packet

    def _send_collected(self) -> None:
        if self._collected:
            self._send_packets(self._collected)
            self._collected = bytearray()

    def _send_packets(self, data: bytearray) -> None:
        self.socket.send_packets(bytes(data), self.packing.packet_size)

    def _packing_deadline(self) -> float | None:
        return self._collected_since + self.packing.wait if self._collected else None

    # --- the timer: the escape's guard times and the packing's wait -------------------------------

    def _arm(self, modem: "Modem") -> None:
        deadline = self.escape.deadline()
        packing = self._packing_deadline()
        if packing is not None and (deadline is None or packing < deadline):
            deadline = packing
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
        now = modem.now
        released, escaped = self.escape.poll(now)
        self._collect(released, now)
        if escaped:
            self.leave(modem)
            return
        # Compared with the very sum _packing_deadline() gives, as EscapeDetector.poll does.
        if self._collected and now >= self._collected_since + self.packing.wait:
            self._send_collected()
        self._arm(modem)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
