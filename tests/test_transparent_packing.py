"""How transparent mode packs the host's bytes into sends: AT+QICFG="transpktsize" (1-1460,
default 1024) and "transwaittm" (0-20 in 100 ms, default 2), TCP/IP note 2.1.15 (REFERENCE.md
"TCP/IP"): a packet goes when transpktsize bytes have come; fewer go once transwaittm has passed.

Time is the harness's, so every instant is exact. Each SSL packet is one TLS record, as the
server end reads them; on plain TCP the packets that go at the same instant are one SendTcp effect
(back-to-back segments, which the peer reads as one stream), so there the time shows the packing.
"""

from __future__ import annotations

from ecemu.core import events as ev
from tests.core_network import SimulatedNetwork
from tests.harness import CoreHarness
from tests.wire import CONNECT, NO_CARRIER, OK

GUARD = 0.5  # +++ guard time, shorter than the longest transwaittm (2 s)


def online_tcp(h: CoreHarness, *settings: str) -> int:
    """AT+QICFG lines, then a TCP connection in transparent mode; its conn_id."""
    assert h.command("AT+QIACT=1") == OK
    for line in settings:
        assert h.command(line) == OK
    assert h.command('AT+QIOPEN=1,0,"TCP","192.0.2.7",8009,0,2') == b""
    (opening,) = h.take_effects()
    assert h.event(ev.TcpConnected(opening.conn_id, "192.0.2.7", 8009, 65344)) == CONNECT
    return opening.conn_id


def sends(h: CoreHarness) -> list[bytes]:
    """The data of the SendTcp effects since last asked; nothing else may have been asked for."""
    effects = h.take_effects()
    assert all(isinstance(e, ev.SendTcp) for e in effects), effects
    return [e.data for e in effects]


def test_defaults_whole_packets_at_once_the_rest_after_200_ms():
    h = CoreHarness(escape_guard=GUARD)
    online_tcp(h)
    data = bytes(range(256)) * 9 + b"x" * 196  # 2500 bytes
    h.send(data)
    assert sends(h) == [data[:2048]]  # two packets
    h.advance(0.19)
    assert sends(h) == []
    h.advance(0.01)
    assert sends(h) == [data[2048:]]


def test_the_wait_counts_from_the_first_byte_waiting():
    h = CoreHarness(escape_guard=GUARD)
    online_tcp(h)
    h.send(b"0123456789")
    h.advance(0.1)
    h.send(b"abcdefghij")  # more before the wait is over: it does not start again
    h.advance(0.09)
    assert sends(h) == []
    h.advance(0.01)
    assert sends(h) == [b"0123456789abcdefghij"]


def test_a_packet_filled_over_several_writes_goes_when_full_the_rest_waits_anew():
    h = CoreHarness(escape_guard=GUARD)
    online_tcp(h, 'AT+QICFG="transpktsize",100', 'AT+QICFG="transwaittm",20')
    h.send(b"a" * 60)
    h.advance(1.0)
    assert sends(h) == []
    h.send(b"b" * 60)
    assert sends(h) == [b"a" * 60 + b"b" * 40]
    h.advance(1.99)  # the 20 left came with the second write: 2 s from then
    assert sends(h) == []
    h.advance(0.01)
    assert sends(h) == [b"b" * 20]


def test_transwaittm_0_sends_at_once_in_packets_of_transpktsize():
    h = CoreHarness(escape_guard=GUARD)
    online_tcp(h, 'AT+QICFG="transpktsize",100', 'AT+QICFG="transwaittm",0')
    h.send(b"c" * 250)
    assert sends(h) == [b"c" * 250]  # three packets, at once
    h.send(b"d")
    assert sends(h) == [b"d"]


def test_escape_sends_what_was_collected_as_it_leaves():
    """With transwaittm longer than the guard times, the bytes before +++ still wait when the
    escape completes: they go then, ahead of OK (chosen: the note is silent)."""
    h = CoreHarness(escape_guard=GUARD)
    online_tcp(h, 'AT+QICFG="transwaittm",20')
    h.send(b"abc")
    h.advance(GUARD + 0.1)
    assert h.send(b"+++") == b""
    h.advance(GUARD - 0.01)
    assert sends(h) == []
    assert h.advance(0.01) == OK
    assert sends(h) == [b"abc"]  # and never the +++
    assert h.advance(3) == b""
    assert sends(h) == []


def test_plus_signs_held_for_an_escape_join_the_packet_when_they_turn_out_data():
    h = CoreHarness(escape_guard=GUARD)
    online_tcp(h, 'AT+QICFG="transwaittm",20')
    h.advance(GUARD + 0.1)
    h.send(b"+")  # may begin an escape: held
    h.advance(0.1)
    h.send(b"x")  # it did not
    h.advance(1.99)
    assert sends(h) == []
    h.advance(0.01)
    assert sends(h) == [b"+x"]


