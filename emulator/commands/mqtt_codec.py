"""MQTT 3.1 and 3.1.1 packets, both ways, as bytes: the codec of the MQTT family (no I/O).

OASIS MQTT Version 3.1.1 chapters 2 and 3 (section numbers below); protocol level 3 is MQTT 3.1
("MQIsdp"), level 4 is 3.1.1, as AT+QMTCFG="version" chooses. The client side only: what the
module encodes (CONNECT, PUBLISH, PUBACK ..., SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT) and
what it decodes from a broker (CONNACK, PUBLISH, PUBACK ..., SUBACK, UNSUBACK, PINGRESP).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Control packet types (2.2.1).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

MAX_REMAINING_LENGTH = 268_435_455  # 2.2.3: four bytes of variable length


class MalformedPacket(ValueError):
    """The broker sent something that is not an MQTT packet a client can receive (4.8)."""


@dataclass(frozen=True)
class Will:
    topic: str
    message: bytes
    qos: int = 0
    retain: bool = False


# --- encoding -------------------------------------------------------------------------------------


def encode_remaining_length(length: int) -> bytes:
    """2.2.3: seven bits a byte, least significant first, the top bit saying more follow."""
    if not 0 <= length <= MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {length} out of range")
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    """1.5.3: a two-byte length, then UTF-8."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) > 0xFFFF:
        raise ValueError("string longer than 65535 bytes")
    return struct.pack("!H", len(data)) + data


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes(((kind << 4) | flags,)) + encode_remaining_length(len(body)) + body


