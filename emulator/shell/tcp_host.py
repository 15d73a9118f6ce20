"""The port over TCP: one peer at a time holds it, as a serial port has one host.

``TcpHost`` carries bytes between one TCP peer and the runner; what differs between the ways of
serving the port over TCP is how the peer is reached and how bytes are framed:

- ``RawTcpServer`` (``ecemu run --tcp-raw [HOST:]PORT``) listens, for QEMU's ``-chardev socket``
  in client mode, ser2net's raw mode, socat: every byte value is carried as it is, no telnet.
- ``RawTcpClient`` (``--connect HOST:PORT``) connects out to QEMU's or Renode's server socket, and
  tries again until it listens (and again after it goes away: a restarted simulator).
- ``rfc2217.Rfc2217Host`` (``--tcp``) listens and speaks RFC 2217 (telnet COM port control).

A peer that connects is a host that opened the port; one that goes away closed it (a DTR drop).
Until the first peer comes, what the module says (its boot URCs) is kept for it, as a pty keeps
it. TCP_NODELAY: each write goes out at once, as a UART's bytes do.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import struct
from typing import TYPE_CHECKING

from .host_link import QuietLink

if TYPE_CHECKING:
    from .runner import ModemRunner

log = logging.getLogger(__name__)

# Output kept for the first peer when it connects (the boot URCs), as a pty keeps it too.
EARLY_OUTPUT_LIMIT = 64 * 1024
# Bytes queued in the socket above which the module's output waits in the runner's queue.
SOCKET_QUEUE_HIGH = 256 * 1024
# --connect: the first retry after a refused connection, and the longest wait between two.
RETRY_FIRST = 0.05
RETRY_LONGEST = 1.0


def _proc_net_address(address: str, port: int) -> str:
    """An address as /proc/net/tcp{,6} writes it: the address's 32-bit words in host order."""
    packed = ipaddress.ip_address(address).packed
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"


def socket_owner(local: tuple, remote: tuple) -> int | None:
    """The uid owning the TCP socket bound to ``local`` and connected to ``remote`` on this
    machine (from /proc/net/tcp and tcp6), or None when there is none."""
    wanted = (_proc_net_address(*local[:2]), _proc_net_address(*remote[:2]))
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if (fields[1], fields[2]) == wanted:
                        return int(fields[7])
        except OSError:
            continue
    return None


def peer_is_same_user(sock: socket.socket) -> bool:
    """Whether the peer of a loopback connection is a socket of the user running the emulator."""
    return socket_owner(sock.getpeername(), sock.getsockname()) == os.geteuid()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Peer(asyncio.Protocol):
    """One TCP connection to the host; only the one that holds the port passes bytes."""

    def __init__(self, host: "TcpHost"):
        self.host = host
        self.transport: asyncio.Transport  # from connection_made, before anything else
        self.holds_port = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP connection's
        self.transport = transport
        self.holds_port = self.host.admit(self)

    def data_received(self, data: bytes) -> None:
        if self.holds_port:
            self.host.received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.holds_port:
            self.host.peer_left(self)

    def pause_writing(self) -> None:
        self.host.socket_full = True

    def resume_writing(self) -> None:
        self.host.socket_full = False
        if self.host.wants_writable:
            self.host.runner.host_writable()


class TcpHost(QuietLink):
    """The port carried by one TCP peer at a time (see the module docstring)."""

    open_settle = 0.1  # as a pty's: see ``runner.OPEN_SETTLE``
    name = "raw TCP"

    def __init__(self) -> None:
        self.runner: ModemRunner  # from start()
        self.peer: Peer | None = None
        self._early = bytearray()
        self._attached_once = False
        self.socket_full = False  # the peer's socket holds SOCKET_QUEUE_HIGH unsent bytes
        self.wants_writable = False

    # --- one peer at a time ------------------------------------------------------------------

    def admit(self, peer: Peer) -> bool:
        """Whether ``peer`` now holds the port; a second one is refused while the first is there."""
        transport = peer.transport
        address = transport.get_extra_info("peername")
        if self.peer is not None:
            log.info("%s: port busy, refusing %s", self.name, address)
            transport.close()
            return False
        if not self.may_connect(transport):
            return False
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=SOCKET_QUEUE_HIGH)
        self.peer = peer
        log.info("%s: %s holds the port", self.name, address)
        self.peer_came(peer)
        # What the module said before the first peer came (RDY) goes out before anything the
        # runner writes as it hears of the peer: attaching raises DTR and carries out what the
        # modem produced since (a boot URC due by now), straight to the peer.
        if not self._attached_once:
            self._attached_once = True
            early, self._early = bytes(self._early), bytearray()
            self.write(early)
        self.runner.host_attached()
        return True

    def may_connect(self, transport: asyncio.Transport) -> bool:
        return True

    def peer_came(self, peer: Peer) -> None:
        """A peer holds the port now (RFC 2217 starts its negotiation here)."""

    def peer_left(self, peer: Peer) -> None:
        if self.peer is peer:
            log.info("%s: the peer left the port", self.name)
            self.peer = None
            self.socket_full = False
            self.runner.host_left()

    def received(self, data: bytes) -> None:
        self.runner.host_data(self.decode(data))

    def decode(self, data: bytes) -> bytes:
        """The host's bytes out of what the peer sent: raw TCP carries them as they are."""
        return data

    def encode(self, data: bytes) -> bytes:
        """The module's bytes as they go to the peer: as they are."""
        return data

    # --- HostLink ----------------------------------------------------------------------------

    def write(self, data: bytes) -> int:
        peer = self.peer
        if peer is None:
            if not self._attached_once:
                self._early += data[: max(0, EARLY_OUTPUT_LIMIT - len(self._early))]
            return len(data)
        if self.socket_full or peer.transport.is_closing():
            return 0  # waits in the runner's bounded queue until the peer reads
        if data:
            peer.transport.write(self.encode(data))
        return len(data)

    def want_writable(self, on: bool) -> None:
        self.wants_writable = on

    def discard_unread(self) -> None:
        pass  # bytes already on their way through TCP cannot be called back

    def pause_reading(self, paused: bool) -> None:
        peer = self.peer
        if peer is not None and not peer.transport.is_closing():
            if paused:
                peer.transport.pause_reading()
            else:
                peer.transport.resume_reading()

    def close(self) -> None:
        if self.peer is not None:
            self.peer.transport.close()
            self.peer = None


