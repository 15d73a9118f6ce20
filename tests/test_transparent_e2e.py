"""Transparent transmission mode end to end: the real pty, real TLS on 127.0.0.1 (SSL note 1.4, 3.5).

The guard time is shortened with ``escape_guard_ms`` (``--escape-guard-ms``) so the tests are quick;
the rules are the same as with the default second.
"""

from __future__ import annotations

import queue
import random
import re
import threading
import time

import pytest

from tests.host import AtHost
from tests.tls_servers import TlsServer, digest, echo, send_then_close
from tests.wire import CONNECT, OK

GUARD = 0.3


@pytest.fixture
def modem(start_modem):
    """Online, with a short guard time around +++ (GUARD) and 30 s waits."""
    return start_modem(escape_guard_ms=int(GUARD * 1000), timeout=30, echo=False, active=True)


def go_online(host: AtHost, port: int, client: int = 4) -> None:
    assert host.ask(f'AT+QSSLOPEN=1,1,{client},"127.0.0.1",{port},2', final=b"CONNECT\r\n") == CONNECT


def escape(host: AtHost) -> bytes:
    host.idle(GUARD * 1.5)
    host.write(b"+++")
    return host.expect(OK, timeout=5)


def test_ten_megabytes_each_way_arrive_intact(modem):
    _, host = modem
    size = 10 * 1024 * 1024
    payload = random.Random(1).randbytes(size).replace(b"+", b"-")
    with TlsServer(behaviour=echo) as server:
        go_online(host, server.port)
        writer = threading.Thread(target=lambda: [host.write(payload[i:i + 65536]) for i in range(0, size, 65536)])
        started = time.monotonic()
        writer.start()
        received = host.read_exactly(size, timeout=120)
        writer.join(30)
        elapsed = time.monotonic() - started
        assert digest(received) == digest(payload)
        assert digest(bytes(server.connection(0).received)) == digest(payload)
        print(f"10 MiB each way through transparent mode in {elapsed:.2f} s")
        assert escape(host) == OK


def test_escape_rules_on_the_real_port(modem):
    _, host = modem
    with TlsServer(behaviour=echo) as server:
        go_online(host, server.port)
        host.write(b"a+++b")  # inside the stream: data
        assert host.read_exactly(5) == b"a+++b"
        host.idle(GUARD * 1.5)
        host.write(b"+++")
        time.sleep(GUARD * 0.3)  # the host's own pacing: the byte after +++ comes too soon
        host.write(b"x")
        assert host.read_exactly(4) == b"+++x"  # data, echoed: no escape
        assert escape(host) == OK
        assert host.ask("AT+QSSLSTATE=4").endswith(b',2,1,4,0,"usbmodem",1\r\n' + OK)
        assert server.connection(0).received == b"a+++b+++x"


def test_ato_returns_and_the_waiting_data_comes_first(modem):
    _, host = modem
    gate = threading.Event()

    def talk(server, tls, seen):
        while server.recv_some(tls, seen) is None and not server.stopping.is_set():
            pass  # anything from the host starts it (it comes after transwaittm)
        tls.sendall(b"first,")
        gate.wait(10)
        tls.sendall(b"second")
        echo(server, tls, seen)

    with TlsServer(behaviour=talk) as server:
        go_online(host, server.port)
        host.write(b"go")
        assert host.read_exactly(6) == b"first,"
        assert escape(host) == OK
        gate.set()
        assert host.expect(b'\r\n+QSSLURC: "recv",4\r\n') == b'\r\n+QSSLURC: "recv",4\r\n'
        assert host.ask("ATO", final=b"CONNECT\r\n") == CONNECT
        assert host.read_exactly(6) == b"second"
        host.write(b"more")
        assert host.read_exactly(4) == b"more"


def test_the_host_bytes_reach_the_server_in_records_of_transpktsize(modem):
    """AT+QICFG="transpktsize" and "transwaittm" (TCP/IP note 2.1.15) for an SSL connection: each
    packet is one TLS record, which the server reads one at a time; the bytes collected when +++
    comes go as the port leaves; a short write waits transwaittm."""
    _, host = modem
    records: list[int] = []

    def echo_records(server, tls, seen):
        while not server.stopping.is_set():
            data = server.recv_some(tls, seen)  # one record at most (SSL_read)
            if data == b"":
                return
            if data:
                records.append(len(data))
                tls.sendall(data)

    with TlsServer(behaviour=echo_records) as server:
        assert host.ask('AT+QICFG="transpktsize",1000') == OK
        assert host.ask('AT+QICFG="transwaittm",20') == OK
        go_online(host, server.port)
        payload = random.Random(7).randbytes(2000).replace(b"+", b"-")
        host.write(payload)
        assert host.read_exactly(2000) == payload  # two whole packets: no wait
        host.write(b"tail!")
        assert escape(host) == OK  # long before the 2 s are over
        assert host.expect(b'\r\n+QSSLURC: "recv",4\r\n') == b'\r\n+QSSLURC: "recv",4\r\n'
        assert records == [1000, 1000, 5]
        assert host.ask('AT+QICFG="transwaittm",1') == OK
        assert host.ask("ATO", final=b"CONNECT\r\n") == CONNECT
        assert host.read_exactly(5) == b"tail!"  # the echo that waited in the buffer comes first
        written = time.monotonic()
        host.write(b"ping")
        assert host.read_exactly(4) == b"ping"
        assert time.monotonic() - written >= 0.1  # held for transwaittm: it cannot come sooner
        assert records == [1000, 1000, 5, 4]


