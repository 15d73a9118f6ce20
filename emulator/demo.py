"""``ecemu demo``: the SSL application note's chapter 3 examples, played through the port.

A TLS server with the test PKI listens on 127.0.0.1 and behaves as the note's server does: on each
connection it answers "Test data from SSL" once the two sends of the example (36 bytes) have come.
An emulated module runs on a pty. A host opens the pty with pyserial and types each example's
commands and data; the transcript shows what the host sent and what the module answered, and each
example passes when every answer is, byte for byte, what the note shows. The note's server address
and ports (220.180.239.212, 8010, 8011) become 127.0.0.1 and the local server's port; the local
port AT+QSSLSTATE reports, and the checksum of the uploaded CA file, may be anything. The CA file
is uploaded with AT+QFUPL before the SSL context points at it, as the note's chapter 4 asks.

Then the module's own stacks on the same SSL contexts: an HTTPS GET (HTTP(S) note's GET flow) from a
local HTTPS server, and an MQTT publish/subscribe over TLS (MQTT note's chapter 4 flow) through a
local Mosquitto broker, when the machine has one.

The examples run in order, each on what the one before set up; after a failure the rest are not
run. Every wait is bounded, so the demo always ends.
"""

from __future__ import annotations

import os
import re
import select
import time
from dataclasses import dataclass, field
from typing import Callable

import serial

from .api import Emulator
from .echo_server import TlsEchoServer
from .http_server import HttpTestServer
from .mqtt_broker import BrokerUnavailable, MqttBroker
from .profile import DEFAULT_PROFILE
from .shell.trace import visible

DEMO_ESCAPE_GUARD_MS = 200  # the module's is 1000 ms; shorter keeps the demo quick
STEP_TIMEOUT = 10.0  # longest wait for one answer
NOTE_DATA = b"Test data from SSL"
CTRL_Z = b"\x1a"

# The final result codes that end a command's answer.
FINAL = rb"\r\n(?:OK|ERROR|\+CME ERROR: [^\r]*|SEND OK|SEND FAIL|CONNECT|NO CARRIER)\r\n"
# What may differ from the note: {local_port} in AT+QSSLSTATE, {checksum} of AT+QFUPL.
VARIABLE = {b"{local_port}": rb"\d+", b"{checksum}": rb"[0-9a-f]+"}


@dataclass
class Step:
    """The host sends ``send`` (nothing when empty), then reads the module's answer.

    ``expect`` is the answer as the note shows it; ``until`` a regex ending it (default: a final
    result code, or ``expect`` itself for a step that only waits). ``expect=None``: read nothing.
    ``escape``: ``send`` is +++, with the guard time of silence before it (note 1.4).
    """

    send: bytes = b""
    expect: bytes | None = b""
    until: bytes | None = None
    shown: str | None = None
    comment: str = ""
    escape: bool = False

    def pattern(self) -> re.Pattern[bytes]:
        text = re.escape(self.expect or b"")
        for placeholder, regex in VARIABLE.items():
            text = text.replace(re.escape(placeholder), regex)
        return re.compile(text, re.S)

    def end(self) -> re.Pattern[bytes]:
        if self.until is not None:
            return re.compile(self.until + b"|" + FINAL)
        if not self.send:
            return self.pattern()
        return re.compile(FINAL)


@dataclass
class Example:
    number: str
    title: str
    steps: list[Step] = field(default_factory=list)


def command(line: str, answer: str = "", comment: str = "", final: str = "OK") -> Step:
    """An AT command line as the note shows it, echoed (echo is on after power-on)."""
    sent = line.encode() + b"\r"
    body = f"\r\n{answer}\r\n" if answer else ""
    return Step(sent, sent + body.encode() + f"\r\n{final}\r\n".encode(), comment=comment)


HTTP_PATH = "/demo.html"
MQTT_MESSAGE = b"This is test data, hello MQTT."


def http_example(https_port: int) -> Example:
    """An HTTPS GET on SSL context 1 as 3.2 set it up (TLS 1.0, one suite, the server verified)."""
    url = f"https://127.0.0.1:{https_port}{HTTP_PATH}"
    body = f"Hello from ecemu: {HTTP_PATH}\n".encode()
    return Example("HTTPS", "GET through SSL context 1 (HTTP(S) note)", [
        command('AT+QHTTPCFG="contextid",1', comment="PDP context 1"),
        command('AT+QHTTPCFG="sslctxid",1', comment="TLS as SSL context 1 says"),
        command(f"AT+QHTTPURL={len(url)},80", final="CONNECT", comment="the URL follows"),
        Step(url.encode(), b"\r\nOK\r\n", comment="(not echoed)"),
        command("AT+QHTTPGET=80", comment="send the GET request"),
        Step(expect=f"\r\n+QHTTPGET: 0,200,{len(body)}\r\n".encode(), comment="status 200 and its length"),
        command("AT+QHTTPREAD=80", final="CONNECT", comment="read the body"),
        Step(expect=body + b"\r\nOK\r\n"),
        Step(expect=b"\r\n+QHTTPREAD: 0\r\n", comment="all of it"),
    ])


