"""The SSL note's chapter 3 examples, verbatim through the real pty against a TLS server on
127.0.0.1, and the whole-product checks: twelve clients at once, a large random transfer.

The examples' server address becomes 127.0.0.1 and their ports the local server's; everything else
is the note's text, with echo on as the module starts.
"""

from __future__ import annotations

import random
import re
import time


from tests.host import AtHost
from tests.tls_servers import IO_TIMEOUT, TlsServer, digest, echo
from tests.wire import OK

RECV = re.compile(rb"\+QSSLRECV: (\d+)\r\n")


def respond_once(answer: bytes, after: int):
    """The examples' server: once ``after`` bytes have come, it answers ``answer``."""
    def behaviour(server, tls, seen):
        sent = False
        while not server.stopping.is_set():
            if server.recv_some(tls, seen) == b"":
                return
            if not sent and len(seen.received) >= after:
                tls.sendall(answer)
                sent = True
    return behaviour




def prepare(host: AtHost, server: TlsServer, echo_on: bool = True) -> None:
    """Spec 3.1 and 3.2 verbatim (with the CA uploaded first, as chapter 4 asks)."""
    assert host.ask('AT+QICSGP=1,1,"UNINET","","","",1') == b'AT+QICSGP=1,1,"UNINET","","","",1\r' + OK
    assert host.ask("AT+QIACT=1") == b"AT+QIACT=1\r" + OK
    assert host.ask("AT+QIACT?") == b'AT+QIACT?\r\r\n+QIACT: 1,1,1,"10.7.157.1"\r\n' + OK
    assert host.upload("cacert.pem", server.pki["ca.pem"]).endswith(OK)
    for line in ('AT+QSSLCFG="sslversion",1,1', 'AT+QSSLCFG="ciphersuite",1,0X0035',
                 'AT+QSSLCFG="secllevel",1,1', 'AT+QSSLCFG="cacert",1,"UFS:cacert.pem"'):
        assert host.ask(line) == line.encode() + b"\r" + OK
    if not echo_on:
        assert host.ask("ATE0") == b"ATE0\r" + OK


def test_spec_3_3_buffer_access_mode(modem):
    _, host = modem
    with TlsServer(behaviour=respond_once(b"Test data from SSL", after=36)) as server:
        prepare(host, server)
        open_line = f'AT+QSSLOPEN=1,1,4,"127.0.0.1",{server.port},0'
        assert host.ask(open_line) == open_line.encode() + b"\r" + OK
        assert host.expect(b"\r\n+QSSLOPEN: 4,0\r\n") == b"\r\n+QSSLOPEN: 4,0\r\n"
        state = host.ask("AT+QSSLSTATE")
        local_port = int(state.split(b",")[4])
        assert state == (b'AT+QSSLSTATE\r\r\n+QSSLSTATE: 4,"SSLClient","127.0.0.1",'
                         + f'{server.port},{local_port},2,1,4,0,"usbmodem",1'.encode() + b"\r\n" + OK)
        assert host.ask("AT+QSSLSEND=4", final=b"> ") == b"AT+QSSLSEND=4\r\r\n> "
        host.write(b"Test data from SSL\x1a")
        assert host.until_final() == b"Test data from SSL\x1a\r\nSEND OK\r\n"
        assert host.ask("AT+QSSLSEND=4,18", final=b"> ") == b"AT+QSSLSEND=4,18\r\r\n> "
        host.write(b"Test data from SSL")
        assert host.until_final() == b"Test data from SSL\r\nSEND OK\r\n"
        assert host.expect(b'\r\n+QSSLURC: "recv",4\r\n') == b'\r\n+QSSLURC: "recv",4\r\n'
        assert host.ask("AT+QSSLRECV=4,1500") == (
            b"AT+QSSLRECV=4,1500\r\r\n+QSSLRECV: 18\r\nTest data from SSL\r\n" + OK)
        assert host.ask("AT+QSSLRECV=4,1500") == b"AT+QSSLRECV=4,1500\r\r\n+QSSLRECV: 0\r\n" + OK
        assert host.ask("AT+QSSLCLOSE=4") == b"AT+QSSLCLOSE=4\r" + OK
        seen = server.connection(0)
        assert seen.version == "TLSv1" and seen.cipher == "AES256-SHA"
        assert seen.received == b"Test data from SSL" * 2
        assert seen.done.wait(10) and seen.closed_by_client


