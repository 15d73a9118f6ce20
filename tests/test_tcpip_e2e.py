"""The TCP/IP commands end to end: the real pty, real TCP and UDP servers on 127.0.0.1, the TCP/IP
note's examples (chapter 3) with the addresses and counts of the servers the test starts."""

from __future__ import annotations

import hashlib
import random
import re
import socket
import threading
import time

import pytest

from tests.host import AtHost
from tests.plain_servers import TcpEchoServer, UdpEchoServer
from tests.wire import CONNECT, ERROR, OK, PROMPT, SEND_OK

GUARD = 0.3


@pytest.fixture
def modem(start_modem):
    """Online, with a short guard time around +++ (GUARD) and 20 s waits."""
    return start_modem(escape_guard_ms=int(GUARD * 1000), timeout=20, echo=False, active=True)


def open_tcp(host: AtHost, port: int, connect_id: int = 0, mode: int = 0) -> None:
    assert host.ask(f'AT+QIOPEN=1,{connect_id},"TCP","127.0.0.1",{port},0,{mode}') == OK
    assert host.expect(f"+QIOPEN: {connect_id},0\r\n".encode()) == f"\r\n+QIOPEN: {connect_id},0\r\n".encode()


def test_buffer_access_mode_example(modem):
    """TCP/IP note 3.2 / 3.3: open, state, send (Ctrl+Z, fixed, hex), the send query, recv URC,
    read, the read query, close."""
    _, host = modem
    with TcpEchoServer() as server:
        open_tcp(host, server.port)
        state = host.ask("AT+QISTATE=1,0")
        assert state.startswith(f'\r\n+QISTATE: 0,"TCP","127.0.0.1",{server.port},'.encode())
        assert state.endswith(b',2,1,0,0,"usbmodem"\r\n' + OK)
        host.write(b"AT+QISEND=0\r")
        assert host.expect(b"> ") == PROMPT
        host.write(b"test1\x1a")
        assert host.until_final() == SEND_OK
        assert host.expect(b'+QIURC: "recv",0\r\n') == b'\r\n+QIURC: "recv",0\r\n'
        assert host.ask("AT+QISEND=0,4", final=b"> ") == PROMPT
        host.write(b"test")
        assert host.until_final() == SEND_OK
        server.wait_received(0, 9)
        assert host.ask("AT+QISEND=0,0") == b"\r\n+QISEND: 9,9,0\r\n" + OK
        assert host.ask('AT+QISENDEX=0,"3132333435"') == SEND_OK
        assert server.wait_received(0, 14) == b"test1test12345"
        assert host.ask("AT+QISEND=0,0") == b"\r\n+QISEND: 14,14,0\r\n" + OK
        read = b""
        while len(read) < 14:  # the echo may come in more than one piece
            answer = host.ask("AT+QIRD=0,1500")
            size = int(answer.split(b"\r\n")[1].split(b": ")[1])
            read += answer[len(f"\r\n+QIRD: {size}\r\n"):][:size]
            assert answer.endswith(OK)
        assert read == b"test1test12345"
        assert host.ask("AT+QIRD=0,1500") == b"\r\n+QIRD: 0\r\n" + OK
        assert host.ask("AT+QIRD=0,0") == b"\r\n+QIRD: 14,14,0\r\n" + OK
        assert host.ask("AT+QICLOSE=0") == OK
        assert host.ask("AT+QISTATE?") == OK


def test_direct_push_mode_example(modem):
    """TCP/IP note 3.2.2: received data comes as +QIURC: "recv",<id>,<len> and the data."""
    _, host = modem
    with TcpEchoServer() as server:
        open_tcp(host, server.port, connect_id=3, mode=1)
        assert host.ask("AT+QISEND=3,5", final=b"> ") == PROMPT
        host.write(b"hello")
        assert host.until_final() == SEND_OK
        assert host.expect(b"hello\r\n") == b'\r\n+QIURC: "recv",3,5\r\nhello\r\n'
        assert host.ask("AT+QIRD=3") == ERROR  # nothing waits to be read in direct push mode
        assert host.ask("AT+QIGETERROR") == b"\r\n+QIGETERROR: 572,operation not allowed\r\n" + OK
        assert host.ask("AT+QICLOSE=3") == OK


