"""``--line uart``: bytes take the time they take on a UART at AT+IPR's rate and AT+ICF's framing,
each way, on every transport; the default (``usb``) moves them at memory speed.

Timing is checked from below only (a byte never arrives before its last bit could have): a busy
machine makes things later, never earlier. Byte times come from V.250's framing: a start bit,
the data bits, the parity bit if any, the stop bits, at the rate in bits per second."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
import serial

from ecemu.api import Emulator
from ecemu.core.uart import LineFormat
from ecemu.shell.uart_line import UartLine
from tests.byte_ends import TcpEnd as Peer
from tests.processes import RunningEmulator

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
    assert len(arrived) > 1  # in pieces as the bytes came (fewer, larger ones on a busy loop), not at once
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


# --- Lines sharing one loop (an `ecemu run --count` fleet) --------------------------------------
# The lines themselves on a real asyncio loop, its real timers: each direction records when each
# slice came (the loop's clock) and where the line's own clock (``free_at``, when the slice's
# last bit arrived) stood. Late is allowed (a busy machine), early never; and the line's clock
# follows the arithmetic exactly however late the loop was, so a long transfer takes its line time.


class Received:
    """What one direction delivered: (loop time, the line's clock, bytes) per slice."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int):
        self.loop = loop
        self.expected = expected
        self.direction: Any = None  # set once the line exists
        self.slices: list[tuple[float, float, bytes]] = []
        self.complete = loop.create_future()
        self.then: list = []  # called with each slice's bytes: what a test does mid-stream

    def __call__(self, data: bytes) -> None:
        self.slices.append((self.loop.time(), self.direction.free_at, data))
        for action in self.then:
            action(data)
        if len(self.data) >= self.expected and not self.complete.done():
            self.complete.set_result(None)

    @property
    def data(self) -> bytes:
        return b"".join(data for _, _, data in self.slices)


def a_line(loop, line_format: LineFormat, to_module: int, to_host: int):
    incoming, outgoing = Received(loop, to_module), Received(loop, to_host)
    line = UartLine(loop, line_format, incoming, outgoing)
    incoming.direction, outgoing.direction = line.incoming, line.outgoing
    return line, incoming, outgoing


def assert_on_schedule(received: Received, start: float, byte_times: list[float], since: float) -> None:
    """Slice by slice: the line's clock at ``start`` plus the byte times of every byte so far
    (``byte_times[i]`` for the i-th byte), exactly; and no slice came before the loop's clock
    reached it, nor before ``since`` (when the bytes were pushed) plus their line time."""
    crossed = 0
    for came, clock, data in received.slices:
        crossed += len(data)
        line_time = sum(byte_times[:crossed])
        assert clock == pytest.approx(start + line_time, rel=0, abs=1e-9), (crossed, clock - start, line_time)
        assert came >= clock - EPSILON
        assert came >= since + line_time - EPSILON


def run_loop(scenario) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(scenario(loop), WAIT))
    finally:
        loop.close()


def test_lines_sharing_a_loop_each_keep_their_own_rate_and_order():
    """Three lines, both ways at once: 115200 8N1 (86.8 us a byte), 9600 8E1 (11 bits: 1.146 ms)
    and 57600 8N2 (11 bits: 191 us), the bytes of each in order, each at its own rate."""
    cases = [  # format, its byte time, bytes towards the module, bytes towards the host
        (LineFormat(115200), 10 / 115200, bytes(i % 251 for i in range(700)), bytes(range(256)) * 2),
        (LineFormat(9600, parity="even"), 11 / 9600, b"AT+QFDWL\r" * 4, bytes(range(60))),
        (LineFormat(57600, stop_bits=2), 11 / 57600, bytes(range(200)), bytes(range(255, -1, -1)) + b"x" * 44),
    ]

    async def scenario(loop):
        since = loop.time()
        runs = []
        for line_format, _, to_module, to_host in cases:
            line, incoming, outgoing = a_line(loop, line_format, len(to_module), len(to_host))
            line.incoming.push(to_module)
            line.outgoing.push(to_host)
            runs.append((line, incoming, outgoing, line.incoming.free_at, line.outgoing.free_at))
        await asyncio.gather(*(run[i].complete for run in runs for i in (1, 2)))
        for (_, byte_time_here, to_module, to_host), (line, incoming, outgoing, start_in, start_out) in zip(
                cases, runs, strict=True):
            assert incoming.data == to_module and outgoing.data == to_host
            assert len(incoming.slices) > 1 and len(outgoing.slices) > 1  # in slices, not at once
            assert_on_schedule(incoming, start_in, [byte_time_here] * len(to_module), since)
            assert_on_schedule(outgoing, start_out, [byte_time_here] * len(to_host), since)
            line.close()

    run_loop(scenario)