def test_spec_3_4_direct_push_mode(modem):
    _, host = modem
    with TlsServer(behaviour=respond_once(b"Test data from SSL", after=36)) as server:
        prepare(host, server)
        open_line = f'AT+QSSLOPEN=1,1,4,"127.0.0.1",{server.port},1'
        assert host.ask(open_line) == open_line.encode() + b"\r" + OK
        assert host.expect(b"\r\n+QSSLOPEN: 4,0\r\n") == b"\r\n+QSSLOPEN: 4,0\r\n"
        state = host.ask("AT+QSSLSTATE")
        assert state.endswith(',2,1,4,1,"usbmodem",1\r\n'.encode() + OK)
        host.ask("AT+QSSLSEND=4", final=b"> ")
        host.write(b"Test data from SSL\x1a")
        assert host.until_final() == b"Test data from SSL\x1a\r\nSEND OK\r\n"
        host.ask("AT+QSSLSEND=4,18", final=b"> ")
        host.write(b"Test data from SSL")
        assert host.until_final() == b"Test data from SSL\r\nSEND OK\r\n"
        assert host.expect(b'\r\n+QSSLURC: "recv",4,18\r\nTest data from SSL\r\n') == (
            b'\r\n+QSSLURC: "recv",4,18\r\nTest data from SSL\r\n')
        assert host.ask("AT+QSSLCLOSE=4") == b"AT+QSSLCLOSE=4\r" + OK


def test_spec_3_5_transparent_mode_send_receive_escape_and_close(modem):
    _, host = modem
    with TlsServer(behaviour=echo) as server:
        prepare(host, server)
        open_line = f'AT+QSSLOPEN=1,1,4,"127.0.0.1",{server.port},2'
        assert host.ask(open_line, final=b"CONNECT\r\n") == open_line.encode() + b"\r\r\nCONNECT\r\n"
        host.write(b"sent in transparent mode")
        assert host.read_exactly(24) == b"sent in transparent mode"  # the echo, unframed
        assert host.idle(1.1) == b""  # the guard time before +++
        host.write(b"+++")
        assert host.expect(OK, timeout=5) == OK
        assert host.ask("AT+QSSLCLOSE=4") == b"AT+QSSLCLOSE=4\r" + OK
        assert server.connection(0).received == b"sent in transparent mode"


def test_twelve_clients_at_once(modem):
    _, host = modem
    with TlsServer(behaviour=echo) as server:
        prepare(host, server, echo_on=False)
        transcript = b""
        for client in range(12):
            ctx = client % 6
            transcript += host.ask(f'AT+QSSLCFG="secllevel",{ctx},1')
            transcript += host.ask(f'AT+QSSLOPEN=1,{ctx},{client},"127.0.0.1",{server.port},0')
        for client in range(12):
            if f"+QSSLOPEN: {client},0\r\n".encode() not in transcript:
                transcript += host.expect(f"+QSSLOPEN: {client},0\r\n".encode(), timeout=30)
        assert transcript.count(b"+QSSLOPEN:") == 12
        for client in range(12):
            host.ask(f"AT+QSSLSEND={client},9", final=b"> ")
            host.write(f"client {client:02d}".encode())
            assert host.until_final() == b"\r\nSEND OK\r\n"
        for client in range(12):
            received = b""
            while len(received) < 9:
                received += recv_data(host.ask(f"AT+QSSLRECV={client},1500"))
            assert received == f"client {client:02d}".encode()
        assert host.ask("AT+QSSLSTATE").count(b"+QSSLSTATE:") == 12
        for client in range(12):
            assert host.ask(f"AT+QSSLCLOSE={client}").endswith(OK)
        assert len(server.seen) == 12
        assert sorted(bytes(seen.received) for seen in server.seen) == [
            f"client {client:02d}".encode() for client in range(12)]


