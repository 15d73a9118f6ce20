"""The TCP/IP family's state: twelve socket services (AT+QIOPEN's <connectID> 0-11).

Every service is a socket of the socket core (``ecemu.core.sockets``): a "TCP" client or a
"TCP INCOMING" connection is the core socket with ``PlainStream`` (no layer); "UDP" and "UDP
SERVICE" are its datagram variant (``DatagramSocket``); a "TCP LISTENER" is a socket that is bound
and hands each connection it accepts to a free connectID. What is the family's own: the service
types, the counters AT+QISEND=<id>,0 and AT+QIRD=<id>,0 show, the AT+QISTATE line, AT+QICFG.

Sources: Quectel's TCP/IP application note for the EC2x/EG9x family ("TCP/IP note" below, section
numbers of its "LTE Standard" edition: 2.1.4 AT+QIOPEN ... 2.2 the URCs, chapter 4 the result
codes); the EC200x edition has the same commands and was not available to read in full.

The connectIDs are one pool with the SSL family's clientIDs (``id_pool``): both notes call the ID
"socket index" with the same range, and AT+QISWTMD, ATO and AT+QIGETERROR address SSL clients and
TCP/IP services alike by that ID, which names one socket only if the set is one (chosen on that
reading; an ID in use by either family answers 563 to the other's open).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..core import events as ev
from ..core.inbox import DatagramInbox, Inbox
from ..core.registry import Reply
from ..core.results import QiError
from ..core.sockets import (
    AccessMode,
    DatagramSocket,
    Phase,
    Socket,
    SocketFamily,
    SocketState,
    pool_sockets,
    socket_in_pool,
)
from ..core.transparent import Packing

if TYPE_CHECKING:
    from ..core.modem import Modem

log = logging.getLogger(__name__)

CONNECT_IDS = "connectID"  # the pool the TCP/IP and SSL families share


class Service(str, enum.Enum):
    """<service_type> (TCP/IP note 2.1.4, 2.1.6)."""

    TCP = "TCP"
    UDP = "UDP"
    TCP_LISTENER = "TCP LISTENER"
    TCP_INCOMING = "TCP INCOMING"
    UDP_SERVICE = "UDP SERVICE"


@dataclass
class TcpipSettings:
    """AT+QICFG (TCP/IP note 2.1.15): the values as set; defaults as the note gives them.
    "close/mode" is the EC200U edition's (its 2.4.1); chosen: 0, as a module that never heard of
    it behaves, is its default."""

    values: dict[str, tuple[int, ...]] = field(default_factory=lambda: {
        "transpktsize": (1024,), "transwaittm": (2,), "dataformat": (0, 0), "viewmode": (0,),
        "tcp/retranscfg": (12, 6000), "tcp/keepalive": (0,), "close/mode": (0,),
    })

    @property
    def send_hex(self) -> bool:
        """<send_data_format> 1: the data after AT+QISEND's ``>`` is hex digits."""
        return self.values["dataformat"][0] == 1

    @property
    def recv_hex(self) -> bool:
        """<recv_data_format> 1: received data goes to the host as hex digits."""
        return self.values["dataformat"][1] == 1

    @property
    def close_urc(self) -> bool:
        """<close_mode> 1: a host's AT+QICLOSE is followed by ``+QIURC: "closed",<connectID>``."""
        return self.values["close/mode"][0] == 1

    def present(self, header: bytes, data: bytes) -> tuple[bytes, ...]:
        """How received data goes to the host after its header (AT+QIRD's answer, a direct push
        URC), in the non-transparent modes: ``dataformat`` hex turns each byte into two hex
        digits (chosen: upper case; the header's length still counts bytes, the unit the note
        gives it); ``viewmode`` 0 puts the data on the line after the header, 1 after a comma on
        the header's own line."""
        if self.recv_hex:
            data = data.hex().upper().encode()
        if self.values["viewmode"][0] == 1:
            return (header + b"," + data,)
        return header, data


class PresentingInbox(Inbox):
    """A TCP service's inbox: its direct push URCs laid out as AT+QICFG says (``present``)."""

    socket: "TcpipSocket"

    def _next_push(self) -> tuple[bytes, ...]:  # type: ignore[override]
        header, data = super()._next_push()
        family = self.socket.family
        assert isinstance(family, TcpipFamily)
        return family.settings.present(header, data)


class PresentingDatagramInbox(DatagramInbox):
    """A UDP service's inbox, laid out the same way."""

    socket: "UdpSocket"

    def _next_push(self) -> tuple[bytes, ...]:  # type: ignore[override]
        header, data = super()._next_push()
        family = self.socket.family
        assert isinstance(family, TcpipFamily)
        return family.settings.present(header, data)


