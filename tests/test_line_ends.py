"""Line ends as host code sends them: CR LF (TinyGSM, Quectel's SDKs, pyserial's miniterm) and CR
alone (picocom), echo on and off, the bytes split anywhere a driver's writes may split them.

REFERENCE.md "Line ends": the LF right after the CR that ends a command line belongs to that line,
whatever the line leads to (command mode, the ``>`` prompt, CONNECT, transparent mode); data starts
after it. A host that ends its lines with CR alone gets an LF typed after the prompt as data.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ecemu.commands.files import checksum
from ecemu.pki import generate_test_pki
from tests.core_network import SimulatedNetwork
from tests.harness import CoreHarness

ISRG_ROOT_X1 = Path("/etc/ssl/certs/ISRG_Root_X1.pem")
OK = b"\r\nOK\r\n"
PROMPT = b"\r\n> "
CONNECT = b"\r\nCONNECT\r\n"

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
    late_lf = end == b"\r\n" and split in ("line-end-apart", "byte-by-byte")
    # An LF in a later write than its CR is echoed as it arrives: after the prompt.
    shown = ((line + b"\r" + PROMPT + b"\n" if late_lf else line + end + PROMPT) + payload) if echo else PROMPT
    assert out == shown + b"\r\nSEND OK\r\n"
    assert h.send(b"AT" + end) == ((b"AT" + end) if echo else b"") + OK


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
    answer = f"\r\n+QFUPL: {len(pem)},{checksum(pem)}\r\n".encode() + OK
    late_lf = end == b"\r\n" and split in ("line-end-apart", "byte-by-byte")
    echoed = (line + b"\r" if late_lf else line + end) if echo else b""
    assert out == echoed + CONNECT + answer  # a late LF is not echoed after CONNECT


@pytest.mark.needs("ca-certificates")  # ISRG Root X1
def test_the_ec200t_upload_answers_the_checksum_of_the_pem_alone():
    # REFERENCE.md "Files" (seen on an EC200T): AT+QFUPL="cacert.pem",1939,100 CR LF, then the PEM.
    pem = ISRG_ROOT_X1.read_bytes()
    h = CoreHarness()
    assert h.send(b'AT+QFUPL="cacert.pem",1939,100\r\n') == CONNECT
    assert h.send(pem) == b"\r\n+QFUPL: 1939,4f64\r\n" + OK
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
    late_lf = end == b"\r\n" and split in ("line-end-apart", "byte-by-byte")
    echoed = (line + b"\r" if late_lf else line + end) if echo else b""
    assert out == echoed + CONNECT  # a late LF never reaches transparent mode's stream
    assert play(h, net, [data]) == data  # the server echoes it back, unframed
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
    assert h.send(b"\n") == b"\n"  # echoed as it arrives: the line's end, not data
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
