"""Every valid version x suite cell of SSL note table 3 against a server that speaks it: the open
succeeds, data comes back, and the server confirms the exact version and suite. The static-ECDH
RC4/3DES cells, which no engine here has, fail with 566 before any connection is made; so do the
static-ECDH AES cells where python-mbedtls is not installed (no wheel for this Python, and not
built), with a log line that says so.

The servers are three other implementations in memory behind the core's simulated network:
OpenSSL (pyOpenSSL) where it speaks the cell, tlslite-ng for SSL 3.0, RC4 and 3DES, and Mbed TLS
(python-mbedtls) for static ECDH.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import sys

import pytest

from ecemu.core import events as ev
from tests.core_network import ServerSide, SimulatedNetwork, server_context
from tests.harness import CoreHarness
from tests.tls_servers import MbedTlsServerEnd, TlsliteServerEnd
from tests.ssl_table3 import SSL3, TABLE_3
from tests.wire import OK_END

VERSIONS = {0: (3, 0), 1: (3, 1), 2: (3, 2), 3: (3, 3)}  # <SSL_version> 0-3: SSL 3.0, TLS 1.0, 1.1, 1.2

def name(code: int) -> str:
    return TABLE_3[code][0]


def key_exchange(code: int) -> str:
    """``RSA``, ``ECDHE_RSA``, ``ECDH_ECDSA``...: the part of the name before ``_WITH_``."""
    return name(code).removeprefix("TLS_").split("_WITH_")[0]


def engine(version: int, code: int) -> str | None:
    """The engine that speaks the cell; OpenSSL has no SSL 3.0, tlslite-ng takes those cells."""
    speaker = TABLE_3[code][3]
    return "tlslite" if speaker == "openssl" and version == SSL3 else speaker


CELLS = [(version, code) for version in VERSIONS for code, row in TABLE_3.items() if version >= row[2]]
INVALID_CELLS = [(version, code) for version in VERSIONS for code, row in TABLE_3.items() if version < row[2]]


def unspeakable(code: int) -> bool:
    return TABLE_3[code][3] is None


def static_ecdh_aes(code: int) -> bool:
    """The suites only Mbed TLS speaks here (docs/reference/tls.md "Versions and suites": static ECDH
    AES-CBC-SHA and SHA-2)."""
    return TABLE_3[code][3] == "mbedtls"


def cell_id(cell: tuple[int, int]) -> str:
    return f"v{cell[0]}-{name(cell[1])}"


MBEDTLS_INSTALLED = importlib.util.find_spec("mbedtls") is not None
WITHOUT_MBEDTLS = "python-mbedtls is not installed"


@pytest.fixture
def without_mbedtls(monkeypatch):
    """The emulator as on a Python where python-mbedtls is missing: its engine is not there."""
    import ecemu.core
    from ecemu.core import tls

    # An import of the engine fails as it does where python-mbedtls has no wheel.
    monkeypatch.delattr(ecemu.core, "tls_mbedtls", raising=False)
    monkeypatch.setitem(sys.modules, "ecemu.core.tls_mbedtls", None)
    monkeypatch.setattr(tls, "_MBEDTLS_MISSING", ["No module named 'mbedtls'"])


class EngineNetwork(SimulatedNetwork):
    """The simulated network with a server end made by ``make_server`` for every connection."""

    def __init__(self, harness, make_server):
        super().__init__(harness, context=cached_server_context("server-rsa"))
        self.make_server = make_server

    def execute(self, effect):
        if isinstance(effect, ev.OpenTcp):
            self.opens.append(effect)
            self.servers[effect.conn_id] = ServerSide(effect.conn_id, self.make_server(), self.echo)
            return self.harness.event(ev.TcpConnected(effect.conn_id, "127.0.0.1", effect.port,
                                                      50000 + effect.conn_id))
        return super().execute(effect)


def server_for(version: int, code: int):
    """The server end for the cell and how to read the (version, suite) it negotiated, suites named
    through TABLE_3."""
    exchange = key_exchange(code)
    cert = "server-ecdsa" if exchange.endswith("ECDSA") or exchange.startswith("ECDH_") else "server-rsa"
    if engine(version, code) == "mbedtls":
        return lambda: MbedTlsServerEnd(cert), mbedtls_negotiated
    if engine(version, code) == "tlslite":
        return lambda: TlsliteServerEnd(cert), lambda end: end.negotiated()  # tlslite-ng gives the code
    context = cached_server_context(cert)

    def openssl_end():
        from OpenSSL import SSL

        end = SSL.Connection(context, None)
        end.set_accept_state()
        return end
    return openssl_end, openssl_negotiated


OPENSSL_VERSIONS = {"TLSv1": (3, 1), "TLSv1.1": (3, 2), "TLSv1.2": (3, 3)}


def openssl_negotiated(connection) -> tuple[tuple[int, int], int]:
    suite = connection.get_cipher_name()
    code = next(code for code, row in TABLE_3.items() if row[1] == suite)
    return OPENSSL_VERSIONS[connection.get_protocol_version_name()], code


def mbedtls_negotiated(end) -> tuple[tuple[int, int], int]:
    """Mbed TLS names a suite as IANA does, with dashes: TLS-ECDH-ECDSA-WITH-AES-128-CBC-SHA."""
    versions = {"TLSv1": (3, 1), "TLSv1_1": (3, 2), "TLSv1_2": (3, 3)}
    suite, version = end.negotiated_names()
    code = next(code for code, row in TABLE_3.items() if row[0].replace("_", "-") == suite)
    return versions[version], code


@functools.cache
def cached_server_context(cert: str):
    return server_context(cert)  # loading an RSA key is a tenth of a second: once per certificate


def test_the_table_has_79_valid_cells_and_12_without_an_engine():
    assert len(CELLS) == 79
    assert sum(unspeakable(code) for _, code in CELLS) == 12


def open_cell(version: int, code: int, make_server=lambda: None) -> tuple[bytes, "EngineNetwork", CoreHarness]:
    harness = CoreHarness()
    network = EngineNetwork(harness, make_server)
    for line in ("AT+QIACT=1", f'AT+QSSLCFG="sslversion",1,{version}', f'AT+QSSLCFG="ciphersuite",1,0X{code:04X}'):
        assert harness.command(line).endswith(OK_END)
    return harness.command('AT+QSSLOPEN=1,1,0,"127.0.0.1",4433,0') + network.run(), network, harness


STATIC_AES_CELLS = [(version, code) for version, code in CELLS if static_ecdh_aes(code)]


@pytest.mark.parametrize("version,code", STATIC_AES_CELLS, ids=[cell_id(c) for c in STATIC_AES_CELLS])
def test_without_python_mbedtls_a_static_ecdh_cell_fails_with_566_and_says_why(version, code, without_mbedtls, caplog):
    caplog.set_level(logging.WARNING, logger="ecemu")
    out, network, _ = open_cell(version, code)
    assert out.endswith(b"\r\nOK\r\n\r\n+QSSLOPEN: 0,566\r\n"), out
    assert network.opens == []
    assert f"cipher suite 0X{code:04X}" in caplog.text and WITHOUT_MBEDTLS in caplog.text, caplog.text


def test_eight_suites_need_mbedtls_in_sixteen_cells():
    assert len({code for _, code in STATIC_AES_CELLS}) == 8 and len(STATIC_AES_CELLS) == 16  # 4 x TLS 1.0-1.2, 4 x TLS 1.2


@pytest.mark.parametrize("version,code", CELLS, ids=[cell_id(c) for c in CELLS])
def test_cell(version, code, caplog):
    if static_ecdh_aes(code) and not MBEDTLS_INSTALLED:
        # This Python has no python-mbedtls: the cell degrades as the test above shows.
        caplog.set_level(logging.WARNING, logger="ecemu")
        out, network, _ = open_cell(version, code)
        assert b"+QSSLOPEN: 0,566\r\n" in out and network.opens == [] and WITHOUT_MBEDTLS in caplog.text
        return
    harness = CoreHarness()
    make_server, negotiated = server_for(version, code)
    network = EngineNetwork(harness, make_server)
    for line in ("AT+QIACT=1", f'AT+QSSLCFG="sslversion",1,{version}', f'AT+QSSLCFG="ciphersuite",1,0X{code:04X}'):
        assert harness.command(line).endswith(OK_END)
    out = harness.command('AT+QSSLOPEN=1,1,0,"127.0.0.1",4433,0') + network.run()
    if unspeakable(code):
        assert b"+QSSLOPEN: 0,566\r\n" in out
        assert network.opens == []
        return
    assert b"+QSSLOPEN: 0,0\r\n" in out, out
    server = network.server()
    assert negotiated(server.tls) == (VERSIONS[version], code)
    out = harness.command("AT+QSSLSEND=0,11") + harness.send(b"hello cells") + network.run()
    assert b"SEND OK\r\n" in out
    assert server.received == b"hello cells"
    out = harness.command("AT+QSSLRECV=0,100")
    assert b"+QSSLRECV: 11\r\nhello cells\r\n" in out


def test_the_table_has_49_invalid_cells():
    assert len(INVALID_CELLS) == 4 * 32 - 79


@pytest.mark.parametrize("version,code", INVALID_CELLS, ids=[cell_id(c) for c in INVALID_CELLS])
def test_an_invalid_cell_fails_before_connecting(version, code):
    harness = CoreHarness()
    network = EngineNetwork(harness, lambda: None)
    for line in ("AT+QIACT=1", f'AT+QSSLCFG="sslversion",1,{version}', f'AT+QSSLCFG="ciphersuite",1,0X{code:04X}'):
        assert harness.command(line).endswith(OK_END)
    out = harness.command('AT+QSSLOPEN=1,1,0,"127.0.0.1",4433,0') + network.run()
    assert b"+QSSLOPEN: 0,566\r\n" in out
    assert network.opens == []
