"""``--line uart``: bytes take the time they take on a UART at AT+IPR's rate and AT+ICF's framing,
each way, on every transport; the default (``usb``) moves them at memory speed.

Timing is checked from below only (a byte never arrives before its last bit could have): a busy
machine makes things later, never earlier. Byte times come from V.250's framing: a start bit,
the data bits, the parity bit if any, the stop bits, at the rate in bits per second."""

from __future__ import annotations

import json
import time

import serial

from ecemu.api import Emulator
from tests.byte_ends import TcpEnd as Peer

WAIT = 15.0
EPSILON = 1e-6


def byte_time(rate: int, bits: int = 10) -> float:
    return bits / rate


def trace_entries(path, kind: str) -> list[dict]:
    with open(path) as f:
        return [entry for entry in map(json.loads, f) if entry["kind"] == kind]


def assert_paced(entries: list[dict], seconds_per_byte: float, since: float, before: int = 0) -> None:
    """No entry (``data`` at trace time ``t``, seconds after the tracer's start) came earlier than
    the line allows: the host wrote at ``since`` (the trace's clock), and the ``before`` bytes that
    had to cross the line first and every byte up to the entry's last took their byte time."""
    crossed = before
    for entry in entries:
        crossed += len(entry["data"].encode("latin-1"))
        assert entry["t"] - since >= crossed * seconds_per_byte - EPSILON, (entry, crossed)


def trace_clock(modem: Emulator) -> float:
    """``time.monotonic()`` at the trace's zero (the loop's clock is the monotonic clock)."""
    return modem.call(lambda runner: runner.tracer.start)


def test_what_the_module_says_leaves_at_the_line_rate(tmp_path):
    trace = tmp_path / "trace.jsonl"
    data = bytes(range(32, 127)) * 3  # 285 bytes
    with Emulator(ufs=tmp_path / "ufs", line="uart", baud=9600, trace=trace) as modem:
        (tmp_path / "ufs" / "f.txt").write_bytes(data)
        modem.wait_for_boot()
        zero = trace_clock(modem)
        with serial.Serial(modem.port, 9600, timeout=WAIT) as port:
            port.write(b"ATE0\r")
            assert port.read_until(b"OK\r\n").endswith(b"OK\r\n")
            asked = time.monotonic()
            port.write(b'AT+QFDWL="f.txt"\r')
            answer = port.read_until(b"OK\r\n")
            took = time.monotonic() - asked
    assert data in answer
    # The command (17 bytes) reached the module byte by byte, then every byte of the answer left
    # one after the other: at 9600 8N1 a byte is 1.04 ms.
    assert took >= (17 + len(answer)) * byte_time(9600) - EPSILON
    download = [e for e in trace_entries(trace, "host_out") if e["t"] >= asked - zero]
    assert b"".join(e["data"].encode("latin-1") for e in download) == answer
    assert_paced(download, byte_time(9600), since=asked - zero, before=17)


def test_what_the_host_sends_reaches_the_module_as_it_arrives_on_the_line(tmp_path):
    """A long line written at once reaches the module over its line time, a slice at a time."""
    trace = tmp_path / "trace.jsonl"
    line = b"AT+QFLST=\"" + b"x" * 180 + b"\"\r"
    with Emulator(ufs=tmp_path / "ufs", line="uart", baud=9600, trace=trace) as modem:
        modem.wait_for_boot()
        zero = trace_clock(modem)
        with serial.Serial(modem.port, 9600, timeout=WAIT) as port:
            written = time.monotonic()
            port.write(line)
            assert port.read_until(b"\r\n\r\n").endswith(b"\r\n")
    arrived = trace_entries(trace, "host_in")
    assert b"".join(e["data"].encode("latin-1") for e in arrived) == line
    assert len(arrived) > 10  # in slices as the bytes came, not in one piece
    assert_paced(arrived, byte_time(9600), since=written - zero)


def test_at_ipr_answers_at_the_old_rate_then_the_line_runs_at_the_new_one(tmp_path):
    trace = tmp_path / "trace.jsonl"
    with Emulator(ufs=tmp_path / "ufs", line="uart", baud=115200, trace=trace) as modem:
        with serial.Serial(modem.port, 115200, timeout=WAIT) as port:
            assert port.read_until(b"+QIND: PB DONE\r\n").endswith(b"+QIND: PB DONE\r\n")
            port.write(b"AT+IPR=9600\r")
            assert port.read_until(b"OK\r\n") == b"AT+IPR=9600\r\r\nOK\r\n"
            port.baudrate = 9600
            asked = time.monotonic()
            port.write(b"ATI\r")
            answer = port.read_until(b"OK\r\n")
            took = time.monotonic() - asked
    assert answer.endswith(b"\r\nOK\r\n")
    # The echo goes out while the line comes in (full duplex): the last byte in, then the rest.
    assert took >= (len(answer) + 1) * byte_time(9600) - EPSILON  # not at 115200's 11x speed
    with open(trace) as f:
        kinds = [(e["kind"], e.get("data", e.get("framing"))) for e in map(json.loads, f)]
    ok_out = max(i for i, (kind, data) in enumerate(kinds) if kind == "host_out" and data and "OK" in data
                 and i < kinds.index(("line_format", "9600 8N1")))
    assert kinds.index(("line_format", "9600 8N1")) > ok_out  # after the OK had left


def test_the_framing_counts_parity_and_stop_bits(tmp_path):
    """AT+ICF=2,1: 8 data bits, even parity, 1 stop: 11 bits a byte, one more than 8N1."""
    trace = tmp_path / "trace.jsonl"
    with Emulator(ufs=tmp_path / "ufs", line="uart", baud=9600, trace=trace) as modem:
        with serial.Serial(modem.port, 9600, timeout=WAIT) as port:
            assert port.read_until(b"+QIND: PB DONE\r\n").endswith(b"+QIND: PB DONE\r\n")
            port.write(b"AT+ICF=2,1\r")
            assert port.read_until(b"OK\r\n").endswith(b"OK\r\n")
            asked = time.monotonic()
            port.write(b"AT+GSN\r")
            answer = port.read_until(b"OK\r\n")
            took = time.monotonic() - asked
    assert took >= (len(answer) + 1) * byte_time(9600, bits=11) - EPSILON  # echo overlaps the line in


def test_the_uart_line_paces_raw_tcp_too(tmp_path):
    with Emulator(ufs=tmp_path / "ufs", line="uart", baud=9600, tcp_raw=("127.0.0.1", 0)) as modem:
        peer = Peer.to(modem.port)
        try:
            peer.expect(b"+QIND: PB DONE\r\n")
            asked = time.monotonic()
            answer = peer.ask(b"ATI")
            took = time.monotonic() - asked
        finally:
            peer.close()
    assert took >= (len(answer) + 1) * byte_time(9600) - EPSILON  # echo overlaps the line in


def test_the_plugin_marker_gives_the_uart_line(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.ecemu_line("uart")
        def test_uart(ecemu_modem):
            assert ecemu_modem.call(lambda runner: runner.line is not None)

        def test_usb_by_default(ecemu_modem):
            assert ecemu_modem.call(lambda runner: runner.line is None)
    """)
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
