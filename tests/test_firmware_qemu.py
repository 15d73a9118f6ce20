"""Real firmware against the emulator: the bare-metal C firmware in tests/firmware, built here with
Debian's gcc-arm-none-eabi and run on a Cortex-M3 in QEMU (``-M lm3s6965evb``), drives the module
through its UART0 as an application on an MCU would: AT and echo, the PDP context, a CA uploaded
with AT+QFUPL, a verified TLS connection to a local echo server carrying every byte value both
ways, the same over plain TCP, and closing. It reports each step through semihosting; the tests
compare the report with what the documents say the module answers, byte for byte, and check what
the servers received.

The UART reaches the emulator in each of the ways a simulator offers one: QEMU opening the
emulator's pty, ``ecemu run --device`` on the pty QEMU made (``-serial pty``), and raw TCP with the
emulator listening (``--tcp-raw``) or connecting to QEMU (``--connect``).

With CI=true a missing part (compiler, C library, QEMU) fails the tests instead of skipping them;
scripts/test installs the parts as root.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.parts import require
from tests.plain_servers import TcpEchoServer
from tests.processes import RunningEmulator
from tests.tls_servers import TlsServer
from tests.wire import file_checksum

FIRMWARE_SOURCES = Path(__file__).parent / "firmware"
C_FILES = ("startup.c", "board.c", "bench.c", "at.c", "main.c")
COMPILE = ["-mcpu=cortex-m3", "-mthumb", "-Os", "-g", "-std=c11", "-Wall", "-Wextra", "-Werror",
           "-ffunction-sections", "-fdata-sections", "-nostartfiles", "--specs=nano.specs",
           "--specs=nosys.specs", "-Wl,--gc-sections"]
SESSION_TIMEOUT = 90.0  # a session takes a few seconds; this bound only matters when one hangs
START_TIMEOUT = 15.0

def _require_parts() -> None:
    for part in ("gcc-arm-none-eabi", "newlib-arm", "qemu"):
        require(part)


@pytest.fixture(scope="session")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require_parts()
    elf = tmp_path_factory.mktemp("firmware") / "firmware.elf"
    build = subprocess.run(
        ["arm-none-eabi-gcc", *COMPILE, "-T", "lm3s6965.ld", "-o", str(elf), *C_FILES],
        cwd=FIRMWARE_SOURCES, capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    return elf


# --- what the firmware should report ---------------------------------------------------------------



TLS_PAYLOAD = bytes(range(256))
TCP_PAYLOAD = bytes(reversed(range(256)))
BOOT_URCS = {"RDY", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE"}


def expected_steps(tls_port: int, tcp_port: int, ca: bytes) -> list[str]:
    """The report's step lines in order: each command, then its answer's lines as the firmware
    read them (its echo first while echo is on), joined by " | "."""
    size = len(ca)
    return [
        "module: answers",
        "module: initialised",
        "AT+CGMI => AT+CGMI | Quectel | OK",
        "ATE1 => ATE1 | OK",
        "AT => AT | OK",
        "ATE0 => ATE0 | OK",
        "AT => OK",
        "AT+CMEE=1 => OK",
        "AT+CPIN? => +CPIN: READY | OK",
        'AT+QICSGP=1,1,"UNINET","","",1 => OK',
        "AT+QIACT=1 => OK",
        'AT+QIACT? => +QIACT: 1,1,1,"10.7.157.1" | OK',
        'AT+QFDEL="ca.pem" => +CME ERROR: 405',  # 405: file not found, in a fresh UFS
        f'AT+QFUPL="ca.pem",{size},10 => CONNECT | +QFUPL: {size},{file_checksum(ca)} | OK',
        'AT+QSSLCFG="sslversion",1,4 => OK',
        'AT+QSSLCFG="ciphersuite",1,0XFFFF => OK',
        'AT+QSSLCFG="seclevel",1,1 => OK',
        'AT+QSSLCFG="cacert",1,"UFS:ca.pem" => OK',
        f'AT+QSSLOPEN=1,1,1,"127.0.0.1",{tls_port},0 => OK',
        "tls open: 0",
        "AT+QSSLSEND=1,256 => > | SEND OK",
        "<reads +QSSLRECV>",
        f"tls echo: {TLS_PAYLOAD.hex()}",
        "AT+QSSLCLOSE=1 => OK",
        f'AT+QIOPEN=1,0,"TCP","127.0.0.1",{tcp_port},0,0 => OK',
        "tcp open: 0",
        "AT+QISEND=0,256 => > | SEND OK",
        "<reads +QIRD>",
        f"tcp echo: {TCP_PAYLOAD.hex()}",
        "AT+QICLOSE=0 => OK",
        "AT+QIDEACT=1 => OK",
        "uart: 0 lost, 0 line errors, 0 unexpected lines",
        "result: PASS",
    ]


READ_LINE = re.compile(r"(AT\+QSSLRECV=1|AT\+QIRD=0),(\d+) => (\+QSSLRECV|\+QIRD): (\d+)( \| <data>)? \| OK")


@dataclass
class Report:
    steps: list[str] = field(default_factory=list)
    urcs: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def parse_report(text: str) -> Report:
    """Split the report into steps, URCs (which come whenever the module sends them) and stale
    answers; each run of reads of one socket becomes one "<reads ...>" step once its lines are
    checked: every read asks for what is still missing and gets data unless it reads 0."""
    report = Report()
    wanted = 0
    for line in text.splitlines():
        if line.startswith("urc: "):
            report.urcs.append(line[5:])
        elif line.startswith("stale: "):
            report.stale.append(line[7:])
        elif line.startswith("ring buffer: "):
            pass  # how full it got depends on timing
        elif match := READ_LINE.fullmatch(line):
            asked, got = int(match[2]), int(match[4])
            header = f"<reads {match[3]}>"
            if not report.steps or report.steps[-1] != header:
                report.steps.append(header)
                wanted = 256
            assert asked == wanted and got <= asked and (got > 0) == bool(match[5]), line
            wanted -= got
        else:
            report.steps.append(line)
    return report


# --- QEMU and the servers ----------------------------------------------------------------------------


def read_until_match(stream, pattern: re.Pattern, timeout: float = START_TIMEOUT) -> re.Match:
    """Read a process's pipe until a line matches; bounded."""
    seen = b""
    deadline = time.monotonic() + timeout
    while not (match := pattern.search(seen.decode(errors="replace"))):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([stream], [], [], remaining)[0]:
            raise TimeoutError(f"waited for {pattern.pattern!r}; got {seen!r}")
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            raise RuntimeError(f"QEMU exited; it said {seen!r}")
        seen += chunk
    return match


