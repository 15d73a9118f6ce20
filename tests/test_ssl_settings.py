"""Each AT+QSSLCFG setting changes what a real TLS server on 127.0.0.1 sees (SSL note 2.2.1),
with a case that connects and one that must fail, through the real pty."""

from __future__ import annotations

import re
import ssl
import threading
import time

import pytest

from tests.host import AtHost
from tests.tls_servers import TlsServer, echo
from tests.ssl_table3 import TABLE_3
from tests.wire import OK


@pytest.fixture(scope="module")
def modem(start_shared_modem):
    """One modem for the file: every setting's test starts from the defaults (``host`` puts them back)."""
    return start_shared_modem(echo=False, active=True)[1]


@pytest.fixture
def host(modem):
    """The module with every SSL setting at its default and no client open."""
    yield modem
    for client in range(12):
        modem.ask(f"AT+QSSLCLOSE={client},0")
    modem.idle(0.05)
    for name, value in (("sslversion", "4"), ("ciphersuite", "0XFFFF"), ("secllevel", "0"),
                        ("ignorelocaltime", "1"), ("sni", "0"), ("closetimemode", "0"),
                        ("ignoremulticertchainverify", "0"), ("ignoreinvalidcertsign", "0"),
                        ("session_cache", "0"), ("negotiatetime", "300"), ("cacert", '"cacert.pem"'),
                        ("clientcert", '"client.pem"'), ("clientkey", '"user_key.pem"')):
        assert modem.ask(f'AT+QSSLCFG="{name}",1,{value}') == OK
    assert modem.ask('AT+CCLK="26/01/02,03:04:05+00"') == OK


def upload(host: AtHost, name: str, data: bytes) -> None:
    host.ask(f'AT+QFDEL="{name}"')
    assert host.upload(name, data).endswith(OK)


def setting(host: AtHost, name: str, value) -> None:
    assert host.ask(f'AT+QSSLCFG="{name}",1,{value}') == OK, name


def open_result(host: AtHost, port: int, address: str = "127.0.0.1", client: int = 0) -> int:
    """AT+QSSLOPEN and the <err> of its URC (other URCs, such as an earlier server's "closed",
    may come on the way and are not this test's business)."""
    transcript = host.ask(f'AT+QSSLOPEN=1,1,{client},"{address}",{port},0')
    assert transcript.endswith(OK), transcript
    urc = re.compile(rf"\+QSSLOPEN: {client},(\d+)\r\n".encode())
    while (match := urc.search(transcript)) is None:
        transcript += host.expect(b"\r\n", timeout=30)
    return int(match.group(1))


def verify_with_ca(host: AtHost, server: TlsServer) -> None:
    upload(host, "cacert.pem", server.pki["ca.pem"])
    setting(host, "secllevel", 1)


# --- sslversion ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value,version", [(1, "TLSv1"), (2, "TLSv1.1"), (3, "TLSv1.2"), (4, "TLSv1.2")])
def test_sslversion_is_the_version_the_server_sees(host, value, version):
    with TlsServer() as server:
        setting(host, "sslversion", value)
        assert open_result(host, server.port) == 0
        assert server.connection(0).version == version


def test_sslversion_the_server_does_not_speak_fails(host):
    with TlsServer(min_version=ssl.TLSVersion.TLSv1_2) as server:
        setting(host, "sslversion", 1)
        assert open_result(host, server.port) == 566
        assert server.connection(0).handshake_error is not None


def test_sslversion_ssl3_is_offered_alone(host):
    with TlsServer() as server:  # OpenSSL: no SSL 3.0, so the handshake fails as on the module
        setting(host, "sslversion", 0)
        assert open_result(host, server.port) == 566
        assert server.connection(0).handshake_error is not None


# --- ciphersuite --------------------------------------------------------------------------------


def test_one_cipher_suite_is_offered_alone(host):
    with TlsServer() as server:
        setting(host, "ciphersuite", "0X002F")
        assert open_result(host, server.port) == 0
        seen = server.connection(0)
        assert seen.cipher == "AES128-SHA"
        assert seen.offered == ["AES128-SHA"]


def test_all_suites_offers_every_usable_suite_of_table_3(host):
    with TlsServer() as server:
        assert open_result(host, server.port) == 0
        # Table 3's suites that OpenSSL has, by OpenSSL's names (docs/reference/tls.md "`0XFFFF`: the
        # default offer": no static ECDH, RC4 or 3DES)
        offered = set(server.connection(0).offered)
        assert offered == {openssl for _, openssl, _, _ in TABLE_3.values() if openssl is not None}
        assert len(offered) == 13


