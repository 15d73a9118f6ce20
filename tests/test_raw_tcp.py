"""``ecemu run --tcp-raw`` and ``--connect``: the port as raw TCP, both ways, binary safe, as QEMU's
``-chardev socket``, ser2net's raw mode and socat carry a UART."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from ecemu.api import Emulator
from tests.byte_ends import WAIT, upload_and_download
from tests.wire import BOOT_URCS
from tests.byte_ends import TcpEnd as Peer
from tests.processes import RunningEmulator, read_until



@pytest.fixture
def raw_server(tmp_path):
    running = RunningEmulator("--tcp-raw", "127.0.0.1:0", "--ufs", str(tmp_path / "ufs"))
    yield running
    assert running.stop() == 0


def test_the_first_client_gets_the_boot_urcs_and_no_telnet_bytes(raw_server):
    assert raw_server.port.startswith("socket://127.0.0.1:")
    peer = Peer.to(raw_server.port)
    try:
        assert peer.expect(b"+QIND: PB DONE\r\n") == BOOT_URCS  # nothing before RDY: no negotiation
        assert peer.ask(b"AT") == b"AT\r\r\nOK\r\n"
    finally:
        peer.close()


def test_every_byte_value_goes_both_ways_unchanged(raw_server):
    """0xFF is data (RFC 2217 would take it for IAC), and so are CR, LF, NUL, Ctrl+Z."""
    peer = Peer.to(raw_server.port)
    try:
        peer.expect(b"+QIND: PB DONE\r\n")
        upload_and_download(peer, "all.bin", bytes(range(256)) * 8 + b"\xff\xff\xfa\xff\xf0")
    finally:
        peer.close()


def test_a_second_client_is_refused_while_the_first_holds_the_port(raw_server):
    first = Peer.to(raw_server.port)
    try:
        first.expect(b"+QIND: PB DONE\r\n")
        second = Peer.to(raw_server.port)
        try:
            assert second.sock.recv(100) == b""  # closed at once
        finally:
            second.close()
        assert first.ask(b"AT") == b"AT\r\r\nOK\r\n"
    finally:
        first.close()


def wait_for_no_host(modem: Emulator) -> None:
    """Until the emulator has seen the peer go (a flooded connection is noticed once its reset
    comes back through the unsent output)."""
    deadline = time.monotonic() + WAIT
    while modem.call(lambda runner: runner.has_host):
        assert time.monotonic() < deadline, "the peer that left still holds the port"
        time.sleep(0.01)


def test_a_client_leaving_mid_command_or_flooding_leaves_the_module_answering(tmp_path):
    with Emulator(ufs=tmp_path / "ufs", tcp_raw=("127.0.0.1", 0)) as modem:
        flooder = Peer.to(modem.port)
        flooder.expect(b"+QIND: PB DONE\r\n")
        flooder.sock.sendall(b'AT+QFUPL="half.bin",100\r')
        flooder.expect(b"CONNECT\r\n")
        flooder.sock.sendall(b"x" * 40)  # then gone, 60 bytes short
        flooder.close()
        wait_for_no_host(modem)
        flooder = Peer.to(modem.port)
        flooder.sock.setblocking(False)
        sent = 0
        while sent < 4_000_000:  # never reading: the module stops reading too, nothing is lost
            try:
                sent += flooder.sock.send(b"AT+CSQ\r" * 1000)
            except BlockingIOError:
                break
        flooder.close()
        wait_for_no_host(modem)
        peer = Peer.to(modem.port)
        try:
            # The half upload ended as its timeout would (the host that left is a DTR drop): the
            # 40 bytes are the file. The flood may have ended mid-line: a CR ends that line first.
            peer.sock.sendall(b"\rAT+QFLST\r")
            answer = peer.expect(b'AT+QFLST\r\r\n+QFLST: "UFS:half.bin",40\r\n\r\nOK\r\n')
            assert b"+CSQ" not in answer  # nothing meant for the flooder that left
        finally:
            peer.close()


def test_tcp_nodelay_is_set_on_the_port_s_connection(tmp_path):
    with Emulator(ufs=tmp_path / "ufs", tcp_raw=("127.0.0.1", 0)) as modem:
        peer = Peer.to(modem.port)
        try:
            peer.expect(b"+QIND: PB DONE\r\n")
            nodelay = modem.call(lambda runner: runner.host.peer.transport.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY))
            assert nodelay
        finally:
            peer.close()


def listening_later() -> tuple[socket.socket, int]:
    """A port that refuses connections until the test calls listen() on it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


