"""Real host drivers' sessions replayed through the real pty, byte for byte, TLS to a real server.

Each transcript below holds the commands one driver sent to the emulator when it ran unmodified
against ``ecemu run`` (TinyGSM's Quectel BG96 driver in two versions, compiled natively;
hologram-python's Quectel drivers; pyatcommand; atcom), in the order a program calls them, written
down as data: the host's writes split exactly as the driver split them (TinyGSM writes ``AT``, then
each argument, then CR LF, each on its own), and the whole answer the driver parsed. A session
opens a TLS connection (TinyGsmClientSecure) or a plain TCP one (TinyGsmClient, hologram's
sockets) to a server started here, so the payload is checked where it lands, byte for byte, and
again when it comes back.

Where a driver sends something the module does not know, or reads an answer its own way, the
transcript keeps what the module answers (a driver bug stays the driver's); comments say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from ecemu.api import Emulator
from tests.host import AtHost
from tests.plain_servers import TcpEchoServer
from tests.tls_servers import TlsServer, echo
from tests.wire import BOOT_URCS, EC200M, ERROR, OK, file_checksum

PAYLOAD = bytes(range(256)) * 3 + bytes(range(232))  # 1000 bytes: every byte value, CR, LF, '+', NUL


@dataclass(frozen=True)
class Step:
    """The host writes ``writes`` one by one; the module answers ``answer`` (bytes: exactly those,
    nothing before; a pattern: everything up to the first final result)."""

    writes: tuple[bytes, ...]
    answer: bytes | re.Pattern[bytes]


def info(*lines: bytes) -> bytes:
    return b"\r\n" + b"\r\n".join(lines) + b"\r\n" + OK


def tinygsm(*pieces: bytes, answer: bytes | re.Pattern[bytes] = OK) -> Step:
    """TinyGSM's sendAT: ``AT``, each argument as its own write, then CR LF."""
    return Step((b"AT", *pieces, b"\r\n"), answer)


def replay(host: AtHost, steps: list[Step]) -> None:
    for number, step in enumerate(steps):
        for piece in step.writes:
            if piece:
                host.write(piece)
        if isinstance(step.answer, bytes):
            got = host.read_exactly(len(step.answer))
            assert got == step.answer, (number, step.writes)
        else:
            got = host.until_final()
            assert step.answer.fullmatch(got), (number, step.writes, got)


@pytest.fixture
def modem(start_modem):
    """A host that waits 5 s at most for an answer: a transcript that goes astray fails soon."""
    return start_modem(profile="EC200M-CN", timeout=5.0)


@pytest.fixture
def server():
    tls = TlsServer(cert="server-rsa", behaviour=echo).start()
    yield tls
    tls.stop()


# --- TinyGSM (vshymanskyy/TinyGSM 0.12.0 and the EnviroDIY fork), TINY_GSM_MODEM_BG96 ----------------

