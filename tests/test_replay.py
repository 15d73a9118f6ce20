"""``ecemu replay``: a recorded session played as the module, and the record → replay → check round
trip with the emulator standing in for the real module.

The round trip is the issue's "done when": a session recorded through ``ecemu record`` replays
byte for byte to the same host code, and ``ecemu check`` of it finds no difference.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ecemu.api import Emulator
from ecemu.echo_server import TlsEchoServer
from ecemu.replay import Replay, ReplayEngine
from ecemu.sessionlog import HOST, MODULE, Record
from tests.fieldlog_processes import Running, events, wait_for_log
from tests.host import AtHost
from tests.processes import wait_for_boot


@pytest.fixture(autouse=True)
def fast_network(monkeypatch):
    monkeypatch.setenv("ECEMU_NETWORK_RTT_MS", "0")


def host_program(port: str, server_port: int) -> bytes:
    """Driver-like host code: start-up, a PDP context, a TLS connection to an echo server, a
    send, the echo read back, the close. Returns every byte it received."""
    with AtHost(port, timeout=10) as host:
        got = bytearray()
        for line in (b"ATE1", b"AT+CMEE=2", b"AT+CGMM", b"AT+QIACT=1", b'AT+QSSLCFG="sslversion",1,4'):
            got += host.ask(line)
        got += host.ask(b'AT+QSSLOPEN=1,1,0,"127.0.0.1",%d,0' % server_port)
        got += host.expect(b"+QSSLOPEN: 0,0\r\n")
        host.write(b"AT+QSSLSEND=0,5\r")
        got += host.expect(b"> ")
        host.write(b"hello")
        got += host.expect(b"SEND OK\r\n")
        got += host.expect(b'+QSSLURC: "recv",0\r\n')
        got += host.ask(b"AT+QSSLRECV=0,100")
        got += host.ask(b"AT+QSSLCLOSE=0")
    return bytes(got)


@pytest.fixture
def recorded(tmp_path):
    """A session recorded through ``ecemu record`` with the emulator as the module; what the host
    received while it was recorded; the server's port."""
    out = tmp_path / "session.log"
    with TlsEchoServer() as server, Emulator(profile="EC800M-CN", link=tmp_path / "ttyUSB2",
                                             ufs=tmp_path / "ufs") as module:
        # Powered on before the tap opens its port, as a module on the desk is; a terminal
        # watches it boot (reading without flushing), then the host program runs.
        module.wait_for_boot()
        tap = Running("record", "--device", str(tmp_path / "ttyUSB2"), "--link", str(tmp_path / "modem"),
                      "--out", str(out), "--module", "EC800M-CN", wanted=("port", "link", "out"))
        try:
            boot = wait_for_boot(str(tmp_path / "modem"))
            got = host_program(str(tmp_path / "modem"), server.port)
            wait_for_log(out, lambda records: events(records).count("host-closed") == 2)
        finally:
            assert tap.stop() == 0, tap.stderr()
        port = server.port
    return out, boot + got, port


