"""Line ends as host code sends them: CR LF (TinyGSM, Quectel's SDKs, pyserial's miniterm) and CR
alone (picocom), echo on and off, the bytes split anywhere a driver's writes may split them.

REFERENCE.md "Line ends": the LF right after the CR that ends a command line belongs to that line,
whatever the line leads to (command mode, the ``>`` prompt, CONNECT, transparent mode); data starts
after it. A host that ends its lines with CR alone gets an LF typed after the prompt as data. The
module's answer (the prompt and CONNECT included) follows the echoed CR; the LF, taken after it,
is not echoed. Only a command the module answers apart from its parser (AT+QFLST) lets the LF be
echoed first.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from ecemu.core import events as ev
from ecemu.pki import generate_test_pki
from tests.core_network import SimulatedNetwork
from tests.harness import CoreHarness, no_internal_errors
from tests.wire import CONNECT, OK, PROMPT, file_checksum

ISRG_ROOT_X1 = Path("/etc/ssl/certs/ISRG_Root_X1.pem")

LINE_ENDS = {"cr": b"\r", "crlf": b"\r\n"}
# How a driver's writes may land: the line and its data in one write, the line end on its own
# (TinyGSM prints the command and GSM_NL separately), the data only after the prompt, one byte a write.
SPLITS = ["one-write", "line-end-apart", "data-after-prompt", "byte-by-byte"]


def writes(line: bytes, end: bytes, data: bytes, split: str) -> list[bytes]:
    if split == "one-write":
        return [line + end + data]
    if split == "line-end-apart":
        return [line + end[:1], end[1:], data]
    if split == "data-after-prompt":
        return [line + end, data]
    return [bytes((b,)) for b in line + end + data]


def harness(echo: bool, end: bytes) -> CoreHarness:
    h = CoreHarness(echo=echo)
    h.files.write("cacert.pem", generate_test_pki()["ca.pem"])
    # The host's first line shows how it ends lines, as every driver's "AT" probe does.
    h.send(b"AT" + end)
    assert h.send(b"AT+QIACT=1" + end).endswith(OK)
    return h


def play(h: CoreHarness, net: SimulatedNetwork | None, pieces: list[bytes]) -> bytes:
    out = bytearray()
    for piece in pieces:
        if piece:
            out += h.send(piece)
            if net is not None:
                out += net.run()
    return bytes(out)


CASES = list(itertools.product(LINE_ENDS, [False, True], SPLITS))


@pytest.mark.parametrize("end_name,echo,split", CASES)
def test_qsslsend_payload_is_byte_exact(end_name, echo, split):
    end = LINE_ENDS[end_name]
    if end_name == "cr" and split == "one-write":
        # A CR-only host that sends its data before the prompt in the same write has no way to say
        # that a leading LF is data; it is taken as the line end (README), so it stays out here.
        payload = b"hello,\r\nworld\x1a+++"
    else:
        payload = b"\nhello,\r\nworld\x1a+++"  # an LF first: data, never the line end
    h = harness(echo, end)
    net = SimulatedNetwork(h, echo=False)
    assert h.send(b'AT+QSSLOPEN=1,1,4,"127.0.0.1",8010,0' + end).endswith(OK)
    net.run()
    line = f"AT+QSSLSEND=4,{len(payload)}".encode()
    out = play(h, net, writes(line, end, payload, split))
    assert net.server().received == payload
    # The prompt follows the echoed CR; the LF of CR LF, in the same write or a later one, is
    # taken after it without an echo (REFERENCE.md "Line ends").
    shown = line + b"\r" + PROMPT + payload if echo else PROMPT
    assert out == shown + b"\r\nSEND OK\r\n"
    assert h.send(b"AT" + end) == (b"AT\r" if echo else b"") + OK


@pytest.mark.parametrize("end_name,echo,split", CASES)
def test_qfupl_stores_exactly_the_file(end_name, echo, split):
    end = LINE_ENDS[end_name]
    pem = generate_test_pki()["ca.pem"]
    if end_name == "crlf" or split != "one-write":
        pem = b"\n" + pem  # an LF first is part of the file
    h = harness(echo, end)
    line = f'AT+QFUPL="up.pem",{len(pem)},100'.encode()
    out = play(h, None, writes(line, end, pem, split))
    assert h.files.read("up.pem") == pem
    answer = f"+QFUPL: {len(pem)},{file_checksum(pem)}\r\n".encode() + OK
    echoed = line + b"\r" if echo else b""
    assert out == echoed + CONNECT + answer  # the LF is echoed neither before CONNECT nor after it


@pytest.mark.needs("ca-certificates")  # ISRG Root X1
def test_the_ec200t_upload_answers_the_checksum_of_the_pem_alone():
    # REFERENCE.md "Files" (seen on an EC200T): AT+QFUPL="cacert.pem",1939,100 CR LF, then the PEM.
    pem = ISRG_ROOT_X1.read_bytes()
    h = CoreHarness()
    assert h.send(b'AT+QFUPL="cacert.pem",1939,100\r\n') == CONNECT
    assert h.send(pem) == b"+QFUPL: 1939,4f64\r\n" + OK
    assert h.files.read("cacert.pem") == pem


@pytest.mark.parametrize("end_name,echo,split", CASES)
def test_transparent_mode_carries_exactly_the_data(end_name, echo, split):
    end = LINE_ENDS[end_name]
    data = b"\nGET / HTTP/1.1\r\n\r\n"  # sent after CONNECT: an LF first is data
    h = harness(echo, end)
    net = SimulatedNetwork(h)
    line = b'AT+QSSLOPEN=1,1,4,"127.0.0.1",8011,2'
    pieces = writes(line, end, b"", split)
    out = play(h, net, pieces)
    echoed = line + b"\r" if echo else b""
    assert out == echoed + CONNECT  # the LF never reaches transparent mode's stream
    assert play(h, net, [data]) + h.advance(0.2) + net.run() == data  # echoed unframed, after transwaittm
    assert net.server().received == data


def test_a_lone_lf_in_a_later_write_after_a_cr_only_host_line_is_data():
    h = harness(False, b"\r")
    net = SimulatedNetwork(h, echo=False)
    assert h.send(b'AT+QSSLOPEN=1,1,4,"127.0.0.1",8010,0\r').endswith(OK)
    net.run()
    assert h.send(b"AT+QSSLSEND=4,3\r") == PROMPT
    assert h.send(b"\n") == b""
    assert h.send(b"ab") + net.run() == b"\r\nSEND OK\r\n"
    assert net.server().received == b"\nab"


def test_a_crlf_host_s_late_lf_after_the_prompt_ends_the_line():
    h = harness(True, b"\r\n")
    net = SimulatedNetwork(h, echo=False)
    h.send(b'AT+QSSLOPEN=1,1,4,"127.0.0.1",8010,0\r\n')
    net.run()
    assert h.send(b"AT+QSSLSEND=4,3\r") == b"AT+QSSLSEND=4,3\r" + PROMPT
    assert h.send(b"\n") == b""  # the line's end, not data; taken after the prompt, so not echoed
    assert h.send(b"\nab") + net.run() == b"\nab\r\nSEND OK\r\n"
    assert net.server().received == b"\nab"


def test_a_host_that_switches_to_cr_alone_is_followed():
    h = harness(False, b"\r\n")
    net = SimulatedNetwork(h, echo=False)
    h.send(b'AT+QSSLOPEN=1,1,4,"127.0.0.1",8010,0\r')  # CR alone from now on
    net.run()
    assert h.send(b"AT\r") == OK
    assert h.send(b"AT+QSSLSEND=4,2\r") == PROMPT
    assert h.send(b"\nz") + net.run() == b"\r\nSEND OK\r\n"
    assert net.server().received == b"\nz"


def test_a_very_long_line_is_refused_and_the_next_one_runs():
    h = CoreHarness()
    # 512 KiB without a CR in 64 writes, then a CR: one ERROR, then the next line works. The run
    # of plain bytes past the limit is dropped in one step per write (linear in the bytes).
    for _ in range(64):
        assert h.send(b"X" * 8192) == b""
    assert h.send(b"\r") == b"\r\nERROR\r\n"
    assert h.send(b"AT\r\n") == OK


# --- where the echo of the LF goes: the module's parser (REFERENCE.md "Line ends") -----------------
#
# Host firmware written against a real EC200T (EC200TCNHAR02A14M16; a public STM32 project whose
# lte_app.c sends each command with CR LF in one UART write at 115200 8N1 and compares what comes
# back, byte for byte from the start, with strncmp) expects `AT\r\r\nOK\r\n` for AT and every other
# command it sends, but `AT+QFLST\r\n\r\n+QFLST: "UFS:cacert.pem",` for AT+QFLST.

BYTE_AT_115200 = 10 / 115200  # seconds one byte takes on the line at 115200 8N1


def every_split(data: bytes) -> list[list[bytes]]:
    """``data`` in one write, then cut in two at every position."""
    return [[data]] + [[data[:k], data[k:]] for k in range(1, len(data))]


def crlf_host(echo: bool = True) -> CoreHarness:
    """A host that has ended a line with CR LF, as that EC200T host firmware's first line (AT) does."""
    h = CoreHarness(echo=echo)
    assert h.send(b"AT\r\n") == (b"AT\r" if echo else b"") + OK
    return h