def test_a_suite_the_server_cannot_use_fails(host):
    with TlsServer(cert="server-ecdsa") as server:
        setting(host, "ciphersuite", "0X0035")  # RSA key exchange: an ECDSA server cannot do it
        assert open_result(host, server.port) == 566
    with TlsServer(cert="server-ecdsa") as server:
        setting(host, "ciphersuite", "0XC023")  # ECDHE-ECDSA-AES128-SHA256
        assert open_result(host, server.port) == 0
        assert server.connection(0).cipher == "ECDHE-ECDSA-AES128-SHA256"


def test_a_suite_no_engine_speaks_fails_and_is_never_replaced(host):
    with TlsServer() as server:
        setting(host, "ciphersuite", "0XC00C")  # static ECDH with RC4
        assert open_result(host, server.port) == 566
        assert server.seen == []  # nothing else was offered instead
    with TlsServer() as server:  # RC4 is offered alone; OpenSSL has none, so the handshake fails
        setting(host, "ciphersuite", "0X0005")
        assert open_result(host, server.port, client=1) == 566
        assert server.connection(0).handshake_error is not None


# --- secllevel, cacert / cacertex, clientcert, clientkey ------------------------------------------


def test_secllevel_0_accepts_any_server(host):
    with TlsServer(cert="server-selfsigned") as server:
        assert open_result(host, server.port) == 0


def test_secllevel_1_checks_the_chain_against_the_ca(host):
    with TlsServer() as server:
        verify_with_ca(host, server)
        assert open_result(host, server.port) == 0
    with TlsServer(cert="server-otherca") as server:
        assert open_result(host, server.port, client=1) == 566
        assert "unknown ca" in server.connection(0).handshake_error.lower()


def test_secllevel_1_without_the_ca_file_fails(host):
    with TlsServer() as server:
        host.ask('AT+QFDEL="cacert.pem"')
        setting(host, "secllevel", 1)
        assert open_result(host, server.port) == 566


def test_cacert_and_cacertex_name_the_file_used(host):
    with TlsServer() as server:
        upload(host, "other.pem", server.pki["other-ca.pem"])
        upload(host, "mine.pem", server.pki["ca.pem"])
        setting(host, "secllevel", 1)
        setting(host, "cacert", '"UFS:other.pem"')
        assert open_result(host, server.port) == 566
        setting(host, "cacertex", '"UFS:mine.pem"')
        assert open_result(host, server.port, client=1) == 0


def test_a_wrong_host_fails(host):
    with TlsServer(cert="server-wronghost") as server:
        verify_with_ca(host, server)
        assert open_result(host, server.port, address="localhost") == 566
        # An address is never checked against the certificate (docs/reference/chosen-behaviour.md "TLS").
        assert open_result(host, server.port, client=1) == 0


def test_a_name_is_checked_as_a_name(host):
    with TlsServer() as server:
        verify_with_ca(host, server)
        assert open_result(host, server.port, address="localhost") == 0


def test_secllevel_2_presents_the_client_certificate(host):
    with TlsServer(client_ca=True) as server:
        verify_with_ca(host, server)
        assert open_result(host, server.port) == 566  # level 1: no certificate to present
        upload(host, "client.pem", server.pki["client-chain.pem"])
        upload(host, "user_key.pem", server.pki["client.key"])
        setting(host, "secllevel", 2)
        assert open_result(host, server.port, client=1) == 0
        subject = dict(item[0] for item in server.connection(1).client_cert["subject"])
        assert subject["commonName"] == "client" and subject["organizationalUnitName"] == "client"


def test_clientcert_and_clientkey_name_the_files_used(host):
    with TlsServer(client_ca=True) as server:
        verify_with_ca(host, server)
        upload(host, "dev.crt", server.pki["client-chain.pem"])
        upload(host, "dev.key", server.pki["client.key"])
        setting(host, "secllevel", 2)
        setting(host, "clientcert", '"UFS:dev.crt"')
        setting(host, "clientkey", '"UFS:nosuch.key"')
        assert open_result(host, server.port) == 566
        setting(host, "clientkey", '"UFS:dev.key"')
        assert open_result(host, server.port, client=1) == 0


# --- ignorelocaltime: certificates against the module clock ----------------------------------------


