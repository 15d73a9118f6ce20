"""What a socket received and the host has not taken yet, delivered as its access mode says
(SSL note 1.4, 2.2.4, 2.3.1; Quectel TCP/IP note), with flow control.

Buffer access: the data waits with one ``"recv"`` URC until the host has read it all. Direct push:
``"recv",<id>,<len>`` URCs carry it whenever the port is idle and DTR is up; a ``"closed"`` URC
waits behind data still to be pushed. Transparent mode bypasses the inbox (the socket writes to the
host). Nothing is dropped: a full inbox pauses the connection until the host has taken enough.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING, Protocol

from .read_gate import FULL, ReadGate

if TYPE_CHECKING:
    from .modem import Modem
    from ..profile import Limits

# Below this share of the buffer limit a paused socket reads from the server again.
RESUME_FRACTION = 0.5


class AccessMode(enum.IntEnum):
    """<access_mode> (SSL note 2.2.2; TCP/IP note AT+QIOPEN)."""

    BUFFER = 0
    DIRECT_PUSH = 1
    TRANSPARENT = 2



class SocketSide(Protocol):
    """What the parts of a socket the host reads (its inbox, its transparent session) know of it:
    the modem it says things through, its limits and its ID."""

    @property
    def modem(self) -> "Modem": ...

    @property
    def limits(self) -> "Limits": ...

    @property
    def client_id(self) -> int: ...


class InboxOwner(SocketSide, Protocol):
    """What an inbox needs of its socket (``ecemu.core.sockets.Socket``): how the host reads it now."""

    @property
    def access_mode(self) -> "AccessMode": ...

    @property
    def online(self) -> object | None:
        """The transparent session while the port is the socket's (the inbox is bypassed)."""

    EVENT_URC: str  # "recv" and "closed" come under this name

    def wait_for_idle(self) -> None:
        """Be looked at when the port is next idle (``SocketFamily.port_idle``)."""


class Inbox:
    """A socket's received data the host has not taken; it holds the socket's ``gate`` while full."""

    def __init__(self, socket: InboxOwner, gate: ReadGate):
        self.socket = socket
        self.gate = gate
        self.data = bytearray()  # unread (buffer) or unpushed (direct push): never above the buffer
        # Arrived with the last delivery past the buffer's size: not yet in the module's buffer (as
        # bytes a TCP stack holds unacknowledged), moved in as the host takes data. The network
        # delivers nothing once the socket is paused, so this is at most one delivery.
        self.backlog = bytearray()
        self.recv_reported = False  # a "recv" URC is out and the inbox has not been emptied since
        self.closed_due = False  # a "closed" URC waits behind direct push data

    @property
    def waiting(self) -> bool:
        """Anything for ``push`` to do."""
        return bool(self.data) or self.closed_due or self.gate.waits_for_idle

    @property
    def limit(self) -> int:
        return self.socket.limits.recv_buffer

    def add(self, data: bytes, pushing: bool) -> None:
        room = self.limit - len(self.data)
        if self.backlog or len(data) > room:
            self.backlog += data
            self._refill()
        else:
            self.data += data
        self.socket.wait_for_idle()
        if pushing:
            self.push()
        elif self.data and not self.recv_reported:
            self.report_recv()
        self._pause_if_full()

    def _refill(self) -> None:
        """Move what the buffer has room for from the backlog into it."""
        backlog = self.backlog
        if backlog:
            room = self.limit - len(self.data)
            if room > 0:
                self.data += backlog[:room]
                del backlog[:room]

    def report_recv(self) -> None:
        """Buffer access mode's "recv" (SSL note 2.3.1), once until the inbox has been emptied."""
        self.recv_reported = True
        sock = self.socket
        sock.modem.emit_urc(f'{sock.EVENT_URC}: "recv",{sock.client_id}')

    def report_closed(self) -> None:
        """SSL note 2.3.2."""
        sock = self.socket
        sock.modem.emit_urc(f'{sock.EVENT_URC}: "closed",{sock.client_id}')

    def closed_by_peer(self, pushing: bool) -> None:
        """The "closed" URC now, or behind the data still to be pushed."""
        if pushing and self.data:
            self.closed_due = True
            self.socket.wait_for_idle()
            self.push()
        else:
            self.report_closed()

    def read(self, length: int) -> bytes:
        """The first ``length`` bytes, for the host's read command."""
        data = bytes(self.data[:length])
        del self.data[:length]
        self._refill()
        if not self.data:
            # Quectel's TCP/IP notes: no new "recv" URC until everything received has been read.
            self.recv_reported = False
        elif not self.recv_reported and self.socket.access_mode is AccessMode.BUFFER:
            self.report_recv()  # what the backlog moved in is news to a host that emptied the buffer
        self._resume_if_room()
        return data

    def take_all(self) -> bytes:
        data = bytes(self.data + self.backlog)
        if data:
            self.data.clear()
            self.backlog.clear()
            self._resume_if_room()
        return data

    def push(self) -> None:
        """Direct push: URCs of up to recv_max bytes while the port is idle, then a held closed URC."""
        sock = self.socket
        if sock.online is not None:
            return
        modem = sock.modem
        # Not while DTR is low: no host has the port, and data pushed now would be lost without a
        # word. It waits, as in the buffer, and goes out at the first idle moment once DTR is back
        # (after the host's first command: a host opening the port flushes what came before).
        # Nor while the host does not take what the module already said (its output is full):
        # the data waits in the buffer, which then fills and stops the socket being read.
        pushing = sock.access_mode is AccessMode.DIRECT_PUSH
        while pushing and self.data and modem.idle and modem.dtr and not modem.output_blocked:
            # Everything in the buffer goes as one block, a URC of at most recv_max bytes after
            # another with one CR LF between them: an EC200U pushed 2501 bytes as "recv",0,1500, the
            # data, CR LF, "recv",0,1001, the data, CR LF (REFERENCE.md "TCP/IP", seen). What the
            # backlog then moves into the buffer is the next block.
            lines: list[bytes] = []
            while self.data:
                lines.extend(self._next_push())
            modem.emit_urc(*lines)
            self._refill()
        if self.closed_due and not (pushing and self.data):
            self.closed_due = False
            self.report_closed()
        self._resume_if_room()

    def _next_push(self) -> tuple[bytes, bytes]:
        """The next direct push URC's header and data: up to recv_max bytes of the stream."""
        sock = self.socket
        chunk = bytes(self.data[: sock.limits.recv_max])
        del self.data[: len(chunk)]
        return f'{sock.EVENT_URC}: "recv",{sock.client_id},{len(chunk)}'.encode(), chunk

    def clear(self) -> None:
        self.data.clear()
        self.backlog.clear()
        self.recv_reported = self.closed_due = False

    def _pause_if_full(self) -> None:
        if len(self.data) + len(self.backlog) >= self.limit:
            self.gate.hold(FULL)

    def _resume_if_room(self) -> None:
        if FULL in self.gate.holds and len(self.data) + len(self.backlog) < self.limit * RESUME_FRACTION:
            self.gate.lift(FULL)