def paced(h: CoreHarness, data: bytes, gap: float) -> bytes:
    """``data`` one byte at a time, ``gap`` seconds apart, as a UART line delivers it; then time
    enough for anything the module still has to say."""
    out = bytearray()
    for byte in data:
        out += h.advance(gap)
        out += h.send(bytes((byte,)))
    return bytes(out + h.advance(1.0))


EC200T_AT = [  # what that host sends and what it expects (its CMD_TX_* / CMD_RX_* pairs)
    (b"AT\r\n", b"AT\r\r\nOK\r\n"),
    (b"ATV1\r\n", b"ATV1\r\r\nOK\r\n"),
    (b"ATE1\r\n", b"ATE1\r\r\nOK\r\n"),
    (b"AT+CMEE=2\r\n", b"AT+CMEE=2\r\r\nOK\r\n"),
    (b"AT+QSIMDET=0,0\r\n", b"AT+QSIMDET=0,0\r\r\nOK\r\n"),
    (b"AT+CPIN?\r\n", b"AT+CPIN?\r\r\n+CPIN: READY\r\n\r\nOK\r\n"),
    (b'AT+QFDEL="*"\r\n', b'AT+QFDEL="*"\r\r\nOK\r\n'),  # a file command the parser itself runs
]


@pytest.mark.parametrize("sent,expected", EC200T_AT)
def test_an_immediate_answer_follows_the_echoed_cr_split_anywhere(sent, expected):
    for pieces in every_split(sent):
        h = CoreHarness(echo=True)
        assert play(h, None, pieces) == expected, pieces
        assert h.advance(1.0) == b""  # the LF is not echoed after the answer either


