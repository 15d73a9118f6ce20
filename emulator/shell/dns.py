"""Resolving a name through the DNS servers a PDP context was given with AT+QIDNSCFG.

The emulator asks those servers directly (one A query over UDP) when they answer; when none of
them can be reached it falls back to the host's resolver, so that a driver configuring a public
DNS server still works on a machine that cannot reach it (chosen).
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct

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


async def resolve_a(name: str, servers: tuple[str, ...]) -> str:
    """The address of ``name``; NameNotFound or MalformedAnswer from the first server that
    answers, or the host resolver's error (an OSError) when none does."""
    for server in servers:
        host, _, port = server.partition("#")  # "127.0.0.1#5353" names a port (tests use it)
        try:
            return await query_server(name, host, int(port) if port else 53)
        except (NameNotFound, MalformedAnswer):
            raise
        except (OSError, asyncio.TimeoutError, ValueError):
            continue
    infos = await asyncio.get_running_loop().getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    return str(infos[0][4][0])  # AF_INET: (address, port)
