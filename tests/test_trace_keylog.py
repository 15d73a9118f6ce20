"""The session trace (``--trace``) and the TLS key log (``--keylog``) of an SSL session."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from ecemu.api import Emulator
from tests.host import AtHost
from tests.tls_servers import TlsServer, echo


def test_keylog_holds_the_keys_the_server_used_and_the_trace_tells_the_session(tmp_path):
    trace, keylog, server_keylog = tmp_path / "trace.jsonl", tmp_path / "keys.txt", tmp_path / "server-keys.txt"
    with TlsServer(behaviour=echo) as server:
        server.context.keylog_filename = str(server_keylog)
        emulator = Emulator(ufs=tmp_path / "ufs", trace=trace, keylog=keylog).start()
        try:
            emulator.wait_for_boot()
            with AtHost(emulator.port) as host:
                host.ask("AT+QIACT=1")
                host.ask(f'AT+QSSLOPEN=1,1,0,"127.0.0.1",{server.port},0')
                host.expect(b"+QSSLOPEN: 0,0\r\n")
                emulator.control.latency(ms=0)  # a fault, to be found in the trace
                host.ask("AT+QSSLSEND=0,5", final=b"> ")
                host.write(b"hello")
                host.until_final()
                host.expect(b'"recv",0\r\n')
                host.ask("AT+QSSLCLOSE=0")
        finally:
            emulator.stop()
    ours = re.findall(r"^CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}$", keylog.read_text(), re.M)
    theirs = re.findall(r"^CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}$", server_keylog.read_text(), re.M)
    assert ours and ours == theirs  # Wireshark given our file decrypts what the server saw

    entries = [json.loads(line) for line in trace.read_text().splitlines()]
    kinds = {entry["kind"] for entry in entries}
    assert {"host_in", "host_out", "command", "result", "urc", "net_effect", "net_event", "tls", "fault"} <= kinds
    tls = [e for e in entries if e["kind"] == "tls"]
    assert tls[0]["event"] == "established" and tls[0]["client"] == 0 and "TLSv1.2" in tls[0]["detail"]
    effects = [e["effect"] for e in entries if e["kind"] == "net_effect"]
    assert effects[0] == "OpenTcp" and "SendTcp" in effects and "ShutdownTcp" in effects
    assert [e["name"] for e in entries if e["kind"] == "fault"] == ["latency"]
    times = [e["t"] for e in entries]
    assert times == sorted(times)

    shown = subprocess.run([sys.executable, "-m", "ecemu", "trace", str(trace)], check=True,
                           capture_output=True, text=True, timeout=30).stdout
    assert re.search(r"TLS\s+established TLSv1.2", shown)
    assert "FAULT" in shown and "AT+QSSLSEND=0,5" in shown


def test_the_trace_shows_where_the_module_took_the_lf_of_a_line_end(tmp_path):
    trace = tmp_path / "trace.jsonl"
    emulator = Emulator(ufs=tmp_path / "ufs", trace=trace).start()
    try:
        emulator.wait_for_boot()
        with AtHost(emulator.port) as host:
            host.write(b"ATE0\r\n")
            host.expect(b"OK\r\n")
            host.write(b'AT+QFUPL="a.txt",3\r')
            host.expect(b"CONNECT\r\n")
            host.write(b"\nabc")  # the LF of the line end, after CONNECT: a CR LF host's, not data
            assert host.until_final() == b"+QFUPL: 3,262\r\n\r\nOK\r\n"  # 0x6162 ^ 0x6300
    finally:
        emulator.stop()
    entries = [json.loads(line) for line in trace.read_text().splitlines()]
    ends = [(e["data"], e["mode"]) for e in entries if e["kind"] == "line_end"]
    assert ends == [("\r\n", "command"), ("\n", "data")]
    shown = subprocess.run([sys.executable, "-m", "ecemu", "trace", str(trace)], check=True,
                           capture_output=True, text=True, timeout=30).stdout
    assert re.search(r"line end\s+\\r\\n\s+mode=command", shown)
    assert re.search(r"line end\s+\\n\s+mode=data", shown)
