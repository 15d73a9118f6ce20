"""Exchanges recorded on real modules of the family, replayed byte for byte through the real pty
against servers started here (HTTP, TLS, SNTP, TCP echo, Mosquitto).

Each test names the module, its firmware and where the exchange was published (REFERENCE.md
lists them with the rule each one shows). The module's side is kept as it was; the host's side is
what that host sent, with the public servers of the log replaced by local ones:

- EG800K, firmware EG800KCNGCR07A06M04: the test reports of the NuModem project (GitHub
  Nuxtack-tw/NuModem, ``reports/data-connection-test-plan.md``, ``reports/p3-http-test-procedure.md``,
  ``reports/p5-ssl-test-results.md``, ``reports/qfupl-usage-and-test.md``), 2026-08.
- EC800M, firmware EC800MCNGAR06A05M08: a terminal program's log of an Alibaba Cloud MQTT session in
  the notes of the E53_Cat1 project (GitHub missing-shell/E53_Cat1, ``Related.md`` "Cat1 与 4G",
  commit ab71dca).
- Quectel's own host SDK (GitHub quectel-develop/user-friendly-project, ``quectel/modules/src/
  ql_mqtt.c``): the inline AT+QMTPUB it sends for EC800M, EC25 and BG96.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ecemu.api import Emulator
from ecemu.http_server import HttpTestServer
from tests.host import AtHost
from tests.mqtt_peer import Peer, broker_or_skip
from tests.plain_servers import SntpServer, TcpEchoServer
from tests.tls_servers import TlsServer
from tests.wire import ERROR, OK

# Context 1's address: the first host of the pool profiles/EG800K-CN.toml gives (10.187.7.0/24),
# written out rather than read from the profile the emulator loads.
EG800K_ADDRESS = "10.187.7.1"


said = AtHost.said  # the answer less the echo (the module echoes, ATE1, as in the logs)


def urc(host: AtHost, text: str) -> None:
    wanted = b"\r\n" + text.encode() + b"\r\n"
    assert host.expect(wanted) == wanted  # nothing before it


@pytest.fixture
def start(tmp_path):
    """``start(profile)``: a booted module whose boot URCs the opening host does not see."""
    running: list[Emulator] = []

    def booted(profile: str) -> AtHost:
        emulator = Emulator(profile=profile, ufs=tmp_path / "ufs").start()
        running.append(emulator)
        emulator.wait_for_boot()
        return AtHost(emulator.port, timeout=30)

    yield booted
    for emulator in running:
        emulator.stop()


@pytest.fixture
def eg800k(start):
    with start("EG800K-CN") as host:
        yield host


@pytest.fixture
def ec800m(start):
    with start("EC800M-CN") as host:
        yield host


@pytest.fixture(scope="module")
def broker():
    running = broker_or_skip()
    yield running
    running.close()


@pytest.fixture(scope="module")
def http_server():
    with HttpTestServer() as server:
        yield server


# --- EG800K: boot and the default bearer (NuModem P1, P3 §3-§5) ------------------------------------


def test_eg800k_boots_with_cfun_and_its_context_already_active(tmp_path):
    """After power-on: RDY, +CFUN: 1, +CPIN: READY, +QUSIM: 1, +QIND: SMS DONE, +QIND: PB DONE; then
    AT+QIACT? shows the context the network activated at attach, before the host did anything,
    and AT+QIACT=1 on it answers ERROR."""
    boot = b"".join(b"\r\n" + text + b"\r\n" for text in (b"RDY", b"+CFUN: 1", b"+CPIN: READY", b"+QUSIM: 1",
                                                          b"+QIND: SMS DONE", b"+QIND: PB DONE"))
    with Emulator(profile="EG800K-CN", ufs=tmp_path / "ufs") as emulator, AtHost(emulator.port) as eg800k:
        assert eg800k.read_exactly(len(boot)) == boot  # the host opened the port: the module powers on
        replay_boot_answers(eg800k)


def replay_boot_answers(eg800k: AtHost) -> None:
    assert said(eg800k, "ATI") == b"\r\nQuectel\r\nEG800K\r\nRevision: EG800KCNGCR07A06M04\r\n" + OK
    assert said(eg800k, "AT+QIACT?") == f'\r\n+QIACT: 1,1,1,"{EG800K_ADDRESS}"\r\n'.encode() + OK
    assert said(eg800k, "AT+QIACT=1") == ERROR
    # The 3GPP commands see the same context, and AT+QICSGP reads the APN the network gave.
    assert said(eg800k, "AT+CGACT?") == b"\r\n+CGACT: 1,1\r\n" + OK
    assert said(eg800k, "AT+CGPADDR=1") == f'\r\n+CGPADDR: 1,"{EG800K_ADDRESS}"\r\n'.encode() + OK
    assert said(eg800k, "AT+QICSGP=1") == b'\r\n+QICSGP: 1,"cmnet","","",0\r\n' + OK
    assert said(eg800k, "AT+CGDCONT?") == b'\r\n+CGDCONT: 1,"IP","cmnet","0.0.0.0",0,0,0,0\r\n' + OK


def test_eg800k_sockets_use_the_default_bearer_and_it_comes_back_after_cfun(eg800k):
    with TcpEchoServer() as server:
        assert said(eg800k, f'AT+QIOPEN=1,0,"TCP","127.0.0.1",{server.port},0,0') == OK  # no AT+QIACT first
        eg800k.expect(b"+QIOPEN: 0,0\r\n")
        assert said(eg800k, "AT+QICLOSE=0") == OK
    assert said(eg800k, "AT+CFUN=0") == OK
    eg800k.expect(b'+QIURC: "pdpdeact",1\r\n')
    assert said(eg800k, "AT+QIACT?") == OK
    assert said(eg800k, "AT+CFUN=1") == OK
    assert said(eg800k, "AT+QIACT?") == f'\r\n+QIACT: 1,1,1,"{EG800K_ADDRESS}"\r\n'.encode() + OK
    # Taken down by the host, the context activates again on the host's request.
    assert said(eg800k, "AT+QIDEACT=1") == OK
    assert said(eg800k, "AT+CGACT?") == b"\r\n+CGACT: 1,0\r\n" + OK
    assert said(eg800k, "AT+QIACT=1") == OK


def test_a_profile_without_a_default_bearer_waits_for_the_host(ec800m):
    """The four EC200x/EC800x profiles keep the contexts down until the host activates one (no log
    of theirs shows otherwise): AT+CGDCONT and AT+CGACT as an EC800M (EC800MCNGAR06A05M08) took
    them in the EC800M log."""
    assert said(ec800m, "AT+QIACT?") == OK
    assert said(ec800m, 'AT+CGDCONT=1,"IP","CMNET"') == OK
    assert said(ec800m, "AT+CGACT=1,1") == OK
    assert said(ec800m, "AT+CGACT?") == b"\r\n+CGACT: 1,1\r\n" + OK


# --- AT+QNTP's time (NuModem P1 1-4) ----------------------------------------------------------------


def test_qntp_answers_the_servers_utc_and_the_zone(eg800k):
    """``+QNTP: 0,"2026/08/06,12:40:04+32"`` while AT+CCLK? read 20:40 and AT+QLTS=2 20:40: the
    time is UTC, the zone (+32, UTC+8) follows it; AT+CCLK shows the local time."""
    utc = datetime(2026, 8, 6, 12, 40, 4, tzinfo=timezone.utc).timestamp()
    with SntpServer(utc=utc) as server:
        assert said(eg800k, 'AT+CCLK="26/08/06,20:00:00+32"') == OK
        assert said(eg800k, f'AT+QNTP=1,"127.0.0.1",{server.port}') == OK
        urc(eg800k, '+QNTP: 0,"2026/08/06,12:40:04+32"')
    assert said(eg800k, "AT+CCLK?").startswith(b'\r\n+CCLK: "26/08/06,20:40:0')
    assert said(eg800k, "AT+QLTS=2").startswith(b'\r\n+QLTS: "2026/08/06,20:40:0')
    assert said(eg800k, "AT+QLTS=1").startswith(b'\r\n+QLTS: "2026/08/06,12:40:0')


# --- EG800K HTTP(S) (NuModem P3 3-1 to 3-10) ------------------------------------------------------


set_url = AtHost.set_http_url


def read_body(host: AtHost) -> bytes:
    assert host.ask("AT+QHTTPREAD=80", final=b"CONNECT\r\n") == b"AT+QHTTPREAD=80\r\r\nCONNECT\r\n"
    answer = host.until_final()
    assert answer.endswith(OK)
    urc(host, "+QHTTPREAD: 0")
    return answer[:-len(OK)]


def test_eg800k_url_get_and_read(eg800k, http_server):
    """3-1: the URL reads back unquoted; 3-2: a GET of a body with no length answers
    ``+QHTTPGET: 0,200`` (two fields); 3-3: CONNECT, the body, OK, ``+QHTTPREAD: 0``."""
    url = f"{http_server.url}/chunked/559"
    set_url(eg800k, url)
    assert said(eg800k, "AT+QHTTPURL?") == f"\r\n+QHTTPURL: {url}\r\n".encode() + OK
    assert said(eg800k, "AT+QHTTPGET=80") == OK
    urc(eg800k, "+QHTTPGET: 0,200")
    assert len(read_body(eg800k)) == 559


def test_eg800k_status_404_and_an_unresolvable_name(eg800k, http_server):
    """3-8: ``+QHTTPGET: 0,404,0``; 3-7: ``+CME ERROR: 716`` for a name that does not resolve,
    then AT+QHTTPREAD answers 705."""
    set_url(eg800k, f"{http_server.url}/status/404/empty")
    assert said(eg800k, "AT+QHTTPGET=80") == OK
    urc(eg800k, "+QHTTPGET: 0,404,0")
    set_url(eg800k, "http://no-such-host-numodem-test.invalid/")
    assert said(eg800k, "AT+QHTTPGET=80") == b"\r\n+CME ERROR: 716\r\n"
    assert said(eg800k, "AT+QHTTPREAD=80") == b"\r\n+CME ERROR: 705\r\n"


def test_eg800k_getex_reads_a_range_twice(eg800k, http_server):
    """3-4: ``AT+QHTTPGETEX=80,0,8`` and ``=80,8,8`` on a 16-byte ``/range/16`` both answer
    ``+QHTTPGET: 0,206,8``; the two reads give ``abcdefgh`` and ``ijklmnop``."""
    set_url(eg800k, f"{http_server.url}/range/16")
    for start, part in ((0, b"abcdefgh"), (8, b"ijklmnop")):
        assert said(eg800k, f"AT+QHTTPGETEX=80,{start},8") == OK
        urc(eg800k, "+QHTTPGET: 0,206,8")
        assert read_body(eg800k) == part
    assert http_server.requests[-1].headers["Range"] == "bytes=8-15"


def test_eg800k_post_form(eg800k, http_server):
    """3-5: ``AT+QHTTPPOST=20,80,80``, CONNECT, ``Message=HelloQuectel``, OK, then
    ``+QHTTPPOST: 0,200,<length>``; the server saw Content-Length 20, the form's Content-Type and
    ``User-Agent: QUECTEL_MODULE``."""
    set_url(eg800k, f"{http_server.url}/post")
    assert said(eg800k, 'AT+QHTTPCFG="contenttype",0') == OK
    assert eg800k.ask("AT+QHTTPPOST=20,80,80", final=b"CONNECT\r\n") == b"AT+QHTTPPOST=20,80,80\r\r\nCONNECT\r\n"
    eg800k.write(b"Message=HelloQuectel")
    assert eg800k.until_final() == OK
    urc(eg800k, "+QHTTPPOST: 0,200,20")
    seen = http_server.requests[-1]
    assert seen.body == b"Message=HelloQuectel"
    assert (seen.headers["Content-Length"], seen.headers["Content-Type"], seen.headers["User-Agent"]) == (
        "20", "application/x-www-form-urlencoded", "QUECTEL_MODULE")


def test_eg800k_follows_an_absolute_redirect_and_refuses_a_relative_one(eg800k, http_server):
    """3-10: ``/redirect/1`` (Location ``/get``) answers ``+CME ERROR: 711``; ``/redirect-to``
    with an absolute URL answers ``+QHTTPGET: 0,200`` and the body is the target's."""
    set_url(eg800k, f"{http_server.url}/redirect/1")
    assert said(eg800k, "AT+QHTTPGET=80") == b"\r\n+CME ERROR: 711\r\n"
    target = f"{http_server.url}/landed"
    set_url(eg800k, f"{http_server.url}/redirect-to?url={target}")
    assert said(eg800k, "AT+QHTTPGET=80") == OK
    text = b"Hello from ecemu: /landed\n"
    urc(eg800k, f"+QHTTPGET: 0,200,{len(text)}")
    assert read_body(eg800k) == text
    assert [r.path for r in http_server.requests[-2:]] == [f"/redirect-to?url={target}", "/landed"]