def test_connect_tries_until_the_server_listens_then_is_the_module_there(tmp_path):
    server, port = listening_later()
    running = RunningEmulator("--connect", f"127.0.0.1:{port}", "--ufs", str(tmp_path / "ufs"), "--log-level", "info")
    try:
        assert running.port == f"tcp-connect://127.0.0.1:{port}"
        deadline = time.monotonic() + WAIT
        while "waiting for 127.0.0.1" not in running.log_text():  # it was refused at least once
            assert time.monotonic() < deadline
            time.sleep(0.01)
        server.listen(1)
        server.settimeout(WAIT)
        connection, _ = server.accept()
        peer = Peer(connection)
        try:
            assert peer.expect(b"+QIND: PB DONE\r\n") == BOOT_URCS
            assert peer.ask(b"ATE0") == b"ATE0\r\r\nOK\r\n"
        finally:
            peer.close()
        # The simulator restarts: the module connects again and keeps its settings (echo off).
        connection, _ = server.accept()
        peer = Peer(connection)
        try:
            assert peer.ask(b"AT") == b"\r\nOK\r\n"
        finally:
            peer.close()
    finally:
        server.close()
        assert running.stop() == 0


def test_connect_out_carries_every_byte_value(tmp_path):
    server, port = listening_later()
    server.listen(1)
    server.settimeout(WAIT)
    with Emulator(ufs=tmp_path / "ufs", connect=("127.0.0.1", port)):
        connection, _ = server.accept()
        peer = Peer(connection)
        try:
            peer.expect(b"+QIND: PB DONE\r\n")
            upload_and_download(peer, "x.bin", bytes(range(256))[::-1] * 3)
        finally:
            peer.close()
            server.close()


@pytest.mark.parametrize("args, message", [
    (["--tcp-raw", "0", "--tcp", "0"], "--tcp and --tcp-raw are different ports"),
    (["--connect", "5555"], "expected HOST:PORT"),
    (["--connect", "127.0.0.1:0"], "port out of range"),
])
def test_bad_transport_options_are_refused(args, message):
    result = subprocess.run([sys.executable, "-m", "ecemu", "run", *args], capture_output=True, text=True,
                            timeout=WAIT, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_socat_bridges_a_pty_to_the_raw_port(raw_server, tmp_path):
    """socat as the host: a terminal program on socat's pty talks to the module through raw TCP."""
    if shutil.which("socat") is None:
        pytest.fail("socat is needed for this test (scripts/test installs it)")
    host, port = raw_server.port.removeprefix("socket://").rsplit(":", 1)
    link = tmp_path / "bridged"
    bridge = subprocess.Popen(["socat", f"pty,raw,echo=0,link={link}", f"tcp:{host}:{port}"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + WAIT
        while not os.path.lexists(link):
            assert time.monotonic() < deadline and bridge.poll() is None, "socat did not start"
            time.sleep(0.01)
        fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
        try:
            assert read_until(fd, b"+QIND: PB DONE\r\n", timeout=WAIT).endswith(BOOT_URCS)
            os.write(fd, b"AT+CGMI\r")
            assert read_until(fd, b"OK\r\n", timeout=WAIT) == b"AT+CGMI\r\r\nQuectel\r\n\r\nOK\r\n"
        finally:
            os.close(fd)
    finally:
        bridge.terminate()
        bridge.wait(WAIT)
        bridge.stderr.close()


def test_the_threaded_client_sees_output_as_it_comes(tmp_path):
    """Raw TCP to a reader in another thread: the URCs of a reboot arrive unasked, in order."""
    with Emulator(ufs=tmp_path / "ufs", tcp_raw=("127.0.0.1", 0)) as modem:
        peer = Peer.to(modem.port)
        try:
            peer.expect(b"+QIND: PB DONE\r\n")
            got: list[bytes] = []
            reader = threading.Thread(target=lambda: got.append(peer.expect(b"+QIND: PB DONE\r\n")))
            reader.start()
            modem.control.reboot()
            reader.join(WAIT)
            assert got == [BOOT_URCS]
        finally:
            peer.close()