def test_transparent_mode_escape_and_back(modem):
    """TCP/IP note 3.2.3: CONNECT, data both ways, +++, AT+QISWTMD back in, ATO."""
    _, host = modem
    with TcpEchoServer() as server:
        assert host.ask(f'AT+QIOPEN=1,1,"TCP","127.0.0.1",{server.port},0,2', final=b"CONNECT\r\n") == CONNECT
        payload = random.Random(3).randbytes(200_000).replace(b"+", b"-")
        writer = threading.Thread(target=host.write, args=(payload,))
        writer.start()
        assert host.read_exactly(len(payload), timeout=30) == payload
        writer.join(10)
        host.idle(GUARD * 1.5)
        host.write(b"+++")
        assert host.expect(OK, timeout=5) == OK
        assert host.ask("AT+QISTATE=1,1").endswith(b',2,1,1,0,"usbmodem"\r\n' + OK)  # buffer access now
        assert host.ask("AT+QISWTMD=1,2") == CONNECT
        host.write(b"again")
        assert host.read_exactly(5) == b"again"
        host.idle(GUARD * 1.5)
        host.write(b"+++")
        assert host.expect(OK, timeout=5) == OK
        assert host.ask("ATO") == CONNECT
        server.connection(0).close()
        assert host.expect(b"NO CARRIER\r\n") == b"\r\nNO CARRIER\r\n"
        assert host.ask("AT+QICLOSE=1") == OK


def test_transparent_mode_packs_as_qicfg_says(modem):
    """AT+QICFG="transpktsize" and "transwaittm" (TCP/IP note 2.1.15): 1500 bytes written at once
    reach the server as a packet of 1000, whose echo comes back while the other 500 wait (2 s);
    +++ sends them as the port leaves. With transwaittm 1 a short write waits 100 ms."""
    _, host = modem
    with TcpEchoServer() as server:
        assert host.ask('AT+QICFG="transpktsize",1000') == OK
        assert host.ask('AT+QICFG="transwaittm",20') == OK
        assert host.ask(f'AT+QIOPEN=1,1,"TCP","127.0.0.1",{server.port},0,2', final=b"CONNECT\r\n") == CONNECT
        payload = random.Random(4).randbytes(1500).replace(b"+", b"-")
        host.write(payload)
        assert host.read_exactly(1000) == payload[:1000]
        host.idle(GUARD * 1.5)
        host.write(b"+++")
        assert host.expect(OK, timeout=5) == OK
        assert host.expect(b'+QIURC: "recv",1\r\n') == b'\r\n+QIURC: "recv",1\r\n'  # the 500, echoed
        reads = server.reads[0]
        # The server read the first packet's bytes before the rest was sent: its reads add up to
        # exactly 1000 at some point, whatever way TCP split them.
        assert 1000 in [sum(reads[:n]) for n in range(1, len(reads) + 1)], reads
        assert bytes(server.received[0]) == payload
        assert host.ask('AT+QICFG="transwaittm",1') == OK
        assert host.ask("ATO") == CONNECT
        assert host.read_exactly(500) == payload[1000:]  # the echo that waited comes first
        written = time.monotonic()
        host.write(b"ping")
        assert host.read_exactly(4) == b"ping"
        assert time.monotonic() - written >= 0.1  # held for transwaittm: it cannot come sooner
        host.idle(GUARD * 1.5)
        host.write(b"+++")
        assert host.expect(OK, timeout=5) == OK
        assert host.ask("AT+QICLOSE=1") == OK


def test_server_closing_gives_the_closed_urc(modem):
    _, host = modem
    with TcpEchoServer(greeting=b"bye", echo=False) as server:
        open_tcp(host, server.port, connect_id=2)
        assert host.expect(b'+QIURC: "recv",2\r\n') == b'\r\n+QIURC: "recv",2\r\n'
        server.connection(0).close()
        assert host.expect(b'+QIURC: "closed",2\r\n') == b'\r\n+QIURC: "closed",2\r\n'
        assert host.ask("AT+QIRD=2") == b"\r\n+QIRD: 3\r\nbye\r\n" + OK  # what came before the close
        assert host.ask("AT+QIRD=2") == b"\r\n+QIRD: 0\r\n" + OK
        assert host.ask("AT+QISTATE=1,2").endswith(b',4,1,2,0,"usbmodem"\r\n' + OK)
        assert host.ask("AT+QICLOSE=2") == OK


def test_refused_connection_reports_566(modem):
    _, host = modem
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()
    assert host.ask(f'AT+QIOPEN=1,0,"TCP","127.0.0.1",{port},0,0') == OK
    assert host.expect(b"+QIOPEN: 0,566\r\n") == b"\r\n+QIOPEN: 0,566\r\n"


