"""``ecemu run`` end to end: a real process, a real pty, pyserial and miniterm as hosts."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import termios
import time

import pytest
import serial

from ecemu.profile import available_profiles, load_profile
from tests.processes import RunningEmulator, read_until


def ask(port: serial.Serial, line: bytes, final: bytes = b"OK\r\n") -> bytes:
    """Send a command line and read up to its final result (bounded by the port's timeout)."""
    port.write(line + b"\r")
    answer = port.read_until(final)
    assert answer.endswith(final), answer
    return answer


@pytest.fixture
def emulator(tmp_path, request):
    running = RunningEmulator("--link", str(tmp_path / "modem"), "--ufs", str(tmp_path / "ufs"), "--log-level", "debug")
    running.wait_for_boot()
    yield running
    if getattr(request.node, "failed_call", False):
        print("emulator log:\n" + running.log_text()[-8000:])
    running.stop()


def test_announces_the_link_as_the_port_and_the_link_points_to_a_pty(emulator, tmp_path):
    """Behind a link each opener gets a pty of its own: the link is the port's name."""
    assert emulator.stdout_lines[0] == f"port: {tmp_path / 'modem'}"
    assert emulator.stdout_lines[1] == f"link: {tmp_path / 'modem'}"
    assert os.path.realpath(emulator.link).startswith("/dev/pts/")


def test_pyserial_gets_identity_through_the_link(emulator):
    with serial.Serial(str(emulator.link), 115200, timeout=5) as port:
        ident = load_profile("EC200M-CN").identity
        assert ask(port, b"ATI") == (
            b"ATI\r\r\n" + f"{ident.manufacturer}\r\n{ident.model}\r\nRevision: {ident.revision}".encode()
            + b"\r\n\r\nOK\r\n")


def test_answers_to_a_host_that_left_are_not_shown_to_the_next(emulator):
    """What the module says while no host holds the port is lost, as on a real port."""
    for _ in range(3):
        with serial.Serial(emulator.port, 115200, timeout=5) as port:
            port.write(b"AT+CGMR\r")
            assert port.read_until(b"AT+CGMR\r") == b"AT+CGMR\r"  # the echo: the answer follows
    with serial.Serial(emulator.port, 115200, timeout=5) as port:
        assert ask(port, b"AT+CSQ") == b"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n"


def test_host_closing_and_reopening_keeps_working(emulator):
    for round_ in range(5):
        with serial.Serial(emulator.port, 115200, timeout=5) as port:
            # The command written just before the last close may be answered to this host, as
            # a real module's answer still on the wire would be; this host's own answer follows.
            expected = b"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
            assert ask(port, b"AT+CSQ", final=expected).endswith(expected)
            if round_ == 2:
                port.write(b"AT+CGMR\r")  # closed at once, the command perhaps not yet read
    assert emulator.process.poll() is None


def test_settings_survive_a_host_reopen_as_the_module_keeps_them(emulator):
    with serial.Serial(emulator.port, 115200, timeout=5) as port:
        assert ask(port, b"ATE0") == b"ATE0\r\r\nOK\r\n"
    with serial.Serial(emulator.port, 115200, timeout=5) as port:
        assert ask(port, b"AT") == b"\r\nOK\r\n"


def test_port_is_raw_newline_is_not_translated(emulator):
    """In raw mode "\\n" stays "\\n": "AT\\nAT\\r" is one garbage line, not two commands."""
    fd = os.open(emulator.port, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, b"ATE0\r")
        read_until(fd, b"OK\r\n")
        os.write(fd, b"AT\nAT\r")
        assert read_until(fd, b"\r\n", timeout=5).startswith(b"\r\nERROR")
        attrs = termios.tcgetattr(fd)
        assert not attrs[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
        assert not attrs[1] & termios.OPOST
    finally:
        os.close(fd)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_and_removes_link(tmp_path, signum):
    running = RunningEmulator("--link", str(tmp_path / "modem"))
    running.wait_for_boot()
    with serial.Serial(running.port, 115200, timeout=5) as port:
        ask(port, b"AT")
    assert running.stop(signum) == 0
    assert not os.path.lexists(tmp_path / "modem")


def test_boot_urcs_come_in_order_after_start(tmp_path):
    """Opened without flushing, the port shows the boot sequence of REFERENCE.md."""
    running = RunningEmulator()
    try:
        boot = running.wait_for_boot()
    finally:
        running.stop()
    assert boot == (b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n"
                    b"\r\n+QIND: SMS DONE\r\n\r\n+QIND: PB DONE\r\n")


@pytest.mark.parametrize("profile", available_profiles())
def test_every_profile_introduces_itself(tmp_path, profile):
    running = RunningEmulator("--profile", profile)
    running.wait_for_boot()
    try:
        with serial.Serial(running.port, 115200, timeout=5) as port:
            ident = load_profile(profile).identity
            assert ask(port, b"AT+CGMM") == f"AT+CGMM\r\r\n{ident.model}\r\n\r\nOK\r\n".encode()
            assert ask(port, b"AT+CGSN") == f"AT+CGSN\r\r\n{ident.imei}\r\n\r\nOK\r\n".encode()
    finally:
        running.stop()


def test_unknown_profile_is_refused_with_the_known_ones():
    result = subprocess.run([sys.executable, "-m", "ecemu", "run", "--profile", "EC999"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "EC200M-CN" in result.stderr and "EC999" in result.stderr


def test_profiles_command_lists_every_profile():
    result = subprocess.run([sys.executable, "-m", "ecemu", "profiles"], capture_output=True, text=True,
                            timeout=30, check=True)
    assert result.stdout.split() == ["EC200M-CN", "EC200N-CN", "EC800M-CN", "EC800N-CN", "EG800K-CN"]


def test_miniterm_attached_to_the_port_gets_ok(emulator):
    """A person's terminal: miniterm on a console of its own, typing AT and Enter."""
    pid, console = pty.fork()
    if pid == 0:  # the child: miniterm on the console pty
        os.execv(sys.executable, [sys.executable, "-m", "serial.tools.miniterm", emulator.port, "115200"])
    try:
        read_until(console, b"Quit: Ctrl+]", timeout=15)
        for ch in b"AT\r":
            os.write(console, bytes((ch,)))
        assert b"OK" in read_until(console, b"OK", timeout=10)
    finally:
        os.write(console, b"\x1d")  # Ctrl+] quits miniterm
        _reap(pid, console)


def _reap(pid: int, console: int, timeout: float = 5.0) -> None:
    """Wait for the child to exit, reading its console so that it never blocks on output."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return
            try:
                read_until(console, b"\x00", timeout=0.1)
            except (TimeoutError, OSError):
                pass
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    finally:
        os.close(console)
