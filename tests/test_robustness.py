"""Robustness: fuzzing the interpreter with every data mode reachable, soaks that check resources
come back, and the integrity of data streams under faults.

Each test takes a few seconds by default; ``--robustness-scale=N`` multiplies its examples and
cycles by N (50 is the long run). The core tests drive the sans-IO modem with real TLS in memory
(``tests.core_network``); the end-to-end ones go through the real pty to TLS servers on 127.0.0.1.

The data contract checked under faults (SSL note 1.4, 2.3.2; REFERENCE.md "PDP context"): every byte
either arrives once, in order, or the module reports the loss itself (``+QSSLURC: "closed"``,
``NO CARRIER``, ``+QIURC: "pdpdeact"``). So what the host received is a prefix of what the server
sent, and what the server received a prefix of what the host sent; where nothing was lost, all of it.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import os
import queue
import random
import re
import socket
import sys
import termios
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecemu.api import Emulator
from ecemu.core import events as ev
from ecemu.core.escape import EscapeDetector
from ecemu.core.modem import HostMode
from tests.core_network import SimulatedNetwork, server_context
from tests.harness import CoreHarness, complete_lines, no_internal_errors
from tests.host import AtHost, wait_until
from tests.tls_servers import TlsServer, echo
from tests.wire import CONNECT, NO_CARRIER, OK, PROMPT

pytestmark = pytest.mark.robustness

GUARD = 1.0  # the +++ guard time of the core tests (seconds of the harness's own clock)
CLIENTS = 12  # SSL note 2.2.2: <clientID> 0-11
SERVER_CONTEXT = server_context()  # one OpenSSL server context for every example: they are slow to make


def core_rig(echo_server: bool = True) -> tuple[CoreHarness, SimulatedNetwork]:
    h = CoreHarness(escape_guard=GUARD)
    assert h.command("AT+QIACT=1") == OK
    return h, SimulatedNetwork(h, context=SERVER_CONTEXT, echo=echo_server)


def server_of(h: CoreHarness, net: SimulatedNetwork, client: int):
    """The server end of a client's live connection, or None."""
    conn_id = h.modem.families["ssl"].client(client).connection.conn_id
    side = net.servers.get(conn_id) if conn_id is not None else None
    return side if side is not None and side.handshake_done and not side.closed else None


def drain_stalls(h: CoreHarness, net: SimulatedNetwork) -> bytes:
    """The network takes every byte it was holding back (TcpDrained for each stalled connection)."""
    out = b""
    for conn_id in sorted(net.unacked):
        out += h.event(ev.TcpDrained(conn_id))
    net.unacked.clear()
    return out + net.run()


def escape_online(h: CoreHarness, net: SimulatedNetwork) -> bytes:
    """+++ framed by a guard time of silence on each side (SSL note 1.4), flow control released first."""
    out = drain_stalls(h, net)
    out += h.advance(GUARD + 0.1)
    out += h.send(b"+++")
    return out + h.advance(GUARD + 0.1) + net.run()


# --- 1. fuzzing the interpreter with the data modes reachable -----------------------------------------


def _open(client: int, mode: int) -> bytes:
    return f'AT+QSSLOPEN=1,{client % 6},{client},"127.0.0.1",8011,{mode}\r'.encode()


# Whole command lines that reach the SSL and file commands and their data modes, on three clients
# so that opens, sends, switches and closes meet; then fragments and garbage that cut into them.
FUZZ_LINES = [
    *(_open(client, mode) for client in range(3) for mode in range(3)),
    b"AT+QSSLSEND=0,5\r", b"AT+QSSLSEND=1,1\r", b"AT+QSSLSEND=2,40\r", b"AT+QSSLSEND=0\r", b"AT+QSSLSEND=1\r",
    b"AT+QSSLRECV=0\r", b"AT+QSSLRECV=1,3\r", b"AT+QSSLRECV=2,0\r",
    b"AT+QSSLCLOSE=0\r", b"AT+QSSLCLOSE=1,0\r", b"AT+QSSLCLOSE=2,1\r", b"AT+QSSLSTATE\r", b"AT+QSSLSTATE=1\r",
    b"AT+QISWTMD=0,2\r", b"AT+QISWTMD=1,1\r", b"AT+QISWTMD=2,0\r", b"ATO\r",
    b'AT+QSSLCFG="closetimemode",1,1\r', b'AT+QSSLCFG="negotiatetime",2,10\r',
    b'AT+QFUPL="f",3\r', b'AT+QFUPL="g",1500,1,1\r', b'AT+QFDEL="f"\r', b'AT+QFDWL="f"\r', b"AT+QFLST\r",
    b"AT+QIDEACT=1\r", b"AT+QIACT=1\r", b"AT+CFUN=4\r", b"AT+CFUN=1\r",
    b"AT&D0\r", b"AT&D1\r", b"AT&D2\r", b"ATE1\r", b"ATE0\r", b"AT+QIGETERROR\r", b"AT\r",
    b"AT+QSSLSEND=0,5;+QSSLRECV=0\r", b"AT+QSSLCLOSE=0;+QSSLSEND=1,2\r",
    # The TCP/IP family on IDs of its own and on one the SSL clients use (563).
    *(f'AT+QIOPEN=1,{i},"TCP","127.0.0.1",8011,0,{mode}\r'.encode() for i in (0, 3) for mode in range(3)),
    b'AT+QIOPEN=1,4,"UDP","127.0.0.1",9,0,1\r', b'AT+QIOPEN=1,5,"TCP LISTENER","127.0.0.1",0,2020\r',
    b"AT+QISEND=3,4\r", b"AT+QISEND=3\r", b"AT+QISEND=3,0\r", b'AT+QISENDEX=3,"41"\r', b"AT+QIRD=3\r",
    b"AT+QIRD=3,0\r", b"AT+QICLOSE=3\r", b"AT+QICLOSE=3,0\r", b"AT+QISTATE\r", b"AT+QISTATE=1,3\r",
    b"AT+QISWTMD=3,2\r",
]
FUZZ_BITS = [b"+++", b"\x1a", b"\x1b", b"\r", b"\r\n", b"\n", b"AT", b"at", b"A/", b";", b",", b'"', b"=",
             b"?", b"\x08", b"\x7f", b"\x00", b"hello"]