def test_server_closing_gives_no_carrier_and_command_mode(modem):
    _, host = modem
    with TlsServer(behaviour=send_then_close(b"goodbye")) as server:
        go_online(host, server.port)
        assert host.expect(b"\r\nNO CARRIER\r\n") == b"goodbye\r\nNO CARRIER\r\n"
        assert host.ask("AT+QSSLSTATE=4").endswith(b',4,1,4,2,"usbmodem",1\r\n' + OK)
        assert host.ask("ATO") == b"\r\nNO CARRIER\r\n"
        assert host.ask("AT+QSSLCLOSE=4") == OK


def test_dtr_drop_through_the_control_interface(modem):
    running, host = modem
    with TlsServer(behaviour=echo) as server:
        assert host.ask("AT&D1") == OK
        go_online(host, server.port)
        running.control.dtr(active=False)
        assert host.expect(OK) == OK
        running.control.dtr(active=True)
        assert host.ask("ATO", final=b"CONNECT\r\n") == CONNECT
        assert escape(host) == OK
        assert host.ask("AT&D2") == OK
        assert host.ask("ATO", final=b"CONNECT\r\n") == CONNECT
        running.control.dtr(active=False)
        assert host.expect(b"\r\nNO CARRIER\r\n") == b"\r\nNO CARRIER\r\n"
        running.control.dtr(active=True)
        assert host.ask("AT+QSSLSTATE") == OK  # &D2: the connection went with the DTR drop


def test_a_stream_survives_switches_with_data_in_flight(modem):
    """buffer -> transparent -> buffer -> direct push -> transparent, each switch made while the
    server is in the middle of sending: every byte arrives once, in order."""
    _, host = modem
    chunk, paced = 2000, 0.005
    stream = random.Random(5).randbytes(chunk * 140)
    orders: queue.Queue[int] = queue.Queue()

    def on_order(server, tls, seen):
        offset = 0
        while offset < len(stream) and not server.stopping.is_set():
            try:
                count = orders.get(timeout=0.2)
            except queue.Empty:
                continue
            for _ in range(count):
                tls.sendall(stream[offset:offset + chunk])
                offset += chunk
                server.stopping.wait(paced)  # spread over the switch that follows the order
        echo(server, tls, seen)

    def sent(chunks: int) -> int:
        return chunks * chunk

    with TlsServer(behaviour=on_order) as server:
        assert host.ask(f'AT+QSSLOPEN=1,1,4,"127.0.0.1",{server.port},0') == OK
        host.expect(b"+QSSLOPEN: 4,0\r\n")
        orders.put(20)
        got = bytearray(read_buffered(host, sent(20)))
        orders.put(30)
        assert host.ask("AT+QISWTMD=4,2", final=b"CONNECT\r\n").endswith(CONNECT)
        got += host.read_exactly(sent(50) - len(got))
        orders.put(30)
        got += settle_escape(host)
        got += read_buffered(host, sent(80) - len(got))
        orders.put(30)
        assert host.ask("AT+QISWTMD=4,1").endswith(OK)
        got += read_pushes(host, sent(110) - len(got))
        orders.put(30)
        got += parse_pushes(host.ask("AT+QISWTMD=4,2", final=b"CONNECT\r\n"))
        got += host.read_exactly(sent(140) - len(got), timeout=60)
        assert digest(bytes(got)) == digest(stream)


PUSH = re.compile(rb'\r\n\+QSSLURC: "recv",4,(\d+)\r\n')
RECV = re.compile(rb"\r\n\+QSSLRECV: (\d+)\r\n")


def read_buffered(host: AtHost, wanted: int) -> bytes:
    """AT+QSSLRECV until ``wanted`` bytes have come; an empty buffer waits for the next "recv"."""
    data = bytearray()
    while len(data) < wanted:
        answer = host.ask("AT+QSSLRECV=4,1500")
        match = RECV.search(answer)
        count = int(match.group(1))
        if count == 0:
            host.expect(b'\r\n+QSSLURC: "recv",4\r\n')  # after an empty read, the next arrival says so
        data += answer[match.end():match.end() + count]
    return bytes(data)


def settle_escape(host: AtHost) -> bytes:
    """+++ while data is still arriving: everything before the OK is the stream's."""
    data = host.idle(GUARD * 1.5)
    host.write(b"+++")
    data += host.expect(OK, timeout=5)
    return data[: -len(OK)]


def read_pushes(host: AtHost, at_least: int) -> bytes:
    """Direct-push URCs, read exactly (no byte past the last URC), until ``at_least`` bytes."""
    data = bytearray()
    while len(data) < at_least:
        host.expect(b'+QSSLURC: "recv",4,')  # after a push, the next one of its block has no CR LF of its own
        count = int(host.expect(b"\r\n")[:-2])
        data += host.read_exactly(count)
        assert host.read_exactly(2) == b"\r\n"
    return bytes(data)


def parse_pushes(answer: bytes) -> bytes:
    """The data of the complete direct-push URCs in ``answer``."""
    data = bytearray()
    for match in PUSH.finditer(answer):
        data += answer[match.end():match.end() + int(match.group(1))]
    return bytes(data)