def encode_connect(client_id: str, keepalive: int, clean_session: bool, username: str | None = None,
                   password: str | None = None, will: Will | None = None, level: int = 4) -> bytes:
    """3.1: CONNECT. ``level`` 3 is MQTT 3.1 (protocol name "MQIsdp"), 4 is 3.1.1 ("MQTT")."""
    name = b"MQIsdp" if level == 3 else b"MQTT"
    flags = 0x02 if clean_session else 0
    payload = _string(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += _string(will.topic) + _string(will.message)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
    header = _string(name) + bytes((level, flags)) + struct.pack("!H", keepalive)
    return _packet(CONNECT, 0, header + payload)


def encode_publish(topic: str, payload: bytes, qos: int = 0, retain: bool = False, dup: bool = False,
                   packet_id: int = 0) -> bytes:
    """3.3: PUBLISH; a packet identifier only for QoS 1 and 2."""
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = _string(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    return _packet(PUBLISH, flags, body + payload)


def encode_ack(kind: int, packet_id: int) -> bytes:
    """3.4 - 3.7: PUBACK, PUBREC, PUBREL (flags 0010, 3.6.1), PUBCOMP."""
    return _packet(kind, 0x02 if kind == PUBREL else 0, struct.pack("!H", packet_id))


def encode_subscribe(packet_id: int, topics: list[tuple[str, int]]) -> bytes:
    """3.8: SUBSCRIBE (flags 0010)."""
    body = struct.pack("!H", packet_id) + b"".join(_string(topic) + bytes((qos,)) for topic, qos in topics)
    return _packet(SUBSCRIBE, 0x02, body)


def encode_unsubscribe(packet_id: int, topics: list[str]) -> bytes:
    """3.10: UNSUBSCRIBE (flags 0010)."""
    return _packet(UNSUBSCRIBE, 0x02, struct.pack("!H", packet_id) + b"".join(_string(t) for t in topics))


PINGREQ_PACKET = bytes((PINGREQ << 4, 0))  # 3.12
DISCONNECT_PACKET = bytes((DISCONNECT << 4, 0))  # 3.14


# --- decoding -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnAck:
    session_present: bool
    return_code: int  # 3.2.2.3: 0 accepted, 1 - 5 refused


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int  # 0 for QoS 0


@dataclass(frozen=True)
class Ack:
    """PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK: a packet identifier and nothing else."""

    kind: int
    packet_id: int


@dataclass(frozen=True)
class SubAck:
    packet_id: int
    granted: tuple[int, ...]  # 3.9.3: 0 - 2, or 0x80 for a failure


@dataclass(frozen=True)
class PingResp:
    pass


Packet = ConnAck | Publish | Ack | SubAck | PingResp

# What fixed-header flags each packet a client receives must carry (2.2.2); PUBLISH's vary.
_FIXED_FLAGS = {CONNACK: 0, PUBACK: 0, PUBREC: 0, PUBREL: 2, PUBCOMP: 0, SUBACK: 0, UNSUBACK: 0, PINGRESP: 0}


class Decoder:
    """Bytes from the broker in, whole packets out; ``max_packet`` bounds what it keeps."""

    def __init__(self, max_packet: int):
        self.max_packet = max_packet
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        """Every packet ``data`` completes; MalformedPacket when the stream is broken."""
        self.add(data)
        packets: list[Packet] = []
        while (packet := self.next_packet()) is not None:
            packets.append(packet)
        return packets

    def add(self, data: bytes) -> None:
        """Bytes from the broker, to be taken as packets with ``next_packet``."""
        self._buffer += data

    def next_packet(self) -> Packet | None:
        """The next whole packet, None until more bytes complete one; MalformedPacket when the
        stream is broken."""
        header = self._header()
        if header is None:
            return None
        start, length = header
        if start + length > len(self._buffer):
            return None
        first = self._buffer[0]
        body = bytes(self._buffer[start:start + length])
        del self._buffer[:start + length]
        return _decode(first >> 4, first & 0x0F, body)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet taken as packets."""
        return len(self._buffer)

    def _header(self) -> tuple[int, int] | None:
        """(where the body starts, its length) once the fixed header is complete."""
        buffer = self._buffer
        length, multiplier = 0, 1
        for index in range(1, 5):
            if index >= len(buffer):
                return None
            byte = buffer[index]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            if not byte & 0x80:
                if length > self.max_packet:
                    raise MalformedPacket(f"a packet of {length} bytes is larger than {self.max_packet}")
                return index + 1, length
        raise MalformedPacket("remaining length longer than four bytes")


def _packet_id(body: bytes, at: int = 0) -> int:
    if len(body) < at + 2:
        raise MalformedPacket("packet identifier missing")
    return struct.unpack_from("!H", body, at)[0]


def _decode(kind: int, flags: int, body: bytes) -> Packet:
    if kind != PUBLISH and _FIXED_FLAGS.get(kind) != flags:
        raise MalformedPacket(f"packet type {kind} with flags {flags:#x} is not one a client receives")
    if kind == CONNACK:
        if len(body) != 2 or body[0] & 0xFE:
            raise MalformedPacket("CONNACK is two bytes, the first 0 or 1")
        return ConnAck(bool(body[0] & 1), body[1])
    if kind == PUBLISH:
        qos = (flags >> 1) & 3
        if qos == 3:
            raise MalformedPacket("PUBLISH with QoS 3")
        if len(body) < 2:
            raise MalformedPacket("PUBLISH without a topic")
        topic_length = struct.unpack_from("!H", body)[0]
        at = 2 + topic_length
        if len(body) < at:
            raise MalformedPacket("PUBLISH topic longer than the packet")
        try:
            topic = body[2:at].decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("PUBLISH topic is not UTF-8") from None
        packet_id = 0
        if qos:
            packet_id = _packet_id(body, at)
            at += 2
        return Publish(topic, body[at:], qos, bool(flags & 1), bool(flags & 8), packet_id)
    if kind in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
        if len(body) != 2:
            raise MalformedPacket(f"packet type {kind} has two bytes")
        return Ack(kind, _packet_id(body))
    if kind == SUBACK:
        if len(body) < 3:
            raise MalformedPacket("SUBACK without a return code")
        granted = tuple(body[2:])
        if any(code not in (0, 1, 2, 0x80) for code in granted):
            raise MalformedPacket("SUBACK return code out of range")
        return SubAck(_packet_id(body), granted)
    if kind == PINGRESP:
        if body:
            raise MalformedPacket("PINGRESP has no body")
        return PingResp()
    raise MalformedPacket(f"packet type {kind} is not one a client receives")