@pytest.mark.parametrize("sent,expected", EC200T_AT)
def test_an_immediate_answer_on_a_uart_line(sent, expected):
    assert paced(CoreHarness(echo=True), sent, BYTE_AT_115200) == expected


def listing(size: int) -> bytes:
    return f'\r\n+QFLST: "UFS:cacert.pem",{size}\r\n'.encode() + OK


def uploaded() -> tuple[CoreHarness, bytes]:
    h = crlf_host()
    pem = generate_test_pki()["ca.pem"]
    h.files.write("cacert.pem", pem)
    return h, listing(len(pem))


def test_the_ec200t_listing_comes_after_the_echoed_lf_split_anywhere():
    for pieces in every_split(b"AT+QFLST\r\n"):
        h, answer = uploaded()
        assert play(h, None, pieces) + h.advance(1.0) == b"AT+QFLST\r\n" + answer, pieces


def test_the_ec200t_listing_on_a_uart_line():
    for gap in (BYTE_AT_115200, 10 / 9600, 10 / 921600):
        h, answer = uploaded()
        assert paced(h, b"AT+QFLST\r\n", gap) == b"AT+QFLST\r\n" + answer, gap


def test_an_lf_that_comes_after_the_listing_is_ready_is_taken_without_an_echo():
    h, answer = uploaded()
    assert h.send(b"AT+QFLST\r") == b"AT+QFLST\r"
    assert h.advance(0.05) == answer  # the listing is ready; no LF has come
    assert h.send(b"\n") == b""
    assert h.send(b"AT\r\n") == b"AT\r" + OK