class DatagramOwner(InboxOwner, Protocol):
    @property
    def bound_only(self) -> bool:
        """A "UDP SERVICE": its push URCs name each datagram's sender."""


class DatagramInbox(Inbox):
    """A UDP socket's inbox: each datagram keeps its bounds and its sender. A read takes at most
    one datagram (what a shorter read leaves of it stays for the next, with its sender); a direct
    push URC carries one, and names its sender for a bound-only socket (a "UDP SERVICE"). UDP has
    no flow control: a datagram that does not fit is dropped (``fits``), never paused for."""

    socket: "DatagramOwner"

    def __init__(self, socket: "DatagramOwner", gate: ReadGate):
        super().__init__(socket, gate)
        self.bounds: deque[list] = deque()  # [sender ip, sender port, bytes left] per datagram

    def fits(self, size: int) -> bool:
        return len(self.data) + size <= self.socket.limits.recv_buffer

    def sender(self, ip: str, port: int, size: int) -> None:
        """The next ``size`` bytes added are one datagram from ip:port."""
        self.bounds.append([ip, port, size])

    def read_datagram(self, length: int) -> tuple[bytes, str, int]:
        if not self.bounds:
            return b"", "", 0
        head = self.bounds[0]
        data = self.read(min(length, head[2]))
        head[2] -= len(data)
        if head[2] == 0:
            self.bounds.popleft()
        return data, head[0], head[1]

    def take_all(self) -> bytes:
        self.bounds.clear()
        return super().take_all()

    def clear(self) -> None:
        self.bounds.clear()
        super().clear()

    def _next_push(self) -> tuple[bytes, bytes]:
        sock = self.socket
        ip, port, size = self.bounds.popleft()
        chunk = bytes(self.data[:size])
        del self.data[:size]
        header = f'{sock.EVENT_URC}: "recv",{sock.client_id},{len(chunk)}'
        if sock.bound_only:
            header += f',"{ip}",{port}'
        return header.encode(), chunk

    def _pause_if_full(self) -> None:
        """Nothing to pause: ``fits`` keeps the inbox within its limit."""