def test_record_replay_check_round_trip(recorded, tmp_path):
    log, got_while_recorded, server_port = recorded
    # Replayed: the same host code gets the same bytes, with no module and no server behind.
    with Replay(log) as module:
        assert wait_for_boot(module.port) + host_program(module.port, server_port) == got_while_recorded
    assert module.report is None and module.host_line_left() is None
    # Checked: the emulator, with its own TLS echo server standing in, answers as the log says.
    # Recorded and checked on a machine that may pause: the answers are the subject, not a second's timing.
    result = subprocess.run([sys.executable, "-m", "ecemu", "check", "--tolerance-ms", "10000", str(log)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "no differences"
    # And on the command line: ecemu replay plays it, then ends once the host has gone.
    replay = Running("replay", str(log), "--link", str(tmp_path / "replayed"), wanted=("port", "link"))
    try:
        replayed = str(tmp_path / "replayed")
        assert wait_for_boot(replayed) + host_program(replayed, server_port) == got_while_recorded
        assert replay.wait(20) == 0
    finally:
        replay.kill()
    assert "played to the end" in replay.stderr()


def session(*records: tuple[float | None, str, bytes]) -> bytes:
    lines = ["# ecemu-session 1"]
    from ecemu.sessionlog.format import format_record

    for when, direction, data in records:
        lines.append(format_record(when, direction, data).rstrip("\n"))
    return ("\n".join(lines) + "\n").encode()


def test_a_departure_from_the_log_stops_with_a_report(tmp_path):
    log = tmp_path / "field.log"
    log.write_bytes(session((0.0, HOST, b"AT\r"), (0.01, MODULE, b"AT\r\r\nOK\r\n"),
                            (1.0, HOST, b"AT+CSQ\r"), (1.01, MODULE, b"AT+CSQ\r\r\n+CSQ: 9,99\r\n\r\nOK\r\n")))
    replay = Running("replay", str(log), wanted=("port",))
    try:
        with AtHost(replay.announced["port"], timeout=10) as host:
            assert host.ask("AT") == b"AT\r\r\nOK\r\n"
            host.write(b"AT+CREG?\r")
            assert replay.wait(20) == 1
    finally:
        replay.kill()
    assert replay.stderr().startswith(
        f"ecemu replay: the host departed from the log at line 4 ({log}):\n"
        "  expected: AT+CSQ\\r\n"
        "  matched:  AT+C\n"
        "  came:     AT+CREG?\\r\n")


def test_more_than_the_log_holds_is_a_departure_too(tmp_path):
    log = tmp_path / "field.log"
    log.write_bytes(session((0.0, HOST, b"AT\r"), (0.01, MODULE, b"AT\r\r\nOK\r\n")))
    with Replay(log) as module, AtHost(module.port, timeout=10) as host:
        assert host.ask("AT") == b"AT\r\r\nOK\r\n"
        host.write(b"AT\r")
        deadline = time.monotonic() + 10
        while module.report is None and time.monotonic() < deadline:
            time.sleep(0.01)
    assert module.report == (f"the host sent more than the log holds ({log}): the log has no more host lines.\n"
                             "  came:     AT\\r")


def test_the_replay_api_port_is_a_private_link_gone_at_stop(tmp_path):
    """As Emulator's: a link in a folder only its user can enter, a fresh pty behind it for each
    opener, the folder removed at stop; link=False gives the one pty's own path."""
    import stat

    log = tmp_path / "field.log"
    log.write_bytes(session((0.0, HOST, b"AT\r"), (0.01, MODULE, b"AT\r\r\nOK\r\n"),
                            (1.0, HOST, b"AT\r"), (1.01, MODULE, b"AT\r\r\nOK\r\n")))
    with Replay(log) as module:
        link = Path(module.port)
        assert link.is_symlink() and stat.S_IMODE(link.parent.stat().st_mode) == 0o700
        for _ in range(2):  # two hosts in turn, each on a pty of its own
            with AtHost(module.port, timeout=10) as host:
                assert host.ask("AT") == b"AT\r\r\nOK\r\n"
    assert module.report is None and not link.parent.exists()
    with Replay(log, link=False) as module:
        assert module.port.startswith("/dev/pts/")


def test_emulate_carries_on_from_the_state_the_logged_commands_left(tmp_path):
    # The log turned echo off and activated a context; the host then asks what the log never did.
    log = tmp_path / "field.log"
    log.write_bytes(session((0.0, HOST, b"ATE0\r"), (0.01, MODULE, b"ATE0\r\r\nOK\r\n"),
                            (0.5, HOST, b"AT+QIACT=1\r"), (0.6, MODULE, b"\r\nOK\r\n")))
    with Replay(log, on_divergence="emulate", profile="EC800M-CN") as module, \
            AtHost(module.port, timeout=10) as host:
        assert host.ask("ATE0") == b"ATE0\r\r\nOK\r\n"
        assert host.ask("AT+QIACT=1") == b"\r\nOK\r\n"
        # Not in the log: the emulated module answers, without echo, with the context up.
        assert host.ask("AT+QIACT?") == b'\r\n+QIACT: 1,1,1,"10.7.157.1"\r\n\r\nOK\r\n'
        assert host.ask("AT+CGMM") == b"\r\nEC800M\r\n\r\nOK\r\n"
    assert module.report.startswith("the host sent more than the log holds")


def test_placeholders_match_what_changes_and_answer_with_it(tmp_path):
    log = tmp_path / "field.log"
    log.write_text(textwrap.dedent("""\
        # ecemu-session 1
        0.0 > AT+QIOPEN=1,0,"TCP","\\{host}",\\{port},0,1\\r
        0.01 < AT+QIOPEN=1,0,"TCP","\\{host}",\\{port},0,1\\r\\r\\nOK\\r\\n
        0.02 < \\r\\n+QIOPEN: 0,0\\r\\n
        1.0 > AT+QISTATE=1,0\\r
        1.01 < AT+QISTATE=1,0\\r\\r\\n+QISTATE: 0,"TCP","\\{host}",\\{port},1,2,1,0,1,"usbmodem"\\r\\n\\r\\nOK\\r\\n
        """))
    with Replay(log) as module, AtHost(module.port, timeout=10) as host:
        answer = host.ask('AT+QIOPEN=1,0,"TCP","10.1.2.3",40123,0,1')
        assert answer == b'AT+QIOPEN=1,0,"TCP","10.1.2.3",40123,0,1\r\r\nOK\r\n'
        assert host.expect(b"+QIOPEN: 0,0\r\n") == b"\r\n+QIOPEN: 0,0\r\n"
        assert host.ask("AT+QISTATE=1,0").endswith(b'+QISTATE: 0,"TCP","10.1.2.3",40123,1,2,1,0,1,"usbmodem"\r\n'
                                                   b'\r\nOK\r\n')
    assert module.report is None


def test_a_urc_comes_at_its_logged_time(tmp_path):
    log = tmp_path / "field.log"
    log.write_bytes(session((0.0, HOST, b"AT+QIACT=1\r"), (0.01, MODULE, b"AT+QIACT=1\r\r\nOK\r\n"),
                            (0.61, MODULE, b'\r\n+QIURC: "pdpdeact",1\r\n')))
    with Replay(log) as module, AtHost(module.port, timeout=10) as host:
        host.write(b"AT+QIACT=1\r")
        started = time.monotonic()
        assert host.expect(b"OK\r\n") == b"AT+QIACT=1\r\r\nOK\r\n"
        assert host.expect(b'"pdpdeact",1\r\n') == b'\r\n+QIURC: "pdpdeact",1\r\n'
        # Played at the logged delay: it cannot come sooner (a bound below, never a wait).
        assert time.monotonic() - started >= 0.55


def test_the_host_may_split_its_lines_anywhere():
    engine = ReplayEngine(iter([Record(0.0, HOST, b"AT+CGMM\r"), Record(0.0, MODULE, b"\r\nEC800M\r\n\r\nOK\r\n"),
                                Record(0.0, HOST, b"AT\r"), Record(0.0, MODULE, b"\r\nOK\r\n")]))
    engine.start(0.0)
    said = b"".join(engine.host_bytes(bytes([byte]), 0.0) for byte in b"AT+CGMM\rAT\r")
    assert said == b"\r\nEC800M\r\n\r\nOK\r\n\r\nOK\r\n"
    assert engine.finished and engine.divergence is None


def test_the_marker_makes_ecemu_modem_a_replay(pytester):
    pytester.makefile(".log", field=session(
        (0.0, MODULE, b"\r\nRDY\r\n"),
        (1.0, HOST, b"AT+CSQ\r"), (1.01, MODULE, b"AT+CSQ\r\r\n+CSQ: 3,99\r\n\r\nOK\r\n")).decode())
    pytester.makepyfile(textwrap.dedent("""\
        import pytest
        import serial

        @pytest.mark.ecemu_replay("field.log")
        def test_weak_signal(ecemu_modem):
            with serial.Serial(ecemu_modem.port, 115200, timeout=10) as port:
                port.write(b"AT+CSQ\\r")
                assert port.read_until(b"OK\\r\\n") == b"AT+CSQ\\r\\r\\n+CSQ: 3,99\\r\\n\\r\\nOK\\r\\n"

        @pytest.mark.ecemu_replay("field.log")
        def test_a_driver_that_asks_something_else(ecemu_modem):
            with serial.Serial(ecemu_modem.port, 115200, timeout=2) as port:
                port.write(b"AT+CREG?\\r")
                port.read(1)

        @pytest.mark.ecemu_replay("field.log")
        def test_a_driver_that_stops_early(ecemu_modem):
            pass

        @pytest.mark.ecemu_replay("field.log", complete=False)
        def test_partial_replays_can_be_allowed(ecemu_modem):
            pass
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "0")
    # The two that must fail fail as the fixture ends: pytest shows them as errors at teardown.
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines([
        "*ecemu_replay: the host departed from the log at line 3*",
        "*expected: AT+CSQ\\r*",
        "*came:     AT+CR*",
        "*ecemu_replay: the test ended before the log's host line 3 (field.log): AT+CSQ\\r*",
    ])


def test_a_log_that_cannot_be_read_is_refused_with_its_line(tmp_path):
    log = tmp_path / "bad.log"
    log.write_bytes(b"# ecemu-session 1\n0.0 > AT\\r\n0.1 <<< OK\n")
    result = subprocess.run([sys.executable, "-m", "ecemu", "replay", str(log)], capture_output=True, text=True,
                            timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stderr == (f"ecemu replay: {log}:3: not a record: '0.1 <<< OK' (the direction is >, < or !, "
                             f"then one space and the data)\n")
    assert result.stdout == ""


def test_the_readme_example_replays_as_the_readme_says(pytester):
    """The README's session (placeholders and all) and its pytest example, run as written."""
    from tests.readme_blocks import example

    pytester.makefile(".log", field=example("field-log"))
    pytester.makepyfile(example("field-log-pytest"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "0")
    result.assert_outcomes(passed=1)
