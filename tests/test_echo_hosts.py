"""Host code that reads around the echo (ATE1, the module's default), replayed against the core:
how each writes its command lines and how it reads what comes back (REFERENCE.md "Line ends").

- Host firmware for an EC200T (EC200TCNHAR02A14M16; a public STM32 project, lte_app.c and
  bsp_lte.c): every command and its CR LF in one UART write; before it, up to 20 bytes still
  waiting are drained; after it, exactly as many bytes as the expected answer (plus a known extra)
  are received and compared from the first one on with strncmp. The expected answers below are its
  own CMD_RX_* strings.
- Quectel's host SDK (quectel-develop/user-friendly-project, an RT-Thread AT client): every
  command and CR LF in one write (at_vprintfln), echo never turned off; a reply is read as lines
  ending in CR LF until OK or ERROR, or until a set number of lines; a callback may instead take
  the first line and then read raw bytes (AT+QHTTPREAD, AT+QFLST); a line that starts like a
  registered URC goes to its handler and ends the wait for the reply.
- TinyGSM's sessions (restart() and init() with echo still on) are replayed byte for byte over
  the pty in test_driver_transcripts.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ecemu.core import events as ev
from ecemu.pki import generate_test_pki
from tests.harness import CoreHarness, no_internal_errors
from tests.test_line_ends import Peer


def answer_http(peer: Peer, response: bytes) -> bytes:
    """The request has come whole; the response goes back and the server closes."""
    assert b"\r\n\r\n" in peer.take()
    return peer.h.event(ev.TcpData(peer.conn, response)) + peer.h.event(ev.TcpClosed(peer.conn))


# --- the EC200T host firmware ----------------------------------------------------------------------


def xor_of_words(data: bytes) -> int:
    """That firmware's quectel_xor_checksum: big-endian 16-bit words XORed, an odd last byte high."""
    padded = data + b"\0" * (len(data) % 2)
    value = 0
    for i in range(0, len(padded), 2):
        value ^= padded[i] << 8 | padded[i + 1]
    return value


@dataclass
class StrncmpHost:
    """How that firmware talks: lte_send_at_cmds, then lte_verify_at_rx_cmds."""

    h: CoreHarness
    waiting: bytearray = field(default_factory=bytearray)

    def exchange(self, tx: bytes, expected: bytes, extra: int = 0, peer=None) -> bytes:
        del self.waiting[:20]  # lte_recv(20): what is left from before is drained, 20 bytes at most
        self.waiting += self.h.send(tx)
        if peer is not None:
            self.waiting += peer()
        count = len(expected) + extra
        got = bytes(self.waiting[:count])
        del self.waiting[:count]
        assert len(got) == count, (tx, got)  # else the firmware's receive times out
        assert got[:len(expected)] == expected, (tx, got)  # strncmp(rx_cmd, rx_buff, strlen(rx_cmd))
        return got


EC200T_START = [  # lte_init, lte_pdp_activate, lte_config_ssl_cmds, in that order
    (b"AT\r\n", b"AT\r\r\nOK\r\n"),
    (b"AT+CMEE=2\r\n", b"AT+CMEE=2\r\r\nOK\r\n"),
    (b'AT+QURCCFG="URCPORT","usbat"\r\n', b'AT+QURCCFG="URCPORT","usbat"\r\r\nOK\r\n'),
    (b"AT+QSIMDET=0,0\r\n", b"AT+QSIMDET=0,0\r\r\nOK\r\n"),
    (b"AT+QIDEACT=1\r\n", b"AT+QIDEACT=1\r\r\nOK\r\n"),
    (b'AT+QICSGP=1,1,"AIRTELGPRS.COM","","",0\r\n', b'AT+QICSGP=1,1,"AIRTELGPRS.COM","","",0\r\r\nOK\r\n'),
    (b"AT+QIACT=1\r\n", b"AT+QIACT=1\r\r\nOK\r\n"),
    (b'AT+QHTTPCFG="contenttype",2\r\n', b'AT+QHTTPCFG="contenttype",2\r\r\nOK\r\n'),
    (b'AT+QHTTPCFG="contextid",1\r\n', b'AT+QHTTPCFG="contextid",1\r\r\nOK\r\n'),
    (b'AT+QHTTPCFG="sslctxid",1\r\n', b'AT+QHTTPCFG="sslctxid",1\r\r\nOK\r\n'),
    (b'AT+QSSLCFG="sni",1,1\r\n', b'AT+QSSLCFG="sni",1,1\r\r\nOK\r\n'),
    (b'AT+QSSLCFG="ciphersuite",0,0xFFFF\r\n', b'AT+QSSLCFG="ciphersuite",0,0xFFFF\r\r\nOK\r\n'),
    (b'AT+QSSLCFG="sslversion",1,4\r\n', b'AT+QSSLCFG="sslversion",1,4\r\r\nOK\r\n'),
    (b'AT+QSSLCFG="seclevel",1,1\r\n', b'AT+QSSLCFG="seclevel",1,1\r\r\nOK\r\n'),
    (b'AT+QFDEL="*"\r\n', b'AT+QFDEL="*"\r\r\nOK\r\n'),
    (b"AT+CPIN?\r\n", b"AT+CPIN?\r\r\n+CPIN: READY\r\n\r\nOK\r\n"),
    (b"AT+QSCLK=0\r\n", b"AT+QSCLK=0\r\r\nOK\r\n"),
]