class TcpServerHost(TcpHost):
    """Listens on HOST:PORT; on a loopback address only the user running the emulator may connect
    (``peer_is_same_user``); on any other address anyone who can reach the port drives the module."""

    scheme = "socket"  # pyserial opens raw TCP as socket://HOST:PORT

    def __init__(self, bind_host: str, bind_port: int):
        super().__init__()
        self.bind_host = bind_host
        self.bind_port = bind_port
        self._sock: socket.socket | None = None
        self._server: asyncio.AbstractServer | None = None
        # A loopback port is reachable by every local user: only our own may drive the module.
        self.loopback_only_own_user = is_loopback(bind_host)

    @property
    def address(self) -> str:
        if self._sock is None:
            return ""
        host, port = self._sock.getsockname()[:2]
        return f"{self.scheme}://{host}:{port}"

    def start(self, runner: "ModemRunner") -> None:
        self.runner = runner
        # Bound and listening here, synchronously: a peer that connects once the address is
        # announced waits in the backlog until the loop accepts it, and is never refused.
        sock = self._sock = socket.create_server((self.bind_host, self.bind_port), reuse_port=False)
        sock.setblocking(False)
        runner.loop.create_task(self._serve(runner.loop, sock))

    async def _serve(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self._server = await loop.create_server(lambda: Peer(self), sock=sock)

    def may_connect(self, transport: asyncio.Transport) -> bool:
        if self.loopback_only_own_user and not peer_is_same_user(transport.get_extra_info("socket")):
            log.warning("%s: refusing %s, a socket of another user", self.name, transport.get_extra_info("peername"))
            transport.abort()
            return False
        return True

    def close(self) -> None:
        super().close()
        if self._server is not None:
            self._server.close()
        elif self._sock is not None:
            self._sock.close()


class RawTcpServer(TcpServerHost):
    """``--tcp-raw [HOST:]PORT``: the port as a raw TCP server, binary safe both ways."""


class RawTcpClient(TcpHost):
    """``--connect HOST:PORT``: the emulator connects to the host's server socket, and tries again
    (quickly at first, then once a second) until it listens, and after the peer goes away."""

    name = "raw TCP (connecting)"

    def __init__(self, host: str, port: int):
        super().__init__()
        self.remote = (host, port)
        self._task: asyncio.Task | None = None
        self._closed = False
        self._gone = asyncio.Event()  # set when the connected peer goes away

    @property
    def address(self) -> str:
        return f"tcp-connect://{self.remote[0]}:{self.remote[1]}"

    def start(self, runner: "ModemRunner") -> None:
        self.runner = runner
        self._task = runner.loop.create_task(self._keep_connected())

    async def _keep_connected(self) -> None:
        loop = asyncio.get_running_loop()
        delay = RETRY_FIRST
        waiting_said = False
        while not self._closed:
            try:
                _, peer = await loop.create_connection(lambda: Peer(self), *self.remote)
            except OSError as exc:
                if not waiting_said:
                    log.info("%s: waiting for %s:%d to listen (%s)", self.name, *self.remote, exc.strerror or exc)
                    waiting_said = True
                await asyncio.sleep(delay)
                delay = min(RETRY_LONGEST, delay * 2)
                continue
            delay, waiting_said = RETRY_FIRST, False
            if not peer.holds_port:
                continue
            self._gone.clear()
            await self._gone.wait()

    def peer_left(self, peer: Peer) -> None:
        super().peer_left(peer)
        self._gone.set()

    def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        super().close()
