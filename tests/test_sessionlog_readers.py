"""The readers (emulator/sessionlog/readers.py): each kind of log a user has, read into the records
of a session.

The transcripts below are written the way firmware and terminal programs print them (timestamps
in their common forms, markers of both directions, blank lines there or missing, the firmware's
own lines mixed in); the expected bytes are written out by hand from V.250's framing (an answer's
first line and every result code and URC between CR LF pairs). The trace and the socat capture
are made for real, through the emulator's port, and compared with what the host sent and got.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecemu.sessionlog import HOST, MODULE, LogError, ReadOptions, read_bytes
from tests.host import AtHost
from tests.parts import require


def shape(records):
    return [(r.time, r.direction, r.data) for r in records]


def untimed(records):
    return [(r.direction, r.data) for r in records]


# --- transcripts ------------------------------------------------------------------------------

SSCOM = """\
[09:41:07.118] AT+CPIN?
[09:41:07.125] AT+CPIN?
[09:41:07.125] +CPIN: READY
[09:41:07.125]
[09:41:07.125] OK
[09:41:12.530] ATI
[09:41:12.538] ATI
[09:41:12.538] Quectel
[09:41:12.538] EC800M
[09:41:12.538] Revision: EC800MCNGAR06A05M08
[09:41:12.538] OK
[09:41:20.001] AT+QIACT=1
[09:41:20.010] AT+QIACT=1
[09:41:20.410] OK
[09:41:31.002] +QIURC: "pdpdeact",1
"""


def test_a_terminal_program_log_with_times_and_echo_and_a_missing_blank_line():
    info, records = read_bytes(SSCOM.encode())
    assert info.format == "transcript"
    assert info.headers["line-ends"] == "inferred" and info.headers["timing"] == "real"
    assert info.warnings == []
    assert shape(records) == [
        (0.0, HOST, b"AT+CPIN?\r"),
        (0.007, MODULE, b"AT+CPIN?\r"),
        (0.007, MODULE, b"\r\n+CPIN: READY\r\n"),
        (0.007, MODULE, b"\r\nOK\r\n"),
        (5.412, HOST, b"ATI\r"),
        (5.42, MODULE, b"ATI\r"),
        (5.42, MODULE, b"\r\nQuectel\r\n"),
        (5.42, MODULE, b"EC800M\r\n"),
        (5.42, MODULE, b"Revision: EC800MCNGAR06A05M08\r\n"),
        (5.42, MODULE, b"\r\nOK\r\n"),
        (12.883, HOST, b"AT+QIACT=1\r"),
        (12.892, MODULE, b"AT+QIACT=1\r"),
        (13.292, MODULE, b"\r\nOK\r\n"),
        (23.884, MODULE, b'\r\n+QIURC: "pdpdeact",1\r\n'),
    ]


ESP_IDF = """\
I (312) main_task: Calling app_main()
--- modem check ---
I (829) SIM_4G: Sent command: AT
I (1329) SIM_4G: Received: AT
OK

I (1829) SIM_4G: Sent command: AT+CSQ
I (2329) SIM_4G: Received: AT+CSQ
+CSQ: 23,99
OK
waiting for the network...
I (5829) SIM_4G: Sent command: AT+QIACT=1
I (6339) SIM_4G: Received: AT+QIACT=1
ERROR
"""


def test_a_firmware_log_with_markers_continuation_lines_and_its_own_printing():
    info, records = read_bytes(ESP_IDF.encode())
    assert info.headers["line-ends"] == "inferred"
    # The firmware's own lines are reported with their numbers, never dropped silently.
    assert info.warnings == [
        (1, "not a line of the modem's dialogue: 'I (312) main_task: Calling app_main()'"),
        (2, "not a line of the modem's dialogue: '--- modem check ---'"),
        (11, "not a line of the modem's dialogue: 'waiting for the network...'"),
    ]
    assert shape(records) == [
        (0.0, HOST, b"AT\r"),
        (0.5, MODULE, b"AT\r"),
        (0.5, MODULE, b"\r\nOK\r\n"),
        (1.0, HOST, b"AT+CSQ\r"),
        (1.5, MODULE, b"AT+CSQ\r"),
        (1.5, MODULE, b"\r\n+CSQ: 23,99\r\n"),
        (1.5, MODULE, b"\r\nOK\r\n"),
        (5.0, HOST, b"AT+QIACT=1\r"),
        (5.51, MODULE, b"AT+QIACT=1\r"),
        (5.51, MODULE, b"\r\nERROR\r\n"),
    ]
    with pytest.raises(LogError, match=r"^<log>:1: not a line of the modem's dialogue"):
        read_bytes(ESP_IDF.encode(), options=ReadOptions(strict=True))


def test_arrows_whose_direction_the_log_itself_says():
    # One driver's debug print: "<-" what it sent, "->" what came, milliseconds at the end.
    log = """\