class TcpipFamily(SocketFamily["TcpipSocket"]):
    """``modem.families["tcpip"]``: the socket services of one power cycle."""

    id_pool = CONNECT_IDS

    def __init__(self, modem: "Modem"):
        super().__init__(modem, [])
        self.clients = [TcpClient(self, i) for i in range(modem.profile.limits.clients)]
        self.settings = TcpipSettings()
        # AT+QICFG="recv/buffersize": what a socket buffers before it stops reading from its
        # peer; the profile's recv_buffer until the host sets it.
        self.settings.values["recv/buffersize"] = (modem.profile.limits.recv_buffer,)

    def transparent_packing(self) -> Packing:
        """AT+QICFG="transpktsize" and "transwaittm" (units of 100 ms) for transparent mode."""
        values = self.settings.values
        return Packing(values["transpktsize"][0], values["transwaittm"][0] / 10)

    def set_receive_buffer(self, size: int) -> None:
        """AT+QICFG="recv/buffersize",<size>: every TCP/IP socket buffers up to ``size`` bytes
        from now on (chosen: the open ones too; a socket already paused reads again once its
        host has taken enough under the new size)."""
        self.settings.values["recv/buffersize"] = (size,)
        self.limits = replace(self.modem.profile.limits, recv_buffer=size)

    def host_ports(self) -> dict[int, int]:
        """connectID of each server socket: the port it is reachable at on 127.0.0.1."""
        return {s.client_id: s.host_port for s in self.clients
                if isinstance(s, (UdpSocket, TcpListener)) and s.host_port and s.connection.phase is Phase.LISTENING}

    def service(self, connect_id: int, service: Service) -> Socket:
        """A fresh socket of the right kind in slot ``connect_id`` (which must be free)."""
        current = self.clients[connect_id]
        if current.connection.phase is not Phase.INITIAL:
            return current  # its open will refuse it as in use
        kind = {Service.TCP: TcpClient, Service.TCP_INCOMING: TcpClient, Service.UDP: UdpSocket,
                Service.UDP_SERVICE: UdpSocket, Service.TCP_LISTENER: TcpListener}[service]
        socket = kind(self, connect_id)
        socket.service = service
        if isinstance(socket, UdpSocket):
            socket.bound_only = service is Service.UDP_SERVICE
        self.clients[connect_id] = socket
        return socket

    def free_id(self) -> int | None:
        """The lowest connectID free in the whole pool (an incoming connection takes it)."""
        for connect_id in range(len(self.clients)):
            if socket_in_pool(self.modem, CONNECT_IDS, connect_id) is None:
                return connect_id
        return None

    def accept(self, listener: "TcpListener", event: ev.TcpIncoming) -> None:
        """TCP/IP note 2.1.4 note 1, 2.2.2, 2.2.3: a connection to a listener takes the lowest free
        connectID as "TCP INCOMING" with the listener's access mode, or is refused when none is
        left ("incoming full")."""
        connect_id = self.free_id()
        modem = self.modem
        if connect_id is None:
            modem.effect(ev.RefuseTcp(event.token))
            modem.emit_urc('+QIURC: "incoming full"')
            return
        socket = self.service(connect_id, Service.TCP_INCOMING)
        assert isinstance(socket, TcpClient)
        socket.server_id = listener.client_id
        listening = listener.connection
        conn_id = socket.connection.adopt(listening.pdp_ctx, event.remote_ip, event.remote_port,
                                          listening.local_port)
        socket.access_mode = listener.access_mode
        modem.effect(ev.AcceptTcp(event.token, conn_id))
        modem.emit_urc(f'+QIURC: "incoming",{connect_id},{listener.client_id},"{event.remote_ip}",'
                       f'{event.remote_port}')

    def transparent_elsewhere(self) -> None:
        """ATO goes back to the socket that left transparent mode last, of whichever family."""
        for socket in pool_sockets(self.modem, CONNECT_IDS):
            if socket.family is not self:
                socket.family.last_transparent = None


