"""One SNTP query (RFC 4330) over asyncio UDP: the server's time, for AT+QNTP."""

from __future__ import annotations

import asyncio
import os
import struct
import time

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
PACKET = struct.Struct("!B B b b 11I")  # RFC 4330 section 4, without the optional fields


class SntpError(Exception):
    pass


def _ntp_seconds(high: int, low: int) -> float:
    return high - NTP_EPOCH_OFFSET + low / 2**32


def build_request(transmit: float) -> bytes:
    """A client request (mode 3, version 4) with ``transmit`` as its Transmit Timestamp."""
    seconds = transmit + NTP_EPOCH_OFFSET
    fields = [0] * 11
    fields[9], fields[10] = int(seconds), int((seconds % 1) * 2**32)
    return PACKET.pack((4 << 3) | 3, 0, 0, 0, *fields)


def parse_reply(packet: bytes, request_transmit: tuple[int, int]) -> float:
    """The server's Transmit Timestamp (seconds since 1970) of a valid reply to our request."""
    if len(packet) < PACKET.size:
        raise SntpError("short answer")
    first, stratum, _poll, _precision, *fields = PACKET.unpack_from(packet)
    mode, leap = first & 7, first >> 6
    if mode not in (4, 5) or leap == 3 or stratum == 0:
        raise SntpError(f"not a usable answer (mode {mode}, leap {leap}, stratum {stratum})")
    if (fields[5], fields[6]) != request_transmit:  # Originate must echo our Transmit (RFC 4330 5)
        raise SntpError("answer to another request")
    if fields[9] == 0 and fields[10] == 0:
        raise SntpError("no transmit time")
    return _ntp_seconds(fields[9], fields[10])


class _Client(asyncio.DatagramProtocol):
    def __init__(self, request: bytes, done: asyncio.Future):
        self.request = request
        self.done = done

    def connection_made(self, transport) -> None:
        transport.sendto(self.request)

    def datagram_received(self, data: bytes, addr) -> None:
        if not self.done.done():
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


async def query(address: str, port: int) -> float:
    """The server's time now (UTC seconds since 1970), corrected by half the round trip."""
    loop = asyncio.get_running_loop()
    # A random transmit time identifies the answer, as RFC 4330 section 5 suggests for clients.
    request = build_request(time.time() + int.from_bytes(os.urandom(2), "big") / 2**16)
    request_transmit = PACKET.unpack(request)[-2:]
    done: asyncio.Future = loop.create_future()
    started = loop.time()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Client(request, done), remote_addr=(address, port))
    try:
        answer = await done
    finally:
        transport.close()
    return parse_reply(answer, tuple(request_transmit)) + (loop.time() - started) / 2