<- AT+QHTTPCFG="contextid",1 (20732)
-> OK (20736)
<- AT+QHTTPURL=27,80 (20736)
-> CONNECT (20739)
<- http://example.com/status (20739)
-> OK (20744)
<- AT+QHTTPGET=80 (20744)
-> OK (20746)
-> +QHTTPGET: 0,200,12 (20910)
"""
    info, records = read_bytes(log.encode())
    assert info.warnings == []
    assert shape(records) == [
        (0.0, HOST, b'AT+QHTTPCFG="contextid",1\r'),
        (0.004, MODULE, b"\r\nOK\r\n"),
        (0.004, HOST, b"AT+QHTTPURL=27,80\r"),
        (0.007, MODULE, b"\r\nCONNECT\r\n"),
        (0.007, HOST, b"http://example.com/status"),  # the URL is data: no line end
        (0.012, MODULE, b"\r\nOK\r\n"),
        (0.012, HOST, b"AT+QHTTPGET=80\r"),
        (0.014, MODULE, b"\r\nOK\r\n"),
        (0.178, MODULE, b"\r\n+QHTTPGET: 0,200,12\r\n"),
    ]


@pytest.mark.parametrize("host, module", [(">", "<"), ("-->", "<--"), (">>", "<<"), ("TX:", "RX:"),
                                          ("[TX]", "[RX]"), ("send:", "recv:")])
def test_the_common_direction_markers(host, module):
    log = (f"2024-05-02 10:00:00.100 {host} AT+CSQ\n"
           f"2024-05-02 10:00:00.180 {module} +CSQ: 18,99\n"
           f"2024-05-02 10:00:00.180 {module} OK\n"
           f"2024-05-02 10:00:01.000 {host} AT+QICSGP=1\n"
           f"2024-05-02 10:00:01.050 {module} +QICSGP: 1,\"CMNET\",\"\",\"\",0\n"
           f"2024-05-02 10:00:01.050 {module} OK\n")
    info, records = read_bytes(log.encode())
    assert info.warnings == []
    assert shape(records) == [
        (0.0, HOST, b"AT+CSQ\r"),
        (0.08, MODULE, b"\r\n+CSQ: 18,99\r\n"),
        (0.08, MODULE, b"\r\nOK\r\n"),
        (0.9, HOST, b"AT+QICSGP=1\r"),
        (0.95, MODULE, b'\r\n+QICSGP: 1,"CMNET","","",0\r\n'),
        (0.95, MODULE, b"\r\nOK\r\n"),
    ]


def test_a_log_that_shows_cr_and_lf_is_read_as_bytes():
    log = """\
[00:00:12.532,000] TX: AT+QSSLSEND=0,5\\r\\n
[00:00:12.540,000] RX: AT+QSSLSEND=0,5\\r\\r\\n> 
[00:00:12.600,000] TX: hello
[00:00:12.700,000] RX: hello\\r\\nSEND OK\\r\\n
"""
    info, records = read_bytes(log.encode())
    assert info.headers["line-ends"] == "exact"
    assert shape(records) == [
        (0.0, HOST, b"AT+QSSLSEND=0,5\r\n"),
        (0.008, MODULE, b"AT+QSSLSEND=0,5\r\r\n> "),
        (0.068, HOST, b"hello"),
        (0.168, MODULE, b"hello\r\nSEND OK\r\n"),
    ]


def test_a_driver_that_logs_every_piece_it_reads_with_cr_and_lf_tokens():
    log = """\