class TcpipSocket(Socket):
    """What every TCP/IP service has: its type, its URC names, its counters, its state line."""

    OPEN_URC = "+QIOPEN"
    EVENT_URC = "+QIURC"
    # The TCP/IP notes: "closed" reports a close by the peer or the network; AT+QIDEACT closes the
    # context's connections itself, so they go without it (REFERENCE.md "PDP context").
    CLOSED_URC_ON_DEACT = False

    family: TcpipFamily

    def __init__(self, family: TcpipFamily, client_id: int):
        super().__init__(family, client_id)
        self.service = Service.TCP
        self.server_id = client_id
        self.sent_total = 0
        self.arrived_total = 0  # every byte received, the backlog past the buffer included
        self.read_total = 0
        self.host_port = 0
        gate = self.connection.gate
        self.inbox = PresentingDatagramInbox(self, gate) if isinstance(self, DatagramSocket) else PresentingInbox(self, gate)

    def host_close_done(self) -> None:
        """The host's AT+QICLOSE, once the peer's FIN or the timeout has come: OK, then the
        "closed" URC when AT+QICFG="close/mode" is 1 (held behind the OK, as URCs are)."""
        self.report_host_close()

    def report_host_close(self) -> None:
        if self.family.settings.close_urc:
            self.modem.emit_urc(f'{self.EVENT_URC}: "closed",{self.client_id}')

    @property
    def received_total(self) -> int:
        """What AT+QIRD=<id>,0 counts as received: what reached the module's buffer (the rest of
        a delivery past the buffer's size waits outside it, as in the network)."""
        return self.arrived_total - len(self.inbox.backlog)

    def arrived(self, data: bytes) -> None:
        self.arrived_total += len(data)
        super().arrived(data)

    def read(self, length: int) -> bytes:
        data = super().read(length)
        self.read_total += len(data)
        return data

    def count_sent(self, size: int) -> None:
        self.sent_total += size

    def unacknowledged(self) -> int:
        """chosen: bytes still in the emulator's buffers count as sent but not acknowledged; once
        they have left for the kernel they count as acknowledged."""
        return min(self.connection.unsent, self.sent_total)

    def enter_transparent(self) -> Reply:
        self.family.transparent_elsewhere()
        return super().enter_transparent()

    def shown_address(self) -> str:
        return self.connection.remote_ip

    def state_line(self) -> bytes:
        """One +QISTATE line (TCP/IP note 2.1.6)."""
        at_port = self.modem.profile.defaults.at_port
        conn = self.connection
        return (f'+QISTATE: {self.client_id},"{self.service.value}","{self.shown_address()}",{conn.remote_port},'
                f'{conn.local_port},{int(conn.shown_state)},{conn.pdp_ctx},{self.server_id},{int(self.access_mode)},'
                f'"{at_port}"').encode("latin-1")


class TcpClient(TcpipSocket):
    """A "TCP" client or a "TCP INCOMING" connection: the core socket with no layer."""

    def send(self, data: bytes) -> None:
        if data and self.connection.phase is Phase.CONNECTED:
            self.count_sent(len(data))
        super().send(data)

    def send_packets(self, data: bytes, packet_size: int) -> None:
        if data and self.connection.phase is Phase.CONNECTED:
            self.count_sent(len(data))
        super().send_packets(data, packet_size)


class UdpSocket(TcpipSocket, DatagramSocket):
    """A "UDP" client or a "UDP SERVICE": the core's datagram socket."""

    def __init__(self, family: TcpipFamily, client_id: int):
        super().__init__(family, client_id)
        self.service = Service.UDP

    def send_to(self, data: bytes, ip: str, port: int) -> None:
        if data and self.connection.phase in (Phase.CONNECTED, Phase.LISTENING):
            self.count_sent(len(data))
        super().send_to(data, ip, port)

    def read_datagram(self, length: int) -> tuple[bytes, str, int]:
        data, ip, port = super().read_datagram(length)
        self.read_total += len(data)
        return data, ip, port

    def shown_address(self) -> str:
        if self.service is Service.UDP_SERVICE:
            return self.connection.address  # the note: the local address for a service
        return self.connection.remote_ip


class TcpListener(TcpipSocket):
    """A "TCP LISTENER" (TCP/IP note 2.1.4 note 1): bound to <local_port>, reachable from the
    machine the emulator runs on at 127.0.0.1 (``ev.Listen``); each connection it accepts becomes
    a "TCP INCOMING" service of its own."""

    def listen(self, pdp_ctx: int, address: str, local_port: int, access_mode: AccessMode) -> None:
        connection = self.connection
        connection.may_open(pdp_ctx)
        self.access_mode = access_mode
        conn_id = connection.begin(pdp_ctx, address, 0, local_port, self._on_event)
        self.modem.effect(ev.Listen(conn_id, local_port))

    def _on_event(self, event: ev.NetworkEvent) -> None:
        connection = self.connection
        if isinstance(event, ev.TcpIncoming):
            if connection.phase is Phase.LISTENING:
                self.family.accept(self, event)
            else:
                self.modem.effect(ev.RefuseTcp(event.token))
        elif isinstance(event, ev.Listening):
            if connection.phase is Phase.OPENING:
                connection.to("listening")
                self.host_port = event.host_port
                log.info("socket %d: TCP LISTENER for port %d is 127.0.0.1:%d", self.client_id,
                         connection.local_port, event.host_port)
                self.modem.observe("listening", client=self.client_id, port=connection.local_port,
                                   host_port=event.host_port)
                self.report_open(QiError.OK)
        elif isinstance(event, ev.ListenFailed):
            log.info("socket %d: cannot listen on %d (%s)", self.client_id, connection.local_port, event.reason)
            connection.open_failed(QiError.SOCKET_BIND_FAILED, close=False)

    def close(self, timeout: float) -> Reply:
        """A listener has no peer to wait for: it stops listening at once; the connections it
        accepted stay (chosen)."""
        return self.connection.close_at_once()

    def released(self) -> None:
        super().released()
        self.host_port = 0


__all__ = ["CONNECT_IDS", "Service", "SocketState", "TcpClient", "TcpListener", "TcpipFamily", "TcpipSocket",
           "UdpSocket"]
