"""Faults injected into a running emulator while a host is connected: the exact bytes the host
sees for each, through the real pty and real TLS on 127.0.0.1; then the shipped scenarios, each
reproducing its field bug; then every fault fired with `ecemu ctl` against `ecemu run`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from ecemu.api import Emulator
from ecemu.cli import main
from ecemu.control import OPERATIONS
from ecemu.scenario import ScenarioError, available_scenarios, load_scenario
from tests.host import AtHost
from tests.processes import RunningEmulator, wait_for_boot
from tests.tls_servers import TlsServer, echo
from tests.wire import ERROR, OK


@pytest.fixture
def server():
    with TlsServer(behaviour=echo) as running:
        yield running


def booted(tmp_path, **options):
    emulator = Emulator(ufs=tmp_path / "ufs", **options).start()
    emulator.wait_for_boot()
    return emulator


@pytest.fixture
def modem(start_modem):
    """Online, with a 300 ms guard time around +++ so that leaving transparent mode is quick."""
    return start_modem(escape_guard_ms=300, echo=False, active=True)


def open_client(host: AtHost, port: int, client: int = 0, mode: int = 0) -> bytes:
    if mode == 2:
        return host.ask(f'AT+QSSLOPEN=1,1,{client},"127.0.0.1",{port},2', final=b"CONNECT\r\n")
    answer = host.ask(f'AT+QSSLOPEN=1,1,{client},"127.0.0.1",{port},{mode}')
    assert answer == OK
    return host.expect(f"+QSSLOPEN: {client},".encode()) + host.expect(b"\r\n")


def send(host: AtHost, client: int, data: bytes) -> bytes:
    host.ask(f"AT+QSSLSEND={client},{len(data)}", final=b"> ")
    host.write(data)
    return host.until_final()


# --- the network --------------------------------------------------------------------------------


def test_pdp_drop(modem, server):
    emulator, host = modem
    assert open_client(host, server.port) == b"\r\n+QSSLOPEN: 0,0\r\n"
    emulator.control.pdp_drop(context=1)
    assert host.expect(b'"closed",0\r\n') == b'\r\n+QIURC: "pdpdeact",1\r\n\r\n+QSSLURC: "closed",0\r\n'
    assert host.ask("AT+QIACT?") == OK
    assert host.ask("AT+QSSLSTATE=0").endswith(b",4,1,0,0,\"usbmodem\",1\r\n" + OK)
    assert host.ask("AT+QSSLCLOSE=0") == OK


def test_pdp_drop_in_transparent_mode_gives_no_carrier(modem, server):
    emulator, host = modem
    assert open_client(host, server.port, mode=2) == b"\r\nCONNECT\r\n"
    emulator.control.pdp_drop(context=1)
    assert host.expect(b'"pdpdeact",1\r\n') == b'\r\nNO CARRIER\r\n\r\n+QIURC: "pdpdeact",1\r\n'


@pytest.mark.parametrize("fault", ["server_reset", "server_close"])
def test_server_reset_and_close(modem, server, fault):
    emulator, host = modem
    open_client(host, server.port)
    getattr(emulator.control, fault)(client=0)
    assert host.expect(b'"closed",0\r\n') == b'\r\n+QSSLURC: "closed",0\r\n'
    assert host.ask("AT+QSSLRECV=0") == ERROR
    assert host.ask("AT+QIGETERROR") == b"\r\n+QIGETERROR: 567,socket has been closed\r\n" + OK


def test_server_stall_holds_both_ways_then_resumes_in_order(modem, server):
    emulator, host = modem
    open_client(host, server.port)
    emulator.control.server_stall(client=0, seconds=1.0)
    started = time.monotonic()
    assert send(host, 0, b"held") == b"\r\nSEND OK\r\n"  # taken by the module, held on the wire
    assert host.expect(b'"recv",0\r\n', timeout=5) == b'\r\n+QSSLURC: "recv",0\r\n'
    assert time.monotonic() - started >= 0.9
    assert host.ask("AT+QSSLRECV=0") == b"\r\n+QSSLRECV: 4\r\nheld\r\n" + OK


@pytest.mark.parametrize("error,code", [("dns", 565), ("connect", 566), ("handshake", 566)])
def test_failing_opens(modem, server, error, code):
    emulator, host = modem
    emulator.control.fail_opens(count=2, error=error)
    for client in (0, 1):
        assert open_client(host, server.port, client) == f"\r\n+QSSLOPEN: {client},{code}\r\n".encode()
    assert open_client(host, server.port, 2) == b"\r\n+QSSLOPEN: 2,0\r\n"  # only the next two
    assert server.connection(0) is not None


def test_failing_open_by_timeout(modem, server):
    emulator, host = modem
    emulator.control.fail_opens(count=1, error="timeout", seconds=0.5)
    assert open_client(host, server.port) == b"\r\n+QSSLOPEN: 0,569\r\n"


def test_failing_open_in_transparent_mode_answers_error(modem, server):
    emulator, host = modem
    emulator.control.fail_opens(count=1, error="connect")
    assert host.ask(f'AT+QSSLOPEN=1,1,0,"127.0.0.1",{server.port},2') == ERROR
    assert host.ask("AT+QIGETERROR") == b"\r\n+QIGETERROR: 566,socket connection failed\r\n" + OK


def test_latency_delays_each_way(modem, server):
    emulator, host = modem
    open_client(host, server.port)
    emulator.control.latency(ms=300)
    started = time.monotonic()
    send(host, 0, b"ping")
    host.expect(b'"recv",0\r\n')
    assert time.monotonic() - started >= 0.6  # there and back
    emulator.control.latency(ms=0)


def test_bandwidth_caps_throughput(modem, server):
    emulator, host = modem
    open_client(host, server.port)
    emulator.control.bandwidth(bytes_per_second=10_000)
    started = time.monotonic()
    send(host, 0, b"x" * 1460)
    host.expect(b'"recv",0\r\n')
    total = 0
    while total < 1460:
        answer = host.ask("AT+QSSLRECV=0")
        total += int(re.search(rb"QSSLRECV: (\d+)", answer).group(1))
        if total < 1460:
            host.expect(b'"recv",0\r\n')
    assert time.monotonic() - started >= 0.25  # ~1.5 kB of ciphertext each way at 10 kB/s


def test_send_buffer_full(modem, server):
    emulator, host = modem
    open_client(host, server.port)
    emulator.control.send_buffer_full(client=0)
    assert send(host, 0, b"nope") == b"\r\nSEND FAIL\r\n"
    emulator.control.send_buffer_full(client=0, full=False)
    assert send(host, 0, b"yes!") == b"\r\nSEND OK\r\n"


def test_signal(modem):
    emulator, host = modem
    emulator.control.signal(rssi=0, ber=7)
    assert host.ask("AT+CSQ") == b"\r\n+CSQ: 0,7\r\n" + OK


# --- the module ---------------------------------------------------------------------------------


def test_reboot_drops_connections_and_boots_again(modem, server):
    emulator, host = modem
    open_client(host, server.port)
    emulator.control.reboot()
    assert host.expect(b"+QIND: PB DONE\r\n") == (b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n"
                                                  b"\r\n+QIND: SMS DONE\r\n\r\n+QIND: PB DONE\r\n")
    assert server.connection(0).done.wait(5)
    assert host.ask("AT+QSSLSTATE") == b"AT+QSSLSTATE\r" + OK  # echo is back: everything forgotten
    assert host.ask("AT+QIACT?") == b"AT+QIACT?\r" + OK


def test_freeze_then_answers_in_order(modem):
    emulator, host = modem
    emulator.control.freeze(seconds=0.5)
    started = time.monotonic()
    host.write(b"AT\rAT+CSQ\r")
    assert host.until_final() == OK
    assert time.monotonic() - started >= 0.45
    assert host.until_final() == b"\r\n+CSQ: 20,99\r\n" + OK


# --- the serial side ----------------------------------------------------------------------------


def test_urc_burst_before_send_ok(modem, server):
    emulator, host = modem
    open_client(host, server.port)
    emulator.control.urc_burst(text='+QSSLURC: "recv",5', count=3)
    host.ask("AT+QSSLSEND=0,2", final=b"> ")
    host.write(b"hi")
    assert host.expect(b"SEND OK\r\n") == b'\r\n+QSSLURC: "recv",5\r\n' * 3 + b"\r\nSEND OK\r\n"


def test_urc_in_response_and_chunks(modem):
    emulator, host = modem
    emulator.control.urc_in_response(text="+CPIN: NOT READY")
    emulator.control.serial_chunks(size=2, gap_ms=5)
    assert host.ask("AT+CPIN?") == b"\r\n+CPIN: READY\r\n\r\n+CPIN: NOT READY\r\n" + OK
    emulator.control.serial_chunks(size=0)
    emulator.control.serial_delay(ms=200)
    started = time.monotonic()
    assert host.ask("AT") == OK
    assert time.monotonic() - started >= 0.19


# --- scenarios ----------------------------------------------------------------------------------


def test_every_shipped_scenario_loads():
    names = available_scenarios()
    assert {"server-closes-mid-response", "pdp-drop-in-transparent", "slow-handshake",
            "urc-burst-before-send-ok"} <= set(names)
    for name in names:
        assert load_scenario(name).description


@pytest.mark.parametrize("text,problem", [
    ("", "no [[fault]]"),
    ('[[fault]]\noperation = "explode"\nwhen = { at = 1 }', "unknown operation"),
    ('[[fault]]\noperation = "reboot"', "exactly one of"),
    ('[[fault]]\noperation = "reboot"\nwhen = { at = 1, urc = "x" }', "exactly one of"),
    ('[[fault]]\noperation = "signal"\nargs = { rssi = "x" }\nwhen = { at = 1 }', "rssi must be int"),
    ('[[fault]]\noperation = "reboot"\nwhen = { command = "+X", count = 0 }', "count"),
    ('[[fault]]\noperation = "reboot"\nwhen = { at = 1, soon = 1 }', "unknown trigger key"),
])
def test_bad_scenarios_are_refused_with_the_reason(tmp_path, text, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=re.escape(problem)):
        load_scenario(path)


def test_scenario_server_closes_mid_response(tmp_path):
    release = threading.Event()

    def half_then_more(server, tls, seen):
        # The answer waits for the request: a read that times out (a loaded machine) is no request.
        while server.recv_some(tls, seen) is None and not server.stopping.is_set():
            pass
        tls.sendall(b"A" * 600)  # the first part of the answer
        release.wait(10)
        tls.sendall(b"B" * 600)  # never arrives: the connection is gone by then

    with TlsServer(behaviour=half_then_more) as server:
        emulator = booted(tmp_path, scenario="server-closes-mid-response")
        try:
            with AtHost(emulator.port) as host:
                host.ask("ATE0"), host.ask("AT+QIACT=1")
                open_client(host, server.port)
                send(host, 0, b"GET")
                assert host.expect(b'"closed",0\r\n') == b'\r\n+QSSLURC: "recv",0\r\n\r\n+QSSLURC: "closed",0\r\n'
                release.set()
                assert host.ask("AT+QSSLRECV=0") == b"\r\n+QSSLRECV: 600\r\n" + b"A" * 600 + b"\r\n" + OK
                assert host.ask("AT+QSSLRECV=0") == ERROR
        finally:
            emulator.stop()


def test_scenario_pdp_drop_in_transparent(tmp_path, server):
    emulator = booted(tmp_path, scenario="pdp-drop-in-transparent")
    try:
        with AtHost(emulator.port) as host:
            host.ask("ATE0"), host.ask("AT+QIACT=1")
            assert open_client(host, server.port, mode=2) == b"\r\nCONNECT\r\n"
            host.write(b"streaming")
            assert host.read_exactly(9) == b"streaming"
            assert host.expect(b'"pdpdeact",1\r\n', timeout=5) == b'\r\nNO CARRIER\r\n\r\n+QIURC: "pdpdeact",1\r\n'
            assert host.ask("AT+QSSLSTATE=0").endswith(b',4,1,0,2,"usbmodem",1\r\n' + OK)
    finally:
        emulator.stop()


def test_scenario_slow_handshake(tmp_path, server):
    emulator = booted(tmp_path, scenario="slow-handshake")
    try:
        with AtHost(emulator.port, timeout=30) as host:
            host.ask("ATE0"), host.ask("AT+QIACT=1")
            host.ask('AT+QSSLCFG="negotiatetime",1,10')
            started = time.monotonic()
            assert open_client(host, server.port) == b"\r\n+QSSLOPEN: 0,569\r\n"  # the host waits 30 s at most
            assert time.monotonic() - started >= 9.5  # not before negotiatetime
            assert open_client(host, server.port) == b"\r\n+QSSLOPEN: 0,0\r\n"  # the next one is fine
    finally:
        emulator.stop()


def test_scenario_urc_burst_before_send_ok(tmp_path, server):
    emulator = booted(tmp_path, scenario="urc-burst-before-send-ok")
    try:
        with AtHost(emulator.port) as host:
            host.ask("ATE0"), host.ask("AT+QIACT=1")
            open_client(host, server.port)
            # A driver taking the first line after its data for the result reads a URC instead.
            assert send(host, 0, b"data") == b'\r\n+QSSLURC: "recv",1\r\n' * 20 + b"\r\nSEND OK\r\n"
            assert send(host, 0, b"more") == b"\r\nSEND OK\r\n"  # the scenario fires once
    finally:
        emulator.stop()


# --- every fault from the command line, against `ecemu run` with a host connected ----------------


def test_every_fault_fires_from_ecemu_ctl(tmp_path, server):
    running = RunningEmulator("--link", str(tmp_path / "modem"), "--ufs", str(tmp_path / "ufs"),
                              "--escape-guard-ms", "300")
    try:
        wait_for_boot(running.port)
        ctl = [sys.executable, "-m", "ecemu", "ctl", "--link", str(tmp_path / "modem")]

        def fire(*words: str) -> str:
            """``ecemu ctl`` run in this process by click's runner: the program's own command line,
            parsing and control socket, without starting Python twenty times over (the status
            below is asked of ``ecemu ctl`` as a process)."""
            result = CliRunner().invoke(main, ["ctl", "--link", str(tmp_path / "modem"), *words], prog_name="ecemu")
            assert result.exit_code == 0, result.output
            return result.stdout

        with AtHost(running.port) as host:
            host.ask("ATE0"), host.ask("AT+QIACT=1")
            fired = set()
            for op, words, expect_bytes in [
                ("signal", ["rssi=3"], None),
                ("latency", ["ms=0"], None),
                ("bandwidth", ["bytes-per-second=0"], None),
                ("serial-delay", ["ms=0"], None),
                ("serial-chunks", ["size=0"], None),
                ("fail-opens", ["count=1", "error=dns"], b"\r\n+QSSLOPEN: 0,565\r\n"),
            ]:
                fire(op, *words)
                fired.add(op)
                if expect_bytes:
                    assert open_client(host, server.port) == expect_bytes
            assert host.ask("AT+CSQ") == b"\r\n+CSQ: 3,99\r\n" + OK
            open_client(host, server.port)
            fire("send-buffer-full", "client=0"), fired.add("send-buffer-full")
            assert send(host, 0, b"x") == b"\r\nSEND FAIL\r\n"
            fire("send-buffer-full", "client=0", "full=false")
            fire("server-stall", "client=0", "seconds=0.2"), fired.add("server-stall")
            fire("server-reset", "client=0"), fired.add("server-reset")
            assert host.expect(b'"closed",0\r\n').endswith(b'\r\n+QSSLURC: "closed",0\r\n')
            host.ask("AT+QSSLCLOSE=0")
            open_client(host, server.port)
            fire("server-close", "client=0"), fired.add("server-close")
            assert host.expect(b'"closed",0\r\n').endswith(b'\r\n+QSSLURC: "closed",0\r\n')
            host.ask("AT+QSSLCLOSE=0")
            open_client(host, server.port)
            fire("pdp-drop", "context=1"), fired.add("pdp-drop")
            assert host.expect(b'"closed",0\r\n').endswith(b'\r\n+QIURC: "pdpdeact",1\r\n\r\n+QSSLURC: "closed",0\r\n')
            fire("urc-in-response", "text=+QIURC: test"), fired.add("urc-in-response")
            assert host.ask("AT+CSQ") == b"\r\n+CSQ: 3,99\r\n\r\n+QIURC: test\r\n" + OK
            fire("urc-burst", "text=+QIURC: x", "count=2"), fired.add("urc-burst")
            assert host.ask("AT") == b"\r\n+QIURC: x\r\n\r\n+QIURC: x\r\n" + OK
            fire("freeze", "seconds=0.3"), fired.add("freeze")
            assert host.ask("AT") == OK
            fire("dtr", "active=false"), fire("dtr", "active=true"), fired.add("dtr")
            fire("rts", "active=false"), fire("rts", "active=true"), fired.add("rts")
            assert json.loads(fire("lines"))["dsr"] is True
            waited = subprocess.run(ctl + ["wait-ri", "seconds=0.01"], capture_output=True, text=True, timeout=30)
            assert waited.returncode == 1 and "no RI pulse ended within 0.01 s" in waited.stderr
            fired |= {"lines", "wait-ri"}
            fire("reboot"), fired.add("reboot")
            assert host.expect(b"PB DONE\r\n").endswith(b"+QIND: PB DONE\r\n")
            asked = subprocess.run(ctl + ["status"], capture_output=True, text=True, timeout=30)
            assert asked.returncode == 0, asked.stderr
            status = json.loads(asked.stdout)
            assert status["boots"] == 2 and status["host_attached"]
            assert json.loads(fire("listening")) == {"tcpip": {}}
            fired |= {"listening", "status", "latency", "bandwidth", "serial-delay", "serial-chunks", "signal", "fail-opens"}
        assert fired == set(OPERATIONS)
    finally:
        assert running.stop() == 0
