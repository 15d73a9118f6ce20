"""Hostile peers on 127.0.0.1, and the measurements of what they do to an emulator.

The peers are real servers and clients in threads of the test process: an HTTP server that answers
with a flood (``HostileHttpServer``), an MQTT broker that floods its client (``FloodingBroker``), a
plain TCP server that floods, a UDP flooder and a connection flooder. Each sends a bounded amount
and stops by itself, or when the test leaves its ``with`` block.

The emulator runs as ``ecemu run --count 2`` in its own process (``Fleet``), under a probe of its
event loop (``tests/loop_probe.py``): modem 0 is attacked while ``Pinger``, a process of its own,
keeps asking modem 1 ``AT``. Three figures come out:

- the longest turn of the emulator's event loop, in CPU time (``Fleet.turns``): how long any
  modem could be kept waiting by another's peer, whatever else the machine does;
- the longest time modem 1 took to answer, as its host saw it (``Silences``): the same in wall
  time, which a loaded machine stretches;
- the peak RSS over the attack (``VmHWM``, reset before it) less the RSS before.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ecemu.commands import mqtt_codec as codec
from tests.plain_servers import ThreadedTcpServer
from tests.processes import end_process, read_announcements

WAIT = 10.0
# Each peer stops after this long whatever happens (seconds): no test's flood outlives it.
LIFETIME = 60.0


# --- the emulator ---------------------------------------------------------------------------------


class Fleet:
    """``ecemu run --count 2`` in its own process (its output unread until a host opens a port),
    with the profile's network round trip unless ``rtt_ms`` says otherwise; ``fds[i]`` is a host's
    descriptor on modem i's port, opened and booted."""

    def __init__(self, *args: str, rtt_ms: int = 80, count: int = 2):
        self.log = tempfile.NamedTemporaryFile(prefix="ecemu-hostile-", suffix=".log")
        self.probe = tempfile.NamedTemporaryFile(prefix="ecemu-loop-", suffix=".json")
        self.turns: dict = {}  # the loop probe's figures (tests/loop_probe.py), once closed
        env = dict(os.environ, ECEMU_NETWORK_RTT_MS=str(rtt_ms))
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("loop_probe.py")), self.probe.name,
             "run", "--count", str(count), "--boot", "at-start", "--log-level", "info", *args],
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL, env=env)
        try:
            said = read_announcements(self.process, count, self.log_text)
        except BaseException:
            self.close()
            raise
        self.ports = [line.split(": ", 1)[1] for line in said if line.startswith("port: ")]
        self.fds = []
        self.buffers = [bytearray() for _ in range(count)]
        for port in self.ports:
            host = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            self.fds.append(host)
            read_until(host, b"+QIND: PB DONE\r\n")

    @property
    def pid(self) -> int:
        return self.process.pid

    def ask(self, modem: int, line: str, final: bytes = b"OK\r\n", timeout: float = WAIT) -> bytes:
        """Send ``line``; what came up to and including ``final``."""
        write_all(self.fds[modem], line.encode("latin-1") + b"\r")
        return self.expect(modem, final, timeout)

    def expect(self, modem: int, token: bytes, timeout: float = WAIT) -> bytes:
        """What came from modem ``modem`` up to and including ``token`` (the rest is kept)."""
        return read_until(self.fds[modem], token, timeout, self.buffers[modem])

    def drain(self, modem: int) -> int:
        """Read and drop whatever modem ``modem`` has said; how many bytes."""
        count = len(self.buffers[modem]) + drain(self.fds[modem])
        self.buffers[modem].clear()
        return count

    def log_text(self) -> str:
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def close(self) -> None:
        if self.probe.closed:
            return
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        end_process(self.process)
        self.process.stdout.close()
        self.log.close()
        text = Path(self.probe.name).read_text()
        self.turns = json.loads(text) if text else {}
        self.probe.close()

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- memory -----------------------------------------------------------------------------------

    def rss_kib(self) -> int:
        return _status_kib(self.pid, "VmRSS")

    def reset_peak(self) -> int:
        """Start counting the peak RSS and the loop's turns from now; returns the RSS now (KiB)."""
        with open(f"/proc/{self.pid}/clear_refs", "w") as f:
            f.write("5")
        os.kill(self.pid, signal.SIGUSR1)
        return self.rss_kib()

    def peak_kib(self) -> int:
        return _status_kib(self.pid, "VmHWM")


