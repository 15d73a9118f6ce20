"""The engines other than OpenSSL, end to end through the real pty against servers on 127.0.0.1,
and what every engine shares with OpenSSL's: keylog, the trace's events, negotiatetime."""

from __future__ import annotations

import re

import pytest

from ecemu.core import events as ev
from tests.core_network import ServerSide, SimulatedNetwork
from tests.harness import CoreHarness
from tests.tls_servers import EngineEchoServer, MbedTlsServerEnd, TlsliteServerEnd
from tests.wire import OK


@pytest.fixture(scope="module")
def host(start_shared_modem):
    """One modem for the file, online."""
    return start_shared_modem(echo=False, active=True)[1]


@pytest.mark.parametrize("version,suite,make_end", [
    (0, 0x0004, lambda: TlsliteServerEnd("server-rsa")),  # SSL 3.0, RC4-MD5
    (2, 0xC012, lambda: TlsliteServerEnd("server-rsa")),  # TLS 1.1, ECDHE-RSA 3DES
    pytest.param(3, 0xC026, lambda: MbedTlsServerEnd("server-ecdsa"), marks=pytest.mark.needs("python-mbedtls")),  # TLS 1.2, static ECDH-ECDSA AES-256
], ids=["ssl3-rc4-md5", "tls11-ecdhe-3des", "tls12-static-ecdh"])
def test_other_engines_through_the_pty(host, version, suite, make_end):
    with EngineEchoServer(make_end) as server:
        assert host.ask(f'AT+QSSLCFG="sslversion",1,{version}') == OK
        assert host.ask(f'AT+QSSLCFG="ciphersuite",1,0X{suite:04X}') == OK
        assert host.ask(f'AT+QSSLOPEN=1,1,3,"127.0.0.1",{server.port},0') == OK
        assert host.expect(b"\r\n+QSSLOPEN: 3,", timeout=30) and host.expect(b"\r\n") == b"0\r\n"
        assert server.negotiated == [({0: (3, 0), 2: (3, 2), 3: (3, 3)}[version], suite)]
        assert host.ask("AT+QSSLSEND=3,12", final=b"> ") == b"\r\n> "
        host.write(b"legacy hello")
        assert host.until_final() == b"\r\nSEND OK\r\n"
        assert host.expect(b'+QSSLURC: "recv",3\r\n', timeout=10)
        answer = b""
        for _ in range(20):  # SSL 3.0 CBC records come split 1/n-1: read until all is there
            reply = host.ask("AT+QSSLRECV=3,100")
            header = re.search(rb"\+QSSLRECV: (\d+)\r\n", reply)
            answer += reply[header.end():header.end() + int(header.group(1))]
            if len(answer) >= 12:
                break
        assert answer == b"legacy hello"
        assert host.ask("AT+QSSLCLOSE=3") == OK
    for name, value in (("sslversion", 4), ("ciphersuite", "0XFFFF")):
        assert host.ask(f'AT+QSSLCFG="{name}",1,{value}') == OK


class EngineNetwork(SimulatedNetwork):
    def __init__(self, harness, make_end):
        super().__init__(harness, context=_any_context())
        self.make_end = make_end

    def execute(self, effect):
        if isinstance(effect, ev.OpenTcp) and not self.hold_opens:
            self.opens.append(effect)
            self.servers[effect.conn_id] = ServerSide(effect.conn_id, self.make_end(), self.echo)
            return self.harness.event(ev.TcpConnected(effect.conn_id, "127.0.0.1", effect.port, 50001))
        return super().execute(effect)


def _any_context():
    from tests.test_tls_cells import cached_server_context

    return cached_server_context("server-rsa")


def opened(make_end, *lines: str):
    harness = CoreHarness()
    network = EngineNetwork(harness, make_end)
    keys: list[bytes] = []
    harness.modem.keylog = keys.append
    for line in ("AT+QIACT=1", *lines):
        assert harness.command(line).endswith(b"OK\r\n"), line
    out = harness.command('AT+QSSLOPEN=1,1,0,"127.0.0.1",4433,0') + network.run()
    return harness, network, keys, out


def test_keylog_of_the_legacy_engine_holds_the_servers_master_secret():
    harness, network, keys, out = opened(lambda: TlsliteServerEnd("server-rsa"), 'AT+QSSLCFG="sslversion",1,0')
    assert b"+QSSLOPEN: 0,0\r\n" in out
    server = network.server().tls.connection
    assert keys == [b"CLIENT_RANDOM " + bytes(server._clientRandom).hex().encode() + b" "
                    + bytes(server.session.masterSecret).hex().encode()]


def test_the_trace_names_the_engine_and_suite():
    harness = CoreHarness()
    events = []
    harness.modem.observer = lambda kind, details: events.append((kind, details))
    network = EngineNetwork(harness, lambda: MbedTlsServerEnd("server-ecdsa"))
    for line in ("AT+QIACT=1", 'AT+QSSLCFG="ciphersuite",1,0XC004'):
        assert harness.command(line).endswith(b"OK\r\n")
    out = harness.command('AT+QSSLOPEN=1,1,0,"127.0.0.1",4433,0') + network.run()
    assert b"+QSSLOPEN: 0,0\r\n" in out
    established = [d for kind, d in events if kind == "tls" and d.get("event") == "established"]
    assert established and "TLS-ECDH-ECDSA-WITH-AES-128-CBC-SHA (Mbed TLS)" in established[0]["detail"]


