"""Every network fault of the control interface on AT+QIOPEN's TCP sockets: the bytes the host sees,
through the real pty against a real TCP server on 127.0.0.1. Faults name the socket by family and
ID (``family="tcpip"``); without a family they mean the SSL client, as they always did."""

from __future__ import annotations

import time

import pytest

from ecemu.api import Emulator
from ecemu.control import ControlError
from tests.host import AtHost
from tests.plain_servers import TcpEchoServer
from tests.wire import OK


@pytest.fixture
def modem(online):
    """Online, and a TCP echo server to connect to."""
    with TcpEchoServer() as server:
        yield *online, server


def open_tcp(host: AtHost, port: int, connect_id: int = 0) -> bytes:
    assert host.ask(f'AT+QIOPEN=1,{connect_id},"TCP","127.0.0.1",{port},0,0') == OK
    return host.expect(f"+QIOPEN: {connect_id},".encode()) + host.expect(b"\r\n")


def send(host: AtHost, connect_id: int, data: bytes) -> bytes:
    host.ask(f"AT+QISEND={connect_id},{len(data)}", final=b"> ")
    host.write(data)
    return host.until_final()


@pytest.mark.parametrize("fault", ["server_reset", "server_close"])
def test_server_reset_and_close(modem, fault):
    emulator, host, server = modem
    assert open_tcp(host, server.port, 6) == b"\r\n+QIOPEN: 6,0\r\n"
    getattr(emulator.control, fault)(client=6, family="tcpip")
    assert host.expect(b'"closed",6\r\n') == b'\r\n+QIURC: "closed",6\r\n'
    assert host.ask("AT+QICLOSE=6") == OK


def test_server_stall_holds_both_ways_then_resumes_in_order(modem):
    emulator, host, server = modem
    open_tcp(host, server.port)
    emulator.control.server_stall(client=0, seconds=0.4, family="tcpip")
    started = time.monotonic()
    assert send(host, 0, b"one") == b"\r\nSEND OK\r\n"
    assert send(host, 0, b"two") == b"\r\nSEND OK\r\n"
    assert host.expect(b'"recv",0\r\n') == b'\r\n+QIURC: "recv",0\r\n'
    assert time.monotonic() - started >= 0.35
    server.wait_received(0, 6)
    assert bytes(server.received[0]) == b"onetwo"


def test_latency_and_bandwidth(modem):
    emulator, host, server = modem
    open_tcp(host, server.port)
    emulator.control.latency(ms=200)
    started = time.monotonic()
    send(host, 0, b"ping")
    host.expect(b'"recv",0\r\n')
    assert time.monotonic() - started >= 0.4  # there and back
    emulator.control.latency(ms=0)
    assert host.ask("AT+QIRD=0") == b"\r\n+QIRD: 4\r\nping\r\n" + OK
    emulator.control.bandwidth(bytes_per_second=5_000)
    started = time.monotonic()
    send(host, 0, b"x" * 1460)
    server.wait_received(0, 4 + 1460)
    assert time.monotonic() - started >= 0.25
    emulator.control.bandwidth(bytes_per_second=0)


@pytest.mark.parametrize("error, code", [("dns", 565), ("connect", 566)])
def test_failing_opens(modem, error, code):
    emulator, host, server = modem
    emulator.control.fail_opens(count=1, error=error)
    assert open_tcp(host, server.port) == f"\r\n+QIOPEN: 0,{code}\r\n".encode()
    assert open_tcp(host, server.port) == b"\r\n+QIOPEN: 0,0\r\n"


def test_send_buffer_full_and_bad_family(modem):
    emulator, host, server = modem
    open_tcp(host, server.port, 2)
    emulator.control.send_buffer_full(client=2, family="tcpip")
    assert send(host, 2, b"nope") == b"\r\nSEND FAIL\r\n"
    emulator.control.send_buffer_full(client=2, full=False, family="tcpip")
    assert send(host, 2, b"yes") == b"\r\nSEND OK\r\n"
    with pytest.raises(ControlError, match="family must be one of ssl, tcpip, mqtt, http"):
        emulator.control.server_reset(client=2, family="pdp")
    with pytest.raises(ControlError, match="ssl client 2 has no connection"):
        emulator.control.server_reset(client=2)  # the old spelling: the SSL client


def test_a_scenario_names_a_tcp_socket_by_family(tmp_path):
    """A scenario's fault takes the same family argument: the server closes AT+QIOPEN's socket 1 once
    the module has received 3 bytes on it (the pool's ID: one socket whichever family opened it)."""
    scenario = tmp_path / "banner-then-close.toml"
    scenario.write_text('description = "The server closes socket 1 after its banner."\n'
                        '[[fault]]\noperation = "server-close"\nargs = { client = 1, family = "tcpip" }\n'
                        'when = { received_bytes = 3, client = 1 }\n')
    with TcpEchoServer(greeting=b"hi!", echo=False) as server, \
            Emulator(ufs=tmp_path / "ufs", scenario=scenario) as emulator:
        emulator.wait_for_boot()
        with AtHost(emulator.port) as host:
            assert host.ask("ATE0").endswith(OK)
            assert host.ask("AT+QIACT=1") == OK
            assert open_tcp(host, server.port, 1) == b"\r\n+QIOPEN: 1,0\r\n"
            assert host.expect(b'"closed",1\r\n') == b'\r\n+QIURC: "recv",1\r\n\r\n+QIURC: "closed",1\r\n'
            assert host.ask("AT+QIRD=1") == b"\r\n+QIRD: 3\r\nhi!\r\n" + OK
            assert host.ask("AT+QICLOSE=1") == OK


def test_latency_holds_udp_datagrams_too(modem):
    from tests.plain_servers import UdpEchoServer

    emulator, host, _ = modem
    with UdpEchoServer() as server:
        assert host.ask(f'AT+QIOPEN=1,3,"UDP","127.0.0.1",{server.port},0,1') == OK
        assert host.expect(b"+QIOPEN: 3,0\r\n") == b"\r\n+QIOPEN: 3,0\r\n"
        emulator.control.latency(ms=200)
        started = time.monotonic()
        assert send(host, 3, b"ping") == b"\r\nSEND OK\r\n"
        assert host.expect(b"ping\r\n") == b'\r\n+QIURC: "recv",3,4\r\nping\r\n'
        assert time.monotonic() - started >= 0.4  # there and back
        emulator.control.latency(ms=0)
        assert host.ask("AT+QICLOSE=3") == OK