def tinygsm_start_up() -> list[Step]:
    """restart(), then what a sketch asks before it connects: identity, SIM, signal, registration,
    gprsConnect("cmnet"), isGprsConnected(), localIP(). Both versions send the same bytes."""
    return [
        # restart(): testAT() while echo is still on, then a full functionality reset. The answer
        # follows the echoed CR; the LF is not echoed (REFERENCE.md "Line ends").
        tinygsm(b"", answer=b"AT\r" + OK),
        tinygsm(b"+CFUN=", b"1", b",1", answer=b"AT+CFUN=1,1\r" + OK + BOOT_URCS),
        # It then waits up to 10 s for "APP RDY", a BG96 URC that an EC200x never sends (the wait
        # times out and the driver goes on); after the reset echo is on again.
        tinygsm(b"", answer=b"AT\r" + OK),
        tinygsm(b"E0", answer=b"ATE0\r" + OK),
        tinygsm(b"+CMEE=0"),
        tinygsm(b"+CTZR=0"),
        tinygsm(b"+CTZU=1"),
        tinygsm(b"+CPIN?", answer=info(b"+CPIN: READY")),
        # getModemName(), getModemInfo()
        tinygsm(b"+CGMI", answer=info(EC200M.manufacturer)),
        tinygsm(b"+CGMM", answer=info(EC200M.model)),
        tinygsm(b"I", answer=info(EC200M.manufacturer, EC200M.model,
                                  b"Revision: " + EC200M.revision)),
        # getSimStatus(), getSimCCID(), getIMEI(), getIMSI(), getOperator(), getSignalQuality()
        tinygsm(b"+CPIN?", answer=info(b"+CPIN: READY")),
        tinygsm(b"+QCCID", answer=info(b"+QCCID: " + EC200M.iccid)),
        tinygsm(b"+GSN", answer=info(EC200M.imei)),
        tinygsm(b"+CIMI", answer=info(EC200M.imsi)),
        tinygsm(b"+COPS?", answer=info(b'+COPS: 0,0,"CHINA MOBILE",7')),
        tinygsm(b"+CSQ", answer=info(b"+CSQ: 20,99")),
        # waitForNetwork(), isNetworkConnected(): EPS registration first, written in pieces.
        tinygsm(b"+", b"CEREG", b"?", answer=info(b"+CEREG: 0,1")),
        tinygsm(b"+", b"CEREG", b"?", answer=info(b"+CEREG: 0,1")),
        # gprsConnect("cmnet", "", ""): down first, then configure, activate, attach.
        tinygsm(b"+QIDEACT=1"),
        tinygsm(b'+QICSGP=1,1,"', b"cmnet", b'","', b"", b'","', b"", b'"'),
        tinygsm(b"+QIACT=1"),
        tinygsm(b"+CGATT=1"),
        # isGprsConnected(), then localIP(): the driver keeps what follows "<cid>," up to the line end.
        tinygsm(b"+CGATT?", answer=info(b"+CGATT: 1")),
        tinygsm(b"+CGPADDR=1", answer=info(b'+CGPADDR: 1,"' + EC200M.address + b'"')),
        tinygsm(b"+CGPADDR=1", answer=info(b'+CGPADDR: 1,"' + EC200M.address + b'"')),
    ]


def upload(ca: bytes, pieces: tuple[bytes, ...]) -> list[Step]:
    return [
        tinygsm(*pieces, answer=b"\r\nCONNECT\r\n"),
        Step((ca,), f"+QFUPL: {len(ca)},{file_checksum(ca)}\r\n".encode() + OK),
    ]


def connected(ssl_ctx: int) -> re.Pattern[bytes]:
    """AT+QSSLSTATE's line for client 0, connected (state 2) over PDP context 1 to the test server."""
    return re.compile(rb'\r\n\+QSSLSTATE: 0,"SSLClient","127\.0\.0\.1",\d+,\d+,2,1,0,0,"'
                      + re.escape(EC200M.at_port) + b'",' + str(ssl_ctx).encode()
                      + rb"\r\n" + re.escape(OK))


def session(opening: Step, polls: list[Step], before_stop: list[Step], after_stop: list[Step]) -> list[Step]:
    """Open, write the payload, read the echo back, stop(), gprsDisconnect()."""
    return [
        opening,
        tinygsm(b"+QSSLSEND=", b"0", b",", str(len(PAYLOAD)).encode(), answer=b"\r\n> "),
        Step((PAYLOAD,), b"\r\nSEND OK\r\n"),
        Step((), b'\r\n+QSSLURC: "recv",0\r\n'),
        *polls,
        tinygsm(b"+QSSLRECV=", b"0", b",", b"1023",
                answer=f"\r\n+QSSLRECV: {len(PAYLOAD)}\r\n".encode() + PAYLOAD + b"\r\n" + OK),
        tinygsm(b"+QSSLRECV=", b"0", b",", b"1023", answer=info(b"+QSSLRECV: 0")),
        *before_stop,
        tinygsm(b"+QSSLCLOSE=", b"0"),
        *after_stop,
        tinygsm(b"+QIDEACT=1"),
    ]


