"""MQTT(S) through the real pty against a real broker (Mosquitto) on 127.0.0.1: the MQTT note's
chapter 5 flow, TLS with verification on, QoS 1 and 2 as a second client on the broker sees
them, buffer mode, and the broker going away under a connected client (+QMTSTAT)."""

from __future__ import annotations

import pytest

from ecemu.commands import mqtt_codec as codec
from tests.host import AtHost
from tests.mqtt_peer import Peer, broker_or_skip
from tests.wire import OK


@pytest.fixture(scope="module")
def broker():
    running = broker_or_skip()
    yield running
    running.close()


@pytest.fixture
def host(start_modem):
    return start_modem(active=True)[1]


said = AtHost.said  # the line's answer less its echo


def urc(host: AtHost, text: str) -> None:
    wanted = b"\r\n" + text.encode() + b"\r\n"
    assert host.expect(wanted).endswith(wanted)


def test_note_chapter_5_flow_over_tcp(host, broker):
    peer = Peer(broker.port)
    peer.subscribe("topic/pub", 0)
    assert said(host, f'AT+QMTOPEN=0,"127.0.0.1",{broker.port}') == OK
    assert host.expect(b"\r\n+QMTOPEN: 0,0\r\n") == b"\r\n+QMTOPEN: 0,0\r\n"
    assert said(host, "AT+QMTOPEN?") == f'\r\n+QMTOPEN: 0,"127.0.0.1",{broker.port}\r\n'.encode() + OK
    assert said(host, 'AT+QMTCONN=0,"clientExample"') == OK
    assert host.expect(b"\r\n+QMTCONN: 0,0,0\r\n") == b"\r\n+QMTCONN: 0,0,0\r\n"
    assert said(host, "AT+QMTCONN?") == b"\r\n+QMTCONN: 0,3\r\n" + OK
    assert said(host, 'AT+QMTSUB=0,1,"topic/example",2') == OK
    assert host.expect(b"\r\n+QMTSUB: 0,1,0,2\r\n") == b"\r\n+QMTSUB: 0,1,0,2\r\n"
    assert said(host, 'AT+QMTSUB=0,2,"topic/pub",0') == OK
    urc(host, "+QMTSUB: 0,2,0,0")
    assert host.ask('AT+QMTPUBEX=0,0,0,0,"topic/pub",30', final=b"> ") == (
        b'AT+QMTPUBEX=0,0,0,0,"topic/pub",30\r\r\n> ')
    host.write(b"This is test data, hello MQTT.")
    assert host.until_final() == b"This is test data, hello MQTT." + OK
    assert host.expect(b'\r\n+QMTPUBEX: 0,0,0\r\n') == b'\r\n+QMTPUBEX: 0,0,0\r\n'
    urc(host, '+QMTRECV: 0,0,"topic/pub","This is test data, hello MQTT."')
    assert peer.messages(1) == [codec.Publish("topic/pub", b"This is test data, hello MQTT.", 0, False, False, 0)]
    peer.publish("topic/example", b"from the peer", qos=2, packet_id=5)
    recv = host.expect(b'"from the peer"\r\n')
    assert recv.startswith(b'\r\n+QMTRECV: 0,') and b',"topic/example","from the peer"' in recv
    assert said(host, 'AT+QMTUNS=0,2,"topic/pub"') == OK
    urc(host, "+QMTUNS: 0,2,0")
    assert said(host, "AT+QMTDISC=0") == OK
    urc(host, "+QMTDISC: 0,0")
    assert said(host, "AT+QMTOPEN?") == OK
    peer.close()