def test_dtr_drop_with_atd1_sends_what_was_collected():
    h = CoreHarness(escape_guard=GUARD)
    assert h.command("AT&D1") == OK
    online_tcp(h)
    h.send(b"before the drop")
    h.modem.set_dtr(False, h.now)
    assert h.take_output() == OK
    assert sends(h) == [b"before the drop"]


def test_dtr_drop_with_atd2_sends_what_was_collected_then_closes():
    h = CoreHarness(escape_guard=GUARD)
    assert h.command("AT&D2") == OK
    conn = online_tcp(h)
    h.send(b"last words")
    h.modem.set_dtr(False, h.now)
    assert h.take_output() == NO_CARRIER
    assert h.take_effects() == [ev.SendTcp(conn, b"last words"), ev.CloseTcp(conn)]


def test_bytes_collected_when_the_peer_closes_go_with_the_connection():
    h = CoreHarness(escape_guard=GUARD)
    conn = online_tcp(h)
    h.send(b"too late")
    assert h.event(ev.TcpClosed(conn)) == NO_CARRIER
    h.advance(1)
    assert not [e for e in h.take_effects() if isinstance(e, ev.SendTcp)]


def test_settings_take_effect_at_the_next_entry():
    h = CoreHarness(escape_guard=GUARD)
    online_tcp(h)
    h.advance(GUARD + 0.1)
    h.send(b"+++")
    assert h.advance(GUARD + 0.1) == OK
    assert h.command('AT+QICFG="transpktsize",4') == OK
    assert h.command('AT+QICFG="transwaittm",1') == OK
    assert h.command("ATO") == CONNECT
    h.send(b"0123456789")
    assert sends(h) == [b"01234567"]  # two packets of 4
    h.advance(0.1)
    assert sends(h) == [b"89"]


def test_ssl_transparent_mode_packs_into_tls_records():
    h = CoreHarness(escape_guard=GUARD)
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QICFG="transpktsize",1000') == OK
    assert h.command('AT+QICFG="transwaittm",1') == OK
    net = SimulatedNetwork(h, echo=False)
    assert h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8011,2') + net.run() == CONNECT
    side = net.server()
    data = bytes(range(250)) * 10
    h.send(data)
    net.run()
    assert side.records == [1000, 1000]
    h.advance(0.1)
    net.run()
    assert side.records == [1000, 1000, 500]
    assert side.received == data


def test_ssl_transwaittm_0_sends_records_of_transpktsize_at_once():
    h = CoreHarness(escape_guard=GUARD)
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QICFG="transpktsize",100') == OK
    assert h.command('AT+QICFG="transwaittm",0') == OK
    net = SimulatedNetwork(h, echo=False)
    assert h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8011,2') + net.run() == CONNECT
    h.send(b"e" * 250)
    net.run()
    assert net.server().records == [100, 100, 50]


def test_a_udp_client_sends_each_packet_as_a_datagram():
    h = CoreHarness(escape_guard=GUARD)
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QICFG="transpktsize",100') == OK
    assert h.command('AT+QICFG="transwaittm",0') == OK
    assert h.command('AT+QIOPEN=1,2,"UDP","192.0.2.9",5000,0,2') == b""
    (opening,) = h.take_effects()
    assert isinstance(opening, ev.OpenUdp)
    assert h.event(ev.UdpOpened(opening.conn_id, "192.0.2.9", 40001)) == CONNECT
    h.send(b"d" * 250)
    assert h.take_effects() == [ev.SendDatagram(opening.conn_id, b"d" * 100, "", 0),
                                ev.SendDatagram(opening.conn_id, b"d" * 100, "", 0),
                                ev.SendDatagram(opening.conn_id, b"d" * 50, "", 0)]


def test_what_transparent_mode_sent_is_counted_for_at_qisend_0():
    h = CoreHarness(escape_guard=GUARD)
    online_tcp(h, 'AT+QICFG="transwaittm",0')
    h.send(b"e" * 30)
    assert sends(h) == [b"e" * 30]
    h.advance(GUARD)
    h.send(b"+++")
    assert h.advance(GUARD) == OK
    # TCP/IP note 2.1.8: <total_send_length>,<ackedbytes>,<unackedbytes>; the 30 bytes are still
    # in the module's buffers (not drained), so they count as not acknowledged.
    assert h.command("AT+QISEND=0,0") == b"\r\n+QISEND: 30,0,30\r\n" + OK