def test_tinygsm_0_12_bg96_session(modem, server):
    _, host = modem
    ca = server.pki["ca.pem"]
    port = str(server.port).encode()
    steps = [
        *tinygsm_start_up(),
        # This version has no certificate upload for the BG96: the sketch uploads with AT+QFUPL
        # through the driver's sendAT, then names the file (setCertificate), which the driver
        # never sends: its BG96 class keeps its own, empty, certificate table.
        *upload(ca, (b'+QFUPL="ca.pem",', str(len(ca)).encode(), b",10")),
        # connect(): stop() first, then SSL context 0 is set up, but the connection opens on context
        # 1 (the driver's mismatch), whose defaults (seclevel 0) apply.
        tinygsm(b"+QSSLCLOSE=", b"0"),
        tinygsm(b'+QSSLCFG="sslversion",0,3'),
        tinygsm(b'+QSSLCFG="ciphersuite",0,0X0035'),
        tinygsm(b'+QSSLCFG="seclevel",0,1'),
    ]
    opening = tinygsm(b"+QSSLOPEN=1,1,", b"0", b',"', b"127.0.0.1", b'",', port, b",0",
                      answer=OK + b"\r\n+QSSLOPEN: 0,0\r\n")
    # While it polls, the driver asks "AT+QSSLRECV=0,0" and reads the answer as TCP's
    # "total,read,unread"; the SSL note documents only "+QSSLRECV: <have_readlen>", so a read of
    # length 0 answers 0 (the driver's parse then waits out its timeouts and reads anyway).
    poll = tinygsm(b"+QSSLRECV=", b"0", b",0", answer=info(b"+QSSLRECV: 0"))
    # After stop() it asks once more, then AT+QSSLSTATE=1,<clientID>, a form the SSL note does not
    # have: ERROR both, so the driver takes the socket as closed.
    steps += session(opening, [poll], [], [
        tinygsm(b"+QSSLRECV=", b"0", b",0", answer=ERROR),
        tinygsm(b"+QSSLSTATE=1,", b"0", answer=ERROR),
    ])
    replay(host, steps)
    seen = server.connection(0)
    assert seen.handshake_error is None
    assert len(seen.offered) > 1  # context 1's defaults, not context 0's single suite
    assert seen.done.wait(10) and seen.closed_by_client
    assert bytes(seen.received) == PAYLOAD
    assert host.unasked() == b""


def test_tinygsm_envirodiy_bg96_session(modem, server):
    _, host = modem
    ca = server.pki["ca.pem"]
    port = str(server.port).encode()
    steps = [
        *tinygsm_start_up(),
        # loadCertificate("ca.pem", ...): the driver checks the size in +QFUPL's answer.
        *upload(ca, (b'+QFUPL="', b"ca.pem", b'",', str(len(ca)).encode(), b",10")),
        # connect(): stop(), then SSL context 0 for CA validation with TLS 1.2 ...
        tinygsm(b"+QSSLCLOSE=", b"0"),
        tinygsm(b'+QSSLCFG="cacert",', b"0", b',"', b"UFS:ca.pem", b'"'),
        tinygsm(b'+QSSLCFG="ciphersuite",', b"0", b",0XFFFF"),
        # ... whose version is set with a misspelt command: a module answers ERROR, the driver
        # notes the failure and connects anyway (the context keeps its default version).
        tinygsm(b'+CSSLCFG="sslversion",', b"0", b",", b"3", answer=ERROR),
        tinygsm(b'+QSSLCFG="seclevel",', b"0", b",1"),
        tinygsm(b'+QSSLCFG="ignorelocaltime",', b"0", b",0"),
    ]
    opening = tinygsm(b"+QSSLOPEN=1,", b"0", b",", b"0", b',"', b"127.0.0.1", b'",', port, b",0",
                      answer=OK + b"\r\n+QSSLOPEN: 0,0\r\n")
    # connected() asks AT+QSSLSTATE=<clientID>: its line while open; after stop() OK alone.
    state = (b"+QSSLSTATE=", b"0")
    steps += session(opening, [], [tinygsm(*state, answer=connected(0))], [tinygsm(*state)])
    replay(host, steps)
    seen = server.connection(0)
    assert seen.handshake_error is None  # the chain checks out against the uploaded CA (seclevel 1)
    assert seen.done.wait(10) and seen.closed_by_client
    assert bytes(seen.received) == PAYLOAD
    assert host.unasked() == b""