# S and Q stay out of the garbage: ATS3/ATS5 change what ends and edits a line, which the counting
# model below takes as fixed, and ATQ1 would silence the answer to the AT that ends each example.
GARBAGE = bytes(b for b in range(256) if b not in b"SsQq")
FUZZ_PIECE = st.one_of(
    # Whole lines weigh most: a fragment without CR spoils the line after it.
    st.sampled_from(FUZZ_LINES), st.sampled_from(FUZZ_LINES), st.sampled_from(FUZZ_LINES), st.sampled_from(FUZZ_BITS),
    st.binary(min_size=1, max_size=6).map(lambda b: bytes(GARBAGE[x % len(GARBAGE)] for x in b)),
)
# What may happen between two pieces of the host's bytes.
FUZZ_EVENT = st.one_of(
    st.tuples(st.just("advance"), st.sampled_from([0.0, 0.2, 1.1, 6.0])),
    st.tuples(st.just("server_sends"), st.integers(0, 2), st.integers(1, 3000)),
    st.tuples(st.just("server_closes"), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("dtr"), st.booleans()),
    st.tuples(st.just("pdp_drop")),
    st.tuples(st.just("stall"), st.integers(0, 2)),
    st.tuples(st.just("drain")),
)
# The pieces, each flagged when the host's write ends after it (the network then moves), and
# extra cuts at arbitrary points, inside pieces too, with an event at each.
FUZZ_INPUT = st.lists(st.tuples(FUZZ_PIECE, st.booleans()), min_size=6, max_size=30).flatmap(
    lambda pieces: st.tuples(
        st.just(pieces),
        st.lists(st.tuples(st.integers(0, sum(len(p) for p, _ in pieces)), FUZZ_EVENT), max_size=10)))


def record_command_bytes(modem) -> bytearray:
    """Every byte the line editor consumes, in order: the bytes that were command lines. Bytes taken
    as data (after ``>``, CONNECT, in transparent mode) never pass through it."""
    seen = bytearray()
    modem.host.on_command_bytes = seen.extend
    return seen


def fuzz_event(h: CoreHarness, net: SimulatedNetwork, event: tuple) -> bytes:
    kind = event[0]
    if kind == "advance":
        return h.advance(event[1]) + net.run()
    if kind == "dtr":
        h.modem.set_dtr(event[1], h.now)
        return h.take_output() + net.run()
    if kind == "pdp_drop":
        pdp = h.modem.families["pdp"]
        if pdp.is_active(1):
            pdp.network_drop(1)
        return h.take_output() + net.run()
    if kind == "drain":
        return drain_stalls(h, net)
    side = server_of(h, net, event[1])
    if side is None:
        return b""
    if kind == "server_sends":
        return net.server_sends(side, bytes(i % 251 for i in range(event[2])))
    if kind == "server_closes":
        return net.server_closes(side, notify=not event[2], reset=event[2])
    if kind == "stall":
        net.unacked.add(side.conn_id)
    return b""


def leave_every_data_mode(h: CoreHarness, net: SimulatedNetwork) -> bytes:
    """What a host does to get its command line back, whatever state the bytes left: release flow
    control, +++ out of transparent mode, ESC or filler for a ``>`` or CONNECT, time for a command
    that waits; then end any half-typed line."""
    out = drain_stalls(h, net)
    for _ in range(12):
        mode = h.modem.host.mode
        if mode is HostMode.COMMAND:
            break
        if mode is HostMode.ONLINE:
            out += escape_online(h, net)
        elif mode is HostMode.DATA:
            # ESC cancels a variable-length send; a fixed length or an upload takes filler until
            # full, and whatever filler is left over is an ordinary (erroneous) command line.
            out += h.send(b"\x1b") + net.run() + h.send(b"z" * 1500) + net.run()
        else:  # BUSY or BOOTING: a handshake, a close waiting for the server's FIN, the boot
            out += net.run() + h.advance(301.0) + net.run()
    assert h.modem.host.mode is HostMode.COMMAND, f"stuck in {h.modem.host.mode}"
    return out + h.send(b"\r") + net.run()


def run_fuzz_example(pieces: list[tuple[bytes, bool]], events: list[tuple]) -> None:
    h, net = core_rig()
    # Client 0 in buffer access mode and client 1 in direct push mode are up before the bytes come,
    # so that sends, reads and switches find a connection; client 2 is free for the bytes' opens.
    for client in (0, 1):
        assert h.command(_open(client, client)[:-1]) + net.run() == OK + f"\r\n+QSSLOPEN: {client},0\r\n".encode()
    results: list[str] = []
    h.modem.observer = lambda kind, details: results.append(details["text"]) if kind == "result" else None
    command_bytes = record_command_bytes(h.modem)
    data = b"".join(piece for piece, _ in pieces)
    writes, end = [], 0
    for piece, write_ends in pieces:
        end += len(piece)
        if write_ends:
            writes.append((end, ("advance", 0.0)))
    with no_internal_errors():
        cuts = sorted(events + writes, key=lambda cut: cut[0])
        start = 0
        for position, event in cuts:
            h.send(data[start:position])
            net.run()
            fuzz_event(h, net, event)
            start = position
        h.send(data[start:])
        net.run()
        leave_every_data_mode(h, net)
        h.modem.set_dtr(True, h.now)

        # Exactly one final result per complete command line (data after > or CONNECT is none).
        assert len(results) == complete_lines(bytes(command_bytes), h.modem.profile.limits.line_length + 2)
        # And the modem still answers.
        h.command("ATE0V1")
        assert h.command("AT") == OK

        # Closing every client leaves no connection handler and, once their times are past, no timer.
        for client in range(CLIENTS):
            assert h.command(f"AT+QSSLCLOSE={client},0") + net.run() == OK
            assert h.command(f"AT+QICLOSE={client},0") + net.run() == OK
        assert h.modem.handled_conn_ids == ()
        h.advance(301.0)
        assert h.modem.next_deadline() is None


