"""What crosses the line between the sans-IO core and the I/O shell.

Effects are requests the core makes of the shell (open a TCP connection, send bytes, pause
reading); events are what the shell reports back. Every connection attempt gets a fresh
``conn_id`` so that a late event from an old connection can never touch a newer one that reuses
the same client ID.
"""

from __future__ import annotations

from dataclasses import dataclass


# Effects: core -> shell ---------------------------------------------------------------------


@dataclass(frozen=True)
class OpenTcp:
    conn_id: int
    host: str
    port: int
    dns_servers: tuple[str, ...] = ()
    timeout: float = 150.0  # SSL note 2.2.2: maximum network response time


@dataclass(frozen=True)
class SendTcp:
    conn_id: int
    data: bytes


@dataclass(frozen=True)
class ShutdownTcp:
    """Send FIN once everything queued is sent, and keep reading until the peer closes too."""

    conn_id: int


@dataclass(frozen=True)
class CloseTcp:
    """Close the connection; for a UDP socket or a listening socket, close that socket."""

    conn_id: int
    abort: bool = False  # reset rather than an orderly FIN


@dataclass(frozen=True)
class PauseReading:
    conn_id: int


@dataclass(frozen=True)
class ResumeReading:
    conn_id: int


@dataclass(frozen=True)
class OpenUdp:
    """A UDP socket: bound to ``local_port`` (0: any); with a ``host``, aimed at host:port (a
    client), without one only bound (a service, reachable from 127.0.0.1: see ``Listen``)."""

    conn_id: int
    host: str
    port: int
    local_port: int = 0
    dns_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendDatagram:
    """One datagram; ``host`` empty: to the address the socket was opened with."""

    conn_id: int
    data: bytes
    host: str = ""
    port: int = 0


@dataclass(frozen=True)
class Listen:
    """A TCP server socket for the module's ``port``, reachable on 127.0.0.1 of the machine the
    emulator runs on: the same port when it is free, else one the system picks (``Listening``
    says which)."""

    conn_id: int
    port: int


@dataclass(frozen=True)
class AcceptTcp:
    """The incoming connection ``token`` of a listener is carried under ``conn_id`` from now on."""

    token: int
    conn_id: int


@dataclass(frozen=True)
class RefuseTcp:
    """The incoming connection ``token`` is closed: the module has no socket left for it."""

    token: int


@dataclass(frozen=True)
class Resolve:
    """Look up ``host`` (AT+QIDNSGIP); the answer is ``Resolved``."""

    conn_id: int
    host: str
    dns_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ping:
    """One echo to ``host`` (AT+QPING); the answer is ``PingReply``. A real ICMP echo needs
    privileges, so the shell makes a TCP connection to the host's echo port (7): an accept or a
    refusal (the RST came back) means the host answered."""

    conn_id: int
    host: str
    timeout: float
    dns_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueryNtp:
    """One SNTP query (RFC 4330) to ``host``:``port`` (AT+QNTP); the answer is ``NtpTime``."""

    conn_id: int
    host: str
    port: int
    timeout: float
    dns_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpenIpLink:
    """A data call's IP link (PPP): the host's packets go to a user-mode network engine that makes
    every flow a real socket. ``address`` is the host's, ``gateway`` the module's side, which stands
    for the machine the emulator runs on (its 127.0.0.1); ``network`` holds both (CIDR). UDP to port
    53 of an ``announced_dns`` address is answered through ``dns_servers`` (AT+QIDNSCFG's; none: the
    machine's resolver)."""

    conn_id: int
    address: str
    gateway: str
    network: str
    announced_dns: tuple[str, ...] = ()
    dns_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendIp:
    conn_id: int
    packet: bytes


@dataclass(frozen=True)
class CloseIpLink:
    conn_id: int


Effect = (OpenTcp | SendTcp | ShutdownTcp | CloseTcp | PauseReading | ResumeReading | OpenUdp | SendDatagram
          | Listen | AcceptTcp | RefuseTcp | Resolve | Ping | QueryNtp | OpenIpLink | SendIp | CloseIpLink)
IP_LINK_EFFECTS = (OpenIpLink, SendIp, CloseIpLink)


# Events: shell -> core ----------------------------------------------------------------------


@dataclass(frozen=True)
class TcpConnected:
    conn_id: int
    remote_ip: str
    remote_port: int
    local_port: int


@dataclass(frozen=True)
class TcpConnectFailed:
    conn_id: int
    reason: str  # "dns", "refused", "timeout", "unreachable"


@dataclass(frozen=True)
class TcpData:
    conn_id: int
    data: bytes


@dataclass(frozen=True)
class TcpClosed:
    conn_id: int
    reset: bool = False  # the peer reset the connection rather than closing it


@dataclass(frozen=True)
class TcpDrained:
    """Everything the core asked to send on this connection has left the shell's buffers."""

    conn_id: int


@dataclass(frozen=True)
class UdpOpened:
    conn_id: int
    remote_ip: str  # resolved ("" for a service)
    local_port: int  # the port on the machine the emulator runs on


@dataclass(frozen=True)
class UdpOpenFailed:
    conn_id: int
    reason: str  # "dns", "bind", "unreachable"


@dataclass(frozen=True)
class UdpDatagram:
    conn_id: int
    data: bytes
    remote_ip: str
    remote_port: int


@dataclass(frozen=True)
class UdpDropped:
    """The simulated network (latency, a bandwidth cap) had no room for datagrams of this socket:
    how many it has dropped so far each way, for the trace."""

    conn_id: int
    inbound: int
    outbound: int


@dataclass(frozen=True)
class Listening:
    conn_id: int
    host_port: int  # where the listener is reachable on 127.0.0.1


@dataclass(frozen=True)
class ListenFailed:
    conn_id: int
    reason: str


@dataclass(frozen=True)
class TcpIncoming:
    """A host program connected to a listener; ``AcceptTcp`` or ``RefuseTcp`` answers it."""

    conn_id: int  # the listener's
    token: int
    remote_ip: str
    remote_port: int
    local_port: int


@dataclass(frozen=True)
class Resolved:
    conn_id: int
    addresses: tuple[str, ...]  # empty: the name could not be resolved


@dataclass(frozen=True)
class PingReply:
    conn_id: int
    address: str  # the host's address ("" when the name did not resolve)
    milliseconds: int | None  # the round trip; None: no answer within the timeout
    failure: str = ""  # "dns", "timeout"


@dataclass(frozen=True)
class NtpTime:
    conn_id: int
    utc: float | None  # seconds since 1970 (UTC) as the server said, corrected by half the round trip
    failure: str = ""  # "dns", "timeout", "bad answer"


@dataclass(frozen=True)
class IpLinkUp:
    conn_id: int


@dataclass(frozen=True)
class IpLinkFailed:
    conn_id: int
    reason: str  # why the shell has no network engine for the link (the log says it too)


@dataclass(frozen=True)
class IpPacket:
    """A packet from the network for the host of an IP link."""

    conn_id: int
    packet: bytes


NetworkEvent = (PingReply | NtpTime | TcpConnected | TcpConnectFailed | TcpData | TcpClosed | TcpDrained | UdpOpened | UdpOpenFailed
                | UdpDatagram | UdpDropped | Listening | ListenFailed | TcpIncoming | Resolved | IpLinkUp | IpLinkFailed
                | IpPacket)
