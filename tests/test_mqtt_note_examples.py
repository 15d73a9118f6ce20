"""The MQTT application note's example chapter, played line by line through the real pty against a
real Mosquitto on 127.0.0.1, every answer asserted byte for byte.

Source: Quectel "EC2x&EG9x&EM05 MQTT Application Note" V1.1 (2018-12-12) chapter 5 (5.1 without
SSL, 5.2 with SSL), the same exchanges as the examples of the "LTE Standard MQTT Application Note"
V1.2 (2020-04-22). Adapted only where the note names a public broker: the broker here is the local
Mosquitto, and the SSL example keeps verification on (seclevel 2 with the test PKI: CA, client
certificate and key in UFS).
"""

from __future__ import annotations

import pytest

from tests.host import AtHost
from tests.mqtt_peer import Peer, broker_or_skip
from tests.wire import OK

PAYLOAD = b"This is test data, hello MQTT."


@pytest.fixture(scope="module")
def broker():
    running = broker_or_skip(client_certificates=True)
    yield running
    running.close()


@pytest.fixture
def host(start_modem):
    return start_modem(active=True)[1]


def exchange(host: AtHost, line: str, answer: bytes) -> None:
    """The note's line and, after its echo, exactly the note's answer."""
    assert host.ask(line) == line.encode() + b"\r" + answer


def urc(host: AtHost, text: str) -> None:
    wanted = b"\r\n" + text.encode() + b"\r\n"
    assert host.expect(wanted) == wanted  # nothing before it: no stray byte between answers


def test_example_without_ssl(host, broker):
    """Note 5.1: receive mode with lengths, open, connect, two subscriptions, a message from another
    client, unsubscribe, publish with AT+QMTPUBEX and get it back, disconnect."""
    exchange(host, 'AT+QMTCFG="recv/mode",0,0,1', OK)
    exchange(host, f'AT+QMTOPEN=0,"127.0.0.1",{broker.port}', OK)
    urc(host, "+QMTOPEN: 0,0")
    exchange(host, "AT+QMTOPEN?", f'\r\n+QMTOPEN: 0,"127.0.0.1",{broker.port}\r\n'.encode() + OK)
    exchange(host, 'AT+QMTCONN=0,"clientExample"', OK)
    urc(host, "+QMTCONN: 0,0,0")
    exchange(host, 'AT+QMTSUB=0,1,"topic/example",2', OK)
    urc(host, "+QMTSUB: 0,1,0,2")
    exchange(host, 'AT+QMTSUB=0,2,"topic/pub",0', OK)
    urc(host, "+QMTSUB: 0,2,0,0")
    peer = Peer(broker.port, client_id="another-client")
    try:
        related = b"This is the payload related to topic"
        peer.publish("topic/example", related)  # QoS 0: <msgid> is 0
        urc(host, f'+QMTRECV: 0,0,"topic/example",{len(related)},"{related.decode()}"')
        exchange(host, 'AT+QMTUNS=0,2,"topic/example"', OK)
        urc(host, "+QMTUNS: 0,2,0")
        assert host.ask('AT+QMTPUBEX=0,0,0,0,"topic/pub",30', final=b"> ") == (
            b'AT+QMTPUBEX=0,0,0,0,"topic/pub",30\r\r\n> ')
        host.write(PAYLOAD)
        assert host.until_final() == PAYLOAD + OK  # the message is echoed as typed, then OK
        urc(host, "+QMTPUBEX: 0,0,0")
        urc(host, f'+QMTRECV: 0,0,"topic/pub",30,"{PAYLOAD.decode()}"')
        peer.publish("topic/example", b"after AT+QMTUNS")  # unsubscribed: nothing more comes
        exchange(host, "AT+QMTDISC=0", OK)
        urc(host, "+QMTDISC: 0,0")
        assert host.unasked() == b""
    finally:
        peer.close()


def test_example_with_ssl_and_verification(host, broker):
    """Note 5.2: SSL context 2 with CA, client certificate and key; seclevel 2; open on the TLS
    port, connect, subscribe, publish, disconnect."""
    for name, data in (("cacert.pem", broker.ca_pem), ("client.pem", broker.client_cert_pem),
                       ("user_key.pem", broker.client_key_pem)):
        assert host.upload(name, data).endswith(OK)
    for line in ('AT+QMTCFG="SSL",0,1,2', 'AT+QSSLCFG="cacert",2,"UFS:cacert.pem"',
                 'AT+QSSLCFG="clientcert",2,"UFS:client.pem"', 'AT+QSSLCFG="clientkey",2,"UFS:user_key.pem"',
                 'AT+QSSLCFG="seclevel",2,2', 'AT+QSSLCFG="sslversion",2,4', 'AT+QSSLCFG="ciphersuite",2,0xFFFF',
                 'AT+QSSLCFG="ignorelocaltime",2,1', 'AT+QMTCFG="version",0,4'):
        exchange(host, line, OK)
    exchange(host, f'AT+QMTOPEN=0,"localhost",{broker.tls_port}', OK)  # the name the certificate carries
    urc(host, "+QMTOPEN: 0,0")
    exchange(host, "AT+QMTOPEN?", f'\r\n+QMTOPEN: 0,"localhost",{broker.tls_port}\r\n'.encode() + OK)
    exchange(host, 'AT+QMTCONN=0,"clientExample"', OK)
    urc(host, "+QMTCONN: 0,0,0")
    exchange(host, 'AT+QMTSUB=0,1,"topic/example",2', OK)
    urc(host, "+QMTSUB: 0,1,0,2")
    exchange(host, 'AT+QMTSUB=0,2,"topic/pub",0', OK)
    urc(host, "+QMTSUB: 0,2,0,0")
    exchange(host, 'AT+QMTUNS=0,2,"topic/example"', OK)
    urc(host, "+QMTUNS: 0,2,0")
    assert host.ask('AT+QMTPUB=0,0,0,0,"topic/pub"', final=b"> ") == b'AT+QMTPUB=0,0,0,0,"topic/pub"\r\r\n> '
    host.write(PAYLOAD + b"\x1a")  # the variable-length form: Ctrl+Z sends
    assert host.until_final() == PAYLOAD + b"\x1a" + OK
    urc(host, "+QMTPUB: 0,0,0")
    urc(host, f'+QMTRECV: 0,0,"topic/pub","{PAYLOAD.decode()}"')  # recv/mode left at its default
    exchange(host, "AT+QMTDISC=0", OK)
    urc(host, "+QMTDISC: 0,0")


def test_publish_with_echo_off(host, broker):
    """The same AT+QMTPUBEX with ATE0, as drivers run it: no echo of the line nor of the message,
    the prompt, then OK and the URC."""
    assert host.ask("ATE0") == b"ATE0\r" + OK
    assert host.ask(f'AT+QMTOPEN=0,"127.0.0.1",{broker.port}') == OK
    urc(host, "+QMTOPEN: 0,0")
    assert host.ask('AT+QMTCONN=0,"clientExample"') == OK
    urc(host, "+QMTCONN: 0,0,0")
    assert host.ask('AT+QMTPUBEX=0,0,0,0,"topic/pub",30', final=b"> ") == b"\r\n> "
    host.write(PAYLOAD)
    assert host.until_final() == OK
    urc(host, "+QMTPUBEX: 0,0,0")
    assert host.ask("AT+QMTDISC=0") == OK
    urc(host, "+QMTDISC: 0,0")