def test_mqtts_with_verification_and_qos_1_and_2_as_the_broker_delivers_them(host, broker):
    assert host.upload("cacert.pem", broker.ca_pem).endswith(OK)
    for line in ('AT+QSSLCFG="sslversion",2,3', 'AT+QSSLCFG="seclevel",2,1', 'AT+QSSLCFG="cacert",2,"UFS:cacert.pem"',
                 'AT+QSSLCFG="sni",2,1', 'AT+QMTCFG="ssl",3,1,2', 'AT+QMTCFG="recv/mode",3,0,1'):
        assert said(host, line) == OK
    peer = Peer(broker.port)
    peer.subscribe("dev/up", 2)
    assert said(host, f'AT+QMTOPEN=3,"localhost",{broker.tls_port}') == OK
    urc(host, "+QMTOPEN: 3,0")
    assert said(host, 'AT+QMTCONN=3,"secure-client","user","secret"') == OK
    urc(host, "+QMTCONN: 3,0,0")
    assert said(host, 'AT+QMTSUB=3,7,"dev/down",1') == OK
    urc(host, "+QMTSUB: 3,7,0,1")
    for msgid, qos in ((11, 1), (12, 2)):
        assert host.ask(f'AT+QMTPUB=3,{msgid},{qos},0,"dev/up"', final=b"> ").endswith(b"\r\n> ")
        host.write(f"qos {qos} payload\x1a".encode())
        assert host.until_final() == f"qos {qos} payload\x1a".encode() + OK
        urc(host, f"+QMTPUB: 3,{msgid},0")
    delivered = peer.messages(2)
    assert [(m.topic, m.payload, m.qos) for m in delivered] == [("dev/up", b"qos 1 payload", 1),
                                                                ("dev/up", b"qos 2 payload", 2)]
    with pytest.raises(TimeoutError):  # and nothing more: exactly once each
        peer.messages(1, within=0.5)
    peer.publish("dev/down", b"\x00binary\xff", qos=1, packet_id=9)
    line = host.expect(b'"\r\n')
    assert line.startswith(b"\r\n+QMTRECV: 3,") and line.endswith(b',"dev/down",8,"\x00binary\xff"\r\n')
    peer.close()


def test_buffer_mode_keeps_messages_until_read(host, broker):
    assert said(host, 'AT+QMTCFG="recv/mode",1,1') == OK
    assert said(host, f'AT+QMTOPEN=1,"127.0.0.1",{broker.port}') == OK
    urc(host, "+QMTOPEN: 1,0")
    assert said(host, 'AT+QMTCONN=1,"buffered"') == OK
    urc(host, "+QMTCONN: 1,0,0")
    assert said(host, 'AT+QMTSUB=1,1,"buf/#",0') == OK
    urc(host, "+QMTSUB: 1,1,0,0")
    peer = Peer(broker.port)
    for index in range(7):
        peer.publish(f"buf/{index}", f"m{index}".encode())
    for slot in range(5):
        urc(host, f"+QMTRECV: 1,{slot}")
    assert said(host, "AT+QMTRECV?") == b"\r\n+QMTRECV: 1,1,1,1,1,1\r\n" + OK
    assert said(host, "AT+QMTRECV=1,2") == b'\r\n+QMTRECV: 1,0,"buf/2","m2"\r\n' + OK
    urc(host, "+QMTRECV: 1,2")  # a message that waited takes the freed slot
    answer = said(host, "AT+QMTRECV=1")
    assert answer == (b'\r\n+QMTRECV: 1,0,"buf/0","m0"\r\n+QMTRECV: 1,0,"buf/1","m1"\r\n'
                      b'+QMTRECV: 1,0,"buf/5","m5"\r\n+QMTRECV: 1,0,"buf/3","m3"\r\n'
                      b'+QMTRECV: 1,0,"buf/4","m4"\r\n' + OK)
    urc(host, "+QMTRECV: 1,0")
    assert said(host, "AT+QMTRECV=1,0") == b'\r\n+QMTRECV: 1,0,"buf/6","m6"\r\n' + OK
    peer.close()


def test_broker_restart_is_reported_and_the_client_opens_again(host):
    broker = broker_or_skip()
    try:
        assert said(host, f'AT+QMTOPEN=0,"127.0.0.1",{broker.port}') == OK
        urc(host, "+QMTOPEN: 0,0")
        assert said(host, 'AT+QMTCONN=0,"survivor"') == OK
        urc(host, "+QMTCONN: 0,0,0")
        broker.stop()
        urc(host, "+QMTSTAT: 0,1")
        assert said(host, "AT+QMTCONN?") == OK
        broker.restart()  # on the same ports
        assert said(host, f'AT+QMTOPEN=0,"127.0.0.1",{broker.port}') == OK
        urc(host, "+QMTOPEN: 0,0")
        assert said(host, 'AT+QMTCONN=0,"survivor"') == OK
        urc(host, "+QMTCONN: 0,0,0")
    finally:
        broker.close()


def test_open_failures_are_the_notes_results(host, broker):
    assert said(host, 'AT+QMTCFG="pdpcid",4,2') == OK
    assert said(host, f'AT+QMTOPEN=4,"127.0.0.1",{broker.port}') == OK
    urc(host, "+QMTOPEN: 4,3")  # PDP context 2 is not active
    assert said(host, 'AT+QMTOPEN=5,"no-such-host.invalid",1883') == OK
    urc(host, "+QMTOPEN: 5,4")
    assert said(host, 'AT+QMTCONN=5,"x"') == b"\r\nERROR\r\n"


