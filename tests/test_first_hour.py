"""What a new user meets in the first hour, each as they meet it: a fleet's identities, their own
profile file, `ecemu ctl`'s exit codes and bounds, a live transcript, a status line that keeps out
of a backgrounded job's way, traces appended run after run, clean errors for bad paths, and a
broker that never outlives its command."""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import serial

from ecemu.api import Emulator
from ecemu.shell.trace import read_entries, render
from ecemu.trace_html import render_html
from tests.host import AtHost
from tests.processes import RunningEmulator, read_until, wait_for_boot
from tests.wire import OK

ECEMU = [sys.executable, "-m", "ecemu"]


def ecemu(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*ECEMU, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def luhn_valid(number: str) -> bool:
    """ISO/IEC 7812's check, written out here (not the emulator's): double every second digit from
    the right, add the digits up, a multiple of ten."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char) * (2 if position % 2 else 1)
        total += digit // 10 + digit % 10
    return total % 10 == 0


def answer_of(port: str, line: bytes) -> str:
    with serial.Serial(port, 115200, timeout=10) as host:
        host.write(b"ATE0\r")
        host.read_until(b"OK\r\n")
        host.write(line + b"\r")
        answer = host.read_until(b"OK\r\n")
    assert answer.endswith(b"\r\nOK\r\n"), answer
    return answer.decode().strip().splitlines()[0]


def announced_ports(running: RunningEmulator, count: int) -> list[str]:
    ports = [line.removeprefix("port: ") for line in running.stdout_lines if line.startswith("port: ")]
    while len(ports) < count:
        line = running.readline(time.monotonic() + 10)
        running.stdout_lines.append(line)
        if line.startswith("port: "):
            ports.append(line.removeprefix("port: "))
    return ports


# --- a fleet with identities of its own, and the user's own profile --------------------------------

def test_count_gives_every_modem_its_own_valid_identity():
    running = RunningEmulator("--count", "3")
    try:
        identities = []
        for port in announced_ports(running, 3):
            wait_for_boot(port)
            identities.append((answer_of(port, b"AT+GSN"), answer_of(port, b"AT+QCCID").removeprefix("+QCCID: "),
                               answer_of(port, b"AT+CIMI")))
    finally:
        assert running.stop() == 0
    imeis, iccids, imsis = zip(*identities, strict=True)
    assert imeis[0] == "869487060012340"  # modem 0: the profile's own (profiles/EC200M-CN.toml)
    assert len(set(imeis)) == len(set(iccids)) == len(set(imsis)) == 3
    for imei in imeis:
        assert len(imei) == 15 and imei.isdigit() and luhn_valid(imei) and imei[:8] == "86948706"  # the same TAC
    for iccid in iccids[1:]:
        assert len(iccid) == 20 and iccid.startswith("8986") and luhn_valid(iccid)
    for imsi in imsis:
        assert len(imsi) == 15 and imsi.startswith("46000")  # the home network's MCC and MNC stay
    assert imsis[1] == "460001234567891" and imsis[2] == "460001234567892"


def test_a_profile_file_of_ones_own_from_a_shipped_base(tmp_path):
    profile = tmp_path / "bench-module.toml"
    profile.write_text(textwrap.dedent("""\
        base = "EC800N-CN"

        [identity]
        imei = "351234567890126"
        imsi = "001019000000001"
        """))
    running = RunningEmulator("--profile", str(profile), "--count", "2")
    try:
        first, second = announced_ports(running, 2)
        wait_for_boot(first)
        wait_for_boot(second)
        assert answer_of(first, b"AT+CGMM") == "EC800N"  # the rest from the base
        assert answer_of(first, b"AT+GSN") == "351234567890126"
        assert answer_of(first, b"AT+CIMI") == "001019000000001"
        assert answer_of(second, b"AT+CIMI") == "001019000000002"
        second_imei = answer_of(second, b"AT+GSN")
        assert second_imei.startswith("35123456789013") and luhn_valid(second_imei)
    finally:
        assert running.stop() == 0


def test_a_profile_that_cannot_be_used_is_refused_by_name(tmp_path):
    (tmp_path / "broken.toml").write_text("[identity\n")
    (tmp_path / "partial.toml").write_text('[identity]\nimei = "1"\n')
    for path, reason in ((tmp_path / "missing.toml", "cannot read profile"),
                         (tmp_path / "broken.toml", "is not valid TOML"),
                         (tmp_path / "partial.toml", "is incomplete or has unknown keys")):
        done = ecemu("run", "--profile", str(path))
        assert done.returncode == 2 and "Invalid value for --profile" in done.stderr and reason in done.stderr
        assert "Traceback" not in done.stderr


def test_the_api_takes_a_profile_file_and_identity_overrides(tmp_path):
    profile = tmp_path / "mine.toml"
    profile.write_text('base = "EC200N-CN"\n')
    with Emulator(profile=str(profile), identity={"imei": "490154203237518"}) as modem:
        modem.wait_for_boot()
        assert answer_of(modem.port, b"AT+CGMM") == "EC200N"
        assert answer_of(modem.port, b"AT+GSN") == "490154203237518"
    with pytest.raises(ValueError, match="no identity field colour"):
        Emulator(identity={"colour": "blue"})


# --- ecemu ctl: exit codes and bounds as documented -------------------------------------------------

@pytest.mark.parametrize("args,reason", [
    (["signal", "rssi=50"], "signal: rssi must be 0 to 31 or 99, not '50'"),
    (["signal", "rssi=5", "ber=8"], "signal: ber must be 0 to 7 or 99, not '8'"),
    (["fail-opens", "count=1", "error=bogus"],
     "fail-opens: error must be one of dns, connect, timeout, handshake, silent, not 'bogus'"),
    (["server-reset", "client=0", "family=udp"], "server-reset: family must be one of ssl, tcpip, mqtt, http"),
    (["no-such-operation"], "unknown operation"),
])
def test_ctl_refuses_what_is_out_of_bounds_with_status_2(tmp_path, args, reason):
    """Refused before anything is sent: no emulator needs to run (the socket does not exist)."""
    done = ecemu("ctl", "--socket", str(tmp_path / "none.sock"), *args)
    assert done.returncode == 2, done
    assert reason in done.stderr


def test_ctl_list_shows_the_bounds_it_checks():
    listing = ecemu("ctl", "--list").stdout
    assert "    rssi: int 0 to 31 or 99\n" in listing and "    ber: int 0 to 7 or 99 = 99\n" in listing
    assert "    error: str one of dns, connect, timeout, handshake, silent\n" in listing
    assert "    family: str one of ssl, tcpip, mqtt, http = 'ssl'\n" in listing


def test_an_operation_that_cannot_be_carried_out_exits_1(tmp_path):
    link = tmp_path / "modem"
    running = RunningEmulator("--link", str(link))
    try:
        done = ecemu("ctl", "--link", str(link), "server-reset", "client=0")
        assert done.returncode == 1 and "ssl client 0 has no connection" in done.stderr
        assert ecemu("ctl", "--link", str(link), "signal", "rssi=99").returncode == 0
    finally:
        assert running.stop() == 0


# --- traces: live, appended, in order -------------------------------------------------------------

def test_trace_dash_streams_a_readable_transcript_on_stdout(tmp_path):
    running = RunningEmulator("--trace", "-", "--link", str(tmp_path / "modem"))
    try:
        assert not (Path.cwd() / "-").exists()
        assert running.stdout_lines[0].startswith("---------- #0  session started 20")
        with serial.Serial(running.port, 115200, timeout=10) as host:
            host.read_until(b"+QIND: PB DONE\r\n")
            host.write(b"AT+CGMM\r")
            assert host.read_until(b"OK\r\n").endswith(b"EC200M\r\n\r\nOK\r\n")
            seen = read_until(running.process.stdout.fileno(), b"result         OK\n", timeout=10).decode()
    finally:
        assert running.stop() == 0
    assert "  #0  host → module  AT+CGMM\\r\n" in seen
    assert "  #0  command        AT+CGMM\n" in seen
    assert "  #0  module → host  AT+CGMM\\r\\r\\nEC200M\\r\\n\\r\\nOK\\r\\n\n" in seen
    assert "{" not in seen  # text, not JSON


def test_appended_sessions_are_kept_apart_with_their_wall_clock_starts(tmp_path):
    trace = tmp_path / "trace.jsonl"
    for _ in range(2):
        with Emulator(trace=trace) as modem:
            modem.wait_for_boot()
            with AtHost(modem.port) as host:
                assert host.ask("AT").endswith(OK)
    entries = list(read_entries(trace.read_text().splitlines()))
    sessions = [entry for entry in entries if entry["kind"] == "session"]
    assert len(sessions) == 2 and entries[0]["kind"] == "session"
    assert all(entry["t"] == 0 and entry["pid"] == os.getpid() and entry["started"].endswith("+00:00")
               for entry in sessions)
    assert sessions[0]["started"] <= sessions[1]["started"]  # ISO 8601 texts sort as times
    lines = list(render(trace.read_text().splitlines()))
    assert sum(line.startswith("---------- #0  session started ") for line in lines) == 2
    page = render_html(entries)
    assert "+-" not in page  # no negative time between two sessions
    assert page.count('class="session">session started ') == 2
    # A trace written before session entries existed: its times going back are no negative delta.
    old = [{"t": 9.1, "modem": 0, "kind": "command", "line": "AT"}, {"t": 0.2, "modem": 0, "kind": "command", "line": "AT"}]
    assert "+-" not in render_html(old)


def test_the_fault_entry_comes_before_its_effects(tmp_path):
    trace = tmp_path / "trace.jsonl"
    with Emulator(trace=trace) as modem:
        modem.wait_for_boot()
        with AtHost(modem.port) as host:
            assert host.ask("AT+QIACT=1").endswith(OK)
            modem.control.pdp_drop(context=1)
            host.expect(b'+QIURC: "pdpdeact",1\r\n')
            with pytest.raises(Exception, match="context 2 is not active"):
                modem.control.pdp_drop(context=2)
    kinds = [(entry["kind"], entry.get("name") or entry.get("lines", [""])[0])
             for entry in read_entries(trace.read_text().splitlines()) if entry["kind"] in ("fault", "fault_refused")
             or (entry["kind"] == "urc" and "pdpdeact" in entry["lines"][0])]
    assert kinds == [("fault", "pdp-drop"), ("urc", '+QIURC: "pdpdeact",1'), ("fault", "pdp-drop"),
                     ("fault_refused", "pdp-drop")]


# --- the status line only in the foreground --------------------------------------------------------

LEADER = textwrap.dedent("""\
    # A terminal's session as a shell with job control makes it: this process leads the session and
    # holds the foreground; the emulator runs as a background job (`ecemu run &`) in a group of its
    # own, until told to come to the foreground (`fg`).
    import fcntl, os, subprocess, sys, termios
    tty = sys.argv[1]
    os.setsid()
    fd = os.open(tty, os.O_RDWR)
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    job = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.DEVNULL,
                           process_group=0)
    print(job.pid, flush=True)
    sys.stdin.readline()                   # the test says: fg
    os.write(fd, b"<fg>")
    os.tcsetpgrp(fd, job.pid)
    print("fg", flush=True)
    sys.stdin.readline()                   # the test says: stop
    job.terminate()
    print(job.wait(), flush=True)
    """)


def test_a_background_job_draws_no_status_line_until_it_is_brought_to_the_foreground(tmp_path):
    controller, terminal = pty.openpty()
    leader = subprocess.Popen([sys.executable, "-c", LEADER, os.ttyname(terminal), *ECEMU, "run", "--link",
                               str(tmp_path / "modem")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    os.close(terminal)
    job = None
    try:
        job = int(leader.stdout.readline())
        seen = read_until(controller, b"control: ", timeout=15).decode()
        port = str(tmp_path / "modem")  # the link: each opener gets a pty of its own behind it
        boot = wait_for_boot(port)
        with serial.Serial(port, 115200, timeout=10) as host:  # picocom in the same terminal, say
            host.write(b"AT\r")
            assert host.read_until(b"OK\r\n") == b"AT\r\r\nOK\r\n"
            leader.stdin.write("fg\n")
            leader.stdin.flush()
            assert leader.stdout.readline() == "fg\n"
            seen += read_until(controller, b"\x1b[K", timeout=15).decode()
        before, _, after = seen.partition("<fg>")
        assert "\x1b[K" not in before and "\r" not in before.replace("\r\n", "")  # nothing drawn in the background
        assert f"host→module 3 B | module→host {len(boot) + 9} B" in after
        leader.stdin.write("stop\n")
        leader.stdin.flush()
        assert leader.stdout.readline() == "0\n"
    finally:
        leader.kill()
        leader.wait(10)
        if job is not None:  # the job is in a group of its own: killing the leader leaves it running
            try:
                os.killpg(job, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it ended as told
        os.close(controller)


# --- clean errors for bad paths ---------------------------------------------------------------------

def test_bad_output_paths_are_refused_without_a_traceback(tmp_path):
    trace = tmp_path / "trace.jsonl"
    trace.write_text(json.dumps({"t": 0, "modem": 0, "kind": "command", "line": "AT"}) + "\n")
    for args, option in ((["trace", str(trace), "--html", "/nonexistent/x.html"], "--html"),
                         (["trace", str(tmp_path / "missing.jsonl")], "FILE"),
                         (["certs", "/proc/ecemu-certs"], "FOLDER"),
                         (["http-server", "--port", "0", "--tls-port", "0", "--ca", "/nonexistent/ca.pem"], "--ca"),
                         (["mqtt-broker", "--port", "0", "--tls-port", "0", "--ca", "/nonexistent/ca.pem"], "--ca"),
                         (["echo-server", "--port", "0", "--ca", "/nonexistent/ca.pem"], "--ca"),
                         (["run", "--trace", "/nonexistent/t.jsonl"], "--trace")):
        done = ecemu(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert f"Invalid value for {option}" in done.stderr or f"Invalid value for '{option}'" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


# --- mqtt-broker: Mosquitto ends with it, and a taken port is refused -------------------------------

def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def _gone(pid: int, timeout: float = 15.0) -> bool:
    """Whether ``pid`` has ended (a zombie counts) within ``timeout``: polled, bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _start_broker(*args: str) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([*ECEMU, "mqtt-broker", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    assert line.startswith("mqtt: 127.0.0.1:"), (line, process.stderr.read() if process.poll() is not None else "")
    return process, int(line.rsplit(":", 1)[1])


@pytest.mark.needs("mosquitto")
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_mosquitto_ends_with_ecemu_mqtt_broker_however_it_ends(signum):
    process, port = _start_broker("--port", "0", "--tls-port", "0")
    try:
        (mosquitto,) = _children(process.pid)
        process.send_signal(signum)
        assert process.wait(15) == (0 if signum != signal.SIGKILL else -signal.SIGKILL)
        assert _gone(mosquitto), f"mosquitto {mosquitto} outlived its broker after signal {signum}"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        process.kill()
        process.wait(10)


@pytest.mark.needs("mosquitto")
def test_a_second_broker_on_a_taken_port_is_refused_instead_of_sharing_it():
    first, port = _start_broker("--port", "0", "--tls-port", "0")
    try:
        second = ecemu("mqtt-broker", "--port", str(port), "--tls-port", "0")
        assert second.returncode == 2
        assert f"Invalid value for --port: 127.0.0.1:{port} is already in use by another process" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(15) == 0
