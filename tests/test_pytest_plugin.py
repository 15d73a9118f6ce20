"""The pytest plugin's fixtures, used exactly as a firmware team's test would use them."""

from __future__ import annotations

import socket
import ssl

import pytest
import serial

from tests.readme_blocks import example


def test_ecemu_modem_is_booted_and_answers(ecemu_modem):
    with serial.Serial(ecemu_modem.port, 115200, timeout=5) as port:
        port.write(b"AT+CGMM\r")
        assert port.read_until(b"OK\r\n") == b"AT+CGMM\r\r\nEC200M\r\n\r\nOK\r\n"


@pytest.mark.ecemu_profile("EC800N-CN")
def test_marker_picks_the_profile(ecemu_modem):
    with serial.Serial(ecemu_modem.port, 115200, timeout=5) as port:
        port.write(b"ATI\r")
        assert port.read_until(b"OK\r\n").startswith(b"ATI\r\r\nQuectel\r\nEC800N\r\n")


def test_profile_option_is_used_without_a_marker(pytester):
    pytester.makepyfile("""
        import serial

        def test_model(ecemu_modem):
            with serial.Serial(ecemu_modem.port, 115200, timeout=5) as port:
                port.write(b"AT+CGMM\\r")
                assert port.read_until(b"OK\\r\\n") == b"AT+CGMM\\r\\r\\nEC200N\\r\\n\\r\\nOK\\r\\n"
    """)
    result = pytester.runpytest_subprocess("--ecemu-profile", "EC200N-CN", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_readme_ci_example_passes_with_only_the_plugin(pytester):
    """The README's "In CI" test, as a firmware team would copy it: pyserial and the fixtures, an
    uploaded CA, a verified TLS connection to the echo server, the echo checked."""
    pytester.makepyfile(test_from_readme=example("ci"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1)


def test_the_tls_server_fixture_gives_its_ca(ecemu_tls_server):
    from ecemu.pki import generate_test_pki

    assert ecemu_tls_server.ca_pem == generate_test_pki()["ca.pem"]
    assert ecemu_tls_server.host == "127.0.0.1" and ecemu_tls_server.port > 0


# --- certificates to fail against ---------------------------------------------------------------

BROKEN_CERTIFICATES = ["expired", "notyet", "wronghost", "badsig", "otherca", "selfsigned"]


def open_verified(modem_port: str, server) -> bytes:
    """What a firmware that verifies its server does: upload the CA, secllevel 1, validity checked
    against the module clock (ignorelocaltime 0), AT+QSSLOPEN; returns the +QSSLOPEN URC."""
    ca = server.ca_pem
    with serial.Serial(modem_port, 115200, timeout=15) as port:
        for line, until in ((b"ATE0\r", b"OK\r\n"), (b"AT+QIACT=1\r", b"OK\r\n"),
                            (b'AT+QFUPL="cacert.pem",%d\r' % len(ca), b"CONNECT\r\n"), (ca, b"OK\r\n"),
                            (b'AT+QSSLCFG="secllevel",1,1\r', b"OK\r\n"),
                            (b'AT+QSSLCFG="ignorelocaltime",1,0\r', b"OK\r\n"),
                            (b'AT+QSSLCFG="cacert",1,"UFS:cacert.pem"\r', b"OK\r\n"),
                            # by name: an address is never checked against the certificate (README, "TLS")
                            (b'AT+QSSLOPEN=1,1,0,"localhost",%d,0\r' % server.port, b"\r\nOK\r\n")):
            port.write(line)
            answer = port.read_until(until)
            assert answer.endswith(until), (line, answer)
        return port.read_until(b"+QSSLOPEN: 0,") + port.read_until(b"\r\n")


@pytest.mark.parametrize("ecemu_tls_server", BROKEN_CERTIFICATES, indirect=True)
def test_each_broken_certificate_fails_the_open_with_566(ecemu_modem, ecemu_tls_server):
    """SSL note 2.2.2 / REFERENCE.md: every certificate failure is 566; the CA is the one the
    module trusts, so only the certificate's own defect can fail it."""
    assert open_verified(ecemu_modem.port, ecemu_tls_server) == b"\r\n+QSSLOPEN: 0,566\r\n"


def test_the_good_certificate_opens_with_the_same_settings(ecemu_modem, ecemu_tls_server):
    assert ecemu_tls_server.cert == "rsa"
    assert open_verified(ecemu_modem.port, ecemu_tls_server) == b"\r\n+QSSLOPEN: 0,0\r\n"


@pytest.mark.ecemu_cert("expired")
def test_the_cert_marker_picks_the_certificate(ecemu_tls_server):
    from ecemu.pki import generate_test_pki

    assert ecemu_tls_server.cert == "expired"
    with socket.create_connection(("127.0.0.1", ecemu_tls_server.port), timeout=10) as sock:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with context.wrap_socket(sock) as tls:
            served = ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True)).encode()
    leaf = generate_test_pki()["server-expired.pem"]
    assert served.split() == leaf.split()


def test_an_unknown_certificate_name_fails_the_test_that_asks_for_it(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.ecemu_cert("rotten")
        def test_server(ecemu_tls_server):
            pass
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no certificate 'rotten'; known: rsa, ecdsa, expired*"])