def mqtt_example(tls_port: int) -> Example:
    """Publish and subscribe over TLS, SSL context 2 verifying the broker (any TLS version)."""
    topic = '"demo/topic"'
    return Example("MQTTS", "publish and subscribe over TLS (MQTT note chapter 4)", [
        command('AT+QSSLCFG="seclevel",2,1', comment="SSL context 2 verifies the broker"),
        command('AT+QSSLCFG="cacert",2,"UFS:cacert.pem"'),
        command('AT+QMTCFG="ssl",0,1,2', comment="MQTT client 0 over TLS, SSL context 2"),
        command(f'AT+QMTOPEN=0,"127.0.0.1",{tls_port}', comment="open the network"),
        Step(expect=b"\r\n+QMTOPEN: 0,0\r\n", comment="opened"),
        command('AT+QMTCONN=0,"ecemu-demo"', comment="connect as client ecemu-demo"),
        Step(expect=b"\r\n+QMTCONN: 0,0,0\r\n", comment="accepted"),
        command(f"AT+QMTSUB=0,1,{topic},1", comment="subscribe, QoS 1"),
        Step(expect=b"\r\n+QMTSUB: 0,1,0,1\r\n", comment="granted QoS 1"),
        Step(f"AT+QMTPUBEX=0,0,0,0,{topic},{len(MQTT_MESSAGE)}\r".encode(),
             f"AT+QMTPUBEX=0,0,0,0,{topic},{len(MQTT_MESSAGE)}\r\r\n> ".encode(), until=rb"\r\n> ",
             comment="publish 30 bytes, QoS 0"),
        Step(MQTT_MESSAGE, MQTT_MESSAGE + b"\r\nOK\r\n"),
        Step(expect=b"\r\n+QMTPUBEX: 0,0,0\r\n", comment="sent"),
        Step(expect=f"\r\n+QMTRECV: 0,0,{topic},\"{MQTT_MESSAGE.decode()}\"\r\n".encode(),
             comment="and back from the broker"),
        command("AT+QMTDISC=0", comment="disconnect"),
        Step(expect=b"\r\n+QMTDISC: 0,0\r\n"),
    ])


