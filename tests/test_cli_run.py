"""`ecemu run`, `ecemu ctl` and `ecemu echo-server` as a new user meets them: real processes, a
real pty for the terminal, real signals."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial
from click.testing import CliRunner

from ecemu.api import Emulator
from ecemu.cli import main
from ecemu.control import ControlError
from ecemu.shell.control_socket import request
from tests.processes import RunningEmulator, read_until, wait_for_boot

ECEMU = [sys.executable, "-m", "ecemu"]


def ecemu(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*ECEMU, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


# --- one emulator per link -------------------------------------------------------------------------


def test_a_second_run_on_a_live_link_is_refused_and_the_first_keeps_it(tmp_path):
    link = tmp_path / "modem"
    first = RunningEmulator("--link", str(link))
    try:
        first.wait_for_boot()
        second = ecemu("run", "--link", str(link))
        assert second.returncode == 2
        assert f"Invalid value for --link: {link} is in use by pid {first.process.pid}\n" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.port == str(link) and os.readlink(link).startswith("/dev/pts/")
        status = json.loads(ecemu("ctl", "--link", str(link), "status").stdout)
        assert status["port"] == first.port
    finally:
        assert first.stop() == 0
    assert not link.exists() and not Path(f"{link}.lock").exists() and not Path(f"{link}.ctl").exists()


def test_a_stale_lock_is_taken_over(tmp_path):
    link = tmp_path / "modem"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(10)
    Path(f"{link}.lock").write_text(f"{gone.pid}\n")
    running = RunningEmulator("--link", str(link))
    try:
        assert Path(f"{link}.lock").read_text() == f"{running.process.pid}\n"
        running.wait_for_boot()
    finally:
        assert running.stop() == 0
    assert not Path(f"{link}.lock").exists()


def test_the_api_refuses_a_link_in_use_in_the_same_process(tmp_path):
    link = tmp_path / "modem"
    with Emulator(link=link):
        second = Emulator(link=link)
        with pytest.raises(RuntimeError, match=f"{link} is in use by pid {os.getpid()}"):
            second.start()
        second.stop()
    with Emulator(link=link) as again:  # released at stop
        assert again.port == str(link) and os.readlink(link).startswith("/dev/pts/")


# --- ctl finds each modem of --count by its own link -------------------------------------------------


def test_ctl_link_i_reaches_modem_i(tmp_path):
    link = tmp_path / "mm"
    running = RunningEmulator("--link", str(link), "--count", "2")
    try:
        deadline = time.monotonic() + 15
        while len(running.stdout_lines) < 6:  # port, link and control of each modem
            running.stdout_lines.append(running.readline(deadline))
        for index in range(2):
            modem_link = tmp_path / f"mm-{index}"
            assert f"control: {modem_link}.ctl" in running.stdout_lines
            status = ecemu("ctl", "--link", str(modem_link), "status")
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["port"] == str(modem_link)
    finally:
        assert running.stop() == 0


# --- bad options: exit 2, the option named, no traceback --------------------------------------------


def _refused(args: list[str], option: str, words: str) -> None:
    result = ecemu(*args)
    assert result.returncode == 2, (args, result.stderr)
    assert re.search(rf"Invalid value for '?{option}'?: ", result.stderr) and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_bad_options_name_themselves_and_exit_2(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    _refused(["run", "--keylog", str(tmp_path / "missing" / "k.txt")], "--keylog", "No such file or directory")
    _refused(["run", "--trace", str(tmp_path / "missing" / "t.jsonl")], "--trace", "No such file or directory")
    _refused(["run", "--ufs", str(a_file / "ufs")], "--ufs", "cannot create folder")
    _refused(["run", "--link", str(a_file / "modem")], "--link", "cannot use")
    _refused(["run", "--control", str(a_file / "ctl")], "--control", "cannot create folder")
    _refused(["run", "--link", str(a_file)], "--link", "exists and is not a symbolic link")
    _refused(["echo-server", "--cert", "rotten"], "--cert", "'rotten' is not one of")


def test_a_link_in_a_forbidden_folder_exits_2(tmp_path):
    if os.geteuid() == 0:  # permissions do not bind root; sysfs refuses new files to root too
        forbidden = Path("/sys")
    else:
        forbidden = tmp_path / "forbidden"
        forbidden.mkdir(mode=0o500)
    _refused(["run", "--link", str(forbidden / "ecemu-modem")], "--link", f"cannot use {forbidden}/ecemu-modem: ")


def test_a_busy_tcp_port_names_the_option(tmp_path):
    running = RunningEmulator("--tcp", "0")
    try:
        busy = running.port.rpartition(":")[2]
        _refused(["run", "--tcp", busy], "--tcp", "in use")
    finally:
        assert running.stop() == 0


@pytest.mark.parametrize("command", [[], ["run"], ["ctl"], ["demo"], ["echo-server"], ["trace"],
                                     ["profiles"], ["scenarios"], ["certs"]])
def test_dash_h_is_help_everywhere(command):
    short = CliRunner().invoke(main, [*command, "-h"], prog_name="ecemu")
    long = CliRunner().invoke(main, [*command, "--help"], prog_name="ecemu")
    assert short.exit_code == 0 and short.output == long.output and "Usage: ecemu" in short.output


# --- bounded control arguments ----------------------------------------------------------------------


def test_control_arguments_over_their_bound_are_refused_everywhere(tmp_path):
    link = tmp_path / "modem"
    running = RunningEmulator("--link", str(link))
    try:
        refused = ecemu("ctl", "--link", str(link), "fail-opens", "count=300000000", "error=dns")
        assert refused.returncode == 2
        assert "fail-opens: count must be 0 to 1000, not '300000000'" in refused.stderr
        answer = request(Path(f"{link}.ctl"), "fail-opens", {"count": 300000000, "error": "dns"})
        assert answer == {"ok": False, "error": "fail-opens: count must be 0 to 1000, not 300000000"}
        answer = request(Path(f"{link}.ctl"), "urc-burst", {"text": "x" * 1025})
        assert answer == {"ok": False, "error": "urc-burst: text must be at most 1024 characters, not 1025"}
        for bad in ("nan", "inf", "-0.5"):
            answer = request(Path(f"{link}.ctl"), "server-stall", {"client": 0, "seconds": bad})
            assert answer["ok"] is False and "seconds must be 0 to 3600" in answer["error"]
        listing = ecemu("ctl", "--list").stdout
        assert "    count: int 0 to 1000\n" in listing and "    text: str at most 1024 characters\n" in listing
        assert ecemu("ctl", "--link", str(link), "fail-opens", "count=1000", "error=dns").returncode == 0
    finally:
        assert running.stop() == 0


def test_the_api_refuses_the_same_bounds():
    with Emulator() as modem:
        with pytest.raises(ControlError, match="count must be 0 to 1000, not 300000000"):
            modem.control.fail_opens(count=300000000, error="dns")
        with pytest.raises(ControlError, match="client must be 0 to 11, not 12"):
            modem.control.server_reset(12)


def test_every_argument_of_every_operation_has_a_documented_bound():
    from ecemu.control import OPERATIONS

    for op in OPERATIONS.values():
        for param in op.parameters:
            assert param.bound is not None or param.kind is bool, (op.name, param.name)


# --- Emulator.control is discoverable ---------------------------------------------------------------


def test_emulator_control_has_one_documented_method_per_operation():
    import inspect

    from ecemu.api import ControlProxy
    from ecemu.control import OPERATIONS

    assert Emulator.__doc__ and "control" in Emulator.__doc__
    names = {name for name in dir(ControlProxy) if not name.startswith("_")}
    assert names == {op.python_name for op in OPERATIONS.values()}
    method = ControlProxy.fail_opens
    assert str(inspect.signature(method)) == "(self, count: int, error: str, seconds: float = -1.0)"
    assert method.__doc__.startswith("The next COUNT AT+QSSLOPEN fail with ERROR")
    assert "count: int 0 to 1000" in method.__doc__ and "ecemu ctl fail-opens" in method.__doc__


def test_the_ctl_reference_lists_every_method_of_emulator_control():
    from ecemu.control import OPERATIONS
    from tests.readme_blocks import DOCS

    text = (DOCS / "reference" / "ctl.md").read_text(encoding="utf-8")
    for op in OPERATIONS.values():
        assert f"`{op.python_name}(" in text, op.python_name
        assert f"ecemu ctl --link /tmp/modem {op.name}" in text, op.name


# --- SIGHUP ends as cleanly as SIGTERM ---------------------------------------------------------------


def test_sighup_removes_the_link_the_socket_and_the_temporary_ufs(tmp_path, monkeypatch):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    link = tmp_path / "modem"
    running = RunningEmulator("--link", str(link))
    running.wait_for_boot()
    assert [p.name[:10] for p in temporary.iterdir() if p.name.startswith("ecemu-")] == ["ecemu-ufs-"]
    assert running.stop(signal.SIGHUP) == 0
    assert list(tmp_path.iterdir()) == [temporary]  # no link, no .ctl, no .lock
    assert [p for p in temporary.iterdir() if p.name.startswith("ecemu-")] == []


def test_echo_server_ends_cleanly_on_sighup():
    server = subprocess.Popen([*ECEMU, "echo-server", "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        read_until(server.stdout.fileno(), b"cert: rsa\n", timeout=15)
        server.send_signal(signal.SIGHUP)
        assert server.wait(10) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)
        server.stdout.close()
        server.stderr.close()


# --- echo-server --cert -----------------------------------------------------------------------------


def test_echo_server_cert_expired_from_the_command_line(tmp_path):
    """The CLI way to ask "does my firmware refuse an expired certificate": the CA from --ca trusts
    the chain, the module clock is inside the CA's validity, the open fails with 566."""
    server = subprocess.Popen([*ECEMU, "echo-server", "--port", "0", "--cert", "expired",
                               "--ca", str(tmp_path / "ca.pem")], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        out = read_until(server.stdout.fileno(), b"ca: ", timeout=15)
        port = int(re.search(rb"port: (\d+)\n", out).group(1))
        ca = (tmp_path / "ca.pem").read_bytes()
        with Emulator() as modem, serial.Serial(modem.port, 115200, timeout=15) as host:
            wait = b"+QIND: PB DONE\r\n"
            assert host.read_until(wait).endswith(wait)
            for line, until in ((b"ATE0\r", b"OK\r\n"), (b"AT+QIACT=1\r", b"OK\r\n"),
                                (b'AT+QFUPL="ca.pem",%d\r' % len(ca), b"CONNECT\r\n"), (ca, b"OK\r\n"),
                                (b'AT+QSSLCFG="secllevel",1,1\r', b"OK\r\n"),
                                (b'AT+QSSLCFG="ignorelocaltime",1,0\r', b"OK\r\n"),
                                (b'AT+QSSLCFG="cacert",1,"UFS:ca.pem"\r', b"OK\r\n"),
                                (b'AT+QSSLOPEN=1,1,0,"127.0.0.1",%d,0\r' % port, b"\r\nOK\r\n"),
                                (b"", b"+QSSLOPEN: 0,566\r\n")):
                host.write(line)
                assert host.read_until(until).endswith(until), line
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0
        server.stdout.close()


# --- the status line --------------------------------------------------------------------------------


STATUS = re.compile(r"\r([^\r\x1b]*)\x1b\[K")


def test_a_terminal_gets_a_status_line_updated_in_place(tmp_path):
    controller, terminal = pty.openpty()
    process = subprocess.Popen([*ECEMU, "run", "--link", str(tmp_path / "modem")], stdin=subprocess.DEVNULL,
                               stdout=terminal, stderr=subprocess.DEVNULL, close_fds=True)
    os.close(terminal)
    try:
        seen = read_until(controller, b"\x1b[K", timeout=15).decode()
        port = re.search(r"port: (\S+)\r\n", seen).group(1)
        assert re.fullmatch(r"no host \| \w+ mode \| 0 connections \| host→module 0 B \| module→host \d+ B",
                            STATUS.findall(seen)[-1])
        boot = wait_for_boot(port)
        with serial.Serial(port, 115200, timeout=10) as host:
            host.write(b"AT\r")
            assert host.read_until(b"OK\r\n") == b"AT\r\r\nOK\r\n"
            _status_until(controller, "host attached | command mode | 0 connections | host→module 3 B | "
                                      f"module→host {len(boot) + 9} B")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        os.close(controller)


def test_log_lines_on_the_same_terminal_clear_the_status_line_first(tmp_path):
    controller, terminal = pty.openpty()
    process = subprocess.Popen([*ECEMU, "run", "--log-level", "debug"], stdin=subprocess.DEVNULL,
                               stdout=terminal, stderr=terminal, close_fds=True)
    os.close(terminal)
    try:
        seen = read_until(controller, b"\x1b[K", timeout=15).decode()
        port = re.search(r"port: (\S+)\r\n", seen).group(1)
        with serial.Serial(port, 115200, timeout=10):  # the opening is logged at debug level
            seen = read_until(controller, b"a host opened", timeout=10).decode()
        assert re.search(r"(\r\x1b\[K|\n)[\d-]+ [\d:,]+ DEBUG ecemu\.shell\.pty_port: a host opened", seen)
        assert not re.search(r"B\d{4}-\d\d-\d\d ", seen), seen  # no log line glued to the status line
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        os.close(controller)


def _status_until(fd: int, wanted: str) -> None:
    """Read the pty until the status line reads ``wanted``."""
    buf, deadline = "", time.monotonic() + 10
    while True:
        if wanted in STATUS.findall(buf):
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError(f"no status line {wanted!r} in {buf!r}")
        buf += os.read(fd, 4096).decode()


def test_a_pipe_gets_no_status_line(tmp_path):
    running = RunningEmulator("--link", str(tmp_path / "modem"))
    try:
        running.wait_for_boot()
        with serial.Serial(running.port, 115200, timeout=10) as host:
            host.write(b"AT\r")
            assert host.read_until(b"OK\r\n") == b"AT\r\r\nOK\r\n"
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(10) == 0
        rest = running.process.stdout.read()
    finally:
        running.stop()
    assert running.stdout_lines == [f"port: {running.port}", f"link: {tmp_path / 'modem'}",
                                    f"control: {tmp_path / 'modem'}.ctl"]
    assert rest == b""
