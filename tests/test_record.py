"""``ecemu record``: a transparent tap between a host and a module, with the emulator standing in
for the real module (its pty is the ``--device``, opened in raw mode as a USB port would be).

What the host sends and gets through the tap is compared with what the log holds, byte for byte;
either side goes away and comes back. The added latency is measured in
benchmarks/record_latency.py, not here.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from ecemu.api import Emulator
from ecemu.sessionlog import HOST, MODULE
from tests.fieldlog_processes import Running, events, wait_for_log
from tests.host import AtHost

PAYLOAD = bytes(range(256)) * 4  # every byte value, CR, LF, Ctrl+Z, NUL among them


@pytest.fixture(autouse=True)
def fast_network(monkeypatch):
    monkeypatch.setenv("ECEMU_NETWORK_RTT_MS", "0")


@pytest.fixture
def module(tmp_path):
    """The emulator standing in for a real module, its port reachable at a fixed path."""
    with Emulator(profile="EC800M-CN", link=tmp_path / "ttyUSB2", ufs=tmp_path / "ufs") as modem:
        yield modem


def module_bytes(records) -> bytes:
    return b"".join(r.data for r in records if r.direction == MODULE)


def host_bytes(records) -> bytes:
    return b"".join(r.data for r in records if r.direction == HOST)


def test_every_byte_each_way_passes_unchanged_and_is_logged(module, tmp_path):
    out = tmp_path / "session.log"
    tap = Running("record", "--device", str(tmp_path / "ttyUSB2"), "--link", str(tmp_path / "modem"),
                  "--out", str(out), "--module", "EC800M-CN", wanted=("port", "link", "out"))
    try:
        with AtHost(str(tmp_path / "modem"), timeout=10) as host:
            got = host.expect(b"+QIND: PB DONE\r\n")  # the boot URCs came through the tap
            sent = bytearray()
            for line in (b"ATI", b"AT+CMEE=2", b"AT+QFDEL=\"*\""):
                sent += line + b"\r"
                got += host.ask(line)
            command = b'AT+QFUPL="all.bin",%d\r' % len(PAYLOAD)
            host.write(command)
            got += host.expect(b"CONNECT\r\n")
            host.write(PAYLOAD)
            got += host.until_final()
            sent += command + PAYLOAD
            host.write(b'AT+QFDWL="all.bin"\r')
            got += host.expect(b"CONNECT\r\n")
            got += host.read_exactly(len(PAYLOAD))
            got += host.until_final()
            sent += b'AT+QFDWL="all.bin"\r'
        assert PAYLOAD in got  # the download brought the binary file back through the tap
        records = wait_for_log(out, lambda records: "host-closed" in events(records))
    finally:
        assert tap.stop() == 0, tap.stderr()
    assert host_bytes(records) == bytes(sent)
    assert module_bytes(records) == got
    assert events(records) == ["host-opened", "host-closed"]
    times = [r.time for r in records]
    assert times == sorted(times)
    text = out.read_text()
    assert text.startswith("# ecemu-session 1\n# recorded-by: ecemu record\n")
    assert "# module: EC800M-CN\n" in text and "# line-ends: exact\n" in text
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_the_host_may_close_and_reopen_the_port(module, tmp_path):
    out = tmp_path / "session.log"
    tap = Running("record", "--device", str(tmp_path / "ttyUSB2"), "--link", str(tmp_path / "modem"),
                  "--out", str(out), wanted=("port", "link", "out"))
    try:
        for round_ in range(3):
            with AtHost(str(tmp_path / "modem"), timeout=10) as host:
                assert host.ask("AT+CSCS?".encode()).endswith(b'+CSCS: "GSM"\r\n\r\nOK\r\n'), round_
        records = wait_for_log(out, lambda records: events(records).count("host-closed") == 3)
    finally:
        assert tap.stop() == 0, tap.stderr()
    assert events(records) == ["host-opened", "host-closed"] * 3
    assert host_bytes(records) == b"AT+CSCS?\r" * 3


def test_the_device_may_go_away_and_come_back(tmp_path):
    out = tmp_path / "session.log"
    device = tmp_path / "ttyUSB2"
    first = Emulator(profile="EC800M-CN", link=device, ufs=tmp_path / "ufs").start()
    tap = Running("record", "--device", str(device), "--link", str(tmp_path / "modem"), "--out", str(out),
                  wanted=("port", "link", "out"))
    second = None
    try:
        with AtHost(str(tmp_path / "modem"), timeout=10) as host:
            assert host.ask("AT").endswith(b"OK\r\n")
            first.stop()  # the module reboots: its port goes away
            wait_for_log(out, lambda records: "device-closed" in events(records))
            host.write(b"AT+GMR\r")  # nobody to take it: logged, and dropped
            wait_for_log(out, lambda records: "dropped" in events(records))
            second = Emulator(profile="EC800M-CN", link=device, ufs=tmp_path / "ufs").start()
            wait_for_log(out, lambda records: "device-opened" in events(records))
            host.expect(b"+QIND: PB DONE\r\n")  # the new module's boot URCs come through
            assert host.ask("AT+CGMM").endswith(b"\r\nEC800M\r\n\r\nOK\r\n")
        records = wait_for_log(out, lambda records: "host-closed" in events(records))
    finally:
        tap.stop()
        if second is not None:
            second.stop()
        first.stop()
    assert events(records) == ["host-opened", "device-closed", "dropped", "device-opened", "host-closed"]
    assert host_bytes(records) == b"AT\rAT+GMR\rAT+CGMM\r"


def read_until(sock: socket.socket, end: bytes) -> bytes:
    answer = b""
    while end not in answer:
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    return answer


def test_the_host_on_a_raw_tcp_port(module, tmp_path):
    out = tmp_path / "session.log"
    tap = Running("record", "--device", str(tmp_path / "ttyUSB2"), "--tcp-raw", "0", "--out", str(out),
                  wanted=("port", "out"))
    address = tap.announced["port"].removeprefix("tcp://")
    host, port = address.rsplit(":", 1)
    try:
        first = socket.create_connection((host, int(port)), timeout=10)
        first.sendall(b"AT+CGMM\r")
        assert b"AT+CGMM\r\r\nEC800M\r\n\r\nOK\r\n" in read_until(first, b"EC800M\r\n\r\nOK\r\n")
        second = socket.create_connection((host, int(port)), timeout=10)
        assert second.recv(10) == b""  # one host at a time: the second is closed at once
        second.close()
        first.close()
        wait_for_log(out, lambda records: "host-closed" in events(records))
        third = socket.create_connection((host, int(port)), timeout=10)
        third.sendall(b"AT\r")
        read_until(third, b"AT\r\r\nOK\r\n")
        third.close()
        records = wait_for_log(out, lambda records: events(records).count("host-closed") == 2)
    finally:
        assert tap.stop() == 0, tap.stderr()
    assert host_bytes(records) == b"AT+CGMM\rAT\r"
    assert b"EC800M" in module_bytes(records)


def test_a_device_that_cannot_be_opened_leaves_no_file(tmp_path):
    out = tmp_path / "session.log"
    result = subprocess.run([sys.executable, "-m", "ecemu", "record", "--device", str(tmp_path / "none"),
                             "--link", str(tmp_path / "modem"), "--out", str(out)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"cannot open {tmp_path / 'none'}: no such device" in result.stderr
    assert not out.exists() and not (tmp_path / "modem").exists()


def test_one_host_side_is_needed(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ecemu", "record", "--device", "/dev/null", "--out",
                             str(tmp_path / "x.log")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--link PATH or --tcp-raw" in result.stderr