def tcp_state(port: int) -> re.Pattern[bytes]:
    """AT+QISTATE=1,0's line for a "TCP" client on socket 0, connected, buffer access, context 1."""
    return re.compile(rb'\r\n\+QISTATE: 0,"TCP","127\.0\.0\.1",' + str(port).encode() + rb',\d+,2,1,0,0,"'
                      + re.escape(EC200M.at_port) + rb'"\r\n' + re.escape(OK))


def test_tinygsm_bg96_plain_tcp_client():
    """TinyGsmClient (not the secure one): connect(), write(), read the echo back, stop(). Both
    versions (0.12.0 and the EnviroDIY fork) send the same bytes for it."""
    with TcpEchoServer(echo=False) as server:
        emulator = Emulator(profile="EC200M-CN").start()
        emulator.wait_for_boot()
        host = AtHost(emulator.port, timeout=5.0)
        try:
            port = str(server.port).encode()
            state = tinygsm(b"+QISTATE=1,", b"0", answer=tcp_state(server.port))
            replay(host, [
                *tinygsm_start_up(),
                # connect(): stop() first (nothing open: OK), then a buffer-access TCP client.
                tinygsm(b"+QICLOSE=", b"0"),
                tinygsm(b"+QIOPEN=1,", b"0", b',"', b"TCP", b'","', b"127.0.0.1", b'",', port, b",0,0",
                        answer=OK + b"\r\n+QIOPEN: 0,0\r\n"),
                # write(): fixed length, the payload in one write.
                tinygsm(b"+QISEND=", b"0", b",", str(len(PAYLOAD)).encode(), answer=b"\r\n> "),
                Step((PAYLOAD,), b"\r\nSEND OK\r\n"),
                # available() polls: how much is unread (AT+QIRD=<id>,0), then connected()
                # (AT+QISTATE=1,<id>), before the echo is back ...
                tinygsm(b"+QIRD=", b"0", b",0", answer=info(b"+QIRD: 0,0,0")),
                state,
            ])
            # ... here the server answers (held until now, so the order is the driver's own).
            server.connection(0).sendall(server.wait_received(0, len(PAYLOAD)))
            replay(host, [
                Step((), b'\r\n+QIURC: "recv",0\r\n'),
                tinygsm(b"+QIRD=", b"0", b",0", answer=info(b"+QIRD: 1000,0,1000")),
                tinygsm(b"+QIRD=", b"0", b",", b"1000",
                        answer=b"\r\n+QIRD: 1000\r\n" + PAYLOAD + b"\r\n" + OK),
                tinygsm(b"+QIRD=", b"0", b",0", answer=info(b"+QIRD: 1000,1000,0")),
                state,
                # stop(): the peer's FIN answers the module's, so OK comes before the timeout.
                tinygsm(b"+QICLOSE=", b"0"),
                tinygsm(b"+QIDEACT=1"),
            ])
            assert bytes(server.received[0]) == PAYLOAD
            assert host.unasked() == b""
        finally:
            host.close()
            emulator.stop()


# --- hologram-python 0.10.3: Quectel EC21 and BG96 drivers -----------------------------------------
# Its Modem writes "AT", the command, "=" or "?", the value, and CR LF, each on its own.

