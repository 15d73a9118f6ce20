"""Benchmarks of the emulator against the floor of the machine, measured in the same run.

Prints one table: the median of each measurement, its baseline, the ratio and the target. The
emulator runs as ``ecemu run`` in its own process, and so does every server it is compared with
(``benchmarks/servers.py``); this process is the host program.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import random
import re
import select
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import end_process, read_announcements, wait_for_boot  # noqa: E402

SERVERS = Path(__file__).resolve().parent / "servers.py"
TIMEOUT = 30.0  # longest wait for any answer; every loop here ends by itself
CHUNK = 65536
CLIENTS = 12
SEND_SIZE, RECV_SIZE = 1460, 1500  # the module's largest AT+QSSLSEND and AT+QSSLRECV
BUFFER_WINDOW = 8 * SEND_SIZE  # bytes a buffer-mode host lets a client have in flight
MB = 1e6
PR_SET_PDEATHSIG = 1  # prctl(2)
PROFILE_TO: list[str] = []  # --profile FILE: the emulator runs under cProfile, which writes FILE when it stops


# --- processes ----------------------------------------------------------------------------------


class Server:
    """``benchmarks/servers.py KIND ARGS`` in its own process; ``address`` is what it announced."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen([sys.executable, str(SERVERS), *args], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)
        ready, _, _ = select.select([self.process.stdout], [], [], TIMEOUT)
        line = self.process.stdout.readline().decode() if ready else ""
        if not line.startswith("ready: "):
            self.close()
            raise RuntimeError(f"server {args} did not start")
        self.address = line.split(": ", 1)[1].strip()

    def close(self) -> None:
        self.process.stdin.close()  # the server exits when its standard input closes
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process.stdout.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the benchmark ends, however it ends."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Emulator:
    """``ecemu run ARGS``, started as a user starts it; ``ready`` is how long it took to announce
    its port and control socket(s). With ``boot`` the boot URCs are read, so the modem is idle.
    ``under``: a command that runs it (valgrind, for ``line_cost.py``)."""

    def __init__(self, *args: str, boot: bool = True, under: tuple[str, ...] = ()):
        self.log = tempfile.NamedTemporaryFile(prefix="ecemu-bench-", suffix=".log")
        count = int(args[args.index("--count") + 1]) if "--count" in args else 1
        start = time.perf_counter()
        profiled = ("-m", "cProfile", "-o", PROFILE_TO[0]) if PROFILE_TO else ()
        self.process = subprocess.Popen([*under, sys.executable, *profiled, "-m", "ecemu", "run", "--log-level", "info",
                                         *args],
                                        stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL,
                                        cwd=ROOT, preexec_fn=_die_with_parent)
        try:
            announced = read_announcements(self.process, count, lambda: Path(self.log.name).read_text(), TIMEOUT)
        except (TimeoutError, RuntimeError) as exc:
            self.close()
            raise RuntimeError(f"ecemu run {args} did not start: {exc}") from None
        self.ready = time.perf_counter() - start
        self.ports = [line.split(": ", 1)[1] for line in announced if line.startswith("port: ")]
        self.port = self.ports[0]
        if boot:
            wait_for_boot(self.port)

    def negotiated(self) -> set[str]:
        """The TLS versions and suites the emulator's connections used (from its log)."""
        return set(re.findall(r"connected to \S+ with (\S+ \S+)", Path(self.log.name).read_text()))

    def close(self) -> None:
        end_process(self.process)
        self.process.stdout.close()
        self.log.close()

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# --- the host side --------------------------------------------------------------------------------


class Port:
    """A host on a pty: raw reads of whatever is there (pyserial's read_until reads one byte per
    system call, which would measure pyserial rather than the emulator)."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.buffer = bytearray()

    def close(self) -> None:
        os.close(self.fd)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view):]
                continue
            except BlockingIOError:
                pass
            if not select.select([], [self.fd], [], TIMEOUT)[1]:
                raise TimeoutError("the port takes no more bytes")

    def fill(self) -> None:
        if not select.select([self.fd], [], [], TIMEOUT)[0]:
            raise TimeoutError(f"no answer; got {bytes(self.buffer[-200:])!r}")
        try:
            self.buffer += os.read(self.fd, CHUNK)
        except BlockingIOError:
            pass

    def until(self, token: bytes) -> bytes:
        """Everything up to and including ``token``."""
        while (index := self.buffer.find(token)) < 0:
            self.fill()
        end = index + len(token)
        out = bytes(self.buffer[:end])
        del self.buffer[:end]
        return out

    def exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.fill()
        out = bytes(self.buffer[:count])
        del self.buffer[:count]
        return out

    def ask(self, line: str | bytes, final: bytes = b"OK\r\n") -> bytes:
        self.write((line.encode() if isinstance(line, str) else line) + b"\r")
        answer = self.until(final)
        if b"ERROR" in answer:
            raise RuntimeError(f"{line!r} answered {answer!r}")
        return answer


def cpu_seconds(pid: int) -> float:
    """Seconds of CPU a process's main thread has used (the scheduler's count, exact to the ns)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def round_trips(ports: list[tuple[str, int]], line: bytes, count: int, final: bytes = b"OK\r\n",
                block: int = 50) -> list[tuple[float, float]]:
    """For each (port, pid of the process answering on it): the median round trip and the CPU
    time that process used per round trip. The ports take turns in blocks of ``block``, so that
    the machine's drift (other work, frequency) falls on all of them alike."""
    opened = [Port(path) for path, _ in ports]
    samples: list[list[float]] = [[] for _ in ports]
    cpu_before = [cpu_seconds(pid) for _, pid in ports]
    try:
        for _ in range(0, count, block):
            for port, times in zip(opened, samples, strict=True):
                for _ in range(block):
                    start = time.perf_counter()
                    port.write(line)
                    port.until(final)
                    times.append(time.perf_counter() - start)
    finally:
        for port in opened:
            port.close()
    return [(statistics.median(times), (cpu_seconds(pid) - before) / len(times))
            for times, (_, pid), before in zip(samples, ports, cpu_before, strict=True)]


def payload(size: int) -> bytes:
    """Letters only: no ``+`` (transparent mode's escape), no CR, nothing that looks like a URC."""
    return random.Random(7).randbytes(size).translate(bytes(97 + b % 26 for b in range(256)))


def stream_fd(fd: int, total: int, check: bool = False) -> float:
    """Write ``total`` bytes to a non-blocking descriptor while reading back as many; seconds."""
    data = memoryview(payload(CHUNK) * 2)  # a write that took part of a chunk goes on from there
    digest = hashlib.sha256() if check else None
    sent = received = 0
    start = time.perf_counter()
    while received < total:
        readable, writable, _ = select.select([fd], [fd] if sent < total else [], [], TIMEOUT)
        if not readable and not writable:
            raise TimeoutError(f"stream stalled at {sent} sent, {received} received")
        if writable:
            try:
                offset = sent % CHUNK
                sent += os.write(fd, data[offset: offset + min(CHUNK, total - sent)])
            except BlockingIOError:
                pass
        if readable:
            while True:  # one read of a pty gives at most 4 KiB: take all there is
                try:
                    got = os.read(fd, 4 * CHUNK)
                except BlockingIOError:
                    break
                if not got:
                    raise RuntimeError("the port closed")
                received += len(got)
                if digest is not None:
                    digest.update(got)
    elapsed = time.perf_counter() - start
    if digest is not None and digest.digest() != _expected_digest(total):
        raise RuntimeError("the echo came back different")
    return elapsed