def test_udp_client_example(modem):
    """TCP/IP note 3.4 (UDP client): each AT+QISEND is one datagram; each reply is read alone."""
    _, host = modem
    with UdpEchoServer() as server:
        assert host.ask(f'AT+QIOPEN=1,2,"UDP","127.0.0.1",{server.port},0,0') == OK
        assert host.expect(b"+QIOPEN: 2,0\r\n") == b"\r\n+QIOPEN: 2,0\r\n"
        said = b""
        for word in (b"one", b"three"):
            said += host.ask(f"AT+QISEND=2,{len(word)}", final=b"> ")
            assert said.endswith(PROMPT)
            host.write(word)
            said += host.until_final()
            assert said.endswith(SEND_OK)
        deadline = time.monotonic() + 10
        while (answer := host.ask("AT+QIRD=2,0")) != b"\r\n+QIRD: 8,0,8\r\n" + OK:  # both echoes are in
            said += answer
            assert time.monotonic() < deadline, answer
        assert said.count(b'\r\n+QIURC: "recv",2\r\n') == 1  # one until the buffer has been read
        assert host.ask("AT+QIRD=2") == b"\r\n+QIRD: 3\r\none\r\n" + OK
        assert host.ask("AT+QIRD=2") == b"\r\n+QIRD: 5\r\nthree\r\n" + OK
        assert [d for d, _ in server.datagrams] == [b"one", b"three"]
        assert host.ask("AT+QICLOSE=2") == OK


def test_udp_service_sends_to_and_reads_from_named_peers(modem):
    """TCP/IP note 3.5 (UDP service): AT+QISEND=<id>,<len>,"<ip>",<port>, and AT+QIRD's sender."""
    _, host = modem
    assert host.ask('AT+QIOPEN=1,4,"UDP SERVICE","127.0.0.1",0,0,0') == OK
    assert host.expect(b"+QIOPEN: 4,0\r\n") == b"\r\n+QIOPEN: 4,0\r\n"
    service_port = modem[0].control.listening()["tcpip"]["4"]
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(10)
    try:
        peer.sendto(b"ping", ("127.0.0.1", service_port))
        assert host.expect(b'+QIURC: "recv",4\r\n') == b'\r\n+QIURC: "recv",4\r\n'
        peer_port = peer.getsockname()[1]
        assert host.ask("AT+QIRD=4") == f'\r\n+QIRD: 4,"127.0.0.1",{peer_port}\r\nping\r\n'.encode() + OK
        assert host.ask(f'AT+QISEND=4,4,"127.0.0.1",{peer_port}', final=b"> ") == PROMPT
        host.write(b"pong")
        assert host.until_final() == SEND_OK
        assert peer.recvfrom(100) == (b"pong", ("127.0.0.1", service_port))
        assert host.ask("AT+QISEND=4,4") == ERROR  # a service's send names its peer
    finally:
        peer.close()
    assert host.ask("AT+QICLOSE=4") == OK


def test_listener_reports_incoming_and_serves_it(modem):
    """TCP/IP note 3.6 (TCP server): "incoming" with the connectID it took, then data both ways."""
    running, host = modem
    assert host.ask('AT+QIOPEN=1,1,"TCP LISTENER","127.0.0.1",0,2020,0') == OK
    assert host.expect(b"+QIOPEN: 1,0\r\n") == b"\r\n+QIOPEN: 1,0\r\n"
    listen_port = running.control.listening()["tcpip"]["1"]
    assert host.ask("AT+QISTATE=1,1") == b'\r\n+QISTATE: 1,"TCP LISTENER","127.0.0.1",0,2020,3,1,1,0,"usbmodem"\r\n' + OK
    with socket.create_connection(("127.0.0.1", listen_port), timeout=10) as client:
        client_port = client.getsockname()[1]
        urc = f'+QIURC: "incoming",0,1,"127.0.0.1",{client_port}\r\n'.encode()
        assert host.expect(urc) == b"\r\n" + urc
        client.sendall(b"from the host")
        assert host.expect(b'+QIURC: "recv",0\r\n') == b'\r\n+QIURC: "recv",0\r\n'
        assert host.ask("AT+QIRD=0") == b"\r\n+QIRD: 13\r\nfrom the host\r\n" + OK
        assert host.ask("AT+QISTATE=1,0") == (
            f'\r\n+QISTATE: 0,"TCP INCOMING","127.0.0.1",{client_port},2020,2,1,1,0,"usbmodem"\r\n'.encode() + OK)
        assert host.ask("AT+QISEND=0,6", final=b"> ") == PROMPT
        host.write(b"answer")
        assert host.until_final() == SEND_OK
        assert client.recv(100) == b"answer"
        host.write(b"AT+QICLOSE=0\r")  # FIN; the OK waits for the host program's FIN
        assert client.recv(100) == b""
        client.close()
        assert host.until_final() == OK
    assert host.ask("AT+QICLOSE=1") == OK


