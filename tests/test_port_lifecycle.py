"""The port's life as CI sees it (issue: ready means ready, a stop always stops, a reboot starts
clean): a host that opens the port the moment it appears is answered, a readiness signal for
scripts, a stop that ends from every state, and a reboot that drops what the module had not read."""

from __future__ import annotations

import ctypes
import errno
import ctypes.util
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import serial

from ecemu.api import Emulator
from tests.byte_ends import WAIT
from tests.wire import BOOT_URCS
from tests.processes import RunningEmulator, read_until

IN_CREATE = 0x100


def wait_for_creation(folder: Path, name: str, start) -> None:
    """Run ``start()`` and return the moment ``folder/name`` is created (inotify on the folder,
    watched before ``start``), as a script that waits for the link and opens it at once."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    assert fd >= 0
    try:
        assert libc.inotify_add_watch(fd, str(folder).encode(), IN_CREATE) >= 0
        start()
        deadline = time.monotonic() + WAIT
        while True:
            assert select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0], f"{name} never appeared"
            data = os.read(fd, 65536)
            offset = 0
            while offset < len(data):
                _wd, _mask, _cookie, length = struct.unpack_from("iIII", data, offset)
                created = data[offset + 16:offset + 16 + length].rstrip(b"\0").decode()
                offset += 16 + length
                if created == name:
                    return
    finally:
        os.close(fd)


def test_a_host_opening_the_link_the_moment_it_appears_gets_rdy_and_answers(tmp_path):
    """``ecemu run --link L & firmware L``: the open is seen, the module powers on (boot on open)."""
    for attempt in range(8):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        started: list[subprocess.Popen] = []
        wait_for_creation(folder, "modem", lambda: started.append(subprocess.Popen(
            [sys.executable, "-m", "ecemu", "run", "--link", str(folder / "modem")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        process = started[0]
        try:
            fd = os.open(folder / "modem", os.O_RDWR | os.O_NOCTTY)
            try:
                assert read_until(fd, b"+QIND: PB DONE\r\n", timeout=WAIT) == BOOT_URCS, f"attempt {attempt}"
                os.write(fd, b"AT\r")
                assert read_until(fd, b"OK\r\n", timeout=WAIT) == b"AT\r\r\nOK\r\n"
            finally:
                os.close(fd)
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(WAIT) == 0


def test_ready_fd_says_ready_once_the_port_can_be_opened(tmp_path):
    read_end, write_end = os.pipe()
    link = tmp_path / "modem"
    process = subprocess.Popen([sys.executable, "-m", "ecemu", "run", "--link", str(link), "--ready-fd", str(write_end)],
                               pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
    os.close(write_end)
    try:
        assert select.select([read_end], [], [], WAIT)[0]
        assert os.read(read_end, 100) == b"READY=1\n"
        assert os.read(read_end, 100) == b""  # then closed: a reader sees the end
        fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
        try:
            assert read_until(fd, b"+QIND: PB DONE\r\n", timeout=WAIT) == BOOT_URCS
        finally:
            os.close(fd)
    finally:
        os.close(read_end)
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0, process.stderr.read() if process.stderr else ""
        process.stderr.close()


def test_ready_fd_that_is_not_open_is_refused():
    result = subprocess.run([sys.executable, "-m", "ecemu", "run", "--ready-fd", "97"], capture_output=True,
                            text=True, timeout=WAIT)
    assert result.returncode == 2
    assert "--ready-fd" in result.stderr and "descriptor 97" in result.stderr


def test_notify_socket_gets_ready_as_systemd_expects(tmp_path):
    import socket

    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(WAIT)
        running = RunningEmulator.with_environment({"NOTIFY_SOCKET": address}, "--link", str(tmp_path / "modem"))
        try:
            message = sock.recv(4096).decode()
            fields = dict(line.split("=", 1) for line in message.splitlines())
            assert fields["READY"] == "1" and fields["MAINPID"] == str(running.process.pid)
            assert fields["STATUS"] == f"port: {running.port}"
        finally:
            assert running.stop() == 0
        assert sock.recv(4096) == b"STOPPING=1"


def test_without_inotify_the_first_byte_counts_as_the_open(tmp_path, monkeypatch):
    """Where opens cannot be watched, a host that writes has opened the port: with boot on open
    the module powers on, and the line it wrote is answered after the boot URCs."""
    import ecemu.shell.opens as opens

    def no_instance(loop):
        raise OSError(errno.EMFILE, "inotify_init1")  # the user's instances are all taken

    monkeypatch.setattr(opens, "_SharedInstance", no_instance)
    with Emulator(ufs=tmp_path / "ufs") as emulator:
        with serial.Serial(emulator.port, 115200, timeout=WAIT) as port:
            assert emulator.call(lambda runner: runner.powered) is False
            port.write(b"AT\r")
            assert port.read_until(b"AT\r\r\nOK\r\n").endswith(b"\r\nRDY\r\nAT\r\r\nOK\r\n")


class Flood:
    """A host that writes command lines as fast as the port takes them (and reads what comes) until
    told to stop or the port goes away."""

    def __init__(self, path: str, reopen: bool = False):
        self.path = path
        self.reopen = reopen
        self.stop = threading.Event()
        self.written = 0
        self.ended_by: OSError | None = None  # what ended it before it was told to stop
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def flooding(self) -> bool:
        """Still writing; a flood that ended on its own says why."""
        assert self.ended_by is None, f"the host's port failed under it: {self.ended_by!r}"
        return self.thread.is_alive()

    def _run(self) -> None:
        try:
            self._flood()
        except OSError as exc:
            self.ended_by = exc

    def _flood(self) -> None:
        while not self.stop.is_set():
            fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            try:
                for _ in range(200 if self.reopen else 10**9):
                    if self.stop.is_set():
                        return
                    _, writable, _ = select.select([], [fd], [], 0.05)
                    if writable:
                        try:
                            self.written += os.write(fd, b"AT+CSQ\rAT+QSSLSTATE\r" * 50)
                        except BlockingIOError:
                            pass  # another host on the same pty filled it since select looked
                    try:
                        os.read(fd, 65536)
                    except BlockingIOError:
                        pass
            finally:
                os.close(fd)

    def end(self) -> None:
        self.stop.set()
        self.thread.join(WAIT)


def test_emulator_stop_ends_its_thread_while_a_host_floods_and_reopens(tmp_path):
    emulator = Emulator(ufs=tmp_path / "ufs").start()
    emulator.wait_for_boot()
    floods = [Flood(emulator.port), Flood(emulator.port, reopen=True)]
    try:
        while sum(flood.written for flood in floods) < 100_000:  # the floods are under way
            assert all(flood.flooding for flood in floods)
            floods[0].stop.wait(0.01)
        assert emulator.running
        emulator.stop()
        assert not emulator.running
    finally:
        for flood in floods:
            flood.end()


def test_a_closed_pty_host_settles_a_late_open_or_close_at_once(tmp_path):
    """A write can schedule the handling of an open or close just before the port closes; once
    closed, that handling must end instead of finding the same news forever: the loop goes on."""
    with Emulator(ufs=tmp_path / "ufs", link=False) as emulator:  # the bare pty: a PtyHost
        def come_and_go_then_close(runner) -> str:
            host = runner.host
            path = host.address
            # A host opens and closes the pty: news the next write reads (the loop has had no turn
            # to read it), and hands to the loop's next turn to handle.
            os.close(os.open(path, os.O_RDWR | os.O_NOCTTY))
            host.write(b"\r\nOK\r\n")
            host.close()  # before that turn comes
            return path

        assert emulator.call(come_and_go_then_close).startswith("/dev/pts/")
        # The late handling ran on a closed port and ended: the loop answers again.
        assert emulator.call(lambda runner: runner.host.address) == ""


def test_ecemu_run_exits_on_sigterm_while_a_host_writes(tmp_path):
    running = RunningEmulator("--link", str(tmp_path / "modem"))
    running.wait_for_boot()
    flood = Flood(running.port)
    try:
        while flood.written < 100_000:
            assert flood.flooding
            flood.stop.wait(0.01)
        assert running.stop(signal.SIGTERM, timeout=WAIT) == 0
        assert not (tmp_path / "modem").exists()
    finally:
        flood.end()


def test_a_reboot_drops_what_the_frozen_module_had_not_read(tmp_path):
    """Lines the host wrote while the module hung (held in the runner and the pty) are lost with
    the reboot: a leftover ATQ1 or half line does not swallow the next command."""
    with Emulator(ufs=tmp_path / "ufs") as emulator:
        with serial.Serial(emulator.port, 115200, timeout=WAIT) as port:
            assert port.read_until(b"+QIND: PB DONE\r\n").endswith(b"+QIND: PB DONE\r\n")
            emulator.control.freeze(seconds=600)
            # Far more than the pty and the runner hold together: written without blocking until the
            # pty takes no more, so every byte the host wrote is held when the reboot comes and none
            # arrives after it (a blocked writer would go on writing into the new power cycle).
            held = b"ATQ1\rATE0\r" + b"AT+CSQ\r" * 20000

            def fill(start: int) -> int:
                while start < len(held):
                    try:
                        start += os.write(port.fileno(), held[start:start + 512])
                    except BlockingIOError:
                        break
                return start

            taken = fill(0)
            # The runner takes one piece, then stops reading while the module hangs: refill what it freed.
            while emulator.call(lambda runner: runner.input_held) == 0:
                time.sleep(0.01)
            taken = fill(taken)
            assert taken < len(held), "the pty took everything: nothing would be held"
            emulator.control.reboot()
            # The boot URCs, then nothing of what was held: the next line is answered with echo on and
            # result codes on (ATQ1 and ATE0 never ran), and no half line swallows it.
            assert port.read_until(b"+QIND: PB DONE\r\n").endswith(BOOT_URCS)
            port.reset_input_buffer()
            port.write(b"\rAT+CGMR\r")
            answer = port.read_until(b"OK\r\n")
            assert answer.startswith(b"\rAT+CGMR\r\r\n") and answer.endswith(b"\r\n\r\nOK\r\n"), answer


def test_a_reboot_in_the_core_drops_the_unread_input_and_the_port_is_told():
    from ecemu.core.uart import DropInput
    from tests.harness import CoreHarness

    h = CoreHarness(keep_port_changes=True)
    h.take_port_changes()
    h.modem.power_off()
    assert [c for c in h.take_port_changes() if isinstance(c, DropInput)] == [DropInput()]
    h.modem.reboot()
    assert [c for c in h.take_port_changes() if isinstance(c, DropInput)] == [DropInput()]


def test_emulator_stop_ends_its_thread_with_a_connection_streaming(tmp_path):
    """A transparent connection to a real server with a flood in flight both ways."""
    from tests.plain_servers import TcpEchoServer

    with TcpEchoServer() as server:
        emulator = Emulator(ufs=tmp_path / "ufs").start()
        emulator.wait_for_boot()
        port = serial.Serial(emulator.port, 115200, timeout=WAIT)
        try:
            port.write(b"ATE0\r")
            port.read_until(b"OK\r\n")
            port.write(b"AT+QIACT=1\r")
            port.read_until(b"OK\r\n")
            port.write(f'AT+QIOPEN=1,0,"TCP","127.0.0.1",{server.port},0,2\r'.encode())
            assert port.read_until(b"CONNECT\r\n").endswith(b"CONNECT\r\n")
            def write_until_gone() -> None:
                try:
                    for _ in range(64):
                        port.write(b"x" * 65536)
                except (serial.SerialException, OSError):
                    pass  # the port went with the emulator

            flood = threading.Thread(target=write_until_gone, daemon=True)
            flood.start()
            assert len(port.read(65536)) > 0  # the echo is coming back
            assert emulator.running
            emulator.stop()
            assert not emulator.running
            flood.join(WAIT)
        finally:
            port.close()