def test_ignorelocaltime_0_checks_validity_against_the_module_clock(host):
    with TlsServer() as server:
        verify_with_ca(host, server)
        setting(host, "ignorelocaltime", 0)
        assert host.ask('AT+CCLK="19/06/01,12:00:00+32"') == OK  # before the leaf's validity
        assert open_result(host, server.port) == 566
        assert host.ask('AT+CCLK="30/06/01,12:00:00+32"') == OK
        assert open_result(host, server.port, client=1) == 0


def test_ignorelocaltime_1_accepts_an_expired_certificate(host):
    with TlsServer(cert="server-expired") as server:
        verify_with_ca(host, server)
        setting(host, "ignorelocaltime", 0)
        assert open_result(host, server.port) == 566
        setting(host, "ignorelocaltime", 1)
        assert open_result(host, server.port, client=1) == 0


# --- the other verification forgiveness ---------------------------------------------------------


def test_ignoremulticertchainverify_forgives_an_unknown_issuer_above_the_server(host):
    with TlsServer() as server:  # the leaf and its intermediate, whose root is not in the CA file
        upload(host, "cacert.pem", server.pki["other-ca.pem"])
        setting(host, "secllevel", 1)
        assert open_result(host, server.port) == 566
        setting(host, "ignoremulticertchainverify", 1)
        assert open_result(host, server.port, client=1) == 0
    with TlsServer(chain=False) as server:  # the leaf alone: its own issuer is unknown
        assert open_result(host, server.port, client=2) == 566


def test_ignoreinvalidcertsign_forgives_a_bad_signature_only(host):
    with TlsServer(cert="server-badsig") as server:
        verify_with_ca(host, server)
        assert open_result(host, server.port) == 566
        setting(host, "ignoreinvalidcertsign", 1)
        assert open_result(host, server.port, client=1) == 0
    with TlsServer(cert="server-otherca") as server:
        assert open_result(host, server.port, client=2) == 566  # a chain problem stays one


# --- sni, session_cache, negotiatetime, closetimemode -----------------------------------------------


def test_sni_sends_the_name_only_when_enabled(host):
    with TlsServer() as server:
        assert open_result(host, server.port, address="localhost") == 0
        assert server.connection(0).sni is None
        setting(host, "sni", 1)
        assert open_result(host, server.port, address="localhost", client=1) == 0
        assert server.connection(1).sni == "localhost"
        assert open_result(host, server.port, address="127.0.0.1", client=2) == 0
        assert server.connection(2).sni is None  # an address is never a server name


def test_session_cache_resumes_the_previous_session(host):
    with TlsServer() as server:
        assert open_result(host, server.port) == 0
        host.ask("AT+QSSLCLOSE=0")
        assert open_result(host, server.port) == 0
        assert server.connection(1).resumed is False
        host.ask("AT+QSSLCLOSE=0")
        setting(host, "session_cache", 1)
        assert open_result(host, server.port) == 0
        host.ask("AT+QSSLCLOSE=0")
        assert open_result(host, server.port) == 0
        assert server.connection(3).resumed is True


def test_closetimemode_picks_seconds_or_milliseconds(host):
    blocker = threading.Event()
    # A server that does not close when told: AT+QSSLCLOSE waits for <close_timeout>.
    with TlsServer(behaviour=lambda server, tls, seen: blocker.wait(30)) as server:
        setting(host, "closetimemode", 1)
        assert open_result(host, server.port) == 0
        # 300 read as seconds would outlast the host's wait for OK (15 s): the test fails there.
        started = time.monotonic()
        assert host.ask("AT+QSSLCLOSE=0,300") == OK
        assert time.monotonic() - started >= 0.25
        setting(host, "closetimemode", 0)
        assert open_result(host, server.port) == 0
        started = time.monotonic()
        assert host.ask("AT+QSSLCLOSE=0,2") == OK
        assert time.monotonic() - started >= 1.9  # seconds, not milliseconds
        blocker.set()


def test_close_waits_only_until_the_server_closes(host):
    with TlsServer(behaviour=echo) as server:
        assert open_result(host, server.port) == 0
        # <close_timeout> is a maximum, not a delay: with the longest one (18 hours) the OK can only
        # come from the server's close, within the host's wait for it.
        assert host.ask("AT+QSSLCLOSE=0,65535") == OK
        assert server.connection(0).done.wait(5) and server.connection(0).closed_by_client