def _expected_digest(total: int) -> bytes:
    digest, data, left = hashlib.sha256(), payload(CHUNK), total
    while left:
        digest.update(data[: min(CHUNK, left)])
        left -= min(CHUNK, left)
    return digest.digest()


# --- direct TLS clients: the floor for throughput -------------------------------------------------


def _client_context(cipher: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # as the emulator at secllevel 0
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if cipher:
        context.set_ciphers(f"{cipher}:@SECLEVEL=0")
    return context


def tls_connect(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tls = context.wrap_socket(sock)
    tls.setblocking(False)
    return tls


@dataclass
class Flow:
    """One connection's progress in a throughput run."""

    total: int
    write_size: int
    read_size: int
    window: int  # bytes allowed in flight (sent, not yet echoed)
    sent: int = 0
    received: int = 0

    def want_send(self) -> bool:
        return self.sent < self.total and self.sent - self.received < self.window

    @property
    def done(self) -> bool:
        return self.received >= self.total


def tcp_connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def direct_echo(connections: list[socket.socket], flows: list[Flow]) -> float:
    """Every flow at once over its own (TLS or plain TCP) connection, from one select loop; seconds."""
    data = memoryview(payload(CHUNK) * 2)
    start = time.perf_counter()
    while not all(f.done for f in flows):
        readers = [c for c, f in zip(connections, flows, strict=True) if not f.done]
        writers = [c for c, f in zip(connections, flows, strict=True) if f.want_send()]
        readable, writable, _ = select.select(readers, writers, [], TIMEOUT)
        if not readable and not writable:
            raise TimeoutError("direct TLS echo stalled")
        for conn, flow in zip(connections, flows, strict=True):
            if conn in writable and flow.want_send():
                size, offset = min(flow.write_size, flow.total - flow.sent), flow.sent % CHUNK
                try:
                    flow.sent += conn.send(data[offset: offset + size])
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    pass
            if conn in readable:
                while True:  # what OpenSSL already holds is not seen by select
                    try:
                        got = conn.recv(flow.read_size)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                        break
                    flow.received += len(got)
                    if not got or not isinstance(conn, ssl.SSLSocket) or not conn.pending():
                        break
    return time.perf_counter() - start


# --- the emulator in buffer access mode -------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """How a command family opens, sends, reads and reports data: the SSL commands or AT+QIOPEN's."""

    send: bytes
    recv: bytes
    open: str  # format(client, port, mode)
    opened: bytes  # the open URC's name


SSL = Family(b"AT+QSSLSEND", b"AT+QSSLRECV", 'AT+QSSLOPEN=1,1,{0},"127.0.0.1",{1},{2}', b"+QSSLOPEN")
TCP = Family(b"AT+QISEND", b"AT+QIRD", 'AT+QIOPEN=1,{0},"TCP","127.0.0.1",{1},0,{2}', b"+QIOPEN")


class BufferHost:
    """A host driving clients in buffer access mode: AT+QSSLSEND=<id>,1460 and AT+QSSLRECV=<id>,1500
    (or AT+QISEND and AT+QIRD), waiting for the "recv" URC when a read finds the buffer empty (ATE0)."""

    def __init__(self, port: Port, family: Family = SSL):
        self.port = port
        self.family = family
        self.RECV = re.compile(re.escape(family.recv[2:]) + rb": (\d+)\r\n")
        self.URC = re.compile(rb'\+Q(?:SSL|I)URC: "recv",(\d+)\r\n')
        self.data = payload(SEND_SIZE)
        self.urcs: set[int] = set()  # clients a "recv" URC came for since their last empty read

    def _note_urcs(self, text: bytes) -> None:
        self.urcs.update(int(m.group(1)) for m in self.URC.finditer(text))

    def send(self, client: int) -> int:
        port = self.port
        port.write(b"%s=%d,%d\r" % (self.family.send, client, SEND_SIZE))
        self._note_urcs(port.until(b"> "))
        port.write(self.data)
        answer = port.until(b"\r\n")
        while answer.strip() != b"SEND OK":
            if b"ERROR" in answer or b"FAIL" in answer:
                raise RuntimeError(f"{self.family.send!r} answered {answer!r}")
            answer = port.until(b"\r\n")
        return SEND_SIZE

    def recv(self, client: int) -> int:
        port = self.port
        port.write(b"%s=%d,%d\r" % (self.family.recv, client, RECV_SIZE))
        while (match := self.RECV.search(port.buffer)) is None:
            if b"ERROR" in port.buffer:
                raise RuntimeError(f"{self.family.recv!r} answered {bytes(port.buffer)!r}")
            port.fill()
        self._note_urcs(port.buffer[: match.start()])
        size = int(match.group(1))
        del port.buffer[: match.end()]
        port.exactly(size)
        port.until(b"OK\r\n")
        if size == 0:
            self.urcs.discard(client)  # the next URC is for data that came after this read
        return size

    def wait_urc(self) -> None:
        while True:
            self._note_urcs(self.port.until(b"\r\n"))
            if self.urcs:
                return

    def run(self, clients: list[int], per_client: int) -> float:
        """Each client echoes ``per_client`` bytes, all of them taking turns; seconds."""
        flows = {c: Flow(per_client, SEND_SIZE, RECV_SIZE, BUFFER_WINDOW) for c in clients}
        waiting: set[int] = set()  # clients whose last read found nothing
        start = time.perf_counter()
        while not all(f.done for f in flows.values()):
            progressed = False
            for client, flow in flows.items():
                if flow.want_send():
                    flow.sent += self.send(client)
                    progressed = True
                elif not flow.done and (client not in waiting or client in self.urcs):
                    got = self.recv(client)
                    flow.received += got
                    if got:
                        waiting.discard(client)
                        progressed = True
                    else:
                        waiting.add(client)
            if not progressed:
                self.wait_urc()
        return time.perf_counter() - start


def open_clients(port: Port, server_port: int, clients: list[int], family: Family = SSL) -> None:
    said = b""
    for client in clients:
        said += port.ask(family.open.format(client, server_port, 0))
    opened: set[int] = set()
    while True:  # the URCs come in the order the handshakes end, some amid the answers above
        for match in re.finditer(re.escape(family.opened) + rb": (\d+),(\d+)\r\n", said):
            if match.group(2) != b"0":
                raise RuntimeError(f"client {match.group(1)} did not open: {match.group(0)!r}")
            opened.add(int(match.group(1)))
        if opened >= set(clients):
            return
        said = port.until(b"\r\n")


# --- the rows -----------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    value: float
    baseline: float
    unit: str
    target: str


def bench_at_round_trip(count: int, tls_port: int) -> list[Row]:
    rows = []
    with Emulator() as modem:
        emulator = (modem.port, modem.process.pid)
        with Server("pty-lines") as bare:
            (emulated, emulated_cpu), (baseline, baseline_cpu) = round_trips(
                [emulator, (bare.address, bare.process.pid)], b"AT\r", count)
        rows.append(Row("AT -> OK round trip over the pty", emulated * 1e6, baseline * 1e6, "us", "<= 1.5x"))
        rows.append(Row("  CPU per AT in the answering process", emulated_cpu * 1e6, baseline_cpu * 1e6, "us",
                        ""))

        port = Port(modem.port)
        try:
            port.ask("AT+QIACT=1")
            open_clients(port, tls_port, list(range(CLIENTS)))
            answer = port.ask("AT+QSSLSTATE")
        finally:
            port.close()
        if answer.count(b"+QSSLSTATE:") != CLIENTS:
            raise RuntimeError(f"AT+QSSLSTATE answered {answer!r}")
        canned = answer[len(b"AT+QSSLSTATE\r"):]  # the same answer, byte for byte, after the echo
        with Server("pty-lines", canned.hex()) as bare:
            (emulated, emulated_cpu), (baseline, baseline_cpu) = round_trips(
                [emulator, (bare.address, bare.process.pid)], b"AT+QSSLSTATE\r", count)
        rows.append(Row(f"AT+QSSLSTATE round trip, {CLIENTS} connections open", emulated * 1e6,
                        baseline * 1e6, "us", "<= 1.5x"))
        rows.append(Row("  CPU per AT+QSSLSTATE in the answering process", emulated_cpu * 1e6,
                        baseline_cpu * 1e6, "us", ""))
    return rows


def bench_transparent(size: int, repeats: int, tls_port: int) -> tuple[list[Row], str, str | None]:
    """The emulator, the direct client and the bare pty take turns, ``repeats`` times each, so
    that the machine's drift falls on all three alike."""
    with Emulator() as modem, Server("pty-echo") as bare:
        port = Port(modem.port)
        bare_fd = os.open(bare.address, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        conn = None
        try:
            port.ask("ATE0")
            port.ask("AT+QIACT=1")
            port.ask(f'AT+QSSLOPEN=1,1,0,"127.0.0.1",{tls_port},2', final=b"CONNECT\r\n")
            stream_fd(port.fd, size, check=True)  # warm-up, and the echo is checked once
            negotiated = modem.negotiated()
            cipher = next(iter(negotiated)).split()[1] if len(negotiated) == 1 else None
            conn = tls_connect(tls_port, _client_context(cipher))
            used = f"{conn.version()} {conn.cipher()[0]}"
            direct_echo([conn], [Flow(size, CHUNK, 4 * CHUNK, size)])
            stream_fd(bare_fd, size, check=True)
            emulated, direct, pty_floor = [], [], []
            busy = 0.0  # CPU time the emulator used while it streamed
            for _ in range(repeats):
                before = cpu_seconds(modem.process.pid)
                emulated.append(size / stream_fd(port.fd, size))
                busy += cpu_seconds(modem.process.pid) - before
                direct.append(size / direct_echo([conn], [Flow(size, CHUNK, 4 * CHUNK, size)]))
                pty_floor.append(size / stream_fd(bare_fd, size))
        finally:
            port.close()
            os.close(bare_fd)
            if conn is not None:
                conn.close()
    baseline = statistics.median(direct)
    rows = [
        Row("transparent mode echo throughput", statistics.median(emulated) / MB, baseline / MB, "MB/s",
            ">= 0.5x, >= 20 MB/s"),
        Row("  floor: pty echo loop, no TLS (reference)", statistics.median(pty_floor) / MB, baseline / MB,
            "MB/s", ""),
        Row("  emulator CPU while streaming, % of one core", 100 * busy / sum(size / rate for rate in emulated),
            100.0, "%", ""),
    ]
    tls_note = f"emulator {', '.join(sorted(negotiated))}; direct client {used}"
    return rows, tls_note, cipher


def bench_buffer(size: int, repeats: int, tls_port: int, cipher: str | None) -> list[Row]:
    """The emulator and the same AT exchange on a bare pty take turns; then the direct client."""
    rows = []
    for clients in ([0], list(range(CLIENTS))):
        per_client = size // len(clients)
        total = len(clients) * per_client
        with Emulator() as modem, Server("pty-buffer") as bare:
            port, bare_port = Port(modem.port), Port(bare.address)
            try:
                for each in (port, bare_port):
                    each.ask("ATE0")
                port.ask("AT+QIACT=1")
                open_clients(port, tls_port, clients)
                host, bare_host = BufferHost(port), BufferHost(bare_port)
                host.run(clients, per_client // 4)  # warm-up
                bare_host.run(clients, per_client // 4)
                emulated, floor = [], []
                for _ in range(repeats):
                    emulated.append(total / host.run(clients, per_client))
                    floor.append(total / bare_host.run(clients, per_client))
            finally:
                port.close()
                bare_port.close()
        conns = [tls_connect(tls_port, _client_context(cipher)) for _ in clients]
        try:
            def flows() -> list[Flow]:
                return [Flow(per_client, SEND_SIZE, RECV_SIZE, BUFFER_WINDOW) for _ in clients]

            direct_echo(conns, flows())
            direct = statistics.median(total / direct_echo(conns, flows()) for _ in range(repeats))
        finally:
            for conn in conns:
                conn.close()
        what = "1 client" if len(clients) == 1 else f"{len(clients)} clients, aggregate"
        baseline = statistics.median(floor)
        rows.append(Row(f"buffer mode echo throughput, {what}", statistics.median(emulated) / MB, baseline / MB,
                        "MB/s", "(none)"))
        rows.append(Row("  reference: direct TLS client, same chunks", direct / MB, baseline / MB, "MB/s", ""))
    return rows


def bench_tcp(size: int, stream_size: int, repeats: int, tcp_port: int) -> list[Row]:
    """AT+QIOPEN's plain TCP sockets: transparent mode against a direct TCP client, buffer access
    mode (AT+QISEND/AT+QIRD) against the same exchange on a bare pty. The sides take turns."""
    rows = []
    with Emulator() as modem:
        port = Port(modem.port)
        conn = tcp_connect(tcp_port)
        try:
            port.ask("ATE0")
            port.ask("AT+QIACT=1")
            port.ask(TCP.open.format(0, tcp_port, 2), final=b"CONNECT\r\n")
            stream_fd(port.fd, stream_size, check=True)
            emulated, direct = [], []
            for _ in range(repeats):
                emulated.append(stream_size / stream_fd(port.fd, stream_size))
                direct.append(stream_size / direct_echo([conn], [Flow(stream_size, CHUNK, 4 * CHUNK, stream_size)]))
        finally:
            port.close()
            conn.close()
    rows.append(Row("TCP transparent mode echo throughput", statistics.median(emulated) / MB,
                    statistics.median(direct) / MB, "MB/s", ">= 0.5x, >= 20 MB/s"))
    for clients in ([0], list(range(CLIENTS))):
        per_client = size // len(clients)
        total = len(clients) * per_client
        with Emulator() as modem, Server("pty-buffer") as bare:
            port, bare_port = Port(modem.port), Port(bare.address)
            try:
                for each in (port, bare_port):
                    each.ask("ATE0")
                port.ask("AT+QIACT=1")
                open_clients(port, tcp_port, clients, TCP)
                host, bare_host = BufferHost(port, TCP), BufferHost(bare_port, TCP)
                host.run(clients, per_client // 4)  # warm-up
                bare_host.run(clients, per_client // 4)
                emulated, floor = [], []
                for _ in range(repeats):
                    emulated.append(total / host.run(clients, per_client))
                    floor.append(total / bare_host.run(clients, per_client))
            finally:
                port.close()
                bare_port.close()
        what = "1 socket" if len(clients) == 1 else f"{len(clients)} sockets, aggregate"
        rows.append(Row(f"TCP buffer mode echo throughput, {what}", statistics.median(emulated) / MB,
                        statistics.median(floor) / MB, "MB/s", "(none)"))
    return rows


def _download_transparent(port: Port, source_port: int, size: int, client: int) -> float:
    """One download of ``size`` bytes from the source server in AT+QIOPEN transparent mode; bytes/s."""
    port.ask(TCP.open.format(client, source_port, 2), final=b"CONNECT\r\n")
    start = time.perf_counter()
    port.write(f"{size}\n".encode())
    port.exactly(size)
    elapsed = time.perf_counter() - start
    port.until(b"NO CARRIER\r\n")  # the server closed after the last byte
    port.ask(f"AT+QICLOSE={client}")
    return size / elapsed


def _download_direct(source_port: int, size: int) -> float:
    """One download of ``size`` bytes from the source server over bare loopback TCP; bytes/s."""
    with socket.create_connection(("127.0.0.1", source_port), timeout=TIMEOUT) as sock:
        start = time.perf_counter()
        sock.sendall(f"{size}\n".encode())
        left = size
        while left:
            got = sock.recv(4 * CHUNK)
            if not got:
                raise RuntimeError("the source closed early")
            left -= len(got)
        return size / (time.perf_counter() - start)


def _download_ppp(binary: Path, tty: str, source_port: int, size: int) -> float:
    """One download through a PPP data call with lwIP's PPPoS client; bytes/s as it measured."""
    result = subprocess.run([str(binary), "--tty", tty, "--host", "localhost", "--port", str(source_port),
                             "--download", str(size)], capture_output=True, text=True, timeout=TIMEOUT * 4)
    found = re.search(r"DOWNLOAD (\d+) bytes in ([\d.]+) s", result.stdout)
    if result.returncode != 0 or found is None or int(found[1]) != size:
        raise RuntimeError(f"the PPP download failed: {result.stdout}")
    return size / float(found[2])


def bench_ppp(size: int, muxed_size: int, repeats: int, source_port: int) -> list[Row]:
    """TCP downloads through a PPP data call (lwIP's PPPoS client, libslirp), on the bare port and in
    a CMUX channel of gsm0710muxd, against the same download in AT+QIOPEN transparent mode; the
    three take turns, run by run."""
    from tests.external_stacks import gsm0710muxd, lwip_ppp_client

    binary = lwip_ppp_client()
    bare, muxed, transparent, direct = [], [], [], []
    with Emulator() as modem, Emulator() as muxed_modem:
        # gsm0710muxd closes a channel when its pty's user leaves: a fresh one for every run
        with gsm0710muxd(muxed_modem.port, channels=1 + repeats) as (at_channel, *data_channels):
            at = Port(at_channel)
            at.ask("AT+CFUN=1")  # gsm0710muxd turned the radio off before AT+CMUX
            at.close()
            for data_channel in data_channels:
                bare.append(_download_ppp(binary, modem.port, source_port, size))
                muxed.append(_download_ppp(binary, data_channel, source_port, muxed_size))
                port = Port(modem.port)
                try:
                    port.ask("ATE0")
                    port.ask("AT+QIACT=1")
                    transparent.append(_download_transparent(port, source_port, size, 0))
                    port.ask("AT+QIDEACT=1")
                finally:
                    port.close()
                direct.append(_download_direct(source_port, size))
    baseline = statistics.median(transparent) / MB
    return [Row("TCP download through PPP, bare port", statistics.median(bare) / MB, baseline, "MB/s", "(none)"),
            Row("TCP download through PPP, CMUX channel", statistics.median(muxed) / MB, baseline, "MB/s", "(none)"),
            Row("  reference: AT+QIOPEN transparent mode download", baseline, baseline, "MB/s", ""),
            Row("  reference: loopback TCP download (vs PPP)", statistics.median(direct) / MB,
                statistics.median(bare) / MB, "MB/s", "")]


UART_TRANSFER = 100_000  # bytes echoed through transparent mode over the UART line


def bench_uart_line(repeats: int, tcp_port: int) -> list[Row]:
    """``--line uart``: 100 kB echoed through TCP transparent mode; the line carries them both ways
    at once (full duplex), so the transfer takes the line time of 100 kB at the rate and framing,
    10 bits a byte at 8N1, plus the little the first byte waits. Packets go at once
    (``AT+QICFG="transwaittm",0``): with the default 200 ms the last 672 bytes, less than a packet of
    1024, would wait 200 ms more, a fifth of the line time at 921600."""
    rows = []
    for rate in (115200, 921600):
        with Emulator("--line", "uart", "--baud", str(rate)) as modem:
            port = Port(modem.port)
            try:
                port.ask("ATE0")
                port.ask("AT+QIACT=1")
                port.ask('AT+QICFG="transwaittm",0')
                port.ask(TCP.open.format(0, tcp_port, 2), final=b"CONNECT\r\n")
                times = [stream_fd(port.fd, UART_TRANSFER, check=True) for _ in range(repeats)]
            finally:
                port.close()
        line_time = UART_TRANSFER * 10 / rate
        rows.append(Row(f"100 kB through transparent mode, UART line {rate} 8N1", statistics.median(times),
                        line_time, "s", "1.00 +- 0.02"))
    return rows


def time_to_ready(extra_env: dict[str, str] | None = None) -> tuple[float, float]:
    """``ecemu run --ready-fd N`` from the fork to READY=1 on the descriptor: wall seconds, and
    the CPU seconds the process had used by then (user and system, from /proc)."""
    read_end, write_end = os.pipe()
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "ecemu", "run", "--ready-fd", str(write_end)],
                               pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, cwd=ROOT, preexec_fn=_die_with_parent,
                               env=None if extra_env is None else {**os.environ, **extra_env})
    os.close(write_end)
    try:
        if not select.select([read_end], [], [], TIMEOUT)[0] or os.read(read_end, 64) != b"READY=1\n":
            raise RuntimeError("ecemu run did not signal READY=1")
        wall = time.perf_counter() - start
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    finally:
        os.close(read_end)
        end_process(process)
    return wall, cpu


def bench_startup(repeats: int) -> list[Row]:
    """Start-up to the ready signal, ``repeats`` runs after a warm-up, taking turns with
    ``python -c pass`` (the interpreter's own start-up) so that the machine's drift falls on both."""
    time_to_ready()  # warm-up: the page cache holds the interpreter and the sources
    python_start, ready, cpu = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        python_start.append(time.perf_counter() - start)
        wall, used = time_to_ready()
        ready.append(wall)
        cpu.append(used)
    return [Row("start-up to READY=1 on --ready-fd", statistics.median(ready), statistics.median(python_start),
                "s", "<= 0.2 s"),
            Row(f"  fastest and slowest of {repeats}", min(ready), max(ready), "s", ""),
            Row("  CPU used by then (vs python -c pass, wall)", statistics.median(cpu),
                statistics.median(python_start), "s", "")]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def bench_memory(count: int) -> list[Row]:
    with Emulator() as one:
        time.sleep(1.0)
        base = _rss_kib(one.process.pid)
    with Emulator("--count", str(count), "--boot", "at-start", boot=False) as many:
        time.sleep(1.0)  # the boot URCs of every modem are out (they wait in the ptys): all idle
        total = _rss_kib(many.process.pid)
    per_modem = (total - base) / (count - 1) / 1024
    return [Row(f"memory per idle modem, --count {count}", per_modem, base / 1024, "MiB", "<= 5 MiB")]


def _open_one(port: Port, server_port: int, client: int = 0) -> None:
    port.ask(f'AT+QSSLOPEN=1,1,{client},"127.0.0.1",{server_port},0')
    answer = port.until(b"+QSSLOPEN: %d," % client) + port.until(b"\r\n")
    if not answer.endswith(b",0\r\n"):
        raise RuntimeError(f"AT+QSSLOPEN answered {answer!r}")


def bench_tls_churn(connections: int, tls_port: int) -> list[Row]:
    """RSS of one modem after ``connections`` TLS connections opened and closed one after the
    other, next to its RSS after the first 100: memory that grows per connection shows here."""
    with Emulator() as modem:
        port = Port(modem.port)
        try:
            port.ask("ATE0")
            port.ask("AT+QIACT=1")
            start = time.perf_counter()
            for index in range(connections):
                _open_one(port, tls_port)
                port.ask("AT+QSSLCLOSE=0")
                if index == 99:
                    after_100 = _rss_kib(modem.process.pid)
            elapsed = time.perf_counter() - start
            at_end = _rss_kib(modem.process.pid)
        finally:
            port.close()
    return [Row(f"RSS after {connections} TLS opens and closes (vs after 100)", at_end / 1024,
                after_100 / 1024, "MiB", "<= 1.1x"),
            Row("  one TLS open and close, in that run", elapsed / connections * 1e3, 0.0, "ms", "")]


def _round_trip_p99(ports: list[Port], rounds: int, exchange: bytes | None) -> tuple[float, float]:
    """``rounds`` seconds of: every port in turn answers ``AT`` (timed) and, with ``exchange``,
    sends that line over its TLS connection and reads what came back since. Returns the median
    and the 99th percentile of the AT round trips."""
    times: list[float] = []
    pending = [False] * len(ports)
    for _ in range(rounds):
        tick = time.perf_counter()
        for index, port in enumerate(ports):
            start = time.perf_counter()
            port.write(b"AT\r")
            port.until(b"OK\r\n")
            times.append(time.perf_counter() - start)
            if exchange is None:
                continue
            if pending[index]:  # the echo of the last line (its URC may be among the bytes read)
                port.write(b"AT+QSSLRECV=0,1500\r")
                port.until(b"+QSSLRECV: ")
                port.until(b"OK\r\n")
            port.write(b"AT+QSSLSEND=0,%d\r" % len(exchange))
            port.until(b"> ")
            port.write(exchange)
            port.until(b"SEND OK\r\n")
            pending[index] = True
        left = 1.0 - (time.perf_counter() - tick)
        if left > 0:
            time.sleep(left)  # a line a second per modem
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def bench_fleet(count: int, tls_port: int, rounds: int) -> list[Row]:
    """``ecemu run --count N``: every modem holds one TLS connection and exchanges a line a
    second; RSS per connected modem and the AT round trip while all are connected, next to one
    modem doing the same."""
    line = b"fleet line 0123456789"
    rows = []
    results = {}
    for modems in (1, count):
        started = time.perf_counter()
        with Emulator("--count", str(modems), "--boot", "at-start", boot=False) as fleet:
            ports = [Port(path) for path in fleet.ports]
            try:
                for port in ports:
                    port.until(b"+QIND: PB DONE\r\n")
                    port.ask("ATE0")
                    port.ask("AT+QIACT=1")
                    _open_one(port, tls_port)
                connected = _rss_kib(fleet.process.pid)
                median, p99 = _round_trip_p99(ports, rounds, line)
            finally:
                for port in ports:
                    port.close()
            results[modems] = (connected / 1024, median, p99, time.perf_counter() - started)
    one, many = results[1], results[count]
    per_modem = (many[0] - one[0]) / (count - 1)
    rows.append(Row(f"RSS per connected modem, --count {count} (vs one-modem RSS)", per_modem, one[0], "MiB", ""))
    rows.append(Row(f"AT round trip median, {count} modems exchanging (vs 1)", many[1] * 1e6, one[1] * 1e6, "us", ""))
    rows.append(Row(f"AT round trip p99, {count} modems exchanging (vs 1)", many[2] * 1e6, one[2] * 1e6, "us", ""))
    rows.append(Row(f"  the whole fleet run, {count} modems (vs 1)", many[3], one[3], "s", ""))
    return rows


# --- MQTT and HTTP: the application commands, against the same exchange answered from memory --------


def exchanges_per_second(port: Port, steps: list[tuple[bytes, bytes]], count: int) -> float:
    """``count`` times the exchange ``steps`` (each a line written, then the host reads up to the
    end of the given URC's line); exchanges a second."""
    start = time.perf_counter()
    for _ in range(count):
        for line, urc in steps:
            port.write(line + b"\r")
            port.until(urc)
            port.until(b"\r\n")
    return count / (time.perf_counter() - start)


def _exchange_rows(name: str, modem_port: Port, modem_pid: int, steps: list[tuple[bytes, bytes]], count: int,
                   repeats: int) -> list[Row]:
    """The exchange on the emulator once, its answers recorded byte for byte; then the emulator
    and a bare pty answering those bytes from memory take turns, ``repeats`` times ``count``."""
    answers = []
    for line, urc in steps:
        modem_port.write(line + b"\r")
        answer = modem_port.until(urc) + modem_port.until(b"\r\n")
        if b"ERROR" in answer:
            raise RuntimeError(f"{line!r} answered {answer!r}")
        answers.append(f"{line.split(b'=')[0].hex()}:{answer.hex()}")
    with Server("pty-answers", *answers) as bare:
        bare_port = Port(bare.address)
        try:
            exchanges_per_second(bare_port, steps, count // 4)  # warm-up, both
            exchanges_per_second(modem_port, steps, count // 4)
            emulated, floor = [], []
            cpu = [0.0, 0.0]  # the answering processes' main threads
            for _ in range(repeats):
                before = cpu_seconds(modem_pid)
                emulated.append(exchanges_per_second(modem_port, steps, count))
                cpu[0] += cpu_seconds(modem_pid) - before
                before = cpu_seconds(bare.process.pid)
                floor.append(exchanges_per_second(bare_port, steps, count))
                cpu[1] += cpu_seconds(bare.process.pid) - before
        finally:
            bare_port.close()
    return [Row(name, statistics.median(emulated), statistics.median(floor), "1/s", ""),
            Row("  CPU per exchange in the answering process", cpu[0] / repeats / count * 1e6,
                cpu[1] / repeats / count * 1e6, "us", "")]


def bench_mqtt(count: int, repeats: int) -> list[Row]:
    """QoS 1 publishes through AT+QMTPUB (the message inline: OK, then ``+QMTPUB: 0,1,0`` once
    the broker's PUBACK came), one at a time, to Mosquitto on 127.0.0.1."""
    from ecemu.mqtt_broker import MqttBroker

    message = payload(64).decode()
    with MqttBroker() as broker, Emulator() as modem:
        port = Port(modem.port)
        try:
            port.ask("ATE0")
            port.ask("AT+QIACT=1")
            port.ask(f'AT+QMTOPEN=0,"127.0.0.1",{broker.port}')
            port.until(b"+QMTOPEN: 0,0\r\n")
            port.ask('AT+QMTCONN=0,"bench"')
            port.until(b"+QMTCONN: 0,0,0\r\n")
            publish = f'AT+QMTPUB=0,1,1,0,"bench/fleet","{message}"'.encode()
            return _exchange_rows("MQTT QoS 1 publishes, AT+QMTPUB, 64 bytes", port, modem.process.pid,
                                  [(publish, b"+QMTPUB: ")], count, repeats)
        finally:
            port.close()


def bench_http(count: int, repeats: int, size: int = 1024) -> list[Row]:
    """GETs through AT+QHTTPGET and AT+QHTTPREAD (the body read back through the port), one at a
    time, from an HTTP/1.1 server on 127.0.0.1 answering ``size`` bytes."""
    with Server("http-fixed", str(size)) as server, Emulator() as modem:
        port = Port(modem.port)
        try:
            port.ask("ATE0")
            port.ask("AT+QIACT=1")
            url = f"http://127.0.0.1:{server.address}/bench".encode()
            port.write(b"AT+QHTTPURL=%d,80\r" % len(url))
            port.until(b"CONNECT\r\n")
            port.write(url)
            port.until(b"OK\r\n")
            steps = [(b"AT+QHTTPGET=80", b"+QHTTPGET: "), (b"AT+QHTTPREAD=80", b"+QHTTPREAD: ")]
            return _exchange_rows(f"HTTP GETs, AT+QHTTPGET and AT+QHTTPREAD, {size} bytes", port, modem.process.pid,
                                  steps, count, repeats)
        finally:
            port.close()


# --- the fleet at line rate -------------------------------------------------------------------------

LINE_BAUD = 115200
LINE_RATE = LINE_BAUD / 10  # bytes a second each way at 8N1: a start bit, 8 data bits, a stop bit
LINE_GOAL = 0.99  # of the line rate, for every streaming modem
AT_P99_GOAL = 5e-3  # seconds
STREAM_WINDOW = 4096  # bytes a streaming host lets be in flight (sent, not yet echoed)
HOST_TICK = 0.02  # the streaming host reads every port this often (a UART driver's interrupt coalescing)


def _process_cpu(pid: int) -> float:
    """CPU seconds (user and system, every thread) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ask_all(ports: list[Port], line: str, final: bytes = b"OK\r\n") -> None:
    """The same command on every port at once (the modems work on them together), then each answer."""
    for port in ports:
        port.write(line.encode() + b"\r")
    for port in ports:
        answer = port.until(final)
        if b"ERROR" in answer:
            raise RuntimeError(f"{line!r} answered {answer!r}")


def _ping_fleet(paths: list[str], seconds: float, results) -> None:
    """In a process of its own (so the streaming host's turns do not delay it): every modem of
    ``paths`` is asked ``AT`` once a second, the modems spread evenly over the second, each
    round trip timed from the write to ``OK``. Sends the round trips to ``results``."""
    ports = [Port(path) for path in paths]
    poller = select.epoll()
    by_fd = {port.fd: port for port in ports}
    for port in ports:
        poller.register(port.fd, select.EPOLLIN)
    asked: dict[int, float] = {}  # fd -> when AT was written
    times: list[float] = []
    start = time.perf_counter()
    due = [(start + index / len(ports), port) for index, port in enumerate(ports)]
    end = start + seconds
    try:
        while time.perf_counter() < end:
            now = time.perf_counter()
            for index, (when, port) in enumerate(due):
                if when <= now and port.fd not in asked:
                    port.write(b"AT\r")
                    asked[port.fd] = time.perf_counter()
                    due[index] = (when + 1.0, port)
            wait = max(0.0, min(when for when, _ in due) - time.perf_counter())
            for fd, _ in poller.poll(wait if not asked else min(wait, 0.05)):
                port = by_fd[fd]
                port.buffer += os.read(fd, CHUNK)
                if fd in asked and b"OK\r\n" in port.buffer:
                    times.append(time.perf_counter() - asked.pop(fd))
                    port.buffer.clear()
    finally:
        for port in ports:
            port.close()
    results.send(times)


def _start_pinger(paths: list[str], seconds: float):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(target=_ping_fleet, args=(paths, seconds, sending), daemon=True)
    process.start()
    return process, receiving


def _pinger_times(pinger) -> list[float]:
    process, receiving = pinger
    if not receiving.poll(TIMEOUT + 60):
        process.kill()
        raise TimeoutError("the AT pinger sent nothing")
    times = receiving.recv()
    process.join(5)
    return sorted(times)


def _percentile(times: list[float], fraction: float) -> float:
    return times[min(len(times) - 1, int(len(times) * fraction))] if times else float("nan")


def _stream_fleet(ports: list[Port], warmup: float, seconds: float) -> list[float]:
    """Every port streams letters through its modem's transparent-mode TLS connection and reads
    the echo back, ``STREAM_WINDOW`` bytes in flight at most, for ``warmup`` then ``seconds``;
    each port's echoed bytes a second over the last ``seconds``."""
    data = payload(STREAM_WINDOW)
    sent = [0] * len(ports)
    received = [0] * len(ports)
    at_start: list[int] = []
    begin = time.perf_counter()
    measure_from, end = begin + warmup, begin + warmup + seconds
    measured_from = 0.0
    while True:
        now = time.perf_counter()
        if not at_start and now >= measure_from:
            at_start, measured_from = list(received), now
        if now >= end:
            break
        for index, port in enumerate(ports):
            while True:  # take all there is: one read of a pty gives at most 4 KiB
                try:
                    got = os.read(port.fd, CHUNK)
                except BlockingIOError:
                    break
                received[index] += len(got)
            in_flight = sent[index] - received[index]
            if in_flight < STREAM_WINDOW // 2:
                try:
                    sent[index] += os.write(port.fd, data[: STREAM_WINDOW - in_flight])
                except BlockingIOError:
                    pass
        time.sleep(max(0.0, HOST_TICK - (time.perf_counter() - now)))
    elapsed = time.perf_counter() - measured_from
    return [(after - before) / elapsed for before, after in zip(at_start, received, strict=True)]


@dataclass
class FleetTrial:
    modems: int
    streaming: int
    rates: list[float]  # echoed bytes a second per streaming modem
    at_idle: list[float]  # AT round trips of the command-mode set, the streamers connected but silent
    at_busy: list[float]  # the same while the streamers stream
    rss_per_modem_mib: float
    emulator_cpu: float  # cores, while streaming
    others_cpu: float  # the streaming host, the AT pinger and the TLS echo server, cores

    @property
    def meets(self) -> bool:
        return (min(self.rates) >= LINE_GOAL * LINE_RATE and bool(self.at_busy)
                and _percentile(self.at_busy, 0.99) <= AT_P99_GOAL)

    def describe(self) -> str:
        return (f"{self.modems} modems ({self.streaming} streaming): min {min(self.rates) / LINE_RATE:.3f}, median "
                f"{statistics.median(self.rates) / LINE_RATE:.3f} of the line; AT p50 "
                f"{_percentile(self.at_busy, 0.5) * 1e3:.2f} ms p99 {_percentile(self.at_busy, 0.99) * 1e3:.2f} ms; "
                f"emulator {self.emulator_cpu:.2f} cores; {'meets' if self.meets else 'misses'} the goal")


def fleet_line_trial(modems: int, tls_port: int, server_pid: int, one_modem_kib: int, warmup: float,
                     seconds: float) -> FleetTrial:
    """``ecemu run --count MODEMS --line uart --baud 115200``: the first half stream in TLS
    transparent mode, the second half answer ``AT`` once a second each."""
    streaming = max(1, modems // 2)
    with Emulator("--count", str(modems), "--line", "uart", "--baud", str(LINE_BAUD), "--boot", "at-start",
                  boot=False) as fleet:
        ports = [Port(path) for path in fleet.ports]
        try:
            for port in ports:
                port.until(b"+QIND: PB DONE\r\n")
            streamers = ports[:streaming]
            _ask_all(streamers, "ATE0")
            _ask_all(streamers, "AT+QIACT=1")
            _ask_all(streamers, f'AT+QSSLOPEN=1,1,0,"127.0.0.1",{tls_port},2', final=b"CONNECT\r\n")
            for port in ports[streaming:]:
                port.close()  # the pinger opens its own
            rss = _rss_kib(fleet.process.pid)
            command_mode = fleet.ports[streaming:]
            at_idle = _pinger_times(_start_pinger(command_mode, 3.0)) if command_mode else []
            pinger = _start_pinger(command_mode, warmup + seconds) if command_mode else None
            host_before = time.process_time()
            emulator_before, server_before = _process_cpu(fleet.process.pid), _process_cpu(server_pid)
            started = time.perf_counter()
            rates = _stream_fleet(streamers, warmup, seconds)
            elapsed = time.perf_counter() - started
            emulator_cpu = (_process_cpu(fleet.process.pid) - emulator_before) / elapsed
            others_cpu = (time.process_time() - host_before + _process_cpu(server_pid) - server_before) / elapsed
            at_busy = _pinger_times(pinger) if pinger is not None else []
        finally:
            for port in ports[:streaming]:
                port.close()
    return FleetTrial(modems, streaming, rates, at_idle, at_busy, (rss - one_modem_kib) / max(1, modems - 1) / 1024,
                      emulator_cpu, others_cpu)


def bench_fleet_line(largest: int, tls_port: int, server_pid: int, seconds: float, search: bool = True) -> list[Row]:
    """The fleet at line rate, ``largest`` modems, and (``search``) a search for the largest fleet
    that meets the goal: doubling from 4 while it meets it, then halving the gap to the first that
    did not."""
    with Emulator("--line", "uart") as one:
        one_modem_kib = _rss_kib(one.process.pid)
    trials: dict[int, FleetTrial] = {}

    def trial(modems: int) -> FleetTrial:
        if modems not in trials:
            trials[modems] = fleet_line_trial(modems, tls_port, server_pid, one_modem_kib, 2.0, seconds)
            print(f"fleet-line: {trials[modems].describe()}", file=sys.stderr, flush=True)
        return trials[modems]

    good, bad = 0, None
    size = 4 if search else largest + 1
    while size <= largest:
        if trial(size).meets:
            good, size = size, size * 2
        else:
            bad = size
            break
    if search and bad is None and good < largest:
        bad = largest if not trial(largest).meets else None
        good = largest if bad is None else good
    while bad is not None and bad - good > max(2, good // 8):
        middle = (good + bad) // 2 // 2 * 2
        if trial(middle).meets:
            good = middle
        else:
            bad = middle
    rows = []
    named = trial(largest)
    rows.append(Row(f"fleet at 115200 8N1, --count {largest}: min echo", min(named.rates) / 1e3, LINE_RATE / 1e3,
                    "kB/s", ">= 0.99x"))
    rows.append(Row(f"  median echo, {named.streaming} streaming modems", statistics.median(named.rates) / 1e3,
                    LINE_RATE / 1e3, "kB/s", ">= 0.99x"))
    rows.append(Row(f"  AT p50, {largest - named.streaming} in command mode (vs fleet silent)",
                    _percentile(named.at_busy, 0.5) * 1e3, _percentile(named.at_idle, 0.5) * 1e3, "ms", ""))
    rows.append(Row("  AT p99 (vs fleet silent)", _percentile(named.at_busy, 0.99) * 1e3,
                    _percentile(named.at_idle, 0.99) * 1e3, "ms", "<= 5 ms"))
    rows.append(Row("  RSS per modem (vs one-modem RSS)", named.rss_per_modem_mib, one_modem_kib / 1024, "MiB", ""))
    rows.append(Row("  CPU: emulator (vs host, pinger, TLS server)", named.emulator_cpu, named.others_cpu, "cores",
                    ""))
    best = trials.get(good)
    if not search:
        return rows
    rows.append(Row("largest fleet meeting the goal (vs streaming)", float(good),
                    float(best.streaming if best else 0), "modems", ""))
    if best is not None:
        rows.append(Row(f"  its min echo, {good} modems", min(best.rates) / 1e3, LINE_RATE / 1e3, "kB/s", ">= 0.99x"))
        rows.append(Row("  its AT p99", _percentile(best.at_busy, 0.99) * 1e3, 5.0, "ms", "<= 5 ms"))
        rows.append(Row("  its CPU: emulator (vs the others)", best.emulator_cpu, best.others_cpu, "cores", ""))
    return rows


def bench_attacks(quick: bool) -> list[Row]:
    """Each attack of ``tests/hostile_peers.py`` at its worst size, on modem 0 of ``ecemu run
    --count 2`` while modem 1 is asked AT without pause: modem 1's longest wait for an answer (its
    baseline: the same fleet with no attack, measured first), the longest turn of the event loop
    and the longest garbage collector pass in CPU time (baseline: the same without attack) and the
    peak RSS growth (baseline: the bound docs/reference/robustness.md states for it)."""
    import tempfile as temporary

    from tests import hostile_peers as peers

    rows: list[Row] = []
    with peers.Fleet() as fleet:
        quiet = peers.under_attack(fleet, lambda fleet, seen: time.sleep(2.0 if quick else 5.0))
    quiet_turn, quiet_gc = fleet.turns["longest"], fleet.turns["gc_longest"]
    scale = 4 if quick else 1
    rtt0 = {"rtt_ms": 0}
    attacks = [
        ("MQTT: 4 MiB PUBREL, broker never reads", {}, lambda f: peers.pubrel_flood(f, 4 << 20, 4.0), 1),
        ("MQTT: the same, round trip 0", rtt0, lambda f: peers.pubrel_flood(f, 4 << 20, 4.0), 1),
        ("MQTT: 100,000 QoS 0 to a reading host", {}, lambda f: peers.qos0_flood(f, 100000 // scale), 1),
        ("HTTP: 100 Continue until rsptime, 4 s", {},
         lambda f: peers.http_flood(f, peers.CONTINUE_FLOOD, 1 << 30, rsptime=4), 1),
        ("HTTP: 1-byte chunks, 200,000 read", {}, lambda f: peers.one_byte_chunks(f, 200000 // scale), 1),
        ("HTTP: an endless header line", {}, lambda f: peers.http_flood(f, peers.ENDLESS_HEADER, 1 << 30), 1),
        ("HTTP: endless body nobody reads, 5 s", {},
         lambda f: peers.http_flood(f, peers.ENDLESS_BODY, 1 << 30, seconds=5.0), 1),
        ("HTTP: AT+QHTTPREADFILE, endless body", {},
         lambda f: peers.readfile_flood(f, peers.ENDLESS_CHUNKED, 1 << 30), 1),
        ("TCP: 12 sockets nobody reads, 5 s", {}, lambda f: peers.unread_tcp_sockets(f, 5.0), 12),
        ("UDP: 40,000 datagrams, host not reading", {}, lambda f: peers.udp_flood_unread(f, 40000, 100), 1),
        ("LISTENER: 3,000 'incoming full', unread", {}, lambda f: peers.incoming_full_flood(f, 3000), 1),
    ]
    for name, options, attack, connections in attacks:
        with temporary.TemporaryDirectory() as folder:
            ufs = Path(folder) / "ufs"
            peers.big_file(ufs)
            with peers.Fleet("--ufs", str(ufs), **options) as fleet:
                outcome = attack(fleet)
        bound = 8.0 + 0.75 * connections  # tests/test_hostile_peers.py: RSS_CONSTANT_MIB, PER_CONNECTION_MIB
        rows.append(Row(name, outcome.silences.longest * 1e3, quiet.silences.longest * 1e3, "ms", "<= 100 ms"))
        rows.append(Row("  longest loop turn, CPU", fleet.turns["longest"] * 1e3, quiet_turn * 1e3, "ms",
                        "<= 10 ms"))
        rows.append(Row("  longest garbage collector pass, CPU", fleet.turns["gc_longest"] * 1e3, quiet_gc * 1e3,
                        "ms", ""))
        rows.append(Row("  peak RSS growth (baseline: the bound)", outcome.grown_mib, bound, "MiB", "<= 1x"))
        if name in TIMED_ATTACKS:  # a timer under the flood: how late it fired (the tests check never early)
            rows.append(Row("  the timer's URC after (baseline: the timer)", outcome.seen["after"] * 1e3,
                            TIMED_ATTACKS[name] * 1e3, "ms", "<= 1.05x"))
    return rows


# The attacks that end on a module timer, and its length in seconds (rsptime).
TIMED_ATTACKS = {"HTTP: 100 Continue until rsptime, 4 s": 4.0}


def print_table(rows: list[Row], tls_note: str, quick: bool) -> None:
    print(f"{'measurement':<50} {'median':>10} {'baseline':>10} {'unit':>5} {'ratio':>7}  target")
    for row in rows:
        ratio = row.value / row.baseline if row.baseline else float("nan")
        print(f"{row.name:<50} {row.value:>10.3f} {row.baseline:>10.3f} {row.unit:>5} {ratio:>7.2f}  {row.target}")
    print()
    print("Baselines, all measured in this run, each in its own process:")
    print("- round trips and their CPU: a pty whose other end (asyncio) echoes the line and answers with")
    print("  the emulator's own answer, byte for byte; the two take turns in blocks of 50;")
    print("- transparent mode: a direct TLS client (Python ssl, select loop, 64 KiB writes) to the same")
    print("  echo server; the pty floor row is a bare asyncio pty echo with no TLS and no network;")
    print("- buffer mode: the same AT+QSSLSEND/AT+QSSLRECV exchange on a bare pty answered from memory")
    print("  (no TLS, no network); the reference rows are direct TLS clients sending the same chunks;")
    print("- TCP rows (AT+QIOPEN): transparent mode against a direct plain TCP client (select loop, 64 KiB")
    print("  writes) to the same threaded TCP echo server; buffer mode against the same AT+QISEND/AT+QIRD")
    print("  exchange on a bare pty answered from memory;")
    print("- PPP rows: lwIP's PPPoS client (built from Debian's lwip source) downloads from a TCP source")
    print("  server through a data call, on the bare port and in a gsm0710muxd CMUX channel (1 MiB: the")
    print("  daemon drops frames when a channel's pty is full, and TCP waits for its retransmission")
    print("  timer); baseline: the same download in AT+QIOPEN transparent mode, the three taking turns;")
    print("- UART line rows (--line uart): the line time of 100 kB at the rate, 10 bits a byte (8N1);")
    print("- start-up: `python -c pass`; memory: the RSS of a one-modem process;")
    print("- attacks: modem 1 of the same --count 2 fleet with no attack;"
          " the RSS bound docs/reference/robustness.md states.")
    print("Echo server: threaded OpenSSL (Python ssl, blocking sockets, one thread per connection),")
    print(f"127.0.0.1. TLS: {tls_note}.")
    print("Throughput counts payload bytes echoed (each byte goes host -> server -> host) per second.")
    if quick:
        print("(--quick: fewer repetitions and smaller transfers; medians are noisier)")


def main() -> None:
    # The emulator's own speed, not a radio network's: no round trip (docs/reference/cli.md "The network's round trip").
    os.environ.setdefault("ECEMU_NETWORK_RTT_MS", "0")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller transfers")
    parser.add_argument("--only", choices=["at", "transparent", "buffer", "tcp", "mqtt", "http", "ppp", "uart", "startup", "memory",
                                            "churn", "fleet", "fleet-line", "attacks"],
                        help="run one group of rows")
    parser.add_argument("--count", type=int, default=1000, help="modems in the fleet rows (default 1000)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="fleet-line: seconds measured in each trial, after 2 s of warm-up (default 10)")
    parser.add_argument("--fixed", action="store_true", help="fleet-line: the --count trial alone, no search")
    parser.add_argument("--profile", metavar="FILE",
                        help="run the emulator of the rows under cProfile; each emulator overwrites FILE as it stops "
                             "(with --only fleet-line: the --count trial alone, no search)")
    args = parser.parse_args()
    if args.profile:
        PROFILE_TO.append(str(Path(args.profile).resolve()))
    quick = args.quick
    rows: list[Row] = []
    tls_note = "not measured"
    cipher = None
    with Server("tls-echo") as server:
        tls_port = int(server.address)
        if args.only in (None, "at"):
            rows += bench_at_round_trip(300 if quick else 2000, tls_port)
        if args.only in (None, "transparent"):
            found, tls_note, cipher = bench_transparent((16 if quick else 64) << 20, 3 if quick else 7,
                                                        tls_port)
            rows += found
        if args.only in (None, "buffer"):
            rows += bench_buffer((1 if quick else 4) << 20, 3 if quick else 5, tls_port, cipher)
        if args.only in (None, "churn"):
            rows += bench_tls_churn(1000 if quick else 10000, tls_port)
        if args.only in (None, "fleet"):
            rows += bench_fleet(min(args.count, 100) if quick else args.count, tls_port, 5 if quick else 20)
        if args.only == "fleet-line":  # minutes of machine time: only when asked for
            rows += bench_fleet_line(args.count, tls_port, server.process.pid, args.seconds, search=not (args.profile or args.fixed))
    if args.only in (None, "tcp", "uart"):
        with Server("tcp-echo") as tcp_server:
            if args.only in (None, "tcp"):
                rows += bench_tcp((1 if quick else 4) << 20, (16 if quick else 64) << 20, 3 if quick else 5,
                                  int(tcp_server.address))
            if args.only in (None, "uart"):
                rows += bench_uart_line(1 if quick else 3, int(tcp_server.address))
    if args.only in (None, "mqtt"):
        rows += bench_mqtt(200 if quick else 1000, 3 if quick else 5)
    if args.only in (None, "http"):
        rows += bench_http(100 if quick else 400, 3 if quick else 5)
    if args.only in (None, "ppp"):
        with Server("tcp-source") as source:
            rows += bench_ppp((4 if quick else 16) << 20, 1 << 20, 3 if quick else 5, int(source.address))
    if args.only in (None, "startup"):
        rows += bench_startup(3 if quick else 10)
    if args.only in (None, "memory"):
        rows += bench_memory(20 if quick else 100)
    if args.only in (None, "attacks"):
        rows += bench_attacks(quick)
    print_table(rows, tls_note, quick)


if __name__ == "__main__":
    main()