@pytest.fixture
def traced(start_modem, tmp_path):
    """With a trace and a TLS key log, which the test reads."""
    running, at = start_modem(active=True, trace=tmp_path / "trace.jsonl", keylog=tmp_path / "keys.log")
    return running, at, tmp_path


def open_and_connect(host: AtHost, port: int, client: int = 0, tls: bool = False) -> None:
    assert said(host, f'AT+QMTOPEN={client},"127.0.0.1",{port}') == OK
    urc(host, f"+QMTOPEN: {client},0")
    assert said(host, f'AT+QMTCONN={client},"faulty-{client}"') == OK
    urc(host, f"+QMTCONN: {client},0,0")


def test_the_shell_faults_reach_mqtt_connections(traced, broker):
    running, host, folder = traced

    # A reset by the server: `ecemu ctl server-reset client=0 family=mqtt`.
    open_and_connect(host, broker.port)
    running.control.server_reset(client=0, family="mqtt")
    urc(host, "+QMTSTAT: 0,1")
    open_and_connect(host, broker.port)
    running.control.server_close(client=0, family="mqtt")
    urc(host, "+QMTSTAT: 0,1")
    # A stalled connection: the PINGREQ gets no PINGRESP within <pkt_timeout>.
    assert said(host, 'AT+QMTCFG="keepalive",1,1') == OK
    assert said(host, 'AT+QMTCFG="timeout",1,1,1,0') == OK
    open_and_connect(host, broker.port, client=1)
    running.control.server_stall(client=1, family="mqtt")
    urc(host, "+QMTSTAT: 1,2")
    # The network dropping the PDP context.
    open_and_connect(host, broker.port, client=2)
    running.control.pdp_drop(context=1)
    urc(host, "+QMTSTAT: 2,7")
    trace = (folder / "trace.jsonl").read_text()
    assert "+QMTSTAT: 2,7" in trace


def test_mqtts_keys_go_to_the_key_log(traced, broker):
    running, host, folder = traced
    assert said(host, 'AT+QMTCFG="ssl",0,1,0') == OK  # secllevel 0: no verification
    open_and_connect(host, broker.tls_port)
    assert said(host, "AT+QMTDISC=0") == OK
    urc(host, "+QMTDISC: 0,0")
    keys = (folder / "keys.log").read_text()
    assert "CLIENT_RANDOM " in keys or "CLIENT_HANDSHAKE_TRAFFIC_SECRET " in keys


def test_the_will_reaches_subscribers_when_the_module_drops_the_link(host, broker):
    peer = Peer(broker.port, "will-watcher")
    peer.subscribe("wills/#", 1)
    assert said(host, 'AT+QMTCFG="will",4,1,1,0,"wills/4","gone"') == OK
    assert said(host, 'AT+QMTCFG="will",4') == b'\r\n+QMTCFG: "will",1,1,0,"wills/4","gone"\r\n' + OK
    open_and_connect(host, broker.port, client=4)
    assert said(host, "AT+QMTCLOSE=4") == OK  # the network closed with no DISCONNECT
    urc(host, "+QMTCLOSE: 4,0")
    [will] = peer.messages(1)
    assert (will.topic, will.payload) == ("wills/4", b"gone")
    peer.close()


def test_mqtts_with_a_client_certificate(host):
    broker = broker_or_skip(client_certificates=True)
    try:
        for name, data in (("ca.pem", broker.ca_pem), ("client.pem", broker.client_cert_pem),
                           ("client.key", broker.client_key_pem)):
            assert host.upload(name, data).endswith(OK)
        for line in ('AT+QSSLCFG="seclevel",3,1', 'AT+QSSLCFG="cacert",3,"UFS:ca.pem"', 'AT+QMTCFG="ssl",0,1,3'):
            assert said(host, line) == OK
        # Without a certificate of its own the broker refuses the handshake.
        assert said(host, f'AT+QMTOPEN=0,"localhost",{broker.tls_port}') == OK
        urc(host, "+QMTOPEN: 0,5")
        for line in ('AT+QSSLCFG="seclevel",3,2', 'AT+QSSLCFG="clientcert",3,"UFS:client.pem"',
                     'AT+QSSLCFG="clientkey",3,"UFS:client.key"'):
            assert said(host, line) == OK
        assert said(host, f'AT+QMTOPEN=0,"localhost",{broker.tls_port}') == OK
        urc(host, "+QMTOPEN: 0,0")
        assert said(host, 'AT+QMTCONN=0,"with-cert"') == OK
        urc(host, "+QMTCONN: 0,0,0")
    finally:
        broker.close()