def test_the_listing_waits_for_no_lf_from_a_cr_only_host_or_with_echo_off():
    h = CoreHarness(echo=True)  # picocom: CR alone
    h.files.write("a.txt", b"abc")
    assert h.send(b"AT+QFLST\r") == b"AT+QFLST\r" + listing(3).replace(b"cacert.pem", b"a.txt")
    h = crlf_host(echo=False)
    h.files.write("a.txt", b"abc")
    assert h.send(b"AT+QFLST\r") == listing(3).replace(b"cacert.pem", b"a.txt")
    assert h.send(b"\n") == b""


def test_a_urc_waits_while_the_listing_is_made():
    h, answer = uploaded()
    assert h.send(b"AT+QFLST\r") == b"AT+QFLST\r"
    h.modem.emit_urc('+QIURC: "pdpdeact",1')
    assert h.take_output() == b""
    assert h.send(b"\n") == b"\n" + answer + b'\r\n+QIURC: "pdpdeact",1\r\n'


def test_the_ec200t_connect_follows_the_echoed_cr_split_anywhere():
    # The same host: AT+QHTTPURL=<len>,30 CR LF, then `AT+QHTTPURL=<len>,30\r\r\nCONNECT\r\n`, the URL,
    # `\r\nOK\r\n`; AT+QFUPL likewise answers `\r\r\nCONNECT\r\n` and takes the PEM alone.
    url = b"http://example.com/api/logs"
    line = b"AT+QHTTPURL=%d,30\r\n" % len(url)
    for pieces in every_split(line):
        h = crlf_host()
        assert h.send(b"AT+QIACT=1\r\n") == b"AT+QIACT=1\r" + OK
        assert play(h, None, pieces) == line[:-1] + CONNECT, pieces
        assert h.send(url) == OK
        assert h.send(b"AT+QHTTPURL?\r\n") == b'AT+QHTTPURL?\r\r\n+QHTTPURL: %s\r\n' % url + OK


# --- every mode a line can lead to, CR LF split at every position, echo on and off ----------------


class Peer:
    """The other end of the module's one connection, played through the core's events."""

    def __init__(self, h: CoreHarness):
        self.h = h
        self.conn = 0
        self.received = bytearray()

    def accept(self) -> bytes:
        [opening] = [e for e in self.h.take_effects() if isinstance(e, ev.OpenTcp)]
        self.conn = opening.conn_id
        return self.h.event(ev.TcpConnected(self.conn, "192.0.2.7", opening.port, 40000))

    def take(self) -> bytes:
        self.received += b"".join(e.data for e in self.h.take_effects() if isinstance(e, ev.SendTcp))
        return bytes(self.received)


def tcp_socket(h: CoreHarness) -> Peer:
    peer = Peer(h)
    assert h.send(b'AT+QIOPEN=1,0,"TCP","192.0.2.7",8009,0,0\r\n').endswith(OK)
    assert peer.accept() == b"\r\n+QIOPEN: 0,0\r\n"
    return peer


def mqtt_client(h: CoreHarness) -> Peer:
    peer = Peer(h)
    assert h.send(b'AT+QMTOPEN=0,"broker.example",1883\r\n').endswith(OK)
    assert peer.accept() == b"\r\n+QMTOPEN: 0,0\r\n"
    assert h.send(b'AT+QMTCONN=0,"dev1"\r\n').endswith(OK)
    assert h.event(ev.TcpData(peer.conn, b"\x20\x02\x00\x00")) == b"\r\n+QMTCONN: 0,0,0\r\n"
    peer.take()
    return peer