def test_a_large_random_transfer_in_buffer_mode_arrives_intact(modem):
    _, host = modem
    payload = random.Random(7).randbytes(300_000)
    with TlsServer(behaviour=echo) as server:
        prepare(host, server, echo_on=False)
        host.ask(f'AT+QSSLOPEN=1,1,0,"127.0.0.1",{server.port},0')
        host.expect(b"+QSSLOPEN: 0,0\r\n")
        received = bytearray()
        for offset in range(0, len(payload), 1460):
            chunk = payload[offset:offset + 1460]
            host.ask(f"AT+QSSLSEND=0,{len(chunk)}", final=b"> ")
            host.write(chunk)
            answer = host.until_final()
            assert answer.endswith(b"\r\nSEND OK\r\n"), answer
            received += _read_all(host)
        while len(received) < len(payload):
            received += _read_all(host)
        assert digest(bytes(received)) == digest(payload)
        assert digest(bytes(server.connection(0).received)) == digest(payload)


def recv_data(answer: bytes) -> bytes:
    """The data of an AT+QSSLRECV answer (URCs before it skipped)."""
    match = RECV.search(answer)
    assert match, answer
    count = int(match.group(1))
    end = match.end() + count
    assert answer[end:] == (b"\r\n" + OK if count else OK), answer
    return answer[match.end():end]


def _read_all(host: AtHost) -> bytes:
    """AT+QSSLRECV until it reads 0."""
    data = bytearray()
    while chunk := recv_data(host.ask("AT+QSSLRECV=0,1500")):
        data += chunk
    return bytes(data)


def test_a_server_faster_than_the_host_is_held_back_and_nothing_is_lost(modem):
    """The server sends 640 KiB at once (ten times the module's buffer); the host reads slowly. The module's buffer fills up to its
    limit, it stops reading from the server (TCP flow control holds the rest on the way), and
    every byte arrives, in order."""
    running, host = modem
    payload = random.Random(11).randbytes(640 * 1024)
    limit = running.profile.limits.recv_buffer
    # What one socket read can add after the pause was asked for (asyncio reads up to 256 KiB).
    slack = 256 * 1024

    def flood(server, tls, seen):
        tls.settimeout(60)  # the send blocks while the module holds the server back
        tls.sendall(payload)
        tls.settimeout(IO_TIMEOUT)
        echo(server, tls, seen)

    def client_buffer() -> tuple[bool, int]:
        return running.call(lambda r: (r.modem.families["ssl"].clients[0].connection.gate.paused,
                                       len(r.modem.families["ssl"].clients[0].received)))

    with TlsServer(behaviour=flood) as server:
        prepare(host, server, echo_on=False)
        host.ask(f'AT+QSSLOPEN=1,1,0,"127.0.0.1",{server.port},0')
        host.expect(b"+QSSLOPEN: 0,0\r\n")
        host.expect(b'+QSSLURC: "recv",0\r\n')
        deadline = time.monotonic() + 10
        while not client_buffer()[0]:
            assert time.monotonic() < deadline, "the module never stopped reading from the server"
        received, largest, reads = bytearray(), 0, 0
        while len(received) < len(payload):
            received += recv_data(host.ask("AT+QSSLRECV=0,1500"))
            reads += 1
            if reads % 20 == 0:
                largest = max(largest, client_buffer()[1])
        assert largest <= limit + slack
        assert digest(bytes(received)) == digest(payload)