def _status_kib(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field_name + ":"))


def write_all(fd: int, data: bytes, timeout: float = WAIT) -> None:
    view = memoryview(data)
    deadline = time.monotonic() + timeout
    while view:
        try:
            view = view[os.write(fd, view):]
            continue
        except BlockingIOError:
            pass
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([], [fd], [], left)[1]:
            raise TimeoutError("the port takes no more bytes")


def read_until(fd: int, token: bytes, timeout: float = WAIT, buffer: bytearray | None = None) -> bytes:
    """What ``fd`` gives up to and including ``token``; what came after it stays in ``buffer``."""
    buffer = bytearray() if buffer is None else buffer
    deadline = time.monotonic() + timeout
    while (index := buffer.find(token)) < 0:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"waited for {token!r}; got {bytes(buffer[-300:])!r}")
        try:
            buffer += os.read(fd, 65536)
        except BlockingIOError:
            pass
    end = index + len(token)
    out = bytes(buffer[:end])
    del buffer[:end]
    return out


def drain(fd: int) -> int:
    """Read whatever waits on ``fd`` now; how many bytes."""
    total = 0
    while select.select([fd], [], [], 0)[0]:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        total += len(chunk)
    return total


# --- modem 1's silence --------------------------------------------------------------------------


@dataclass
class Silences:
    pings: int = 0
    longest: float = 0.0  # the longest round trip of an AT, as the host saw it (seconds)


class Pinger:
    """A host asking modem ``modem`` ``AT`` again as soon as each ``OK`` comes, until stopped, in
    a process of its own (so that no thread of the test holds it up); ``silences`` says how long
    it waited (see the module docstring)."""

    def __init__(self, fleet: Fleet, modem: int = 1):
        fleet.drain(modem)
        self.port = fleet.ports[modem]
        self.silences = Silences()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Pinger":
        self.process = subprocess.Popen([sys.executable, "-m", "tests.hostile_peers", "ping", self.port],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        cwd=Path(__file__).resolve().parent.parent)
        ready = self.process.stdout.readline()
        if ready != b"ready\n":
            raise RuntimeError(f"the pinger did not start: {ready!r}")
        return self

    def __exit__(self, *exc_info) -> None:
        process = self.process
        assert process is not None
        out, _ = process.communicate(b"", timeout=2 * WAIT)  # closing its input stops it
        result = json.loads(out)
        self.silences = Silences(result["pings"], result["longest"])
        if result["error"] and exc_info[0] is None:
            raise AssertionError(f"modem stopped answering: {result['error']}")


def _ping(port: str) -> None:
    """The pinger's process (``Pinger``): until its standard input closes."""
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    stop = sys.stdin.fileno()
    result: dict = {"pings": 0, "longest": 0.0, "error": ""}
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        while not select.select([stop], [], [], 0)[0]:
            started = time.monotonic()
            write_all(fd, b"AT\r")
            answer = read_until(fd, b"OK\r\n")
            took = time.monotonic() - started
            if not answer.endswith(b"AT\r\r\nOK\r\n"):
                raise AssertionError(f"AT answered {answer!r}")
            result["pings"] += 1
            result["longest"] = max(result["longest"], took)
    except Exception as exc:  # reported to the test
        result["error"] = repr(exc)
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


# --- hostile servers --------------------------------------------------------------------------------