def hologram(command: bytes, value: bytes | None = None, query: bool = False,
             answer: bytes = OK) -> Step:
    if value is not None:
        return Step((b"AT", command, b"=", value, b"\r\n"), answer)
    return Step((b"AT", command, *((b"?",) if query else ()), b"\r\n"), answer)


CREG = hologram(b"+CREG", query=True, answer=info(b'+CREG: 2,1,"5A0B","0A1B2C3D",7'))
NO_CONTEXT = hologram(b"+QIACT", query=True)  # nothing active: OK alone (the driver logs its parse failure)
ACTIVE = hologram(b"+QIACT", query=True, answer=info(b'+QIACT: 1,1,1,"' + EC200M.address + b'"'))


# The EC21 driver deactivates with AT+QIDEACT=1; the BG96 driver with AT+QIACT=0, an activation of
# context 0, which is out of range (1-16): ERROR, and the context stays up (the driver logs it).
TEAR_DOWN = {
    "EC21": [hologram(b"+QIDEACT", b"1"), CREG, NO_CONTEXT],
    "BG96": [hologram(b"+QIACT", b"0", answer=ERROR), CREG, ACTIVE],
}


def hologram_start_up() -> list[Step]:
    return [
        # Modem.__init__: init_serial_commands() and the Quectel registration reports.
        hologram(b"E0", answer=b"ATE0\r" + OK),  # the LF is not echoed (REFERENCE.md "Line ends")
        hologram(b"+CMEE", b"2"),
        hologram(b"+CPIN", query=True, answer=info(b"+CPIN: READY")),
        hologram(b"+CTZU", b"1"),
        hologram(b"+CTZR", b"1"),
        hologram(b"+CPMS", b'"ME","ME","ME"', answer=info(b"+CPMS: 0,50,0,50,0,50")),
        hologram(b"+CMGF", b"0"),
        hologram(b"+CNMI", b"2,1"),
        hologram(b"+CREG", b"2"),
        hologram(b"+CEREG", b"2"),
        # modem_id, imsi, iccid, imei, signal_strength, operator, is_registered()
        hologram(b"+CGMM", answer=info(EC200M.model)),
        hologram(b"+CIMI", answer=info(EC200M.imsi)),
        hologram(b"+CCID", answer=info(b"+CCID: " + EC200M.iccid)),
        hologram(b"+GSN", answer=info(EC200M.imei)),
        hologram(b"+CSQ", answer=info(b"+CSQ: 20,99")),
        hologram(b"+COPS", query=True, answer=info(b'+COPS: 0,0,"CHINA MOBILE",7')),
        CREG,
    ]


# create_socket(): _set_up_pdp_context() looks first, then configures and activates.
SET_UP_PDP = [
    CREG, NO_CONTEXT,
    hologram(b"+QICSGP", b'1,1,"hologram","","",1'),
    hologram(b"+QIACT", b"1"),
]


@pytest.mark.parametrize("model", TEAR_DOWN)
def test_hologram_quectel_start_up_and_pdp_context(modem, model):
    _, host = modem
    steps = [
        *hologram_start_up(),
        *SET_UP_PDP,
        CREG, ACTIVE,
        # _tear_down_pdp_context(): each model takes the context down its own way.
        CREG, ACTIVE,
        *TEAR_DOWN[model],
    ]
    replay(host, steps)
    assert host.unasked() == b""


# close_socket() writes its integer ID through pyserial, which writes no bytes for an int:
# "AT+QICLOSE=" goes out without its parameter and the module answers ERROR; the driver logs it
# and takes the context down, which closes the socket: the EC21's AT+QIDEACT=1 does (with no
# "closed" URC: the host closed it, REFERENCE.md "PDP context"), the BG96's AT+QIACT=0 fails and
# leaves socket and context up.
CLOSE_SOCKET = {
    "EC21": [hologram(b"+QIDEACT", b"1")],
    "BG96": [hologram(b"+QIACT", b"0", answer=ERROR)],
}
CLOUD_REPLY = b"[0,0]"  # what the driver's send_message() waits for: one line pushed back


