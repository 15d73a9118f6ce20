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
    conn_id: int
    abort: bool = False  # reset rather than an orderly FIN


@dataclass(frozen=True)
class PauseReading:
    conn_id: int


@dataclass(frozen=True)
class ResumeReading:
    conn_id: int


Effect = OpenTcp | SendTcp | ShutdownTcp | CloseTcp | PauseReading | ResumeReading


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


NetworkEvent = TcpConnected | TcpConnectFailed | TcpData | TcpClosed | TcpDrained
