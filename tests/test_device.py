"""``ecemu run --device PATH``: the module on an existing serial device. A pty pair made here
stands in for it, as QEMU's ``-serial pty`` or Zephyr's native PTY UART make one: the emulator
opens the slave (the device), the test holds the master (the firmware's UART)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import termios
import threading
import time

import pytest

from ecemu.api import Emulator
from tests.byte_ends import WAIT, UartEnd, upload_and_download
from tests.wire import BOOT_URCS
from tests.host import wait_until
from tests.processes import RunningEmulator



@pytest.fixture
def uart():
    made = UartEnd()
    yield made
    try:
        made.close()
    except OSError:
        pass


def test_the_module_boots_at_start_on_the_device_and_answers(uart, tmp_path):
    running = RunningEmulator("--device", uart.path, "--ufs", str(tmp_path / "ufs"))
    try:
        assert running.port == uart.path
        assert uart.expect(b"+QIND: PB DONE\r\n") == BOOT_URCS  # nobody had to open anything
        assert uart.ask(b"AT") == b"AT\r\r\nOK\r\n"
        assert uart.ask(b"ATI").endswith(b"Revision: EC200MCNLAR02A02M16\r\n\r\nOK\r\n")
    finally:
        assert running.stop() == 0


def test_the_device_is_raw_and_carries_every_byte_value(uart, tmp_path):
    """Raw termios: no CR/LF translation, no echo by the tty, no flow-control bytes, 0x00-0xFF."""
    with Emulator(ufs=tmp_path / "ufs", device=uart.path) as modem:
        uart.expect(b"+QIND: PB DONE\r\n")
        upload_and_download(uart, "all.bin", bytes(range(256)) * 4)
        assert modem.port == uart.path


def test_at_ipr_on_a_device_changes_its_termios_speed_after_the_ok(uart, tmp_path):
    with Emulator(ufs=tmp_path / "ufs", device=uart.path) as modem:
        uart.expect(b"+QIND: PB DONE\r\n")
        assert uart.speed() == termios.B115200
        assert uart.ask(b"AT+IPR=921600") == b"AT+IPR=921600\r\r\nOK\r\n"
        wait_until(lambda: uart.speed() == termios.B921600, "the device at 921600")
        # 8 data bits, no parity, 2 stop bits (a pty takes no parity: the kernel keeps CS8 alone)
        assert uart.ask(b"AT+ICF=1") == b"AT+ICF=1\r\r\nOK\r\n"
        wait_until(lambda: termios.tcgetattr(uart.master)[2] & termios.CSTOPB, "two stop bits")
        assert uart.speed() == termios.B921600
        assert uart.ask(b"AT+IPR?") == b"AT+IPR?\r\r\n+IPR: 921600\r\n\r\nOK\r\n"
        modem.control.reboot()  # a power cycle: back to the rate at power-on
        uart.expect(b"+QIND: PB DONE\r\n")
        wait_until(lambda: uart.speed() == termios.B115200, "the device back at 115200")


def test_baud_sets_the_rate_at_power_on(uart, tmp_path):
    running = RunningEmulator("--device", uart.path, "--baud", "9600", "--ufs", str(tmp_path / "ufs"))
    try:
        uart.expect(b"+QIND: PB DONE\r\n")
        assert uart.speed() == termios.B9600
        assert uart.ask(b"AT+IPR?") == b"AT+IPR?\r\r\n+IPR: 9600\r\n\r\nOK\r\n"
    finally:
        assert running.stop() == 0


def ecemu_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ecemu", "run", *args], capture_output=True, text=True,
                          timeout=WAIT, stdin=subprocess.DEVNULL)


def test_a_missing_device_is_refused_clearly(tmp_path):
    result = ecemu_run("--device", str(tmp_path / "ttyUSB9"))
    assert result.returncode == 2
    assert "--device" in result.stderr and "no such device" in result.stderr


def test_a_device_another_program_locked_is_refused_as_busy(uart):
    fd = os.open(uart.path, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as pyserial's exclusive=True and picocom do
        result = ecemu_run("--device", uart.path)
        assert result.returncode == 2
        assert "--device" in result.stderr and "busy" in result.stderr
    finally:
        os.close(fd)


def test_a_device_the_emulator_holds_is_busy_for_a_second_one(uart, tmp_path):
    with Emulator(ufs=tmp_path / "ufs", device=uart.path):
        result = ecemu_run("--device", uart.path)
        assert result.returncode == 2 and "busy" in result.stderr


def test_a_file_that_is_not_a_terminal_is_refused(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("")
    result = ecemu_run("--device", str(plain))
    assert result.returncode == 2 and "not a serial device" in result.stderr


def test_a_device_that_goes_away_and_comes_back_keeps_the_module(tmp_path):
    """A simulator restarted (or an adapter replugged) behind a stable name: the module keeps its
    UFS and its settings; the firmware on the new device is answered as before."""
    device = tmp_path / "ttyMODEM"  # as udev's /dev/serial/by-id/... names an adapter
    first = UartEnd()
    device.symlink_to(first.path)
    running = RunningEmulator("--device", str(device), "--ufs", str(tmp_path / "ufs"), "--log-level", "info")
    try:
        first.expect(b"+QIND: PB DONE\r\n")
        assert first.ask(b"ATE0") == b"ATE0\r\r\nOK\r\n"
        assert first.ask(b'AT+QFUPL="kept.txt",5', b"CONNECT\r\n").endswith(b"CONNECT\r\n")
        first.write(b"hello")
        first.expect(b"OK\r\n")
        first.close()  # the simulator is gone
        device.unlink()
        second = UartEnd()
        device.symlink_to(second.path)  # and back, on a new pty
        try:
            # The module did not reboot (no RDY first), kept echo off and the file.
            assert second.ask(b"AT+QFLST") == b'\r\n+QFLST: "UFS:kept.txt",5\r\n\r\nOK\r\n'
        finally:
            second.close()
        log = running.log_text()
        assert f"{device} went away" in log and f"{device} is back" in log
    finally:
        assert running.stop() == 0


def test_several_devices_are_several_modems(tmp_path):
    uarts = [UartEnd(), UartEnd()]
    running = RunningEmulator(*[arg for uart in uarts for arg in ("--device", uart.path)],
                              "--ufs", str(tmp_path / "ufs"))
    try:
        while sum(line.startswith("port: ") for line in running.stdout_lines) < 2:
            running.stdout_lines.append(running.readline(time.monotonic() + WAIT))
        ports = [line.removeprefix("port: ") for line in running.stdout_lines if line.startswith("port: ")]
        assert ports == [uart.path for uart in uarts]
        for uart in uarts:
            uart.expect(b"+QIND: PB DONE\r\n")
        assert uarts[0].ask(b"ATE0") == b"ATE0\r\r\nOK\r\n"
        assert uarts[1].ask(b"AT") == b"AT\r\r\nOK\r\n"  # echo still on: its own module
        assert uarts[0].ask(b"AT") == b"\r\nOK\r\n"
    finally:
        assert running.stop() == 0
        for uart in uarts:
            uart.close()


def test_boot_on_open_on_a_device_waits_for_the_boards_first_byte(uart, tmp_path):
    with Emulator(ufs=tmp_path / "ufs", device=uart.path, boot="on-open") as modem:
        assert modem.call(lambda runner: runner.powered) is False
        uart.write(b"AT\r")
        assert uart.expect(b"OK\r\n").endswith(b"\r\nRDY\r\nAT\r\r\nOK\r\n")


def test_ecemu_run_exits_cleanly_while_the_firmware_writes(uart, tmp_path):
    running = RunningEmulator("--device", uart.path, "--ufs", str(tmp_path / "ufs"))
    uart.expect(b"+QIND: PB DONE\r\n")
    for _ in range(20):
        os.write(uart.master, b"AT+CSQ\r" * 50)
    assert running.stop(signal.SIGTERM, timeout=WAIT) == 0


def test_the_plugin_puts_the_modem_on_a_device(pytester, uart):
    pytester.makepyfile(f"""
        import os, select

        def test_on_the_device(ecemu_modem):
            assert ecemu_modem.port == {uart.path!r}

        def test_marker_names_the_device_too(ecemu_modem):
            assert ecemu_modem.port == {uart.path!r}
    """)
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:randomly", f"--ecemu-device={uart.path}")
    result.assert_outcomes(passed=2)


def test_garbage_at_a_wrong_rate_is_answered_and_said_and_the_right_rate_works(uart, tmp_path, caplog):
    """A board at the wrong rate sends what the UART decodes as high bytes and framing noise: the
    module answers the garbage line with ERROR, keeps running, and the log says what is likely
    wrong; the board at the right rate is answered."""
    import logging
    import random

    garbage = bytes(random.Random(22).randrange(0x80, 0x100) for _ in range(300))
    with caplog.at_level(logging.WARNING, logger="ecemu"):
        with Emulator(ufs=tmp_path / "ufs", device=uart.path) as modem:
            uart.expect(b"+QIND: PB DONE\r\n")
            uart.write(garbage + b"\r")
            assert uart.expect(b"ERROR\r\n").endswith(garbage + b"\r\r\nERROR\r\n")  # echoed, refused
            assert uart.ask(b"AT") == b"AT\r\r\nOK\r\n"
            assert modem.call(lambda runner: runner.modem.host.mode.value) == "command"
    assert any("not text: is it at the module's rate and framing (AT+IPR=115200, 115200 8N1)" in r.getMessage()
               for r in caplog.records)


def test_the_device_vanishing_mid_upload_leaves_the_module_running(tmp_path):
    """The board goes away in the middle of AT+QFUPL's data: a host that left drops DTR (AT&D2), so
    the upload ends as its timeout would, what came is the file, and the board that comes back is
    answered in command mode."""
    device = tmp_path / "ttyMODEM"
    first = UartEnd()
    device.symlink_to(first.path)
    with Emulator(ufs=tmp_path / "ufs", device=device) as modem:
        first.expect(b"+QIND: PB DONE\r\n")
        assert first.ask(b"ATE0") == b"ATE0\r\r\nOK\r\n"
        first.write(b'AT+QFUPL="cut.bin",100\r')
        first.expect(b"CONNECT\r\n")
        first.write(bytes(range(40)))
        sent = len(b"ATE0\r" + b'AT+QFUPL="cut.bin",100\r') + 40
        wait_until(lambda: modem.call(lambda runner: runner.bytes_from_host) == sent, "the 40 bytes in")
        first.close()  # gone, 60 bytes short
        device.unlink()
        wait_until(lambda: not modem.call(lambda runner: runner.has_host), "the board gone")
        second = UartEnd()
        device.symlink_to(second.path)
        try:
            assert second.ask(b"AT+QFLST") == b'\r\n+QFLST: "UFS:cut.bin",40\r\n\r\nOK\r\n'
        finally:
            second.close()


class AdapterPins:
    """The modem-control pins of a USB-serial adapter, which a pty has not: TIOCMGET, TIOCMBIS and
    TIOCMBIC answered from a register the test sets (the board's side) and reads (the module's).
    Only these requests are simulated; every other ioctl reaches the real pty."""

    def __init__(self, real_ioctl):
        import struct as _struct

        self.real = real_ioctl
        self.struct = _struct
        self.register = termios.TIOCM_DSR | termios.TIOCM_CTS  # the board's DTR and RTS are on
        self.lock = threading.Lock()

    def __call__(self, fd, request, arg=0, *rest):
        if request == termios.TIOCMGET:
            with self.lock:
                return self.struct.pack("I", self.register)
        if request in (termios.TIOCMBIS, termios.TIOCMBIC):
            bits = self.struct.unpack("I", arg)[0]
            with self.lock:
                self.register = self.register | bits if request == termios.TIOCMBIS else self.register & ~bits
            return arg
        return self.real(fd, request, arg, *rest)

    def pin(self, bit: int) -> bool:
        with self.lock:
            return bool(self.register & bit)

    def set_board(self, bit: int, on: bool) -> None:
        with self.lock:
            self.register = self.register | bit if on else self.register & ~bit


def test_the_null_modem_pin_map_carries_the_lines_both_ways(uart, tmp_path, monkeypatch):
    """docs/reference/serial-line.md "Control lines": the adapter's DTR pin carries RI, its RTS pin
    DCD; its DSR pin is the board's DTR, its CTS pin the board's RTS."""
    import ecemu.shell.device as device_module

    pins = AdapterPins(fcntl.ioctl)
    monkeypatch.setattr(device_module.fcntl, "ioctl", pins)
    with Emulator(ufs=tmp_path / "ufs", device=uart.path) as modem:
        uart.expect(b"+QIND: PB DONE\r\n")
        assert uart.ask(b"ATE0") == b"ATE0\r\r\nOK\r\n"
        assert not pins.pin(termios.TIOCM_RTS)  # DCD off: &C1, command mode
        assert uart.ask(b"AT&C0") == b"\r\nOK\r\n"
        wait_until(lambda: pins.pin(termios.TIOCM_RTS), "DCD on the RTS pin")
        assert uart.ask(b'AT+QCFG="urc/ri/other","pulse",2000,1') == b"\r\nOK\r\n"
        assert uart.ask(b"AT+QIACT=1") == b"\r\nOK\r\n"
        modem.control.pdp_drop(context=1)
        assert pins.pin(termios.TIOCM_DTR)  # RI on for 2 s
        wait_until(lambda: not pins.pin(termios.TIOCM_DTR), "RI back off")
        pins.set_board(termios.TIOCM_DSR, False)  # the board drops its DTR
        wait_until(lambda: modem.control.lines()["dtr"] is False, "the module seeing DTR off")
        pins.set_board(termios.TIOCM_DSR, True)
        pins.set_board(termios.TIOCM_CTS, False)  # and its RTS
        wait_until(lambda: modem.control.lines()["rts"] is False, "the module seeing RTS off")
        pins.set_board(termios.TIOCM_CTS, True)
        wait_until(lambda: (lambda lines: lines["dtr"] and lines["rts"])(modem.control.lines()), "both back on")
        uart.expect(b'+QIURC: "pdpdeact",1\r\n')
        assert uart.ask(b"AT") == b"\r\nOK\r\n"