def test_twelve_sockets_tcp_udp_and_ssl_at_once_keep_their_bytes(modem):
    """Every ID of the pool busy at once: TCP, UDP and (on the last IDs) SSL; each stream's bytes
    are checked by hash; an ID in use answers 563 to the other family."""
    _, host = modem
    from tests.tls_servers import TlsServer, echo

    with TcpEchoServer(echo=False) as tcp, UdpEchoServer() as udp, TlsServer(behaviour=echo) as tls:
        for connect_id in range(8):
            open_tcp(host, tcp.port, connect_id)
        for connect_id in (8, 9):
            assert host.ask(f'AT+QIOPEN=1,{connect_id},"UDP","127.0.0.1",{udp.port},0,0') == OK
            assert host.expect(f"+QIOPEN: {connect_id},0\r\n".encode())
        for client in (10, 11):
            assert host.ask(f'AT+QSSLOPEN=1,1,{client},"127.0.0.1",{tls.port},0') == OK
            assert host.expect(f"+QSSLOPEN: {client},0\r\n".encode())
        assert host.ask(f'AT+QSSLOPEN=1,1,3,"127.0.0.1",{tls.port},0') == ERROR
        assert host.ask("AT+QIGETERROR") == b"\r\n+QIGETERROR: 563,socket identity has been used\r\n" + OK
        assert host.ask(f'AT+QIOPEN=1,10,"TCP","127.0.0.1",{tcp.port},0,0') == ERROR
        payloads = {i: random.Random(i).randbytes(1000) for i in range(12)}
        for connect_id, payload in payloads.items():
            command = "AT+QSSLSEND" if connect_id >= 10 else "AT+QISEND"
            # The echoes' recv URCs come in between: what matters is the prompt, then SEND OK.
            assert host.ask(f"{command}={connect_id},{len(payload)}", final=b"> ").endswith(PROMPT)
            host.write(payload)
            assert host.until_final().endswith(SEND_OK)
        digests = {i: hashlib.sha256(p).hexdigest() for i, p in payloads.items()}
        for connect_id in range(8):
            index = connect_id  # connections were accepted in the order they were opened
            got = tcp.wait_received(index, 1000)
            assert hashlib.sha256(got).hexdigest() == digests[connect_id]
        deadline = time.monotonic() + 10
        while len(udp.datagrams) < 2 and time.monotonic() < deadline:  # SEND OK is not delivery
            time.sleep(0.01)
        assert sorted(hashlib.sha256(d).hexdigest() for d, _ in udp.datagrams) == sorted(
            digests[i] for i in (8, 9))
        for client in (10, 11):
            seen = tls.connection(client - 10)
            deadline = time.monotonic() + 10
            while len(seen.received) < 1000 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert hashlib.sha256(bytes(seen.received)).hexdigest() == digests[client]
        for connect_id in range(10):
            assert host.ask(f"AT+QICLOSE={connect_id},0").endswith(OK)
        for client in (10, 11):
            assert host.ask(f"AT+QSSLCLOSE={client},0").endswith(OK)
        assert host.ask("AT+QISTATE") == OK


@pytest.mark.parametrize("line_end", [b"\r", b"\r\n"])
def test_line_ends_before_the_prompt_and_the_data(modem, line_end):
    """A host ending its lines with CR or CR LF sends exactly its data after ``>``."""
    _, host = modem
    with TcpEchoServer(echo=False) as server:
        open_tcp(host, server.port, connect_id=5)
        host.write(b"AT+QISEND=5,4" + line_end)
        assert host.expect(b"> ") == PROMPT
        host.write(b"abcd")
        assert host.until_final() == SEND_OK
        host.write(b"AT+QISEND=5" + line_end)
        assert host.expect(b"> ") == PROMPT
        host.write(b"efg\x1a")
        assert host.until_final() == SEND_OK
        assert server.wait_received(0, 7) == b"abcdefg"
        assert host.ask("AT+QICLOSE=5") == OK