def test_the_ec200t_firmware_starts_up_uploads_its_ca_and_lists_it():
    with no_internal_errors():
        host = StrncmpHost(CoreHarness(echo=True))
        for tx, rx in EC200T_START:
            host.exchange(tx, rx)
        pem = generate_test_pki()["ca.pem"]
        host.exchange(b'AT+QFUPL="cacert.pem",%d,100\r\n' % len(pem),
                      b'AT+QFUPL="cacert.pem",%d,100\r\r\nCONNECT\r\n' % len(pem))
        # The PEM alone is the file (the LF of the line end was not data), and the firmware's own
        # expectation for what follows it: "+QFUPL: %d,%x\r\n\r\nOK\r\n" from the first byte, its
        # quectel_xor_checksum, with no CR LF between the data and the line.
        host.exchange(pem, b"+QFUPL: %d,%x\r\n\r\nOK\r\n" % (len(pem), xor_of_words(pem)))
        assert host.h.files.read("cacert.pem") == pem
        host.exchange(b'AT+QSSLCFG="cacert",1,"cacert.pem"\r\n', b'AT+QSSLCFG="cacert",1,"cacert.pem"\r\r\nOK\r\n')
        # The one command whose LF comes back before the answer; the size follows (its "+5").
        got = host.exchange(b"AT+QFLST\r\n", b'AT+QFLST\r\n\r\n+QFLST: "UFS:cacert.pem",', extra=5)
        assert got.endswith((str(len(pem)).encode() + b"\r\n")[:5])


def started_with_url(url: bytes) -> StrncmpHost:
    """That firmware started up (EC200T_START), the URL set as it sets it."""
    host = StrncmpHost(CoreHarness(echo=True))
    for tx, rx in EC200T_START:
        host.exchange(tx, rx)
    host.exchange(b"AT+QHTTPURL=%d,30\r\n" % len(url), b"AT+QHTTPURL=%d,30\r\r\nCONNECT\r\n" % len(url))
    host.exchange(url, b"\r\nOK\r\n")
    return host


def test_the_ec200t_firmware_posts_and_reads_the_answer():
    # lte_send_data_to_cloud_post: the URL, the POST with its body, then AT+QHTTPREAD.
    with no_internal_errors():
        host = started_with_url(b"http://ipgsm.example.com/api/logs/gemini")
        body = b"\x01\x02fire\r\n\x00log"
        peer = Peer(host.h)
        # CONNECT comes once the module has connected to the server, still right after the echoed CR.
        host.exchange(b"AT+QHTTPPOST=%d,30\r\n" % len(body), b"AT+QHTTPPOST=%d,30\r\r\nCONNECT\r\n" % len(body),
                      peer=peer.accept)
        host.exchange(body, b"\r\nOK\r\n\r\n+QHTTPPOST: 0,201,7\r\n",
                      peer=lambda: answer_http(peer, b"HTTP/1.1 201 Created\r\nContent-Length: 7\r\n\r\nSuccess"))
        assert peer.take().endswith(b"\r\n\r\n" + body)
        host.exchange(b"AT+QHTTPREAD=7\r\n", b"AT+QHTTPREAD=7\r\r\nCONNECT\r\nSuccess\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n")
        host.exchange(b"AT+QHTTPSTOP\r\n", b"AT+QHTTPSTOP\r\r\nOK\r\n")


