"""The module powers on when the first host opens the port, so that hosts which flush their input
as they open it (pyserial, picocom, miniterm) still see RDY and the other boot URCs."""

from __future__ import annotations

import os
import re
import socket
import time

import pytest
import serial

from ecemu.api import Emulator
from tests.processes import RunningEmulator, read_until
from tests.wire import BOOT_URCS


def read_exactly(port: serial.Serial, count: int, timeout: float = 10.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < count and time.monotonic() < deadline:
        data += port.read(count - len(data))
    return data


def test_pyserial_opening_the_port_sees_every_boot_urc(tmp_path):
    with Emulator(ufs=tmp_path / "ufs") as emulator:
        assert emulator.call(lambda runner: runner.powered) is False  # nobody opened it yet
        with serial.Serial(emulator.port, 115200, timeout=0.2) as port:  # flushes as it opens
            assert read_exactly(port, len(BOOT_URCS)) == BOOT_URCS
            port.write(b"AT\r")
            assert port.read_until(b"OK\r\n") == b"AT\r\r\nOK\r\n"


def test_boot_is_timed_from_the_open(tmp_path):
    with Emulator(ufs=tmp_path / "ufs") as emulator:
        with serial.Serial(emulator.port, 115200, timeout=0.2) as port:
            opened = time.monotonic()
            assert read_exactly(port, len(b"\r\nRDY\r\n")) == b"\r\nRDY\r\n"
            rest = BOOT_URCS[len(b"\r\nRDY\r\n"):]
            assert read_exactly(port, len(rest)) == rest
            # +QIND: PB DONE comes 350 ms after power-on in the profile.
            assert time.monotonic() - opened >= 0.35


def test_a_host_that_does_not_flush_sees_the_boot_urcs_too(tmp_path):
    with Emulator(ufs=tmp_path / "ufs") as emulator:
        fd = os.open(emulator.port, os.O_RDWR | os.O_NOCTTY)
        try:
            assert read_until(fd, b"+QIND: PB DONE\r\n") == BOOT_URCS
        finally:
            os.close(fd)


def test_at_start_powers_on_at_once_and_wait_for_boot_needs_no_host(tmp_path):
    with Emulator(ufs=tmp_path / "ufs", boot="at-start") as emulator:
        assert emulator.call(lambda runner: runner.powered) is True  # before anyone asked
        emulator.wait_for_boot()  # raises TimeoutError unless the boot ends with no host on the port


def test_wait_for_boot_before_any_open_powers_the_module_on(tmp_path):
    with Emulator(ufs=tmp_path / "ufs") as emulator:
        emulator.wait_for_boot()
        with serial.Serial(emulator.port, 115200, timeout=5) as port:
            port.write(b"AT\r")
            assert port.read_until(b"OK\r\n").endswith(b"AT\r\r\nOK\r\n")


def test_a_reboot_prints_the_boot_urcs_to_the_open_host(tmp_path):
    with Emulator(ufs=tmp_path / "ufs") as emulator:
        with serial.Serial(emulator.port, 115200, timeout=0.2) as port:
            assert read_exactly(port, len(BOOT_URCS)) == BOOT_URCS
            port.write(b"AT+CFUN=1,1\r")
            answer = b"AT+CFUN=1,1\r\r\nOK\r\n" + BOOT_URCS
            assert read_exactly(port, len(answer)) == answer


def test_ecemu_run_boots_when_pyserial_opens_its_link(tmp_path):
    running = RunningEmulator("--link", str(tmp_path / "modem"))
    try:
        with serial.Serial(str(tmp_path / "modem"), 115200, timeout=0.2) as port:
            assert read_exactly(port, len(BOOT_URCS)) == BOOT_URCS
    finally:
        assert running.stop() == 0


@pytest.mark.parametrize("boot", ["on-open", "at-start"])
def test_ecemu_run_over_rfc2217_gives_the_first_client_the_boot_urcs(boot):
    running = RunningEmulator("--tcp", "127.0.0.1:0", "--boot", boot)
    try:
        host, port = running.port.removeprefix("rfc2217://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as client:
            received = read_until(client.fileno(), b"+QIND: PB DONE\r\n")
            # The server's telnet options (RFC 2217 notifications) may come between two URCs.
            data = re.sub(rb"\xff\xfa.*?\xff\xf0|\xff[\xfb-\xfe].", b"", received, flags=re.S)
            assert b"\r\nRDY\r\n\r\n+CPIN: READY\r\n" in data
    finally:
        assert running.stop() == 0


def test_pyserial_over_rfc2217_sees_rdy():
    running = RunningEmulator("--tcp", "127.0.0.1:0")
    try:
        port = serial.serial_for_url(running.port, timeout=0.2)
        try:
            assert read_exactly(port, len(BOOT_URCS)) == BOOT_URCS
        finally:
            port.close()
    finally:
        assert running.stop() == 0