class Qemu:
    """The firmware on QEMU's lm3s6965evb; ``serial`` are the options that make UART0. Always
    killed on leaving the ``with`` block."""

    def __init__(self, firmware: Path, serial: list[str], settings: dict[str, str], folder: Path):
        self.report_path = folder / "report.txt"
        arguments = ",".join(f"arg={key}={value}" for key, value in settings.items())
        self.process = subprocess.Popen(
            ["qemu-system-arm", "-M", "lm3s6965evb", "-display", "none", "-monitor", "none", "-nodefaults",
             "-kernel", str(firmware), *serial,
             "-chardev", f"file,id=report,path={self.report_path}",
             "-semihosting-config", f"enable=on,target=native,chardev=report,arg=firmware,{arguments}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.process.stdout is not None and self.process.stderr is not None
        self.stdout, self.stderr = self.process.stdout, self.process.stderr

    def __enter__(self) -> "Qemu":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.stdout.close()
        self.stderr.close()

    def finish(self) -> tuple[int, str]:
        """Wait for the firmware to end the session; its exit status and report."""
        try:
            status = self.process.wait(SESSION_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"the firmware did not finish in {SESSION_TIMEOUT} s; it reported:\n"
                                 + self.report()) from None
        return status, self.report()

    def report(self) -> str:
        return self.report_path.read_text(errors="replace") if self.report_path.exists() else ""


@pytest.fixture
def servers(tmp_path):
    with TlsServer() as tls, TcpEchoServer() as tcp:
        ca = tmp_path / "ca.pem"
        ca.write_bytes(tls.pki["ca.pem"])
        settings = {"host": "127.0.0.1", "tls": str(tls.port), "tcp": str(tcp.port), "ca": str(ca)}
        yield tls, tcp, settings


def check_session(qemu: Qemu, emulator: RunningEmulator, servers) -> None:
    tls, tcp, settings = servers
    status, text = qemu.finish()
    report = parse_report(text)
    ca = Path(settings["ca"]).read_bytes()
    assert report.steps == expected_steps(tls.port, tcp.port, ca), text
    assert status == 0, text
    # Passed over: late answers (echo on) to the attempts the module took in before it could
    # answer, and pieces of AT+QINISTAT's echo when a boot URC cut into it.
    assert all(line in {"AT", "OK"} or line in "AT+QINISTAT" for line in report.stale), text
    required = ["+QSSLOPEN: 1,0", '+QSSLURC: "recv",1', "+QIOPEN: 0,0", '+QIURC: "recv",0']
    assert all(urc in report.urcs for urc in required), text
    assert set(report.urcs) <= BOOT_URCS | set(required), text
    assert tls.connection(0).received == TLS_PAYLOAD
    assert tls.seen[0].done.wait(10) and tls.seen[0].closed_by_client
    assert tcp.wait_received(0, 256) == TCP_PAYLOAD
    assert len(tls.seen) == 1 and len(tcp.received) == 1
    emulator.process.terminate()
    assert emulator.process.wait(10) == 0
    assert "Traceback" not in emulator.log_text()


def stop_quietly(emulator: RunningEmulator) -> None:
    """Whatever happened: the emulator's process ends and its log goes."""
    emulator.kill()
    if emulator.process.stdout is not None:
        emulator.process.stdout.close()
    emulator.log.close()


# --- the wirings ---------------------------------------------------------------------------------------


def test_firmware_on_the_emulators_pty(firmware, servers, tmp_path):
    """QEMU opens the pty ``ecemu run`` made, as ``-serial /dev/pts/N``."""
    emulator = RunningEmulator()
    try:
        with Qemu(firmware, ["-serial", emulator.port], servers[2], tmp_path) as qemu:
            check_session(qemu, emulator, servers)
    finally:
        stop_quietly(emulator)


def test_firmware_on_qemus_pty_through_device(firmware, servers, tmp_path):
    """QEMU makes its own pty (``-serial pty``) and ``ecemu run --device`` attaches to it."""
    with Qemu(firmware, ["-serial", "pty"], servers[2], tmp_path) as qemu:
        pty = read_until_match(qemu.stdout, re.compile(r"char device redirected to (/dev/pts/\d+)"))[1]
        emulator = RunningEmulator("--device", pty)
        try:
            check_session(qemu, emulator, servers)
        finally:
            stop_quietly(emulator)


ANNOUNCED_PORT = re.compile(r":(\d+)$")


def test_firmware_over_raw_tcp_to_a_listening_emulator(firmware, servers, tmp_path):
    """QEMU's UART is a TCP client (``-chardev socket,server=off``) of ``ecemu run --tcp-raw``."""
    emulator = RunningEmulator("--tcp-raw", "127.0.0.1:0")
    try:
        announced = ANNOUNCED_PORT.search(emulator.port)
        assert announced, emulator.port
        port = announced[1]
        serial = ["-chardev", f"socket,id=modem,host=127.0.0.1,port={port},server=off", "-serial", "chardev:modem"]
        with Qemu(firmware, serial, servers[2], tmp_path) as qemu:
            check_session(qemu, emulator, servers)
    finally:
        stop_quietly(emulator)


def test_firmware_over_raw_tcp_from_a_connecting_emulator(firmware, servers, tmp_path):
    """QEMU listens (``-chardev socket,server=on``, the guest starting once a client came) and
    ``ecemu run --connect`` connects to it."""
    serial = ["-chardev", "socket,id=modem,host=127.0.0.1,port=0,server=on,wait=on", "-serial", "chardev:modem"]
    with Qemu(firmware, serial, servers[2], tmp_path) as qemu:
        listening = read_until_match(qemu.stderr, re.compile(r"waiting for connection on: \S*:(\d+),server"))
        emulator = RunningEmulator("--connect", f"127.0.0.1:{listening[1]}")
        try:
            check_session(qemu, emulator, servers)
        finally:
            stop_quietly(emulator)
