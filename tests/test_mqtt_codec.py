"""The MQTT packet codec against the bytes MQTT 3.1.1 gives, and the decoder over any split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecemu.commands import mqtt_codec as m


def test_connect_bytes_as_3_1_1_lays_them_out():
    # 3.1.2: protocol name, level 4, flags (clean session), keepalive 60; payload: the client id.
    assert m.encode_connect("c1", 60, True) == (
        b"\x10\x0e" b"\x00\x04MQTT" b"\x04" b"\x02" b"\x00\x3c" b"\x00\x02c1")


def test_connect_3_1_with_will_user_and_password():
    packet = m.encode_connect("id", 120, False, "u", "pw", m.Will("w/t", b"bye", qos=1, retain=True), level=3)
    body = b"\x00\x06MQIsdp\x03" + bytes((0x80 | 0x40 | 0x20 | 0x08 | 0x04,)) + b"\x00\x78"
    body += b"\x00\x02id" + b"\x00\x03w/t" + b"\x00\x03bye" + b"\x00\x01u" + b"\x00\x02pw"
    assert packet == b"\x10" + bytes((len(body),)) + body


def test_remaining_length_examples_of_2_2_3():
    for length, encoded in ((0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"),
                            (16_384, b"\x80\x80\x01"), (2_097_151, b"\xff\xff\x7f"),
                            (268_435_455, b"\xff\xff\xff\x7f")):
        assert m.encode_remaining_length(length) == encoded
    with pytest.raises(ValueError):
        m.encode_remaining_length(268_435_456)


def test_publish_subscribe_and_acks():
    assert m.encode_publish("a/b", b"hi", qos=1, packet_id=10, retain=True, dup=True) == (
        b"\x3b\x09\x00\x03a/b\x00\x0ahi")
    assert m.encode_publish("a", b"", qos=0) == b"\x30\x03\x00\x01a"
    assert m.encode_subscribe(1, [("a", 2), ("b/#", 0)]) == b"\x82\x0c\x00\x01\x00\x01a\x02\x00\x03b/#\x00"
    assert m.encode_unsubscribe(2, ["a"]) == b"\xa2\x05\x00\x02\x00\x01a"
    assert m.encode_ack(m.PUBREL, 7) == b"\x62\x02\x00\x07"
    assert m.encode_ack(m.PUBACK, 7) == b"\x40\x02\x00\x07"
    assert m.PINGREQ_PACKET == b"\xc0\x00" and m.DISCONNECT_PACKET == b"\xe0\x00"


def test_decoder_reads_what_a_broker_sends():
    decoder = m.Decoder(1 << 20)
    stream = (b"\x20\x02\x01\x00" b"\x90\x04\x00\x05\x01\x80" b"\xb0\x02\x00\x06" b"\xd0\x00"
              b"\x62\x02\x00\x09" + m.encode_publish("t", b"x" * 200, qos=2, packet_id=3))
    assert decoder.feed(stream) == [
        m.ConnAck(True, 0), m.SubAck(5, (1, 0x80)), m.Ack(m.UNSUBACK, 6), m.PingResp(), m.Ack(m.PUBREL, 9),
        m.Publish("t", b"x" * 200, 2, False, False, 3)]


@given(payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=5), cut=st.integers(0, 2000),
       qos=st.integers(0, 2))
def test_decoder_gives_the_same_packets_however_the_bytes_are_split(payloads, cut, qos):
    packets = [m.encode_publish(f"t/{i}", p, qos=qos, packet_id=i + 1 if qos else 0) for i, p in enumerate(payloads)]
    stream = b"".join(packets)
    cut = min(cut, len(stream))
    decoder = m.Decoder(1 << 20)
    got = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
    assert got == [m.Publish(f"t/{i}", p, qos, False, False, i + 1 if qos else 0) for i, p in enumerate(payloads)]


@pytest.mark.parametrize("stream", [
    b"\x20\x03\x00\x00\x00",  # CONNACK of three bytes
    b"\x21\x02\x00\x00",  # CONNACK with flags
    b"\x36\x05\x00\x01t\x00\x01",  # PUBLISH with QoS 3
    b"\x10\x00",  # a CONNECT, which only a server receives
    b"\x90\x03\x00\x01\x03",  # SUBACK granting QoS 3
    b"\xd0\x80\x80\x80\x80\x01",  # five length bytes
    b"\x30\x05\x00\x09abc",  # topic longer than the packet
])
def test_decoder_refuses_what_is_not_mqtt(stream):
    with pytest.raises(m.MalformedPacket):
        m.Decoder(1 << 20).feed(stream)


def test_decoder_refuses_a_packet_larger_than_its_bound_before_it_arrives():
    with pytest.raises(m.MalformedPacket):
        m.Decoder(1000).feed(b"\x30\xe9\x07")  # announces 1001 bytes