class _Server(ThreadedTcpServer):
    """A hostile TCP server on 127.0.0.1: each connection served by ``serve``; ``sent[i]`` counts
    what connection i was sent, ``done`` is set when a connection's flood has ended, ``held_back``
    when a write of the flood found the socket full (TCP holds the server back)."""

    def __init__(self) -> None:
        super().__init__(LIFETIME)
        self.stop = self._stop
        self.sent: list[int] = []
        self.done = threading.Event()
        self.held_back = threading.Event()

    def accepted(self, index: int) -> None:
        self.sent.append(0)

    def _serve(self, conn: socket.socket, index: int) -> None:
        try:
            self.serve(conn, index)
        except OSError:
            pass
        finally:
            self.done.set()

    def serve(self, conn: socket.socket, index: int) -> None:
        raise NotImplementedError

    def flood(self, conn: socket.socket, index: int, unit: bytes, total: int) -> None:
        """Send ``unit`` over and over, ``total`` bytes in all, at most 64 KiB a write, until done,
        stopped, cut off, or the server's lifetime is over; a short write goes on where it ended."""
        block = unit * max(1, 65536 // len(unit))
        conn.settimeout(0.2)
        view = memoryview(block)
        offset = 0
        while self.sent[index] < total and not self.stop.is_set() and time.monotonic() < self._ends:
            size = min(65536, total - self.sent[index], len(block) - offset)
            try:
                sent = conn.send(view[offset:offset + size])
            except (TimeoutError, socket.timeout):
                self.held_back.set()
                continue
            self.sent[index] += sent
            offset = (offset + sent) % len(block)

    def wait_done(self, timeout: float = WAIT) -> None:
        if not self.done.wait(timeout):
            raise TimeoutError(f"the flood did not end; sent {self.sent}")


def _read_request_head(conn: socket.socket) -> bytes:
    conn.settimeout(WAIT)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("no request")
        head += chunk
    return head


class HostileHttpServer(_Server):
    """Answers every request with ``prefix`` and then ``unit`` repeated up to ``total`` bytes:
    ``CONTINUE_FLOOD`` (100 Continue forever), ``ONE_BYTE_CHUNKS``, ``ENDLESS_HEADER``,
    ``ENDLESS_BODY`` (Content-Length far beyond what is sent), or a body of a given size."""

    def __init__(self, prefix: bytes, unit: bytes, total: int):
        super().__init__()
        self.prefix, self.unit, self.total = prefix, unit, total

    def serve(self, conn: socket.socket, index: int) -> None:
        _read_request_head(conn)
        conn.sendall(self.prefix)
        self.flood(conn, index, self.unit, self.total)


CONTINUE_FLOOD = (b"", b"HTTP/1.1 100 Continue\r\n\r\n")
ONE_BYTE_CHUNKS = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"1\r\nx\r\n")
ENDLESS_HEADER = (b"HTTP/1.1 200 OK\r\nX-Endless: ", b"a")
ENDLESS_BODY = (b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n", b"0123456789abcdef" * 64)


def sized_body(size: int) -> tuple[bytes, bytes]:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size, b"z" * 4096


class FloodingBroker(_Server):
    """An MQTT broker that accepts the client's CONNECT, then sends ``unit`` packets up to
    ``total`` bytes and reads nothing more (``read=False``) or reads and drops what comes."""

    def __init__(self, unit: bytes, total: int, read: bool = False):
        super().__init__()
        self.unit, self.total, self.read = unit, total, read

    def serve(self, conn: socket.socket, index: int) -> None:
        conn.settimeout(WAIT)
        got = b""
        while not _whole_packet(got):  # the CONNECT
            chunk = conn.recv(4096)
            if not chunk:
                raise ConnectionError("no CONNECT")
            got += chunk
        conn.sendall(b"\x20\x02\x00\x00")  # CONNACK, accepted
        if self.read:
            threading.Thread(target=self._discard, args=(conn,), daemon=True).start()
        self.flood(conn, index, self.unit, self.total)

    def _discard(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        while not self.stop.is_set():
            try:
                if not conn.recv(65536):
                    return
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return


def _whole_packet(data: bytes) -> bool:
    """``data`` holds at least one whole MQTT packet (its remaining length, 2.2.3, says)."""
    length, multiplier = 0, 1
    for index in range(1, min(len(data), 5)):
        length += (data[index] & 0x7F) * multiplier
        multiplier *= 128
        if not data[index] & 0x80:
            return len(data) >= index + 1 + length
    return False


def pubrels(count: int) -> bytes:
    """``count`` PUBREL packets, packet identifiers 1, 2, ... (4 bytes each)."""
    return b"".join(codec.encode_ack(codec.PUBREL, 1 + i % 65535) for i in range(count))


def qos0_publishes(count: int, topic: str = "t") -> bytes:
    return codec.encode_publish(topic, b"", 0, False) * count


class TcpFloodServer(_Server):
    """Sends ``total`` bytes to whoever connects and reads nothing."""

    def __init__(self, total: int):
        super().__init__()
        self.total = total

    def serve(self, conn: socket.socket, index: int) -> None:
        self.flood(conn, index, b"0123456789abcdef" * 64, self.total)


class SilentServer(_Server):
    """Accepts and never says a word (nor reads), until the test ends."""

    def serve(self, conn: socket.socket, index: int) -> None:
        self.stop.wait(LIFETIME)


def udp_flood(port: int, count: int, size: int = 100, within: float = LIFETIME) -> int:
    """``count`` datagrams of ``size`` bytes to 127.0.0.1:``port`` as fast as the kernel takes
    them; how many were sent."""
    sent = 0
    ends = time.monotonic() + within
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        payload = b"u" * size
        while sent < count and time.monotonic() < ends:
            try:
                sock.sendto(payload, ("127.0.0.1", port))
                sent += 1
            except BlockingIOError:
                time.sleep(0)
    return sent


def connection_flood(port: int, count: int, within: float = LIFETIME, threads: int = 8) -> int:
    """``count`` connections to 127.0.0.1:``port``, each closed at once, from ``threads`` threads
    (a connect that waits for a retransmitted SYN holds up only its own thread); how many were made."""
    made = [0] * threads
    ends = time.monotonic() + within

    def connect(index: int) -> None:
        while sum(made) < count and time.monotonic() < ends:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=WAIT):
                    made[index] += 1
            except OSError:
                time.sleep(0.001)

    workers = [threading.Thread(target=connect, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(within + WAIT)
    return sum(made)


# --- the attacks, each on modem 0 of a fleet while modem 1 is pinged --------------------------------


@dataclass
class Attack:
    """What an attack did: modem 1's silences, the emulator's peak RSS over its RSS before the
    attack, and what the attack itself found (``seen``)."""

    silences: Silences
    grown_mib: float
    seen: dict = field(default_factory=dict)


def nothing(fleet: Fleet) -> None:
    pass


def under_attack(fleet: Fleet, attack, setup=nothing) -> Attack:
    """``setup(fleet)`` on modem 0, then ``attack(fleet, seen)`` while modem 1 is pinged; the peak
    RSS and the loop's turns count from the end of the setup."""
    fleet.ask(0, "ATE0")
    fleet.ask(0, "AT+QIACT=1")
    setup(fleet)
    base = fleet.reset_peak()
    seen: dict = {}
    with Pinger(fleet) as pinger:
        attack(fleet, seen)
    return Attack(pinger.silences, (fleet.peak_kib() - base) / 1024, seen)


def http_get(fleet: Fleet, port: int, rsptime: int = 60) -> None:
    """AT+QHTTPGET of the server at ``port``; its OK and ``+QHTTPGET:`` come once the server answers
    (or ``rsptime`` has passed), for the caller to read."""
    url = f"http://127.0.0.1:{port}/"
    fleet.ask(0, f"AT+QHTTPURL={len(url)},10", b"CONNECT\r\n")
    write_all(fleet.fds[0], url.encode())
    fleet.expect(0, b"OK\r\n")
    write_all(fleet.fds[0], f"AT+QHTTPGET={rsptime}\r".encode())


def mqtt_connect(fleet: Fleet, port: int, *config: str) -> None:
    for line in config:
        fleet.ask(0, line)
    fleet.ask(0, f'AT+QMTOPEN=0,"127.0.0.1",{port}', b"+QMTOPEN: 0,0\r\n")
    fleet.ask(0, 'AT+QMTCONN=0,"hostile"', b"+QMTCONN: 0,0,0\r\n")


def block_output(fleet: Fleet, ufs_file: str = "big.bin") -> None:
    """The host asks for a 600 KiB file (in modem 0's UFS) and reads none of it: its output is full."""
    fleet.ask(0, f'AT+QFDWL="{ufs_file}"', b"CONNECT\r\n")


def unblock_output(fleet: Fleet) -> bytes:
    """The host reads the download, then asks AT until one comes back with nothing before it;
    what came besides the download."""
    fleet.expect(0, b"+QFDWL: ", timeout=30)
    fleet.expect(0, b"OK\r\n")
    said = b""
    for _ in range(200):
        answer = fleet.ask(0, "AT")
        if answer == b"\r\nOK\r\n":
            return said
        said += answer
    raise AssertionError("AT kept bringing more")


def big_file(ufs: Path) -> None:
    """Modem 0's UFS folder in ``ufs`` with a 600 KiB ``big.bin``, for ``block_output``."""
    (ufs / "0").mkdir(parents=True, mode=0o700)
    ufs.chmod(0o700)
    (ufs / "0" / "big.bin").write_bytes(b"b" * (600 << 10))


def pubrel_flood(fleet: Fleet, size: int = 4 << 20, seconds: float = 2.0) -> Attack:
    """A broker sends ``size`` bytes of PUBREL (each answered with a PUBCOMP) and reads nothing."""
    with FloodingBroker(pubrels(size // 4), size) as broker:
        def attack(fleet: Fleet, seen: dict) -> None:
            mqtt_connect(fleet, broker.port)
            time.sleep(seconds)  # the flood, while modem 1 is asked
            seen["state"] = fleet.ask(0, "AT+QMTCONN?")

        return under_attack(fleet, attack)


def qos0_flood(fleet: Fleet, count: int) -> Attack:
    """``count`` QoS 0 messages from the broker to a host that reads them all (``seen["received"]``)."""
    with FloodingBroker(qos0_publishes(count), count * 5, read=True) as broker:
        def attack(fleet: Fleet, seen: dict) -> None:
            mqtt_connect(fleet, broker.port)
            line = b'\r\n+QMTRECV: 0,0,"t",""\r\n'
            seen["received"] = sum(fleet.expect(0, line, timeout=60).count(line) for _ in range(count))

        return under_attack(fleet, attack)


def http_flood(fleet: Fleet, answer: tuple[bytes, bytes], total: int, rsptime: int = 60,
               seconds: float = 2.0) -> Attack:
    """A GET to a server that answers ``answer`` (``CONTINUE_FLOOD`` ...) up to ``total`` bytes:
    the URC that ends it, or what came after ``seconds`` (``seen["urc"]``, ``seen["after"]``)."""
    with HostileHttpServer(*answer, total=total) as server:
        def attack(fleet: Fleet, seen: dict) -> None:
            started = time.monotonic()
            http_get(fleet, server.port, rsptime)
            seen["urc"] = fleet.expect(0, b"+QHTTPGET: ", timeout=30) + fleet.expect(0, b"\r\n")
            if b"+QHTTPGET: 0," in seen["urc"]:
                time.sleep(seconds)  # a response nobody reads, while modem 1 is asked
            seen["after"] = time.monotonic() - started
            seen["sent"] = server.sent[0]

        return under_attack(fleet, attack)


def one_byte_chunks(fleet: Fleet, chunks: int) -> Attack:
    """A response in chunks of one byte, read with AT+QHTTPREAD up to ``chunks`` of them."""
    with HostileHttpServer(*ONE_BYTE_CHUNKS, total=max(16 << 20, 12 * chunks)) as server:
        def attack(fleet: Fleet, seen: dict) -> None:
            http_get(fleet, server.port)
            fleet.expect(0, b"+QHTTPGET: 0,200\r\n")
            fleet.ask(0, "AT+QHTTPREAD=60", b"CONNECT\r\n")
            seen["other"] = fleet.expect(0, b"x" * chunks, timeout=60).replace(b"x", b"")

        return under_attack(fleet, attack)


ENDLESS_CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"4000\r\n" + b"z" * 0x4000 + b"\r\n")


def readfile_flood(fleet: Fleet, answer: tuple[bytes, bytes], total: int) -> Attack:
    """AT+QHTTPREADFILE of a response ``answer`` up to ``total`` bytes: its answer and the files
    left in modem 0's UFS (``seen["answer"]``, ``seen["space"]``)."""
    with HostileHttpServer(*answer, total=total) as server:
        def attack(fleet: Fleet, seen: dict) -> None:
            http_get(fleet, server.port)
            fleet.expect(0, b"+QHTTPGET: 0,200")
            fleet.expect(0, b"\r\n")
            started = time.monotonic()
            seen["answer"] = fleet.ask(0, 'AT+QHTTPREADFILE="big.bin",60', b"+QHTTPREADFILE: ", 60)
            seen["answer"] += fleet.expect(0, b"\r\n")
            seen["after"] = time.monotonic() - started
            seen["space"] = fleet.ask(0, 'AT+QFLDS="UFS"')

        return under_attack(fleet, attack)


def unread_tcp_sockets(fleet: Fleet, seconds: float = 3.0, sockets: int = 12) -> Attack:
    """``sockets`` TCP sockets in buffer mode whose servers flood and whose host reads nothing but
    AT+QIRD=<id>,0 (``seen["unread"]``: the most it showed; ``seen["counts"]``: each answer)."""
    with TcpFloodServer(32 << 20) as server:
        def setup(fleet: Fleet) -> None:
            for i in range(sockets):
                fleet.ask(0, f'AT+QIOPEN=1,{i},"TCP","127.0.0.1",{server.port},0,0', f"+QIOPEN: {i},0\r\n".encode())

        def attack(fleet: Fleet, seen: dict) -> None:
            counts = []
            ends = time.monotonic() + seconds
            while time.monotonic() < ends:
                for i in range(sockets):
                    found = re.search(rb"\+QIRD: (\d+),(\d+),(\d+)", fleet.ask(0, f"AT+QIRD={i},0"))
                    assert found is not None
                    counts.append(tuple(int(n) for n in found.groups()))
            seen["counts"] = counts
            seen["unread"] = max(unread for _, _, unread in counts)
            seen["sent"] = sum(server.sent)

        return under_attack(fleet, attack, setup)


def udp_flood_unread(fleet: Fleet, count: int, size: int = 1000) -> Attack:
    """``count`` datagrams to a "UDP SERVICE" in direct push mode whose host's output is full
    (``block_output``); then the host reads (``seen["pushed"]``: what came besides the file)."""
    def setup(fleet: Fleet) -> None:
        fleet.ask(0, 'AT+QIOPEN=1,0,"UDP SERVICE","127.0.0.1",0,5555,1', b"+QIOPEN: 0,0\r\n")

    def attack(fleet: Fleet, seen: dict) -> None:
        port = int(re.findall(r"UDP SERVICE on the module's port 5555: 127\.0\.0\.1:(\d+)", fleet.log_text())[-1])
        block_output(fleet)
        seen["sent"] = udp_flood(port, count, size)
        seen["pushed"] = len(unblock_output(fleet))

    return under_attack(fleet, attack, setup)


def incoming_full_flood(fleet: Fleet, count: int) -> Attack:
    """Every connectID taken (a listener and 11 connections), the host's output full
    (``block_output``), ``count`` more connections; then the host reads (``seen["urcs"]``: the
    "incoming full" URCs it got; ``seen["made"]``: the connections made)."""
    def setup(fleet: Fleet) -> None:
        fleet.ask(0, 'AT+QIOPEN=1,0,"TCP LISTENER","127.0.0.1",0,7777,0', b"+QIOPEN: 0,0\r\n")

    def attack(fleet: Fleet, seen: dict) -> None:
        port = int(re.findall(r"TCP LISTENER on the module's port 7777: 127\.0\.0\.1:(\d+)", fleet.log_text())[-1])
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(11)]
        try:
            fleet.expect(0, b'+QIURC: "incoming",11,0,')
            fleet.expect(0, b"\r\n")
            block_output(fleet)
            seen["made"] = connection_flood(port, count, within=40)
            seen["urcs"] = unblock_output(fleet).count(b'+QIURC: "incoming full"')
        finally:
            for sock in held:
                sock.close()

    return under_attack(fleet, attack, setup)


if __name__ == "__main__":
    if sys.argv[1:2] == ["ping"]:
        _ping(sys.argv[2])
