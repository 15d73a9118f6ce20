"""The MQTT family in the sans-IO core, on the module's clock: packet timeouts and retries, keepalive,
CONNACK timeout, QoS 2 exactly once, a broken broker, the PDP context going. The broker is played
by the test over plain TCP events, so every byte the module sends is checked as MQTT 3.1.1 says."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecemu.commands import mqtt_codec as codec
from ecemu.core import events as ev
from tests.harness import CoreHarness, no_internal_errors


def sent(harness: CoreHarness) -> bytes:
    return b"".join(e.data for e in harness.take_effects() if isinstance(e, ev.SendTcp))


@pytest.fixture
def connected():
    """Client 0 open and connected to a broker the test plays; keepalive 30, timeout 3 s, 2 retries."""
    with no_internal_errors():
        h = CoreHarness()
        assert h.command("AT+QIACT=1") == b"\r\nOK\r\n"
        assert h.command('AT+QMTCFG="keepalive",0,30') == b"\r\nOK\r\n"
        assert h.command('AT+QMTCFG="timeout",0,3,2,1') == b"\r\nOK\r\n"
        assert h.command('AT+QMTOPEN=0,"broker.example",1883') == b"\r\nOK\r\n"
        [open_tcp] = h.take_effects()
        assert isinstance(open_tcp, ev.OpenTcp) and (open_tcp.host, open_tcp.port) == ("broker.example", 1883)
        conn = open_tcp.conn_id
        assert h.event(ev.TcpConnected(conn, "10.0.0.1", 1883, 40000)) == b"\r\n+QMTOPEN: 0,0\r\n"
        assert h.command('AT+QMTCONN=0,"dev1","u","p"') == b"\r\nOK\r\n"
        assert sent(h) == codec.encode_connect("dev1", 30, True, "u", "p")
        assert h.event(ev.TcpData(conn, b"\x20\x02\x00\x00")) == b"\r\n+QMTCONN: 0,0,0\r\n"
        yield h, conn


def test_publish_retries_with_dup_then_fails(connected):
    h, conn = connected
    assert h.command('AT+QMTPUB=0,5,1,0,"t",3') == b"\r\n> "
    assert h.send(b"abc") == b"\r\nOK\r\n"
    first = codec.encode_publish("t", b"abc", qos=1, packet_id=5)
    assert sent(h) == first
    dup = codec.encode_publish("t", b"abc", qos=1, packet_id=5, dup=True)
    assert h.advance(2.9) == b""
    assert h.advance(0.1) == b"\r\n+QMTPUB: 0,5,1,1\r\n"
    assert sent(h) == dup
    assert h.advance(3.0) == b"\r\n+QMTPUB: 0,5,1,2\r\n"
    assert sent(h) == dup
    assert h.advance(3.0) == b"\r\n+QMTPUB: 0,5,2\r\n"
    assert sent(h) == b""
    # A late PUBACK for it changes nothing, and the identifier is free again.
    assert h.event(ev.TcpData(conn, codec.encode_ack(codec.PUBACK, 5))) == b""
    assert h.command('AT+QMTPUB=0,5,1,0,"t",1') == b"\r\n> "


def test_qos_2_publish_flow(connected):
    h, conn = connected
    assert h.command('AT+QMTPUB=0,9,2,1,"t"') == b"\r\n> "
    assert h.send(b"xy\x1a") == b"\r\nOK\r\n"
    assert sent(h) == codec.encode_publish("t", b"xy", qos=2, retain=True, packet_id=9)
    assert h.event(ev.TcpData(conn, b"\x50\x02\x00\x09")) == b""  # PUBREC
    assert sent(h) == codec.encode_ack(codec.PUBREL, 9)
    assert h.advance(3.0) == b"\r\n+QMTPUB: 0,9,1,1\r\n"  # PUBREL again, not the PUBLISH
    assert sent(h) == codec.encode_ack(codec.PUBREL, 9)
    assert h.event(ev.TcpData(conn, b"\x70\x02\x00\x09")) == b"\r\n+QMTPUB: 0,9,0\r\n"  # PUBCOMP
    assert h.advance(10) == b""


def test_incoming_qos_2_is_delivered_once(connected):
    h, conn = connected
    publish = codec.encode_publish("in", b"once", qos=2, packet_id=77)
    assert h.event(ev.TcpData(conn, publish)) == b'\r\n+QMTRECV: 0,77,"in","once"\r\n'
    assert sent(h) == codec.encode_ack(codec.PUBREC, 77)
    duplicate = codec.encode_publish("in", b"once", qos=2, packet_id=77, dup=True)
    assert h.event(ev.TcpData(conn, duplicate)) == b""
    assert sent(h) == codec.encode_ack(codec.PUBREC, 77)
    assert h.event(ev.TcpData(conn, codec.encode_ack(codec.PUBREL, 77))) == b""
    assert sent(h) == codec.encode_ack(codec.PUBCOMP, 77)
    assert h.event(ev.TcpData(conn, publish)) == b'\r\n+QMTRECV: 0,77,"in","once"\r\n'  # a new message


def test_keepalive_pings_on_the_module_clock_and_a_missing_pingresp_ends_the_link(connected):
    h, conn = connected
    assert h.advance(29.9) == b"" and sent(h) == b""
    assert h.advance(0.1) == b""
    assert sent(h) == codec.PINGREQ_PACKET
    assert h.event(ev.TcpData(conn, b"\xd0\x00")) == b""
    assert h.advance(30) == b""
    assert sent(h) == codec.PINGREQ_PACKET
    assert h.advance(3) == b"\r\n+QMTSTAT: 0,2\r\n"
    assert any(isinstance(e, ev.CloseTcp) for e in h.take_effects())
    assert h.command("AT+QMTCONN?") == b"\r\nOK\r\n"


def test_connack_that_never_comes():
    with no_internal_errors():
        h = CoreHarness()
        h.command("AT+QIACT=1")
        h.command('AT+QMTOPEN=2,"10.1.1.1",1883')
        [open_tcp] = h.take_effects()
        h.event(ev.TcpConnected(open_tcp.conn_id, "10.1.1.1", 1883, 40000))
        assert h.command('AT+QMTCONN=2,"x"') == b"\r\nOK\r\n"
        assert h.command("AT+QMTCONN?") == b"\r\n+QMTCONN: 2,2\r\n\r\nOK\r\n"
        assert h.advance(4.9) == b""
        assert h.advance(0.1) == b"\r\n+QMTSTAT: 2,4\r\n"  # the default <pkt_timeout>, 5 s


def test_refused_connack_code_is_shown(connected):
    h = CoreHarness()
    h.command("AT+QIACT=1")
    h.command('AT+QMTOPEN=0,"10.1.1.1",1883')
    [open_tcp] = h.take_effects()
    h.event(ev.TcpConnected(open_tcp.conn_id, "10.1.1.1", 1883, 40000))
    h.command('AT+QMTCONN=0,"x"')
    assert h.event(ev.TcpData(open_tcp.conn_id, b"\x20\x02\x00\x05")) == b"\r\n+QMTCONN: 0,0,5\r\n"
    assert h.event(ev.TcpClosed(open_tcp.conn_id)) == b"\r\n+QMTSTAT: 0,1\r\n"


def test_opening_a_client_in_use_is_result_2_and_keeps_its_link(connected):
    h, conn = connected
    assert h.command('AT+QMTOPEN=0,"other.example",1883') == b"\r\nOK\r\n\r\n+QMTOPEN: 0,2\r\n"
    assert h.command("AT+QMTCONN?") == b"\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n"
    assert h.take_effects() == []


def test_a_broker_breaking_the_protocol_ends_the_link(connected):
    h, conn = connected
    assert h.event(ev.TcpData(conn, b"\x10\x00")) == b"\r\n+QMTSTAT: 0,1\r\n"
    assert h.command("AT+QMTOPEN?") == b"\r\nOK\r\n"


def test_network_dropping_the_pdp_context(connected):
    h, conn = connected
    out = h.take_output()
    h.modem.families["pdp"].network_drop(1)
    out += h.take_output()
    assert b"\r\n+QMTSTAT: 0,7\r\n" in out


def test_urc_waits_for_the_running_command(connected):
    h, conn = connected
    assert h.command('AT+QMTPUB=0,0,0,0,"t"') == b"\r\n> "
    # A message arriving while the host types is held until the command's result, in its order.
    assert h.event(ev.TcpData(conn, codec.encode_publish("in", b"x"))) == b""
    assert h.send(b"hello\x1a") == b'\r\nOK\r\n\r\n+QMTRECV: 0,0,"in","x"\r\n\r\n+QMTPUB: 0,0,0\r\n'


@pytest.mark.parametrize("line", [
    'AT+QMTPUB=0,1,0,0,"t"',  # QoS 0 with a message identifier
    'AT+QMTPUB=0,0,1,0,"t"',  # QoS 1 without one
    'AT+QMTPUB=0,1,3,0,"t"',
    'AT+QMTSUB=0,1,"t"',
    'AT+QMTSUB=0,0,"t",1',
    'AT+QMTSUB=0,1,"",1',
    'AT+QMTUNS=0,70000,"t"',
    'AT+QMTCONN=0,"again"',  # already connected
    'AT+QMTCFG="keepalive",6,10',
    'AT+QMTCFG="nosuch",0,1',
    'AT+QMTCFG="timeout",0,0',
    "AT+QMTCLOSE=3",  # nothing open there
])
def test_bad_lines_answer_error(connected, line):
    h, _ = connected
    assert h.command(line) == b"\r\nERROR\r\n"


@pytest.mark.parametrize("split", [1, 3, 7])
def test_publish_data_split_anywhere_after_a_cr_lf_command(connected, split):
    h, conn = connected
    data = b"abcdefghij"
    assert h.send(b'AT+QMTPUB=0,0,0,0,"t",10\r\n') == b"\r\n> "
    out = b""
    for start in range(0, len(data), split):
        out += h.send(data[start:start + split])
    assert out == b"\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n"
    assert sent(h) == codec.encode_publish("t", data)


def test_the_older_pubex_form_with_the_message_in_place(connected):
    h, conn = connected
    assert h.command('AT+QMTPUBEX=0,4,1,0,"t","in place"') == b"\r\nOK\r\n"
    assert sent(h) == codec.encode_publish("t", b"in place", qos=1, packet_id=4)
    assert h.event(ev.TcpData(conn, codec.encode_ack(codec.PUBACK, 4))) == b"\r\n+QMTPUB: 0,4,0\r\n"


COMMANDS = ["+QMTCFG", "+QMTOPEN", "+QMTCLOSE", "+QMTCONN", "+QMTDISC", "+QMTSUB", "+QMTUNS", "+QMTPUB",
            "+QMTPUBEX", "+QMTRECV", "+QHTTPCFG", "+QHTTPURL", "+QHTTPGET", "+QHTTPPOST", "+QHTTPPOSTFILE",
            "+QHTTPREAD", "+QHTTPREADFILE", "+QHTTPSTOP"]
ARGS = st.lists(st.one_of(st.integers(-2, 70000).map(str), st.sampled_from(['"t"', '""', '"ssl"', '"will"',
                                                                           '"UFS:x"', "", '"a,b"', "0X1"])),
                max_size=8)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(COMMANDS), form=st.sampled_from(["=", "?", "=?", ""]), args=ARGS)
def test_any_line_of_these_families_gets_one_final_result_and_no_internal_error(name, form, args):
    with no_internal_errors():
        h = CoreHarness()
        h.command("AT+QIACT=1")
        out = h.command(f"AT{name}{form}{','.join(args) if form == '=' else ''}")
        # A prompt (> or CONNECT) waits for data: ESC ends AT+QMTPUB's, time the others'.
        if out.endswith(b"> "):
            out += h.send(b"\x1b")
        out += h.advance(66000)  # past the longest timeout (65535 s)
        finals = sum(out.count(final) for final in (b"\r\nOK\r\n", b"\r\nERROR\r\n", b"\r\n+CME ERROR: "))
        assert finals == 1, out