# --- EG800K SSL (NuModem P5) ----------------------------------------------------------------------


def test_eg800k_ssl_send_and_receive(eg800k):
    """5-1: a setting reads back as set; 5-2/5-3: ``+QSSLOPEN: 4,0`` and an 11-field QSSLSTATE
    naming ``"uart1"``; 5-4/5-5: 15 bytes out, ``+QSSLURC: "recv",4``, ``+QSSLRECV: 15`` and the
    bytes, then ``+QSSLRECV: 0``."""
    with TlsServer() as server:
        assert said(eg800k, 'AT+QSSLCFG="negotiatetime",1,60') == OK
        assert said(eg800k, 'AT+QSSLCFG="negotiatetime",1') == b'\r\n+QSSLCFG: "negotiatetime",1,60\r\n' + OK
        assert said(eg800k, f'AT+QSSLOPEN=1,1,4,"127.0.0.1",{server.port},0') == OK
        urc(eg800k, "+QSSLOPEN: 4,0")
        state = said(eg800k, "AT+QSSLSTATE")
        assert state.startswith(f'\r\n+QSSLSTATE: 4,"SSLClient","127.0.0.1",{server.port},'.encode())
        assert state.endswith(b',2,1,4,0,"uart1",1\r\n' + OK)
        assert eg800k.ask("AT+QSSLSEND=4,15", final=b"> ") == b"AT+QSSLSEND=4,15\r\r\n> "
        eg800k.write(b"NuModem-P5-SSL\n")
        assert eg800k.until_final() == b"NuModem-P5-SSL\n\r\nSEND OK\r\n"
        urc(eg800k, '+QSSLURC: "recv",4')
        assert said(eg800k, "AT+QSSLRECV=4,1500") == b"\r\n+QSSLRECV: 15\r\nNuModem-P5-SSL\n\r\n" + OK
        assert said(eg800k, "AT+QSSLRECV=4,1500") == b"\r\n+QSSLRECV: 0\r\n" + OK
        assert said(eg800k, "AT+QSSLCLOSE=4") == OK