class SilentEnd:
    """A server that accepts the TCP connection and never answers."""

    def bio_write(self, data): pass

    def bio_read(self, size):
        from OpenSSL import SSL
        raise SSL.WantReadError()

    def do_handshake(self):
        from OpenSSL import SSL
        raise SSL.WantReadError()


@pytest.mark.parametrize("settings", [['AT+QSSLCFG="sslversion",1,0'],
                                      pytest.param(['AT+QSSLCFG="ciphersuite",1,0XC005'], marks=pytest.mark.needs("python-mbedtls"))],
                         ids=["tlslite-ng", "mbedtls"])
def test_negotiatetime_bounds_every_engine(settings):
    harness, network, _, out = opened(SilentEnd, 'AT+QSSLCFG="negotiatetime",1,10', *settings)
    assert b"+QSSLOPEN" not in out
    assert harness.advance(9.9) == b""
    assert harness.advance(0.2) == b"\r\n+QSSLOPEN: 0,569\r\n"


def test_session_cache_resumes_on_the_legacy_engine():
    from tlslite import SessionCache

    sessions = SessionCache()
    harness, network, _, out = opened(lambda: TlsliteServerEnd("server-rsa", sessions),
                                      'AT+QSSLCFG="sslversion",1,0', 'AT+QSSLCFG="session_cache",1,1')
    assert b"+QSSLOPEN: 0,0\r\n" in out
    assert not network.server().tls.resumed
    for _ in range(2):
        assert (harness.command("AT+QSSLCLOSE=0") + network.run()).endswith(b"OK\r\n")
        out = harness.command('AT+QSSLOPEN=1,1,0,"127.0.0.1",4433,0') + network.run()
        assert b"+QSSLOPEN: 0,0\r\n" in out
        assert network.server().tls.resumed


@pytest.mark.parametrize("make_end,lines", [
    (lambda: TlsliteServerEnd("server-rsa", ask_client_cert=True), ['AT+QSSLCFG="ciphersuite",1,0X000A']),
    pytest.param(lambda: MbedTlsServerEnd("server-ecdsa", ask_client_cert=True), ['AT+QSSLCFG="ciphersuite",1,0XC00F'],
                 marks=pytest.mark.needs("python-mbedtls")),
], ids=["tlslite-ng", "mbedtls"])
def test_secllevel_2_presents_the_client_certificate_on_every_engine(make_end, lines):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from ecemu.pki import generate_test_pki

    pki = generate_test_pki()
    harness = CoreHarness()
    network = EngineNetwork(harness, make_end)
    for name in ("ca.pem", "client-chain.pem", "client.key"):
        harness.files.write(name, pki[name])
    for line in ("AT+QIACT=1", 'AT+QSSLCFG="secllevel",1,2', 'AT+QSSLCFG="cacert",1,"ca.pem"',
                 'AT+QSSLCFG="clientcert",1,"client-chain.pem"', 'AT+QSSLCFG="clientkey",1,"client.key"', *lines):
        assert harness.command(line).endswith(b"OK\r\n"), line
    out = harness.command('AT+QSSLOPEN=1,1,0,"localhost",4433,0') + network.run()
    assert b"+QSSLOPEN: 0,0\r\n" in out, out
    client = x509.load_pem_x509_certificate(pki["client.pem"]).public_bytes(Encoding.DER)
    assert network.server().tls.client_cert_der == client


@pytest.mark.parametrize("make_end,lines", [
    (lambda: TlsliteServerEnd("server-rsa"), ['AT+QSSLCFG="ciphersuite",1,0X000A']),
    pytest.param(lambda: MbedTlsServerEnd("server-ecdsa"), ['AT+QSSLCFG="ciphersuite",1,0XC00F'],
                 marks=pytest.mark.needs("python-mbedtls")),
], ids=["tlslite-ng", "mbedtls"])
def test_transparent_packets_are_records_on_every_engine(make_end, lines):
    """AT+QICFG="transpktsize" (TCP/IP note 2.1.15): each packet one TLS record, whichever engine."""
    harness = CoreHarness()
    network = EngineNetwork(harness, make_end)
    network.echo = False
    for line in ("AT+QIACT=1", 'AT+QICFG="transpktsize",100', 'AT+QICFG="transwaittm",0', *lines):
        assert harness.command(line).endswith(b"OK\r\n"), line
    assert harness.command('AT+QSSLOPEN=1,1,0,"127.0.0.1",4433,2') + network.run() == b"\r\nCONNECT\r\n"
    harness.send(b"r" * 250)
    # Counted on the wire, from the records' headers (RFC 5246 6.2.1): type 23 is application
    # data. (Mbed TLS's server end reads several records in one read.)
    effects = harness.take_effects()
    sent = b"".join(effect.data for effect in effects if isinstance(effect, ev.SendTcp))
    records, offset = [], 0
    while offset < len(sent):
        records.append(sent[offset])
        offset += 5 + int.from_bytes(sent[offset + 3:offset + 5], "big")
    assert offset == len(sent) and records == [23, 23, 23]
    for effect in effects:
        network.execute(effect)
    assert network.server().received == b"r" * 250  # every byte, once