def test_qntp_queries_a_real_sntp_server_and_sets_the_clock(modem):
    """TCP/IP note 2.1.12: a real SNTP exchange with a server on 127.0.0.1."""
    from tests.plain_servers import SntpServer

    _, host = modem
    with SntpServer(utc=1767225600.0) as server:  # 2026-01-01 00:00:00 UTC
        assert host.ask('AT+CCLK="25/06/01,12:00:00+00"') == OK
        assert host.ask(f'AT+QNTP=1,"127.0.0.1",{server.port}') == OK
        assert host.expect(b'+QNTP: 0,"2026/01/01,00:00:00+00"\r\n') == b'\r\n+QNTP: 0,"2026/01/01,00:00:00+00"\r\n'
        assert host.ask("AT+CCLK?").startswith(b'\r\n+CCLK: "26/01/01,00:00:0')
        assert server.requests == 1


def test_qping_a_host_that_answers(modem):
    """TCP/IP note 2.1.11 against 127.0.0.1: its port 7 accepts or refuses, either way it answered."""
    _, host = modem
    assert host.ask('AT+QPING=1,"127.0.0.1",2,2') == OK
    said = host.expect(b"+QPING: 0,2,2,0,")
    assert said.count(b'+QPING: 0,"127.0.0.1",32,') == 2
    assert host.expect(b"\r\n")


def test_a_hologram_style_exchange_direct_push_and_hex_chunks(modem):
    """What hologram-python's Quectel driver does: AT+QIOPEN in direct push mode, the message as
    AT+QISENDEX chunks of 510 hex digits, the answer from the "recv" URC with its length."""
    _, host = modem
    message = bytes(range(256)) * 2  # 512 bytes: 255 + 255 + 2
    with TcpEchoServer() as server:
        open_tcp(host, server.port, connect_id=0, mode=1)
        hexed = message.hex()
        said = b""
        for start in range(0, len(hexed), 510):
            said += host.ask(f'AT+QISENDEX=0,"{hexed[start:start + 510]}"')
            assert said.endswith(b"\r\nSEND OK\r\n")
        assert server.wait_received(0, len(message)) == message
        pushed = bytearray()
        for match in re.finditer(rb'\+QIURC: "recv",0,(\d+)\r\n', said):  # those amid the answers
            pushed += said[match.end():match.end() + int(match.group(1))]
        while len(pushed) < len(message):  # the rest of the echo, each URC with its length and bytes
            host.expect(b'+QIURC: "recv",0,')
            size = int(host.expect(b"\r\n")[:-2])
            data = host.read_exactly(size + 2)
            assert data.endswith(b"\r\n")
            pushed += data[:size]
        assert bytes(pushed) == message
        assert host.ask("AT+QICLOSE=0,0") == OK


def test_hex_data_one_line_view_and_close_urc_against_a_real_server(modem):
    """AT+QICFG="dataformat",1,1, "viewmode",1 and "close/mode",1 on a real connection: every
    byte value goes out as two digits and comes back as two upper-case digits after a comma on
    the header's line; the close is confirmed by OK and the "closed" URC."""
    _, host = modem
    payload = bytes(range(256))
    with TcpEchoServer(echo=False) as server:
        for setting in ('"dataformat",1,1', '"viewmode",1', '"close/mode",1'):
            assert host.ask(f"AT+QICFG={setting}") == OK
        open_tcp(host, server.port)
        assert host.ask("AT+QISEND=0,256", final=b"> ") == PROMPT
        host.write(payload.hex().encode())
        assert host.until_final() == SEND_OK
        assert server.wait_received(0, len(payload)) == payload
        server.connection(0).sendall(payload)
        assert host.expect(b'+QIURC: "recv",0\r\n') == b'\r\n+QIURC: "recv",0\r\n'
        everything = b"\r\n+QIRD: 256,0,256\r\n" + OK
        deadline = time.monotonic() + 10
        while host.ask("AT+QIRD=0,0") != everything:  # the bytes may come in more than one piece
            assert time.monotonic() < deadline
        assert host.ask("AT+QIRD=0,1500") == b"\r\n+QIRD: 256," + payload.hex().upper().encode() + b"\r\n" + OK
        assert host.ask("AT+QICLOSE=0") == OK
        closed = b'\r\n+QIURC: "closed",0\r\n'
        assert host.read_exactly(len(closed)) == closed
        assert host.unasked() == b""