def test_eg800k_ufs_size(eg800k):
    """qfupl-usage-and-test §5: the EG800K's UFS holds 286720 bytes (``AT+QFLDS="UFS"`` read
    ``180224,286720`` with files in it; empty, all of it is free)."""
    assert said(eg800k, 'AT+QFLDS="UFS"') == b"\r\n+QFLDS: 286720,286720\r\n" + OK


# --- EC800M MQTT (the EC800M log) -------------------------------------------------------------------

TOPIC = "/sys/k0leyWHxYT1/Cat1/thing/event/property/post"
# What the EC800M's host typed after ">" for a <length> of 30: a JSON document with LF line ends,
# 135 bytes. The module took the first 30, echoed only those, published them, and answered OK and
# +QMTPUBEX: 0,0,0; the other 105 bytes were neither published nor a command line.
LONG_JSON = (b'{\n  "id": "123",\n  "version": "1.0",\n  "sys": { "ack": 0 },\n  "params": { "LINK_TEST": 126 },\n'
             b'  "method": "thing.event.property.post"\n}')
ONE_LINE_JSON = (b'{"id": "123","version": "1.0","sys": { "ack": 0 },"params": { "LINK_TEST": 129 },'
                 b'"method": "thing.event.property.post"}')


def test_ec800m_mqtt_session_and_qmtpubex_taking_exactly_its_length(ec800m, broker):
    peer = Peer(broker.port)
    peer.subscribe(TOPIC, 0)
    assert said(ec800m, "ATI") == b"\r\nQuectel\r\nEC800M\r\nRevision: EC800MCNGAR06A05M08\r\n" + OK
    assert said(ec800m, "AT+QIACT=1") == OK
    assert said(ec800m, 'AT+QMTCFG="recv/mode",0,0,1') == OK
    assert said(ec800m, 'AT+QMTCFG="aliauth",0,"k0leyWHxYT1","Cat1","3af7bc8812cb475e042a0a5ae377c6a1"') == OK
    assert said(ec800m, f'AT+QMTOPEN=0,"127.0.0.1",{broker.port}') == OK
    urc(ec800m, "+QMTOPEN: 0,0")
    assert said(ec800m, "AT+QMTCONN=0,0") == OK  # the client ID bare, signed in with aliauth
    urc(ec800m, "+QMTCONN: 0,0,0")
    assert said(ec800m, "AT+QMTOPEN?") == f'\r\n+QMTOPEN: 0,"127.0.0.1",{broker.port}\r\n'.encode() + OK
    # Alibaba Cloud granted QoS 1 for 2 in the log; Mosquitto grants 2: the last field is the broker's.
    assert said(ec800m, 'AT+QMTSUB=0,1,"/sys/k0leyWHxYT1/Cat1/thing/service/property/set",2') == OK
    urc(ec800m, "+QMTSUB: 0,1,0,2")
    for message in (LONG_JSON, ONE_LINE_JSON):
        line = f'AT+QMTPUBEX=0,0,0,0,"{TOPIC}",30'
        assert ec800m.ask(line, final=b"> ") == line.encode() + b"\r\r\n> "
        ec800m.write(message)
        assert ec800m.until_final() == message[:30] + OK
        urc(ec800m, "+QMTPUBEX: 0,0,0")
        assert said(ec800m, "AT") == OK  # no ERROR from the 30th byte on: the rest was dropped
    assert [m.payload for m in peer.messages(2)] == [LONG_JSON[:30], ONE_LINE_JSON[:30]]
    assert ONE_LINE_JSON[:30] == b'{"id": "123","version": "1.0",'
    assert said(ec800m, "AT+QMTPUBEX=?") == b'\r\n+QMTPUBEX: (0-5), <msgid>,(0-2),(0,1),"topic","length"\r\n' + OK
    assert said(ec800m, "AT+CREG=1") == OK
    assert said(ec800m, "AT+CREG?") == b"\r\n+CREG: 1,1\r\n" + OK
    peer.close()