def test_a_direction_cleared_or_held_stops_while_the_other_lines_go_on():
    """One line's host side is cleared while its first slice is on the wire (what was on its way
    is dropped) and given new bytes at once; its module side held after its first slice (flow
    control); the other line carries all of its bytes meanwhile. Released, the held side sends the
    rest from then on; the cleared side sends the new bytes only, from when they came."""
    b = 10 / 115200

    async def scenario(loop):
        line, incoming, outgoing = a_line(loop, LineFormat(115200), 200, 600)
        other, other_in, other_out = a_line(loop, LineFormat(115200), 600, 600)
        outgoing.then.append(lambda data: line.outgoing.hold(True))
        for direction in (line.incoming, line.outgoing, other.incoming, other.outgoing):
            direction.push(bytes(range(200)) * 3)
        line.incoming.clear()
        since = loop.time()
        line.incoming.push(b"again" * 40)
        start = line.incoming.free_at
        await asyncio.gather(other_in.complete, other_out.complete, incoming.complete)
        assert other_in.data == other_out.data == bytes(range(200)) * 3
        assert incoming.data == b"again" * 40  # none of the cleared bytes, the new ones in order
        assert_on_schedule(incoming, start, [b] * 200, since)
        assert len(outgoing.slices) == 1  # held since
        first_out = outgoing.data
        assert first_out == bytes(range(len(first_out)))

        outgoing.then.clear()
        released = loop.time()
        line.outgoing.hold(False)
        restart = line.outgoing.free_at
        await outgoing.complete
        assert outgoing.data == bytes(range(200)) * 3  # the rest, in order, nothing lost or doubled
        crossed = 0
        for came, clock, data in outgoing.slices[1:]:
            crossed += len(data)
            assert clock == pytest.approx(restart + crossed * b, rel=0, abs=1e-9)
            assert came >= released + crossed * b - EPSILON
        line.close()
        other.close()

    run_loop(scenario)


def test_a_format_change_mid_stream_applies_after_the_slice_on_the_wire():
    """AT+IPR=9600 while bytes wait at 115200: the slice already on the wire ends at 115200's
    86.8 us a byte, every byte after it takes 9600's 1.04 ms; a line beside it keeps 115200."""
    fast, slow = 10 / 115200, 10 / 9600

    async def scenario(loop):
        line, incoming, _ = a_line(loop, LineFormat(115200), 120, 0)
        other, other_in, _ = a_line(loop, LineFormat(115200), 1200, 0)
        incoming.then.append(lambda data: line.set_format(LineFormat(9600)) if len(incoming.slices) == 1 else None)
        since = loop.time()
        line.incoming.push(bytes(range(120)))
        other.incoming.push(bytes(range(120)) * 10)
        start, other_start = line.incoming.free_at, other.incoming.free_at
        await asyncio.gather(incoming.complete, other_in.complete)
        assert incoming.data == bytes(range(120))
        first = len(incoming.slices[0][2])
        assert 1 <= first < 120
        assert_on_schedule(incoming, start, [fast] * first + [slow] * (120 - first), since)
        assert_on_schedule(other_in, other_start, [fast] * 1200, since)
        line.close()
        other.close()

    run_loop(scenario)


