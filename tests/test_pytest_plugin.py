"""The pytest plugin's fixtures, used exactly as a firmware team's test would use them."""

from __future__ import annotations

import socket
import ssl
import textwrap

import pytest
import serial

from tests.plain_servers import TcpEchoServer
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


def test_the_readme_ci_example_passes_in_the_readme_hermetic_ini(pytester):
    """The "In CI" test again, under the README's pytest.ini: local only, names mapped, local SNTP
    (the refusals are tested in test_hermetic_network.py, where no packet can leave)."""
    pytester.makeini(example("ci-ini"))
    pytester.makepyfile(test_from_readme=example("ci"), test_hermetic=textwrap.dedent("""
        import serial

        def test_qntp_and_names_stay_local(ecemu_modem):
            with serial.Serial(ecemu_modem.port, 115200, timeout=10) as port:
                for line, until in ((b"AT+QIACT=1", b"OK\\r\\n"),
                                    (b'AT+QNTP=1,"pool.ntp.org"', b'+QNTP: 0,"'),
                                    (b'AT+QIDNSGIP=1,"mqtt.example.com"', b'"dnsgip","127.0.0.1"\\r\\n')):
                    port.write(line + b"\\r")
                    assert port.read_until(until).endswith(until)
        """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=2)


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
                            # by name: an address is never checked against the certificate
                            # (docs/reference/chosen-behaviour.md "TLS")
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


# --- several modems, ini options, xdist, a failing test's transcript ------------------------------

def test_the_factory_makes_several_modems_each_stopped_after(pytester):
    pytester.makepyfile("""
        import serial

        def test_two(ecemu_modem_factory):
            first, second = ecemu_modem_factory(), ecemu_modem_factory(profile="EC800M-CN")
            assert first.port != second.port
            for modem, model in ((first, b"EC200M"), (second, b"EC800M")):
                with serial.Serial(modem.port, 115200, timeout=5) as port:
                    port.write(b"AT+CGMM\\r")
                    assert port.read_until(b"OK\\r\\n") == b"AT+CGMM\\r\\r\\n" + model + b"\\r\\n\\r\\nOK\\r\\n"
            test_two.made = (first, second)

        def test_they_were_stopped():
            for modem in test_two.made:
                assert not modem.running
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=2)


def test_ini_options_choose_the_profile_and_the_network(pytester):
    with TcpEchoServer() as server:
        pytester.makeini(f"""
            [pytest]
            ecemu_profile = EC800N-CN
            ecemu_resolve =
                broker.example.com=127.0.0.1:{server.port}
            ecemu_local_only = true
            ecemu_local_ntp = ntp.aliyun.com
        """)
        pytester.makepyfile("""
            import serial

            def ask(port, line, until=b"OK\\r\\n"):
                port.write(line + b"\\r")
                answer = port.read_until(until)
                assert answer.endswith(until), answer
                return answer

            def test_network(ecemu_modem):
                with serial.Serial(ecemu_modem.port, 115200, timeout=10) as port:
                    assert ask(port, b"AT+CGMM").startswith(b"AT+CGMM\\r\\r\\nEC800N")
                    ask(port, b"AT+QIACT=1")
                    ask(port, b'AT+QIOPEN=1,0,"TCP","broker.example.com",1883,0,0', until=b"+QIOPEN: 0,0\\r\\n")
                    ask(port, b'AT+QIOPEN=1,1,"TCP","example.com",80,0,0', until=b"+QIOPEN: 1,565\\r\\n")
                    ask(port, b'AT+QNTP=1,"ntp.aliyun.com"', until=b'+QNTP: 0,"')
        """)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
        result.assert_outcomes(passed=1)
        server.connection(0)


def test_a_failing_test_carries_its_modems_transcript(pytester):
    pytester.makepyfile("""
        import serial

        def test_driver(ecemu_modem):
            with serial.Serial(ecemu_modem.port, 115200, timeout=5) as port:
                port.write(b"AT+CSQ\\r")
                port.read_until(b"OK\\r\\n")
            assert False, "the driver gave up"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*- ecemu modem 0 transcript -*", "*#0  session started *",
                                 "*#0  host → module  AT+CSQ\\r", "*#0  command        AT+CSQ",
                                 "*#0  result         OK"])


def test_the_coverage_table_survives_pytest_xdist(pytester):
    for name, line in (("test_one", "AT+CGMM"), ("test_two", "AT+CSQ")):
        pytester.makepyfile(**{name: f"""
            import serial

            def test_it(ecemu_modem):
                with serial.Serial(ecemu_modem.port, 115200, timeout=5) as port:
                    port.write(b"{line}\\r")
                    assert port.read_until(b"OK\\r\\n").endswith(b"OK\\r\\n")
        """})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", timeout=120)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*= ecemu coverage =*",
                                 "commands the tests sent: 2 command lines, 2 commands, 0 not implemented*",
                                 "*AT+CGMM*1*OK 1", "*AT+CSQ*1*OK 1"])