[1606200996742ms][INFO][CELL]: AT TX ( 6): AT+CSQ
[1606200996742ms][INFO][CELL]: AT TX ( 1): <cr>
[1606200996750ms][INFO][CELL]: AT RX ( 7): AT+CSQ<cr>
[1606200996750ms][INFO][CELL]: AT RX ( 2): <cr><ln>
[1606200996751ms][INFO][CELL]: AT RX (12): +CSQ: 19,99<cr>
[1606200996751ms][INFO][CELL]: AT RX ( 1): <ln>
[1606200996752ms][DBG ][CELL]: callback: 4104, err: 0, data: -1
[1606200996752ms][INFO][CELL]: AT RX ( 6): <cr><ln>OK<cr><ln>
"""
    info, records = read_bytes(log.encode())
    assert info.headers["line-ends"] == "exact"
    assert info.warnings == [
        (7, "a line without a direction: '[1606200996752ms][DBG ][CELL]: callback: 4104, err: 0, data: -1'")]
    assert b"".join(r.data for r in records if r.direction == HOST) == b"AT+CSQ\r"
    assert b"".join(r.data for r in records if r.direction == MODULE) == b"AT+CSQ\r\r\n+CSQ: 19,99\r\n\r\nOK\r\n"
    assert records[-1].time == 0.01


def test_a_pasted_session_without_markers_times_or_blank_lines():
    log = """\
RDY
+CPIN: READY
AT
OK
AT+CGSN
869487060012340
OK
AT+QSSLOPEN=1,1,4,"example.com",443,0
OK
+QSSLOPEN: 4,0
AT+QSSLSEND=4,3
> abc
SEND OK
Modem initialised!
"""
    info, records = read_bytes(log.encode())
    assert info.headers["timing"] == "none"
    assert info.warnings == [(14, "not a line of the modem's dialogue: 'Modem initialised!'")]
    assert untimed(records) == [
        (MODULE, b"\r\nRDY\r\n"),
        (MODULE, b"\r\n+CPIN: READY\r\n"),
        (HOST, b"AT\r"),
        (MODULE, b"\r\nOK\r\n"),
        (HOST, b"AT+CGSN\r"),
        (MODULE, b"\r\n869487060012340\r\n"),
        (MODULE, b"\r\nOK\r\n"),
        (HOST, b'AT+QSSLOPEN=1,1,4,"example.com",443,0\r'),
        (MODULE, b"\r\nOK\r\n"),
        (MODULE, b"\r\n+QSSLOPEN: 4,0\r\n"),
        (HOST, b"AT+QSSLSEND=4,3\r"),
        (MODULE, b"\r\n> abc\r\n"),
        (MODULE, b"\r\nSEND OK\r\n"),
    ]
    assert all(record.time is None for record in records)


def test_host_lines_may_end_with_cr_lf():
    info, records = read_bytes(b"> AT\n< OK\n", options=ReadOptions(host_line_end=b"\r\n"))
    assert untimed(records) == [(HOST, b"AT\r\n"), (MODULE, b"\r\nOK\r\n")]
    assert info.headers["host-line-end"] == "crlf"


def test_markers_the_user_names():
    log = "12:00:00.000 modem << AT+CREG?\n12:00:00.020 modem >> +CREG: 0,5\n12:00:00.020 modem >> OK\n"
    _, records = read_bytes(log.encode(), options=ReadOptions(host_marker="modem <<", module_marker="modem >>"))
    assert shape(records) == [(0.0, HOST, b"AT+CREG?\r"), (0.02, MODULE, b"\r\n+CREG: 0,5\r\n"),
                              (0.02, MODULE, b"\r\nOK\r\n")]


def test_a_clock_that_passes_midnight_keeps_counting():
    log = "[23:59:59.500] > AT\n[00:00:00.250] < OK\n"
    _, records = read_bytes(log.encode())
    assert [r.time for r in records] == [0.0, 0.75]


def test_binary_data_in_a_transcript_line_is_refused_with_its_number():
    with pytest.raises(LogError, match=r"^<log>:2: binary data \(byte 0x00\) at column 8"):
        read_bytes(b"> AT+QIRD=0\n< +QIRD\x00: 3\n")


# --- captures ---------------------------------------------------------------------------------

INTERCEPTTY = """\
< 0x41 (A)
< 0x54 (T)
< 0x0d ([CR])
> \t0x41 (A)
> \t0x54 (T)
> \t0x0d ([CR])
> \t0x0d ([CR])
> \t0x0a ([LF])
> \t0x4f (O)
> \t0x4b (K)
> \t0x0d ([CR])
> \t0x0a ([LF])
"""


def test_an_interceptty_capture():
    info, records = read_bytes(INTERCEPTTY.encode())
    assert info.format == "capture" and info.headers["capture"] == "interceptty"
    assert untimed(records) == [(HOST, b"AT\r"), (MODULE, b"AT\r\r\nOK\r\n")]


def test_an_interceptty_capture_with_times_and_line_grouping():
    log = ("[10:02 07.250000]< 41(A):54(T):49(I):0d([CR])\n"
           "[10:02 07.262500]> \t41(A):54(T):49(I):0d([CR])\n"
           "                 > \t0d([CR]):0a([LF])\n"
           "                 > \t45(E):43(C):38(8):30(0):30(0):4d(M):0d([CR]):0a([LF])\n")
    info, records = read_bytes(log.encode())
    assert info.headers["timing"] == "real"
    assert shape(records) == [(0.0, HOST, b"ATI\r"), (0.0125, MODULE, b"ATI\r\r\nEC800M\r\n")]


def test_a_capture_line_that_is_not_one_is_an_error_with_its_number():
    with pytest.raises(LogError, match=r"^<log>:3: not an interceptty line"):
        read_bytes(INTERCEPTTY.replace("< 0x0d ([CR])", "< 0xZZ").encode())


SOCAT = """\
> 2026/03/01 08:15:02.000120045  length=4 from=0 to=3
 41 54 0d 0a                                      AT..
