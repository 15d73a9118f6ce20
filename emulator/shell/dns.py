"""Resolving a name through the DNS servers a PDP context was given with AT+QIDNSCFG, and the
user's rules for a hermetic network (``NetworkPolicy``).

The emulator asks those servers directly (one A query over UDP) when they answer; when none of
them can be reached it falls back to the host's resolver, so that a driver configuring a public
DNS server still works on a machine that cannot reach it (chosen).

A ``NetworkPolicy`` is what ``ecemu run --resolve/--hosts-file/--local-ntp/--local-only/--allow``
(and the same arguments of ``Emulator``) ask for: names answered from a hosts map before any
resolver, names whose SNTP query the emulator answers itself, and a switch that keeps every
connection on loopback (and the networks the user allows).
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

QUERY_TIMEOUT = 2.0


class NameNotFound(socket.gaierror):
    pass


class MalformedAnswer(ValueError):
    """An answer to our query that cannot be read (truncated, a label running past its end, a
    compression pointer going nowhere): the module's "DNS parse failed" (565)."""


def build_query(name: str, query_id: int) -> bytes:
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)  # recursion desired, one question
    labels = b"".join(bytes((len(p),)) + p for p in name.rstrip(".").encode("idna").split(b"."))
    return header + labels + b"\x00" + struct.pack("!HH", 1, 1)  # A, IN


def _skip_name(packet: bytes, offset: int) -> int:
    """The offset after the name at ``offset``; a compression pointer ends a name, and only
    needs to point inside the packet (the name itself is never read)."""
    while True:
        if offset >= len(packet):
            raise MalformedAnswer("name runs past the end of the packet")
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            if offset + 2 > len(packet) or ((length & 0x3F) << 8 | packet[offset + 1]) >= len(packet):
                raise MalformedAnswer("label pointer outside the packet")
            return offset + 2
        if length & 0xC0:
            raise MalformedAnswer("reserved label type")
        if length == 0:
            return offset + 1
        offset += 1 + length


def parse_answer(packet: bytes, query_id: int) -> str:
    """The first A record of a response; NameNotFound for an error or an empty answer,
    MalformedAnswer for one that cannot be read, ValueError for someone else's datagram."""
    if len(packet) < 12:
        raise MalformedAnswer("shorter than a DNS header")
    rid, flags, qdcount, ancount, _, _ = struct.unpack("!HHHHHH", packet[:12])
    if rid != query_id or not flags & 0x8000:
        raise ValueError("not an answer to our query")
    if flags & 0x000F:
        raise NameNotFound(socket.EAI_NONAME, "name not found")
    offset = 12
    for _ in range(qdcount):
        offset = _skip_name(packet, offset) + 4
    for _ in range(ancount):
        offset = _skip_name(packet, offset)
        if offset + 10 > len(packet):
            raise MalformedAnswer("record header past the end of the packet")
        rtype, rclass, _ttl, rdlength = struct.unpack("!HHIH", packet[offset:offset + 10])
        offset += 10
        if offset + rdlength > len(packet):
            raise MalformedAnswer("record data past the end of the packet")
        if rtype == 1 and rclass == 1 and rdlength == 4:
            return socket.inet_ntoa(packet[offset:offset + 4])
        offset += rdlength
    raise NameNotFound(socket.EAI_NONAME, "no address record")


class _Query(asyncio.DatagramProtocol):
    def __init__(self, query_id: int):
        self.query_id = query_id
        self.answer: asyncio.Future = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr) -> None:
        if self.answer.done():
            return
        try:
            self.answer.set_result(parse_answer(data, self.query_id))
        except (NameNotFound, MalformedAnswer) as exc:
            self.answer.set_exception(exc)
        except ValueError:
            return  # someone else's datagram; keep waiting

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def query_server(name: str, server: str, port: int = 53, timeout: float = QUERY_TIMEOUT) -> str:
    loop = asyncio.get_running_loop()
    query_id = random.randrange(65536)
    transport, protocol = await loop.create_datagram_endpoint(lambda: _Query(query_id), remote_addr=(server, port))
    try:
        transport.sendto(build_query(name, query_id))
        return await asyncio.wait_for(protocol.answer, timeout)
    finally:
        transport.close()


async def resolve_a(name: str, servers: tuple[str, ...], fallback: bool = True) -> str:
    """The address of ``name``; NameNotFound or MalformedAnswer from the first server that
    answers, or the host resolver's error (an OSError) when none does (NameNotFound without
    ``fallback``: a hermetic network asks no resolver of the machine's)."""
    for server in servers:
        host, _, port = server.partition("#")  # "127.0.0.1#5353" names a port (tests use it)
        try:
            return await query_server(name, host, int(port) if port else 53)
        except (NameNotFound, MalformedAnswer):
            raise
        except (OSError, asyncio.TimeoutError, ValueError):
            continue
    if not fallback:
        raise NameNotFound(socket.EAI_NONAME, "no DNS server set with AT+QIDNSCFG answered")
    infos = await asyncio.get_running_loop().getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    return str(infos[0][4][0])  # AF_INET: (address, port)