def test_the_ec200t_firmware_gets_with_the_urc_right_after_ok():
    # CMD_RX_GPRS_GET: the +QHTTPGET URC, which waits for the server, follows the OK directly.
    with no_internal_errors():
        host = started_with_url(b"http://ipgsm.example.com/api/files/fw.bin")
        peer = Peer(host.h)

        def serve() -> bytes:
            return peer.accept() + answer_http(peer, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfw01")

        host.exchange(b"AT+QHTTPGET=30\r\n", b"AT+QHTTPGET=30\r\r\nOK\r\n\r\n+QHTTPGET: 0,200", extra=4, peer=serve)
        host.exchange(b"AT+QHTTPREAD=4\r\n", b"AT+QHTTPREAD=4\r\r\nCONNECT\r\nfw01\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n")


# --- Quectel's host SDK (user-friendly-project) ---------------------------------------------------


class RtThreadAtClient:
    """How the SDK's AT client reads: lines ending in CR LF; URC lines by their prefix."""

    URCS = (b"+QHTTPGET:", b"+QHTTPREAD:", b"+QHTTPPOST:", b"+QHTTPPUT:")  # its HTTP URC table

    def __init__(self, h: CoreHarness):
        self.h = h
        self.received = bytearray()
        self.urcs: list[bytes] = []

    def send_line(self, text: bytes) -> None:
        self.received += self.h.send(text + b"\r\n")  # at_vprintfln: the line and CR LF, one write

    def readline(self) -> bytes:
        end = self.received.find(b"\r\n")
        assert end >= 0, f"the client waits for a line end in {bytes(self.received)!r}"
        line = bytes(self.received[:end + 2])
        del self.received[:end + 2]
        return line

    def execute(self, text: bytes, line_num: int = 0, meanwhile=None) -> list[bytes]:
        """at_obj_exec_cmd: the reply's lines, until OK (when no line count is set), ERROR, the set
        number of lines, or a URC (whose handler releases the wait). ``meanwhile``: what the
        network does while the client waits."""
        self.send_line(text)
        if meanwhile is not None:
            self.received += meanwhile()
        lines: list[bytes] = []
        while True:
            line = self.readline()
            if line.startswith(self.URCS):
                self.urcs.append(line)
                return lines
            lines.append(line)
            if line_num == 0 and line.startswith(b"OK"):
                return lines
            assert b"ERROR" not in line, lines
            if line_num and len(lines) == line_num:
                return lines

    def receive(self, count: int) -> bytes:
        """at_client_obj_recv: raw bytes."""
        assert len(self.received) >= count, bytes(self.received)
        data = bytes(self.received[:count])
        del self.received[:count]
        return data


def test_the_sdk_sets_the_url_gets_and_reads_the_body():
    # ql_http_request with QL_HTTP_METHORD_GET: ql_http_set_url, ql_http_get, ql_http_read.
    with no_internal_errors():
        h = CoreHarness(echo=True)
        client = RtThreadAtClient(h)
        assert client.execute(b"AT")[-1] == b"OK\r\n"
        assert client.execute(b"AT+QIACT=1")[-1] == b"OK\r\n"
        assert client.execute(b'AT+QHTTPCFG="sslctxid",0')[-1] == b"OK\r\n"
        url = b"http://example.com/test.txt"
        # Two lines: the echo, then CONNECT (at_resp_get_line_by_kw(resp, "CONNECT")).
        assert client.execute(b"AT+QHTTPURL=%d,60" % len(url), line_num=2) == [
            b"AT+QHTTPURL=%d,60\r\r\n" % len(url), b"CONNECT\r\n"]
        # The URL goes through at_vprintfln too, CR LF after it, in the same write as the URL's last
        # byte: dropped with it (REFERENCE.md "Data after a prompt"), so no empty line follows.
        assert client.execute(url) == [b"\r\n", b"OK\r\n"]
        peer = Peer(h)

        def serve() -> bytes:
            return peer.accept() + answer_http(peer, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")

        # Asked for four lines: the echo, OK and the empty line before the URC, which follows the OK
        # at once; the URC's handler takes it and ends the wait.
        assert client.execute(b"AT+QHTTPGET=60", line_num=4, meanwhile=serve) == [
            b"AT+QHTTPGET=60\r\r\n", b"OK\r\n", b"\r\n"]
        assert client.urcs[-1] == b"+QHTTPGET: 0,200,5\r\n"
        # ql_http_read: its callback takes the first line, then exactly "CONNECT\r\n", the body, "\r\nOK\r\n".
        client.send_line(b"AT+QHTTPREAD=60")
        assert client.readline() == b"AT+QHTTPREAD=60\r\r\n"
        assert client.receive(len(b"CONNECT\r\n")) == b"CONNECT\r\n"
        assert client.receive(5) == b"hello"
        assert client.receive(len(b"\r\nOK\r\n")) == b"\r\nOK\r\n"
        assert client.readline() == b"\r\n"
        assert client.readline() == b"+QHTTPREAD: 0\r\n"
        assert client.received == b""


def test_the_sdk_lists_files():
    # ql_file's list: the callback takes the first line, then lines until OK.
    h = CoreHarness(echo=True)
    h.files.write("a.txt", b"abc")
    client = RtThreadAtClient(h)
    assert client.execute(b"AT")[-1] == b"OK\r\n"
    client.send_line(b'AT+QFLST="*"')
    assert client.readline() == b'AT+QFLST="*"\r\n'  # the LF came back before the listing
    assert [client.readline() for _ in range(4)] == [b"\r\n", b'+QFLST: "UFS:a.txt",3\r\n', b"\r\n", b"OK\r\n"]
    assert client.received == b""