--
< 2026/03/01 08:15:02.000120455  length=10 from=0 to=9
 41 54 0d 0a 0d 0a 4f 4b 0d 0a                    AT....OK..
--
"""


def test_a_socat_hex_capture_as_socat_1_7_writes_it():
    info, records = read_bytes(SOCAT.encode())
    assert info.format == "capture" and info.headers["capture"] == "socat"
    # socat 1.7 pads the microseconds to nine digits: 0.000410 s between the two.
    assert shape(records) == [(0.0, HOST, b"AT\r\n"), (0.00041, MODULE, b"AT\r\n\r\nOK\r\n")]


def test_a_socat_chunk_that_does_not_hold_its_length_is_an_error():
    with pytest.raises(LogError, match=r"^<log>:4: the chunk says length=10 but holds 9 bytes"):
        read_bytes(SOCAT.replace(" 41 54 0d 0a 0d 0a 4f 4b 0d 0a ", " 41 54 0d 0a 0d 0a 4f 4b 0d ").encode())


@pytest.fixture
def emulator(start_modem, tmp_path, monkeypatch):
    """An EC800M-CN alone (the test opens the port), traced: the trace is what is read back."""
    monkeypatch.setenv("ECEMU_NETWORK_RTT_MS", "0")
    trace = tmp_path / "trace.jsonl"
    return start_modem(profile="EC800M-CN", trace=trace, host=False)[0], trace


def converse(port: str) -> tuple[bytes, bytes]:
    """A host's short session; what it sent and what it received."""
    with AtHost(port, timeout=10) as host:
        sent = bytearray()
        got = bytearray()
        for line in ("ATE1", "AT+CGMM", "AT+QIACT=1", "AT+QIACT?"):
            sent += line.encode() + b"\r"
            got += host.ask(line)
    return bytes(sent), bytes(got)


def test_the_emulator_s_own_trace(emulator):
    modem, trace = emulator
    sent, got = converse(modem.port)
    deadline = time.monotonic() + 10
    while b'+QIACT: 1,1,1' not in trace.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.02)
    info, records = read_bytes(trace.read_bytes())
    assert info.format == "trace" and info.warnings == []
    assert b"".join(r.data for r in records if r.direction == HOST) == sent
    module = b"".join(r.data for r in records if r.direction == MODULE)
    assert module.endswith(got) and module[:-len(got)].startswith(b"\r\nRDY\r\n")  # the boot URCs first
    times = [r.time for r in records]
    assert times == sorted(times)


def test_runs_appended_to_one_trace_follow_one_another_and_lines_are_events():
    # Two runs of ecemu run --trace into one file: each starts its clock again with a session entry.
    trace = "\n".join([
        '{"t": 0, "modem": 0, "kind": "session", "started": "2026-01-01T10:00:00.000+00:00", "pid": 7}',
        '{"t": 0.5, "modem": 0, "kind": "host_in", "data": "AT\\r"}',
        '{"t": 0.51, "modem": 0, "kind": "host_out", "data": "\\r\\nOK\\r\\n"}',
        '{"t": 0.9, "modem": 0, "kind": "line", "name": "dtr", "active": false, "by": "host"}',
        '{"t": 0, "modem": 0, "kind": "session", "started": "2026-01-01T10:05:00.000+00:00", "pid": 8}',
        '{"t": 0.2, "modem": 0, "kind": "line_format", "baud": 9600, "framing": [3, 0]}',
        '{"t": 0.3, "modem": 0, "kind": "host_in", "data": "ATI\\r"}',
    ]) + "\n"
    info, records = read_bytes(trace.encode())
    assert info.format == "trace" and info.warnings == []
    assert [(r.time, r.direction, r.data) for r in records] == [
        (0.5, HOST, b"AT\r"),
        (0.51, MODULE, b"\r\nOK\r\n"),
        (0.9, "!", b"line dtr off by host"),
        (1.2, HOST, b"ATI\r"),
    ]