# --- the user's rules: hosts map, local SNTP, loopback only ----------------------------------------

LOCAL_NAMES = ("localhost",)  # and every name under .localhost (RFC 6761): never leave the machine


class NameRefused(NameNotFound):
    """A name a hermetic network does not resolve (not in the hosts map): the module's DNS failure."""


@dataclass(frozen=True)
class HostEntry:
    """Where a name of the hosts map leads: an IPv4 address, and the port that replaces the one
    the module asked for (None: the module's own)."""

    address: str
    port: int | None = None

    def __str__(self) -> str:
        return self.address if self.port is None else f"{self.address}:{self.port}"


def _name_key(name: str) -> str:
    return name.strip().rstrip(".").lower()


def parse_host_entry(text: str) -> HostEntry:
    """``ADDR`` or ``ADDR:PORT`` (IPv4, as the module's names resolve to); ValueError otherwise."""
    address, sep, port_text = text.strip().partition(":")
    try:
        socket.inet_pton(socket.AF_INET, address)
    except OSError:
        raise ValueError(f"{address!r} is not an IPv4 address") from None
    if not sep:
        return HostEntry(address)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} is not 1-65535")
    return HostEntry(address, int(port_text))


def parse_resolve(text: str) -> tuple[str, HostEntry]:
    """``NAME=ADDR[:PORT]`` (``--resolve``); ValueError with the reason otherwise."""
    name, sep, target = text.partition("=")
    if not sep or not _name_key(name) or any(c.isspace() for c in name.strip()):
        raise ValueError(f"expected NAME=ADDR[:PORT], not {text!r}")
    return _name_key(name), parse_host_entry(target)


def read_hosts_file(path: str | Path) -> dict[str, HostEntry]:
    """A hosts file as hosts(5) writes one, ``ADDR NAME [NAME ...]`` per line, ``#`` starting a
    comment; ADDR may carry ``:PORT``. OSError when it cannot be read, ValueError (with the line
    number) when a line is not of that form."""
    hosts: dict[str, HostEntry] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"{path}:{number}: expected ADDR[:PORT] NAME [NAME ...]")
        try:
            entry = parse_host_entry(fields[0])
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        for name in fields[1:]:
            hosts.setdefault(_name_key(name), entry)  # the first line naming it wins, as in hosts(5)
    return hosts


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A network the user allows besides loopback (``--allow 192.0.2.0/24``, or one address)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an address or a network (ADDR or ADDR/PREFIX)") from None


@dataclass(frozen=True)
class NetworkPolicy:
    """How the emulator reaches the network (``ecemu run --resolve`` ...; see the module's
    docstring). The default, an empty policy, is the open network the module would have."""

    hosts: dict[str, HostEntry] = field(default_factory=dict)
    local_ntp: frozenset[str] = frozenset()  # names answered by the emulator's SNTP; "*": all
    local_only: bool = False
    allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def build(cls, resolve: "list[str] | tuple[str, ...] | dict[str, str]" = (), hosts_file: "str | Path | None" = None,
              local_ntp: "list[str] | tuple[str, ...]" = (), local_only: bool = False,
              allow: "list[str] | tuple[str, ...]" = ()) -> "NetworkPolicy":
        """From the user's words (``NAME=ADDR[:PORT]`` texts or a {NAME: "ADDR[:PORT]"} map, a hosts
        file, SNTP names, networks); ValueError or OSError saying what is wrong. ``--resolve``
        entries win over the hosts file's."""
        hosts = read_hosts_file(hosts_file) if hosts_file is not None else {}
        items = ([f"{k}={v}" for k, v in resolve.items()] if isinstance(resolve, dict) else list(resolve))
        for text in items:
            name, entry = parse_resolve(text)
            hosts[name] = entry
        names = frozenset(_name_key(name) for name in local_ntp if _name_key(name))
        return cls(hosts, names, local_only, tuple(parse_network(text) for text in allow))

    def lookup(self, name: str) -> HostEntry | None:
        return self.hosts.get(_name_key(name))

    def answers_ntp(self, name: str) -> bool:
        """Whether the emulator answers AT+QNTP to ``name`` itself."""
        return "*" in self.local_ntp or _name_key(name) in self.local_ntp

    def is_local_name(self, name: str) -> bool:
        key = _name_key(name)
        return key in LOCAL_NAMES or key.endswith(".localhost")

    def allows(self, address: str) -> bool:
        """Whether a connection to ``address`` may leave: always, unless local only; then only
        loopback and the allowed networks."""
        if not self.local_only:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return ip.is_loopback or any(ip in network for network in self.allowed)

    def describe(self) -> str:
        """One line for the log at start: what this policy does."""
        parts = []
        if self.hosts:
            parts.append("hosts " + ", ".join(f"{name}={entry}" for name, entry in sorted(self.hosts.items())))
        if self.local_ntp:
            parts.append("local SNTP for " + ", ".join(sorted(self.local_ntp)))
        if self.local_only:
            parts.append("local only (loopback" + "".join(f", {net}" for net in self.allowed) + ")")
        return "; ".join(parts) or "open network"
