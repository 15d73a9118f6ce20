"""The TCP/IP commands: AT+QIOPEN, AT+QISEND, AT+QISENDEX, AT+QIRD, AT+QICLOSE, AT+QISTATE,
AT+QISWTMD, AT+QIDNSGIP, AT+QICFG (Quectel TCP/IP note, chapter 2; see ``tcpip_state`` for which
edition and why).

Each handler reads and checks its parameters and hands the work to the family's state
(``ecemu.commands.tcpip_state``), whose sockets are the socket core's. Errors answer plain
``ERROR`` and leave their chapter 4 code for AT+QIGETERROR, as the SSL commands do (the SSL note
describes its commands as these with TLS on top).
"""

from __future__ import annotations

import ipaddress

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from .prompted_data import PromptedData
from .ssl import SEND_PROMPT, SendSink
from .tcpip_state import CONNECT_IDS, Service, TcpipFamily, TcpipSocket, TcpListener, UdpSocket
from ..core import events as ev
from ..core.parser import CommandCall, Form
from ..core.registry import (
    AwaitData,
    CommandFailed,
    Family,
    Outcome,
    Pending,
    Reply,
    at_most,
    command,
    family_state,
    int_arg,
    ok,
    require_form,
    str_arg,
)
from ..core.results import QIGETERROR, SEND_FAIL, SEND_OK, QiError, Refusal
from ..core.sockets import AccessMode, OpenFailed, PdpContexts, Phase, SocketState, socket_in_pool

if TYPE_CHECKING:
    from ..core.modem import Modem

FAMILY = "tcpip"
TCPIP_FAMILY = Family(FAMILY, errors=QIGETERROR, state=TcpipFamily, needs=("pdp",))

CLOSE_TIMEOUT = 10  # AT+QICLOSE's default <timeout>, seconds (TCP/IP note 2.1.5)
HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
SENDEX_MAX = 512  # AT+QISENDEX: at most 512 bytes as 1024 hex digits (TCP/IP note 2.1.9)
DNS_TTL = 600  # +QIURC: "dnsgip" <DNS_ttl>: chosen, the system resolver does not say


def _family(modem: "Modem") -> TcpipFamily:
    return family_state(modem, FAMILY, TcpipFamily)


def _ids(modem: "Modem") -> str:
    return f"(0-{modem.profile.limits.clients - 1})"


def _connect_id(modem: "Modem", call: CommandCall, index: int = 0) -> int:
    return int_arg(call, index, 0, modem.profile.limits.clients - 1)


def _active_context(modem: "Modem", pdp_ctx: int) -> PdpContexts:
    """The PDP family, when ``pdp_ctx`` is active; else 561, as the sockets' open reports it."""
    pdp = modem.families.get("pdp")
    if not isinstance(pdp, PdpContexts) or not pdp.is_active(pdp_ctx):
        raise CommandFailed(QiError.OPEN_PDP_FAILED)
    return pdp


# --- AT+QIOPEN (TCP/IP note 2.1.4) --------------------------------------------------------------


