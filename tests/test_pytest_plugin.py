"""The pytest plugin's fixtures, used exactly as a firmware team's test would use them."""

from __future__ import annotations

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
    from emulator.pki import generate_test_pki

    assert ecemu_tls_server.ca_pem == generate_test_pki()["ca.pem"]
    assert ecemu_tls_server.host == "127.0.0.1" and ecemu_tls_server.port > 0
