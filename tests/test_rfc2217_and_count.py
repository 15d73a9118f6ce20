"""``ecemu run --tcp`` (RFC 2217) and ``--count`` (many modems in one process), end to end."""

from __future__ import annotations

import os
import socket
import time

import serial

from tests.processes import RunningEmulator, read_until

IAC = 0xFF


def test_rfc2217_client_talks_to_the_modem_and_reconnects():
    running = RunningEmulator("--tcp", "127.0.0.1:0")
    try:
        assert running.port.startswith("rfc2217://127.0.0.1:")
        for _ in range(3):
            port = serial.serial_for_url(running.port, timeout=5)
            try:
                port.write(b"ATI\r")
                assert port.read_until(b"OK\r\n").endswith(b"Revision: EC200MCNLAR02A02M16\r\n\r\nOK\r\n")
            finally:
                port.close()
    finally:
        assert running.stop() == 0


def test_rfc2217_keeps_the_boot_urcs_for_the_first_client_and_refuses_a_second():
    running = RunningEmulator("--tcp", "127.0.0.1:0")
    try:
        host, port = running.port.removeprefix("rfc2217://").rsplit(":", 1)
        first = socket.create_connection((host, int(port)), timeout=5)
        try:
            received = read_until(first.fileno(), b"+QIND: PB DONE\r\n")
            assert b"\r\nRDY\r\n" in received  # after the telnet negotiation bytes
            second = socket.create_connection((host, int(port)), timeout=5)
            try:
                second.settimeout(5)
                assert second.recv(100) == b""  # closed at once: the port is busy
            finally:
                second.close()
        finally:
            first.close()
    finally:
        running.stop()


def test_count_runs_independent_modems_with_their_own_links(tmp_path):
    running = RunningEmulator("--count", "3", "--link", str(tmp_path / "modem"), "--ufs", str(tmp_path / "ufs"))
    try:
        ports = [line.removeprefix("port: ") for line in running.stdout_lines if line.startswith("port: ")]
        while len(ports) < 3:
            line = running.readline(time.monotonic() + 10)
            running.stdout_lines.append(line)
            if line.startswith("port: "):
                ports.append(line.removeprefix("port: "))
        assert len(set(ports)) == 3
        for index, path in enumerate(ports):
            assert path == str(tmp_path / f"modem-{index}")  # each modem's port is its link
            assert os.path.realpath(path).startswith("/dev/pts/")
        # Echo off on the first modem leaves the others echoing: separate state.
        with serial.Serial(ports[0], timeout=5) as first, serial.Serial(ports[1], timeout=5) as second:
            first.write(b"ATE0\r")
            assert first.read_until(b"OK\r\n").endswith(b"ATE0\r\r\nOK\r\n")
            first.write(b"AT\r")
            assert first.read_until(b"OK\r\n").endswith(b"\r\nOK\r\n")
            second.write(b"AT\r")
            assert second.read_until(b"OK\r\n").endswith(b"AT\r\r\nOK\r\n")
        assert sorted(p.name for p in (tmp_path / "ufs").iterdir()) == ["0", "1", "2"]
    finally:
        assert running.stop() == 0
    assert not any(os.path.lexists(tmp_path / f"modem-{i}") for i in range(3))


def test_rfc2217_dtr_drives_at_and_d_in_transparent_mode():
    """The RFC 2217 client's DTR line is the modem's: with AT&D1 a drop leaves transparent mode."""
    from tests.tls_servers import TlsServer, echo

    running = RunningEmulator("--tcp", "127.0.0.1:0", "--escape-guard-ms", "200")
    try:
        with TlsServer(behaviour=echo) as server:
            port = serial.serial_for_url(running.port, timeout=10)
            try:
                port.reset_input_buffer()
                for line in (b"ATE0", b"AT&D1", b"AT+QIACT=1"):
                    port.write(line + b"\r")
                    assert port.read_until(b"OK\r\n").endswith(b"OK\r\n")
                port.write(f'AT+QSSLOPEN=1,1,0,"127.0.0.1",{server.port},2\r'.encode())
                assert port.read_until(b"CONNECT\r\n").endswith(b"\r\nCONNECT\r\n")
                port.write(b"through")
                assert port.read(7) == b"through"
                port.dtr = False
                assert port.read_until(b"OK\r\n") == b"\r\nOK\r\n"
                port.dtr = True
                port.write(b"AT+QSSLSTATE=0\r")
                assert port.read_until(b"OK\r\n").endswith(b',2,1,0,0,"usbmodem",1\r\n\r\nOK\r\n')
            finally:
                port.close()
    finally:
        assert running.stop() == 0


def test_an_endless_line_costs_linear_time_and_never_stalls_another_modem():
    """Half a megabyte without a CR (a host streaming its PEM after AT+QFUPL was refused) is
    refused as one overlong line; the other modem of the process answers meanwhile."""
    running = RunningEmulator("--tcp", "127.0.0.1:0", "--count", "2")
    try:
        ports = [line.removeprefix("port: ") for line in running.stdout_lines if line.startswith("port: ")]
        while len(ports) < 2:
            line = running.readline(time.monotonic() + 10)
            running.stdout_lines.append(line)
            if line.startswith("port: "):
                ports.append(line.removeprefix("port: "))
        flooded = serial.serial_for_url(ports[0], timeout=10)
        other = serial.serial_for_url(ports[1], timeout=5)
        try:
            for port in (flooded, other):
                # The module boots as the client opens the port: its URCs first, then commands.
                assert port.read_until(b"+QIND: PB DONE\r\n").endswith(b"+QIND: PB DONE\r\n")
                port.write(b"ATE0\r\n")
                assert port.read_until(b"OK\r\n").endswith(b"\r\nOK\r\n")
            flooded.write(b"X" * 524288 + b"\rAT\r")
            other.write(b"AT+CSQ\r\n")
            assert other.read_until(b"OK\r\n") == b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
            assert flooded.read_until(b"OK\r\n") == b"\r\nERROR\r\n\r\nOK\r\n"
        finally:
            flooded.close()
            other.close()
    finally:
        assert running.stop() == 0