@dataclass
class Case:
    """A line, what it answers at once or once ``network`` has run (``answer``), the data the host
    then sends and whether it is echoed, and what comes after the data (``tail``)."""

    line: bytes
    answer: bytes
    data: bytes = b""
    data_echoed: bool = False
    tail: bytes = b""
    setup: Callable[[CoreHarness], Peer | None] = lambda h: None
    network: Callable[[Peer], bytes] | None = None  # the network's part while the line waits (BUSY)
    delivered: Callable[[CoreHarness, Peer], bool] = lambda h, peer: True  # the data went where it should


def sent_to(expected_end: bytes) -> Callable[[CoreHarness, Peer], bool]:
    return lambda h, peer: peer.take().endswith(expected_end)


CASES_BY_MODE = {
    "command": Case(b"AT+CSQ", b"\r\n+CSQ: 20,99\r\n" + OK),
    "qisend-prompt": Case(b"AT+QISEND=0,5", PROMPT, b"hello", True, b"\r\nSEND OK\r\n", tcp_socket,
                          delivered=lambda h, peer: peer.take() == b"hello"),
    "qmtpubex-prompt": Case(b'AT+QMTPUBEX=0,0,0,0,"t",5', PROMPT, b"hello", True,
                            OK + b"\r\n+QMTPUBEX: 0,0,0\r\n", mqtt_client, delivered=sent_to(b"thello")),
    # 0x6865 ^ 0x6c0a ^ 0x6c00 = 0x686f
    "qfupl-connect": Case(b'AT+QFUPL="f.bin",5', CONNECT, b"hel\nl", False, b"+QFUPL: 5,686f\r\n" + OK,
                          delivered=lambda h, peer: h.files.read("f.bin") == b"hel\nl"),
    "qhttpurl-connect": Case(b"AT+QHTTPURL=18", CONNECT, b"http://example.com", False, OK,
                             delivered=lambda h, peer: h.send(b"AT+QHTTPURL?\r\n").endswith(
                                 b'\r\n+QHTTPURL: http://example.com\r\n' + OK)),
    "qhttppost-busy-then-connect": Case(
        b"AT+QHTTPPOST=5", CONNECT, b"hello", False, OK,
        setup=lambda h: (h.send(b"AT+QHTTPURL=18\r\n"), h.send(b"http://example.com"), Peer(h))[-1],
        network=Peer.accept, delivered=sent_to(b"\r\n\r\nhello")),
    "qiopen-busy-then-transparent": Case(
        b'AT+QIOPEN=1,0,"TCP","192.0.2.7",8009,0,2', CONNECT, b"\nhello", False, b"", setup=Peer,
        network=Peer.accept,  # the data goes after transwaittm (AT+QICFG's default 200 ms)
        delivered=lambda h, peer: h.advance(0.2) == b"" and peer.take() == b"\nhello" and h.advance(1.3) == b""),
    "qiclose-busy": Case(b"AT+QICLOSE=0", OK, setup=tcp_socket,
                         network=lambda peer: peer.h.event(ev.TcpClosed(peer.conn))),
}


@pytest.mark.parametrize("echo", [True, False])
@pytest.mark.parametrize("mode", CASES_BY_MODE)
def test_every_mode_with_cr_lf_split_anywhere(mode, echo):
    case = CASES_BY_MODE[mode]
    sent = case.line + b"\r\n"
    for pieces in every_split(sent):
        with no_internal_errors():
            h = crlf_host(echo)
            assert h.send(b"AT+QIACT=1\r\n").endswith(OK)
            peer = case.setup(h)
            out = bytearray()
            so_far = b""
            waited = case.network is None
            for piece in pieces:
                out += h.send(piece)
                so_far += piece
                if not waited and b"\r" in so_far:
                    assert peer is not None
                    out += case.network(peer)  # while the line waits; its LF may still be to come
                    waited = True
            out += h.send(case.data)
            shown = case.line + b"\r" if echo else b""
            data = case.data if echo and case.data_echoed else b""
            assert bytes(out) == shown + case.answer + data + case.tail, pieces
            assert case.delivered(h, peer), pieces  # type: ignore[arg-type]
            if h.modem.host.online is not None:
                assert h.send(b"+++") == b"" and h.advance(1.0) == OK  # back to command mode
            assert h.send(b"AT\r\n") == (b"AT\r" if echo else b"") + OK