def mqtt_connected(host: AtHost, broker, client_id: str) -> None:
    """Client 0 open on the broker and connected as ``client_id``."""
    assert said(host, f'AT+QMTOPEN=0,"127.0.0.1",{broker.port}') == OK
    urc(host, "+QMTOPEN: 0,0")
    assert said(host, f'AT+QMTCONN=0,"{client_id}"') == OK
    urc(host, "+QMTCONN: 0,0,0")


def test_the_length_rule_holds_for_every_counted_send(ec800m, broker, tmp_path):
    """AT+QMTPUB with <msglen>, AT+QISEND, AT+QFUPL: the bytes past the length that came with the
    data are dropped, as AT+QMTPUBEX's on the EC800M (REFERENCE.md "Data after a prompt")."""
    assert said(ec800m, "AT+QIACT=1") == OK
    with TcpEchoServer(echo=False) as server:
        assert said(ec800m, f'AT+QIOPEN=1,0,"TCP","127.0.0.1",{server.port},0,0') == OK
        urc(ec800m, "+QIOPEN: 0,0")
        assert ec800m.ask("AT+QISEND=0,5", final=b"> ") == b"AT+QISEND=0,5\r\r\n> "
        ec800m.write(b"helloAT+QICLOSE=0\r")
        assert ec800m.until_final() == b"hello\r\nSEND OK\r\n"
        assert said(ec800m, "AT+QISEND=0,0") == b"\r\n+QISEND: 5,5,0\r\n" + OK  # still open
        assert server.wait_received(0, 5) == b"hello"
    assert ec800m.ask('AT+QFUPL="a.txt",3', final=b"CONNECT\r\n").endswith(b"\r\nCONNECT\r\n")
    ec800m.write(b"abcAT+QFDEL=\"a.txt\"\r")
    assert ec800m.until_final() == b"+QFUPL: 3,262\r\n" + OK
    assert said(ec800m, 'AT+QFLST="a.txt"') == b'\r\n+QFLST: "UFS:a.txt",3\r\n' + OK
    peer = Peer(broker.port)
    peer.subscribe("t/len", 0)
    mqtt_connected(ec800m, broker, "len")
    assert ec800m.ask('AT+QMTPUB=0,0,0,0,"t/len",4', final=b"> ").endswith(b"\r\n> ")
    ec800m.write(b"1234AT+QMTDISC=0\r")
    assert ec800m.until_final() == b"1234" + OK
    urc(ec800m, "+QMTPUB: 0,0,0")
    assert said(ec800m, "AT+QMTCONN?") == b"\r\n+QMTCONN: 0,3\r\n" + OK  # not disconnected
    assert [m.payload for m in peer.messages(1)] == [b"1234"]
    peer.close()