@pytest.mark.parametrize("model", CLOSE_SOCKET)
def test_hologram_quectel_tcp_socket_send_message(modem, model):
    """create_socket(), connect_socket(), send_message() (hex chunks of at most 255 bytes with
    AT+QISENDEX, then the reply pushed in direct push mode), close_socket()."""
    _, host = modem
    message = bytes(range(256)) + bytes(range(255, -1, -1)) + b"hologram"  # 520 bytes: three chunks
    with TcpEchoServer(echo=False) as server:
        port = str(server.port).encode()
        replay(host, [
            *hologram_start_up(),
            *SET_UP_PDP,
            hologram(b"+QIOPEN", b'1,0,"TCP","127.0.0.1",' + port + b",0,1",
                     answer=OK + b"\r\n+QIOPEN: 0,0\r\n"),
            *(hologram(b"+QISENDEX", b'0,"' + message[i:i + 255].hex().encode() + b'"',
                       answer=b"\r\nSEND OK\r\n") for i in range(0, len(message), 255)),
        ])
        assert server.wait_received(0, len(message)) == message
        server.connection(0).sendall(CLOUD_REPLY)
        replay(host, [
            Step((), b'\r\n+QIURC: "recv",0,5\r\n' + CLOUD_REPLY + b"\r\n"),
            hologram(b"+QICLOSE", b"", answer=ERROR),
            CREG, ACTIVE,
            *CLOSE_SOCKET[model],
        ])
        assert bytes(server.received[0]) == message
        assert host.unasked() == b""


# --- pyatcommand 0.5.3 (AtClient) and atcom 0.4.3 (ATCom): CR-ended lines -------------------------

def cr_line(line: bytes, answer: bytes) -> Step:
    return Step((line + b"\r",), answer)


def test_pyatcommand_client_connects_with_echo_on(modem):
    _, host = modem
    # connect(): "AT", then echo and verbose results on; every answer starts with the echoed line.
    lines = [
        (b"AT", OK), (b"ATE1", OK), (b"ATV1", OK),
        (b"ATI", info(EC200M.manufacturer, EC200M.model, b"Revision: " + EC200M.revision)),
        (b"AT+CGMM", info(EC200M.model)),
        (b"AT+CSQ", info(b"+CSQ: 20,99")),
        (b"AT+CPIN?", info(b"+CPIN: READY")),
        (b"AT+CEREG?", info(b"+CEREG: 0,1")),
        (b"AT+QCCID", info(b"+QCCID: " + EC200M.iccid)),
        (b"AT+QIACT=1", OK),
        (b"AT+QIACT?", info(b'+QIACT: 1,1,1,"' + EC200M.address + b'"')),
        (b"AT+NOSUCH", ERROR),
        (b'AT+QSSLCFG="seclevel",1', info(b'+QSSLCFG: "seclevel",1,0')),
    ]
    replay(host, [cr_line(line, line + b"\r" + answer) for line, answer in lines])
    assert host.unasked() == b""


def test_atcom_turns_echo_off_and_asks(modem):
    _, host = modem
    steps = [
        cr_line(b"AT", b"AT\r" + OK),
        cr_line(b"ATE0", b"ATE0\r" + OK),
        cr_line(b"AT+CGMM", info(EC200M.model)),
        cr_line(b"AT+CSQ", info(b"+CSQ: 20,99")),
        cr_line(b"AT+QCCID", info(b"+QCCID: " + EC200M.iccid)),
        cr_line(b"AT+CEREG?", info(b"+CEREG: 0,1")),
        cr_line(b"AT+NOSUCH", ERROR),
    ]
    replay(host, steps)
    assert host.unasked() == b""