def test_a_late_hand_over_carries_every_byte_whose_last_bit_has_come():
    """The loop busy for 20 ms after the first slice (what many modems' work does to it): the next
    hand-over carries every byte whose last bit has arrived by then (20 ms are 230 bytes at
    115200), none of them early, and the line's clock stays exact, so the transfer does not fall
    behind its line time by the 20 ms."""
    b = 10 / 115200

    async def scenario(loop):
        line, _, outgoing = a_line(loop, LineFormat(115200), 0, 1200)

        def busy_loop(data: bytes) -> None:
            if len(outgoing.slices) == 1:
                until = time.monotonic() + 0.020  # the loop's clock is the monotonic clock
                while time.monotonic() < until:
                    pass

        outgoing.then.append(busy_loop)
        since = loop.time()
        line.outgoing.push(bytes(range(200)) * 6)
        start = line.outgoing.free_at
        await outgoing.complete
        assert outgoing.data == bytes(range(200)) * 6
        assert_on_schedule(outgoing, start, [b] * 1200, since)
        first_came = outgoing.slices[0][0]
        crossed = len(outgoing.slices[0][2]) + len(outgoing.slices[1][2])
        # Every byte whose last bit had come when the loop was free again, but one cut short.
        assert crossed >= (first_came + 0.020 - start) / b - 1
        line.close()

    run_loop(scenario)


def test_a_fleet_s_modems_each_download_at_their_own_rate_at_once(tmp_path):
    """``ecemu run --count 2 --line uart``: both modems on one loop, one switched to 9600 by
    AT+IPR, both sending a file at once; each answer whole, in order, in no less than its line
    time at its own rate (the command in, then every byte of the answer out)."""
    files = {0: bytes(range(32, 127)) * 6, 1: bytes(range(126, 31, -1)) * 24}  # 570 and 2280 bytes
    rates = {0: 9600, 1: 115200}
    for index, data in files.items():
        (tmp_path / "ufs" / str(index)).mkdir(parents=True)
        (tmp_path / "ufs" / str(index) / "f.txt").write_bytes(data)
    running = RunningEmulator("--count", "2", "--line", "uart", "--baud", "115200", "--ufs", str(tmp_path / "ufs"))
    try:
        ports = [line.removeprefix("port: ") for line in running.stdout_lines if line.startswith("port: ")]
        while len(ports) < 2:
            line = running.readline(time.monotonic() + WAIT)
            running.stdout_lines.append(line)
            if line.startswith("port: "):
                ports.append(line.removeprefix("port: "))
        opened = [serial.Serial(port, 115200, timeout=WAIT) for port in ports]
        try:
            for port in opened:
                assert port.read_until(b"+QIND: PB DONE\r\n").endswith(b"+QIND: PB DONE\r\n")
                port.write(b"ATE0\r")
                assert port.read_until(b"OK\r\n").endswith(b"OK\r\n")
            opened[0].write(b"AT+IPR=9600\r")
            assert opened[0].read_until(b"OK\r\n") == b"\r\nOK\r\n"
            opened[0].baudrate = 9600
            results: dict[int, tuple[bytes, float]] = {}
            both = threading.Barrier(2)

            def download(index: int) -> None:
                both.wait(WAIT)
                asked = time.monotonic()
                opened[index].write(b'AT+QFDWL="f.txt"\r')
                answer = opened[index].read_until(b"OK\r\n")
                results[index] = (answer, time.monotonic() - asked)

            threads = [threading.Thread(target=download, args=(index,)) for index in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT * 2)
        finally:
            for port in opened:
                port.close()
    finally:
        assert running.stop() == 0
    assert sorted(results) == [0, 1]
    for index, (answer, took) in sorted(results.items()):
        assert files[index] in answer and answer.endswith(b"OK\r\n")
        assert took >= (17 + len(answer)) * byte_time(rates[index]) - EPSILON, (index, took)