# --- AT+QMTPUB with the message in the line (Quectel's host SDK) --------------------------------------


def test_qmtpub_with_the_message_inline(ec800m, broker):
    """``AT+QMTPUB=0,0,0,0,"/topic/test","hello world!"`` answers OK then ``+QMTPUB: 0,0,0``: the
    form Quectel's user-friendly-project sends (``"%s=%d,%d,%d,%d,\\"%s\\",\\"%s\\""``)."""
    peer = Peer(broker.port)
    peer.subscribe("/topic/test", 1)
    assert said(ec800m, "AT+QIACT=1") == OK
    mqtt_connected(ec800m, broker, "client_0")
    assert said(ec800m, 'AT+QMTPUB=0,0,0,0,"/topic/test","hello world!"') == OK
    urc(ec800m, "+QMTPUB: 0,0,0")
    assert said(ec800m, 'AT+QMTPUB=0,1,1,0,"/topic/test","hello again"') == OK
    urc(ec800m, "+QMTPUB: 0,1,0")
    assert said(ec800m, 'AT+QMTPUB=0,0,0,0,"/topic/test",""') == ERROR  # as <msglen> 0 would be
    assert said(ec800m, 'AT+QMTPUB=0,5,0,0,"/topic/test","x"') == ERROR  # QoS 0 takes <msgid> 0 only
    delivered = peer.messages(2)
    assert [(m.topic, m.payload, m.qos) for m in delivered] == [("/topic/test", b"hello world!", 0),
                                                                ("/topic/test", b"hello again", 1)]
    peer.close()