def examples(port: int, ca_pem: bytes, https_port: int | None = None, mqtt_tls_port: int | None = None) -> list[Example]:
    """Chapter 3 of the SSL note, with the server at 127.0.0.1:``port``; then HTTPS and MQTT(S)
    when their servers are given."""
    server = f'"127.0.0.1",{port}'

    def open_client(mode: int) -> list[Step]:
        line = f"AT+QSSLOPEN=1,1,4,{server},{mode}"
        if mode == 2:
            return [command(line, final="CONNECT", comment="set up an SSL connection, transparent mode")]
        return [
            command(line, comment="set up an SSL connection"),
            Step(expect=b"\r\n+QSSLOPEN: 4,0\r\n", comment="set up successfully"),
            command("AT+QSSLSTATE",
                    f'+QSSLSTATE: 4,"SSLClient",{server},{{local_port}},2,1,4,{mode},"usbmodem",1',
                    comment="the state of all SSL connections"),
        ]

    def send_both() -> list[Step]:
        return [
            Step(b"AT+QSSLSEND=4\r", b"AT+QSSLSEND=4\r\r\n> ", until=rb"\r\n> ",
                 comment="send variable-length data"),
            Step(NOTE_DATA + CTRL_Z, NOTE_DATA + CTRL_Z + b"\r\nSEND OK\r\n", comment="ended by Ctrl+Z"),
            Step(b"AT+QSSLSEND=4,18\r", b"AT+QSSLSEND=4,18\r\r\n> ", until=rb"\r\n> ",
                 comment="send fixed-length data, 18 bytes"),
            Step(NOTE_DATA, NOTE_DATA + b"\r\nSEND OK\r\n"),
        ]

    close = command("AT+QSSLCLOSE=4", comment="close the SSL connection")
    return [
        Example("3.1", "Configure and activate a PDP context", [
            command('AT+QICSGP=1,1,"UNINET","","","",1', comment="configure PDP context 1, APN UNINET"),
            command("AT+QIACT=1", comment="activate PDP context 1"),
            command("AT+QIACT?", '+QIACT: 1,1,1,"10.7.157.1"', comment="the state of the PDP contexts"),
        ]),
        Example("3.2", "Configure an SSL context (the CA file uploaded first, chapter 4)", [
            Step(f'AT+QFUPL="cacert.pem",{len(ca_pem)}\r'.encode(),
                 f'AT+QFUPL="cacert.pem",{len(ca_pem)}\r\r\nCONNECT\r\n'.encode(),
                 comment="upload the trusted CA certificate"),
            Step(ca_pem, f"+QFUPL: {len(ca_pem)},{{checksum}}\r\n\r\nOK\r\n".encode(),
                 shown=f"<{len(ca_pem)} bytes: the test PKI's CA certificate, PEM>"),
            command('AT+QSSLCFG="sslversion",1,1', comment="TLS 1.0"),
            command('AT+QSSLCFG="ciphersuite",1,0X0035', comment="TLS_RSA_WITH_AES_256_CBC_SHA"),
            command('AT+QSSLCFG="secllevel",1,1', comment="verify the server"),
            command('AT+QSSLCFG="cacert",1,"UFS:cacert.pem"', comment="against this CA"),
        ]),
        Example("3.3", "SSL client in buffer access mode", [
            *open_client(0),
            *send_both(),
            Step(expect=b'\r\n+QSSLURC: "recv",4\r\n', comment="client 4 has received data"),
            command("AT+QSSLRECV=4,1500", "+QSSLRECV: 18\r\nTest data from SSL", comment="read it"),
            command("AT+QSSLRECV=4,1500", "+QSSLRECV: 0", comment="no data in the buffer"),
            close,
        ]),
        Example("3.4", "SSL client in direct push mode", [
            *open_client(1),
            *send_both(),
            Step(expect=b'\r\n+QSSLURC: "recv",4,18\r\nTest data from SSL\r\n', comment="the data, pushed"),
            close,
        ]),
        Example("3.5", "SSL client in transparent transmission mode", [
            *open_client(2),
            Step(NOTE_DATA, None, comment="data straight to the server"),
            Step(NOTE_DATA, NOTE_DATA, until=re.escape(NOTE_DATA), comment="... and the server's answer"),
            Step(b"+++", b"\r\nOK\r\n", comment="leave transparent mode", escape=True),
            close,
        ]),
        *([http_example(https_port)] if https_port is not None else []),
        *([mqtt_example(mqtt_tls_port)] if mqtt_tls_port is not None else []),
        Example("3.1.3", "Deactivate a PDP context", [
            command("AT+QIDEACT=1", comment="deactivate PDP context 1"),
        ]),
    ]


def show(data: bytes) -> list[str]:
    """Bytes as lines a person reads: broken after each LF and after a CR not followed by LF."""
    pieces = re.findall(rb"[^\r\n]*(?:\r\n|\r(?!\n)|\n)|[^\r\n]+$", data)
    return [visible(piece.decode("latin-1")) for piece in pieces] or [""]


def _read_boot(port: str, last: bytes, timeout: float) -> bytes:
    """The boot URCs, read by a first open of the port that, unlike pyserial's, flushes nothing."""
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    data = b""
    try:
        deadline = time.monotonic() + timeout
        while last not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                break
            data += os.read(fd, 4096)
    finally:
        os.close(fd)
    return data