def test_fuzzed_host_bytes_with_the_ssl_and_file_data_modes_reachable(robustness_scale):
    """Random mixes of real SSL and file command lines, +++, Ctrl+Z, ESC and garbage, cut at random
    points with network events (server data, closes and resets, a PDP drop, stalls), DTR and time
    between the pieces: no internal error, one final result per complete command line, and the
    modem answers AT afterwards."""

    @settings(max_examples=150 * robustness_scale, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(FUZZ_INPUT)
    def fuzz(example):
        run_fuzz_example(*example)

    fuzz()


def test_transparent_data_held_back_by_flow_control_is_never_a_command_line():
    """Bytes the host sent in transparent mode that wait behind a full send buffer are data for the
    connection: when the server resets it they are lost with it (NO CARRIER says so), never read
    as command lines."""
    h, net = core_rig(echo_server=False)
    results: list[str] = []
    h.modem.observer = lambda kind, details: results.append(details["text"]) if kind == "result" else None
    assert h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8011,2') + net.run() == CONNECT
    side = net.server()
    net.unacked.add(side.conn_id)  # the network holds everything: the send buffer fills
    assert h.send(b"x" * 20000) + net.run() == b""
    assert h.send(b"\rAT+CFUN=0\rAT+CSQ\r") == b""  # waits behind the full buffer, as data
    assert net.server_closes(side, notify=False, reset=True) == NO_CARRIER
    assert results == ["CONNECT"]
    assert h.command("AT+CFUN?") == b"\r\n+CFUN: 1\r\n" + OK


# --- 3. integrity of the data under faults, through the core -------------------------------------------

PUSH_HEADER = re.compile(rb'\+QSSLURC: "recv",(\d+),(\d+)')
RECV_HEADER = re.compile(rb"\+QSSLRECV: (\d+)")
BUFFER, DIRECT_PUSH, TRANSPARENT = 0, 1, 2
# Faults the network or the server cause: what they cut off is lost, and the module must say so.
NETWORK_FAULTS = ["server_reset", "server_close", "pdp_drop", "bad_record"]
# The host's own doing: a DTR drop in transparent mode (AT&D1 leaves, AT&D2 hangs up), AT+QIDEACT.
HOST_FAULTS = ["dtr_leave", "dtr_hang_up", "qideact"]


class Transcript:
    """The host's side of the port: the data of one client, taken out of direct push URCs,
    AT+QSSLRECV answers and transparent mode, and every other line (results, URCs) in order."""

    def __init__(self, client: int):
        self.client = client
        self.data = bytearray()
        self.lines: list[bytes] = []

    def framed(self, out: bytes) -> None:
        """Output in command mode (ATV1, echo off): lines framed by CR LF, data by its length."""
        i = 0
        after_push = False  # a push's data and its CR LF: the next push may follow at once
        while i < len(out):
            if after_push and out.startswith(b"+QSSLURC: ", i):
                i -= 2  # one block of pushes: the CR LF after the data leads the next URC
            assert out.startswith(b"\r\n", i), f"unframed output {out[i:i + 60]!r} in {out[:200]!r}"
            end = out.index(b"\r\n", i + 2)
            line, i = out[i + 2:end], end + 2
            after_push = False
            self.lines.append(line)
            push, recv = PUSH_HEADER.fullmatch(line), RECV_HEADER.fullmatch(line)
            if push is not None:
                assert int(push[1]) == self.client
                count = int(push[2])
            elif recv is not None and int(recv[1]):
                count = int(recv[1])
            else:
                continue
            self.data += out[i:i + count]
            assert out[i + count:i + count + 2] == b"\r\n", "data not followed by CR LF"
            i += count + 2
            after_push = push is not None

    def online(self, out: bytes) -> bool:
        """Output in transparent mode: data, up to NO CARRIER when the connection is lost (then
        framed output follows). True while the port stays online."""
        lost = out.find(NO_CARRIER)
        if lost < 0:
            self.data += out
            return True
        self.data += out[:lost]
        self.framed(out[lost:])
        return False

    def left_online(self, out: bytes, result: bytes) -> None:
        """Output as transparent mode ends with ``result`` (OK after +++ or a DTR drop with
        AT&D1): data up to it, framed output from it on."""
        end = out.find(result)
        assert end >= 0, f"no {result!r} in {out[:200]!r}"
        self.data += out[:end]
        self.framed(out[end:])

    def saw(self, line: bytes) -> bool:
        return line in self.lines


class StreamRig:
    """One client carrying a known stream each way through the core, the host tracking the port's
    mode from what it reads, as a host driver does."""

    def __init__(self, client: int, mode: int, seed: int, dtr_mode: int = 1):
        self.h, self.net = core_rig(echo_server=False)
        rng = random.Random(seed)
        # Longer than twelve operations can use, so that no write is ever cut short by the stream's end.
        self.host_stream = rng.randbytes(250000)
        self.server_stream = rng.randbytes(250000)
        self.client = client
        self.host_sent = 0  # bytes of host_stream the module took: SEND OK, or given in transparent mode
        self.server_sent = 0  # bytes of server_stream the server wrote (the network delivers them at once)
        self.host_lines = 0  # command lines the host sent
        self.seen = Transcript(client)
        self.commands: list[bytes] = []  # the lines the modem executed
        self.results: list[str] = []  # the final results of command lines it gave
        self.h.modem.observer = self._observe
        self.online = False
        self.command(f"AT&D{dtr_mode}")  # what a DTR drop does in transparent mode: leave, or hang up
        answer = self.command(f'AT+QSSLOPEN=1,1,{client},"127.0.0.1",8011,{mode}') + self.net.run()
        if mode == TRANSPARENT:
            assert answer == CONNECT
            self.online = True
        else:
            assert answer == OK + f"\r\n+QSSLOPEN: {client},0\r\n".encode()
        self.side = self.net.server()

    def _observe(self, kind: str, details: dict) -> None:
        if kind == "command":
            self.commands.append(details["line"])
        elif kind == "result":
            self.results.append(details["text"])

    def command(self, line: str) -> bytes:
        self.host_lines += 1
        return self.h.command(line)

    def show(self, out: bytes) -> None:
        if self.online:
            self.online = self.seen.online(out)
        else:
            self.seen.framed(out)

    def connected(self) -> bool:
        return not self.side.closed and not self.side.failed

    # --- what the host, the server and the network do ----------------------------------------------

    def host_sends(self, size: int) -> None:
        chunk = self.host_stream[self.host_sent:self.host_sent + size]
        if self.online:
            # One write at one instant: never +++ framed by silence (at least 4 bytes).
            self.show(self.h.send(chunk) + self.net.run())
            self.host_sent += len(chunk)
            return
        for start in range(0, len(chunk), 1460):
            piece = chunk[start:start + 1460]
            self.host_lines += 1
            answer = self.h.send(f"AT+QSSLSEND={self.client},{len(piece)}\r".encode())
            if answer != PROMPT:
                self.show(answer)
                return
            out = self.h.send(piece) + self.net.run()
            self.show(out)
            if not out.startswith(b"\r\nSEND OK\r\n"):
                return  # SEND FAIL (the send buffer is full) or ERROR: this piece is sent again later
            self.host_sent += len(piece)

    def server_sends(self, size: int) -> None:
        if not self.connected() or not self.side.reading:
            return  # a server whose peer stopped reading blocks on TCP's window: it sends nothing
        chunk = self.server_stream[self.server_sent:self.server_sent + size]
        self.server_sent += len(chunk)
        self.show(self.net.server_sends(self.side, chunk))

    def read(self, size: int) -> None:
        if not self.online:
            self.show(self.command(f"AT+QSSLRECV={self.client},{size}") + self.net.run())

    def switch(self, mode: int) -> None:
        if self.online:
            if mode != TRANSPARENT:
                self.seen.left_online(escape_online(self.h, self.net), OK)
                self.online = False
            return
        out = self.command(f"AT+QISWTMD={self.client},{mode}") + self.net.run()
        if out.startswith(CONNECT):
            self.online = True
            out = out[len(CONNECT):]
        self.show(out)

    def stall(self) -> None:
        if self.connected():
            self.net.unacked.add(self.side.conn_id)

    def drain(self) -> None:
        self.show(drain_stalls(self.h, self.net))

    def advance(self, seconds: float) -> None:
        self.show(self.h.advance(seconds) + self.net.run())

    def fault(self, kind: str) -> None:
        h, net, side = self.h, self.net, self.side
        if kind == "server_reset" and self.connected():
            self.show(net.server_closes(side, notify=False, reset=True))
        elif kind == "server_close" and self.connected():
            self.show(net.server_closes(side, notify=True))
        elif kind == "pdp_drop":
            h.modem.families["pdp"].network_drop(1)
            self.show(h.take_output() + net.run())
        elif kind == "bad_record" and self.connected() and side.reading:
            # The server's last data, then a record that fails to decrypt, in one TCP segment.
            tail = self.server_stream[self.server_sent:self.server_sent + 700]
            self.server_sent += len(tail)
            side.tls.sendall(tail)
            ciphertext = side.drain() + bytes((0x17, 0x03, 0x03, 0x00, 0x30)) + bytes(0x30)
            self.show(h.event(ev.TcpData(side.conn_id, ciphertext)) + net.run())
        elif kind in ("dtr_leave", "dtr_hang_up"):
            h.modem.set_dtr(False, h.now)
            out = h.take_output() + net.run()
            if self.online and kind == "dtr_leave":
                self.seen.left_online(out, OK)
                self.online = False
            else:
                self.show(out)  # AT&D2: NO CARRIER ends the data
            h.modem.set_dtr(True, h.now)
            self.show(h.take_output())
        elif kind == "qideact":
            if self.online:
                self.switch(BUFFER)
            self.show(self.command("AT+QIDEACT=1") + net.run())

    def finish(self) -> None:
        """Everything still readable is read; then the client is closed."""
        if self.online and self.connected():
            self.switch(BUFFER)
        self.drain()
        for _ in range(200):
            if self.online:
                break
            before = len(self.seen.data)
            self.read(1500)
            if len(self.seen.data) == before:
                break
        out = self.command(f"AT+QSSLCLOSE={self.client}") + self.net.run()
        assert out.startswith(OK), f"AT+QSSLCLOSE answered {out!r}"
        self.show(out)


# Sizes around the limits matter most: one <sendlen> (1460) and the send buffer (16384), past
# which transparent data waits for the network.
HOST_WRITE = st.tuples(st.just("host_sends"), st.one_of(st.integers(4, 3000), st.sampled_from([1460, 16384, 20000])))
INTEGRITY_OP = st.one_of(
    HOST_WRITE, HOST_WRITE,
    st.tuples(st.just("server_sends"), st.integers(1, 20000)),
    st.tuples(st.just("read"), st.integers(1, 1500)),
    st.tuples(st.just("switch"), st.sampled_from([BUFFER, DIRECT_PUSH, TRANSPARENT])),
    st.tuples(st.just("stall")),
    st.tuples(st.just("drain")),
    st.tuples(st.just("advance"), st.sampled_from([0.1, 1.5])),
)


def run_integrity_example(client: int, mode: int, fault: str, fault_at: int, ops: list[tuple], seed: int) -> None:
    with no_internal_errors():
        rig = StreamRig(client, mode, seed, dtr_mode=2 if fault == "dtr_hang_up" else 1)
        for index, op in enumerate(ops):
            if index == fault_at:
                rig.fault(fault)
            getattr(rig, op[0])(*op[1:])
        if fault_at >= len(ops):
            rig.fault(fault)
        rig.finish()

    got, server_got = bytes(rig.seen.data), bytes(rig.side.received)
    sent, host_sent = rig.server_stream[:rig.server_sent], rig.host_stream[:rig.host_sent]
    # Never out of order, never twice: prefixes of the streams.
    assert got == sent[:len(got)], "the host received something the server did not send, in that order"
    assert server_got == host_sent[:len(server_got)], "the server received something the host did not send"
    # Data the host sent in transparent mode is never taken for command lines, lost or not.
    assert len(rig.commands) == len(rig.results) == rig.host_lines, rig.results
    closed = f'+QSSLURC: "closed",{client}'.encode()
    reported = rig.seen.saw(closed) or rig.seen.saw(b"NO CARRIER")
    # The simulated network delivers at once, so everything the server wrote reached the module,
    # which keeps what it received readable after any fault but the host's own AT+QIDEACT.
    if fault != "qideact":
        assert len(got) == len(sent), f"{len(sent) - len(got)} bytes from the server never reached the host"
    elif len(got) < len(sent):
        assert reported, "data dropped without a closed URC"
    # What the module accepted from the host reached the server, unless the connection was lost
    # under transparent data still waiting for the network; NO CARRIER then reports it.
    if len(server_got) < len(host_sent):
        assert fault in NETWORK_FAULTS + ["qideact"] and reported, (
            f"{len(host_sent) - len(server_got)} bytes from the host never reached the server, unreported")
    if fault in NETWORK_FAULTS and rig.side.closed:
        assert reported, "the connection went and no URC or NO CARRIER said so"
    if fault == "pdp_drop":
        assert rig.seen.saw(b'+QIURC: "pdpdeact",1')
    if fault == "qideact":
        assert reported, "AT+QIDEACT closed the socket without its closed URC"


@pytest.mark.parametrize("mode", [BUFFER, DIRECT_PUSH, TRANSPARENT], ids=["buffer", "direct-push", "transparent"])
def test_core_streams_under_faults_arrive_in_order_or_are_reported_lost(mode, robustness_scale):
    """Known streams both ways in one access mode, with switches between modes, flow control and
    one fault at a random point: the server resets or closes, the PDP context drops, a record fails
    to decrypt, DTR drops, or the host deactivates the context."""

    @settings(max_examples=60 * robustness_scale, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(client=st.integers(0, CLIENTS - 1), fault=st.sampled_from(NETWORK_FAULTS + HOST_FAULTS + ["none"]),
           fault_at=st.integers(0, 12), ops=st.lists(INTEGRITY_OP, min_size=3, max_size=12),
           seed=st.integers(0, 2 ** 32 - 1))
    def streams(client, fault, fault_at, ops, seed):
        run_integrity_example(client, mode, fault, fault_at, ops, seed)

    streams()


def test_qideact_with_direct_push_data_waiting_still_reports_the_close():
    """AT+QIDEACT closes every socket on the context, each with its closed URC (REFERENCE.md),
    also one whose direct push data was still waiting for the port to be idle."""
    h, net = core_rig(echo_server=False)
    assert h.command('AT+QSSLOPEN=1,1,3,"127.0.0.1",8011,1') + net.run() == OK + b'\r\n+QSSLOPEN: 3,0\r\n'
    assert h.command('AT+QSSLOPEN=1,1,5,"127.0.0.1",8011,0') + net.run() == OK + b'\r\n+QSSLOPEN: 5,0\r\n'
    pushing, closing = server_of(h, net, 3), server_of(h, net, 5)
    execute = net.execute

    def no_fin_yet(effect):  # client 5's server answers its close later: the line waits meanwhile
        return b"" if isinstance(effect, ev.ShutdownTcp) and effect.conn_id == closing.conn_id else execute(effect)

    net.execute = no_fin_yet
    assert h.command("AT+QSSLCLOSE=5;+QIDEACT=1") + net.run() == b""
    assert net.server_sends(pushing, b"hello") == b""  # the port is busy: the push waits
    out = net.server_closes(closing, notify=False)
    assert out == OK + b'\r\n+QSSLURC: "closed",3\r\n'
    assert h.command("AT+QSSLSTATE") == OK


def test_a_dtr_drop_with_at_d1_keeps_a_held_plus_as_data():
    """A "+" after a guard time of silence is held as a possible escape; when DTR drops (AT&D1)
    before the guard time is over, it is still the host's data and reaches the server."""
    h, net = core_rig(echo_server=False)
    assert h.command("AT&D1") == OK
    assert h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8011,2') + net.run() == CONNECT
    side = net.server()
    assert h.send(b"data") + net.run() == b""
    h.advance(GUARD + 0.1)
    assert h.send(b"+") + net.run() == b""
    h.modem.set_dtr(False, h.now)
    assert h.take_output() + net.run() == OK
    assert side.received == b"data+"


def test_a_dtr_drop_with_at_d2_sends_what_the_host_wrote_before_closing():
    """AT&D2: the DTR drop closes the connection, after the data the host sent before it, including
    what was still waiting for room in the send buffer (README: what a host wrote before leaving
    the port is still carried out)."""
    h, net = core_rig(echo_server=False)
    assert h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8011,2') + net.run() == CONNECT
    side = net.server()
    net.unacked.add(side.conn_id)
    payload = random.Random(7).randbytes(30000).replace(b"+", b"-")
    assert h.send(payload[:20000]) + h.send(payload[20000:]) + net.run() == b""
    h.modem.set_dtr(False, h.now)
    assert h.take_output() + net.run() == NO_CARRIER
    assert side.received == payload and side.got_close_notify


# --- 2. soaks: many cycles, then every resource back where it started -----------------------------------


@contextmanager
def traced_memory():
    """Python memory allocated while the emulator's code runs (tracemalloc), sampled by the caller:
    an allocation counts when any frame of its stack is the emulator's, so objects made through
    generated code (a dataclass's __init__) count too, and the tests' own objects do not."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(5)
    emulator_code = str(Path(__import__("ecemu").__file__).parent) + "/*"

    def sample() -> int:
        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, emulator_code, all_frames=True)])
        return sum(trace.size for trace in snapshot.traces)

    try:
        yield sample
    finally:
        if started:
            tracemalloc.stop()


class CoreSoak:
    """Open, send, receive and close on random clients, each answer checked byte for byte. One
    client at a time sits in a handshake its server never answers (a silent server, as the
    ``fail-opens`` fault makes one), so a live timer is always pending behind the others."""

    def __init__(self, seed: int):
        self.h, self.net = core_rig()
        self.rng = random.Random(seed)
        self.open: dict[int, int] = {}  # client -> access mode
        self.cycles = 0  # connections opened and closed again
        self.silent: int | None = None
        self.open_silently(CLIENTS - 1)

    def open_silently(self, client: int) -> None:
        """TCP connects, and the server says nothing: the client waits up to negotiatetime."""
        h, net = self.h, self.net
        net.hold_opens = True
        assert h.command(f'AT+QSSLOPEN=1,{client % 6},{client},"127.0.0.1",8011,0') + net.run() == OK
        net.hold_opens = False
        conn_id = net.opens[-1].conn_id
        assert h.event(ev.TcpConnected(conn_id, "127.0.0.1", 8011, 40000)) + net.run() == b""
        self.silent, self.silent_since = client, h.now

    def renew_silent(self) -> None:
        """The host gives up on the silent server before negotiatetime (300 s) and tries another client."""
        assert self.h.command(f"AT+QSSLCLOSE={self.silent}") + self.net.run() == OK
        self.open_silently(next(c for c in range(self.silent + 1, self.silent + CLIENTS + 1)
                                if c % CLIENTS not in self.open) % CLIENTS)  # itself when all others are open

    def step(self) -> None:
        h, rng = self.h, self.rng
        client = rng.randrange(CLIENTS)
        if h.now - self.silent_since > 250:
            self.renew_silent()
        elif client == self.silent:
            pass
        elif client not in self.open:
            self.open_client(client, rng.choice([BUFFER, BUFFER, DIRECT_PUSH, DIRECT_PUSH, TRANSPARENT]))
        elif rng.random() < 0.6:
            self.exchange(client, rng.randbytes(rng.randint(1, 1460)))
        else:
            self.close(client, rng.choice(["orderly", "immediate", "server_close", "server_reset"]))
        h.advance(0.05)

    def open_client(self, client: int, mode: int) -> None:
        h, net = self.h, self.net
        answer = h.command(f'AT+QSSLOPEN=1,{client % 6},{client},"127.0.0.1",8011,{mode}') + net.run()
        if mode != TRANSPARENT:
            assert answer == OK + f"\r\n+QSSLOPEN: {client},0\r\n".encode()
            self.open[client] = mode
            return
        assert answer == CONNECT
        payload = self.rng.randbytes(self.rng.randint(4, 3000)).replace(b"+", b"-")
        # The echo, unframed; the packet shorter than transpktsize after transwaittm (200 ms).
        assert h.send(payload) + net.run() + h.advance(0.2) + net.run() == payload
        assert escape_online(h, net) == OK
        self.open[client] = BUFFER  # the connection carries on in buffer access mode (SSL note 1.4)

    def exchange(self, client: int, payload: bytes) -> None:
        h, net = self.h, self.net
        assert h.send(f"AT+QSSLSEND={client},{len(payload)}\r".encode()) == PROMPT
        out = h.send(payload) + net.run()
        if self.open[client] == DIRECT_PUSH:
            assert out == (b"\r\nSEND OK\r\n" + f'\r\n+QSSLURC: "recv",{client},{len(payload)}\r\n'.encode()
                           + payload + b"\r\n")
            return
        assert out == b"\r\nSEND OK\r\n" + f'\r\n+QSSLURC: "recv",{client}\r\n'.encode()
        assert h.command(f"AT+QSSLRECV={client},1500") == (
            f"\r\n+QSSLRECV: {len(payload)}\r\n".encode() + payload + b"\r\n" + OK)

    def close(self, client: int, how: str) -> None:
        h, net = self.h, self.net
        if how in ("server_close", "server_reset"):
            side = server_of(h, net, client)
            assert net.server_closes(side, notify=how == "server_close", reset=how == "server_reset") == (
                f'\r\n+QSSLURC: "closed",{client}\r\n'.encode())
        assert h.command(f"AT+QSSLCLOSE={client}{',0' if how == 'immediate' else ''}") + net.run() == OK
        self.forget(client)

    def pdp_drop(self) -> None:
        """The network drops the context: every client gets its closed URC and is closed."""
        h, net = self.h, self.net
        h.modem.families["pdp"].network_drop(1)
        out = h.take_output() + net.run()
        urcs = {client: f'\r\n+QSSLURC: "closed",{client}\r\n' for client in self.open}
        urcs[self.silent] = f"\r\n+QSSLOPEN: {self.silent},570\r\n"  # the handshake's end: PDP broken
        assert out == b'\r\n+QIURC: "pdpdeact",1\r\n' + "".join(urcs[c] for c in sorted(urcs)).encode()
        for client in sorted(self.open):
            assert h.command(f"AT+QSSLCLOSE={client}") + net.run() == OK
            self.forget(client)
        assert h.command("AT+QIACT=1") == OK
        self.open_silently((self.silent + 5) % CLIENTS)

    def forget(self, client: int) -> None:
        del self.open[client]
        self.cycles += 1
        # The simulated servers are the test's, not the module's: keep only the live ones.
        for conn_id in [c for c, side in self.net.servers.items() if side.closed]:
            del self.net.servers[conn_id]
        self.net.opens.clear()


@settings(max_examples=300, deadline=None, database=None)
@given(now=st.floats(0.0, 1e7), guard=st.sampled_from([1.0, 0.3, 0.05, 0.2, 1.7]), held=st.sampled_from([b"+", b"++", b"+++"]))
def test_a_poll_at_the_escape_deadline_always_settles(now, guard, held):
    """Found by the soak: at ``now == deadline()`` the detector must settle what it holds, or the
    timer the transparent session arms for it is due again at once, forever (``tick`` never
    returns). ``now - last >= guard`` can be false there in floating point."""
    detector = EscapeDetector(guard, now - 2 * guard)
    assert detector.feed(held, now) == b""
    released, escaped = detector.poll(detector.deadline())
    assert (released, escaped) == ((b"", True) if held == b"+++" else (held, False))
    assert detector.deadline() is None


def test_core_soak_every_client_then_resources_are_back(robustness_scale):
    """Thousands of open/send/receive/close cycles across all twelve clients and three access
    modes, closed every way (orderly, at once, by the server, by a reset, by a PDP drop): no
    connection handler or timer outlives its connection, and memory does not grow with cycles."""
    cycles, traced = 1500 * robustness_scale, 500 * robustness_scale
    soak = CoreSoak(seed=robustness_scale)
    modem = soak.h.modem
    next_drop = 400

    def run_until(count: int) -> None:
        nonlocal next_drop
        while soak.cycles < count:
            soak.step()
            if soak.cycles >= next_drop:
                soak.pdp_drop()
                next_drop += 400
            # Timers of closed connections (a handshake's negotiatetime, a close's timeout) must
            # not pile up until their deadlines: the heap follows the live ones, not the cycles.
            assert len(modem.timers) <= 256, f"{len(modem.timers)} timers after {soak.cycles} cycles"

    with no_internal_errors():
        run_until(cycles - traced)  # every cache and pool at its working size before measuring
        with traced_memory() as memory:
            baseline = memory()
            run_until(cycles)
            for client in sorted(soak.open):
                soak.close(client, "orderly")
            assert soak.h.command(f"AT+QSSLCLOSE={soak.silent}") + soak.net.run() == OK  # gives up waiting
            grown = memory() - baseline
    assert modem.handled_conn_ids == ()
    assert all(client.connection.shown_state == 0 and not client.received for client in modem.families["ssl"].clients)
    soak.h.advance(301.0)
    assert modem.next_deadline() is None and len(modem.timers) == 0
    # A leak of one small object per cycle shows as tens of kilobytes here.
    assert grown < 48 * 1024, f"the emulator's memory grew by {grown} bytes over {traced} cycles"


# --- 3 (continued). integrity under faults, end to end ------------------------------------------------

E2E_GUARD_MS = 200
FINALS = {b"OK", b"ERROR", b"SEND OK", b"SEND FAIL", b"CONNECT", b"NO CARRIER"}


class StreamServer:
    """A server behaviour for ``TlsServer``: it sends a known stream in bursts when told, ends with
    a bare FIN when told, and records everything it receives (in ``seen.received``)."""

    def __init__(self, stream: bytes):
        self.stream = stream
        self.sent = 0
        self.orders: queue.Queue = queue.Queue()

    def send(self, size: int) -> None:
        self.orders.put(size)

    def fin(self) -> None:
        self.orders.put("fin")

    def __call__(self, server: TlsServer, tls, seen) -> None:
        while not server.stopping.is_set():
            try:
                order = self.orders.get_nowait()
            except queue.Empty:
                order = None
            if order == "fin":
                # FIN without close_notify: the TCP connection ends, reading goes on.
                socket.socket.shutdown(tls, socket.SHUT_WR)
            elif order:
                chunk = self.stream[self.sent:self.sent + order]
                tls.settimeout(10)
                tls.sendall(chunk)
                self.sent += len(chunk)
            tls.settimeout(0.02)
            if server.recv_some(tls, seen) == b"":
                return


class PortReader:
    """The host side of the real port for one client: framed lines, and the client's data taken
    out of direct push URCs and AT+QSSLRECV answers by their lengths (never by searching)."""

    def __init__(self, host: AtHost, client: int):
        self.host = host
        self.client = client
        self.data = bytearray()
        self.lines: list[bytes] = []
        # The last token was a direct push: its CR LF may lead the next push of the same block.
        self.after_push = False

    def token(self, timeout: float | None = None) -> bytes:
        head = self.host.read_exactly(2, timeout)
        if self.after_push and head == b"+Q":
            line = head + self.host.expect(b"\r\n", timeout)[:-2]  # the next push of one block
        else:
            assert head == b"\r\n", f"unframed output {head!r}"
            line = self.host.expect(b"\r\n", timeout)[:-2]
        self.lines.append(line)
        push, recv = PUSH_HEADER.fullmatch(line), RECV_HEADER.fullmatch(line)
        count = int(push[2]) if push else int(recv[1]) if recv else 0
        self.after_push = False
        if count:
            self.data += self.host.read_exactly(count, timeout)
            assert self.host.read_exactly(2, timeout) == b"\r\n"
            self.after_push = push is not None
        return line

    def until(self, wanted, timeout: float | None = None) -> bytes:
        while not wanted(line := self.token(timeout)):
            pass
        return line

    def ask(self, line: str) -> bytes:
        self.host.write(line.encode() + b"\r")
        return self.until(lambda l: l in FINALS or l.startswith(b"+CME ERROR"))

    def send(self, data: bytes) -> bool:
        """AT+QSSLSEND with a fixed length; True on SEND OK."""
        self.host.write(f"AT+QSSLSEND={self.client},{len(data)}\r".encode())
        head = self.host.read_exactly(4)
        if head != PROMPT:
            assert head[:2] == b"\r\n"
            line = head[2:] + self.host.expect(b"\r\n")[:-2]
            self.lines.append(line)
            assert line == b"ERROR", line
            return False
        self.host.write(data)
        return self.until(lambda l: l in FINALS) == b"SEND OK"

    def read_buffered(self, wanted: int) -> None:
        """AT+QSSLRECV until ``wanted`` bytes in all; an empty buffer waits for the next "recv" URC."""
        recv_urc = f'+QSSLURC: "recv",{self.client}'.encode()
        while len(self.data) < wanted:
            before = len(self.data)
            assert self.ask(f"AT+QSSLRECV={self.client},1500") == b"OK"
            if len(self.data) == before:
                self.until(lambda l: l == recv_urc)

    def read_rest_buffered(self) -> None:
        """After the connection closed: what it left in the buffer, until AT+QSSLRECV says ERROR."""
        for _ in range(1000):
            before = len(self.data)
            if self.ask(f"AT+QSSLRECV={self.client},1500") == b"ERROR" or len(self.data) == before:
                return

    def saw(self, line: bytes) -> bool:
        return line in self.lines


def host_bytes_taken(runner) -> bool:
    """The module has read every byte the host wrote to the port and consumed it."""
    unread = fcntl.ioctl(runner.host.port.master, termios.FIONREAD, b"\0\0\0\0")
    return (int.from_bytes(unread, sys.byteorder) == 0 and runner.input_held == 0
            and runner.modem.input_backlog == 0)


E2E_FAULTS = ["server_reset", "pdp_drop", "host_reopen", "fin_with_latency", "close_with_latency"]


@pytest.mark.parametrize("fault", E2E_FAULTS)
@pytest.mark.parametrize("mode", [BUFFER, DIRECT_PUSH, TRANSPARENT], ids=["buffer", "direct-push", "transparent"])
def test_end_to_end_streams_under_faults(tmp_path, mode, fault, robustness_scale):
    """Known streams both ways through the real port and real TLS, one fault on the way: the server
    resets, the network drops the PDP context, the host closes the port and opens it again, or the
    network has latency while the server ends with a FIN or the host closes right after its data."""
    rng = random.Random(f"{mode}-{fault}-{robustness_scale}")
    rounds = 5 * robustness_scale
    fault_round = rng.randrange(1, rounds)
    # No "+" from the host: a write that happened to be "+++" after a pause would be an escape.
    host_stream = rng.randbytes(3000 * rounds).replace(b"+", b"-")
    streamer = StreamServer(rng.randbytes(6000 * rounds))
    client = rng.randrange(CLIENTS)
    host_sent = 0
    lost = fault in ("server_reset", "pdp_drop")
    with TlsServer(behaviour=streamer) as server, \
            Emulator(ufs=tmp_path / "ufs", escape_guard_ms=E2E_GUARD_MS) as emulator:
        emulator.wait_for_boot()
        host = AtHost(emulator.port, timeout=20)
        port = PortReader(host, client)
        assert host.ask("ATE0").endswith(OK)  # echoed: from now on everything is framed
        assert port.ask("AT+QIACT=1") == b"OK"
        assert port.ask(f"AT&D{2 if fault == 'close_with_latency' else 1}") == b"OK"
        if "latency" in fault:
            emulator.control.latency(ms=5)
        if mode == TRANSPARENT:
            # Packets at once: bytes still collected for a packet when the peer ends the
            # connection go with it (test_transparent_packing), which is not what this test is about.
            assert port.ask('AT+QICFG="transwaittm",0') == b"OK"
        opened = port.ask(f'AT+QSSLOPEN=1,1,{client},"127.0.0.1",{server.port},{mode}')
        if mode == TRANSPARENT:
            assert opened == b"CONNECT"
        else:
            assert opened == b"OK" and port.until(lambda l: l.startswith(b"+QSSLOPEN:")) == f"+QSSLOPEN: {client},0".encode()

        def host_sends(size: int) -> None:
            nonlocal host_sent
            chunk = host_stream[host_sent:host_sent + size]
            if mode == TRANSPARENT:
                host.write(chunk)
                host_sent += len(chunk)
                return
            for start in range(0, len(chunk), 1460):
                if not port.send(chunk[start:start + 1460]):
                    return
                host_sent += len(chunk[start:start + 1460])

        def read_until(total: int) -> None:
            if mode == BUFFER:
                port.read_buffered(total)
            elif mode == DIRECT_PUSH:
                while len(port.data) < total:
                    port.token()
            else:
                port.data += host.read_exactly(total - len(port.data))

        def read_to_the_loss() -> None:
            """Everything up to the module's report that the connection is gone, and what it left."""
            if mode == TRANSPARENT:
                port.data += host.expect(NO_CARRIER)[:-len(NO_CARRIER)]
                port.lines.append(b"NO CARRIER")
            else:
                port.until(lambda l: l == f'+QSSLURC: "closed",{client}'.encode())
                if mode == BUFFER:
                    port.read_rest_buffered()
            if fault == "pdp_drop" and not port.saw(b'+QIURC: "pdpdeact",1'):
                port.until(lambda l: l == b'+QIURC: "pdpdeact",1')

        ordered = 0  # bytes the server has been told to send
        for round_ in range(rounds):
            burst = rng.randint(1, 6000)
            if round_ == fault_round:
                if "latency" in fault:
                    # Long enough that what is sent now is still held when the end comes.
                    emulator.control.latency(ms=300)
                host_sends(rng.randint(1, 3000))
                streamer.send(burst)
                ordered += burst
                if fault == "server_reset":
                    emulator.control.server_reset(client=client)
                    read_to_the_loss()
                elif fault == "pdp_drop":
                    emulator.control.pdp_drop(context=1)
                    read_to_the_loss()
                elif fault == "fin_with_latency":
                    streamer.fin()
                    read_to_the_loss()
                elif fault == "close_with_latency":
                    read_until(ordered)
                    received_before = emulator.call(lambda runner: runner.bytes_from_host)
                    last = rng.randint(1, 1460)
                    host_sends(last)  # and at once:
                    if mode == TRANSPARENT:
                        # The data is the module's (taken from the port), not still on the wire:
                        # read from the port (the pty may not count it as readable at once) and
                        # consumed.
                        wait_until(lambda: emulator.call(lambda runner: runner.bytes_from_host - received_before >= last
                                                       and host_bytes_taken(runner)), "the module to read the data")
                        emulator.control.dtr(active=False)  # AT&D2: hang up
                        assert host.expect(NO_CARRIER) == NO_CARRIER
                    else:
                        assert port.ask(f"AT+QSSLCLOSE={client},0") == b"OK"
                elif fault == "host_reopen":
                    read_until(ordered)
                    host.close()
                    wait_until(lambda: not emulator.control.status()["host_attached"], "the module to see the close")
                    streamer.send(burst)  # while nobody has the port
                    ordered += burst

                    def ssl(runner, client=client):
                        return runner.modem.families["ssl"].client(client)

                    # The module has it (buffered, a push waiting, or, after AT&D1 took transparent
                    # mode back to buffer access, in the buffer) before the host comes back.
                    wait_until(lambda: emulator.call(lambda r: len(ssl(r).received)) == burst, "the burst to arrive")
                    host = AtHost(emulator.port, timeout=20)
                    port.host = host
                    if mode == TRANSPARENT:
                        assert port.ask("ATO") == b"CONNECT"
                    else:
                        assert port.ask("AT") == b"OK"
                    read_until(ordered)
                    continue
                break
            host_sends(rng.randint(1, 3000))
            streamer.send(burst)
            ordered += burst
            read_until(ordered)
        else:
            if mode == TRANSPARENT:
                port.data += host.idle(E2E_GUARD_MS / 1000 * 1.5)  # the silence before +++
                host.write(b"+++")
                assert host.expect(OK, timeout=5) == OK
        if fault != "close_with_latency" or mode != TRANSPARENT:
            assert port.ask(f"AT+QSSLCLOSE={client}") in (b"OK", b"ERROR")
        seen = server.connection(0)
        assert seen.done.wait(10), "the server never saw the connection end"
        host.close()

    got, server_got = bytes(port.data), bytes(seen.received)
    assert got == streamer.stream[:len(got)], "the host received bytes out of order or twice"
    assert server_got == host_stream[:len(server_got)], "the server received bytes out of order or twice"
    if lost:
        reported = port.saw(f'+QSSLURC: "closed",{client}'.encode()) or port.saw(b"NO CARRIER")
        assert reported, "the connection was lost and the module never said so"
        if fault == "pdp_drop":
            assert port.saw(b'+QIURC: "pdpdeact",1')
    else:
        assert len(got) == streamer.sent, f"{streamer.sent - len(got)} bytes never reached the host"
        assert len(server_got) == host_sent, f"{host_sent - len(server_got)} bytes never reached the server"


# --- 2 (continued). a soak through the real port --------------------------------------------------------


def resources(emulator: Emulator) -> dict:
    """What a running emulator holds that must come back after connections come and go."""

    def inside(runner) -> dict:
        modem, network = runner.modem, runner.network
        return {
            "asyncio tasks": len(asyncio.all_tasks(runner.loop)),
            "connections": len(network.connections),
            "connections opening": network.opening,
            "connections paused": len(network.paused_by_core),
            # An RI pulse's timers (a URC in the last 120 ms) come and go with the line, not with
            # connections.
            "live modem timers": sum(1 for timer in modem.timers
                                     if not timer.cancelled and timer not in modem.lines.ri_timers),
            "connection handlers": len(modem.handled_conn_ids),
        }

    return {"open descriptors": len(os.listdir("/proc/self/fd")), **emulator.call(inside)}


class EndToEndSoak:
    """Cycles through the real port against a TLS echo server, each answer checked."""

    def __init__(self, emulator: Emulator, server: TlsServer, seed: int):
        self.emulator, self.server = emulator, server
        self.rng = random.Random(seed)
        self.cycles = 0
        self.attach()
        assert self.host.ask("AT+QIACT=1") == OK  # the context outlives the host's comings and goings

    def attach(self) -> None:
        self.host = AtHost(self.emulator.port, timeout=20)
        assert self.host.ask("ATE0").endswith(OK)

    def reopen(self) -> None:
        self.host.close()
        wait_until(lambda: not self.emulator.control.status()["host_attached"], "the module to see the close")
        self.attach()

    def cycle(self, client: int) -> None:
        rng, port = self.rng, PortReader(self.host, client)
        mode = rng.choice([BUFFER, DIRECT_PUSH, TRANSPARENT])
        opened = port.ask(f'AT+QSSLOPEN=1,{client % 6},{client},"127.0.0.1",{self.server.port},{mode}')
        if mode == TRANSPARENT:
            assert opened == b"CONNECT"
            payload = rng.randbytes(rng.randint(1, 4000)).replace(b"+", b"-")
            self.host.write(payload)
            assert self.host.read_exactly(len(payload)) == payload
            if rng.random() < 0.75:
                # DTR drops with AT&D2: the connection is hung up. (+++ below costs guard times.)
                wait_until(lambda: self.emulator.call(host_bytes_taken), "the module to read the data")
                self.emulator.control.dtr(active=False)
                assert self.host.expect(NO_CARRIER) == NO_CARRIER
                self.emulator.control.dtr(active=True)
                self.cycles += 1
                return
            self.host.idle(SOAK_GUARD_MS / 1000 * 1.5)
            self.host.write(b"+++")
            assert self.host.expect(OK) == OK
            mode = BUFFER
        else:
            assert opened == b"OK"
            assert port.until(lambda l: l.startswith(b"+QSSLOPEN:")) == f"+QSSLOPEN: {client},0".encode()
        for _ in range(rng.randint(1, 3)):
            payload = rng.randbytes(rng.randint(1, 1460))
            port.data.clear()
            assert port.send(payload)
            if mode == BUFFER:
                port.read_buffered(len(payload))
            else:
                while len(port.data) < len(payload):
                    port.token()
            assert port.data == payload
        how = rng.choice(["orderly", "immediate", "server_reset"])
        if how == "server_reset":
            self.emulator.control.server_reset(client=client)
            port.until(lambda l: l == f'+QSSLURC: "closed",{client}'.encode())
        assert port.ask(f"AT+QSSLCLOSE={client}{',0' if how == 'immediate' else ''}") == b"OK"
        self.cycles += 1

    def run(self, cycles: int) -> None:
        for index in range(cycles):
            self.cycle(index % CLIENTS)
            if index % 40 == 39:
                self.reopen()

    def settle(self) -> None:
        """Every server thread done with its connection: their sockets are closed."""
        for seen in self.server.seen:
            assert seen.done.wait(10), "a server connection never ended"


SOAK_GUARD_MS = 30


def test_end_to_end_soak_then_resources_are_back(tmp_path, robustness_scale):
    """Open/send/receive/close cycles across all twelve clients through the real pty to a real TLS
    server on 127.0.0.1, in the three access modes, closed every way, the port closed and opened
    again now and then: descriptors, tasks, connections, timers and handlers come back to where
    they were, and the emulator's memory does not grow with cycles."""
    cycles = 96 * robustness_scale
    with TlsServer(behaviour=echo) as server, \
            Emulator(ufs=tmp_path / "ufs", escape_guard_ms=SOAK_GUARD_MS) as emulator, no_internal_errors():
        emulator.wait_for_boot()
        soak = EndToEndSoak(emulator, server, seed=robustness_scale)
        soak.run(2 * CLIENTS)  # warm-up: every client, every cache at its working size
        soak.reopen()
        soak.settle()
        before = resources(emulator)
        with traced_memory() as memory:
            baseline = memory()
            soak.run(cycles)
            soak.reopen()
            soak.settle()
            grown = memory() - baseline
        # Descriptors close as their sockets' last references go: give them a moment, bounded.
        wait_until(lambda: resources(emulator) == before, "resources to come back")
        soak.host.close()
    assert soak.cycles == 2 * CLIENTS + cycles
    assert grown < 64 * 1024, f"the emulator's memory grew by {grown} bytes over {cycles} cycles"