def test_a_trace_line_cut_short_is_reported_with_its_number(emulator):
    modem, trace = emulator
    converse(modem.port)
    lines = trace.read_bytes().splitlines(keepends=True)
    damaged = b"".join(lines[:3]) + lines[3][:10] + b"\n" + b"".join(lines[4:])
    info, _ = read_bytes(damaged)
    assert info.warnings[0] == (4, "not a JSON line of a trace (cut short?)")


def test_a_real_socat_capture_between_a_host_and_the_emulator(emulator, tmp_path):
    """socat -x -v sits between a host and the emulator's port, as a user would put it between
    a host and a module; its capture reads back as exactly the bytes each way."""
    socat = require("socat")
    modem, _ = emulator
    link = tmp_path / "tap"
    capture = tmp_path / "capture.txt"
    with open(capture, "wb") as errors:
        process = subprocess.Popen([socat, "-x", "-v", f"PTY,link={link},rawer", f"{modem.port},rawer"],
                                   stderr=errors, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not link.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        sent, got = converse(str(link))
    finally:
        process.terminate()
        process.wait(10)
    info, records = read_bytes(capture.read_bytes())
    assert info.format == "capture" and info.headers["capture"] == "socat"
    assert b"".join(r.data for r in records if r.direction == HOST) == sent
    # socat opened the port first: the boot URCs waiting there went to it (and on to the host,
    # unless its open flushed them), then everything the host got.
    module = b"".join(r.data for r in records if r.direction == MODULE)
    assert module.startswith(b"\r\nRDY\r\n") and module.endswith(got)


# --- big logs ---------------------------------------------------------------------------------

class _GeneratedLog(io.RawIOBase):
    """A session of ``size`` bytes made as it is read: a 100 MB log without 100 MB anywhere."""

    LINE = b"12.500000 < \\r\\n+QIURC: \"recv\",0,1460\\r\\n" + b"A" * 200 + b"\n"

    def __init__(self, size: int):
        self.left = size
        self.head = b"# ecemu-session 1\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            return 0
        chunk = self.head or self.LINE * max(1, min(len(buffer), self.left) // len(self.LINE))
        self.head = b""
        chunk = chunk[:len(buffer)]
        buffer[:len(chunk)] = chunk
        self.left -= len(chunk)
        return len(chunk)


_READ_HUGE_LOG = """
import io, resource, sys
from ecemu.sessionlog import SessionLog
from tests.test_sessionlog_readers import _GeneratedLog

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
log = SessionLog(io.BufferedReader(_GeneratedLog(100 * 1024 * 1024), buffer_size=1 << 16), "huge.log")
count = sum(1 for _ in log.records())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(count, (after - before) * 1024)  # ru_maxrss is in KiB on Linux
"""


def test_a_100_megabyte_log_is_read_in_bounded_memory():
    # In a process of its own, so that nothing else grows its peak: the peak resident size may
    # rise by a few MiB while 100 MB of records stream through.
    result = subprocess.run([sys.executable, "-c", _READ_HUGE_LOG], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    count, growth = map(int, result.stdout.split())
    assert count > 400_000
    assert growth < 16 * 1024 * 1024, f"reading grew the peak resident size by {growth} bytes"


def test_a_100_megabyte_line_is_refused_at_once(tmp_path):
    path = tmp_path / "huge.log"
    with open(path, "wb") as handle:
        handle.write(b"# ecemu-session 1\n1.0 < ")
        block = b"B" * (1 << 20)
        for _ in range(100):
            handle.write(block)
    result = subprocess.run([sys.executable, "-m", "ecemu", "convert", str(path), "--out", str(tmp_path / "out.log")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "huge.log:2: line longer than 1024 KiB" in result.stderr
    assert not (tmp_path / "out.log").exists() and not list(tmp_path.glob(".out.log*"))