class _Host:
    """The host's side of the port: pyserial, and a buffer of what has come and is not yet read."""

    def __init__(self, path: str):
        self.serial = serial.Serial(path, 115200, timeout=0.05)
        self.buffer = bytearray()

    def read(self, end: re.Pattern[bytes], timeout: float) -> tuple[bytes, bool]:
        """Everything up to the end of the first match of ``end``; on timeout, all that came."""
        deadline = time.monotonic() + timeout
        while (match := end.search(self.buffer)) is None:
            if time.monotonic() >= deadline:
                return self._take(len(self.buffer)), False
            self.buffer += self.serial.read(max(1, self.serial.in_waiting))
        return self._take(match.end()), True

    def listen(self, seconds: float) -> None:
        """Stay quiet for ``seconds``, keeping whatever comes meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.buffer += self.serial.read(max(1, self.serial.in_waiting))

    def _take(self, end: int) -> bytes:
        out = bytes(self.buffer[:end])
        del self.buffer[:end]
        return out

    def close(self) -> None:
        self.serial.close()


class Transcript:
    def __init__(self, echo: Callable[[str], None], quiet: bool):
        self.echo, self.quiet = echo, quiet

    def line(self, text: str = "") -> None:
        if not self.quiet:
            self.echo(text)

    def exchange(self, who: str, lines: list[str], comment: str = "") -> None:
        for index, text in enumerate(lines):
            label = who if index == 0 else ""
            row = f"  {label:<8}{text}"
            if comment and index == 0:
                row = f"{row:<58} {comment}" if len(row) < 58 else f"{row}   {comment}"
            self.line(row.rstrip())

    def always(self, text: str) -> None:
        self.echo(text)


def run_demo(profile: str = DEFAULT_PROFILE, escape_guard_ms: int = DEMO_ESCAPE_GUARD_MS, quiet: bool = False,
             echo: Callable[[str], None] = print) -> bool:
    """Play the examples; True when every one passes."""
    out = Transcript(echo, quiet)
    guard = escape_guard_ms / 1000.0
    results: list[str] = []  # per example: pass, fail, not run
    try:
        broker: MqttBroker | None = MqttBroker().start()
    except BrokerUnavailable:
        broker = None
    try:
        return _run(profile, escape_guard_ms, out, guard, results, broker)
    finally:
        if broker is not None:
            broker.close()


def _run(profile: str, escape_guard_ms: int, out: Transcript, guard: float, results: list[str],
         broker: MqttBroker | None) -> bool:
    with TlsEchoServer(answer=NOTE_DATA, answer_after=2 * len(NOTE_DATA)) as server, \
            HttpTestServer(tls=True) as https, \
            Emulator(profile=profile, escape_guard_ms=escape_guard_ms) as modem:
        modem.wait_for_boot()
        boot_end = modem.profile.boot_urcs[-1].text.encode() + b"\r\n" if modem.profile.boot_urcs else b""
        booted = _read_boot(modem.port, boot_end, STEP_TIMEOUT)
        host = _Host(modem.port)
        try:
            out.line(f"ecemu demo: the SSL application note's chapter 3 examples on an emulated {profile}")
            out.line(f"  port    {modem.port}, opened with pyserial as a host program would")
            out.line(f"  server  127.0.0.1:{server.port}, TLS with the test PKI, for the note's "
                     "220.180.239.212:8010/8011;")
            out.line(f'          it answers "{NOTE_DATA.decode()}" once a connection has sent it 36 bytes')
            out.line(f"  https   127.0.0.1:{https.port}, HTTPS with the same PKI")
            if broker is not None:
                out.line(f"  mqtt    127.0.0.1:{broker.tls_port}, Mosquitto over TLS with the same PKI")
            else:
                out.line("  mqtt    no Mosquitto on this machine: the MQTT(S) example is left out")
            out.line(r"  host: what the host sent; module: what the module answered. \r is CR, \n is LF, "
                     "^Z is Ctrl+Z.")
            out.line()
            out.line("Power-on (the boot URCs wait in the port until a host first opens it)")
            out.exchange("module", show(booted))
            mqtt_port = broker.tls_port if broker is not None else None
            assert server.ca_pem is not None  # the server was made with the test PKI
            for example in examples(server.port, server.ca_pem, https.port, mqtt_port):
                if "fail" in results:
                    out.always(f"  ----  {example.number} {example.title}: not run (it builds on the failed one)")
                    results.append("not run")
                    continue
                results.append("pass" if _play(example, host, guard, out) else "fail")
        finally:
            host.close()
    out.line()
    if results and all(r == "pass" for r in results):
        out.always(f"All {len(results)} examples pass: every answer is the one the note shows.")
        return True
    out.always(f"{results.count('pass')} examples pass, {results.count('fail')} FAIL, "
               f"{results.count('not run')} not run.")
    return False


def _play(example: Example, host: _Host, guard: float, out: Transcript) -> bool:
    out.line()
    out.line(f"{example.number} {example.title}")
    for step in example.steps:
        if step.escape:
            # The guard time of silence before +++; the module waits the one after it.
            host.listen(guard * 1.5)
            out.exchange("host", [f"(silence, {guard * 1500:.0f} ms)"])
        if step.send:
            out.exchange("host", [step.shown] if step.shown else show(step.send), step.comment)
            host.serial.write(step.send)
        if step.expect is None:
            continue
        timeout = STEP_TIMEOUT + (guard if step.escape else 0.0)
        received, ended = host.read(step.end(), timeout)
        if received:
            out.exchange("module", show(received), "" if step.send else step.comment)
        if not ended or not step.pattern().fullmatch(received):
            out.always(f"  FAIL  {example.number} {example.title}")
            if step.send:
                out.always(f"        after:    {(step.shown or ''.join(show(step.send)))}")
            out.always(f"        the note: {''.join(show(step.expect))}")
            silent = "" if ended else f"  (then nothing for {timeout:.0f} s)"
            out.always(f"        received: {''.join(show(received))}{silent}")
            return False
    out.always(f"  PASS  {example.number} {example.title}")
    return True