# --- secllevel 2 without a client certificate (SSL note 2.2.1, chapter 4) --------------------------


def test_secllevel_2_without_client_files_connects_unless_the_server_asks(eg800k, tmp_path):
    """2 is "server and client authentication if requested by the remote server": without
    clientcert and clientkey in UFS the open goes on, and fails (566) only where the server wants a
    certificate (an EC200U Arduino library sets 2 to mean "check the server")."""
    with TlsServer() as plain, TlsServer(client_ca=True) as asking:
        assert eg800k.upload("cacert.pem", plain.pki["ca.pem"]).endswith(OK)
        for line in ('AT+QSSLCFG="seclevel",1,2', 'AT+QSSLCFG="cacert",1,"UFS:cacert.pem"'):
            assert said(eg800k, line) == OK
        assert said(eg800k, f'AT+QSSLOPEN=1,1,0,"127.0.0.1",{plain.port},0') == OK
        urc(eg800k, "+QSSLOPEN: 0,0")
        assert plain.connection(0).client_cert is None
        assert said(eg800k, f'AT+QSSLOPEN=1,1,1,"127.0.0.1",{asking.port},0') == OK
        urc(eg800k, "+QSSLOPEN: 1,566")
        for client in (0, 1):
            said(eg800k, f"AT+QSSLCLOSE={client},0")
    with HttpTestServer(tls=True) as https:
        assert said(eg800k, 'AT+QHTTPCFG="sslctxid",1') == OK
        set_url(eg800k, f"{https.url}/bytes/3")
        assert said(eg800k, "AT+QHTTPGET=80") == OK
        urc(eg800k, "+QHTTPGET: 0,200,3")