@command("+QIOPEN", family=FAMILY)
def open_socket(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QIOPEN=<contextID>,<connectID>,<service_type>,<IP_address>/<domain_name>,<remote_port>
    [,<local_port>[,<access_mode>]] (TCP/IP note 2.1.4): OK, then ``+QIOPEN: <connectID>,<err>``;
    in transparent mode CONNECT or ERROR once connected.

    chosen: a "TCP LISTENER" or "UDP SERVICE" in transparent mode is refused (555): transparent
    mode is one connection's, and a server has none of its own.
    """
    limits = modem.profile.limits
    if call.form is Form.TEST:
        return ok(f'+QIOPEN: (1-{limits.pdp_contexts}),{_ids(modem)},"TCP/UDP/TCP LISTENER/UDP SERVICE",'
                  '"<IP_address>/<domain_name>",<remote_port>,<local_port>,(0-2)')
    require_form(call, Form.WRITE)
    at_most(call, 7)
    pdp_ctx = int_arg(call, 0, 1, limits.pdp_contexts)
    connect_id = int_arg(call, 1, 0, limits.clients - 1)
    try:
        service = Service(str_arg(call, 2).upper())
    except ValueError:
        raise CommandFailed(Refusal.PARAMETER) from None
    if service is Service.TCP_INCOMING:
        raise CommandFailed(Refusal.PARAMETER)  # made by a listener, never opened
    address = str_arg(call, 3).strip()
    remote_port = int_arg(call, 4, 0, 65535)
    local_port = int_arg(call, 5, 0, 65535, default=0)
    access_mode = AccessMode(int_arg(call, 6, 0, 2, default=0))
    is_server = service in (Service.TCP_LISTENER, Service.UDP_SERVICE)
    if not address or (not is_server and remote_port == 0) or (is_server and local_port == 0 and
                                                                 service is Service.TCP_LISTENER):
        raise CommandFailed(Refusal.PARAMETER)
    if is_server and access_mode is AccessMode.TRANSPARENT:
        raise CommandFailed(QiError.OPERATION_NOT_SUPPORTED)
    socket = _family(modem).service(connect_id, service)
    try:
        if isinstance(socket, TcpListener):
            socket.listen(pdp_ctx, address, local_port, access_mode)
        elif isinstance(socket, UdpSocket):
            socket.open_datagram(pdp_ctx, address, remote_port, local_port, access_mode)
        else:
            socket.open(pdp_ctx, address, remote_port, access_mode)
    except OpenFailed as failure:
        if failure.code is QiError.SOCKET_IN_USE or access_mode is AccessMode.TRANSPARENT:
            raise CommandFailed(failure.code) from None
        modem.emit_urc(f"+QIOPEN: {connect_id},{int(failure.code)}")
        return ok()
    if access_mode is AccessMode.TRANSPARENT:
        return Pending("+QIOPEN")
    return ok()


# --- AT+QISEND, AT+QISENDEX (TCP/IP note 2.1.7, 2.1.9) ------------------------------------------


def _socket(modem: "Modem", call: CommandCall) -> TcpipSocket:
    socket = _family(modem).client(_connect_id(modem, call))
    assert isinstance(socket, TcpipSocket)
    return socket


def _sending_socket(modem: "Modem", call: CommandCall) -> TcpipSocket:
    socket = _socket(modem, call)
    if socket.connection.shown_state is SocketState.CLOSING:
        raise CommandFailed(QiError.SOCKET_CLOSED)
    if socket.connection.phase not in (Phase.CONNECTED, Phase.LISTENING) or isinstance(socket, TcpListener):
        raise CommandFailed(QiError.NOT_ALLOWED)  # chosen: never opened, still opening, or a listener
    return socket


class DatagramSink(SendSink):
    """AT+QISEND's data for a "UDP SERVICE": one datagram to the address the command named."""

    def __init__(self, socket: UdpSocket, length: int, ip: str, port: int):
        super().__init__(socket, length, length)
        self.udp, self.ip, self.port = socket, ip, port

    def _finish(self, modem: "Modem") -> Outcome | CommandFailed:
        if self.udp.connection.phase is not Phase.LISTENING:
            return CommandFailed(QiError.SOCKET_CLOSED)
        self.udp.send_to(bytes(self.data), self.ip, self.port)
        return Reply(final=SEND_OK)


class HexSink(PromptedData):
    """AT+QISEND's data with AT+QICFG="dataformat",1,<x>: two hex digits per byte (the note: "the
    module will automatically form two bytes to one ASCII code"). chosen: <send_length> counts
    the bytes sent, so twice as many characters are taken; without it, characters up to Ctrl+Z
    (ESC cancels), as in text. What was taken must be hex digits, an even number of them, or the
    command ends with ERROR and nothing is sent."""

    def __init__(self, inner: SendSink):
        # As in text: ESC cancels, and the byte too many starts the next line.
        super().__init__(None if inner.length is None else 2 * inner.length, 2 * inner.limit,
                         cancelled=inner.cancelled, too_long=inner.too_long)
        self.inner = inner

    def _finish(self, modem: "Modem") -> Outcome | CommandFailed:
        digits = self.data
        if len(digits) % 2 or not HEX_DIGITS.issuperset(digits):
            return CommandFailed(Refusal.PARAMETER)
        self.inner.data = bytearray(bytes.fromhex(digits.decode("ascii")))
        return self.inner._finish(modem)


def _send_status(socket: TcpipSocket) -> Reply:
    unacked = socket.unacknowledged()
    return ok(f"+QISEND: {socket.sent_total},{socket.sent_total - unacked},{unacked}")


@command("+QISEND", family=FAMILY)
def send(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QISEND=<connectID>[,<send_length>] and, for a "UDP SERVICE",
    AT+QISEND=<connectID>,<send_length>,"<remoteIP>",<remote_port> (TCP/IP note 2.1.7): ``>``,
    the data (fixed length, or up to Ctrl+Z; ESC cancels), then SEND OK, or SEND FAIL when the
    send buffer is full. AT+QISEND=<connectID>,0 answers ``+QISEND: <total>,<acked>,<unacked>``.
    With AT+QICFG="dataformat",1,<x> the data is hex digits (``HexSink``)."""
    limits = modem.profile.limits
    if call.form is Form.TEST:
        return ok(f"+QISEND: {_ids(modem)},(0-{limits.send_max})")
    require_form(call, Form.WRITE)
    at_most(call, 4)
    if len(call.args) == 3:
        raise CommandFailed(Refusal.PARAMETER)
    length = int_arg(call, 1, 0, limits.send_max) if len(call.args) > 1 else None
    if length == 0:
        socket = _socket(modem, call)
        if socket.connection.phase is Phase.INITIAL:
            raise CommandFailed(QiError.NOT_ALLOWED)
        return _send_status(socket)
    socket = _sending_socket(modem, call)
    registers = modem.settings.s_registers
    prompt = bytes((registers[3], registers[4])) + SEND_PROMPT
    if isinstance(socket, UdpSocket) and socket.service is Service.UDP_SERVICE:
        if len(call.args) != 4 or length is None:
            raise CommandFailed(Refusal.PARAMETER)  # a service has no address of its own to send to
        ip = str_arg(call, 2)
        port = int_arg(call, 3, 1, 65535)
        sink: SendSink = DatagramSink(socket, length, ip, port)
    else:
        if len(call.args) == 4:
            raise CommandFailed(Refusal.PARAMETER)
        sink = SendSink(socket, length, limits.send_max)
    if _family(modem).settings.send_hex:
        return AwaitData(prompt, HexSink(sink))
    return AwaitData(prompt, sink)


@command("+QISENDEX", family=FAMILY)
def send_hex(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QISENDEX=<connectID>,"<hex_string>" (TCP/IP note 2.1.9): the bytes the hex digits spell,
    at most 512; SEND OK, SEND FAIL when the send buffer is full."""
    if call.form is Form.TEST:
        return ok(f"+QISENDEX: {_ids(modem)},<hex_string>")
    require_form(call, Form.WRITE)
    at_most(call, 2)
    text = str_arg(call, 1)
    if not text or len(text) % 2 or len(text) > 2 * SENDEX_MAX:
        raise CommandFailed(Refusal.PARAMETER)
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise CommandFailed(Refusal.PARAMETER) from None
    socket = _sending_socket(modem, call)
    if isinstance(socket, UdpSocket) and socket.service is Service.UDP_SERVICE:
        raise CommandFailed(Refusal.PARAMETER)  # chosen: a service's sends name their address, which this form cannot
    if not socket.connection.send_buffer_has_room(len(data)):
        return Reply(final=SEND_FAIL)
    socket.send(data)
    return Reply(final=SEND_OK)


# --- AT+QIRD (TCP/IP note 2.1.8) ----------------------------------------------------------------


@command("+QIRD", family=FAMILY)
def read(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QIRD=<connectID>[,<read_length>] (TCP/IP note 2.1.8): ``+QIRD: <n>`` and the data, or
    ``+QIRD: 0``; for a "UDP SERVICE" ``+QIRD: <n>,"<remoteIP>",<remote_port>`` and one datagram.
    AT+QIRD=<connectID>,0 answers ``+QIRD: <total>,<read>,<unread>``. AT+QICFG's "dataformat"
    and "viewmode" lay the data out (``TcpipSettings.present``).

    Data a closed connection left is still read, then ``+QIRD: 0`` until AT+QICLOSE (the socket
    exists until then; the note answers ERROR only for one that does not)."""
    limits = modem.profile.limits
    if call.form is Form.TEST:
        return ok(f"+QIRD: {_ids(modem)},(0-{limits.recv_max})")
    require_form(call, Form.WRITE)
    at_most(call, 2)
    socket = _socket(modem, call)
    length = int_arg(call, 1, 0, limits.recv_max, default=limits.recv_max)
    if socket.connection.phase in (Phase.INITIAL, Phase.OPENING) or isinstance(socket, TcpListener):
        raise CommandFailed(QiError.NOT_ALLOWED)
    if len(call.args) > 1 and length == 0:
        return ok(f"+QIRD: {socket.received_total},{socket.read_total},{len(socket.received)}")
    if socket.access_mode is not AccessMode.BUFFER:
        raise CommandFailed(QiError.NOT_ALLOWED)  # chosen: nothing waits to be read in the other modes
    header = ""
    if isinstance(socket, UdpSocket):
        data, ip, port = socket.read_datagram(length)
        if data and socket.service is Service.UDP_SERVICE:
            header = f'+QIRD: {len(data)},"{ip}",{port}'
    else:
        data = socket.read(length)
    if not data:
        return ok("+QIRD: 0")
    return ok(*_family(modem).settings.present((header or f"+QIRD: {len(data)}").encode(), data))


# --- AT+QICLOSE (TCP/IP note 2.1.5) -------------------------------------------------------------


@command("+QICLOSE", family=FAMILY)
def close(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QICLOSE=<connectID>[,<timeout>] (TCP/IP note 2.1.5): FIN, then OK once the peer has
    closed too or <timeout> seconds (default 10) have passed, when the socket is closed by force;
    0 closes at once. A listener stops listening; a UDP socket closes at once. With
    AT+QICFG="close/mode",1 the OK is followed by ``+QIURC: "closed",<connectID>`` (EC200U
    edition, 2.4.8); chosen: not for an ID that had nothing open, as nothing was closed."""
    if call.form is Form.TEST:
        return ok(f"+QICLOSE: {_ids(modem)},(0-65535)")
    require_form(call, Form.WRITE)
    at_most(call, 2)
    socket = _family(modem).client(_connect_id(modem, call))
    timeout = int_arg(call, 1, 0, 65535, default=CLOSE_TIMEOUT)
    was_open = socket.connection.phase is not Phase.INITIAL
    reply = socket.close(float(timeout))
    if reply is None:
        return Pending("+QICLOSE")  # the URC of "close/mode" 1 follows the OK (_finish_close)
    if was_open and isinstance(socket, TcpipSocket):
        socket.report_host_close()
    return reply


# --- AT+QISTATE (TCP/IP note 2.1.6) -------------------------------------------------------------


@command("+QISTATE", family=FAMILY)
def state(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QISTATE? / AT+QISTATE (all), AT+QISTATE=0,<contextID> (those of a context),
    AT+QISTATE=1,<connectID> (one) (TCP/IP note 2.1.6): a line per socket service in use."""
    family = _family(modem)
    if call.form is Form.TEST:
        return ok()
    sockets = [s for s in family.clients if isinstance(s, TcpipSocket) and s.connection.phase is not Phase.INITIAL]
    if call.form is Form.WRITE:
        if len(call.args) != 2:
            raise CommandFailed(Refusal.PARAMETER)
        query = int_arg(call, 0, 0, 1)
        if query == 0:
            context = int_arg(call, 1, 1, modem.profile.limits.pdp_contexts)
            sockets = [s for s in sockets if s.connection.pdp_ctx == context]
        else:
            connect_id = _connect_id(modem, call, 1)
            sockets = [s for s in sockets if s.client_id == connect_id]
    elif call.form not in (Form.EXEC, Form.READ):
        raise CommandFailed(Refusal.PARAMETER)
    return Reply([s.state_line() for s in sockets])


# --- AT+QISWTMD (TCP/IP note 2.1.10; SSL note 1.4) ----------------------------------------------


@command("+QISWTMD", family=FAMILY)
def switch_access_mode(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QISWTMD=<connectID>,<access_mode> (TCP/IP note 2.1.10, SSL note 1.4): OK for buffer
    access and direct push; CONNECT for transparent mode, where data that waited comes first.
    The ID is the pool's: a TCP/IP service or an SSL client."""
    if call.form is Form.TEST:
        return ok(f"+QISWTMD: {_ids(modem)},(0-2)")
    require_form(call, Form.WRITE)
    at_most(call, 2)
    connect_id = _connect_id(modem, call)
    mode = AccessMode(int_arg(call, 1, 0, 2))
    socket = socket_in_pool(modem, CONNECT_IDS, connect_id)
    if socket is not None and socket.connection.shown_state is SocketState.CLOSING:
        raise CommandFailed(QiError.SOCKET_CLOSED)
    if socket is None or socket.connection.phase is not Phase.CONNECTED:
        raise CommandFailed(QiError.NOT_ALLOWED)  # chosen: never opened, still opening, or a server
    return socket.switch_mode(mode)


# --- AT+QIDNSGIP (TCP/IP note 2.1.14, 2.2.6) ----------------------------------------------------


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@command("+QIDNSGIP", family=FAMILY)
def resolve(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QIDNSGIP=<contextID>,"<hostname>" (TCP/IP note 2.1.14): OK, then
    ``+QIURC: "dnsgip",<err>,<IP_count>,<DNS_ttl>`` and one ``+QIURC: "dnsgip","<IP>"`` per
    address (2.2.6); a name that does not resolve gives ``+QIURC: "dnsgip",565``. Through the
    context's AT+QIDNSCFG servers once the host has set them, as AT+QIOPEN does."""
    limits = modem.profile.limits
    if call.form is Form.TEST:
        return ok(f"+QIDNSGIP: (1-{limits.pdp_contexts}),<hostname>")
    require_form(call, Form.WRITE)
    at_most(call, 2)
    pdp_ctx = int_arg(call, 0, 1, limits.pdp_contexts)
    host = str_arg(call, 1).strip()
    if not host:
        raise CommandFailed(Refusal.PARAMETER)
    pdp = _active_context(modem, pdp_ctx)
    conn_ids: list[int] = []

    def answered(event: ev.NetworkEvent) -> None:
        modem.forget_conn(conn_ids[0])
        if not isinstance(event, ev.Resolved):
            return
        if not event.addresses:
            modem.emit_urc(f'+QIURC: "dnsgip",{int(QiError.DNS_FAILED)}')
            return
        # An address given as the name is no answer of a DNS server: an EC200U
        # (EC200UCNAAR03A15M08) gives it with <DNS_ttl> 0 (REFERENCE.md "TCP/IP", seen).
        ttl = 0 if _is_address(host) else DNS_TTL
        modem.emit_urc(f'+QIURC: "dnsgip",{int(QiError.OK)},{len(event.addresses)},{ttl}')
        for address in event.addresses:
            modem.emit_urc(f'+QIURC: "dnsgip","{address}"')

    conn_ids.append(modem.new_conn_id(answered))
    modem.effect(ev.Resolve(conn_ids[0], host, pdp.dns_servers(pdp_ctx)))
    return ok()


# --- AT+QICFG (TCP/IP note 2.1.15) --------------------------------------------------------------

# name: (ranges of its values, how many of them may be left out at the end)
CFG_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "transpktsize": ((1, 1460),),
    "transwaittm": ((0, 20),),
    "dataformat": ((0, 1), (0, 1)),
    "viewmode": ((0, 1),),
    "tcp/retranscfg": ((3, 20), (1000, 6000)),
    "tcp/keepalive": ((0, 1), (1, 120), (25, 100), (3, 10)),
    "close/mode": ((0, 1),),
    # Not in the notes at hand; its range is an EG25-G's AT+QICFG=? (REFERENCE.md "TCP/IP").
    "recv/buffersize": ((10240, 524288),),
}


@command("+QICFG", family=FAMILY)
def configure(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QICFG="<name>"[,<value>...] (TCP/IP note 2.1.15): without values the setting is read
    back as ``+QICFG: "<name>",<values>``. The values are kept and shown. ``dataformat`` (0 text,
    1 hex: AT+QISEND's data, AT+QIRD's and the push URCs'), ``viewmode`` (0: the data on the line
    after the header, 1: after a comma on the header's line) and ``close/mode`` (EC200U edition
    2.4.1, 2.4.8) take effect, and so do ``transpktsize`` and ``transwaittm``: how transparent
    mode packs the host's bytes into sends, for AT+QIOPEN's and AT+QSSLOPEN's connections alike,
    from the next entry into transparent mode (``ecemu.core.transparent.Packing``). chosen: the
    machine's own TCP stack retransmits and keeps connections alive. "recv/buffersize" (bytes a
    socket buffers before it stops reading from its peer; the range an EG25-G lists, the
    profile's recv_buffer by default, chosen) takes effect at once."""
    settings = _family(modem).settings.values
    if call.form is Form.TEST:
        return ok(*(f'+QICFG: "{name}",' + ",".join(f"({lo}-{hi})" for lo, hi in ranges)
                    for name, ranges in CFG_RANGES.items()))
    require_form(call, Form.WRITE)
    name = str_arg(call, 0).lower()
    ranges = CFG_RANGES.get(name)
    if ranges is None:
        raise CommandFailed(Refusal.PARAMETER)
    at_most(call, 1 + len(ranges))
    if len(call.args) == 1:
        return ok(f'+QICFG: "{name}",' + ",".join(str(v) for v in settings[name]))
    values = tuple(int_arg(call, 1 + i, lo, hi) for i, (lo, hi) in enumerate(ranges[: len(call.args) - 1]))
    if name == "tcp/keepalive" and values[0] == 1 and len(values) != 4:
        raise CommandFailed(Refusal.PARAMETER)
    if name != "tcp/keepalive" and len(values) != len(ranges):
        raise CommandFailed(Refusal.PARAMETER)
    if name == "recv/buffersize":
        _family(modem).set_receive_buffer(values[0])
    settings[name] = values
    return ok()


# --- AT+QPING (TCP/IP note 2.1.11) --------------------------------------------------------------

PING_BYTES = 32  # the echo's size the note's examples show
PING_TTL = 64  # chosen: the emulated echo has no TTL to read; a common host default


class PingRun:
    """One AT+QPING: <pingnum> echoes one after another, then the summary URC."""

    def __init__(self, modem: "Modem", host: str, timeout: int, count: int, dns_servers: tuple[str, ...]):
        self.modem, self.host, self.timeout, self.left = modem, host, timeout, count
        self.dns_servers = dns_servers
        self.sent = 0
        self.times: list[int] = []

    def next(self) -> None:
        self.left -= 1
        self.sent += 1
        conn_id = self.modem.new_conn_id(self.answered)
        self.modem.effect(ev.Ping(conn_id, self.host, float(self.timeout), self.dns_servers))

    def answered(self, event: ev.NetworkEvent) -> None:
        if not isinstance(event, ev.PingReply):
            return
        self.modem.forget_conn(event.conn_id)
        if event.failure == "dns":
            self.modem.emit_urc(f"+QPING: {int(QiError.DNS_FAILED)}")
            return
        if event.milliseconds is None:
            self.modem.emit_urc(f"+QPING: {int(QiError.TIMEOUT)}")
        else:
            self.times.append(event.milliseconds)
            self.modem.emit_urc(f'+QPING: {int(QiError.OK)},"{event.address}",{PING_BYTES},{event.milliseconds},{PING_TTL}')
        if self.left:
            self.next()
            return
        received = len(self.times)
        if received:
            summary = f"{min(self.times)},{max(self.times)},{sum(self.times) // received}"
        else:
            summary = "0,0,0"
        self.modem.emit_urc(f"+QPING: {int(QiError.OK)},{self.sent},{received},{self.sent - received},{summary}")


@command("+QPING", family=FAMILY)
def ping(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QPING=<contextID>,"<host>"[,<timeout>[,<pingnum>]] (TCP/IP note 2.1.11): OK, then
    ``+QPING: 0,"<IP>",<bytes>,<time>,<ttl>`` per echo answered (``+QPING: 569`` per echo that
    is not), then ``+QPING: 0,<sent>,<rcvd>,<lost>,<min>,<max>,<avg>``; a name that does not
    resolve gives ``+QPING: 565`` alone.

    chosen: a real ICMP echo needs privileges the emulator does not have, so each echo is a TCP
    connection to the host's port 7: accepted or refused (the RST came back), the host answered,
    and the time is the connection's round trip. The next echo goes as soon as one is answered.
    """
    limits = modem.profile.limits
    if call.form is Form.TEST:
        return ok(f"+QPING: (1-{limits.pdp_contexts}),<host>,(1-255),(1-10)")
    require_form(call, Form.WRITE)
    at_most(call, 4)
    pdp_ctx = int_arg(call, 0, 1, limits.pdp_contexts)
    host = str_arg(call, 1).strip()
    timeout = int_arg(call, 2, 1, 255, default=4)
    count = int_arg(call, 3, 1, 10, default=4)
    if not host:
        raise CommandFailed(Refusal.PARAMETER)
    pdp = _active_context(modem, pdp_ctx)
    PingRun(modem, host, timeout, count, pdp.dns_servers(pdp_ctx)).next()
    return ok()


# --- AT+QNTP (TCP/IP note 2.1.12) ---------------------------------------------------------------

NTP_TIMEOUT = 125.0  # AT+QNTP's maximum response time, seconds (TCP/IP note 2.1.12)


@command("+QNTP", family=FAMILY)
def ntp(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QNTP=<contextID>,"<server>"[,<port>[,<autosettime>]] (TCP/IP note 2.1.12): OK, then
    ``+QNTP: 0,"<yyyy/MM/dd,hh:mm:ss±zz>"`` after a real SNTP query: the server's time as it gave
    it, UTC, followed by the module's time zone in quarter hours, not the local time. An EG800K
    and an EC200U in zone +32 both answered ``+QNTP: 0,"2026/08/06,12:40:04+32"`` while AT+CCLK
    read 20:40 (REFERENCE.md "Time", seen). With <autosettime> 1 (the default) the module's clock
    (AT+CCLK, local time) is set from it. Failures: ``+QNTP: 565`` (the name), ``+QNTP: 569`` (no
    answer), ``+QNTP: 550``."""
    limits = modem.profile.limits
    if call.form is Form.TEST:
        return ok(f"+QNTP: (1-{limits.pdp_contexts}),<server>,(1-65535),(0,1)")
    require_form(call, Form.WRITE)
    at_most(call, 4)
    pdp_ctx = int_arg(call, 0, 1, limits.pdp_contexts)
    server = str_arg(call, 1).strip()
    port = int_arg(call, 2, 1, 65535, default=123)
    set_clock = int_arg(call, 3, 0, 1, default=1)
    if not server:
        raise CommandFailed(Refusal.PARAMETER)
    pdp = _active_context(modem, pdp_ctx)
    conn_ids: list[int] = []

    def answered(event: ev.NetworkEvent) -> None:
        if not isinstance(event, ev.NtpTime):
            return
        modem.forget_conn(conn_ids[0])
        if event.utc is None:
            code = {"dns": QiError.DNS_FAILED, "timeout": QiError.TIMEOUT}.get(event.failure, QiError.UNKNOWN)
            modem.emit_urc(f"+QNTP: {int(code)}")
            return
        clock = modem.clock
        utc = datetime.fromtimestamp(event.utc, timezone.utc).replace(tzinfo=None)
        if set_clock:
            clock.set_local(modem.now, utc + timedelta(minutes=15 * clock.zone_quarters), clock.zone_quarters)
        sign = "+" if clock.zone_quarters >= 0 else "-"
        modem.emit_urc(f'+QNTP: {int(QiError.OK)},"{utc:%Y/%m/%d,%H:%M:%S}{sign}{abs(clock.zone_quarters):02d}"')

    conn_ids.append(modem.new_conn_id(answered))
    modem.effect(ev.QueryNtp(conn_ids[0], server, port, NTP_TIMEOUT, pdp.dns_servers(pdp_ctx)))
    return ok()
